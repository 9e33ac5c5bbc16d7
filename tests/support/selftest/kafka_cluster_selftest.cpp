// Self-test of the 3-node Kafka fixture: a topic at replication factor 3 and
// min.insync.replicas=2 keeps taking acks=all writes and serving reads while one broker is
// SIGKILLed, and its ISR is whole again once the broker is back.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "kafka_client.hpp"
#include "kafka_cluster.hpp"

namespace prpc::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

long long ms_since(steady_clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0).count();
}

std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

TEST(KafkaClusterFailover, ReplicatedTopicSurvivesAKilledBroker) {
  auto t0 = steady_clock::now();
  KafkaCluster cluster;
  std::cout << "3-node cluster up in " << ms_since(t0) << " ms\n";
  ASSERT_EQ(cluster.node_ids(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(std::count(cluster.bootstrap().begin(), cluster.bootstrap().end(), ','), 2);

  const std::string topic = "prpc_selftest";
  cluster.create_topic(topic);
  auto parts = cluster.describe(topic);
  ASSERT_EQ(parts.size(), 3u);
  for (const auto& p : parts) {
    EXPECT_EQ(p.replicas.size(), 3u);
    EXPECT_EQ(p.isr.size(), 3u);
  }
  EXPECT_EQ(cluster.topic_config(topic)["min.insync.replicas"], "2");
  // Auto-created topics get the same defaults.
  const KafkaConfig client{{"bootstrap.servers", cluster.bootstrap()}};
  ASSERT_EQ(kafka_produce(client, "prpc_auto_created", {"x"}), "");
  for (const auto& p : cluster.describe("prpc_auto_created")) EXPECT_EQ(p.replicas.size(), 3u);
  EXPECT_EQ(cluster.topic_config("prpc_auto_created")["min.insync.replicas"], "2");

  ASSERT_EQ(kafka_produce(client, topic, numbered("a", 0, 100)), "");

  const int victim = cluster.leader_of(topic, 0);
  ASSERT_GE(victim, 1);
  t0 = steady_clock::now();
  cluster.kill(victim);
  cluster.wait_for_leaders(topic, 2);
  std::cout << "leaders moved off the killed broker in " << ms_since(t0) << " ms\n";
  EXPECT_FALSE(cluster.running(victim));
  for (const auto& p : cluster.describe(topic)) {
    EXPECT_NE(p.leader, victim);
    EXPECT_EQ(p.isr.size(), 2u);
    EXPECT_EQ(std::count(p.isr.begin(), p.isr.end(), victim), 0);
  }
  // acks=all still succeeds with 2 of 3 in sync, and nothing written before is lost.
  ASSERT_EQ(kafka_produce(client, topic, numbered("b", 0, 100)), "");
  auto read = kafka_consume(client, topic, 200);
  std::set<std::string> seen(read.begin(), read.end());
  EXPECT_EQ(read.size(), 200u);
  for (const auto& v : numbered("a", 0, 100)) EXPECT_EQ(seen.count(v), 1u) << v;
  for (const auto& v : numbered("b", 0, 100)) EXPECT_EQ(seen.count(v), 1u) << v;

  t0 = steady_clock::now();
  cluster.start(victim);
  cluster.wait_for_full_isr(topic);
  std::cout << "broker back and ISR full in " << ms_since(t0) << " ms\n";
  EXPECT_TRUE(cluster.running(victim));
  for (const auto& p : cluster.describe(topic)) {
    EXPECT_EQ(p.isr.size(), 3u);
    EXPECT_EQ(std::count(p.isr.begin(), p.isr.end(), victim), 1);
  }
  ASSERT_EQ(kafka_produce(client, topic, numbered("c", 0, 50)), "");
  // The restarted broker alone serves the whole topic's data (it caught up as a follower).
  cluster.kill(cluster.node_ids()[victim == 1 ? 1 : 0]);
  cluster.wait_for_leaders(topic, 2);
  EXPECT_EQ(kafka_consume(client, topic, 250).size(), 250u);
}

}  // namespace
}  // namespace prpc::testing
