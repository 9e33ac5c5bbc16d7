#include "process_executor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "prpc/own_thread.hpp"
#include "prpc/worker.hpp"
#include "worker_process.hpp"

namespace prpc::process {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kBackoffFirst{100};
constexpr milliseconds kBackoffMax{10'000};
// A worker that closed its socket but keeps running is killed after this long.
constexpr milliseconds kExitAfterEof{1'000};
// Without a pidfd, exits are noticed by polling at this period.
constexpr milliseconds kReapPoll{20};
// After SIGKILL a process is gone within this long unless the kernel is stuck.
constexpr milliseconds kReapGiveUp{5'000};

milliseconds backoff(int failures) {
  milliseconds d = kBackoffFirst;
  for (int i = 1; i < failures && d < kBackoffMax; ++i) d *= 2;
  return std::min(d, kBackoffMax);
}

}  // namespace

class ProcessExecutor::Supervisor : public std::enable_shared_from_this<Supervisor> {
 public:
  Supervisor(ProcessOptions options, sdk::Logger log)
      : opts_(std::move(options)), log_(std::move(log)), slots_(opts_.workers) {
    wake_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_fd_.valid()) throw std::runtime_error("eventfd: " + errno_text(errno));
    unready_since_ = Clock::now();
  }
  ~Supervisor() = default;
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  void start() {
    thread_ = std::thread([self = shared_from_this()] { self->run(); });
    loop_id_ = thread_.get_id();
  }

  void submit(const Invocation& call, OutcomeCallback done) {
    auto job = std::make_unique<Job>();
    job->call = OwnedInvocation(call);
    job->done = std::move(done);
    job->queued_at = Clock::now();
    JobPtr refused;  // answered outside the lock: a completion may submit again
    {
      std::lock_guard lock(mutex_);
      if (accepting_) {
        queue_.push_back(std::move(job));
        ++unfinished_;
      } else {
        refused = std::move(job);
      }
    }
    if (refused) {
      refused->done(Outcome::failure(StatusCode::kCancelled, error_types::kCancelled,
                                     "the executor is shutting down"));
      return;
    }
    // One wake-up serves every call submitted before the loop looks at the queue again.
    if (!wake_pending_.exchange(true)) wake();
  }

  void shutdown(milliseconds grace) {
    {
      std::unique_lock lock(mutex_);
      accepting_ = false;
      if (std::this_thread::get_id() != loop_id_) {
        idle_cv_.wait_for(lock, grace, [this] { return unfinished_ == 0; });
      }
      stop_ = true;
    }
    wake();
    std::lock_guard join_lock(join_mutex_);
    // Called from a completion, the loop ends after this iteration.
    join_or_detach(thread_);
  }

  std::vector<WorkerSnapshot> snapshot() const {
    std::lock_guard lock(mutex_);
    return snapshot_;
  }
  ProcessStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  std::uint32_t workers() const { return opts_.workers; }

 private:
  // ---- the loop --------------------------------------------------------------------------

  void run() {
    while (true) {
      bool stop = false;
      {
        std::lock_guard lock(mutex_);
        stop = stop_;
      }
      if (stop) break;
      try {
        iterate();
      } catch (const std::exception& e) {
        // Nothing here is expected to throw but allocation; keep supervising.
        log_.error(std::string("process executor: ") + e.what());
      } catch (...) {
        log_.error("process executor: an unknown exception in the supervisor");
      }
    }
    try {
      stop_all();
    } catch (const std::exception& e) {
      log_.error(std::string("process executor: stopping: ") + e.what());
    } catch (...) {
      log_.error("process executor: stopping: an unknown exception");
    }
  }

  void iterate() {
    auto now = Clock::now();
    check_timers(now);
    reap_all();
    spawn_due(now);
    dispatch(now);
    fail_stale(now);
    publish();
    deliver();

    std::vector<pollfd> fds;
    std::vector<int> owner;  // >= 0: slot index; -1: the wake fd; <= -2: dying index -(i+2)
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    owner.push_back(-1);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      const Live* w = slots_[i].worker.get();
      if (w == nullptr) continue;
      short events = POLLIN;
      if (w->out_pos < w->out.size()) events |= POLLOUT;
      fds.push_back({w->fd.get(), events, 0});
      owner.push_back(static_cast<int>(i));
    }
    for (std::size_t i = 0; i < dying_.size(); ++i) {
      if (!dying_[i].pidfd.valid()) continue;
      fds.push_back({dying_[i].pidfd.get(), POLLIN, 0});
      owner.push_back(-2 - static_cast<int>(i));
    }
    int rc = ::poll(fds.data(), fds.size(), poll_timeout(Clock::now()));
    if (rc <= 0) return;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      if (owner[k] == -1) {
        std::uint64_t n = 0;
        while (::read(wake_fd_.get(), &n, sizeof(n)) > 0) {
        }
        // Cleared after draining: a submit that still sees it set has queued its call before
        // this point, and the next iteration's dispatch() takes it.
        wake_pending_.store(false);
      } else if (owner[k] >= 0) {
        on_ready(static_cast<std::size_t>(owner[k]), fds[k].revents);
      }
      // Readable pidfds need nothing here: reap_all() runs first in the next iteration.
    }
    deliver();
  }

