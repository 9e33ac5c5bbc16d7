// Conversions between the C ABI's views and C++ types, shared by the plugin SDK and the host.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>

#include "prpc/message.hpp"
#include "prpc/plugin_abi.h"
#include "prpc/status.hpp"

namespace prpc::abi {

inline prpc_str str(std::string_view s) noexcept { return prpc_str{s.data(), s.size()}; }
inline prpc_bytes bytes(std::string_view s) noexcept {
  return prpc_bytes{reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view view(prpc_str s) noexcept {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.size);
}
inline std::string_view view(prpc_bytes b) noexcept {
  return b.data == nullptr ? std::string_view()
                           : std::string_view(reinterpret_cast<const char*>(b.data), b.size);
}

// Copies at most `from->struct_size` bytes of a struct written by the other side into a zeroed
// struct of this side's layout, so fields the writer did not know read as zero.
template <typename T>
T copy_sized(const T* from) noexcept {
  T out;
  std::memset(&out, 0, sizeof(T));
  if (from == nullptr) return out;
  std::size_t n = std::min<std::size_t>(sizeof(T), from->struct_size);
  std::memcpy(&out, from, n);
  out.struct_size = static_cast<std::uint32_t>(sizeof(T));
  return out;
}

// A zeroed struct whose struct_size is this side's size.
template <typename T>
T make_sized() noexcept {
  T out;
  std::memset(&out, 0, sizeof(T));
  out.struct_size = static_cast<std::uint32_t>(sizeof(T));
  return out;
}

inline void write_error(prpc_error* err, std::string_view message) noexcept {
  if (err == nullptr || err->buf == nullptr || err->capacity == 0) return;
  std::size_t n = std::min(message.size(), err->capacity - 1);
  std::memcpy(err->buf, message.data(), n);
  err->buf[n] = '\0';
}

inline prpc_status to_abi(const Status& s, prpc_error* err) noexcept {
  if (!s.is_ok()) write_error(err, s.message());
  return static_cast<prpc_status>(s.code());
}

// Runs f() and turns any exception into a status with the exception's message: nothing thrown
// ever crosses the C boundary.
template <typename F>
prpc_status barrier(prpc_error* err, F&& f) noexcept {
  try {
    return to_abi(f(), err);
  } catch (const std::bad_alloc&) {
    write_error(err, "out of memory");
    return PRPC_ERR_RESOURCE_EXHAUSTED;
  } catch (const std::exception& e) {
    write_error(err, e.what());
    return PRPC_ERR_INTERNAL;
  } catch (...) {
    write_error(err, "unknown exception");
    return PRPC_ERR_INTERNAL;
  }
}

// For callbacks without a status channel: swallows exceptions (the caller cannot handle them).
template <typename F>
void barrier_void(F&& f) noexcept {
  try {
    f();
  } catch (...) {  // NOLINT(bugprone-empty-catch): nothing may cross the boundary
  }
}

// ---- Message <-> prpc_message ----------------------------------------------------------------

inline prpc_message message_view(const Message& m) noexcept {
  auto out = make_sized<prpc_message>();
  out.func_name = str(m.func_name);
  out.func_args = str(m.func_args);
  out.func_kwargs = str(m.func_kwargs);
  out.message_id = str(m.message_id);
  out.result = str(m.result);
  out.has_exception = m.exception_info.has_value() ? 1 : 0;
  out.exception_info = m.exception_info ? str(*m.exception_info) : prpc_str{nullptr, 0};
  out.date_create_message = str(m.date_create_message);
  out.date_done_message = str(m.date_done_message);
  out.reply_to = str(m.reply_to);
  out.deadline = str(m.deadline);
  out.attempt = m.attempt;
  out.exception_type = str(m.exception_type);
  out.traceback = str(m.traceback);
  out.traceparent = str(m.traceparent);
  return out;
}

inline Message message_from(const prpc_message* raw) {
  Message m;
  if (raw == nullptr) return m;
  prpc_message v = copy_sized(raw);
  m.func_name = view(v.func_name);
  m.func_args = v.func_args.data ? std::string(view(v.func_args)) : std::string("[]");
  m.func_kwargs = v.func_kwargs.data ? std::string(view(v.func_kwargs)) : std::string("{}");
  m.message_id = view(v.message_id);
  m.result = v.result.data ? std::string(view(v.result)) : std::string("null");
  if (v.has_exception != 0) m.exception_info = std::string(view(v.exception_info));
  m.date_create_message = view(v.date_create_message);
  m.date_done_message = view(v.date_done_message);
  m.reply_to = view(v.reply_to);
  m.deadline = view(v.deadline);
  m.attempt = v.attempt;
  m.exception_type = view(v.exception_type);
  m.traceback = view(v.traceback);
  m.traceparent = view(v.traceparent);
  return m;
}

}  // namespace prpc::abi
