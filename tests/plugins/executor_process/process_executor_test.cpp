// The process executor with real worker processes (test_worker.cpp beside this file): calls,
// parallelism, timeouts, workers that die, workers that never start, recycling and shutdown.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "process.hpp"
#include "process_executor.hpp"

namespace prpc::process {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

class NoInvoker final : public Invoker {
 public:
  void invoke(const Invocation&, OutcomeCallback done) override {
    ADD_FAILURE() << "the process executor ran a call in the parent";
    done(Outcome::failure(StatusCode::kInternal, "InternalError", "in the parent"));
  }
};

struct Results {
  std::mutex mutex;
  std::map<std::uint64_t, Outcome> by_id;
  OutcomeCallback add(std::uint64_t id) {
    return [this, id](Outcome o) {
      std::lock_guard lock(mutex);
      EXPECT_EQ(by_id.count(id), 0u) << "call " << id << " answered twice";
      by_id.emplace(id, std::move(o));
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return by_id.size();
  }
  bool has(std::uint64_t id) {
    std::lock_guard lock(mutex);
    return by_id.count(id) != 0;
  }
  Outcome get(std::uint64_t id) {
    std::lock_guard lock(mutex);
    return by_id.at(id);
  }
};

bool process_exists(pid_t pid) { return std::filesystem::exists("/proc/" + std::to_string(pid)); }

// No child process of this test is left, not even a zombie.
bool no_children() {
  int status = 0;
  return ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

class ProcessExecutorTest : public ::testing::Test {
 protected:
  static ProcessOptions options(std::uint32_t workers, std::vector<std::string> extra = {}) {
    ProcessOptions o;
    o.workers = workers;
    o.command = {PRPC_TEST_WORKER};
    for (auto& e : extra) o.command.push_back(std::move(e));
    o.start_timeout = 10s;
    return o;
  }

  std::unique_ptr<ProcessExecutor> start(ProcessOptions o) {
    auto ex = std::make_unique<ProcessExecutor>(std::move(o), invoker_);
    return ex;
  }

  // Submits and waits for the answer.
  Outcome run(ProcessExecutor& ex, std::string_view func, std::string args = "[]",
              std::chrono::milliseconds timeout = 0ms, std::chrono::milliseconds wait = 10s) {
    std::uint64_t id = ++next_id_;
    keep_.push_back(std::make_unique<std::string>(std::move(args)));
    Invocation c;
    c.call_id = id;
    c.func_name = func;
    c.args = *keep_.back();
    keep_.push_back(std::make_unique<std::string>("m" + std::to_string(id)));
    c.message_id = *keep_.back();
    c.timeout = timeout;
    ex.submit(c, results_.add(id));
    EXPECT_TRUE(wait_until([&] { return results_.has(id); }, wait)) << func << " never answered";
    if (!results_.has(id)) return Outcome::failure(StatusCode::kInternal, "TestError", "none");
    return results_.get(id);
  }

  std::uint64_t submit(ProcessExecutor& ex, std::string_view func, std::string args = "[]",
                       std::chrono::milliseconds timeout = 0ms) {
    std::uint64_t id = ++next_id_;
    keep_.push_back(std::make_unique<std::string>(std::move(args)));
    Invocation c;
    c.call_id = id;
    c.func_name = func;
    c.args = *keep_.back();
    c.timeout = timeout;
    ex.submit(c, results_.add(id));
    return id;
  }

  static pid_t busy_pid(ProcessExecutor& ex, std::uint64_t call_id) {
    for (const WorkerSnapshot& w : ex.snapshot()) {
      if (w.busy && w.call_id == call_id) return w.pid;
    }
    return -1;
  }

  NoInvoker invoker_;
  Results results_;
  std::uint64_t next_id_ = 0;
  std::vector<std::unique_ptr<std::string>> keep_;
};

TEST(WorkerCommand, ParsesAJsonArrayOfStrings) {
  auto ok = parse_worker_command(R"(["prpc-worker", "--set", "functions.plugins=[\"example\"]"])");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(*ok,
            (std::vector<std::string>{"prpc-worker", "--set", "functions.plugins=[\"example\"]"}));
  for (const char* bad : {"", "prpc-worker --set x", "[]", "[\"\"]", "[1]", "{\"a\": 1}"}) {
    auto r = parse_worker_command(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("worker_command: ", 0), 0u) << r.status().message();
    EXPECT_NE(r.status().message().find("JSON array of strings"), std::string::npos);
  }
}

TEST(WorkerCommand, IsRequiredThroughTheContext) {
  NoInvoker inv;
  sdk::Context ctx;
  EXPECT_THROW(ProcessExecutor(ctx, inv), std::invalid_argument);
  ctx.options = sdk::Options({{"worker_command", "[\"x\"]"}, {"workers", "0"}});
  EXPECT_THROW(ProcessExecutor(ctx, inv), std::invalid_argument);
  ctx.options = sdk::Options({{"worker_command", std::string("[\"") + PRPC_TEST_WORKER + "\"]"},
                              {"workers", "2"},
                              {"start_timeout", "5000"},
                              {"max_calls_per_worker", "3"}});
  ProcessExecutor ex(ctx, inv);
  EXPECT_EQ(ex.workers(), 2u);
}

TEST_F(ProcessExecutorTest, RunsCallsInWorkerProcesses) {
  auto ex = start(options(2));
  Outcome pid = run(*ex, "pid");
  ASSERT_TRUE(pid.ok()) << pid.error_message();
  EXPECT_NE(std::stoi(pid.result), ::getpid());

  Outcome echo = run(*ex, "echo", R"([1, 2.50, "x\u00e9", {"py/tuple": [1]}])", 5s);
  ASSERT_TRUE(echo.ok());
  // Payloads cross byte for byte, and the call's limit is passed along.
  EXPECT_EQ(echo.result, R"({"args": [1, 2.50, "x\u00e9", {"py/tuple": [1]}], "kwargs": {}, )"
                         R"("dialect": "json", "timeout_ms": 5000})");

  Outcome failed = run(*ex, "fail");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status.code(), StatusCode::kFunction);
  EXPECT_EQ(failed.error_type, "KeyError");
  EXPECT_EQ(failed.error_message(), "no such key");
  EXPECT_NE(failed.traceback.find("Traceback (most recent call last)"), std::string::npos);

