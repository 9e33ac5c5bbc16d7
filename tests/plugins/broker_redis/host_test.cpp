// prpc-host processes serving over Redis: a server killed with SIGKILL in the middle of a call
// (another finishes it), two servers sharing a queue under load, and the raw protocol driven
// exactly as the seed shows it, with redis-cli only.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include "prpc/client.hpp"
#include "prpc/plugin_loader.hpp"
#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

using prpc::testing::ChildProcess;
using prpc::testing::TempDir;

class RedisHostTest : public ::testing::Test {
 protected:
  // Starts prpc-host serving the example functions on q_ and waits until it consumes.
  ChildProcess start_host(const std::string& name, const std::string& visibility = "1s") {
    auto config = dir_.path() / (name + ".toml");
    std::ofstream out(config);
    out << "[broker]\ntype = \"redis\"\nurl = \"" << redis_.url() << "\"\n"
        << "[broker.options]\nreconnect_min = \"20ms\"\nreconnect_max = \"200ms\"\n"
        << "[queue]\nname = \"" << q_ << "\"\n"
        << "[codec]\npython = \"rawjson\"\nraw = \"rawjson\"\n"
        << "[server]\nvisibility_timeout = \"" << visibility << "\"\ndrain_grace = \"1s\"\n"
        << "[executors.thread]\nworkers = 4\n"
        << "[functions]\nplugins = [\"example\"]\n";
    out.close();
    ChildProcess p = ChildProcess::start(
        {std::string(PRPC_TEST_BINARY_DIR) + "/bin/prpc-host", "--config", config.string()},
        dir_.path() / (name + ".log"));
    bool up = wait_until(
        [&] { return !p.running() || p.output().find("serving queue") != std::string::npos; }, 20s);
    if (!up || !p.running()) {
      throw std::runtime_error("prpc-host " + name + " did not start:\n" + p.output());
    }
    return p;
  }

  Client& client() {
    if (!client_) {
      auto broker = registry_.make_broker("redis", {{"url", redis_.url()}});
      auto codec = registry_.make_codec("rawjson", {});
      if (!broker.is_ok() || !codec.is_ok()) throw std::runtime_error("no broker or codec");
      client_ = std::make_unique<Client>(ClientOptions{q_, Flavour::kRaw}, *broker, *codec);
      Status s = client_->start();
      if (!s.is_ok()) throw std::runtime_error(s.to_string());
    }
    return *client_;
  }

  std::string cli(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"redis-cli", "-p", std::to_string(redis_.port())};
    argv.insert(argv.end(), args.begin(), args.end());
    auto log = dir_.path() / ("cli-" + std::to_string(++cli_runs_) + ".out");
    ChildProcess p = ChildProcess::start(argv, log);
    EXPECT_EQ(p.wait(20s), 0);
    std::string out = p.output();
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  }

  RedisServer redis_;
  TempDir dir_{"prpc-redis-host"};
  std::string q_ = unique_queue("host");
  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::unique_ptr<Client> client_;
  int cli_runs_ = 0;
};

TEST_F(RedisHostTest, ACallWhoseServerIsKilledIsFinishedByAnother) {
  ChildProcess a = start_host("a");
  ChildProcess b = start_host("b");
  Message m;
  m.func_name = "slow";
  m.func_args = "[1.5]";
  std::promise<Result<Message>> reply;
  client().call(m, 60s, [&](Result<Message> r) { reply.set_value(std::move(r)); });

  // Find the host running it from the pending entry's consumer name (host-pid-random).
  RedisClient c = redis_.client();
  std::string stream = protocol::request_stream(Flavour::kRaw, q_);
  std::string owner;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = c.command({"XPENDING", stream, "prpc_group_consumers", "-", "+", "10"});
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 1) return false;
        owner = std::string(r->element[0]->element[1]->str, r->element[0]->element[1]->len);
        return true;
      },
      10s));
  bool on_a = owner.find("-" + std::to_string(a.pid()) + "-") != std::string::npos;
  ChildProcess& victim = on_a ? a : b;
  ChildProcess& survivor = on_a ? b : a;
  ASSERT_TRUE(on_a || owner.find("-" + std::to_string(b.pid()) + "-") != std::string::npos)
      << owner;
  victim.signal(SIGKILL);
  EXPECT_EQ(victim.wait(10s), 128 + SIGKILL);

  auto fut = reply.get_future();
  ASSERT_EQ(fut.wait_for(60s), std::future_status::ready);
  auto r = fut.get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(r->failed());
  EXPECT_EQ(r->result, "1.5");
  EXPECT_TRUE(survivor.running());
  EXPECT_TRUE(wait_until([&] { return pending_count(c, stream) == 0; }, 10s));
}

