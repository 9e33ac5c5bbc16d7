// The core engines (prpc::Server, prpc::Client) over the Redis broker, every part loaded as a
// plugin: calls in both flavours, deduplicated redeliveries, dead letters after N deliveries,
// malformed entries, long calls kept by touch, drain, back-pressure, many concurrent calls.
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "prpc/client.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"
#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

class RedisEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    codec_ = make(registry_.make_codec("rawjson", {}));
    lenient_ = make(registry_.make_codec("rawjson", {{"require_uuid", "false"}}));
    functions_ = make(registry_.make_functions("example", {}));
  }

  template <typename T>
  static T make(Result<T> r) {
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  std::shared_ptr<Broker> broker() {
    return make(registry_.make_broker(
        "redis", {{"url", redis_.url()}, {"reconnect_min", "20ms"}, {"reconnect_max", "200ms"}}));
  }

  std::unique_ptr<Server> start_server(ServerOptions options = {}, int workers = 4) {
    options.queue = q_;
    auto executor =
        make(registry_.make_executor("thread", {{"workers", std::to_string(workers)}}, functions_));
    executors_.push_back(executor);
    auto server = std::make_unique<Server>(options, broker(), codec_, codec_, functions_,
                                           ExecutorMap{{"thread", executor}});
    Status s = server->start();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return server;
  }

  Client& client(Flavour flavour = Flavour::kRaw) {
    auto& slot = flavour == Flavour::kRaw ? raw_client_ : python_client_;
    if (!slot) {
      slot = std::make_unique<Client>(ClientOptions{q_, flavour}, broker(), codec_);
      Status s = slot->start();
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    }
    return *slot;
  }

  Message call(std::string func, std::string args = "[]", Flavour flavour = Flavour::kRaw,
               std::chrono::milliseconds timeout = 15s) {
    Message m;
    m.func_name = std::move(func);
    m.func_args = std::move(args);
    auto r = client(flavour).call_sync(std::move(m), timeout);
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  // XADD straight into the stream, as a program in another language would.
  void xadd(const std::vector<std::string>& fields, Flavour f = Flavour::kRaw) {
    std::vector<std::string> args{"XADD", protocol::request_stream(f, q_), "*"};
    args.insert(args.end(), fields.begin(), fields.end());
    RedisClient c = redis_.client();
    auto r = c.command(args);
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
  }
  void xadd_message(const std::string& payload, Flavour f = Flavour::kRaw) {
    xadd({"message", payload}, f);
  }

  std::optional<Message> stored(const std::string& id, Flavour f = Flavour::kRaw) {
    RedisClient c = redis_.client();
    auto payload = c.get(protocol::result_key(f, q_, id));
    if (!payload) return std::nullopt;
    auto decoded = lenient_->decode(*payload);
    if (!decoded.is_ok()) return std::nullopt;
    return *decoded;
  }

  QueueStats stats() {
    if (!ops_) ops_ = broker();
    return make(ops_->queue_stats(q_));
  }

  // Makes a request pending under a consumer that is gone, delivered `times` times.
  void strand(const std::string& payload, std::uint32_t times) {
    RedisClient c = redis_.client();
    std::string stream = protocol::request_stream(Flavour::kRaw, q_);
    c.command({"XGROUP", "CREATE", stream, "prpc_group_consumers", "0", "MKSTREAM"});
    auto id = c.command({"XADD", stream, "*", "message", payload});
    c.command({"XREADGROUP", "GROUP", "prpc_group_consumers", "gone", "COUNT", "1", "STREAMS",
               stream, ">"});
    if (times > 1) {
      c.command({"XCLAIM", stream, "prpc_group_consumers", "gone", "0",
                 std::string(id->str, id->len), "RETRYCOUNT", std::to_string(times)});
    }
  }

  RedisServer redis_;
  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::string q_ = unique_queue("engine");
  std::shared_ptr<Codec> codec_, lenient_;
  std::shared_ptr<FunctionTable> functions_;
  std::vector<std::shared_ptr<Executor>> executors_;
  std::unique_ptr<Client> raw_client_, python_client_;
  std::shared_ptr<Broker> ops_;
};

TEST_F(RedisEngineTest, CallsEndToEndInBothFlavours) {
  auto server = start_server();
  EXPECT_EQ(call("summ", "[1, 2.5]").result, "4.0");
  EXPECT_EQ(call("hello_world").result, "\"hello_world\"");
  EXPECT_EQ(call("ping").result, "\"pong\"");
  Message py = call("summ", "[1, 2]", Flavour::kPython);
  EXPECT_EQ(py.result, "3.5");
  EXPECT_TRUE(stored(py.message_id, Flavour::kPython).has_value());
  Message failed = call("fail", R"(["boom", "KeyError"])");
  ASSERT_TRUE(failed.failed());
  EXPECT_EQ(*failed.exception_info, "KeyError: boom");
  Message unknown = call("nope");
  ASSERT_TRUE(unknown.failed());
  EXPECT_EQ(unknown.exception_info->rfind("UnknownFunctionError", 0), 0u);
  EXPECT_EQ(stats().pending, 0);
}

TEST_F(RedisEngineTest, ARedeliveryWhoseResultExistsIsNotRunAgain) {
  // The request was run and its result stored, but the ack was lost with its server.
  std::string id = new_uuid();
  strand(R"({"func_name": "summ", "func_args": [1, 1], "message_id": ")" + id + R"("})", 1);
  RedisClient c = redis_.client();
  c.command({"SET", protocol::result_key(Flavour::kRaw, q_, id),
             R"({"func_name": "summ", "func_args": [1, 1], "func_kwargs": {}, "message_id": ")" +
                 id + R"(", "result": 999, "exception_info": null})"});
  ServerOptions options;
  options.visibility_timeout = 300ms;
  auto server = start_server(options);
  ASSERT_TRUE(wait_until([&] { return server->stats().deduplicated == 1; }, 10s));
  EXPECT_EQ(server->stats().succeeded, 0u);
  EXPECT_EQ(stored(id)->result, "999") << "the stored result stands";
  EXPECT_TRUE(wait_until([&] { return stats().pending == 0; }, 5s));
}