  Outcome later = run(*ex, "later");
  EXPECT_EQ(later.result, "\"later\"");

  Outcome bad_result = run(*ex, "bad_result");
  EXPECT_EQ(bad_result.status.code(), StatusCode::kEncode);

  Outcome bad_text = run(*ex, "bad_utf8");
  EXPECT_EQ(bad_text.error_message(), "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");

  Outcome big = run(*ex, "big", "[2000000]");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big.result.size(), 2000002u);

  Outcome unknown = run(*ex, "nope");
  EXPECT_EQ(unknown.error_type, "UnknownFunctionError");
  EXPECT_EQ(ex->stats().lost, 0u);
}

TEST_F(ProcessExecutorTest, WorkerOutputDoesNotTouchTheProtocol) {
  auto ex = start(options(1));
  for (int i = 0; i < 3; ++i) {
    Outcome printed = run(*ex, "print");
    ASSERT_TRUE(printed.ok()) << printed.error_message();
    EXPECT_EQ(printed.result, "\"printed\"");
  }
  EXPECT_EQ(ex->stats().spawned, 1u);
}

TEST_F(ProcessExecutorTest, WorkersGetTheirSocketAsFd3InTheirOwnGroup) {
  auto ex = start(options(1));
  Outcome env = run(*ex, "environment");
  ASSERT_TRUE(env.ok()) << env.error_message();
  EXPECT_EQ(env.result, R"({"fd": "3", "own_group": true, "extra_fds": 0})");
}

TEST_F(ProcessExecutorTest, ArgumentsThatAreNotJsonAreRefusedWithoutHarm) {
  auto ex = start(options(1));
  Outcome bad = run(*ex, "echo", "[1,");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error_type, "DecodeError");
  EXPECT_NE(bad.error_message().find("args: invalid JSON"), std::string::npos);
  EXPECT_TRUE(run(*ex, "pid").ok());
  EXPECT_EQ(ex->stats().spawned, 1u);
}

