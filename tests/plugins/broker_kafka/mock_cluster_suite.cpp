// The Kafka cases against librdkafka's mock cluster: a fresh cluster (its own process) per test,
// plus the faults only the mock can inject.
#include "kafka_test_base.hpp"
#include "log_capture.hpp"

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

// A refused offset commit is logged once, with its offsets, whether it was asynchronous (after a
// call) or synchronous (the last commit when a server leaves).
TEST_F(KafkaTest, EachFailedOffsetCommitIsLoggedOnceWithItsOffsets) {
  prepare(1);
  testing::LogCapture logs;
  Server& server = start_server();
  Client& c = client();
  ASSERT_TRUE(c.call_sync(request("ping"), 30s).is_ok());
  auto failures = [&] {
    std::vector<std::string> out;
    for (const auto& line : logs.lines()) {
      if (line.find("offset commit") != std::string::npos) {
        out.push_back(line);
      }
    }
    return out;
  };
  auto* mock = cluster_->mock();
  std::this_thread::sleep_for(500ms);  // the ping's own commit is done
  // Not retriable: the commit fails at once and is not sent again.
  mock->push_errors("OffsetCommit", "OFFSET_METADATA_TOO_LARGE", 1);
  ASSERT_TRUE(c.call_sync(request("ping"), 30s).is_ok());
  ASSERT_TRUE(wait_until([&] { return failures().size() == 1; }, 30s)) << logs.joined();
  std::this_thread::sleep_for(500ms);
  mock->push_errors("OffsetCommit", "OFFSET_METADATA_TOO_LARGE", 1);
  server.stop(5s);
  servers_.at(0).reset();  // its broker leaves the group, committing synchronously, and is gone
  std::vector<std::string> lines = failures();
  ASSERT_EQ(lines.size(), 2u) << logs.joined();
  for (const auto& line : lines) {
    EXPECT_NE(line.find("OFFSET_METADATA_TOO_LARGE"), std::string::npos) << line;
    EXPECT_NE(line.find("prpc_raw_" + queue_ + "[0]=2"), std::string::npos) << line;
  }
}

// A cluster that cannot be reached is reported once at WARNING however long it stays away (the
// retries go to DEBUG), and its return once at INFO with a summary.
TEST_F(KafkaTest, AnUnreachableClusterIsReportedOnceAndItsReturnOnce) {
  prepare(1);
  log::Level before = log::level();
  log::set_level(log::Level::kInfo);
  testing::LogCapture logs;
  client();  // connected: its producer's thread watches the cluster
  auto* mock = cluster_->mock();
  mock->broker_down(-1);
  auto noisy = [&] {
    return logs.count(log::Level::kWarn, "kafka") + logs.count(log::Level::kError, "kafka");
  };
  EXPECT_TRUE(wait_until([&] { return noisy() >= 1; }, 30s)) << logs.joined();
  // librdkafka retries all along (the broker's probes ask for metadata every second).
  std::this_thread::sleep_for(4s);
  EXPECT_EQ(noisy(), 1u) << logs.joined();
  EXPECT_EQ(logs.count(log::Level::kWarn, "retrying"), 1u) << logs.joined();
  mock->broker_up(-1);
  EXPECT_TRUE(wait_until(
      [&] { return logs.count(log::Level::kInfo, "Kafka is reachable again after") == 1; }, 30s))
      << logs.joined();
  EXPECT_EQ(noisy(), 1u) << logs.joined();
  log::set_level(before);
}

}  // namespace prpc::kafka_tests
