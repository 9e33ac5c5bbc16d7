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
  for (const FunctionInfo& f : functions) routes_[f.name] = table.get();
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

void FunctionRouter::invoke(const Invocation& call, OutcomeCallback done) {
  FunctionTable* target = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto it = routes_.find(call.func_name);
    if (it != routes_.end()) {
      target = it->second;
      running_[call.call_id] = target;
    }
  }
  if (target == nullptr) {
    done(Outcome::failure(StatusCode::kNotFound, error_types::kUnknownFunction,
                          not_found_text(call.func_name)));
    return;
  }
  target->invoke(call, [this, id = call.call_id, done = std::move(done)](Outcome o) {
    {
      std::lock_guard lock(mutex_);
      running_.erase(id);
    }
    done(std::move(o));
  });
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
