// A table of served functions: their manifest and how to run them.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/executor.hpp"

namespace prpc {

struct FunctionInfo {
  std::string name;
  std::string worker;            // executor name; empty: the server's default
  std::string spec_json = "{}";  // parameters, as a JSON object (see docs/protocol)
  std::string doc;
};

class FunctionTable : public Invoker {
 public:
  virtual std::vector<FunctionInfo> list() const = 0;

  // Whether `name` is known, from its recent runs, to return within `limit`. A server runs such
  // a function on the thread that received its request, several requests at a time through
  // invoke_batch(), instead of handing each to an executor thread. The default: never.
  virtual bool quick(std::string_view /*name*/, std::chrono::microseconds /*limit*/) const {
    return false;
  }
  // Runs `calls` one after another on the calling thread and calls done[i] with each outcome
  // before returning. A table with a global lock (Python's GIL) takes it once for the batch.
  virtual void invoke_batch(std::span<const Invocation> calls, std::span<OutcomeCallback> done) {
    for (std::size_t i = 0; i < calls.size(); ++i) invoke(calls[i], std::move(done[i]));
  }
};

}  // namespace prpc
