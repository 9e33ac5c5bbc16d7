// The async executor with test invokers that complete when the test says so, block, throw, or
// complete inside invoke().
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "async_executor.hpp"
#include "process.hpp"

namespace prpc::async {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

// Holds every completion until the test releases it, like coroutines waiting on I/O.
class HeldInvoker final : public Invoker {
 public:
  void invoke(const Invocation& call, OutcomeCallback done) override {
    std::unique_lock lock(mutex_);
    order_.push_back(call.call_id);
    threads_.insert(std::this_thread::get_id());
    held_[call.call_id] = std::move(done);
    if (call.func_name == "block") {
      blocked_ = true;
      cv_.wait(lock, [this] { return !blocking_; });
    }
  }
  void cancel(std::uint64_t call_id) override {
    std::lock_guard lock(mutex_);
    cancelled_.push_back(call_id);
  }

  // Completes call `id` with its id as the result; false when it was not invoked.
  bool complete(std::uint64_t id) {
    OutcomeCallback done;
    {
      std::lock_guard lock(mutex_);
      auto it = held_.find(id);
      if (it == held_.end()) return false;
      done = std::move(it->second);
      held_.erase(it);
    }
    done(Outcome::success(std::to_string(id)));
    return true;
  }
  std::size_t invoked() {
    std::lock_guard lock(mutex_);
    return order_.size();
  }
  std::vector<std::uint64_t> order() {
    std::lock_guard lock(mutex_);
    return order_;
  }
  std::vector<std::uint64_t> cancelled() {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }
  std::set<std::thread::id> threads() {
    std::lock_guard lock(mutex_);
    return threads_;
  }
  void release_block() {
    {
      std::lock_guard lock(mutex_);
      blocking_ = false;
    }
    cv_.notify_all();
  }
  bool blocked() {
    std::lock_guard lock(mutex_);
    return blocked_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::uint64_t> order_;
  std::vector<std::uint64_t> cancelled_;
  std::set<std::thread::id> threads_;
  std::map<std::uint64_t, OutcomeCallback> held_;
  bool blocking_ = true;
  bool blocked_ = false;
};

struct Results {
  std::mutex mutex;
  std::map<std::uint64_t, Outcome> by_id;
  std::vector<std::uint64_t> order;
  OutcomeCallback add(std::uint64_t id) {
    return [this, id](Outcome o) {
      std::lock_guard lock(mutex);
      EXPECT_EQ(by_id.count(id), 0u) << "call " << id << " answered twice";
      by_id.emplace(id, std::move(o));
      order.push_back(id);
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return by_id.size();
  }
  Outcome get(std::uint64_t id) {
    std::lock_guard lock(mutex);
    return by_id.at(id);
  }
};

Invocation call(std::uint64_t id, std::string_view func = "f",
                std::chrono::milliseconds timeout = 0ms) {
  Invocation c;
  c.call_id = id;
  c.func_name = func;
  c.message_id = "a-message-id";
  c.timeout = timeout;
  return c;
}

TEST(AsyncExecutor, RunsAtMostWorkersCallsAndStartsTheRestInOrder) {
  HeldInvoker inv;
  Results r;
  AsyncExecutor ex(3, inv);
  EXPECT_EQ(ex.workers(), 3u);
  for (std::uint64_t id = 1; id <= 10; ++id) ex.submit(call(id), r.add(id));
  ASSERT_TRUE(wait_until([&] { return inv.invoked() == 3; }, 2s));
  ASSERT_TRUE(wait_until([&] { return ex.stats().queued == 7; }, 2s));
  EXPECT_EQ(inv.invoked(), 3u);  // the queue waits for a free slot
  EXPECT_EQ(ex.stats().running, 3u);

  ASSERT_TRUE(inv.complete(2));
  ASSERT_TRUE(wait_until([&] { return inv.invoked() == 4; }, 2s));
  EXPECT_EQ(r.get(2).result, "2");
  for (std::uint64_t id : {1ull, 3ull, 4ull, 5ull, 6ull, 7ull, 8ull, 9ull, 10ull}) {
    ASSERT_TRUE(wait_until([&] { return inv.complete(id); }, 2s)) << id;
  }
  ASSERT_TRUE(wait_until([&] { return r.size() == 10; }, 2s));
  std::vector<std::uint64_t> expected{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(inv.order(), expected);  // FIFO
  for (std::uint64_t id = 1; id <= 10; ++id) EXPECT_EQ(r.get(id).result, std::to_string(id));
  EXPECT_EQ(ex.stats().completed, 10u);
}

TEST(AsyncExecutor, InvokesFromOneDispatcherThreadNotTheSubmitters) {
  HeldInvoker inv;
  Results r;
  AsyncExecutor ex(100, inv);
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < 25; ++i) {
        std::uint64_t id = static_cast<std::uint64_t>(t) * 100 + i;
        ex.submit(call(id), r.add(id));
      }
    });
  }
  for (auto& t : submitters) t.join();
  ASSERT_TRUE(wait_until([&] { return inv.invoked() == 100; }, 2s));
  auto threads = inv.threads();
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_NE(*threads.begin(), std::this_thread::get_id());
  for (std::uint64_t id : inv.order()) inv.complete(id);
  ASSERT_TRUE(wait_until([&] { return r.size() == 100; }, 2s));
}

