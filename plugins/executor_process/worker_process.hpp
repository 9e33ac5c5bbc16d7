// Starting worker processes: the command, posix_spawn with the socket on descriptor 3, and the
// words for how a process ended. Descriptors have one owner each (UniqueFd).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "process_executor.hpp"
#include "prpc/status.hpp"
#include "prpc/worker.hpp"

namespace prpc::process {

// A file descriptor with one owner, closed when the owner goes.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Spawned {
  pid_t pid = -1;
  UniqueFd fd;     // our end of the socket
  UniqueFd pidfd;  // readable when the process exits; invalid when the kernel has none
};

// posix_spawn, not fork: the parent has threads, and a forked child of a threaded process may
// only call async-signal-safe functions until it execs.
Result<Spawned> spawn_worker(const std::vector<std::string>& command);

std::string errno_text(int err);
// "exited with status 3", "was killed by signal 9 (Killed)".
std::string describe_status(int status);
std::string describe_command(const std::vector<std::string>& command);

// The executor's options from a plugin context; throws std::invalid_argument.
ProcessOptions options_from(const sdk::Context& ctx);

// ---- what the supervisor keeps per call and per process ----------------------------------------

struct Job {
  OwnedInvocation call;
  OutcomeCallback done;
  std::chrono::steady_clock::time_point queued_at;
};
using JobPtr = std::unique_ptr<Job>;

enum class Phase { kStarting, kIdle, kBusy };

// A worker process this executor talks to.
struct Live {
  pid_t pid = -1;
  UniqueFd fd;
  UniqueFd pidfd;
  Phase phase = Phase::kStarting;
  worker_protocol::FrameReader reader;
  std::string out;  // bytes of the call frame not yet written
  std::size_t out_pos = 0;
  JobPtr job;
  std::chrono::steady_clock::time_point spawned_at;
  std::optional<std::chrono::steady_clock::time_point> call_deadline;
  std::uint64_t calls = 0;
};

// Why a worker is on its way out; decides what happens once it is reaped.
enum class Exit {
  kStartFailed,  // died before hello
  kLostIdle,     // died while waiting for a call
  kLostBusy,     // died while running a call: its call is answered with the exit status
  kKilled,       // this executor killed it (timeout, silence, protocol); already answered
  kRetired,      // served max_calls_per_worker, or the executor stops
};

struct Dying {
  pid_t pid = -1;
  UniqueFd pidfd;
  Exit why = Exit::kKilled;
  JobPtr job;
  std::string note;  // appended to the log line ("retrying in 200 ms")
  std::chrono::steady_clock::time_point kill_at;
  bool killed = false;
  std::optional<std::chrono::steady_clock::time_point> killed_at;
};

struct Slot {
  std::unique_ptr<Live> worker;
  int failures = 0;
  std::chrono::steady_clock::time_point retry_at{};
};

}  // namespace prpc::process
