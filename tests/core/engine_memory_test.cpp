// The server and client engines end to end over the in-process broker, every part loaded as a
// plugin through the registry: calls, errors, timeouts, redelivery, dead letters, bad input,
// deduplication, drain and back-pressure.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "process.hpp"
#include "prpc/client.hpp"
#include "prpc/iso_time.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"
#include "prpc/uuid.hpp"

namespace prpc {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = "memory://engine-" + new_uuid();
    codec_ = make(registry_.make_codec("rawjson", {}));
    functions_ = make(registry_.make_functions("example", {}));
  }

  template <typename T>
  static T make(Result<T> r) {
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  std::shared_ptr<Broker> broker() {
    return make(registry_.make_broker("memory", {{"url", url_}}));
  }

  std::unique_ptr<Server> start_server(ServerOptions options = {}, int workers = 4) {
    options.queue = queue_;
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
    if (!client_) {
      client_ = std::make_unique<Client>(ClientOptions{queue_, flavour}, broker(), codec_);
      Status s = client_->start();
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    }
    return *client_;
  }

  Message call(std::string func, std::string args = "[]", std::string kwargs = "{}",
               std::chrono::milliseconds timeout = 10s) {
    Message m;
    m.func_name = std::move(func);
    m.func_args = std::move(args);
    m.func_kwargs = std::move(kwargs);
    auto r = client().call_sync(std::move(m), timeout);
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  // A request published straight to the broker, as a program in another language would.
  void publish_raw(const std::string& payload, Flavour flavour = Flavour::kRaw) {
    if (!publisher_) publisher_ = broker();
    std::promise<Status> sent;
    publisher_->publish(PublishView{flavour, queue_, "", payload},
                        [&](const Status& s) { sent.set_value(s); });
    ASSERT_TRUE(sent.get_future().get().is_ok());
  }

  std::optional<Message> stored(const std::string& message_id, Flavour f = Flavour::kRaw) {
    if (!publisher_) publisher_ = broker();
    std::promise<std::optional<std::string>> found;
    publisher_->lookup_result(f, queue_, message_id, [&](Result<std::optional<std::string>> r) {
      found.set_value(r.is_ok() ? *r : std::nullopt);
    });
    auto payload = found.get_future().get();
    if (!payload) return std::nullopt;
    // Replies to malformed requests may carry a message_id that is not a UUID.
    static const auto lenient = make(registry_.make_codec("rawjson", {{"require_uuid", "false"}}));
    auto decoded = lenient->decode(*payload);
    if (!decoded.is_ok()) return std::nullopt;
    return *decoded;
  }

  QueueStats stats() {
    if (!publisher_) publisher_ = broker();
    return make(publisher_->queue_stats(queue_));
  }

  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::string url_;
  std::string queue_ = "engine_test";
  std::shared_ptr<Codec> codec_;
  std::shared_ptr<FunctionTable> functions_;
  std::vector<std::shared_ptr<Executor>> executors_;
  std::unique_ptr<Client> client_;
  std::shared_ptr<Broker> publisher_;
};

TEST_F(EngineTest, CallsEndToEnd) {
  auto server = start_server();
  Message r = call("summ", "[1, 2.5]");
  EXPECT_FALSE(r.failed()) << *r.exception_info;
  EXPECT_EQ(r.result, "4.0");
  EXPECT_EQ(r.func_name, "summ");
  EXPECT_EQ(r.func_args, "[1, 2.5]");
  EXPECT_TRUE(canonical_uuid(r.message_id).has_value());
  EXPECT_TRUE(parse_iso8601(r.date_create_message).has_value());
  EXPECT_TRUE(parse_iso8601(r.date_done_message).has_value());

  EXPECT_EQ(call("summ", "[1, 2]", R"({"z": 3})").result, "6");
  EXPECT_EQ(call("hello_world").result, "\"hello_world\"");
  // Values pass through byte for byte, whitespace and number spelling included.
  std::string nested = R"([{"a": [1, 2.50, "x\u00e9"], "b": null}])";
  EXPECT_EQ(call("echo", nested).result, R"({"a":[1,2.5,"xé"],"b":null})");
  EXPECT_EQ(call("noop").result, "null");
}

TEST_F(EngineTest, ReservedFunctions) {
  auto server = start_server();
  EXPECT_EQ(call("ping").result, "\"pong\"");
  Message manifest = call("get_function_server", "[]", R"({"format": "manifest"})");
  ASSERT_FALSE(manifest.failed());
  EXPECT_NE(manifest.result.find(R"("name": "summ")"), std::string::npos) << manifest.result;
  EXPECT_NE(manifest.result.find(R"("default": "0.5")"), std::string::npos) << manifest.result;
  EXPECT_NE(manifest.result.find(R"("queue": "engine_test")"), std::string::npos);

  // Without a format: the original PRPC's list, which its create_server_func reads. ping comes
  // first, once, and defaults are values.
  Message original = call("get_function_server");
  ASSERT_FALSE(original.failed());
  EXPECT_EQ(original.result.rfind(R"([{"func_name": "ping", "func_args": [], "func_kwargs": []}, )"
                                  R"({"func_name": "summ", "func_args": [{"name": "a", )"
                                  R"("annotation": "int | float"}, {"name": "b"}], )"
                                  R"("func_kwargs": [{"name": "z", "default": 0.5}]})",
                                  0),
            0u)
      << original.result;
  EXPECT_NE(original.result.find(R"({"name": "type", "default": "ValueError"})"), std::string::npos)
      << original.result;
}

TEST_F(EngineTest, ErrorsBecomeReplies) {
  auto server = start_server();
  Message unknown = call("nope");
  ASSERT_TRUE(unknown.failed());
  EXPECT_EQ(
      unknown.exception_info->rfind(
          "UnknownFunctionError: func name 'nope' not found in server (queue 'engine_test')", 0),
      0u)
      << *unknown.exception_info;
  EXPECT_EQ(unknown.result, "null");

  Message raised = call("fail", R"(["boom", "KeyError"])");
  ASSERT_TRUE(raised.failed());
  EXPECT_EQ(*raised.exception_info, "KeyError: boom");
  EXPECT_EQ(raised.exception_type, "KeyError");

  Message empty = call("fail");
  ASSERT_TRUE(empty.failed());
  EXPECT_EQ(*empty.exception_info, "ValueError: ");  // never empty on failure

  Message wrong = call("summ", "[1]");
  ASSERT_TRUE(wrong.failed());
  EXPECT_EQ(*wrong.exception_info, "TypeError: summ() missing required argument: 'b'");

  Message extra = call("summ", "[1, 2]", R"({"q": 1})");
  ASSERT_TRUE(extra.failed());
  EXPECT_NE(extra.exception_info->find("unexpected keyword argument 'q'"), std::string::npos);

  // The server kept serving through all of it.
  EXPECT_EQ(call("summ", "[1, 1, 1]").result, "3");
  EXPECT_EQ(server->stats().failed, 5u);
}

TEST_F(EngineTest, ServerSideTimeoutAnswersAndKeepsServing) {
  ServerOptions options;
  options.call_timeout = 150ms;
  auto server = start_server(options, 1);
  auto started = std::chrono::steady_clock::now();
  Message slow = call("slow", "[2]");
  ASSERT_TRUE(slow.failed());
  EXPECT_EQ(slow.exception_info->rfind("TimeoutError: ", 0), 0u) << *slow.exception_info;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1900ms);
  // The single worker thread was stuck; its replacement serves the next call.
  EXPECT_EQ(call("ping").result, "\"pong\"");
  EXPECT_EQ(call("summ", "[2, 2]").result, "4.5");
}

