#include "thread_executor.hpp"

#include <dlfcn.h>

#include <map>
#include <set>
#include <unordered_map>

namespace prpc::thread {
namespace {

using Clock = std::chrono::steady_clock;

// A thread stuck in an abandoned call may outlive the executor; keep this library mapped so
// the thread can still return through its code.
void pin_this_library() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&pin_this_library), &info) != 0 && info.dli_fname != nullptr) {
    if (void* h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) dlclose(h);
  }
}

}  // namespace

struct Job {
  OwnedInvocation call;
  OutcomeCallback done;
  std::mutex mutex;
  std::condition_variable returned_cv;
  bool returned = false;   // the invoker's callback has run
  bool finished = false;   // `done` was claimed (by the result, a timeout or shutdown)
  bool delivered = false;  // ... and has returned: the caller has the outcome
  bool abandoned = false;  // its thread was replaced; it exits when the call returns

  // Calls `done` unless someone already did. True when this call won.
  bool finish(Outcome outcome) {
    OutcomeCallback cb;
    {
      std::lock_guard lock(mutex);
      if (finished) return false;
      finished = true;
      cb = std::move(done);
    }
    cb(std::move(outcome));
    std::lock_guard lock(mutex);
    delivered = true;
    return true;
  }
};
using JobPtr = std::shared_ptr<Job>;

struct ThreadExecutor::State : std::enable_shared_from_this<ThreadExecutor::State> {
  State(std::uint32_t workers, Invoker& inv, sdk::Logger logger)
      : target(workers), invoker(inv), log(std::move(logger)) {}

  const std::uint32_t target;
  Invoker& invoker;
  sdk::Logger log;

  std::mutex mutex;
  std::condition_variable work_cv;      // work queued, a thread in excess, stopping
  std::condition_variable watchdog_cv;  // a new deadline, stopping
  std::condition_variable idle_cv;      // a call finished (for shutdown)
  std::deque<JobPtr> queue;
  std::set<JobPtr> active;
  std::unordered_map<std::thread::id, JobPtr> running_on;
  std::multimap<Clock::time_point, std::weak_ptr<Job>> deadlines;
  std::vector<std::thread> threads;
  bool accepting = true;
  bool stopping = false;

  // Starts one worker. Lock held.
  void spawn() {
    threads.emplace_back([self = shared_from_this()] { self->work(); });
  }

  void work() {
    std::unique_lock lock(mutex);
    while (true) {
      work_cv.wait(lock, [this] { return stopping || !queue.empty(); });
      if (stopping && queue.empty()) return;
      JobPtr job = queue.front();
      queue.pop_front();
      active.insert(job);
      running_on[std::this_thread::get_id()] = job;
      if (job->call.timeout.count() > 0) {
        deadlines.emplace(Clock::now() + job->call.timeout, job);
        watchdog_cv.notify_one();
      }
      lock.unlock();
      OutcomeCallback returned = [job](Outcome outcome) {
        // Delivered before the thread is released, so a shutdown that waits for the thread
        // also waits for the caller to have the outcome.
        job->finish(std::move(outcome));
        {
          std::lock_guard l(job->mutex);
          job->returned = true;
        }
        job->returned_cv.notify_all();
      };
      run_guarded("the invoker", std::move(returned),
                  [&](OutcomeCallback once) { invoker.invoke(job->call.view(), std::move(once)); });
      {
        // An asynchronous invoker completes later; the thread stays busy until it does.
        std::unique_lock l(job->mutex);
        job->returned_cv.wait(l, [&job] { return job->returned; });
      }
      lock.lock();
      active.erase(job);
      running_on.erase(std::this_thread::get_id());
      idle_cv.notify_all();
      bool replaced = false;
      {
        std::lock_guard l(job->mutex);
        replaced = job->abandoned;
      }
      if (replaced) return;  // a replacement took this thread's place in the pool
    }
  }

