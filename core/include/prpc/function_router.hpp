// Serves the functions of several tables (e.g. several functions plugins) as one.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "prpc/functions.hpp"
#include "prpc/status.hpp"

namespace prpc {

class FunctionRouter final : public FunctionTable {
 public:
  // Refuses a table that brings a name already served.
  Status add(std::shared_ptr<FunctionTable> table);

  std::vector<FunctionInfo> list() const override;
  void invoke(const Invocation& call, OutcomeCallback done) override;
  void cancel(std::uint64_t call_id) override;

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<FunctionTable>> tables_;
  std::map<std::string, FunctionTable*, std::less<>> routes_;
  std::map<std::uint64_t, FunctionTable*> running_;
};

}  // namespace prpc
