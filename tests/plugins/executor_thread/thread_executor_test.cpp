#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "process.hpp"
#include "thread_executor.hpp"

namespace prpc::thread {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

// Sleeps for the number of milliseconds in `args` and counts how many calls overlap.
class SleepyInvoker final : public Invoker {
 public:
  void invoke(const Invocation& call, OutcomeCallback done) override {
    int now = ++running_;
    int seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(std::string(call.args))));
    --running_;
    ++completed_;
    done(Outcome::success(std::string(call.args)));
  }
  void cancel(std::uint64_t id) override { cancelled_ = static_cast<int>(id); }
  std::atomic<int> running_{0};
  std::atomic<int> peak_{0};
  std::atomic<int> completed_{0};
  std::atomic<int> cancelled_{0};
};

struct Results {
  std::mutex mutex;
  std::vector<Outcome> outcomes;
  OutcomeCallback add() {
    return [this](Outcome o) {
      std::lock_guard lock(mutex);
      outcomes.push_back(std::move(o));
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return outcomes.size();
  }
};

Invocation call(const std::string& ms, std::chrono::milliseconds timeout = 0ms,
                std::uint64_t id = 1) {
  static std::vector<std::unique_ptr<std::string>> keep;  // views must outlive submit
  keep.push_back(std::make_unique<std::string>(ms));
  Invocation c;
  c.call_id = id;
  c.func_name = "sleep";
  c.args = *keep.back();
  c.timeout = timeout;
  return c;
}

TEST(ThreadExecutor, RunsAtMostWorkersCallsAtOnce) {
  SleepyInvoker inv;
  Results r;
  {
    ThreadExecutor ex(3, inv);
    EXPECT_EQ(ex.workers(), 3u);
    for (int i = 0; i < 9; ++i) ex.submit(call("40"), r.add());
    ASSERT_TRUE(wait_until([&] { return r.size() == 9; }, 5s));
  }
  EXPECT_EQ(inv.peak_.load(), 3);
  for (const Outcome& o : r.outcomes) EXPECT_TRUE(o.ok());
}

// Throws something that is no std::exception, before or after answering.
class ThrowingInvoker final : public Invoker {
 public:
  void invoke(const Invocation& call, OutcomeCallback done) override {
    if (call.args == "after") done(Outcome::success("1"));
    throw 42;  // NOLINT(hicpp-exception-baseclass): the point of the test
  }
};

TEST(ThreadExecutor, AnInvokerThatThrowsAnythingIsAnsweredExactlyOnce) {
  ThrowingInvoker inv;
  Results r;
  ThreadExecutor ex(1, inv);
  ex.submit(call("before"), r.add());
  ex.submit(call("after"), r.add());
  ASSERT_TRUE(wait_until([&] { return r.size() == 2; }, 2s));
  ex.shutdown(1s);
  ASSERT_EQ(r.size(), 2u);  // not three: the one answered before the throw is not answered again
  EXPECT_EQ(r.outcomes[0].status.code(), StatusCode::kInternal);
  EXPECT_NE(r.outcomes[0].error_message().find("the invoker threw an unknown exception"),
            std::string::npos);
  EXPECT_TRUE(r.outcomes[1].ok());
}

TEST(ThreadExecutor, TimeoutAnswersAndReplacesTheStuckThread) {
  SleepyInvoker inv;
  Results r;
  ThreadExecutor ex(1, inv);
  ex.submit(call("600", 50ms, 42), r.add());
  ASSERT_TRUE(wait_until([&] { return r.size() == 1; }, 2s));
  EXPECT_EQ(r.outcomes[0].status.code(), StatusCode::kTimeout);
  EXPECT_EQ(r.outcomes[0].error_type, "TimeoutError");
  EXPECT_EQ(inv.cancelled_.load(), 42);
  // The pool still has a free thread while the first is stuck.
  ex.submit(call("1"), r.add());
  ASSERT_TRUE(wait_until([&] { return r.size() == 2; }, 300ms));
  EXPECT_TRUE(r.outcomes[1].ok());
  // The late result of the abandoned call is dropped.
  ASSERT_TRUE(wait_until([&] { return inv.completed_.load() == 2; }, 2s));
  EXPECT_EQ(r.size(), 2u);
}

TEST(ThreadExecutor, ShutdownDrainsThenCancels) {
  SleepyInvoker inv;
  Results r;
  ThreadExecutor ex(1, inv);
  ex.submit(call("300"), r.add());
  ex.submit(call("300"), r.add());
  ASSERT_TRUE(wait_until([&] { return inv.running_.load() == 1; }, 2s));
  ex.shutdown(20ms);
  ASSERT_EQ(r.size(), 2u);
  for (const Outcome& o : r.outcomes) EXPECT_EQ(o.status.code(), StatusCode::kCancelled);
  ex.submit(call("1"), r.add());
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r.outcomes[2].status.code(), StatusCode::kCancelled);
}

TEST(ThreadExecutor, ShutdownWaitsForCallsWithinGrace) {
  SleepyInvoker inv;
  Results r;
  ThreadExecutor ex(2, inv);
  ex.submit(call("50"), r.add());
  ex.submit(call("50"), r.add());
  ex.shutdown(5s);
  ASSERT_EQ(r.size(), 2u);
  for (const Outcome& o : r.outcomes) EXPECT_TRUE(o.ok());
}

// An invoker that completes on another thread: the worker stays busy until then.
class AsyncInvoker final : public Invoker {
 public:
  void invoke(const Invocation& c, OutcomeCallback done) override {
    std::thread([done = std::move(done), v = std::string(c.args)] {
      std::this_thread::sleep_for(20ms);
      done(Outcome::success(v));
    }).detach();
  }
};

TEST(ThreadExecutor, AsynchronousInvokers) {
  AsyncInvoker inv;
  Results r;
  ThreadExecutor ex(2, inv);
  for (int i = 0; i < 4; ++i) ex.submit(call(std::to_string(i)), r.add());
  ASSERT_TRUE(wait_until([&] { return r.size() == 4; }, 5s));
  ex.shutdown(1s);
}

}  // namespace
}  // namespace prpc::thread
