// The Kafka cases against librdkafka's mock cluster: a fresh cluster (its own process) per test,
// plus the faults only the mock can inject.
#include "kafka_test_base.hpp"

namespace prpc::kafka_tests {

namespace {
class MockCluster final : public Cluster {
 public:
  std::string bootstrap() const override { return mock_.bootstrap(); }
  bool is_mock() const override { return true; }
  void prepare_queue(const std::string& queue, int partitions) override {
    mock_.create_queue_topics(queue, partitions);
  }
  testing::KafkaMockCluster* mock() override { return &mock_; }

 private:
  testing::KafkaMockCluster mock_{1};
};
}  // namespace

std::shared_ptr<Cluster> acquire_cluster() { return std::make_shared<MockCluster>(); }

TEST_F(KafkaTest, InjectedRequestErrorsLoseNothing) {
  prepare(2);
  Server& server = start_server();
  Client& c = client();
  ASSERT_TRUE(c.call_sync(request("ping"), 30s).is_ok());
  auto* mock = cluster_->mock();
  // Retriable errors on every path a call takes: producing requests and replies, fetching,
  // committing; plus dropped connections and added latency.
  mock->push_errors("Produce", "NOT_LEADER_FOR_PARTITION", 3);
  mock->push_errors("Produce", "_TRANSPORT", 2);
  mock->push_errors("Fetch", "NOT_LEADER_FOR_PARTITION", 3);
  mock->push_errors("OffsetCommit", "COORDINATOR_NOT_AVAILABLE", 3);
  mock->set_rtt(-1, 30);
  constexpr int kCalls = 50;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kCalls; ++i) {
    c.call(request("echo", "[" + std::to_string(i) + "]"), 120s, [&, i](Result<Message> r) {
      if (r.is_ok() && !r->failed() && r->result == std::to_string(i)) ok.fetch_add(1);
      done.fetch_add(1);
    });
  }
  ASSERT_TRUE(wait_until([&] { return done.load() == kCalls; }, 150s)) << done.load();
  EXPECT_EQ(ok.load(), kCalls);
  mock->set_rtt(-1, 0);
  EXPECT_GE(server.stats().succeeded, static_cast<std::uint64_t>(kCalls));
}

}  // namespace prpc::kafka_tests