TEST_F(EngineTest, ClientSideTimeout) {
  auto server = start_server();
  Message m;
  m.func_name = "slow";
  m.func_args = "[1]";
  auto r = client().call_sync(m, 100ms);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTimeout);
  EXPECT_EQ(client().pending(), 0u);
}

TEST_F(EngineTest, ExpiredDeadlineIsNotRun) {
  auto server = start_server();
  Message m;
  m.func_name = "slow";
  m.func_args = "[5]";
  m.deadline = format_iso8601(std::chrono::time_point_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now() - 1s));
  auto r = client().call_sync(m, 3s);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE(r->failed());
  EXPECT_NE(r->exception_info->find("deadline"), std::string::npos);
}

TEST_F(EngineTest, RedeliveryAfterConsumerCrash) {
  // A consumer takes the request and dies without acknowledging it.
  std::string id = new_uuid();
  publish_raw(R"({"func_name": "summ", "func_args": [40, 1], "func_kwargs": {}, "message_id": ")" +
              id + R"("})");
  {
    auto crashing = broker();
    std::atomic<int> got{0};
    SubscribeOptions sub;
    sub.queue = queue_;
    sub.consumer = "crashing";
    ASSERT_TRUE(
        crashing
            ->subscribe(sub,
                        [&](std::span<const DeliveryView> d) { got += static_cast<int>(d.size()); })
            .is_ok());
    ASSERT_TRUE(wait_until([&] { return got.load() == 1; }, 5s));
  }  // destroyed: the delivery stays pending, unacknowledged
  EXPECT_EQ(stats().pending, 1);

  ServerOptions options;
  options.visibility_timeout = 200ms;
  auto server = start_server(options);
  ASSERT_TRUE(wait_until([&] { return stored(id).has_value(); }, 5s));
  Message reply = *stored(id);
  EXPECT_FALSE(reply.failed());
  EXPECT_EQ(reply.result, "41.5");
  EXPECT_EQ(stats().pending, 0);
}