TEST_F(RedisEngineTest, ARequestDeliveredTooOftenIsDeadLetteredAndItsCallerAnswered) {
  std::string id = new_uuid();
  strand(R"({"func_name": "hello_world", "message_id": ")" + id + R"("})", 3);
  ServerOptions options;
  options.visibility_timeout = 200ms;
  options.max_deliveries = 3;
  auto server = start_server(options);
  ASSERT_TRUE(wait_until([&] { return stored(id).has_value(); }, 10s));
  Message reply = *stored(id);
  ASSERT_TRUE(reply.failed());
  EXPECT_EQ(reply.exception_info->rfind("DeadLetterError: delivered 4 times", 0), 0u)
      << *reply.exception_info;
  QueueStats s = stats();
  EXPECT_EQ(s.dead_letters, 1);
  EXPECT_EQ(s.pending, 0);
  auto letters = make(broker()->dead_letters(q_, 10));
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_NE(letters[0].reason.find("delivered 4 times"), std::string::npos);
  EXPECT_NE(letters[0].payload.find(id), std::string::npos);
}

// The operator's way out: two requests dead-lettered after too many deliveries (each with its
// error result stored), the cause gone, one requeued by id and then the rest. Each is served
// again, not answered from the stored error, and leaves the dead letters; the broker is the
// plugin, so this also runs the ABI path of requeue_dead_letters.
TEST_F(RedisEngineTest, RequeuedDeadLettersAreServedAgain) {
  auto ops = broker();
  EXPECT_EQ(make(ops->requeue_dead_letters(q_, {})), 0u) << "nothing dead yet";
  std::string first = new_uuid(), second = new_uuid();
  strand(R"({"func_name": "hello_world", "message_id": ")" + first + R"("})", 3);
  strand(R"({"func_name": "summ", "func_args": [2, 3, 4], "message_id": ")" + second + R"("})", 3);
  ServerOptions options;
  options.visibility_timeout = 200ms;
  options.max_deliveries = 3;
  auto server = start_server(options);
  ASSERT_TRUE(wait_until([&] { return stored(first) && stored(second); }, 10s));
  ASSERT_TRUE(stored(first)->failed());
  ASSERT_TRUE(stored(second)->failed());
  auto letters = make(ops->dead_letters(q_, 10));
  ASSERT_EQ(letters.size(), 2u);
  std::string first_letter =
      letters[0].payload.find(first) != std::string::npos ? letters[0].id : letters[1].id;

  std::vector<std::string> one{first_letter, "0-1", "not an id"};  // unknown ids are skipped
  EXPECT_EQ(make(ops->requeue_dead_letters(q_, one)), 1u);
  ASSERT_TRUE(wait_until([&] { return stored(first) && !stored(first)->failed(); }, 10s));
  EXPECT_EQ(stored(first)->result, "\"hello_world\"");
  EXPECT_TRUE(stored(second)->failed()) << "the other one stays dead";
  letters = make(ops->dead_letters(q_, 10));
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_NE(letters[0].payload.find(second), std::string::npos);

  EXPECT_EQ(make(ops->requeue_dead_letters(q_, {})), 1u);
  ASSERT_TRUE(wait_until([&] { return stored(second) && !stored(second)->failed(); }, 10s));
  EXPECT_EQ(stored(second)->result, "9");
  EXPECT_EQ(server->stats().succeeded, 2u);
  QueueStats s = stats();
  EXPECT_EQ(s.dead_letters, 0);
  EXPECT_TRUE(wait_until([&] { return stats().pending == 0; }, 5s));
  EXPECT_EQ(make(ops->requeue_dead_letters(q_, {})), 0u);
}

