// The example functions served natively (no Python): ping, summ, hello_world, echo, slow, fail
// and noop. Used by the tests, the demo and the benchmarks.
#pragma once

#include <string>
#include <vector>

#include "prpc/functions.hpp"
#include "prpc/sdk/plugin.hpp"

namespace prpc::example {

class ExampleFunctions final : public FunctionTable {
 public:
  static constexpr const char* kName = "example";
  static constexpr const char* kDescription =
      "Example native functions: ping, summ, hello_world, echo, slow, fail, noop";

  ExampleFunctions() = default;
  explicit ExampleFunctions(const sdk::Context&) {}

  std::vector<FunctionInfo> list() const override;
  void invoke(const Invocation& call, OutcomeCallback done) override;
};

}  // namespace prpc::example