TEST_F(EngineTest, DeadLetterAfterTooManyDeliveries) {
  std::string id = new_uuid();
  publish_raw(R"({"func_name": "hello_world", "message_id": ")" + id + R"("})");
  // Two consumers in turn take it and die: delivery 1 and 2.
  for (int i = 0; i < 2; ++i) {
    auto crashing = broker();
    std::atomic<int> got{0};
    SubscribeOptions sub;
    sub.queue = queue_;
    sub.consumer = "crashing-" + std::to_string(i);
    sub.visibility_timeout = 50ms;
    ASSERT_TRUE(
        crashing
            ->subscribe(sub,
                        [&](std::span<const DeliveryView> d) { got += static_cast<int>(d.size()); })
            .is_ok());
    ASSERT_TRUE(wait_until([&] { return got.load() == 1; }, 5s));
  }
  ServerOptions options;
  options.visibility_timeout = 50ms;
  options.max_deliveries = 2;
  auto server = start_server(options);
  ASSERT_TRUE(wait_until([&] { return stored(id).has_value(); }, 5s));
  Message reply = *stored(id);
  ASSERT_TRUE(reply.failed());
  EXPECT_EQ(reply.exception_info->rfind("DeadLetterError: delivered 3 times", 0), 0u)
      << *reply.exception_info;
  QueueStats s = stats();
  EXPECT_EQ(s.dead_letters, 1);
  EXPECT_EQ(s.pending, 0);
  auto letters = make(publisher_->dead_letters(queue_, 10));
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_NE(letters[0].reason.find("delivered 3 times"), std::string::npos);
  EXPECT_NE(letters[0].payload.find(id), std::string::npos);
}

TEST_F(EngineTest, MalformedRequestsAreDeadLetteredAndAnswered) {
  auto server = start_server();
  std::string id = new_uuid();
  publish_raw("this is not json");
  publish_raw(R"({"func_name": 5, "message_id": ")" + id + R"("})");
  publish_raw(R"({"func_name": "summ", "func_args": {"a": 1}, "message_id": "not-a-uuid"})");
  publish_raw("{\"func_name\": \"echo\", \"func_args\": [\"\xff\xfe\"], \"message_id\": \"" +
              new_uuid() + "\"}");
  ASSERT_TRUE(wait_until([&] { return stats().dead_letters == 4; }, 5s));

  auto wrong_type = stored(id);
  ASSERT_TRUE(wrong_type.has_value());
  ASSERT_TRUE(wrong_type->failed());
  EXPECT_EQ(*wrong_type->exception_info, "DecodeError: func_name: expected string, got number");
  auto bad_id = stored("not-a-uuid");
  ASSERT_TRUE(bad_id.has_value());
  EXPECT_EQ(*bad_id->exception_info, "DecodeError: func_args: expected array, got object");

  auto letters = make(publisher_->dead_letters(queue_, 10));
  ASSERT_EQ(letters.size(), 4u);
  EXPECT_EQ(letters[0].reason.rfind("invalid JSON at offset 1: Invalid value.", 0), 0u)
      << letters[0].reason;
  EXPECT_EQ(letters[0].payload, "this is not json");
  EXPECT_NE(letters[3].reason.find("Invalid encoding"), std::string::npos) << letters[3].reason;

  // Still serving.
  EXPECT_EQ(call("ping").result, "\"pong\"");
}

