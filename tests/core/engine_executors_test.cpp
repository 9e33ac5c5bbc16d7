// The server engine over the in-process broker with functions routed to the "process" executor
// (prpc-worker serving the example plugin) and to the "async" executor (the example functions
// plus a natively asynchronous one), every executor loaded as a plugin.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "process.hpp"
#include "prpc/client.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"
#include "prpc/uuid.hpp"

namespace prpc {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

const std::string kWorker = std::string(PRPC_TEST_BINARY_DIR) + "/bin/prpc-worker";

// The example functions with a worker type per function, plus "asleep": completes after its
// argument in seconds from a timer thread, and stops early when cancelled.
class RoutedFunctions final : public FunctionTable {
 public:
  explicit RoutedFunctions(std::shared_ptr<FunctionTable> example) : example_(std::move(example)) {}
  ~RoutedFunctions() override {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    cv_.notify_all();
    for (auto& t : timers_) t.join();
  }

  std::vector<FunctionInfo> list() const override {
    std::vector<FunctionInfo> out;
    for (FunctionInfo f : example_->list()) {
      f.worker = (f.name == "hello_world" || f.name == "echo") ? "async" : "process";
      out.push_back(std::move(f));
    }
    out.push_back({"asleep", "async", R"({"parameters": []})", "Sleeps without a thread."});
    return out;
  }

  void invoke(const Invocation& call, OutcomeCallback done) override {
    if (call.func_name != "asleep") {
      example_->invoke(call, std::move(done));
      return;
    }
    double seconds = std::stod(std::string(call.args).substr(1));
    std::lock_guard lock(mutex_);
    int now = ++running_;
    peak_ = std::max(peak_, now);
    timers_.emplace_back([this, id = call.call_id, seconds, done = std::move(done),
                          result = std::string(call.args)] {
      std::unique_lock l(mutex_);
      bool woken = cv_.wait_for(l, std::chrono::duration<double>(seconds),
                                [&] { return closing_ || cancelled_.count(id) != 0; });
      --running_;
      l.unlock();
      if (woken) {
        done(Outcome::failure(StatusCode::kCancelled, "CancelledError", "cancelled"));
      } else {
        done(Outcome::success(result));
      }
    });
  }

  void cancel(std::uint64_t call_id) override {
    {
      std::lock_guard lock(mutex_);
      cancelled_.insert(call_id);
    }
    cv_.notify_all();
  }

  int peak() {
    std::lock_guard lock(mutex_);
    return peak_;
  }
  std::size_t cancelled() {
    std::lock_guard lock(mutex_);
    return cancelled_.size();
  }

