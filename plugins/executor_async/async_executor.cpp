#include "async_executor.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "prpc/own_thread.hpp"

namespace prpc::async {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using WorkGuard = asio::executor_work_guard<asio::io_context::executor_type>;

// A completion may arrive after the executor is gone (a coroutine that ignored its cancel), and
// a blocked dispatcher thread may outlive it: keep this library's code mapped for them.
void pin_this_library() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&pin_this_library), &info) != 0 && info.dli_fname != nullptr) {
    if (void* h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) dlclose(h);
  }
}

// What the dispatcher needs of a call. Holds no Asio object, so it may outlive the loops.
struct Call {
  std::uint64_t seq = 0;
  OwnedInvocation invocation;
  std::atomic<bool> settled{false};  // answered: an invoke not yet made is skipped
};
using CallPtr = std::shared_ptr<Call>;

// The control loop's record of a call.
struct Entry {
  CallPtr call;
  OutcomeCallback done;
  std::unique_ptr<asio::steady_timer> timer;
};

Outcome cancelled(std::string_view why) {
  return Outcome::failure(StatusCode::kCancelled, error_types::kCancelled, std::string(why));
}

}  // namespace

struct AsyncExecutor::State : std::enable_shared_from_this<AsyncExecutor::State> {
  State(std::uint32_t workers, Invoker& inv, sdk::Logger logger)
      : limit(workers), invoker(inv), log(std::move(logger)) {}

  const std::uint32_t limit;
  Invoker& invoker;
  sdk::Logger log;

  // Declared first so they are destroyed last: entries hold timers bound to `control`.
  asio::io_context control{1};
  asio::io_context dispatcher{1};
  std::optional<WorkGuard> control_work;
  std::optional<WorkGuard> dispatcher_work;
  std::thread control_thread;
  std::thread dispatcher_thread;

  std::atomic<bool> accepting{true};
  std::atomic<std::uint64_t> next_seq{0};
  std::atomic<std::int64_t> outstanding{0};  // invoked, completion not yet seen

  // The dispatcher's handshake with the destructor.
  std::mutex dispatch_mutex;
  bool dispatch_closed = false;
  bool in_invoke = false;

  mutable std::mutex stats_mutex;
  AsyncStats counters;

  // Owned by the control loop.
  bool open = true;
  std::deque<Entry> queue;
  std::unordered_map<std::uint64_t, Entry> active;
  std::vector<std::shared_ptr<std::promise<void>>> drain_waiters;

  void start_threads() {
    control_work.emplace(control.get_executor());
    dispatcher_work.emplace(dispatcher.get_executor());
    auto self = shared_from_this();
    control_thread = std::thread([self] { self->control.run(); });
    dispatcher_thread = std::thread([self] { self->dispatcher.run(); });
  }

  template <typename F>
  void count(F&& f) {
    std::lock_guard lock(stats_mutex);
    f(counters);
    counters.running = static_cast<std::uint32_t>(active.size());
    counters.queued = static_cast<std::uint32_t>(queue.size());
  }

  // ---- control loop --------------------------------------------------------------------

  void admit(Entry entry) {
    if (!open) {
      answer(entry, cancelled("the executor is shutting down"));
      count([](AsyncStats& s) { ++s.cancelled; });
      return;
    }
    if (active.size() < limit) {
      begin(std::move(entry));
    } else {
      queue.push_back(std::move(entry));
      count([](AsyncStats&) {});
    }
  }

  void begin(Entry entry) {
    CallPtr call = entry.call;
    std::uint64_t seq = call->seq;
    if (call->invocation.timeout.count() > 0) {
      entry.timer = std::make_unique<asio::steady_timer>(control, call->invocation.timeout);
      std::weak_ptr<State> weak = weak_from_this();
      entry.timer->async_wait([weak, seq](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->timed_out(seq);
      });
    }
    active.emplace(seq, std::move(entry));
    count([](AsyncStats& s) { ++s.started; });
    std::weak_ptr<State> weak = weak_from_this();
    asio::post(dispatcher, [weak, call] {
      if (auto self = weak.lock()) self->invoke(call);
    });
  }