TEST_F(EngineTest, OversizedRequestIsRefusedWithItsId) {
  ServerOptions options;
  options.max_message_bytes = 1024;
  auto server = start_server(options);
  std::string id = new_uuid();
  publish_raw(R"({"message_id": ")" + id + R"(", "func_name": "echo", "func_args": [")" +
              std::string(4096, 'x') + R"("]})");
  ASSERT_TRUE(wait_until([&] { return stored(id).has_value(); }, 5s));
  EXPECT_NE(stored(id)->exception_info->find("exceeds the limit of 1024 bytes"), std::string::npos);
  EXPECT_EQ(stats().dead_letters, 1);
}

// Counts the runs of each function it serves for the engine (through an executor).
class CountingTable final : public FunctionTable {
 public:
  explicit CountingTable(std::shared_ptr<FunctionTable> inner) : inner_(std::move(inner)) {}
  std::vector<FunctionInfo> list() const override { return inner_->list(); }
  void invoke(const Invocation& call, OutcomeCallback done) override {
    runs.fetch_add(1);
    inner_->invoke(call, std::move(done));
  }
  void cancel(std::uint64_t call_id) override { inner_->cancel(call_id); }
  std::atomic<int> runs{0};

 private:
  std::shared_ptr<FunctionTable> inner_;
};

TEST_F(EngineTest, ARequestDeliveredAgainWhileItRunsHereRunsOnce) {
  // As when a Kafka rebalance hands a partition back to the server still running its calls:
  // the second delivery waits for the run under way and is answered with its outcome.
  auto counting = std::make_shared<CountingTable>(functions_);
  functions_ = counting;
  auto server = start_server();
  std::string id = new_uuid();
  std::string request =
      R"({"func_name": "slow", "func_args": [0.5], "message_id": ")" + id + R"("})";
  publish_raw(request);
  publish_raw(request);
  ASSERT_TRUE(wait_until([&] { return server->stats().succeeded == 2; }, 10s));
  EXPECT_EQ(counting->runs.load(), 1);
  EXPECT_EQ(server->stats().deduplicated, 1u);
  ASSERT_TRUE(wait_until([&] { return stats().pending == 0; }, 5s));
  auto result = stored(id);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->result, "0.5");
  // Once that run is over, the same id runs again if it is delivered again (at least once).
  publish_raw(request);
  ASSERT_TRUE(wait_until([&] { return server->stats().succeeded == 3; }, 10s));
  EXPECT_EQ(counting->runs.load(), 2);
}

TEST_F(EngineTest, RedeliveryOfAnsweredRequestIsNotRunAgain) {
  // The same request twice: the first copy is held by a consumer that then dies, the second is
  // served. When the first copy is redelivered, the stored result answers it.
  std::string id = new_uuid();
  std::string request =
      R"({"func_name": "summ", "func_args": [1, 1], "message_id": ")" + id + R"("})";
  publish_raw(request);
  {
    auto holder = broker();
    std::atomic<int> got{0};
    SubscribeOptions sub;
    sub.queue = queue_;
    sub.consumer = "holder";
    sub.max_outstanding = 1;
    sub.batch_size = 1;
    ASSERT_TRUE(
        holder
            ->subscribe(sub,
                        [&](std::span<const DeliveryView> d) { got += static_cast<int>(d.size()); })
            .is_ok());
    ASSERT_TRUE(wait_until([&] { return got.load() == 1; }, 5s));
    publish_raw(request);
    ServerOptions options;
    options.visibility_timeout = 300ms;
    auto server = start_server(options);
    ASSERT_TRUE(wait_until([&] { return server->stats().succeeded == 1; }, 5s));
    // The holder dies now; the server claims its copy after the visibility timeout.
    holder.reset();
    ASSERT_TRUE(wait_until([&] { return server->stats().deduplicated == 1; }, 5s));
    EXPECT_EQ(server->stats().succeeded, 1u);
    ASSERT_TRUE(wait_until([&] { return stats().pending == 0; }, 5s));
  }
}

TEST_F(EngineTest, DrainFinishesCallsInFlight) {
  auto server = start_server();
  Message m;
  m.func_name = "slow";
  m.func_args = "[0.3]";
  std::promise<Result<Message>> reply;
  client().call(m, 5s, [&](Result<Message> r) { reply.set_value(std::move(r)); });
  ASSERT_TRUE(wait_until([&] { return server->stats().in_flight == 1; }, 5s));
  server->stop(5s);
  auto r = reply.get_future().get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->result, "0.3");
}

