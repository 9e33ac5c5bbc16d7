// Test support: a replicated Apache Kafka 3.9.1 cluster: three KRaft nodes, each broker and
// controller in one JVM (a 3-voter quorum that survives the loss of any one node), on free
// loopback ports, with topics at replication factor 3 and min.insync.replicas=2 by default.
// Faults: SIGKILL a broker, restart it, wait for leaders and for the ISR to be full again.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "process.hpp"

namespace prpc::testing {

struct KafkaClusterOptions {
  int brokers = 3;
  int default_partitions = 3;   // num.partitions
  int replication_factor = 3;   // default.replication.factor, and the internal topics'
  int min_insync_replicas = 2;  // min.insync.replicas
  // A SIGKILLed broker is fenced (and loses its leaderships) after this long without a
  // heartbeat; Kafka's default is 9 s.
  int session_timeout_ms = 3000;
  std::vector<std::string> extra_properties;  // more server.properties lines for every node
};

struct KafkaPartitionState {
  int partition = 0;
  int leader = -1;  // node id, -1 when none
  std::vector<int> replicas;
  std::vector<int> isr;
};

class KafkaCluster {
 public:
  // Formats and starts every node and waits until the metadata lists all brokers.
  explicit KafkaCluster(KafkaClusterOptions options = {});
  ~KafkaCluster();
  KafkaCluster(const KafkaCluster&) = delete;
  KafkaCluster& operator=(const KafkaCluster&) = delete;

  // "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
  const std::string& bootstrap() const { return bootstrap_; }
  // Node ids are 1..brokers.
  std::vector<int> node_ids() const;
  std::string broker_address(int node_id) const;
  const KafkaClusterOptions& options() const { return options_; }

  bool running(int node_id);
  // SIGKILL: no controlled shutdown; leaderships move once the controller fences it.
  void kill(int node_id);
  // SIGTERM (controlled shutdown: leaderships move first), SIGKILL after 30 s.
  void stop(int node_id);
  // Starts a stopped or killed node again (same id, ports and data) and waits until it answers
  // metadata requests as a registered broker.
  void start(int node_id);
  void restart(int node_id);

  // CreateTopics through the admin API; -1 means the cluster's default. `configs` adds topic
  // settings (min.insync.replicas is set from the options unless given). Waits for leaders.
  void create_topic(const std::string& name, int partitions = -1, int replication_factor = -1,
                    const std::map<std::string, std::string>& configs = {});
  // The five topics of a PRPC queue (PROTOCOL.md section 1).
  void create_queue_topics(const std::string& queue, int partitions = -1);

  // The topic's settings as the brokers report them (DescribeConfigs), e.g.
  // topic_config(t)["min.insync.replicas"].
  std::map<std::string, std::string> topic_config(const std::string& topic);
  // The topic's partitions as some broker's metadata shows them now (empty when it does not
  // know the topic). The waits below ask every running broker.
  std::vector<KafkaPartitionState> describe(const std::string& topic);
  // The node id leading a partition now, or -1.
  int leader_of(const std::string& topic, int partition);
  // Every running broker's metadata shows, for every partition, a running leader and at least
  // `min_isr` running in-sync replicas. Throws on timeout.
  void wait_for_leaders(const std::string& topic, int min_isr = 1,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Every partition's ISR holds all its replicas again (after a restart).
  void wait_for_full_isr(const std::string& topic,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // The broker log (log4j, WARN and up) of one node.
  std::filesystem::path log_file(int node_id) const;

 private:
  struct Node;
  Node& node(int node_id);
  const Node& node(int node_id) const;
  void launch(Node& n);
  // Fills `out`; returns what failed, or "".
  std::string describe_topic_config(const std::string& topic,
                                    std::map<std::string, std::string>& out);
  std::string partition_problem(const std::string& topic, int min_isr, bool full);

  struct HandleFree {
    void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
  };

  KafkaClusterOptions options_;
  TempDir dir_{"prpc-kafka-cluster"};
  std::string classpath_;
  std::string bootstrap_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unique_ptr<rd_kafka_t, HandleFree> admin_;  // metadata and CreateTopics
};

}  // namespace prpc::testing
