// A table of served functions: their manifest and how to run them.
#pragma once

#include <string>
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
};

}  // namespace prpc