TEST_F(ProcessExecutorTest, WorkersRunCallsInParallel) {
  constexpr int kWorkers = 3;
  auto ex = start(options(kWorkers));
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < kWorkers; ++i) ids.push_back(submit(*ex, "sleep", "[400]"));
  // All of them run at the same moment, each in its own process.
  ASSERT_TRUE(wait_until(
      [&] {
        std::set<pid_t> busy;
        for (const WorkerSnapshot& w : ex->snapshot()) {
          if (w.busy) busy.insert(w.pid);
        }
        return busy.size() == kWorkers;
      },
      10s, 2ms));
  ASSERT_TRUE(wait_until([&] { return results_.size() == kWorkers; }, 10s));
  std::set<std::string> pids;
  for (std::uint64_t id : ids) pids.insert(results_.get(id).result);
  EXPECT_EQ(pids.size(), static_cast<std::size_t>(kWorkers));
}

TEST_F(ProcessExecutorTest, BurstsOfCallsFromManySubmitters) {
  // Bursts that race with the supervisor's wake-ups, each on a pool gone idle: a lost wake-up
  // would leave a burst waiting in the queue forever.
  auto ex = start(options(1));
  constexpr int kRounds = 200;
  constexpr int kThreads = 2;
  constexpr int kCalls = 32;
  std::mutex mutex;
  std::condition_variable cv;
  int ok = 0;
  int finished = 0;
  std::atomic<std::uint64_t> next{0};
  for (int round = 1; round <= kRounds; ++round) {
    std::vector<std::thread> submitters;
    for (int t = 0; t < kThreads; ++t) {
      submitters.emplace_back([&] {
        for (int i = 0; i < kCalls; ++i) {
          Invocation c;
          c.call_id = ++next;
          c.func_name = "pid";
          ex->submit(c, [&](Outcome o) {
            std::lock_guard lock(mutex);
            ok += o.ok() ? 1 : 0;
            ++finished;
            cv.notify_all();
          });
        }
      });
    }
    for (auto& s : submitters) s.join();
    std::unique_lock lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return finished == round * kThreads * kCalls; }))
        << "round " << round << ": " << finished << " answered";
  }
  EXPECT_EQ(ok, kRounds * kThreads * kCalls);
}

TEST_F(ProcessExecutorTest, ACallPastItsLimitKillsAndReplacesItsWorker) {
  auto ex = start(options(1));
  Outcome first = run(*ex, "pid");
  ASSERT_TRUE(first.ok());
  pid_t old_pid = std::stoi(first.result);

  Outcome slow = run(*ex, "sleep", "[30000]", 100ms);
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status.code(), StatusCode::kTimeout);
  EXPECT_EQ(slow.error_type, "TimeoutError");
  EXPECT_NE(slow.error_message().find("did not finish within 100 ms"), std::string::npos);
  ASSERT_TRUE(wait_until([&] { return !process_exists(old_pid); }, 5s));

  Outcome next = run(*ex, "pid");
  ASSERT_TRUE(next.ok()) << next.error_message();
  EXPECT_NE(std::stoi(next.result), old_pid);
  EXPECT_EQ(ex->stats().timed_out, 1u);
}

TEST_F(ProcessExecutorTest, AWorkerKilledFromOutsideMidCallIsReportedAndReplaced) {
  auto ex = start(options(1));
  std::uint64_t id = submit(*ex, "sleep", "[30000]");
  pid_t pid = -1;
  ASSERT_TRUE(wait_until([&] { return (pid = busy_pid(*ex, id)) > 0; }, 10s));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return results_.has(id); }, 10s));
  Outcome lost = results_.get(id);
  EXPECT_EQ(lost.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(lost.error_type, "WorkerLostError");
  EXPECT_NE(lost.error_message().find("worker process " + std::to_string(pid)), std::string::npos)
      << lost.error_message();
  EXPECT_NE(lost.error_message().find("killed by signal 9 (SIGKILL)"), std::string::npos)
      << lost.error_message();
  EXPECT_NE(lost.error_message().find("'sleep'"), std::string::npos);

  Outcome next = run(*ex, "pid");
  ASSERT_TRUE(next.ok()) << next.error_message();
  EXPECT_NE(std::stoi(next.result), pid);
  EXPECT_EQ(ex->stats().lost, 1u);
}