  void completed(std::uint64_t seq, Outcome outcome) {
    auto it = active.find(seq);
    if (it == active.end()) {
      count([](AsyncStats& s) { ++s.late; });  // answered already: timed out or cancelled
      return;
    }
    Entry entry = std::move(it->second);
    active.erase(it);
    answer(entry, std::move(outcome));
    count([](AsyncStats& s) { ++s.completed; });
    refill();
  }

  void timed_out(std::uint64_t seq) {
    auto it = active.find(seq);
    if (it == active.end()) return;
    Entry entry = std::move(it->second);
    active.erase(it);
    const OwnedInvocation& inv = entry.call->invocation;
    std::string name = inv.func_name;
    auto limit_ms = inv.timeout.count();
    log.warn("call " + inv.message_id + " to '" + name + "' passed its limit of " +
             std::to_string(limit_ms) + " ms and was cancelled");
    cancel_in_invoker(entry.call);
    answer(entry, Outcome::failure(StatusCode::kTimeout, error_types::kTimeout,
                                   server_timeout_text(name, inv.timeout)));
    count([](AsyncStats& s) { ++s.timed_out; });
    refill();
  }

  // The slot of an answered call goes to the oldest waiting call.
  void refill() {
    while (active.size() < limit && !queue.empty()) {
      Entry next = std::move(queue.front());
      queue.pop_front();
      begin(std::move(next));
    }
    count([](AsyncStats&) {});
    if (active.empty() && queue.empty()) {
      for (auto& w : drain_waiters) w->set_value();
      drain_waiters.clear();
    }
  }

  void answer(Entry& entry, Outcome outcome) const {
    entry.call->settled.store(true);
    if (entry.timer) entry.timer->cancel();
    OutcomeCallback done = std::move(entry.done);
    try {
      done(std::move(outcome));
    } catch (const std::exception& e) {
      log.error(std::string("async executor: a completion threw: ") + e.what());
    } catch (...) {
      log.error("async executor: a completion threw");
    }
  }

  // Answers every call still here with kCancelled; returns the calls the invoker was given.
  std::vector<CallPtr> cancel_all(std::string_view why) {
    open = false;
    std::vector<CallPtr> invoked;
    std::deque<Entry> waiting;
    waiting.swap(queue);
    std::unordered_map<std::uint64_t, Entry> running;
    running.swap(active);
    for (Entry& e : waiting) answer(e, cancelled(why));
    for (auto& [seq, e] : running) {
      invoked.push_back(e.call);
      answer(e, cancelled(why));
    }
    count([&](AsyncStats& s) { s.cancelled += waiting.size() + running.size(); });
    for (auto& w : drain_waiters) w->set_value();
    drain_waiters.clear();
    return invoked;
  }

  // ---- dispatcher ----------------------------------------------------------------------

  void invoke(const CallPtr& call) {
    if (call->settled.load()) return;  // answered while it waited here
    {
      std::lock_guard lock(dispatch_mutex);
      if (dispatch_closed) return;
      in_invoke = true;
    }
    outstanding.fetch_add(1);
    std::weak_ptr<State> weak = weak_from_this();
    std::uint64_t seq = call->seq;
    auto on_done = [weak, seq](Outcome outcome) {
      auto self = weak.lock();
      if (!self) return;
      self->outstanding.fetch_sub(1);
      asio::post(self->control, [weak, seq, o = std::move(outcome)]() mutable {
        if (auto s = weak.lock()) s->completed(seq, std::move(o));
      });
    };
    run_guarded("the invoker", on_done, [&](OutcomeCallback once) {
      invoker.invoke(call->invocation.view(), std::move(once));
    });
    std::lock_guard lock(dispatch_mutex);
    in_invoke = false;
  }

