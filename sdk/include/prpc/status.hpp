// Status and Result<T>: the error channel of hot and cross-thread paths (no exceptions there).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "prpc/plugin_abi.h"

namespace prpc {

enum class StatusCode : std::int32_t {
  kOk = PRPC_OK,
  kInvalidArgument = PRPC_ERR_INVALID_ARGUMENT,
  kNotFound = PRPC_ERR_NOT_FOUND,
  kAlreadyExists = PRPC_ERR_ALREADY_EXISTS,
  kUnavailable = PRPC_ERR_UNAVAILABLE,
  kTimeout = PRPC_ERR_TIMEOUT,
  kDecode = PRPC_ERR_DECODE,
  kEncode = PRPC_ERR_ENCODE,
  kCancelled = PRPC_ERR_CANCELLED,
  kResourceExhausted = PRPC_ERR_RESOURCE_EXHAUSTED,
  kFailedPrecondition = PRPC_ERR_FAILED_PRECONDITION,
  kInternal = PRPC_ERR_INTERNAL,
  kUnimplemented = PRPC_ERR_UNIMPLEMENTED,
  kFunction = PRPC_ERR_FUNCTION,
};

inline std::string_view status_code_name(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kAlreadyExists: return "AlreadyExists";
    case StatusCode::kUnavailable: return "Unavailable";
    case StatusCode::kTimeout: return "Timeout";
    case StatusCode::kDecode: return "DecodeError";
    case StatusCode::kEncode: return "EncodeError";
    case StatusCode::kCancelled: return "Cancelled";
    case StatusCode::kResourceExhausted: return "ResourceExhausted";
    case StatusCode::kFailedPrecondition: return "FailedPrecondition";
    case StatusCode::kInternal: return "Internal";
    case StatusCode::kUnimplemented: return "Unimplemented";
    case StatusCode::kFunction: return "FunctionError";
  }
  return "Unknown";
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool is_ok() const noexcept { return code_ == StatusCode::kOk; }
  explicit operator bool() const noexcept { return is_ok(); }
  StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // Errors a caller may retry with the same input.
  bool retriable() const noexcept {
    return code_ == StatusCode::kUnavailable || code_ == StatusCode::kTimeout;
  }
  // "Unavailable: connection refused"
  std::string to_string() const;

  // Prefixes the message with context: "loading x: <message>".
  Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status make_error(StatusCode code, std::string message) {
  return Status(code, std::move(message));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : value_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(value_).is_ok()) {
      value_ = Status(StatusCode::kInternal, "Result constructed from an OK status");
    }
  }

  bool is_ok() const noexcept { return std::holds_alternative<T>(value_); }
  explicit operator bool() const noexcept { return is_ok(); }

  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<Status>(value_);
  }
  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> value_;
};

inline std::string Status::to_string() const {
  if (is_ok()) return "OK";
  std::string out(status_code_name(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

inline Status Status::with_context(std::string_view context) const {
  if (is_ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

// Maps a status code received over the C ABI, folding unknown codes into kInternal.
inline StatusCode status_code_from_abi(prpc_status code) noexcept {
  if (code < PRPC_OK || code > PRPC_ERR_FUNCTION) return StatusCode::kInternal;
  return static_cast<StatusCode>(code);
}

}  // namespace prpc

#define PRPC_CONCAT_INNER(a, b) a##b
#define PRPC_CONCAT(a, b) PRPC_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when it is not OK.
#define PRPC_RETURN_IF_ERROR(expr)                          \
  do {                                                      \
    ::prpc::Status prpc_status_tmp_ = (expr);               \
    if (!prpc_status_tmp_.is_ok()) return prpc_status_tmp_; \
  } while (false)

// `tmp` and `lhs` are a name and a declaration, which parentheses would break.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define PRPC_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.is_ok()) return tmp.status();           \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

// PRPC_ASSIGN_OR_RETURN(auto x, make_x()); assigns the value or returns the error.
#define PRPC_ASSIGN_OR_RETURN(lhs, expr) \
  PRPC_ASSIGN_OR_RETURN_IMPL(PRPC_CONCAT(prpc_result_, __LINE__), lhs, expr)