TEST_F(RedisHostTest, TwoHostsShareAQueueUnderLoadEachCallRunsOnce) {
  ChildProcess a = start_host("a");
  ChildProcess b = start_host("b");
  RedisClient c = redis_.client();
  ASSERT_EQ(c.text({"CONFIG", "RESETSTAT"}), "OK");
  constexpr int kCalls = 2000;
  constexpr int kConcurrency = 64;
  std::atomic<int> ok{0}, finished{0}, issued{0};
  std::function<void()> next = [&] {
    int i = issued.fetch_add(1);
    if (i >= kCalls) return;
    Message m;
    m.func_name = "summ";
    m.func_args = "[" + std::to_string(i) + ", 1]";
    std::string expect = std::to_string(i + 1) + ".5";
    client().call(m, 60s, [&, expect](const Result<Message>& r) {
      if (r.is_ok() && !r->failed() && r->result == expect) ++ok;
      ++finished;
      next();
    });
  };
  for (int i = 0; i < kConcurrency; ++i) next();
  ASSERT_TRUE(wait_until([&] { return finished.load() == kCalls; }, 120s)) << finished.load();
  EXPECT_EQ(ok.load(), kCalls);
  // Every request's result was stored exactly once: no call ran twice, none was lost.
  std::string info = c.text({"INFO", "commandstats"});
  auto at = info.find("cmdstat_set:calls=");
  ASSERT_NE(at, std::string::npos) << info;
  EXPECT_EQ(std::stol(info.substr(at + 18)), kCalls) << info;
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kRaw, q_)), 0);
  auto consumers = c.command(
      {"XINFO", "CONSUMERS", protocol::request_stream(Flavour::kRaw, q_), "prpc_group_consumers"});
  EXPECT_EQ(consumers->elements, 2u);
  EXPECT_TRUE(a.running());
  EXPECT_TRUE(b.running());
}

TEST_F(RedisHostTest, TheRawProtocolWithRedisCliOnly) {
  ChildProcess host = start_host("raw");
  std::string id = new_uuid();
  std::string message = R"({"func_name": "hello_world", "func_args": [], "func_kwargs": {}, )"
                        R"("message_id": ")" +
                        id + R"("})";
  std::string entry = cli({"XADD", "prpc_raw_" + q_, "*", "message", message});
  EXPECT_NE(entry.find('-'), std::string::npos) << entry;
  std::string reply;
  ASSERT_TRUE(wait_until(
      [&] {
        reply = cli({"GET", "prpc_feedback_raw_" + q_ + "_" + id});
        return !reply.empty();
      },
      10s, 50ms));
  auto codec = registry_.make_codec("rawjson", {});
  ASSERT_TRUE(codec.is_ok());
  auto decoded = (*codec)->decode(reply);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string() << "\n" << reply;
  EXPECT_EQ(decoded->message_id, id);
  EXPECT_EQ(decoded->result, "\"hello_world\"");
  EXPECT_FALSE(decoded->failed());
  EXPECT_EQ(decoded->func_name, "hello_world");
  EXPECT_FALSE(decoded->date_done_message.empty());
  EXPECT_NE(reply.find("\"exception_info\": null"), std::string::npos) << reply;

  std::string id2 = new_uuid();
  cli({"XADD", "prpc_raw_" + q_, "*", "message",
       R"({"func_name": "summ", "func_args": [1, 2], "func_kwargs": {"z": 3}, "message_id": ")" +
           id2 + R"("})"});
  ASSERT_TRUE(wait_until(
      [&] {
        reply = cli({"GET", "prpc_feedback_raw_" + q_ + "_" + id2});
        return !reply.empty();
      },
      10s, 50ms));
  auto summed = (*codec)->decode(reply);
  ASSERT_TRUE(summed.is_ok()) << reply;
  EXPECT_EQ(summed->result, "6");
  long long ttl = std::stoll(cli({"PTTL", "prpc_feedback_raw_" + q_ + "_" + id2}));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 6LL * 3600 * 1000);
}

}  // namespace
}  // namespace prpc::redis::testing
