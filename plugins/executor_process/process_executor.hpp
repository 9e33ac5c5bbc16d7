// Runs each call in a worker process, one call at a time per process, over the worker protocol
// (prpc/worker.hpp). Workers are started with posix_spawn (never fork after threads), each in its
// own process group, with its end of a socketpair as descriptor 3 and PRPC_WORKER_FD=3, so the
// worker's stdout and stderr stay the user's. A call past its limit kills its worker (the whole
// group) and is answered with TimeoutError; a worker that dies mid-call gets its call answered
// with WorkerLostError naming the pid and the signal or exit code; either way a replacement is
// started and no other call is affected.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/executor.hpp"
#include "prpc/sdk/plugin.hpp"

namespace prpc::process {

struct ProcessOptions {
  std::uint32_t workers = 4;
  std::vector<std::string> command;  // argv of one worker; argv[0] is looked up on PATH
  std::chrono::milliseconds start_timeout{30'000};  // spawn -> hello
  std::uint64_t max_calls_per_worker = 0;           // 0: a worker serves until it dies
  std::chrono::milliseconds stop_timeout{2'000};    // on shutdown: SIGTERM -> SIGKILL
};

// Parses worker_command: a JSON array of one or more strings, the first not empty.
Result<std::vector<std::string>> parse_worker_command(std::string_view text);

// The error type of calls that no worker could be started for (the command is broken).
inline constexpr std::string_view kWorkerStartError = "WorkerStartError";

// One worker as the executor sees it, for tests and diagnostics.
struct WorkerSnapshot {
  pid_t pid = -1;
  bool ready = false;  // said hello
  bool busy = false;   // running a call
  std::uint64_t call_id = 0;
  std::uint64_t calls = 0;  // calls answered by this worker
};

struct ProcessStats {
  std::uint64_t spawned = 0;
  std::uint64_t start_failures = 0;  // died, stayed silent or could not be spawned
  std::uint64_t completed = 0;       // replies received
  std::uint64_t timed_out = 0;
  std::uint64_t lost = 0;      // died while running a call
  std::uint64_t recycled = 0;  // retired after max_calls_per_worker
};

class ProcessExecutor final : public Executor {
 public:
  static constexpr const char* kName = "process";
  static constexpr const char* kDescription =
      "Runs each call in a worker process, one call at a time per process";
  static std::vector<sdk::OptionSpec> options();

  // Throws std::invalid_argument for options it cannot work with.
  ProcessExecutor(ProcessOptions options, Invoker& invoker, sdk::Logger log = {});
  ProcessExecutor(const sdk::Context& ctx, Invoker& invoker);
  ~ProcessExecutor() override;
  ProcessExecutor(const ProcessExecutor&) = delete;
  ProcessExecutor& operator=(const ProcessExecutor&) = delete;

  void submit(const Invocation& call, OutcomeCallback done) override;
  // Stops taking calls, lets queued and running calls finish within `grace`, answers the rest
  // with kCancelled, then ends every worker (EOF, SIGTERM, SIGKILL after stop_timeout) and reaps
  // it. Returns when no worker process is left.
  void shutdown(std::chrono::milliseconds grace) override;
  std::uint32_t workers() const override;

  std::vector<WorkerSnapshot> snapshot() const;
  ProcessStats stats() const;

 private:
  class Supervisor;
  std::shared_ptr<Supervisor> supervisor_;
};

}  // namespace prpc::process
