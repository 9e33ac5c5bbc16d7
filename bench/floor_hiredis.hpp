// The floor of DESIGN.md: the smallest RPC over Redis, written directly on hiredis. A caller
// XADDs a request and BLPOPs its own reply list; one server thread reads requests in batches
// with XREADGROUP and answers each with LPUSH. PRPC is measured against it in the same run.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace prpc::bench {

struct LatencyStats {
  std::size_t calls = 0;
  double p50_us = 0;
  double p99_us = 0;
  double mean_us = 0;
};

// Sorts `samples_us` and summarises them.
LatencyStats summarise(std::vector<double> samples_us);

struct FloorOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int sequential_calls = 5000;
  int warmup_calls = 500;
  int callers = 64;
  std::chrono::milliseconds duration{3000};
  // Send XADD and BLPOP in one write (one round trip per call) instead of waiting for XADD's
  // reply first (two).
  bool pipelined = false;
};

struct FloorResult {
  LatencyStats sequential;
  double calls_per_second = 0;  // with `callers` concurrent callers
  std::size_t concurrent_calls = 0;
};

FloorResult run_floor(const FloorOptions& options);

// The two halves of run_floor, for benchmarks that interleave rounds with another system.
class Floor {
 public:
  explicit Floor(const FloorOptions& options);
  ~Floor();
  Floor(const Floor&) = delete;
  Floor& operator=(const Floor&) = delete;
  LatencyStats sequential(int calls, int warmup);
  double concurrent(int callers, std::chrono::milliseconds duration, std::size_t* calls = nullptr);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace prpc::bench
