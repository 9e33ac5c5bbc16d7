// The process executor with real prpc-worker processes serving the example functions plugin.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "process.hpp"
#include "process_executor.hpp"
#include "prpc/plugin_loader.hpp"

namespace prpc::process {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

const std::string kWorker = std::string(PRPC_TEST_BINARY_DIR) + "/bin/prpc-worker";

class Unused final : public Invoker {
 public:
  void invoke(const Invocation&, OutcomeCallback done) override {
    ADD_FAILURE() << "a process call ran in the parent";
    done(Outcome::failure(StatusCode::kInternal, "InternalError", "in the parent"));
  }
};

bool process_exists(pid_t pid) { return std::filesystem::exists("/proc/" + std::to_string(pid)); }

class PrpcWorkerTest : public ::testing::Test {
 protected:
  static ProcessOptions options(std::uint32_t workers, std::string plugins = R"(["example"])") {
    ProcessOptions o;
    o.workers = workers;
    o.command = {kWorker, "--set", "functions.plugins=" + plugins, "--log-level", "warn"};
    o.start_timeout = 10s;
    return o;
  }

  std::uint64_t submit(Executor& ex, std::string func, std::string args = "[]",
                       std::string kwargs = "{}", std::chrono::milliseconds timeout = 0ms) {
    std::uint64_t id = ++next_id_;
    auto& stored = calls_[id];
    stored = {std::move(func), std::move(args), std::move(kwargs)};
    Invocation c;
    c.call_id = id;
    c.func_name = stored[0];
    c.args = stored[1];
    c.kwargs = stored[2];
    c.timeout = timeout;
    ex.submit(c, [this, id](Outcome o) {
      std::lock_guard lock(mutex_);
      outcomes_.emplace(id, std::move(o));
    });
    return id;
  }
  bool answered(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    return outcomes_.count(id) != 0;
  }
  Outcome outcome(std::uint64_t id) {
    EXPECT_TRUE(wait_until([&] { return answered(id); }, 20s)) << "call " << id;
    std::lock_guard lock(mutex_);
    auto it = outcomes_.find(id);
    return it == outcomes_.end() ? Outcome::failure(StatusCode::kInternal, "TestError", "none")
                                 : it->second;
  }
  Outcome run(Executor& ex, std::string func, std::string args = "[]", std::string kwargs = "{}",
              std::chrono::milliseconds timeout = 0ms) {
    return outcome(submit(ex, std::move(func), std::move(args), std::move(kwargs), timeout));
  }
  static pid_t busy_pid(ProcessExecutor& ex, std::uint64_t id) {
    for (const WorkerSnapshot& w : ex.snapshot()) {
      if (w.busy && w.call_id == id) return w.pid;
    }
    return -1;
  }

  Unused unused_;
  std::mutex mutex_;
  std::map<std::uint64_t, Outcome> outcomes_;
  std::map<std::uint64_t, std::array<std::string, 3>> calls_;
  std::uint64_t next_id_ = 0;
};

TEST_F(PrpcWorkerTest, ServesTheExampleFunctions) {
  ProcessExecutor ex(options(2), unused_);
  EXPECT_EQ(run(ex, "summ", "[1, 2]").result, "3.5");
  EXPECT_EQ(run(ex, "summ", "[1, 2]", R"({"z": 3})").result, "6");
  EXPECT_EQ(run(ex, "hello_world").result, "\"hello_world\"");
  EXPECT_EQ(run(ex, "echo", R"([{"a": [1, 2.50, "x\u00e9"], "b": null}])").result,
            R"({"a":[1,2.5,"xé"],"b":null})");
  Outcome failed = run(ex, "fail", R"(["boom", "KeyError"])");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error_type, "KeyError");
  EXPECT_EQ(failed.error_message(), "boom");
  Outcome wrong = run(ex, "summ", "[1]");
  EXPECT_EQ(wrong.error_type, "TypeError");
  EXPECT_EQ(wrong.error_message(), "summ() missing required argument: 'b'");
  EXPECT_EQ(run(ex, "slow", "[0.05]").result, "0.05");
  EXPECT_EQ(ex.stats().spawned, 2u);
}

TEST_F(PrpcWorkerTest, ASlowCallPastItsLimitKillsAndReplacesTheWorker) {
  ProcessExecutor ex(options(1), unused_);
  std::uint64_t id = submit(ex, "slow", "[30]", "{}", 300ms);
  pid_t pid = -1;
  ASSERT_TRUE(wait_until([&] { return (pid = busy_pid(ex, id)) > 0; }, 10s));
  Outcome timed_out = outcome(id);
  EXPECT_EQ(timed_out.status.code(), StatusCode::kTimeout);
  EXPECT_EQ(timed_out.error_type, "TimeoutError");
  ASSERT_TRUE(wait_until([&] { return !process_exists(pid); }, 5s));
  EXPECT_EQ(run(ex, "summ", "[2, 2]").result, "4.5");
  EXPECT_NE(ex.snapshot().at(0).pid, pid);
}

