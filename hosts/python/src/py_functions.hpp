// The functions an AppServer serves: Python callables behind prpc::FunctionTable. Executors
// call invoke() on their own threads; the GIL is taken only around the Python part of a call.
#pragma once

#include <pybind11/pybind11.h>

#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "prpc/functions.hpp"

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

 private:
  struct Entry {
    pyb::object fn;
    FunctionInfo info;
    bool coroutine = false;
  };
  // GIL held. Runs a plain function, or starts a coroutine (then returns nullopt and `done`
  // is called when it finishes).
  std::optional<Outcome> run(const Invocation& call, OutcomeCallback& done);

  mutable std::shared_mutex mutex_;
  std::map<std::string, Entry, std::less<>> functions_;
  pyb::object runner_;
  pyb::object tracer_;
  std::mutex running_mutex_;
  std::unordered_map<std::uint64_t, pyb::object> running_;  // call_id -> runner handle
};

}  // namespace prpc::python
