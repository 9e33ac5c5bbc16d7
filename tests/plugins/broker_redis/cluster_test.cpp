// The Redis broker in a Redis Cluster (redis+cluster://...): every command goes to the master
// that owns its key's slot, the seed's key names are kept (a raw client that talks to the owner
// node is served), MOVED and ASK are followed while a slot migrates under traffic, a killed
// master's replica takes over, and ?shards=N spreads one queue over the masters. Real nodes
// (the RedisCluster fixture: 3 masters, 3 replicas).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "prpc/client.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/protocol.hpp"
#include "prpc/server.hpp"
#include "redis_cluster.hpp"
#include "redis_test_util.hpp"
#include "slots.hpp"

namespace prpc::redis::testing {
namespace {

using prpc::testing::redis_key_slot;
using prpc::testing::RedisClient;
using prpc::testing::RedisCluster;

template <typename T>
T make(Result<T> r) {
  if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
  return std::move(r).value();
}

class RedisClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    codec_ = make(registry_.make_codec("rawjson", {}));
    functions_ = make(registry_.make_functions("example", {}));
  }

  std::shared_ptr<Broker> broker(const std::string& query = "") {
    // A failover takes a few seconds: commands wait that long for the new master.
    OptionValues o{{"url", cluster_.url() + query},
                   {"reconnect_min", "20ms"},
                   {"reconnect_max", "200ms"},
                   {"reconnect_hold", "30s"},
                   {"liveness_timeout", "3s"}};
    return make(registry_.make_broker("redis", o));
  }

  std::unique_ptr<Server> start_server(const std::string& query = "") {
    ServerOptions options;
    options.queue = q_;
    auto executor = make(registry_.make_executor("thread", {{"workers", "4"}}, functions_));
    executors_.push_back(executor);
    auto server = std::make_unique<Server>(options, broker(query), codec_, codec_, functions_,
                                           ExecutorMap{{"thread", executor}});
    Status s = server->start();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return server;
  }

  Result<Message> call(Client& c, const std::string& func, const std::string& args,
                       std::chrono::milliseconds timeout = 60s) {
    Message m;
    m.func_name = func;
    m.func_args = args;
    return c.call_sync(std::move(m), timeout);
  }

