#include "prpc/function_router.hpp"

namespace prpc {

Status FunctionRouter::add(std::shared_ptr<FunctionTable> table) {
  std::vector<FunctionInfo> functions = table->list();
  std::lock_guard lock(mutex_);
  for (const FunctionInfo& f : functions) {
    if (routes_.count(f.name) != 0) {
      return Status(StatusCode::kAlreadyExists, "function '" + f.name + "' is served twice");
    }
  }
  for (const FunctionInfo& f : functions) routes_[f.name].table = table.get();
  tables_.push_back(std::move(table));
  return Status::ok();
}

std::vector<FunctionInfo> FunctionRouter::list() const {
  std::vector<std::shared_ptr<FunctionTable>> tables;
  {
    std::lock_guard lock(mutex_);
    tables = tables_;
  }
  std::vector<FunctionInfo> out;
  for (const auto& t : tables) {
    for (FunctionInfo& f : t->list()) out.push_back(std::move(f));
  }
  return out;
}

FunctionTable* FunctionRouter::route(const Invocation& call, OutcomeCallback& done) {
  FunctionTable* target = nullptr;
  RunPace* pace = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto it = routes_.find(call.func_name);
    if (it != routes_.end()) {
      target = it->second.table;
      pace = it->second.pace.get();  // routes are never removed
      running_[call.call_id] = target;
    }
  }
  if (target == nullptr) {
    done(Outcome::failure(StatusCode::kNotFound, error_types::kUnknownFunction,
                          not_found_text(call.func_name)));
    return nullptr;
  }
  done = [this, id = call.call_id, pace, started = std::chrono::steady_clock::now(),
          done = std::move(done)](Outcome o) {
    pace->record(std::chrono::steady_clock::now() - started);
    {
      std::lock_guard lock(mutex_);
      running_.erase(id);
    }
    done(std::move(o));
  };
  return target;
}

void FunctionRouter::invoke(const Invocation& call, OutcomeCallback done) {
  if (FunctionTable* target = route(call, done)) target->invoke(call, std::move(done));
}

bool FunctionRouter::quick(std::string_view name, std::chrono::microseconds limit) const {
  std::lock_guard lock(mutex_);
  auto it = routes_.find(name);
  return it != routes_.end() && it->second.pace->under(limit);
}

void FunctionRouter::invoke_batch(std::span<const Invocation> calls,
                                  std::span<OutcomeCallback> done) {
  std::vector<FunctionTable*> targets(calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) targets[i] = route(calls[i], done[i]);
  std::size_t i = 0;
  while (i < calls.size()) {
    std::size_t end = i + 1;
    while (end < calls.size() && targets[end] == targets[i]) ++end;
    if (targets[i] != nullptr) {  // null: an unknown name, already answered
      targets[i]->invoke_batch(calls.subspan(i, end - i), done.subspan(i, end - i));
    }
    i = end;
  }
}

void FunctionRouter::cancel(std::uint64_t call_id) {
  FunctionTable* target = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto it = running_.find(call_id);
    if (it != running_.end()) target = it->second;
  }
  if (target != nullptr) target->cancel(call_id);
}

}  // namespace prpc
