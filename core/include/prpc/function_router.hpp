// Serves the functions of several tables (e.g. several functions plugins) as one.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "prpc/functions.hpp"
#include "prpc/run_pace.hpp"
#include "prpc/status.hpp"

namespace prpc {

class FunctionRouter final : public FunctionTable {
 public:
  // Refuses a table that brings a name already served.
  Status add(std::shared_ptr<FunctionTable> table);

  std::vector<FunctionInfo> list() const override;
  void invoke(const Invocation& call, OutcomeCallback done) override;
  void cancel(std::uint64_t call_id) override;
  // Judged on the runs that went through this router: from invoke() to the outcome.
  bool quick(std::string_view name, std::chrono::microseconds limit) const override;
  // Consecutive calls to one table go to that table's invoke_batch together.
  void invoke_batch(std::span<const Invocation> calls, std::span<OutcomeCallback> done) override;

 private:
  struct Route {
    FunctionTable* table = nullptr;
    std::unique_ptr<RunPace> pace = std::make_unique<RunPace>();
  };
  // The call's table, its outcome wrapped to time the run and forget the call; null (and `done`
  // answered) for an unknown name.
  FunctionTable* route(const Invocation& call, OutcomeCallback& done);

  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<FunctionTable>> tables_;
  std::map<std::string, Route, std::less<>> routes_;
  std::map<std::uint64_t, FunctionTable*> running_;
};

}  // namespace prpc
