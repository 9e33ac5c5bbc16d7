// The functions an AppServer serves: Python callables behind prpc::FunctionTable. Executors
// call invoke() on their own threads; the GIL is taken only around the Python part of a call.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "prpc/functions.hpp"
#include "prpc/run_pace.hpp"

namespace prpc::python {

namespace pyb = pybind11;

class PythonFunctions final : public FunctionTable {
 public:
  ~PythonFunctions() override;

  // Registers a callable; throws ValueError on a duplicate name.
  void add(const std::string& name, pyb::object fn, const std::string& worker, bool coroutine,
           const std::string& spec_json, const std::string& doc);
  bool contains(const std::string& name) const;
  // An object with submit(coroutine, callback) -> handle and cancel(handle): runs coroutine
  // functions on an asyncio loop (prpc._async.AsyncRunner).
  void set_async_runner(pyb::object runner);
  // tracer(fn, args, kwargs, name, traceparent, tracestate, coroutine): calls fn inside a span
  // continuing the request's trace (prpc._tracing.call_in_span); used for requests that carry
  // a traceparent. None: functions run as they are.
  void set_tracer(pyb::object tracer);

  std::vector<FunctionInfo> list() const override;
  void invoke(const Invocation& call, OutcomeCallback done) override;
  void cancel(std::uint64_t call_id) override;
  // A plain function whose last runs took under `limit` on average, measured with the GIL held
  // from decoding its arguments to encoding its result (so the time spent waiting for the GIL
  // or blocked with it released, as in time.sleep, counts as running).
  bool quick(std::string_view name, std::chrono::microseconds limit) const override;
  // One GIL acquisition for the whole batch; the outcomes are delivered after it is released.
  void invoke_batch(std::span<const Invocation> calls, std::span<OutcomeCallback> done) override;

 private:
  struct Entry {
    pyb::object fn;
    FunctionInfo info;
    bool coroutine = false;
    std::unique_ptr<RunPace> pace = std::make_unique<RunPace>();
  };
  // GIL held. Runs a plain function, or starts a coroutine (then returns nullopt and `done`
  // is called when it finishes).
  std::optional<Outcome> run(const Invocation& call, OutcomeCallback& done);
  std::optional<Outcome> run_entry(const Invocation& call, OutcomeCallback& done);

  mutable std::shared_mutex mutex_;
  std::map<std::string, Entry, std::less<>> functions_;
  pyb::object runner_;
  pyb::object tracer_;
  std::mutex running_mutex_;
  std::unordered_map<std::uint64_t, pyb::object> running_;  // call_id -> runner handle
};

}  // namespace prpc::python