  void watchdog() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      if (deadlines.empty()) {
        watchdog_cv.wait(lock);
        continue;
      }
      auto first = deadlines.begin();
      if (Clock::now() < first->first) {
        watchdog_cv.wait_until(lock, first->first);
        continue;
      }
      JobPtr job = first->second.lock();
      deadlines.erase(first);
      if (!job) continue;
      {
        std::lock_guard l(job->mutex);
        if (job->finished || job->returned) continue;
        job->abandoned = true;
      }
      spawn();  // the stuck thread leaves the pool when its call returns; this one replaces it
      lock.unlock();
      std::string name = job->call.func_name;
      auto limit = job->call.timeout.count();
      bool won = job->finish(Outcome::failure(StatusCode::kTimeout, error_types::kTimeout,
                                              server_timeout_text(name, job->call.timeout)));
      if (won) {
        invoker.cancel(job->call.call_id);
        log.warn("call " + job->call.message_id + " to '" + name + "' passed its limit of " +
                 std::to_string(limit) + " ms; its thread was abandoned and replaced");
      }
      lock.lock();
    }
  }
};

std::vector<sdk::OptionSpec> ThreadExecutor::options() {
  return {{"workers", PRPC_OPT_INT, "4", "number of threads (calls running at once)"}};
}

ThreadExecutor::ThreadExecutor(std::uint32_t workers, Invoker& invoker, sdk::Logger log)
    : workers_(workers == 0 ? 1 : workers),
      state_(std::make_shared<State>(workers_, invoker, std::move(log))) {
  std::lock_guard lock(state_->mutex);
  for (std::uint32_t i = 0; i < workers_; ++i) state_->spawn();
  state_->threads.emplace_back([s = state_] { s->watchdog(); });
}

ThreadExecutor::ThreadExecutor(const sdk::Context& ctx, Invoker& invoker)
    : ThreadExecutor(
          static_cast<std::uint32_t>(std::max<std::int64_t>(1, ctx.options.get_int("workers", 4))),
          invoker, ctx.log) {}

ThreadExecutor::~ThreadExecutor() {
  shutdown(std::chrono::milliseconds(0));
  std::vector<std::thread> threads;
  std::set<std::thread::id> stuck;
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    threads.swap(state_->threads);
    for (const auto& [id, job] : state_->running_on) {
      std::lock_guard l(job->mutex);
      if (job->abandoned || job->finished) stuck.insert(id);
    }
  }
  state_->work_cv.notify_all();
  state_->watchdog_cv.notify_all();
  bool detached = false;
  for (std::thread& t : threads) {
    if (t.get_id() == std::this_thread::get_id() || stuck.count(t.get_id()) != 0) {
      t.detach();  // it holds the shared state and exits when its call returns
      detached = true;
    } else {
      t.join();
    }
  }
  if (detached) pin_this_library();
}

void ThreadExecutor::submit(const Invocation& call, OutcomeCallback done) {
  auto job = std::make_shared<Job>();
  job->call = OwnedInvocation(call);
  job->done = std::move(done);
  {
    std::lock_guard lock(state_->mutex);
    if (state_->accepting) {
      state_->queue.push_back(job);
      state_->work_cv.notify_one();
      return;
    }
  }
  job->finish(Outcome::failure(StatusCode::kCancelled, error_types::kCancelled,
                               "the executor is shutting down"));
}

void ThreadExecutor::shutdown(std::chrono::milliseconds grace) {
  std::vector<JobPtr> cancel;
  {
    std::unique_lock lock(state_->mutex);
    state_->accepting = false;
    state_->idle_cv.wait_for(lock, grace, [this] {
      if (!state_->queue.empty()) return false;
      for (const JobPtr& j : state_->active) {
        std::lock_guard l(j->mutex);
        if (!j->delivered) return false;
      }
      return true;
    });
    cancel.assign(state_->queue.begin(), state_->queue.end());
    state_->queue.clear();
    for (const JobPtr& j : state_->active) {
      std::lock_guard l(j->mutex);
      if (!j->finished) {
        j->abandoned = true;
        cancel.push_back(j);
      }
    }
  }
  for (const JobPtr& j : cancel) {
    j->finish(Outcome::failure(StatusCode::kCancelled, error_types::kCancelled,
                               "the executor shut down before the call finished"));
  }
}

}  // namespace prpc::thread