  // `count` echo calls from `callers` threads at once; returns how many came back right.
  int echo_burst(Client& c, int callers, int count, int base) {
    std::atomic<int> right{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < callers; ++t) {
      threads.emplace_back([&, t] {
        for (int i = t; i < count; i += callers) {
          auto r = call(c, "echo", "[" + std::to_string(base + i) + "]");
          if (r.is_ok() && r->result == std::to_string(base + i)) {
            ++right;
          } else {
            ADD_FAILURE() << (base + i) << ": " << (r.is_ok() ? r->result : r.status().to_string());
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    return right.load();
  }

  RedisCluster cluster_;
  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::string q_ = unique_queue();
  std::shared_ptr<Codec> codec_;
  std::shared_ptr<FunctionTable> functions_;
  std::vector<std::shared_ptr<Executor>> executors_;
};

TEST_F(RedisClusterTest, ServesWithTheSeedsNamesOnTheOwningMasters) {
  auto server = start_server();
  Client c(ClientOptions{q_, Flavour::kRaw}, broker(), codec_);
  ASSERT_TRUE(c.start().is_ok());
  auto r = call(c, "summ", "[1, 2]");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->result, "3.5");
  std::string stream = protocol::request_stream(Flavour::kRaw, q_);
  RedisClient owner = cluster_.client(cluster_.owner_of_key(stream));
  EXPECT_EQ(owner.integer({"EXISTS", stream}), 1);

  // A raw client in another language, talking to the owner node of each key, as `redis-cli -c`
  // would: XADD to prpc_raw_{q}, then GET prpc_feedback_raw_{q}_{id} where that key lives.
  std::string id = "6f1c2e0a-5b7d-4c3e-9a1f-0d2b3c4e5f60";
  owner.command({"XADD", stream, "*", "message",
                 R"({"func_name": "summ", "func_args": [2, 2], "message_id": ")" + id + R"("})"});
  std::string key = protocol::result_key(Flavour::kRaw, q_, id);
  RedisClient result_owner = cluster_.client(cluster_.owner_of_key(key));
  std::optional<std::string> stored;
  for (int i = 0; i < 500 && !stored; ++i) {
    stored = result_owner.get(key);
    if (!stored) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(stored.has_value()) << "no result under " << key;
  EXPECT_NE(stored->find("4.5"), std::string::npos) << *stored;

  // A malformed request is dead-lettered on the dead-letter stream's own master (a cluster
  // finish writes each key on its node, then acknowledges).
  owner.command({"XADD", stream, "*", "message",
                 R"({"func_name": "summ", "func_args": [1], "message_id": "not-a-uuid"})"});
  std::string dead = protocol::dead_letter_stream(q_);
  RedisClient dead_owner = cluster_.client(cluster_.owner_of_key(dead));
  for (int i = 0; i < 500 && dead_owner.integer({"XLEN", dead}) == 0; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(dead_owner.integer({"XLEN", dead}), 1);
  prpc::testing::RedisReplyPtr entries = dead_owner.command({"XRANGE", dead, "-", "+"});
  ASSERT_EQ(entries->elements, 1u);
  std::string fields;
  const redisReply* values = entries->element[0]->element[1];
  for (std::size_t i = 0; i < values->elements; ++i) {
    fields += std::string(values->element[i]->str, values->element[i]->len) + "|";
  }
  EXPECT_NE(fields.find("reason|"), std::string::npos) << fields;
  EXPECT_NE(fields.find("UUID"), std::string::npos) << fields;
  EXPECT_NE(fields.find("stream|" + stream + "|"), std::string::npos) << fields;
  EXPECT_NE(fields.find("flavour|raw|"), std::string::npos) << fields;
  // Then acknowledged (after the dead letter's XADD): nothing left pending.
  auto pending = [&] {
    return owner.command({"XPENDING", stream, "prpc_group_consumers"})->element[0]->integer;
  };
  for (int i = 0; i < 500 && pending() != 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(pending(), 0);
}

TEST_F(RedisClusterTest, FollowsAskAndMovedWhileTheStreamsSlotMigrates) {
  auto server = start_server();
  Client c(ClientOptions{q_, Flavour::kRaw}, broker(), codec_);
  ASSERT_TRUE(c.start().is_ok());
  ASSERT_EQ(echo_burst(c, 4, 40, 0), 40);
  std::string stream = protocol::request_stream(Flavour::kRaw, q_);
  int slot = redis_key_slot(stream);
  int from = cluster_.owner_of_slot(slot);
  int to = 0;
  for (int m : cluster_.masters()) {
    if (m != from) to = m;
  }
  std::atomic<int> right{0};
  std::thread traffic([&] { right = echo_burst(c, 8, 400, 1000); });
  cluster_.migrate_slot(slot, to);
  traffic.join();
  EXPECT_EQ(right.load(), 400);
  EXPECT_EQ(cluster_.owner_of_slot(slot), to);
  EXPECT_EQ(cluster_.client(to).integer({"EXISTS", stream}), 1);
  ASSERT_EQ(echo_burst(c, 4, 40, 5000), 40);
}

TEST_F(RedisClusterTest, KeepsServingAfterTheStreamsMasterIsKilled) {
  auto server = start_server();
  Client c(ClientOptions{q_, Flavour::kRaw}, broker(), codec_);
  ASSERT_TRUE(c.start().is_ok());
  ASSERT_EQ(echo_burst(c, 4, 40, 0), 40);
  std::string stream = protocol::request_stream(Flavour::kRaw, q_);
  int old_master = cluster_.owner_of_key(stream);
  int promoted = cluster_.kill_master(old_master);
  ASSERT_NE(promoted, old_master);
  // Both the server's and the client's connections find the promoted replica.
  ASSERT_EQ(echo_burst(c, 4, 60, 100), 60);
  EXPECT_EQ(cluster_.owner_of_key(stream), promoted);
  cluster_.restart(old_master);  // back as a replica: nobody writes to it
  ASSERT_EQ(echo_burst(c, 4, 20, 200), 20);
  EXPECT_GE(server->stats().succeeded, 120u);
}

TEST_F(RedisClusterTest, ShardsSpreadOneQueueOverTheMasters) {
  auto server = start_server("?shards=3");
  Client c(ClientOptions{q_, Flavour::kRaw}, broker("?shards=3"), codec_);
  ASSERT_TRUE(c.start().is_ok());
  ASSERT_EQ(echo_burst(c, 6, 90, 0), 90);
  std::set<int> owners;
  std::string stream = protocol::request_stream(Flavour::kRaw, q_);
  for (int shard = 0; shard < 3; ++shard) {
    std::string name = details::shard_stream(stream, shard, 3);
    int owner = cluster_.owner_of_key(name);
    owners.insert(owner);
    // Round robin: each shard carried a third of the calls.
    EXPECT_EQ(cluster_.client(owner).integer({"XLEN", name}), 30) << name;
  }
  EXPECT_EQ(owners.size(), 3u) << "the shards share a master";
  // A client without shards publishes to shard 0 only, which the server reads too.
  Client plain(ClientOptions{q_, Flavour::kRaw}, broker(), codec_);
  ASSERT_TRUE(plain.start().is_ok());
  ASSERT_EQ(echo_burst(plain, 2, 10, 500), 10);
}

}  // namespace
}  // namespace prpc::redis::testing