TEST_F(EngineTest, StopAfterGraceLeavesTheRestForAnotherServer) {
  ServerOptions options;
  options.visibility_timeout = 200ms;
  auto first = start_server(options);
  Message m;
  m.func_name = "slow";
  m.func_args = "[0.6]";
  std::promise<Result<Message>> reply;
  client().call(m, 10s, [&](Result<Message> r) { reply.set_value(std::move(r)); });
  ASSERT_TRUE(wait_until([&] { return first->stats().in_flight == 1; }, 5s));
  first->stop(50ms);  // the call is still running: it stays unacknowledged
  first.reset();
  EXPECT_EQ(stats().pending, 1);
  auto second = start_server(options);  // claims it after the visibility timeout
  auto r = reply.get_future().get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->result, "0.6");
  EXPECT_EQ(second->stats().succeeded, 1u);
}

TEST_F(EngineTest, InFlightIsBounded) {
  ServerOptions options;
  options.max_in_flight = 2;
  auto server = start_server(options, 8);
  std::atomic<int> done{0};
  std::atomic<std::uint64_t> peak{0};
  for (int i = 0; i < 8; ++i) {
    Message m;
    m.func_name = "slow";
    m.func_args = "[0.1]";
    client().call(m, 10s, [&](const Result<Message>& r) {
      EXPECT_TRUE(r.is_ok());
      ++done;
    });
  }
  ASSERT_TRUE(wait_until(
      [&] {
        peak = std::max(peak.load(), server->stats().in_flight);
        return done.load() == 8;
      },
      10s, 5ms));
  EXPECT_LE(peak.load(), 2u);
  EXPECT_GE(peak.load(), 1u);
}

TEST_F(EngineTest, PythonFlavourStreamAndResultKey) {
  auto server = start_server();
  Message m;
  m.func_name = "summ";
  m.func_args = "[1, 2]";
  auto r = client(Flavour::kPython).call_sync(m, 5s);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->result, "3.5");
  EXPECT_TRUE(stored(r->message_id, Flavour::kPython).has_value());
  EXPECT_FALSE(stored(r->message_id, Flavour::kRaw).has_value());
}

TEST_F(EngineTest, ThousandConcurrentCalls) {
  auto server = start_server({}, 8);
  constexpr int kCalls = 1000;
  std::atomic<int> ok{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < kCalls; ++i) {
    Message m;
    m.func_name = "summ";
    m.func_args = "[" + std::to_string(i) + ", 1]";
    m.func_kwargs = R"({"z": 0})";
    client().call(m, 30s, [&, i](const Result<Message>& r) {
      if (r.is_ok() && r->result == std::to_string(i + 1)) ++ok;
      ++finished;
    });
  }
  ASSERT_TRUE(wait_until([&] { return finished.load() == kCalls; }, 30s));
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(server->stats().succeeded, static_cast<std::uint64_t>(kCalls));
}

// Says "noop" and "summ" are quick, and records on which threads calls ran, one by one
// (executor threads) or in batches (the thread that received them).
class QuickTable final : public FunctionTable {
 public:
  explicit QuickTable(std::shared_ptr<FunctionTable> inner) : inner_(std::move(inner)) {}
  std::vector<FunctionInfo> list() const override { return inner_->list(); }
  bool quick(std::string_view name, std::chrono::microseconds limit) const override {
    return limit.count() > 0 && (name == "noop" || name == "summ");
  }
  void invoke(const Invocation& call, OutcomeCallback done) override {
    {
      std::lock_guard lock(mutex);
      one_by_one.insert(std::string(call.func_name));
      executor_threads.insert(std::this_thread::get_id());
    }
    inner_->invoke(call, std::move(done));
  }
  void invoke_batch(std::span<const Invocation> calls, std::span<OutcomeCallback> done) override {
    {
      std::lock_guard lock(mutex);
      batch_sizes.push_back(calls.size());
      batch_threads.insert(std::this_thread::get_id());
      for (const Invocation& c : calls) batched.insert(std::string(c.func_name));
    }
    // Called back one by one here, as the default does, but through invoke() of the inner table.
    for (std::size_t i = 0; i < calls.size(); ++i) inner_->invoke(calls[i], std::move(done[i]));
  }

  std::mutex mutex;
  std::set<std::string> one_by_one, batched;
  std::set<std::thread::id> executor_threads, batch_threads;
  std::vector<std::size_t> batch_sizes;

 private:
  std::shared_ptr<FunctionTable> inner_;
};