TEST(AsyncExecutor, TimeoutAnswersCancelsAndDropsTheLateCompletion) {
  HeldInvoker inv;
  Results r;
  AsyncExecutor ex(1, inv);
  ex.submit(call(1, "f", 50ms), r.add(1));
  ex.submit(call(2), r.add(2));  // waits for the only slot
  ASSERT_TRUE(wait_until([&] { return r.size() == 1; }, 2s));
  Outcome timed_out = r.get(1);
  EXPECT_EQ(timed_out.status.code(), StatusCode::kTimeout);
  EXPECT_EQ(timed_out.error_type, "TimeoutError");
  EXPECT_NE(timed_out.error_message().find("within 50 ms"), std::string::npos);
  ASSERT_TRUE(wait_until([&] { return inv.cancelled() == std::vector<std::uint64_t>{1}; }, 2s));
  // The slot went to the next call.
  ASSERT_TRUE(wait_until([&] { return inv.invoked() == 2; }, 2s));
  // The coroutine finishes anyway: its result is dropped.
  ASSERT_TRUE(inv.complete(1));
  ASSERT_TRUE(wait_until([&] { return ex.stats().late == 1; }, 2s));
  EXPECT_EQ(r.size(), 1u);
  ASSERT_TRUE(inv.complete(2));
  ASSERT_TRUE(wait_until([&] { return r.size() == 2; }, 2s));
  EXPECT_TRUE(r.get(2).ok());
  EXPECT_EQ(ex.stats().timed_out, 1u);
}

TEST(AsyncExecutor, ABlockingInvokerDoesNotStallTimeoutsOrShutdown) {
  HeldInvoker inv;
  Results r;
  auto ex = std::make_unique<AsyncExecutor>(10, inv);
  ex->submit(call(1, "block", 80ms), r.add(1));
  ex->submit(call(2, "f", 80ms), r.add(2));  // stuck behind the blocked dispatcher
  ASSERT_TRUE(wait_until([&] { return inv.blocked(); }, 2s));
  // Both are answered while the invoker is still blocked.
  ASSERT_TRUE(wait_until([&] { return r.size() == 2; }, 2s));
  EXPECT_EQ(r.get(1).status.code(), StatusCode::kTimeout);
  EXPECT_EQ(r.get(2).status.code(), StatusCode::kTimeout);
  ex->submit(call(3), r.add(3));
  ex->shutdown(0ms);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r.get(3).status.code(), StatusCode::kCancelled);
  EXPECT_TRUE(inv.blocked());
  inv.release_block();
  // The timeouts' cancels reach the invoker once the dispatcher is free again; the shutdown's
  // cancel of call 3 did not wait for it.
  ASSERT_TRUE(wait_until([&] { return inv.cancelled().size() == 3; }, 2s));
  auto cancelled = inv.cancelled();
  EXPECT_EQ(cancelled.front(), 3u);
  std::sort(cancelled.begin(), cancelled.end());
  EXPECT_EQ(cancelled, (std::vector<std::uint64_t>{1, 2, 3}));
  ex.reset();
  // Call 2 reached the dispatcher after it had been answered: it was never invoked.
  EXPECT_EQ(inv.order(), std::vector<std::uint64_t>{1});
}

