// What a call costs on each executor: the worker protocol's encoding, a round trip through a
// worker process (prpc-worker serving the example functions), and the async and thread executors
// for comparison. Latency benchmarks run one call at a time; throughput ones keep `in_flight`
// calls submitted.
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "async_executor.hpp"
#include "process_executor.hpp"
#include "prpc/worker.hpp"
#include "thread_executor.hpp"

namespace {

using namespace std::chrono_literals;

class Noop final : public prpc::Invoker {
 public:
  void invoke(const prpc::Invocation& call, prpc::OutcomeCallback done) override {
    done(prpc::Outcome::success(std::string(call.args)));
  }
};

prpc::Invocation summ_call(std::uint64_t id) {
  prpc::Invocation c;
  c.call_id = id;
  c.func_name = "summ";
  c.args = "[1, 2]";
  c.kwargs = R"({"z": 3})";
  c.message_id = "5f0c6a9e-8a3c-4b8e-9a55-2f1b7f1f4c11";
  return c;
}

// Waits for `n` completions.
class Latch {
 public:
  void add() {
    std::lock_guard lock(mutex_);
    ++count_;
    cv_.notify_all();
  }
  void wait_for_count(std::uint64_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return count_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t count_ = 0;
};

void latency(benchmark::State& state, prpc::Executor& ex) {
  Latch latch;
  std::uint64_t id = 0;
  for (auto _ : state) {
    ex.submit(summ_call(++id), [&](prpc::Outcome o) {
      if (!o.ok()) std::abort();
      latch.add();
    });
    latch.wait_for_count(id);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(id));
}

void throughput(benchmark::State& state, prpc::Executor& ex, std::uint64_t in_flight) {
  Latch latch;
  std::uint64_t id = 0;
  for (auto _ : state) {
    std::uint64_t first = id;
    for (std::uint64_t i = 0; i < in_flight; ++i) {
      ex.submit(summ_call(++id), [&](prpc::Outcome o) {
        if (!o.ok()) std::abort();
        latch.add();
      });
    }
    latch.wait_for_count(first + in_flight);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(id));
}

prpc::process::ProcessOptions worker_options(std::uint32_t workers) {
  prpc::process::ProcessOptions o;
  o.workers = workers;
  o.command = {PRPC_BENCH_WORKER, "--set", "functions.plugins=[\"example\"]", "--log-level",
               "warn"};
  return o;
}

void wait_ready(prpc::process::ProcessExecutor& ex, std::size_t workers) {
  while (true) {
    auto snap = ex.snapshot();
    std::size_t ready = 0;
    for (const auto& w : snap) ready += w.ready ? 1 : 0;
    if (ready == workers) return;
    std::this_thread::sleep_for(1ms);
  }
}

void BM_WorkerFrames_CallAndReply(benchmark::State& state) {
  prpc::Invocation c = summ_call(1);
  for (auto _ : state) {
    auto frame = prpc::worker_protocol::encode_call(c);
    auto call = prpc::worker_protocol::decode_call(std::string_view(*frame).substr(4));
    std::string reply =
        prpc::worker_protocol::encode_result(call->call_id, prpc::Outcome::success("6"));
    auto back = prpc::worker_protocol::decode_worker_frame(std::string_view(reply).substr(4));
    benchmark::DoNotOptimize(back);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WorkerFrames_CallAndReply);

void BM_Process_Latency(benchmark::State& state) {
  Noop unused;
  prpc::process::ProcessExecutor ex(worker_options(1), unused);
  wait_ready(ex, 1);
  latency(state, ex);
}
BENCHMARK(BM_Process_Latency)->UseRealTime();

void BM_Process_Throughput(benchmark::State& state) {
  Noop unused;
  auto workers = static_cast<std::uint32_t>(state.range(0));
  prpc::process::ProcessExecutor ex(worker_options(workers), unused);
  wait_ready(ex, workers);
  throughput(state, ex, 64);
}
BENCHMARK(BM_Process_Throughput)->Arg(1)->Arg(2)->Arg(4)->UseRealTime();

void BM_Async_Latency(benchmark::State& state) {
  Noop invoker;
  prpc::async::AsyncExecutor ex(100, invoker);
  latency(state, ex);
}
BENCHMARK(BM_Async_Latency)->UseRealTime();

void BM_Async_Throughput(benchmark::State& state) {
  Noop invoker;
  prpc::async::AsyncExecutor ex(100, invoker);
  throughput(state, ex, 64);
}
BENCHMARK(BM_Async_Throughput)->UseRealTime();

void BM_Thread_Latency(benchmark::State& state) {
  Noop invoker;
  prpc::thread::ThreadExecutor ex(4, invoker);
  latency(state, ex);
}
BENCHMARK(BM_Thread_Latency)->UseRealTime();

void BM_Thread_Throughput(benchmark::State& state) {
  Noop invoker;
  prpc::thread::ThreadExecutor ex(4, invoker);
  throughput(state, ex, 64);
}
BENCHMARK(BM_Thread_Throughput)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
