// The Redis broker behind Redis Sentinel (redis+sentinel://...): it asks the sentinels for the
// master, serves through it, and after the master is SIGKILLed and a replica promoted it finds
// the new master and keeps serving, the engines included. Real sentinels (the RedisSentinel
// fixture: a master, a replica, three sentinels).
#include <gtest/gtest.h>

#include "prpc/client.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"
#include "redis_sentinel.hpp"
#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

using prpc::testing::RedisSentinel;

template <typename T>
T make(Result<T> r) {
  if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
  return std::move(r).value();
}

class RedisSentinelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    codec_ = make(registry_.make_codec("rawjson", {}));
    functions_ = make(registry_.make_functions("example", {}));
  }

  std::shared_ptr<Broker> broker(OptionMap extra = {}) {
    // A failover takes a few seconds: commands wait for the new master that long.
    OptionValues o{{"url", sentinel_.url()},
                   {"reconnect_min", "20ms"},
                   {"reconnect_max", "200ms"},
                   {"reconnect_hold", "30s"},
                   {"liveness_timeout", "3s"}};
    for (auto& [k, v] : extra) o[k] = v;
    return make(registry_.make_broker("redis", o));
  }

  std::unique_ptr<Server> start_server() {
    ServerOptions options;
    options.queue = q_;
    auto executor = make(registry_.make_executor("thread", {{"workers", "4"}}, functions_));
    executors_.push_back(executor);
    auto server = std::make_unique<Server>(options, broker(), codec_, codec_, functions_,
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

  RedisSentinel sentinel_;
  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::string q_ = unique_queue();
  std::shared_ptr<Codec> codec_;
  std::shared_ptr<FunctionTable> functions_;
  std::vector<std::shared_ptr<Executor>> executors_;
};

TEST_F(RedisSentinelTest, ServesThroughTheMasterTheSentinelsName) {
  auto server = start_server();
  Client c(ClientOptions{q_, Flavour::kRaw}, broker(), codec_);
  ASSERT_TRUE(c.start().is_ok());
  auto r = call(c, "summ", "[1, 2]");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->result, "3.5");
  // The request stream lives on the master the sentinels named.
  RedisClient master = sentinel_.client(sentinel_.master_port());
  EXPECT_EQ(master.command({"EXISTS", protocol::request_stream(Flavour::kRaw, q_)})->integer, 1);
}

TEST_F(RedisSentinelTest, KeepsServingAfterTheMasterIsKilledAndAReplicaPromoted) {
  auto server = start_server();
  Client c(ClientOptions{q_, Flavour::kRaw}, broker(), codec_);
  ASSERT_TRUE(c.start().is_ok());
  for (int i = 0; i < 20; ++i) {
    auto r = call(c, "echo", "[" + std::to_string(i) + "]");
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
  int old_master = sentinel_.master_port();
  int new_master = sentinel_.kill_master();
  ASSERT_NE(new_master, old_master);
  // Both the server's and the client's connections find the promoted replica.
  for (int i = 0; i < 20; ++i) {
    auto r = call(c, "echo", "[" + std::to_string(100 + i) + "]");
    ASSERT_TRUE(r.is_ok()) << i << ": " << r.status().to_string();
    EXPECT_EQ(r->result, std::to_string(100 + i));
  }
  RedisClient master = sentinel_.client(new_master);
  EXPECT_EQ(master.command({"EXISTS", protocol::request_stream(Flavour::kRaw, q_)})->integer, 1);
  // The old master comes back as a replica: nobody writes to it.
  sentinel_.restart(old_master);
  for (int i = 0; i < 10; ++i) {
    auto r = call(c, "echo", "[" + std::to_string(200 + i) + "]");
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
  EXPECT_GE(server->stats().succeeded, 50u);
}

TEST_F(RedisSentinelTest, NoSentinelAnsweringIsAClearError) {
  auto b = make(registry_.make_broker(
      "redis", {{"url", "redis+sentinel://127.0.0.1:1,127.0.0.1:2/" + sentinel_.master_name()},
                {"connect_timeout", "2s"}}));
  Status s = b->connect();
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("no sentinel named the master"), std::string::npos) << s.to_string();
  std::string sentinels;
  for (const std::string& a : sentinel_.sentinel_addresses()) {
    sentinels += (sentinels.empty() ? "" : ",") + a;
  }
  auto unknown = make(registry_.make_broker(
      "redis",
      {{"url", "redis+sentinel://" + sentinels + "/nosuchmaster"}, {"connect_timeout", "2s"}}));
  Status u = unknown->connect();
  EXPECT_FALSE(u.is_ok());
  EXPECT_NE(u.message().find("does not know the master"), std::string::npos) << u.to_string();
}

}  // namespace
}  // namespace prpc::redis::testing
