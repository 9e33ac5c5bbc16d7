// Self-test of the Redis Cluster fixture: the cluster it makes serves keys from the owner of
// their slot, redirects everyone else, keeps serving while slots move and after a master dies.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <set>
#include <string>
#include <thread>

#include "redis_cluster.hpp"
#include "redis_info.hpp"

namespace prpc::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

long long ms_since(steady_clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0).count();
}

int port_of(const std::string& address) {
  return std::stoi(address.substr(address.rfind(':') + 1));
}

// INCR through the cluster as a cluster-aware client does it: MOVED switches node, ASK asks
// the importing node once (ASKING first). `port` is the client's idea of the owner.
long long cluster_incr(RedisCluster& cluster, int& port, const std::string& key) {
  for (int hop = 0; hop < 16; ++hop) {
    auto r = cluster.client(port).command({"INCR", key});
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    std::string err(r->str, r->len);
    if (err.rfind("MOVED ", 0) == 0) {
      port = port_of(err);
      continue;
    }
    if (err.rfind("ASK ", 0) == 0) {
      auto target = cluster.client(port_of(err));
      target.command({"ASKING"});
      auto again = target.command({"INCR", key});
      if (again->type == REDIS_REPLY_INTEGER) return again->integer;
      continue;
    }
    if (err.rfind("TRYAGAIN", 0) == 0) continue;
    throw std::runtime_error("INCR " + key + ": " + err);
  }
  throw std::runtime_error("INCR " + key + ": too many redirections");
}

// A key whose slot is `slot` (found by trying names; 16384 slots, so quickly).
std::string key_in_slot(int slot, const std::string& prefix) {
  for (int i = 0;; ++i) {
    std::string key = prefix + std::to_string(i);
    if (redis_key_slot(key) == slot) return key;
  }
}

// Runs INCR on `key` in a thread until stopped; the final value must equal the successes.
class IncrTraffic {
 public:
  IncrTraffic(RedisCluster& cluster, std::string key) : cluster_(cluster), key_(std::move(key)) {
    port_ = cluster_.owner_of_key(key_);
    thread_ = std::thread([this] {
      while (!stop_) {
        try {
          cluster_incr(cluster_, port_, key_);
          ++done_;
        } catch (const std::exception& e) {
          error_ = e.what();
          failed_ = true;
          return;
        }
      }
    });
  }
  ~IncrTraffic() { finish(); }
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long long done() const { return done_; }
  bool failed() const { return failed_; }
  // Read after finish(): the thread writes it.
  const std::string& error() const { return error_; }

 private:
  RedisCluster& cluster_;
  std::string key_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<long long> done_{0};
  std::atomic<bool> failed_{false};
  std::string error_;
  std::thread thread_;
};

int slot_count(const RedisClusterNodeInfo& n) {
  int count = 0;
  for (const auto& [lo, hi] : n.slots) count += hi - lo + 1;
  return count;
}

TEST(RedisClusterFixture, ThreeMastersThreeReplicasCoverEverySlot) {
  auto t0 = steady_clock::now();
  RedisCluster cluster;
  std::cout << "cluster up in " << ms_since(t0) << " ms\n";
  ASSERT_EQ(cluster.ports().size(), 6u);
  ASSERT_EQ(cluster.seeds().size(), 6u);
  EXPECT_EQ(cluster.url().rfind("redis+cluster://127.0.0.1:", 0), 0u) << cluster.url();
  auto masters = cluster.masters();
  ASSERT_EQ(masters.size(), 3u);
  int covered = 0;
  for (const auto& n : cluster.nodes()) {
    if (n.master) covered += slot_count(n);
  }
  EXPECT_EQ(covered, kRedisClusterSlots);
  std::set<int> replicas;
  for (int m : masters) {
    auto r = cluster.replicas_of(m);
    ASSERT_EQ(r.size(), 1u) << "master " << m;
    replicas.insert(r.front());
    auto repl = cluster.client(r.front()).text({"INFO", "replication"});
    EXPECT_EQ(info_field(repl, "role"), "slave");
    EXPECT_EQ(info_field(repl, "master_port"), std::to_string(m));
    EXPECT_EQ(info_field(repl, "master_link_status"), "up");
  }
  EXPECT_EQ(replicas.size(), 3u);
  for (int p : cluster.ports()) {
    auto info = cluster.client(p).text({"CLUSTER", "INFO"});
    EXPECT_EQ(info_field(info, "cluster_state"), "ok") << "node " << p;
    EXPECT_EQ(info_field(info, "cluster_slots_ok"), "16384") << "node " << p;
    EXPECT_EQ(info_field(info, "cluster_known_nodes"), "6") << "node " << p;
  }
}

