// Self-test of the Redis Sentinel fixture: the sentinels agree on the master, replace it with
// its replica when it is SIGKILLed, and the new master takes writes; the old one rejoins as a
// replica and can be promoted in turn.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "redis_info.hpp"
#include "redis_sentinel.hpp"

namespace prpc::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

long long ms_since(steady_clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0).count();
}

TEST(RedisSentinelFailover, SentinelsNameTheReplicaAfterTheMasterIsKilled) {
  auto t0 = steady_clock::now();
  RedisSentinelOptions options;
  options.master_name = "prpc-master";
  RedisSentinel sentinel(options);
  std::cout << "sentinel set-up ready in " << ms_since(t0) << " ms\n";

  ASSERT_EQ(sentinel.sentinel_addresses().size(), 3u);
  ASSERT_EQ(sentinel.data_ports().size(), 2u);
  EXPECT_EQ(sentinel.url(2).rfind("redis+sentinel://127.0.0.1:", 0), 0u);
  EXPECT_NE(sentinel.url(2).find("/prpc-master/2"), std::string::npos) << sentinel.url(2);
  const int first = sentinel.data_ports()[0];
  const int second = sentinel.data_ports()[1];
  for (int named : sentinel.master_port_per_sentinel()) EXPECT_EQ(named, first);
  EXPECT_EQ(sentinel.master_port(), first);
  auto master = sentinel.client(first);
  ASSERT_EQ(master.text({"SET", "prpc_k", "before"}), "OK");
  ASSERT_EQ(master.integer({"WAIT", "1", "5000"}), 1);
  EXPECT_EQ(info_field(sentinel.client(second).text({"INFO", "replication"}), "role"), "slave");
  EXPECT_EQ(sentinel.client(second).text({"SET", "prpc_k", "x"}).rfind("READONLY", 0), 0u);

  t0 = steady_clock::now();
  const int promoted = sentinel.kill_master();
  std::cout << "failover took " << ms_since(t0) << " ms\n";
  EXPECT_FALSE(sentinel.running(first));
  EXPECT_EQ(promoted, second);
  for (int named : sentinel.master_port_per_sentinel()) EXPECT_EQ(named, second);
  auto now_master = sentinel.client(second);
  EXPECT_EQ(info_field(now_master.text({"INFO", "replication"}), "role"), "master");
  EXPECT_EQ(now_master.get("prpc_k"), "before");
  EXPECT_EQ(now_master.text({"SET", "prpc_k", "after"}), "OK");

  // The old master comes back as a replica of the new one, with its data. (On a loaded machine
  // the sentinels may fail over once more while it syncs, when the master answers no PING for
  // down-after-milliseconds: then the roles are swapped, and the checks follow the master the
  // sentinels name.)
  t0 = steady_clock::now();
  sentinel.restart(first);
  std::cout << "old master rejoined as a replica in " << ms_since(t0) << " ms\n";
  const int current = sentinel.master_port();
  EXPECT_TRUE(current == second || current == first) << current;
  const int replica = current == second ? first : second;
  auto follower = sentinel.client(replica);
  EXPECT_TRUE(wait_until(
      [&] {
        auto repl = follower.text({"INFO", "replication"});
        return info_field(repl, "role") == "slave" &&
               info_field(repl, "master_port") == std::to_string(current);
      },
      std::chrono::seconds(10)));
  EXPECT_TRUE(
      wait_until([&] { return follower.get("prpc_k") == "after"; }, std::chrono::seconds(10)));

  // And it can take over in turn.
  t0 = steady_clock::now();
  EXPECT_EQ(sentinel.kill_master(), replica);
  std::cout << "second failover took " << ms_since(t0) << " ms\n";
  EXPECT_EQ(sentinel.client(replica).text({"SET", "prpc_k", "third"}), "OK");
}

}  // namespace
}  // namespace prpc::testing