TEST(AsyncExecutor, ShutdownWaitsForCallsWithinGrace) {
  HeldInvoker inv;
  Results r;
  AsyncExecutor ex(4, inv);
  ex.submit(call(1), r.add(1));
  ex.submit(call(2), r.add(2));
  ASSERT_TRUE(wait_until([&] { return inv.invoked() == 2; }, 2s));
  std::thread completer([&] {
    std::this_thread::sleep_for(30ms);
    inv.complete(1);
    inv.complete(2);
  });
  ex.shutdown(5s);
  completer.join();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r.get(1).ok());
  EXPECT_TRUE(r.get(2).ok());
  EXPECT_TRUE(inv.cancelled().empty());
}

TEST(AsyncExecutor, ShutdownCancelsWhatIsLeftAfterGrace) {
  HeldInvoker inv;
  Results r;
  AsyncExecutor ex(2, inv);
  for (std::uint64_t id = 1; id <= 4; ++id) ex.submit(call(id), r.add(id));
  ASSERT_TRUE(wait_until([&] { return inv.invoked() == 2; }, 2s));
  ex.shutdown(20ms);
  ASSERT_EQ(r.size(), 4u);
  for (std::uint64_t id = 1; id <= 4; ++id) {
    EXPECT_EQ(r.get(id).status.code(), StatusCode::kCancelled) << id;
    EXPECT_EQ(r.get(id).error_type, "CancelledError");
  }
  // Only the running calls reached the invoker, so only they are cancelled there.
  auto cancelled = inv.cancelled();
  std::sort(cancelled.begin(), cancelled.end());
  EXPECT_EQ(cancelled, (std::vector<std::uint64_t>{1, 2}));
  // Late completions and new calls after shutdown.
  inv.complete(1);
  ex.submit(call(5), r.add(5));
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r.get(5).status.code(), StatusCode::kCancelled);
  EXPECT_EQ(inv.invoked(), 2u);
}

// Completes inside invoke(), on the dispatcher thread.
class InlineInvoker final : public Invoker {
 public:
  void invoke(const Invocation& call, OutcomeCallback done) override {
    int now = ++running_;
    int seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
    --running_;
    if (call.func_name == "throw") throw std::runtime_error("no such coroutine");
    done(Outcome::success(std::string(call.args)));
  }
  std::atomic<int> running_{0};
  std::atomic<int> peak_{0};
};

TEST(AsyncExecutor, SynchronousCompletionsAndThrowingInvokers) {
  InlineInvoker inv;
  Results r;
  AsyncExecutor ex(10, inv);
  for (std::uint64_t id = 1; id <= 1000; ++id) ex.submit(call(id), r.add(id));
  ex.submit(call(1001, "throw"), r.add(1001));
  ASSERT_TRUE(wait_until([&] { return r.size() == 1001; }, 10s));
  for (std::uint64_t id = 1; id <= 1000; ++id) ASSERT_TRUE(r.get(id).ok()) << id;
  Outcome thrown = r.get(1001);
  EXPECT_EQ(thrown.status.code(), StatusCode::kInternal);
  EXPECT_NE(thrown.error_message().find("no such coroutine"), std::string::npos);
  EXPECT_EQ(inv.peak_.load(), 1);  // one dispatcher thread
}

TEST(AsyncExecutor, ACompletionAfterTheExecutorIsGoneIsHarmless) {
  HeldInvoker inv;
  Results r;
  {
    AsyncExecutor ex(1, inv);
    ex.submit(call(1), r.add(1));
    ASSERT_TRUE(wait_until([&] { return inv.invoked() == 1; }, 2s));
  }
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r.get(1).status.code(), StatusCode::kCancelled);
  EXPECT_TRUE(inv.complete(1));  // into a destroyed executor: dropped
  EXPECT_EQ(r.size(), 1u);
}

TEST(AsyncExecutor, ResubmittingFromACompletionWorks) {
  InlineInvoker inv;
  std::atomic<int> chain{0};
  AsyncExecutor ex(1, inv);
  std::function<void(Outcome)> again = [&](Outcome o) {
    EXPECT_TRUE(o.ok());
    if (++chain < 50) ex.submit(call(static_cast<std::uint64_t>(chain.load())), again);
  };
  ex.submit(call(0), again);
  ASSERT_TRUE(wait_until([&] { return chain.load() == 50; }, 5s));
}

}  // namespace
}  // namespace prpc::async