TEST(RedisClusterFixture, KeySlotMatchesTheServer) {
  RedisCluster cluster;
  EXPECT_EQ(redis_key_slot("123456789"), 0x31C3);  // CRC16/XMODEM check value
  auto c = cluster.client(cluster.ports().front());
  std::vector<std::string> keys = {"",
                                   "a",
                                   "foo",
                                   "prpc_raw_task_prpc",
                                   "prpc_feedback_raw_task_prpc_0123",
                                   "prcp_message_feedback_x",
                                   "{user1000}.following",
                                   "{user1000}.followers",
                                   "foo{}{bar}",
                                   "foo{{bar}}zap",
                                   "foo{bar}{zap}",
                                   "{bar",
                                   "bar}",
                                   std::string("\xff\x00\x80 binary", 10)};
  for (int i = 0; i < 300; ++i) keys.push_back("k" + std::to_string(i * 7919));
  for (const auto& key : keys) {
    EXPECT_EQ(redis_key_slot(key), c.integer({"CLUSTER", "KEYSLOT", key})) << key;
  }
  // The owner the fixture names accepts the key (any other node would answer MOVED).
  for (const auto& key : keys) {
    EXPECT_EQ(cluster.client(cluster.owner_of_key(key)).text({"SET", key, "x"}), "OK") << key;
  }
}

TEST(RedisClusterFixture, OwnerServesTheKeyOthersAnswerMoved) {
  RedisCluster cluster;
  TempDir tmp("prpc-cluster-cli");
  const std::string key = "prpc_raw_selftest";
  const int slot = redis_key_slot(key);
  const int owner = cluster.owner_of_key(key);
  EXPECT_EQ(cluster.client(owner).text({"SET", key, "v1"}), "OK");
  EXPECT_EQ(cluster.client(owner).get(key), "v1");
  int other = -1;
  for (int m : cluster.masters()) {
    if (m == owner) continue;
    other = m;
    EXPECT_EQ(cluster.client(m).text({"GET", key}),
              "MOVED " + std::to_string(slot) + " 127.0.0.1:" + std::to_string(owner));
  }
  ASSERT_NE(other, -1);
  // redis-cli -c follows the redirection, as any cluster-aware client would.
  auto get = run_program({"redis-cli", "-c", "-p", std::to_string(other), "GET", key},
                         tmp.path() / "get.log", std::chrono::seconds(30));
  EXPECT_EQ(get.exit_code, 0) << get.output;
  EXPECT_EQ(get.output, "v1\n");
  auto set = run_program({"redis-cli", "-c", "-p", std::to_string(other), "SET", key, "v2"},
                         tmp.path() / "set.log", std::chrono::seconds(30));
  EXPECT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(cluster.client(owner).get(key), "v2");
}

TEST(RedisClusterFixture, PasswordProtectsEveryNode) {
  RedisClusterOptions options;
  options.password = "s3cret";
  RedisCluster cluster(options);
  EXPECT_EQ(cluster.url().rfind("redis+cluster://:s3cret@127.0.0.1:", 0), 0u) << cluster.url();
  for (int p : cluster.ports()) {
    auto anonymous = RedisClient::tcp("127.0.0.1", p);
    EXPECT_EQ(anonymous.text({"PING"}).rfind("NOAUTH", 0), 0u) << "node " << p;
    EXPECT_EQ(cluster.client(p).text({"PING"}), "PONG");
  }
  // The replicas authenticated to their masters (masterauth): the cluster is healthy.
  EXPECT_TRUE(cluster.healthy());
}

TEST(RedisClusterFixture, MigrateSlotWhileTrafficRuns) {
  RedisCluster cluster;
  const std::string counter = "prpc_{moving}_counter";
  const int slot = redis_key_slot(counter);
  const int from = cluster.owner_of_slot(slot);
  int to = -1;
  for (int m : cluster.masters()) {
    if (m != from) to = m;
  }
  // Keys that move with the slot (same hash tag), a stream among them.
  auto c = cluster.client(from);
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(c.text({"SET", "prpc_{moving}_" + std::to_string(i), std::to_string(i)}), "OK");
  }
  ASSERT_EQ(c.command({"XADD", "prpc_raw_{moving}", "*", "message", "m"})->type,
            REDIS_REPLY_STRING);
  IncrTraffic traffic(cluster, counter);
  ASSERT_TRUE(wait_until([&] { return traffic.done() > 50 || traffic.failed(); },
                         std::chrono::seconds(10)));
  auto t0 = steady_clock::now();
  cluster.migrate_slot(slot, to);
  std::cout << "migrate_slot took " << ms_since(t0) << " ms\n";
  const long long before = traffic.done();
  ASSERT_TRUE(wait_until([&] { return traffic.done() > before + 50 || traffic.failed(); },
                         std::chrono::seconds(10)));
  traffic.finish();
  ASSERT_EQ(traffic.error(), "");
  EXPECT_EQ(cluster.owner_of_slot(slot), to);
  auto target = cluster.client(to);
  EXPECT_EQ(target.get(counter), std::to_string(traffic.done())) << "an INCR was lost or doubled";
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(target.get("prpc_{moving}_" + std::to_string(i)), std::to_string(i));
  }
  EXPECT_EQ(target.integer({"XLEN", "prpc_raw_{moving}"}), 1);
  EXPECT_EQ(cluster.client(from).text({"GET", counter}).rfind("MOVED", 0), 0u);
  EXPECT_TRUE(cluster.healthy());
}

