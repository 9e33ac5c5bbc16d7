// The message model of PROTOCOL.md section 2, free of any broker, codec or language.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "prpc/plugin_abi.h"

namespace prpc {

// Which request stream a message travels on: prpc_{q} (Python values, jsonpickle) or
// prpc_raw_{q} (plain JSON for any language).
enum class Flavour : std::int32_t { kPython = PRPC_FLAVOUR_PYTHON, kRaw = PRPC_FLAVOUR_RAW };

inline std::string_view flavour_name(Flavour f) noexcept {
  return f == Flavour::kRaw ? "raw" : "python";
}

// One request or reply. func_args, func_kwargs and result hold JSON text in the dialect of the
// codec that produced them ("json" or "jsonpickle"); each is a self-contained document.
struct Message {
  std::string func_name;
  std::string func_args = "[]";
  std::string func_kwargs = "{}";
  std::string message_id;
  std::string result = "null";
  std::optional<std::string> exception_info;  // set on failure, never empty then
  std::string date_create_message;            // ISO 8601 with offset; empty when absent
  std::string date_done_message;
  // Extensions (PROTOCOL.md section 2, "Suggested").
  std::string reply_to;  // where the client listens for the pushed reply
  std::string deadline;  // absolute ISO 8601; a request that expires while queued is not run
  std::uint32_t attempt = 0;
  std::string exception_type;
  std::string traceback;
  std::string traceparent;
  // The message's other fields as JSON object text, plain JSON values only, in the order the
  // codec read them (e.g. {"server": "host-42", "time_queued": 0.0012}); empty when none.
  // Codecs write them after the fields above. Read and set one with json::get_member and
  // json::set_member (prpc/json.hpp).
  std::string extensions;

  bool failed() const noexcept { return exception_info.has_value(); }
};

// The wire names of Message's named fields, in the raw flavour's order. Every other top-level
// field of a message is an extension (Message::extensions), except jsonpickle's "py/" tags.
inline constexpr std::string_view kMessageFields[] = {
    "func_name",      "func_args",           "func_kwargs",       "message_id", "result",
    "exception_info", "date_create_message", "date_done_message", "reply_to",   "deadline",
    "attempt",        "exception_type",      "traceback",         "traceparent"};

inline bool is_message_field(std::string_view key) noexcept {
  for (std::string_view f : kMessageFields) {
    if (f == key) return true;
  }
  return false;
}

// Whether a top-level key may be carried in Message::extensions.
inline bool is_extension_key(std::string_view key) noexcept {
  return !is_message_field(key) && key.substr(0, 3) != "py/";
}

// Error type names used in replies that the runtime (not a function) produces.
namespace error_types {
inline constexpr std::string_view kUnknownFunction = "UnknownFunctionError";
inline constexpr std::string_view kTimeout = "TimeoutError";
inline constexpr std::string_view kDecode = "DecodeError";
inline constexpr std::string_view kEncode = "EncodeError";
inline constexpr std::string_view kDeadLetter = "DeadLetterError";
inline constexpr std::string_view kCancelled = "CancelledError";
inline constexpr std::string_view kInternal = "InternalError";
inline constexpr std::string_view kWorkerLost = "WorkerLostError";
inline constexpr std::string_view kArguments = "TypeError";
}  // namespace error_types

// "ValueError: bad input", or "ValueError: " for an empty message: never empty (PROTOCOL.md 3).
inline std::string format_exception_info(std::string_view type, std::string_view message) {
  std::string out(type.empty() ? std::string_view("Exception") : type);
  out += ": ";
  out += message;
  return out;
}

// The original PRPC's texts for an unknown function and a server-side timeout, which its callers
// may match on; ours add the detail after them.
inline std::string not_found_text(std::string_view func_name) {
  std::string out = "func name '";
  out += func_name;
  out += "' not found in server";
  return out;
}

// "the task was completed by server timeout 1.5 secs." (seconds written as Python prints a float)
inline std::string server_timeout_text(std::string_view func_name,
                                       std::chrono::milliseconds limit) {
  auto ms = limit.count() < 0 ? 0 : limit.count();
  std::string fraction = std::to_string(1000 + ms % 1000).substr(1);
  while (fraction.size() > 1 && fraction.back() == '0') fraction.pop_back();
  std::string out = "the task was completed by server timeout " + std::to_string(ms / 1000) + "." +
                    fraction + " secs. (the call to '";
  out += func_name;
  out += "' did not finish within " + std::to_string(ms) + " ms)";
  return out;
}

}  // namespace prpc
