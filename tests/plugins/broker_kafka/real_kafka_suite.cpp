// The Kafka cases against a real Apache Kafka 3.9.1 broker (KRaft), started once for the whole
// binary: each test works on its own queue, so they do not see each other.
#include "kafka_test_base.hpp"

namespace prpc::kafka_tests {

namespace {
class RealCluster final : public Cluster {
 public:
  std::string bootstrap() const override { return server_.bootstrap(); }
  bool is_mock() const override { return false; }
  void prepare_queue(const std::string&, int) override {}  // the broker creates its topics
  testing::KafkaServer* server() override { return &server_; }

 private:
  testing::KafkaServer server_;
};
}  // namespace

std::shared_ptr<Cluster> acquire_cluster() {
  static std::shared_ptr<Cluster> shared = std::make_shared<RealCluster>();
  return shared;
}

}  // namespace prpc::kafka_tests