TEST_F(PrpcWorkerTest, AWorkerKilledFromOutsideGivesWorkerLostErrorAndTheNextCallWorks) {
  ProcessExecutor ex(options(1), unused_);
  std::uint64_t id = submit(ex, "slow", "[30]");
  pid_t pid = -1;
  ASSERT_TRUE(wait_until([&] { return (pid = busy_pid(ex, id)) > 0; }, 10s));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  Outcome lost = outcome(id);
  EXPECT_EQ(lost.error_type, "WorkerLostError");
  EXPECT_EQ(lost.error_message(), "worker process " + std::to_string(pid) +
                                      " was killed by signal 9 (SIGKILL) while running 'slow'");
  EXPECT_EQ(run(ex, "summ", "[1, 1]").result, "2.5");
}

TEST_F(PrpcWorkerTest, WorkersRunSlowCallsInParallel) {
  constexpr std::size_t kWorkers = 4;
  ProcessExecutor ex(options(kWorkers), unused_);
  // Wait until all are ready, so the calls start together.
  ASSERT_TRUE(wait_until(
      [&] {
        auto snap = ex.snapshot();
        return snap.size() == kWorkers &&
               std::all_of(snap.begin(), snap.end(), [](auto& w) { return w.ready; });
      },
      10s));
  auto started = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> ids;
  for (std::size_t i = 0; i < kWorkers; ++i) ids.push_back(submit(ex, "slow", "[0.5]"));
  std::size_t peak = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        std::size_t busy = 0;
        for (const WorkerSnapshot& w : ex.snapshot()) busy += w.busy ? 1 : 0;
        peak = std::max(peak, busy);
        return peak == kWorkers;
      },
      10s, 2ms));
  for (std::uint64_t id : ids) EXPECT_EQ(outcome(id).result, "0.5");
  // Serially they would take 2 s; together about 0.5 s. The bound is generous on purpose.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1900ms);
}

TEST_F(PrpcWorkerTest, ShutdownLeavesNoChildProcesses) {
  std::vector<pid_t> pids;
  {
    ProcessExecutor ex(options(3), unused_);
    std::uint64_t running = submit(ex, "slow", "[30]");
    ASSERT_TRUE(wait_until(
        [&] {
          auto snap = ex.snapshot();
          return snap.size() == 3 &&
                 std::all_of(snap.begin(), snap.end(), [](auto& w) { return w.ready; }) &&
                 busy_pid(ex, running) > 0;
        },
        10s));
    for (const WorkerSnapshot& w : ex.snapshot()) pids.push_back(w.pid);
    ex.shutdown(100ms);
    EXPECT_EQ(outcome(running).status.code(), StatusCode::kCancelled);
  }
  for (pid_t pid : pids) EXPECT_FALSE(process_exists(pid)) << pid;
  int status = 0;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(PrpcWorkerTest, AWorkerThatCannotLoadItsFunctionsFailsCallsClearly) {
  ProcessOptions o = options(1, R"(["no_such_plugin"])");
  o.start_timeout = 500ms;
  ProcessExecutor ex(o, unused_);
  Outcome r = run(ex, "summ", "[1, 2]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error_type, "WorkerStartError");
  // prpc-worker exits with its plugin error code (4) before its hello, and says why on stderr.
  EXPECT_NE(r.error_message().find("exited with code 4 before saying hello"), std::string::npos)
      << r.error_message();
  EXPECT_NE(r.error_message().find(kWorker), std::string::npos) << r.error_message();
}

TEST_F(PrpcWorkerTest, ThroughThePluginLoader) {
  auto functions = std::make_shared<Unused>();
  PluginRegistry registry({PRPC_TEST_PLUGIN_DIR});
  std::string command = "[\"" + kWorker + R"(", "--set", "functions.plugins=[\"example\"]"])";
  auto made = registry.make_executor(
      "process", {{"workers", "2"}, {"worker_command", command}, {"max_calls_per_worker", "2"}},
      functions);
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  Executor& ex = **made;
  EXPECT_EQ(ex.workers(), 2u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(run(ex, "summ", "[1, 2]").result, "3.5");
  ex.shutdown(1s);

  auto missing = registry.make_executor("process", {{"workers", "2"}}, functions);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("worker_command"), std::string::npos)
      << missing.status().message();
  auto broken = registry.make_executor("process", {{"worker_command", "prpc-worker"}}, functions);
  ASSERT_FALSE(broken.is_ok());
  EXPECT_NE(broken.status().message().find("JSON array of strings"), std::string::npos)
      << broken.status().message();
}

TEST(PrpcWorkerProgram, RefusesToRunWithoutItsSocket) {
  testing::TempDir dir;
  auto child = testing::ChildProcess::start({kWorker, "--set", "functions.plugins=[\"example\"]"},
                                            dir.path() / "out.log", {});
  int code = child.wait(10s);
  EXPECT_EQ(code, 2);
  EXPECT_NE(child.output().find("PRPC_WORKER_FD is not set"), std::string::npos) << child.output();
}

}  // namespace
}  // namespace prpc::process