TEST_F(EngineTest, QuickFunctionsRunInBatchesOnTheReceivingThreadAndOthersOnTheExecutor) {
  auto table = std::make_shared<QuickTable>(functions_);
  functions_ = table;
  // Requests waiting before the server starts arrive together.
  constexpr int kWaiting = 40;
  for (int i = 0; i < kWaiting; ++i) {
    publish_raw(R"({"func_name": "summ", "func_args": [)" + std::to_string(i) +
                R"(, 1], "message_id": ")" + new_uuid() + R"("})");
  }
  auto server = start_server();
  ASSERT_TRUE(wait_until(
      [&] { return server->stats().succeeded == static_cast<std::uint64_t>(kWaiting); }, 10s));
  EXPECT_EQ(call("noop").result, "null");
  EXPECT_EQ(call("summ", "[2, 3]", R"({"z": 0})").result, "5");
  EXPECT_EQ(call("slow", "[0.01]").result, "0.01");
  EXPECT_EQ(server->stats().inlined, static_cast<std::uint64_t>(kWaiting + 2));
  std::lock_guard lock(table->mutex);
  EXPECT_EQ(table->batched, (std::set<std::string>{"noop", "summ"}));
  EXPECT_EQ(table->one_by_one, (std::set<std::string>{"slow"}));
  EXPECT_GT(*std::max_element(table->batch_sizes.begin(), table->batch_sizes.end()), 1U);
  for (const auto& id : table->batch_threads) EXPECT_EQ(table->executor_threads.count(id), 0U);
}

// Answers the first call of a batch, then throws: the server answers the rest itself.
class ThrowingBatchTable final : public FunctionTable {
 public:
  explicit ThrowingBatchTable(std::shared_ptr<FunctionTable> inner) : inner_(std::move(inner)) {}
  std::vector<FunctionInfo> list() const override { return inner_->list(); }
  bool quick(std::string_view name, std::chrono::microseconds) const override {
    return name == "noop";
  }
  void invoke(const Invocation& call, OutcomeCallback done) override {
    inner_->invoke(call, std::move(done));
  }
  void invoke_batch(std::span<const Invocation> calls, std::span<OutcomeCallback> done) override {
    inner_->invoke(calls[0], std::move(done[0]));
    if (calls.size() > 1) throw std::runtime_error("boom");
  }

 private:
  std::shared_ptr<FunctionTable> inner_;
};

TEST_F(EngineTest, ATableThatThrowsMidBatchLeavesNoCallUnanswered) {
  functions_ = std::make_shared<ThrowingBatchTable>(functions_);
  constexpr int kWaiting = 20;
  std::vector<std::string> ids;
  for (int i = 0; i < kWaiting; ++i) {
    ids.push_back(new_uuid());
    publish_raw(R"({"func_name": "noop", "message_id": ")" + ids.back() + R"("})");
  }
  auto server = start_server();
  ASSERT_TRUE(wait_until(
      [&] {
        ServerStats s = server->stats();
        return s.succeeded + s.failed == static_cast<std::uint64_t>(kWaiting);
      },
      10s));
  EXPECT_GE(server->stats().failed, 1U);
  for (const std::string& id : ids) {
    auto reply = stored(id);
    ASSERT_TRUE(reply.has_value()) << id;
    if (reply->failed()) {
      EXPECT_NE(reply->exception_info->find("the function table threw: boom"), std::string::npos)
          << *reply->exception_info;
    } else {
      EXPECT_EQ(reply->result, "null");
    }
  }
  EXPECT_EQ(call("noop").result, "null");  // alone in its batch: answered by the table
  ASSERT_TRUE(wait_until([&] { return stats().pending == 0; }, 5s));
}

TEST_F(EngineTest, InlineMaxZeroSendsEveryCallToItsExecutor) {
  auto table = std::make_shared<QuickTable>(functions_);
  functions_ = table;
  ServerOptions options;
  options.inline_max = std::chrono::microseconds(0);
  auto server = start_server(options);
  EXPECT_EQ(call("noop").result, "null");
  EXPECT_EQ(call("summ", "[2, 3]", R"({"z": 0})").result, "5");
  EXPECT_EQ(server->stats().inlined, 0U);
  std::lock_guard lock(table->mutex);
  EXPECT_TRUE(table->batched.empty());
  EXPECT_EQ(table->one_by_one, (std::set<std::string>{"noop", "summ"}));
}

}  // namespace
}  // namespace prpc