  void cancel_in_invoker(const CallPtr& call) {
    std::weak_ptr<State> weak = weak_from_this();
    asio::post(dispatcher, [weak, id = call->invocation.call_id] {
      if (auto self = weak.lock()) self->invoker.cancel(id);
    });
  }
};

std::vector<sdk::OptionSpec> AsyncExecutor::options() {
  return {{"workers", PRPC_OPT_INT, "100", "calls running at once; more wait in FIFO order"}};
}

AsyncExecutor::AsyncExecutor(std::uint32_t workers, Invoker& invoker, sdk::Logger log)
    : workers_(workers == 0 ? 1 : workers),
      state_(std::make_shared<State>(workers_, invoker, std::move(log))) {
  state_->start_threads();
}

AsyncExecutor::AsyncExecutor(const sdk::Context& ctx, Invoker& invoker)
    : AsyncExecutor(static_cast<std::uint32_t>(std::clamp<std::int64_t>(
                        ctx.options.get_int("workers", 100), 1, 1'000'000)),
                    invoker, ctx.log) {}

AsyncExecutor::~AsyncExecutor() {
  shutdown(milliseconds(0));
  State& s = *state_;
  bool detached = false;
  s.control_work.reset();
  s.control.stop();
  detached = join_or_detach(s.control_thread);
  bool stuck = false;
  {
    std::lock_guard lock(s.dispatch_mutex);
    s.dispatch_closed = true;
    stuck = s.in_invoke;
  }
  // Pending cancels still reach the invoker; pending invokes are skipped.
  s.dispatcher_work.reset();
  if (stuck) {
    s.dispatcher_thread.detach();  // it is inside the invoker, which may never return
    detached = true;
  } else {
    detached = join_or_detach(s.dispatcher_thread) || detached;
  }
  if (detached || s.outstanding.load() > 0) pin_this_library();
}

void AsyncExecutor::submit(const Invocation& call, OutcomeCallback done) {
  if (!state_->accepting.load()) {
    done(cancelled("the executor is shutting down"));
    return;
  }
  Entry entry;
  entry.call = std::make_shared<Call>();
  entry.call->seq = state_->next_seq.fetch_add(1) + 1;
  entry.call->invocation = OwnedInvocation(call);
  entry.done = std::move(done);
  // std::function needs a copyable target; the entry moves through a shared holder.
  auto holder = std::make_shared<Entry>(std::move(entry));
  asio::post(state_->control, [s = state_, holder] { s->admit(std::move(*holder)); });
}

void AsyncExecutor::shutdown(milliseconds grace) {
  State& s = *state_;
  s.accepting.store(false);
  std::vector<CallPtr> to_cancel;
  if (s.control.get_executor().running_in_this_thread()) {
    to_cancel = s.cancel_all("the executor shut down before the call finished");
  } else {
    auto drained = std::make_shared<std::promise<void>>();
    std::future<void> drained_future = drained->get_future();
    asio::post(s.control, [st = state_, drained] {
      st->open = false;
      if (st->active.empty() && st->queue.empty()) {
        drained->set_value();
      } else {
        st->drain_waiters.push_back(drained);
      }
    });
    drained_future.wait_for(grace);
    std::promise<std::vector<CallPtr>> swept;
    std::future<std::vector<CallPtr>> swept_future = swept.get_future();
    asio::post(s.control, [st = state_, &swept] {
      swept.set_value(st->cancel_all("the executor shut down before the call finished"));
    });
    to_cancel = swept_future.get();
  }
  // From this thread: the dispatcher may be stuck in an invoke that never returns.
  for (const CallPtr& c : to_cancel) s.invoker.cancel(c->invocation.call_id);
}

AsyncStats AsyncExecutor::stats() const {
  std::lock_guard lock(state_->stats_mutex);
  return state_->counters;
}

}  // namespace prpc::async
