// Kafka services for tests: librdkafka's mock cluster in a helper process (fast, with fault
// injection), and a real Apache Kafka 3.9.1 broker in KRaft combined mode (from the Maven jars
// that scripts/deps.sh fetches). Both listen on free loopback ports and are ready when the
// constructor returns (a metadata answer was received; no sleeps).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "process.hpp"

namespace prpc::testing {

// Polls the cluster's metadata until it answers with at least one broker.
bool wait_for_kafka(const std::string& bootstrap, std::chrono::milliseconds timeout);
// The same with any librdkafka options (bootstrap.servers, security settings), until the
// metadata lists at least `min_brokers` brokers.
bool wait_for_kafka(const std::map<std::string, std::string>& config,
                    std::chrono::milliseconds timeout, int min_brokers = 1);

// Writes `payloads` to one partition inside a transaction that is then aborted: the records and
// the abort marker take offsets that a read_committed consumer never sees (a hole in the offsets).
// Returns an empty string, or what failed.
std::string produce_aborted_transaction(const std::string& bootstrap, const std::string& topic,
                                        int partition, const std::vector<std::string>& payloads);

// The five topic names of a queue (PROTOCOL.md section 1).
std::vector<std::string> kafka_queue_topics(const std::string& queue);

// prpc-kafka-mock as a child process; commands go to its stdin (see mock_main.cpp).
class KafkaMockCluster {
 public:
  explicit KafkaMockCluster(int brokers = 1);
  ~KafkaMockCluster();
  KafkaMockCluster(const KafkaMockCluster&) = delete;
  KafkaMockCluster& operator=(const KafkaMockCluster&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }

  // Sends one command line; returns the helper's answer ("ok" or "error ...").
  std::string command(const std::string& line);
  // The mock cluster has no CreateTopics API: tests create the queue's topics up front.
  void create_topic(const std::string& name, int partitions);
  void create_queue_topics(const std::string& queue, int partitions);
  void broker_down(int broker = -1);
  void broker_up(int broker = -1);
  void set_rtt(int broker, int ms);
  // Fails the next `count` requests of `api` ("Produce", "OffsetCommit", ...) with `error`.
  void push_errors(const std::string& api, const std::string& error, int count);

 private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  std::FILE* from_child_ = nullptr;
  std::string bootstrap_;
};

// A real Apache Kafka broker (KRaft, broker and controller in one JVM). Restartable in place:
// the same ports and log directory.
class KafkaServer {
 public:
  KafkaServer();
  ~KafkaServer();
  KafkaServer(const KafkaServer&) = delete;
  KafkaServer& operator=(const KafkaServer&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  void stop();   // SIGTERM, then SIGKILL after a grace period
  void start();  // after stop(): the same data and ports, ready on return
  const std::filesystem::path& log_file() const { return log_file_; }

 private:
  void launch();
  TempDir dir_{"prpc-kafka"};
  std::string classpath_;
  std::string bootstrap_;
  std::filesystem::path log_file_;
  ChildProcess process_;
};

// The broker's class path (tests/support/kafka/kafka-classpath.sh). Throws when the jars are not
// in the local Maven repository.
std::string kafka_classpath();

}  // namespace prpc::testing
