// prpc::Broker on Apache Kafka (librdkafka's C API).
//
// Topics per queue q: prpc_{q} and prpc_raw_{q} (requests), prpc_feedback_{q} and
// prpc_feedback_raw_{q} (replies, keyed by message_id), prpc_dead_{q} (dead letters), and
// prpc-servers-{q} (the servers' announcements, keyed by server id). Servers
// share a consumer group; a request's offset is committed only after its reply was acknowledged
// by the cluster, per partition and only up to the contiguous prefix of finished calls. Delivery
// counts travel in the commit metadata (offset_ledger.hpp). Clients each own one partition of
// the feedback topic (open_replies) and read it from its end. docs/brokers/kafka.md explains the
// choices.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "kafka_settings.hpp"
#include "prpc/broker.hpp"
#include "prpc/sdk/plugin.hpp"

namespace prpc::kafka {

// The topic names of PROTOCOL.md section 1, in the Kafka broker's words (prpc/protocol.hpp).
std::string request_topic(std::string_view queue, Flavour flavour);
std::string reply_topic(std::string_view queue, Flavour flavour);
std::string dead_topic(std::string_view queue);
// prpc-servers-{q}: the servers' announcements. The '-' keeps it apart from every prpc_... topic
// of any queue name.
std::string servers_topic(std::string_view queue);

class KafkaBroker final : public Broker {
 public:
  static constexpr const char* kName = "kafka";
  static constexpr const char* kDescription =
      "Apache Kafka (librdkafka): request topics per queue, a consumer group of servers, replies "
      "pushed to a feedback partition the client owns";
  static constexpr std::uint32_t kFactoryFlags = PRPC_FACTORY_OPEN_OPTIONS;
  static std::vector<sdk::OptionSpec> options() { return option_specs(); }

  explicit KafkaBroker(const sdk::Context& ctx);
  KafkaBroker(Settings settings, sdk::Logger log);
  ~KafkaBroker() override;
  KafkaBroker(const KafkaBroker&) = delete;
  KafkaBroker& operator=(const KafkaBroker&) = delete;

  Status connect() override;
  Status subscribe(const SubscribeOptions& options, DeliveryHandler handler) override;
  void unsubscribe() override;
  void finish(const DeliveryView& delivery, const FinishRequest& what, DoneCallback done) override;
  void touch(const DeliveryView& delivery) override;
  void lookup_result(Flavour flavour, std::string_view queue, std::string_view message_id,
                     LookupCallback done) override;
  void publish(const PublishView& message, DoneCallback done) override;
  Result<std::string> open_replies(std::string_view queue, ReplyHandler on_reply) override;
  // Signatures travel as the records' prpc-signature and prpc-key-id headers.
  Result<std::string> open_replies_signed(std::string_view queue,
                                          PushedReplyHandler on_reply) override;
  void lookup_result_signed(Flavour flavour, std::string_view queue, std::string_view message_id,
                            StoredResultCallback done) override;
  Result<QueueStats> queue_stats(std::string_view queue) override;
  Result<std::vector<DeadLetter>> dead_letters(std::string_view queue,
                                               std::size_t max_count) override;
  void announce_server(std::string_view queue, std::string_view server_id,
                       std::string_view info_json, std::chrono::milliseconds ttl,
                       DoneCallback done) override;
  Result<std::string> list_servers(std::string_view queue) override;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace prpc::kafka
