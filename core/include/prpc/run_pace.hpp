// How long a function's runs take, for the server's choice of running a call on the thread that
// received it (FunctionTable::quick): a moving average over about the last eight runs.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace prpc {

class RunPace {
 public:
  // A function is judged only after this many runs.
  static constexpr std::uint32_t kRunsBeforeJudged = 16;

  // Any thread. Runs recorded at the same moment on several threads may lose one of their
  // samples: the average is a hint, not an account.
  void record(std::chrono::steady_clock::duration took) {
    auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()));
    std::uint32_t n = runs_.load(std::memory_order_relaxed);
    std::uint64_t avg = average_ns_.load(std::memory_order_relaxed);
    average_ns_.store(n == 0 ? ns : avg - avg / 8 + ns / 8, std::memory_order_relaxed);
    if (n < kRunsBeforeJudged) runs_.store(n + 1, std::memory_order_relaxed);
  }

  // Judged, and on average within `limit`.
  bool under(std::chrono::microseconds limit) const {
    auto limit_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
    return runs_.load(std::memory_order_relaxed) >= kRunsBeforeJudged &&
           average_ns_.load(std::memory_order_relaxed) < static_cast<std::uint64_t>(limit_ns);
  }

 private:
  std::atomic<std::uint64_t> average_ns_{0};
  std::atomic<std::uint32_t> runs_{0};
};

}  // namespace prpc