 private:
  std::shared_ptr<FunctionTable> example_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::thread> timers_;
  std::set<std::uint64_t> cancelled_;
  int running_ = 0;
  int peak_ = 0;
  bool closing_ = false;
};

class EngineExecutorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = "memory://executors-" + new_uuid();
    codec_ = make(registry_.make_codec("rawjson", {}));
    functions_ = std::make_shared<RoutedFunctions>(make(registry_.make_functions("example", {})));
  }
  void TearDown() override {
    server_.reset();
    for (auto& [name, ex] : executors_) ex->shutdown(1s);
    client_.reset();
  }

  template <typename T>
  static T make(Result<T> r) {
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  void start_server(ServerOptions options = {}) {
    options.queue = "executors_test";
    std::string command =
        "[\"" + kWorker +
        R"(", "--set", "functions.plugins=[\"example\"]", "--log-level", "warn"])";
    executors_["process"] = make(registry_.make_executor(
        "process", {{"workers", "2"}, {"worker_command", command}}, functions_));
    executors_["async"] = make(registry_.make_executor("async", {{"workers", "100"}}, functions_));
    auto broker = make(registry_.make_broker("memory", {{"url", url_}}));
    server_ = std::make_unique<Server>(options, broker, codec_, codec_, functions_, executors_);
    Status s = server_->start();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    client_ =
        std::make_unique<Client>(ClientOptions{"executors_test", Flavour::kRaw},
                                 make(registry_.make_broker("memory", {{"url", url_}})), codec_);
    s = client_->start();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }

  Message call(std::string func, std::string args = "[]", std::string kwargs = "{}") {
    Message m;
    m.func_name = std::move(func);
    m.func_args = std::move(args);
    m.func_kwargs = std::move(kwargs);
    auto r = client_->call_sync(std::move(m), 20s);
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::string url_;
  std::shared_ptr<Codec> codec_;
  std::shared_ptr<RoutedFunctions> functions_;
  ExecutorMap executors_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(EngineExecutorsTest, ProcessRoutedFunctionsEndToEnd) {
  start_server();
  Message summ = call("summ", "[1, 2.5]");
  ASSERT_FALSE(summ.failed()) << *summ.exception_info;
  EXPECT_EQ(summ.result, "4.0");
  EXPECT_EQ(call("summ", "[1, 2]", R"({"z": 3})").result, "6");
  Message raised = call("fail", R"(["boom", "KeyError"])");
  ASSERT_TRUE(raised.failed());
  EXPECT_EQ(*raised.exception_info, "KeyError: boom");
  EXPECT_EQ(raised.exception_type, "KeyError");
  Message wrong = call("summ", "[1]");
  EXPECT_EQ(*wrong.exception_info, "TypeError: summ() missing required argument: 'b'");
  // The manifest says where each function runs.
  Message manifest = call("get_function_server", "[]", R"({"format": "manifest"})");
  EXPECT_NE(manifest.result.find(R"("name": "summ", "worker": "process")"), std::string::npos)
      << manifest.result;
  EXPECT_NE(manifest.result.find(R"("name": "asleep", "worker": "async")"), std::string::npos);
}

TEST_F(EngineExecutorsTest, ProcessTimeoutAnswersAndTheServerKeepsServing) {
  ServerOptions options;
  options.call_timeout = 300ms;
  start_server(options);
  Message slow = call("slow", "[10]");
  ASSERT_TRUE(slow.failed());
  EXPECT_EQ(slow.exception_info->rfind(
                "TimeoutError: the task was completed by server timeout 0.3 secs. (the call to "
                "'slow' did not finish within 300 ms)",
                0),
            0u)
      << *slow.exception_info;
  EXPECT_EQ(call("summ", "[2, 2]").result, "4.5");
  EXPECT_EQ(call("slow", "[0.01]").result, "0.01");
}

TEST_F(EngineExecutorsTest, AsyncRoutedFunctionsEndToEnd) {
  start_server();
  EXPECT_EQ(call("hello_world").result, "\"hello_world\"");
  EXPECT_EQ(call("echo", R"([[1, {"b": 2}]])").result, R"([1,{"b":2}])");
  // Many natively asynchronous calls are in flight at once, none holding a thread of ours.
  constexpr int kCalls = 40;
  std::atomic<int> ok{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < kCalls; ++i) {
    Message m;
    m.func_name = "asleep";
    m.func_args = "[0.3]";
    client_->call(m, 20s, [&](const Result<Message>& r) {
      if (r.is_ok() && !r->failed() && r->result == "[0.3]") ++ok;
      ++finished;
    });
  }
  ASSERT_TRUE(wait_until([&] { return finished.load() == kCalls; }, 20s));
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_GE(functions_->peak(), 10);  // the server's own in-flight bound is 64
}

TEST_F(EngineExecutorsTest, AsyncTimeoutCancelsTheCoroutine) {
  ServerOptions options;
  options.call_timeout = 200ms;
  start_server(options);
  Message slow = call("asleep", "[10]");
  ASSERT_TRUE(slow.failed());
  EXPECT_EQ(slow.exception_info->rfind("TimeoutError: ", 0), 0u) << *slow.exception_info;
  ASSERT_TRUE(wait_until([&] { return functions_->cancelled() == 1; }, 5s));
  EXPECT_EQ(call("asleep", "[0.01]").result, "[0.01]");
}

TEST_F(EngineExecutorsTest, BothExecutorsAtOnce) {
  start_server();
  constexpr int kCalls = 60;
  std::atomic<int> ok{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < kCalls; ++i) {
    Message m;
    bool process = i % 2 == 0;
    m.func_name = process ? "summ" : "asleep";
    m.func_args = process ? "[" + std::to_string(i) + ", 1]" : "[0.05]";
    m.func_kwargs = process ? R"({"z": 0})" : "{}";
    std::string expected = process ? std::to_string(i + 1) : "[0.05]";
    client_->call(m, 20s, [&, expected](const Result<Message>& r) {
      if (r.is_ok() && r->result == expected) ++ok;
      ++finished;
    });
  }
  ASSERT_TRUE(wait_until([&] { return finished.load() == kCalls; }, 20s));
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(server_->stats().succeeded, static_cast<std::uint64_t>(kCalls));
}

}  // namespace
}  // namespace prpc