TEST_F(ProcessExecutorTest, AWorkerThatExitsOrAbortsMidCallIsReported) {
  auto ex = start(options(1));
  Outcome exited = run(*ex, "exit", "[7]");
  EXPECT_EQ(exited.error_type, "WorkerLostError");
  EXPECT_NE(exited.error_message().find("exited with code 7 while running 'exit'"),
            std::string::npos)
      << exited.error_message();
  Outcome aborted = run(*ex, "abort");
  EXPECT_EQ(aborted.error_type, "WorkerLostError");
  EXPECT_NE(aborted.error_message().find("(SIGABRT)"), std::string::npos)
      << aborted.error_message();
  EXPECT_TRUE(run(*ex, "pid").ok());
}

TEST_F(ProcessExecutorTest, ADyingWorkerDoesNotDisturbTheOthers) {
  auto ex = start(options(2));
  std::uint64_t slow = submit(*ex, "sleep", "[500]");
  ASSERT_TRUE(wait_until([&] { return busy_pid(*ex, slow) > 0; }, 10s));
  Outcome crashed = run(*ex, "exit", "[1]");
  EXPECT_EQ(crashed.error_type, "WorkerLostError");
  ASSERT_TRUE(wait_until([&] { return results_.has(slow); }, 10s));
  EXPECT_TRUE(results_.get(slow).ok());
}

TEST_F(ProcessExecutorTest, WorkersAreRecycledAfterMaxCalls) {
  ProcessOptions o = options(1);
  o.max_calls_per_worker = 2;
  auto ex = start(o);
  std::vector<std::string> pids;
  for (int i = 0; i < 5; ++i) {
    Outcome r = run(*ex, "pid");
    ASSERT_TRUE(r.ok()) << r.error_message();
    pids.push_back(r.result);
  }
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_NE(pids[1], pids[2]);
  EXPECT_EQ(pids[2], pids[3]);
  EXPECT_NE(pids[3], pids[4]);
  EXPECT_EQ(ex->stats().recycled, 2u);
  EXPECT_EQ(ex->stats().lost, 0u);
}

TEST_F(ProcessExecutorTest, ACommandThatCannotStartFailsCallsClearly) {
  ProcessOptions o = options(2);
  o.command = {"/nonexistent/prpc-worker-missing", "--flag"};
  o.start_timeout = 300ms;
  auto ex = start(o);
  Outcome r = run(*ex, "pid", "[]", 0ms, 10s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.error_type, "WorkerStartError");
  EXPECT_NE(r.error_message().find("no worker process became ready within 300 ms"),
            std::string::npos)
      << r.error_message();
  EXPECT_NE(r.error_message().find("/nonexistent/prpc-worker-missing --flag"), std::string::npos);
  EXPECT_NE(r.error_message().find("No such file or directory"), std::string::npos);
  EXPECT_GT(ex->stats().start_failures, 0u);
}

TEST_F(ProcessExecutorTest, AWorkerThatDiesBeforeHelloIsReportedWithItsExitCode) {
  ProcessOptions o = options(1, {"exit-before-hello", "3"});
  o.start_timeout = 400ms;
  auto ex = start(o);
  Outcome r = run(*ex, "pid");
  EXPECT_EQ(r.error_type, "WorkerStartError");
  EXPECT_NE(r.error_message().find("exited with code 3 before saying hello"), std::string::npos)
      << r.error_message();
  // It was retried, with backoff rather than in a tight loop.
  std::uint64_t failures = ex->stats().start_failures;
  EXPECT_GE(failures, 2u);
  EXPECT_LE(failures, 6u);
}

