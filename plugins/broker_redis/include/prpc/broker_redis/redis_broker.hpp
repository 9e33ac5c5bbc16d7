// The Redis Streams broker ("redis"): requests on streams prpc_{q} / prpc_raw_{q} read by a
// consumer group, results in string keys with a TTL, replies pushed to a per-client stream.
// docs/brokers/redis.md describes the keys, the options and the failure behaviour.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "prpc/broker.hpp"
#include "prpc/sdk/plugin.hpp"

namespace prpc::redis {

class RedisBroker final : public Broker {
 public:
  static constexpr const char* kName = "redis";
  static constexpr const char* kDescription =
      "Redis Streams (hiredis): consumer groups, pending-entry recovery, results with a TTL";
  static std::vector<sdk::OptionSpec> options();

  // Throws std::invalid_argument for a malformed option (the SDK turns it into a status).
  explicit RedisBroker(const sdk::Context& context);
  ~RedisBroker() override;
  RedisBroker(const RedisBroker&) = delete;
  RedisBroker& operator=(const RedisBroker&) = delete;

  Status connect() override;

  Status subscribe(const SubscribeOptions& options, DeliveryHandler handler) override;
  void unsubscribe() override;
  void finish(const DeliveryView& delivery, const FinishRequest& what, DoneCallback done) override;
  void touch(const DeliveryView& delivery) override;
  void lookup_result(Flavour flavour, std::string_view queue, std::string_view message_id,
                     LookupCallback done) override;

  void publish(const PublishView& message, DoneCallback done) override;
  Result<std::string> open_replies(std::string_view queue, ReplyHandler on_reply) override;
  // Signatures travel as the entries' `signature` and `key_id` fields, and a stored result's in
  // <result key>:signature (docs/security.md).
  Result<std::string> open_replies_signed(std::string_view queue,
                                          PushedReplyHandler on_reply) override;
  void lookup_result_signed(Flavour flavour, std::string_view queue, std::string_view message_id,
                            StoredResultCallback done) override;

  Result<QueueStats> queue_stats(std::string_view queue) override;
  Result<std::vector<DeadLetter>> dead_letters(std::string_view queue,
                                               std::size_t max_count) override;
  Result<std::size_t> requeue_dead_letters(std::string_view queue,
                                           std::span<const std::string> ids) override;
  // Announcements live in the hash prpc_servers:{q}, one field per server.
  void announce_server(std::string_view queue, std::string_view server_id,
                       std::string_view info_json, std::chrono::milliseconds ttl,
                       DoneCallback done) override;
  Result<std::string> list_servers(std::string_view queue) override;

  class Impl;

 private:
  Impl* impl_;  // owned; see the destructor for why this is not a smart pointer
};

}  // namespace prpc::redis
