// Runs calls on a fixed pool of threads. A call past its time limit is answered with a timeout
// and abandoned: its thread is replaced so the pool keeps its size, and the late result is
// dropped.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "prpc/executor.hpp"
#include "prpc/sdk/plugin.hpp"

namespace prpc::thread {

class ThreadExecutor final : public Executor {
 public:
  static constexpr const char* kName = "thread";
  static constexpr const char* kDescription = "Runs calls on a pool of threads";
  static std::vector<sdk::OptionSpec> options();

  ThreadExecutor(std::uint32_t workers, Invoker& invoker, sdk::Logger log = {});
  ThreadExecutor(const sdk::Context& ctx, Invoker& invoker);
  ~ThreadExecutor() override;
  ThreadExecutor(const ThreadExecutor&) = delete;
  ThreadExecutor& operator=(const ThreadExecutor&) = delete;

  void submit(const Invocation& call, OutcomeCallback done) override;
  void shutdown(std::chrono::milliseconds grace) override;
  std::uint32_t workers() const override { return workers_; }

 private:
  struct State;
  std::uint32_t workers_;
  std::shared_ptr<State> state_;
};

}  // namespace prpc::thread