TEST_F(RedisEngineTest, MalformedEntriesAreDeadLetteredAnsweredAndServingGoesOn) {
  ServerOptions options;
  options.max_message_bytes = std::size_t{1} << 20;
  auto server = start_server(options);
  std::string wrong_type = new_uuid();
  std::string bad_utf8 = new_uuid();
  std::string large = new_uuid();
  xadd({"colour", "blue"});                                                    // no `message`
  xadd_message("this is not json");                                            // invalid JSON
  xadd_message(R"({"func_name": 5, "message_id": ")" + wrong_type + R"("})");  // wrong type
  xadd_message("{\"message_id\": \"" + bad_utf8 +
               "\", \"func_name\": \"echo\", \"func_args\": [\"\xff\xfe\"]}");  // bad UTF-8
  xadd_message(R"({"message_id": ")" + large + R"(", "func_name": "echo", "func_args": [")" +
               std::string(2u << 20, 'x') + R"("]})");  // over the server's limit
  xadd_message(R"({"message_id": ")" + new_uuid() + R"(", "func_name": "echo", "func_args": [")" +
               std::string(64u << 20, 'x') + R"("]})");  // 64 MB: over every limit
  ASSERT_TRUE(wait_until([&] { return stats().dead_letters == 6; }, 60s)) << stats().dead_letters;

  // Answered wherever the message_id can be read.
  auto typed = stored(wrong_type);
  ASSERT_TRUE(typed.has_value());
  EXPECT_EQ(*typed->exception_info, "DecodeError: func_name: expected string, got number");
  auto utf = stored(bad_utf8);
  ASSERT_TRUE(utf.has_value());
  ASSERT_TRUE(utf->failed());
  EXPECT_NE(utf->exception_info->find("Invalid encoding"), std::string::npos)
      << *utf->exception_info;
  auto big = stored(large);
  ASSERT_TRUE(big.has_value());
  EXPECT_NE(big->exception_info->find("exceeds the limit"), std::string::npos)
      << *big->exception_info;

  auto letters = make(broker()->dead_letters(q_, 10));
  ASSERT_EQ(letters.size(), 6u);
  EXPECT_NE(letters[0].reason.find("no 'message' field"), std::string::npos) << letters[0].reason;
  EXPECT_EQ(letters[1].payload, "this is not json");
  EXPECT_NE(letters[3].reason.find("Invalid encoding"), std::string::npos) << letters[3].reason;
  EXPECT_NE(letters[5].reason.find("exceeds the limit"), std::string::npos) << letters[5].reason;
  EXPECT_EQ(stats().pending, 0);
  EXPECT_EQ(call("ping").result, "\"pong\"");
}