TEST_F(ProcessExecutorTest, ASilentWorkerIsKilledAfterStartTimeout) {
  ProcessOptions o = options(1, {"silent"});
  o.start_timeout = 300ms;
  auto ex = start(o);
  Outcome r = run(*ex, "pid");
  EXPECT_EQ(r.error_type, "WorkerStartError");
  EXPECT_NE(r.error_message().find("did not say hello within 300 ms"), std::string::npos)
      << r.error_message();
  ex.reset();
  EXPECT_TRUE(no_children());
}

TEST_F(ProcessExecutorTest, GarbageInsteadOfHelloIsAStartFailure) {
  ProcessOptions o = options(1, {"garbage"});
  o.start_timeout = 300ms;
  auto ex = start(o);
  Outcome r = run(*ex, "pid");
  EXPECT_EQ(r.error_type, "WorkerStartError");
  EXPECT_NE(r.error_message().find("broke the protocol"), std::string::npos) << r.error_message();
}

TEST_F(ProcessExecutorTest, CallsWaitForASlowStartWithinStartTimeout) {
  ProcessOptions o = options(1, {"slow-hello", "300"});
  o.start_timeout = 10s;
  auto ex = start(o);
  Outcome r = run(*ex, "pid");
  EXPECT_TRUE(r.ok()) << r.error_message();
}

TEST_F(ProcessExecutorTest, ShutdownCancelsRunningCallsAndLeavesNoProcess) {
  auto ex = start(options(2));
  std::uint64_t a = submit(*ex, "sleep", "[30000]");
  std::uint64_t b = submit(*ex, "sleep", "[30000]");
  std::uint64_t c = submit(*ex, "sleep", "[30000]");  // queued
  ASSERT_TRUE(wait_until([&] { return busy_pid(*ex, a) > 0 && busy_pid(*ex, b) > 0; }, 10s));
  std::vector<pid_t> pids{busy_pid(*ex, a), busy_pid(*ex, b)};
  auto started = std::chrono::steady_clock::now();
  ex->shutdown(50ms);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);  // bounded, not the calls' 30 s
  ASSERT_EQ(results_.size(), 3u);
  for (std::uint64_t id : {a, b, c}) {
    EXPECT_EQ(results_.get(id).status.code(), StatusCode::kCancelled) << id;
  }
  for (pid_t pid : pids) EXPECT_FALSE(process_exists(pid)) << pid;
  EXPECT_TRUE(no_children());
  EXPECT_TRUE(ex->snapshot().empty());
  std::uint64_t after = submit(*ex, "pid");
  ASSERT_TRUE(results_.has(after));
  EXPECT_EQ(results_.get(after).status.code(), StatusCode::kCancelled);
}

TEST_F(ProcessExecutorTest, ShutdownLetsRunningCallsFinishWithinGrace) {
  auto ex = start(options(2));
  std::uint64_t a = submit(*ex, "sleep", "[200]");
  std::uint64_t b = submit(*ex, "sleep", "[200]");
  ASSERT_TRUE(wait_until([&] { return busy_pid(*ex, a) > 0 && busy_pid(*ex, b) > 0; }, 10s));
  ex->shutdown(10s);
  ASSERT_EQ(results_.size(), 2u);
  EXPECT_TRUE(results_.get(a).ok());
  EXPECT_TRUE(results_.get(b).ok());
  EXPECT_TRUE(no_children());
}

TEST_F(ProcessExecutorTest, DestroyingTheExecutorReapsItsWorkers) {
  std::vector<pid_t> pids;
  {
    auto ex = start(options(3));
    ASSERT_TRUE(wait_until(
        [&] {
          auto snap = ex->snapshot();
          return snap.size() == 3 &&
                 std::all_of(snap.begin(), snap.end(), [](auto& w) { return w.ready; });
        },
        10s));
    for (const WorkerSnapshot& w : ex->snapshot()) pids.push_back(w.pid);
  }
  for (pid_t pid : pids) EXPECT_FALSE(process_exists(pid));
  EXPECT_TRUE(no_children());
}

}  // namespace
}  // namespace prpc::process
