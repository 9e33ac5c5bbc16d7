#include "py_functions.hpp"

#include "py_values.hpp"

namespace prpc::python {

PythonFunctions::~PythonFunctions() {
  // The last owner may be a C++ thread: Python references are dropped under the GIL.
  if (Py_IsInitialized() == 0) {
    for (auto& [name, e] : functions_) e.fn.release();
    runner_.release();
    tracer_.release();
    for (auto& [id, h] : running_) h.release();
    return;
  }
  pyb::gil_scoped_acquire gil;
  functions_.clear();
  running_.clear();
  runner_ = pyb::object();
  tracer_ = pyb::object();
}

void PythonFunctions::add(const std::string& name, pyb::object fn, const std::string& worker,
                          bool coroutine, const std::string& spec_json, const std::string& doc) {
  std::unique_lock lock(mutex_);
  if (functions_.count(name) != 0) {
    throw pyb::value_error("a function named '" + name + "' is already registered");
  }
  Entry e;
  e.fn = std::move(fn);
  e.coroutine = coroutine;
  e.info = FunctionInfo{name, worker, spec_json.empty() ? "{}" : spec_json, doc};
  functions_.emplace(name, std::move(e));
}

bool PythonFunctions::contains(const std::string& name) const {
  std::shared_lock lock(mutex_);
  return functions_.count(name) != 0;
}

void PythonFunctions::set_async_runner(pyb::object runner) { runner_ = std::move(runner); }

void PythonFunctions::set_tracer(pyb::object tracer) {
  tracer_ = tracer.is_none() ? pyb::object() : std::move(tracer);
}

std::vector<FunctionInfo> PythonFunctions::list() const {
  std::shared_lock lock(mutex_);
  std::vector<FunctionInfo> out;
  out.reserve(functions_.size());
  for (const auto& [name, e] : functions_) out.push_back(e.info);
  return out;
}

bool PythonFunctions::quick(std::string_view name, std::chrono::microseconds limit) const {
  std::shared_lock lock(mutex_);
  auto it = functions_.find(name);
  if (it == functions_.end() || it->second.coroutine) return false;
  return it->second.pace->under(limit);
}

void PythonFunctions::invoke_batch(std::span<const Invocation> calls,
                                   std::span<OutcomeCallback> done) {
  std::vector<std::optional<Outcome>> outcomes(calls.size());
  {
    pyb::gil_scoped_acquire gil;
    for (std::size_t i = 0; i < calls.size(); ++i) outcomes[i] = run(calls[i], done[i]);
  }
  for (std::size_t i = 0; i < calls.size(); ++i) {
    if (outcomes[i]) done[i](std::move(*outcomes[i]));
  }
}

void PythonFunctions::invoke(const Invocation& call, OutcomeCallback done) {
  std::optional<Outcome> outcome;
  {
    pyb::gil_scoped_acquire gil;
    outcome = run(call, done);
  }
  if (outcome) done(std::move(*outcome));  // without the GIL: encoding and I/O follow
}

std::optional<Outcome> PythonFunctions::run(const Invocation& call, OutcomeCallback& done) {
  RunPace* pace = nullptr;
  {
    std::shared_lock lock(mutex_);
    auto it = functions_.find(call.func_name);
    if (it != functions_.end() && !it->second.coroutine) pace = it->second.pace.get();
  }
  auto started = std::chrono::steady_clock::now();
  std::optional<Outcome> outcome = run_entry(call, done);
  // Entries are never removed, so `pace` outlives the call.
  if (pace != nullptr) pace->record(std::chrono::steady_clock::now() - started);
  return outcome;
}

std::optional<Outcome> PythonFunctions::run_entry(const Invocation& call, OutcomeCallback& done) {
  pyb::object fn;
  bool coroutine = false;
  {
    std::shared_lock lock(mutex_);
    auto it = functions_.find(call.func_name);
    if (it == functions_.end()) {
      return Outcome::failure(StatusCode::kNotFound, error_types::kUnknownFunction,
                              "function '" + std::string(call.func_name) + "' is not registered");
    }
    fn = it->second.fn;
    coroutine = it->second.coroutine;
  }
  std::string dialect(call.dialect);
  try {
    pyb::object args = decode_value(call.args, dialect);
    pyb::object kwargs = decode_value(call.kwargs, dialect);
    if (!PyList_Check(args.ptr()) && !PyTuple_Check(args.ptr())) {
      return Outcome::failure(StatusCode::kInvalidArgument, error_types::kArguments,
                              "func_args must be a list");
    }
    if (!PyDict_Check(kwargs.ptr())) {
      return Outcome::failure(StatusCode::kInvalidArgument, error_types::kArguments,
                              "func_kwargs must be a dict");
    }
    pyb::tuple positional = pyb::tuple(args);
    PyObject* raw = nullptr;
    if (!call.traceparent.empty() && tracer_) {
      pyb::object traced = tracer_(fn, positional, kwargs, call.func_name, call.traceparent,
                                   call.tracestate, coroutine);
      raw = traced.release().ptr();
    } else {
      raw = PyObject_Call(fn.ptr(), positional.ptr(), kwargs.ptr());
    }
    if (raw == nullptr) return outcome_from_error();
    pyb::object result = pyb::reinterpret_steal<pyb::object>(raw);
    if (!coroutine) return Outcome::success(encode_value(result, dialect));

    if (!runner_) {
      return Outcome::failure(StatusCode::kFailedPrecondition, error_types::kInternal,
                              "no asyncio runner for coroutine functions");
    }
    // Finishes on the runner's loop thread: `future` is a concurrent.futures.Future.
    std::uint64_t id = call.call_id;
    auto finished = [this, id, dialect, done = std::move(done)](pyb::object future) {
      std::optional<Outcome> out;
      {
        std::lock_guard lock(running_mutex_);
        running_.erase(id);
      }
      try {
        if (future.attr("cancelled")().cast<bool>()) {
          out = Outcome::failure(StatusCode::kCancelled, error_types::kCancelled,
                                 "the coroutine was cancelled");
        } else if (pyb::object exc = future.attr("exception")(); !exc.is_none()) {
          out = outcome_from_exception(exc);
        } else {
          out = Outcome::success(encode_value(future.attr("result")(), dialect));
        }
      } catch (pyb::error_already_set& e) {
        out = outcome_from_exception(e.value());
      }
      pyb::gil_scoped_release nogil;
      done(std::move(*out));
    };
    pyb::object handle = runner_.attr("submit")(result, pyb::cpp_function(std::move(finished)));
    std::lock_guard lock(running_mutex_);
    running_[id] = std::move(handle);
    return std::nullopt;
  } catch (pyb::error_already_set& e) {
    return outcome_from_exception(e.value());
  }
}

void PythonFunctions::cancel(std::uint64_t call_id) {
  pyb::gil_scoped_acquire gil;
  pyb::object handle;
  {
    std::lock_guard lock(running_mutex_);
    auto it = running_.find(call_id);
    if (it == running_.end()) return;
    handle = it->second;
  }
  try {
    runner_.attr("cancel")(handle);
  } catch (pyb::error_already_set&) {
    PyErr_Clear();
  }
}

}  // namespace prpc::python
