// Executors run function calls; the invoker says how one call runs in this process.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "prpc/message.hpp"
#include "prpc/status.hpp"

namespace prpc {

struct Invocation {
  std::uint64_t call_id = 0;
  std::string_view func_name;
  std::string_view args = "[]";
  std::string_view kwargs = "{}";
  std::string_view dialect = "json";
  std::string_view message_id;
  std::chrono::milliseconds timeout{0};  // 0: no limit
  std::string_view traceparent;          // the request's W3C trace context; empty when none
  std::string_view tracestate;
};

// An owned copy of an Invocation, for executors that keep calls past submit().
struct OwnedInvocation {
  std::uint64_t call_id = 0;
  std::string func_name;
  std::string args;
  std::string kwargs;
  std::string dialect;
  std::string message_id;
  std::chrono::milliseconds timeout{0};
  std::string traceparent;
  std::string tracestate;

  OwnedInvocation() = default;
  explicit OwnedInvocation(const Invocation& c)
      : call_id(c.call_id),
        func_name(c.func_name),
        args(c.args),
        kwargs(c.kwargs),
        dialect(c.dialect),
        message_id(c.message_id),
        timeout(c.timeout),
        traceparent(c.traceparent),
        tracestate(c.tracestate) {}
  Invocation view() const {
    return Invocation{call_id,    func_name, args,        kwargs,    dialect,
                      message_id, timeout,   traceparent, tracestate};
  }
};

// What a call produced: a JSON result, or an error with the remote type name, message and
// traceback.
struct Outcome {
  Status status;  // OK, kFunction (the function raised), kTimeout, kCancelled, ...
  std::string result = "null";
  std::string error_type;
  std::string traceback;

  static Outcome success(std::string json) {
    Outcome o;
    o.result = std::move(json);
    return o;
  }
  static Outcome failure(StatusCode code, std::string_view type, std::string message,
                         std::string traceback = {}) {
    Outcome o;
    o.status = Status(code, std::move(message));
    o.error_type = std::string(type);
    o.traceback = std::move(traceback);
    return o;
  }
  bool ok() const noexcept { return status.is_ok(); }
  // The failure's text, kept once: in the status.
  const std::string& error_message() const noexcept { return status.message(); }
};

using OutcomeCallback = std::function<void(Outcome)>;

// Hands `start` a completion that runs `done` at most once, and answers a call whose start
// throws (anything at all) with kInternal unless the completion already ran: the one guard of
// every place that runs a call it did not write (an executor's submit, an invoker, a plugin's
// thunk), so a throw never escapes and never answers a call twice. `who` names the thrower.
template <typename Start>
void run_guarded(std::string_view who, OutcomeCallback done, Start&& start) noexcept {
  try {
    auto ran = std::make_shared<std::atomic<bool>>(false);
    auto shared = std::make_shared<OutcomeCallback>(std::move(done));
    OutcomeCallback once = [ran, shared](Outcome o) {
      if (!ran->exchange(true)) (*shared)(std::move(o));
    };
    try {
      start(once);
    } catch (const std::exception& e) {
      once(Outcome::failure(StatusCode::kInternal, error_types::kInternal,
                            std::string(who) + " threw: " + e.what()));
    } catch (...) {
      once(Outcome::failure(StatusCode::kInternal, error_types::kInternal,
                            std::string(who) + " threw an unknown exception"));
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory, or `done` itself threw
  }
}

// Runs one call in the current process. invoke() may call `done` before returning or later from
// any thread, exactly once.
class Invoker {
 public:
  virtual ~Invoker() = default;
  virtual void invoke(const Invocation& call, OutcomeCallback done) = 0;
  virtual void cancel(std::uint64_t /*call_id*/) {}
};

class Executor {
 public:
  virtual ~Executor() = default;
  // `done` is called exactly once: with the outcome, a timeout past the call's limit, or
  // kCancelled when the executor shuts down first.
  virtual void submit(const Invocation& call, OutcomeCallback done) = 0;
  virtual void shutdown(std::chrono::milliseconds grace) = 0;
  virtual std::uint32_t workers() const = 0;
};

}  // namespace prpc