  int poll_timeout(Clock::time_point now) const {
    std::optional<Clock::time_point> next;
    auto consider = [&](Clock::time_point t) {
      if (!next || t < *next) next = t;
    };
    for (const Slot& s : slots_) {
      if (!s.worker) {
        consider(s.retry_at);
      } else if (s.worker->phase == Phase::kStarting) {
        consider(s.worker->spawned_at + opts_.start_timeout);
      } else if (s.worker->call_deadline) {
        consider(*s.worker->call_deadline);
      }
    }
    for (const Dying& d : dying_) {
      if (!d.killed) consider(d.kill_at);
      if (!d.pidfd.valid()) consider(now + kReapPoll);
      if (d.killed_at) consider(*d.killed_at + kReapGiveUp);
    }
    if (!any_ready() && !last_start_error_.empty()) {
      std::lock_guard lock(mutex_);
      if (!queue_.empty()) {
        consider(std::max(queue_.front()->queued_at, unready_since_) + opts_.start_timeout);
      }
    }
    if (!next) return -1;
    auto wait = std::chrono::ceil<milliseconds>(*next - now).count();
    return static_cast<int>(std::clamp<long long>(wait, 0, 60'000));
  }

  void wake() {
    std::uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_.get(), &one, sizeof(one));
    (void)ignored;  // the counter is already non-zero when this fails: the loop will wake
  }

  // ---- answers ---------------------------------------------------------------------------

  void answer(JobPtr job, Outcome outcome) {
    answers_.emplace_back(std::move(job), std::move(outcome));
  }

  // Completions run on this thread without any lock held, so they may submit again.
  void deliver() {
    if (answers_.empty()) return;
    std::vector<std::pair<JobPtr, Outcome>> batch;
    batch.swap(answers_);
    for (auto& [job, outcome] : batch) {
      try {
        job->done(std::move(outcome));
      } catch (const std::exception& e) {
        log_.error(std::string("process executor: a completion threw: ") + e.what());
      } catch (...) {
        log_.error("process executor: a completion threw");
      }
    }
    std::lock_guard lock(mutex_);
    unfinished_ -= batch.size();
    if (unfinished_ == 0) idle_cv_.notify_all();
  }

  // ---- workers ---------------------------------------------------------------------------

  bool any_ready() const {
    for (const Slot& s : slots_) {
      if (s.worker && s.worker->phase != Phase::kStarting) return true;
    }
    return false;
  }

  void spawn_due(Clock::time_point now) {
    for (Slot& slot : slots_) {
      if (slot.worker || now < slot.retry_at) continue;
      auto spawned = spawn_worker(opts_.command);
      if (!spawned.is_ok()) {
        start_failed(slot, now, spawned.status().message());
        continue;
      }
      auto w = std::make_unique<Live>();
      w->pid = spawned->pid;
      w->fd = std::move(spawned->fd);
      w->pidfd = std::move(spawned->pidfd);
      w->spawned_at = now;
      slot.worker = std::move(w);
      std::lock_guard lock(mutex_);
      ++stats_.spawned;
    }
  }

  void start_failed(Slot& slot, Clock::time_point now, const std::string& what) {
    ++slot.failures;
    milliseconds delay = backoff(slot.failures);
    slot.retry_at = now + delay;
    last_start_error_ = what;
    log_.warn(what + "; retrying in " + std::to_string(delay.count()) + " ms");
    std::lock_guard lock(mutex_);
    ++stats_.start_failures;
  }

  // Takes the worker out of its slot; it is reaped later.
  Dying& retire(Slot& slot, Exit why, Clock::time_point now) {
    bool was_ready = any_ready();
    std::unique_ptr<Live> w = std::move(slot.worker);
    w->fd.reset();
    Dying d;
    d.pid = w->pid;
    d.pidfd = std::move(w->pidfd);
    d.why = why;
    d.job = std::move(w->job);
    d.kill_at = now + kExitAfterEof;
    dying_.push_back(std::move(d));
    if (was_ready && !any_ready()) unready_since_ = now;
    return dying_.back();
  }

  void kill_group(Dying& d, int sig, Clock::time_point now) {
    // The group id is the worker's pid until it is reaped, and it is not reaped yet. The worker
    // itself is signalled too, in case it moved to a group of its own.
    ::kill(-d.pid, sig);
    ::kill(d.pid, sig);
    if (sig == SIGKILL) {
      d.killed = true;
      d.killed_at = now;
    }
  }

  void on_ready(std::size_t index, short revents) {
    Slot& slot = slots_[index];
    Live* w = slot.worker.get();
    if (w == nullptr) return;
    auto now = Clock::now();
    if ((revents & POLLOUT) != 0 && !flush(slot, now)) return;
    if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
    char buf[64 * 1024];
    while (slot.worker) {
      ssize_t n = ::recv(w->fd.get(), buf, sizeof(buf), 0);
      if (n > 0) {
        w->reader.append(std::string_view(buf, static_cast<std::size_t>(n)));
        if (!read_frames(slot, now)) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      gone(slot, now);  // end of stream, or a reset
      return;
    }
  }

  // Writes what is pending; false when the worker went away.
  bool flush(Slot& slot, Clock::time_point now) {
    Live* w = slot.worker.get();
    while (w->out_pos < w->out.size()) {
      ssize_t n =
          ::send(w->fd.get(), w->out.data() + w->out_pos, w->out.size() - w->out_pos, MSG_NOSIGNAL);
      if (n > 0) {
        w->out_pos += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      gone(slot, now);
      return false;
    }
    w->out.clear();
    w->out_pos = 0;
    return true;
  }

  // False when the worker was taken out of its slot.
  bool read_frames(Slot& slot, Clock::time_point now) {
    while (slot.worker) {
      Live* w = slot.worker.get();
      auto next = w->reader.next();
      if (!next.is_ok()) {
        broke_protocol(slot, now, next.status().message());
        return false;
      }
      if (!next->has_value()) return true;
      auto frame = worker_protocol::decode_worker_frame(**next);
      if (!frame.is_ok()) {
        broke_protocol(slot, now, frame.status().message());
        return false;
      }
      if (auto* hello = std::get_if<worker_protocol::Hello>(&*frame)) {
        if (w->phase != Phase::kStarting) {
          broke_protocol(slot, now, "a second hello");
          return false;
        }
        w->phase = Phase::kIdle;
        slot.failures = 0;
        last_start_error_.clear();
        log_.debug(
            "worker process " + std::to_string(w->pid) + " is ready after " +
            std::to_string(std::chrono::duration_cast<milliseconds>(now - w->spawned_at).count()) +
            " ms" +
            (hello->pid != w->pid ? " (it reports pid " + std::to_string(hello->pid) + ")"
                                  : std::string()));
        continue;
      }
      auto& reply = std::get<worker_protocol::Reply>(*frame);
      if (w->phase != Phase::kBusy || !w->job || reply.id != w->job->call.call_id) {
        broke_protocol(slot, now,
                       "a reply to call " + std::to_string(reply.id) + ", which it was not given");
        return false;
      }
      ++w->calls;
      slot.failures = 0;
      answer(std::move(w->job), std::move(reply.outcome));
      w->phase = Phase::kIdle;
      w->call_deadline.reset();
      {
        std::lock_guard lock(mutex_);
        ++stats_.completed;
      }
      if (opts_.max_calls_per_worker > 0 && w->calls >= opts_.max_calls_per_worker) {
        // EOF tells it to exit; a replacement starts at once.
        pid_t pid = w->pid;
        retire(slot, Exit::kRetired, now);
        slot.retry_at = now;
        log_.debug("worker process " + std::to_string(pid) + " retired after " +
                   std::to_string(opts_.max_calls_per_worker) + " calls");
        std::lock_guard lock(mutex_);
        ++stats_.recycled;
        return false;
      }
    }
    return false;
  }

  // The worker closed its socket: it died, or is about to.
  void gone(Slot& slot, Clock::time_point now) {
    Phase phase = slot.worker->phase;
    if (phase == Phase::kStarting) {
      ++slot.failures;
      milliseconds delay = backoff(slot.failures);
      slot.retry_at = now + delay;
      Dying& d = retire(slot, Exit::kStartFailed, now);
      d.note = "; retrying in " + std::to_string(delay.count()) + " ms";
    } else if (phase == Phase::kIdle) {
      ++slot.failures;
      slot.retry_at = now + backoff(slot.failures);
      retire(slot, Exit::kLostIdle, now);
    } else {
      slot.retry_at = now;  // the call killed it, not the command: replace at once
      retire(slot, Exit::kLostBusy, now);
    }
  }

  // Garbage on the socket: the worker cannot be trusted with another call.
  void broke_protocol(Slot& slot, Clock::time_point now, const std::string& what) {
    Live* w = slot.worker.get();
    std::string text = "worker process " + std::to_string(w->pid) + " broke the protocol (" + what +
                       ") and was killed";
    bool starting = w->phase == Phase::kStarting;
    JobPtr job = std::move(w->job);
    Dying& d = retire(slot, Exit::kKilled, now);
    kill_group(d, SIGKILL, now);
    if (starting) {
      start_failed(slot, now, text);
      return;
    }
    slot.retry_at = now;
    log_.error(text);
    if (job) {
      std::string func = job->call.func_name;
      answer(std::move(job), Outcome::failure(StatusCode::kUnavailable, error_types::kWorkerLost,
                                              text + " while running '" + func + "'"));
    }
  }

  void check_timers(Clock::time_point now) {
    for (Slot& slot : slots_) {
      Live* w = slot.worker.get();
      if (w == nullptr) continue;
      if (w->phase == Phase::kStarting && now >= w->spawned_at + opts_.start_timeout) {
        std::string text = "worker process " + std::to_string(w->pid) +
                           " did not say hello within " +
                           std::to_string(opts_.start_timeout.count()) +
                           " ms (command: " + describe_command(opts_.command) + ") and was killed";
        Dying& d = retire(slot, Exit::kKilled, now);
        kill_group(d, SIGKILL, now);
        start_failed(slot, now, text);
      } else if (w->phase == Phase::kBusy && w->call_deadline && now >= *w->call_deadline) {
        JobPtr job = std::move(w->job);
        pid_t pid = w->pid;
        Dying& d = retire(slot, Exit::kKilled, now);
        kill_group(d, SIGKILL, now);
        slot.retry_at = now;
        std::string func = job->call.func_name;
        auto limit = job->call.timeout.count();
        log_.warn("call " + job->call.message_id + " to '" + func + "' passed its limit of " +
                  std::to_string(limit) + " ms; worker process " + std::to_string(pid) +
                  " was killed and is being replaced");
        // Made before the job moves: argument order is unspecified.
        Outcome timed_out = Outcome::failure(StatusCode::kTimeout, error_types::kTimeout,
                                             server_timeout_text(func, job->call.timeout));
        answer(std::move(job), std::move(timed_out));
        std::lock_guard lock(mutex_);
        ++stats_.timed_out;
      }
    }
    for (Dying& d : dying_) {
      if (!d.killed && now >= d.kill_at) kill_group(d, SIGKILL, now);
    }
  }

  void reap_all() {
    auto now = Clock::now();
    for (auto it = dying_.begin(); it != dying_.end();) {
      int status = 0;
      pid_t r = ::waitpid(it->pid, &status, WNOHANG);
      std::optional<std::string> how;
      if (r == it->pid) {
        how = describe_status(status);
      } else if (r < 0 && errno != EINTR) {
        how = "ended (its exit status was collected elsewhere: " + errno_text(errno) + ")";
      } else if (it->killed_at && now >= *it->killed_at + kReapGiveUp) {
        how = "did not end within " + std::to_string(kReapGiveUp.count()) +
              " ms of SIGKILL and was abandoned";
      }
      if (!how) {
        ++it;
        continue;
      }
      reaped(*it, *how);
      it->pidfd.reset();
      it = dying_.erase(it);
    }
  }

  void reaped(Dying& d, const std::string& how) {
    std::string who = "worker process " + std::to_string(d.pid);
    switch (d.why) {
      case Exit::kStartFailed:
        last_start_error_ = who + " " + how +
                            " before saying hello (command: " + describe_command(opts_.command) +
                            ")";
        log_.warn(last_start_error_ + d.note);
        {
          std::lock_guard lock(mutex_);
          ++stats_.start_failures;
        }
        break;
      case Exit::kLostIdle: log_.warn(who + " " + how + " while idle; replacing it"); break;
      case Exit::kLostBusy: {
        std::string func = d.job ? d.job->call.func_name : std::string("?");
        std::string text = who + " " + how + " while running '" + func + "'";
        log_.warn(text + "; replacing it");
        if (d.job) {
          answer(std::move(d.job),
                 Outcome::failure(StatusCode::kUnavailable, error_types::kWorkerLost, text));
        }
        std::lock_guard lock(mutex_);
        ++stats_.lost;
        break;
      }
      case Exit::kKilled:
      case Exit::kRetired: break;
    }
  }

  void dispatch(Clock::time_point now) {
    for (Slot& slot : slots_) {
      Live* w = slot.worker.get();
      if (w == nullptr || w->phase != Phase::kIdle) continue;
      while (w->phase == Phase::kIdle) {
        JobPtr job;
        {
          std::lock_guard lock(mutex_);
          if (queue_.empty()) return;
          job = std::move(queue_.front());
          queue_.pop_front();
        }
        auto frame = worker_protocol::encode_call(job->call.view());
        if (!frame.is_ok()) {
          std::string type(frame.status().code() == StatusCode::kInvalidArgument
                               ? error_types::kDecode
                               : error_types::kEncode);
          answer(std::move(job),
                 Outcome::failure(frame.status().code(), type, frame.status().message()));
          continue;
        }
        w->out = std::move(*frame);
        w->out_pos = 0;
        w->phase = Phase::kBusy;
        if (job->call.timeout.count() > 0) w->call_deadline = now + job->call.timeout;
        w->job = std::move(job);
        if (!flush(slot, now)) break;  // it died: the call is answered once it is reaped
      }
    }
  }

  // Calls must not wait forever for a pool whose command cannot start. A pool that has seen no
  // start fail since its last hello may just be slow to import: its workers' own start timeouts
  // decide.
  void fail_stale(Clock::time_point now) {
    if (any_ready() || last_start_error_.empty()) return;
    std::vector<JobPtr> stale;
    {
      std::lock_guard lock(mutex_);
      while (!queue_.empty() &&
             now >= std::max(queue_.front()->queued_at, unready_since_) + opts_.start_timeout) {
        stale.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (JobPtr& job : stale) {
      std::string text = "no worker process became ready within " +
                         std::to_string(opts_.start_timeout.count()) + " ms";
      if (!last_start_error_.empty()) text += ": " + last_start_error_;
      answer(std::move(job), Outcome::failure(StatusCode::kUnavailable, kWorkerStartError, text));
    }
  }

  // Copies the workers' state for snapshot(), when it changed since the last copy.
  void publish() {
    std::size_t n = 0;
    bool changed = false;
    for (const Slot& s : slots_) {
      if (!s.worker) continue;
      WorkerSnapshot ws;
      ws.pid = s.worker->pid;
      ws.ready = s.worker->phase != Phase::kStarting;
      ws.busy = s.worker->phase == Phase::kBusy;
      ws.call_id = s.worker->job ? s.worker->job->call.call_id : 0;
      ws.calls = s.worker->calls;
      if (n == published_.size()) {
        published_.push_back(ws);
        changed = true;
      } else if (!same(published_[n], ws)) {
        published_[n] = ws;
        changed = true;
      }
      ++n;
    }
    if (n != published_.size()) {
      published_.resize(n);
      changed = true;
    }
    if (!changed) return;
    std::lock_guard lock(mutex_);
    snapshot_ = published_;
  }

  static bool same(const WorkerSnapshot& a, const WorkerSnapshot& b) {
    return a.pid == b.pid && a.ready == b.ready && a.busy == b.busy && a.call_id == b.call_id &&
           a.calls == b.calls;
  }

  // ---- stopping --------------------------------------------------------------------------

  void stop_all() {
    auto now = Clock::now();
    std::deque<JobPtr> queued;
    {
      std::lock_guard lock(mutex_);
      queued.swap(queue_);
    }
    for (JobPtr& job : queued) {
      answer(std::move(job), Outcome::failure(StatusCode::kCancelled, error_types::kCancelled,
                                              "the executor shut down before the call started"));
    }
    for (Slot& slot : slots_) {
      if (!slot.worker) continue;
      Phase phase = slot.worker->phase;
      JobPtr job = std::move(slot.worker->job);
      // An idle worker exits on end of stream; the others are told to stop.
      Dying& d = retire(slot, Exit::kRetired, now);
      d.kill_at = now + opts_.stop_timeout;
      if (phase != Phase::kIdle) kill_group(d, SIGTERM, now);
      if (job) {
        answer(std::move(job), Outcome::failure(StatusCode::kCancelled, error_types::kCancelled,
                                                "the executor shut down before the call "
                                                "finished"));
      }
    }
    deliver();
    while (!dying_.empty()) {
      now = Clock::now();
      for (Dying& d : dying_) {
        if (!d.killed && now >= d.kill_at) kill_group(d, SIGKILL, now);
      }
      reap_all();
      deliver();
      if (dying_.empty()) break;
      std::vector<pollfd> fds;
      bool polling = false;
      for (const Dying& d : dying_) {
        if (d.pidfd.valid()) {
          fds.push_back({d.pidfd.get(), POLLIN, 0});
        } else {
          polling = true;
        }
      }
      int timeout = polling ? static_cast<int>(kReapPoll.count()) : poll_timeout(now);
      if (timeout < 0 || timeout > 1000) timeout = 1000;
      ::poll(fds.data(), fds.size(), timeout);
    }
    publish();
  }

  const ProcessOptions opts_;
  sdk::Logger log_;
  UniqueFd wake_fd_;
  std::atomic<bool> wake_pending_{false};
  std::thread thread_;
  std::thread::id loop_id_;
  std::mutex join_mutex_;

  // Shared with submitters and observers.
  mutable std::mutex mutex_;
  std::condition_variable idle_cv_;
  std::deque<JobPtr> queue_;
  std::size_t unfinished_ = 0;  // submitted, not yet answered
  bool accepting_ = true;
  bool stop_ = false;
  std::vector<WorkerSnapshot> snapshot_;
  ProcessStats stats_;

  // The loop's own.
  Clock::time_point unready_since_;  // when the pool last had no ready worker
  std::vector<Slot> slots_;
  std::vector<Dying> dying_;
  std::vector<std::pair<JobPtr, Outcome>> answers_;
  std::string last_start_error_;
  std::vector<WorkerSnapshot> published_;
};

ProcessExecutor::ProcessExecutor(ProcessOptions options, Invoker& /*invoker*/, sdk::Logger log) {
  if (options.workers == 0 || options.workers > 1024) {
    throw std::invalid_argument("workers: must be between 1 and 1024");
  }
  if (options.command.empty() || options.command.front().empty()) {
    throw std::invalid_argument("worker_command: the command is empty");
  }
  if (options.start_timeout.count() <= 0) {
    throw std::invalid_argument("start_timeout: must be positive");
  }
  supervisor_ = std::make_shared<Supervisor>(std::move(options), std::move(log));
  supervisor_->start();
}

ProcessExecutor::ProcessExecutor(const sdk::Context& ctx, Invoker& invoker)
    : ProcessExecutor(options_from(ctx), invoker, ctx.log) {}

ProcessExecutor::~ProcessExecutor() { supervisor_->shutdown(milliseconds(0)); }

void ProcessExecutor::submit(const Invocation& call, OutcomeCallback done) {
  supervisor_->submit(call, std::move(done));
}

void ProcessExecutor::shutdown(milliseconds grace) { supervisor_->shutdown(grace); }

std::uint32_t ProcessExecutor::workers() const { return supervisor_->workers(); }

std::vector<WorkerSnapshot> ProcessExecutor::snapshot() const { return supervisor_->snapshot(); }

ProcessStats ProcessExecutor::stats() const { return supervisor_->stats(); }

}  // namespace prpc::process