TEST_F(RedisEngineTest, ALongCallIsTouchedAndRunsOnce) {
  ServerOptions options;
  options.visibility_timeout = 300ms;
  auto a = start_server(options);
  auto b = start_server(options);
  Message r = call("slow", "[1.5]");
  EXPECT_EQ(r.result, "1.5");
  EXPECT_EQ(a->stats().received + b->stats().received, 1u);
  EXPECT_EQ(a->stats().deduplicated + b->stats().deduplicated, 0u);
}

TEST_F(RedisEngineTest, CallsLeftByAStoppedServerAreFinishedByAnother) {
  ServerOptions options;
  options.visibility_timeout = 300ms;
  auto first = start_server(options);
  Message m;
  m.func_name = "slow";
  m.func_args = "[0.8]";
  std::promise<Result<Message>> reply;
  client().call(m, 15s, [&](Result<Message> r) { reply.set_value(std::move(r)); });
  ASSERT_TRUE(wait_until([&] { return first->stats().in_flight == 1; }, 5s));
  first->stop(50ms);  // still running: left unacknowledged
  first.reset();
  EXPECT_EQ(stats().pending, 1);
  auto second = start_server(options);
  auto r = reply.get_future().get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->result, "0.8");
  EXPECT_EQ(second->stats().succeeded, 1u);
}

TEST_F(RedisEngineTest, CallsInFlightAreBounded) {
  ServerOptions options;
  options.max_in_flight = 2;
  auto server = start_server(options, 8);
  std::atomic<int> done{0};
  std::atomic<std::uint64_t> peak{0};
  for (int i = 0; i < 8; ++i) {
    Message m;
    m.func_name = "slow";
    m.func_args = "[0.1]";
    client().call(m, 15s, [&](const Result<Message>& r) {
      EXPECT_TRUE(r.is_ok());
      ++done;
    });
  }
  ASSERT_TRUE(wait_until(
      [&] {
        peak = std::max(peak.load(), server->stats().in_flight);
        return done.load() == 8;
      },
      15s, 5ms));
  EXPECT_LE(peak.load(), 2u);
  EXPECT_GE(peak.load(), 1u);
}

TEST_F(RedisEngineTest, ThousandsOfConcurrentCallsOnTwoServers) {
  auto a = start_server({}, 4);
  auto b = start_server({}, 4);
  constexpr int kCalls = 3000;
  std::atomic<int> ok{0}, finished{0};
  for (int i = 0; i < kCalls; ++i) {
    Message m;
    m.func_name = "summ";
    m.func_args = "[" + std::to_string(i) + ", 0]";
    std::string expect = std::to_string(i) + ".5";
    client(i % 2 == 0 ? Flavour::kRaw : Flavour::kPython)
        .call(m, 60s, [&, expect](const Result<Message>& r) {
          if (r.is_ok() && r->result == expect) ++ok;
          ++finished;
        });
  }
  ASSERT_TRUE(wait_until([&] { return finished.load() == kCalls; }, 90s));
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(a->stats().received + b->stats().received, static_cast<std::uint64_t>(kCalls));
  EXPECT_EQ(a->stats().succeeded + b->stats().succeeded, static_cast<std::uint64_t>(kCalls));
}

}  // namespace
}  // namespace prpc::redis::testing
