// Runs calls whose invoker completes asynchronously (native async functions; Python coroutines
// that the SDK's invoker schedules on its event loop). Up to `workers` calls run at once, the
// rest wait in FIFO order. Two threads of its own: a dispatcher that calls invoker.invoke() and
// invoker.cancel(), and a control loop (Asio) that owns the bookkeeping, the timers and the
// completions. An invoker that blocks therefore delays only the calls that follow it into the
// dispatcher; time limits, completions and shutdown keep working.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "prpc/executor.hpp"
#include "prpc/sdk/plugin.hpp"

namespace prpc::async {

struct AsyncStats {
  std::uint64_t started = 0;
  std::uint64_t completed = 0;  // answered with the invoker's outcome
  std::uint64_t timed_out = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t late = 0;  // completions that arrived after a timeout or cancel: dropped
  std::uint32_t running = 0;
  std::uint32_t queued = 0;
};

class AsyncExecutor final : public Executor {
 public:
  static constexpr const char* kName = "async";
  static constexpr const char* kDescription =
      "Runs calls that complete asynchronously (coroutines), many at once";
  static std::vector<sdk::OptionSpec> options();

  AsyncExecutor(std::uint32_t workers, Invoker& invoker, sdk::Logger log = {});
  AsyncExecutor(const sdk::Context& ctx, Invoker& invoker);
  ~AsyncExecutor() override;
  AsyncExecutor(const AsyncExecutor&) = delete;
  AsyncExecutor& operator=(const AsyncExecutor&) = delete;

  void submit(const Invocation& call, OutcomeCallback done) override;
  // Stops taking calls and waits up to `grace` for queued and running calls; the rest are
  // answered with kCancelled and cancelled in the invoker. Returns once every call is answered.
  void shutdown(std::chrono::milliseconds grace) override;
  std::uint32_t workers() const override { return workers_; }

  AsyncStats stats() const;

 private:
  struct State;
  std::uint32_t workers_;
  std::shared_ptr<State> state_;
};

}  // namespace prpc::async
