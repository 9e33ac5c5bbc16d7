// An in-process broker with the whole broker contract: consumer groups, acknowledgement,
// redelivery of unacknowledged deliveries after a visibility timeout, dead letters, stored
// results with a TTL, pushed replies, signatures carried beside every payload, and the list of
// servers that announce themselves. Brokers created with the same `memory://<bus>` URL in one
// process share the bus. It serves tests, single-process embedding, and is the model (the
// reference semantics) for third-party broker authors.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "prpc/broker.hpp"
#include "prpc/sdk/plugin.hpp"

namespace prpc::memory {

struct Settings {
  std::string bus = "default";
  std::chrono::milliseconds result_ttl{6 * 3600 * 1000};
  std::size_t max_queue_length = 1'000'000;  // unconsumed requests per stream
  std::size_t max_dead_letters = 10'000;     // per queue; the oldest are dropped
  // How long a server whose announcement expired is still listed, with "alive": false.
  std::chrono::milliseconds server_history{5 * 60 * 1000};
};

// Parses "memory://<bus>" (or "memory:<bus>", or a bare name).
Result<std::string> parse_bus_url(std::string_view url);

class Bus;

class MemoryBroker final : public Broker {
 public:
  static constexpr const char* kName = "memory";
  static constexpr const char* kDescription =
      "In-process broker (memory://<bus>): the full delivery contract without a server";
  static std::vector<sdk::OptionSpec> options();

  explicit MemoryBroker(Settings settings);
  explicit MemoryBroker(const sdk::Context& ctx);
  ~MemoryBroker() override;
  MemoryBroker(const MemoryBroker&) = delete;
  MemoryBroker& operator=(const MemoryBroker&) = delete;

  Status connect() override;
  Status subscribe(const SubscribeOptions& options, DeliveryHandler handler) override;
  void unsubscribe() override;
  void finish(const DeliveryView& delivery, const FinishRequest& what, DoneCallback done) override;
  void touch(const DeliveryView& delivery) override;
  void lookup_result(Flavour flavour, std::string_view queue, std::string_view message_id,
                     LookupCallback done) override;
  void lookup_result_signed(Flavour flavour, std::string_view queue, std::string_view message_id,
                            StoredResultCallback done) override;
  void publish(const PublishView& message, DoneCallback done) override;
  Result<std::string> open_replies(std::string_view queue, ReplyHandler on_reply) override;
  Result<std::string> open_replies_signed(std::string_view queue,
                                          PushedReplyHandler on_reply) override;
  Result<QueueStats> queue_stats(std::string_view queue) override;
  Result<std::vector<DeadLetter>> dead_letters(std::string_view queue,
                                               std::size_t max_count) override;
  Result<std::size_t> requeue_dead_letters(std::string_view queue,
                                           std::span<const std::string> ids) override;
  void announce_server(std::string_view queue, std::string_view server_id,
                       std::string_view info_json, std::chrono::milliseconds ttl,
                       DoneCallback done) override;
  Result<std::string> list_servers(std::string_view queue) override;

  // Called by the bus with its lock held: queue a pushed reply for this instance's thread.
  void enqueue_reply(const std::string& reply_to, const ReplyView& reply);

 private:
  struct PushedReply {
    std::string reply_to;
    std::string message_id;
    std::string payload;
    std::string signature;
    std::string key_id;
  };

  void run();
  // Collects new and reclaimable deliveries for this subscriber; returns the room there was
  // (0: max_outstanding reached). Bus lock held.
  std::size_t collect(std::vector<Delivery>& out);

  Settings settings_;
  std::shared_ptr<Bus> bus_;

  // All below are guarded by the bus mutex.
  bool stopping_ = false;
  bool subscribed_ = false;
  bool delivering_ = false;
  SubscribeOptions subscription_;
  DeliveryHandler handler_;
  std::set<std::string> outstanding_;  // tokens handed over and not finished
  std::map<std::string, std::string, std::less<>> reply_addresses_;  // queue -> reply_to
  // reply_to -> handler; shared so that a handler replaced by a later open_replies outlives a
  // call to it already under way on the broker's thread.
  std::map<std::string, std::shared_ptr<PushedReplyHandler>, std::less<>> reply_handlers_;
  std::deque<PushedReply> inbox_;
  std::chrono::steady_clock::time_point next_claim_scan_{};

  std::thread thread_;
};

}  // namespace prpc::memory