TEST(RedisClusterFixture, ReshardWithRedisCliWhileTrafficRuns) {
  RedisCluster cluster;
  auto nodes = cluster.nodes();
  const RedisClusterNodeInfo* source = nullptr;
  const RedisClusterNodeInfo* target = nullptr;
  for (const auto& n : nodes) {
    if (!n.master || n.slots.empty()) continue;
    if (source == nullptr) {
      source = &n;
    } else if (target == nullptr) {
      target = &n;
    }
  }
  ASSERT_TRUE(source != nullptr && target != nullptr);
  // redis-cli moves the source's lowest slots first: put the busy key in the lowest one.
  const int lowest = source->slots.front().first;
  const std::string counter = key_in_slot(lowest, "prpc_counter_");
  const int source_slots = slot_count(*source);
  const int target_slots = slot_count(*target);
  IncrTraffic traffic(cluster, counter);
  ASSERT_TRUE(wait_until([&] { return traffic.done() > 50 || traffic.failed(); },
                         std::chrono::seconds(10)));
  auto t0 = steady_clock::now();
  cluster.reshard(source->port, target->port, 10);
  std::cout << "reshard of 10 slots took " << ms_since(t0) << " ms\n";
  const long long before = traffic.done();
  ASSERT_TRUE(wait_until([&] { return traffic.done() > before + 50 || traffic.failed(); },
                         std::chrono::seconds(10)));
  traffic.finish();
  ASSERT_EQ(traffic.error(), "");
  EXPECT_EQ(cluster.owner_of_slot(lowest), target->port);
  EXPECT_EQ(cluster.client(target->port).get(counter), std::to_string(traffic.done()));
  for (const auto& n : cluster.nodes()) {
    if (n.port == source->port) {
      EXPECT_EQ(slot_count(n), source_slots - 10);
    }
    if (n.port == target->port) {
      EXPECT_EQ(slot_count(n), target_slots + 10);
    }
  }
}

TEST(RedisClusterFailover, KilledMasterIsReplacedByItsReplicaAndRejoins) {
  RedisCluster cluster;
  TempDir tmp("prpc-cluster-cli");
  const std::string key = "prpc_raw_failover";
  const int owner = cluster.owner_of_key(key);
  auto replicas = cluster.replicas_of(owner);
  ASSERT_EQ(replicas.size(), 1u);
  auto c = cluster.client(owner);
  ASSERT_EQ(c.text({"SET", key, "before"}), "OK");
  ASSERT_EQ(c.integer({"WAIT", "1", "5000"}), 1) << "the write did not reach the replica";

  auto t0 = steady_clock::now();
  const int promoted = cluster.kill_master(owner);
  std::cout << "failover took " << ms_since(t0) << " ms\n";
  EXPECT_FALSE(cluster.running(owner));
  EXPECT_EQ(promoted, replicas.front());
  EXPECT_EQ(cluster.owner_of_key(key), promoted);
  auto p = cluster.client(promoted);
  EXPECT_EQ(info_field(p.text({"INFO", "replication"}), "role"), "master");
  EXPECT_EQ(p.get(key), "before");
  EXPECT_EQ(p.text({"SET", key, "after"}), "OK");
  for (int port : cluster.ports()) {
    if (!cluster.running(port)) continue;
    EXPECT_EQ(info_field(cluster.client(port).text({"CLUSTER", "INFO"}), "cluster_state"), "ok");
  }
  int other = -1;
  for (int m : cluster.masters()) {
    if (m != promoted) other = m;
  }
  auto get = run_program({"redis-cli", "-c", "-p", std::to_string(other), "GET", key},
                         tmp.path() / "get.log", std::chrono::seconds(30));
  EXPECT_EQ(get.output, "after\n");

  t0 = steady_clock::now();
  cluster.restart(owner);
  std::cout << "restart and rejoin took " << ms_since(t0) << " ms\n";
  EXPECT_TRUE(cluster.running(owner));
  auto back = cluster.client(owner);
  auto repl = back.text({"INFO", "replication"});
  EXPECT_EQ(info_field(repl, "role"), "slave");
  EXPECT_EQ(info_field(repl, "master_port"), std::to_string(promoted));
  EXPECT_EQ(info_field(repl, "master_link_status"), "up");
  EXPECT_EQ(back.text({"READONLY"}), "OK");
  EXPECT_EQ(back.get(key), "after");
  EXPECT_EQ(cluster.masters().size(), 3u);
}

}  // namespace
}  // namespace prpc::testing
