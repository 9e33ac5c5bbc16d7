// Conversions between the C ABI's views and C++ types, shared by the plugin SDK and the host: each
// *_view borrows a C++ object's storage as an ABI struct, each *_from reads one back (through
// copy_sized, so a shorter struct from an older peer reads as zeroes past its end).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>

#include "prpc/broker.hpp"
#include "prpc/executor.hpp"
#include "prpc/functions.hpp"
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
  out.extensions = str(m.extensions);
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
  m.extensions = view(v.extensions);
  return m;
}

// ---- calls: Invocation <-> prpc_invocation, Outcome <-> prpc_outcome --------------------------

inline prpc_invocation invocation_view(const Invocation& c) noexcept {
  auto v = make_sized<prpc_invocation>();
  v.call_id = c.call_id;
  v.func_name = str(c.func_name);
  v.args = str(c.args);
  v.kwargs = str(c.kwargs);
  v.dialect = str(c.dialect);
  v.message_id = str(c.message_id);
  v.timeout_ms = c.timeout.count();
  v.traceparent = str(c.traceparent);
  v.tracestate = str(c.tracestate);
  return v;
}

inline Invocation invocation_from(const prpc_invocation* raw) noexcept {
  prpc_invocation v = copy_sized(raw);
  Invocation c;
  c.call_id = v.call_id;
  c.func_name = view(v.func_name);
  c.args = v.args.data ? view(v.args) : std::string_view("[]");
  c.kwargs = v.kwargs.data ? view(v.kwargs) : std::string_view("{}");
  c.dialect = v.dialect.data ? view(v.dialect) : std::string_view("json");
  c.message_id = view(v.message_id);
  c.timeout = std::chrono::milliseconds(v.timeout_ms);
  c.traceparent = view(v.traceparent);
  c.tracestate = view(v.tracestate);
  return c;
}

inline prpc_outcome outcome_view(const Outcome& o) noexcept {
  auto v = make_sized<prpc_outcome>();
  v.status = static_cast<prpc_status>(o.status.code());
  v.result = str(o.result);
  v.error_type = str(o.error_type);
  v.error_message = str(o.status.message());
  v.traceback = str(o.traceback);
  return v;
}

inline Outcome outcome_from(const prpc_outcome* raw) {
  prpc_outcome v = copy_sized(raw);
  Outcome o;
  StatusCode code = status_code_from_abi(v.status);
  o.error_type = view(v.error_type);
  o.traceback = view(v.traceback);
  if (code == StatusCode::kOk) {
    o.result = v.result.data ? std::string(view(v.result)) : std::string("null");
  } else {
    o.status = Status(code, std::string(view(v.error_message)));
  }
  return o;
}

// An OutcomeCallback that forwards to a C completion.
inline OutcomeCallback outcome_to_c(prpc_outcome_fn done, void* ud) {
  return [done, ud](Outcome o) {
    prpc_outcome v = outcome_view(o);
    done(ud, &v);
  };
}

inline prpc_function_info function_info_view(const FunctionInfo& f) noexcept {
  auto v = make_sized<prpc_function_info>();
  v.name = str(f.name);
  v.worker = str(f.worker);
  v.spec_json = str(f.spec_json);
  v.doc = str(f.doc);
  return v;
}

inline FunctionInfo function_info_from(const prpc_function_info* raw) {
  prpc_function_info v = copy_sized(raw);
  FunctionInfo f;
  f.name = view(v.name);
  f.worker = view(v.worker);
  f.spec_json = v.spec_json.data ? std::string(view(v.spec_json)) : std::string("{}");
  f.doc = view(v.doc);
  return f;
}

// ---- broker ------------------------------------------------------------------------------------

inline prpc_delivery delivery_view(const DeliveryView& d) noexcept {
  auto v = make_sized<prpc_delivery>();
  v.flavour = static_cast<std::int32_t>(d.flavour);
  v.queue = str(d.queue);
  v.token = str(d.token);
  v.payload = bytes(d.payload);
  v.delivery_count = d.delivery_count;
  v.signature = str(d.signature);
  v.key_id = str(d.key_id);
  return v;
}

inline DeliveryView delivery_from(const prpc_delivery* raw) noexcept {
  prpc_delivery v = copy_sized(raw);
  DeliveryView d;
  d.flavour = static_cast<Flavour>(v.flavour);
  d.queue = view(v.queue);
  d.token = view(v.token);
  d.payload = view(v.payload);
  d.delivery_count = v.delivery_count;
  d.signature = view(v.signature);
  d.key_id = view(v.key_id);
  return d;
}

// A DoneCallback that forwards to a C completion (which may be NULL).
inline DoneCallback done_to_c(prpc_done_fn done, void* ud) {
  return [done, ud](const Status& s) {
    if (done != nullptr) done(ud, static_cast<prpc_status>(s.code()), str(s.message()));
  };
}

inline prpc_subscribe_options subscribe_options_view(const SubscribeOptions& options) noexcept {
  auto o = make_sized<prpc_subscribe_options>();
  o.queue = str(options.queue);
  o.group = str(options.group);
  o.consumer = str(options.consumer);
  o.flavours =
      (options.python ? PRPC_SUBSCRIBE_PYTHON : 0u) | (options.raw ? PRPC_SUBSCRIBE_RAW : 0u);
  o.max_outstanding = options.max_outstanding;
  o.batch_size = options.batch_size;
  o.visibility_timeout_ms = options.visibility_timeout.count();
  return o;
}

inline SubscribeOptions subscribe_options_from(const prpc_subscribe_options* raw) {
  prpc_subscribe_options o = copy_sized(raw);
  SubscribeOptions options;
  options.queue = view(o.queue);
  options.group = view(o.group);
  options.consumer = view(o.consumer);
  options.python = (o.flavours & PRPC_SUBSCRIBE_PYTHON) != 0;
  options.raw = (o.flavours & PRPC_SUBSCRIBE_RAW) != 0;
  options.max_outstanding = o.max_outstanding;
  options.batch_size = o.batch_size;
  options.visibility_timeout = std::chrono::milliseconds(o.visibility_timeout_ms);
  return options;
}

// The finish request's reply, when it has one, is written to `reply`, which must outlive the
// returned view.
inline prpc_finish finish_view(const FinishRequest& what, prpc_reply& reply) noexcept {
  auto f = make_sized<prpc_finish>();
  reply = make_sized<prpc_reply>();
  if (what.reply != nullptr) {
    reply.flavour = static_cast<std::int32_t>(what.reply->flavour);
    reply.queue = str(what.reply->queue);
    reply.message_id = str(what.reply->message_id);
    reply.reply_to = str(what.reply->reply_to);
    reply.payload = bytes(what.reply->payload);
    reply.flags = what.reply->push_only ? PRPC_REPLY_PUSH_ONLY : 0u;
    reply.signature = str(what.reply->signature);
    reply.key_id = str(what.reply->key_id);
    f.reply = &reply;
  }
  f.dead_letter_reason = str(what.dead_letter_reason);
  return f;
}

// The same, read back: the reply, when there is one, is written to `reply`, which must outlive
// the returned request.
inline FinishRequest finish_from(const prpc_finish* raw, ReplyView& reply) noexcept {
  prpc_finish f = copy_sized(raw);
  FinishRequest req;
  if (f.reply != nullptr) {
    prpc_reply r = copy_sized(f.reply);
    reply.flavour = static_cast<Flavour>(r.flavour);
    reply.queue = view(r.queue);
    reply.message_id = view(r.message_id);
    reply.reply_to = view(r.reply_to);
    reply.payload = view(r.payload);
    reply.push_only = (r.flags & PRPC_REPLY_PUSH_ONLY) != 0;
    reply.signature = view(r.signature);
    reply.key_id = view(r.key_id);
    req.reply = &reply;
  }
  req.dead_letter_reason = view(f.dead_letter_reason);
  return req;
}

inline prpc_publish publish_view(const PublishView& message) noexcept {
  auto p = make_sized<prpc_publish>();
  p.flavour = static_cast<std::int32_t>(message.flavour);
  p.queue = str(message.queue);
  p.message_id = str(message.message_id);
  p.payload = bytes(message.payload);
  p.signature = str(message.signature);
  p.key_id = str(message.key_id);
  return p;
}

inline PublishView publish_from(const prpc_publish* raw) noexcept {
  prpc_publish p = copy_sized(raw);
  return PublishView(static_cast<Flavour>(p.flavour), view(p.queue), view(p.message_id),
                     view(p.payload), view(p.signature), view(p.key_id));
}

inline prpc_pushed_reply pushed_reply_view(const PushedReplyView& r) noexcept {
  auto v = make_sized<prpc_pushed_reply>();
  v.message_id = str(r.message_id);
  v.payload = bytes(r.payload);
  v.signature = str(r.signature);
  v.key_id = str(r.key_id);
  return v;
}

inline PushedReplyView pushed_reply_from(const prpc_pushed_reply* raw) noexcept {
  prpc_pushed_reply v = copy_sized(raw);
  return PushedReplyView{view(v.message_id), view(v.payload), view(v.signature), view(v.key_id)};
}

inline prpc_stored_result stored_result_view(const StoredResult& r) noexcept {
  auto v = make_sized<prpc_stored_result>();
  v.payload = bytes(r.payload);
  v.signature = str(r.signature);
  v.key_id = str(r.key_id);
  return v;
}

inline StoredResult stored_result_from(const prpc_stored_result* raw) {
  prpc_stored_result v = copy_sized(raw);
  return StoredResult{std::string(view(v.payload)), std::string(view(v.signature)),
                      std::string(view(v.key_id))};
}

// A LookupCallback's answer as the C completion's arguments (the unsigned lookup).
inline void lookup_to_c(const Result<std::optional<std::string>>& r, prpc_lookup_fn done,
                        void* ud) noexcept {
  if (!r.is_ok()) {
    done(ud, static_cast<prpc_status>(r.status().code()), nullptr, str(r.status().message()));
  } else if (!r->has_value()) {
    done(ud, PRPC_OK, nullptr, prpc_str{nullptr, 0});
  } else {
    prpc_bytes b = bytes(**r);
    done(ud, PRPC_OK, &b, prpc_str{nullptr, 0});
  }
}

// The same for the signed lookup.
inline void stored_result_to_c(const Result<std::optional<StoredResult>>& r,
                               prpc_stored_result_fn done, void* ud) noexcept {
  if (!r.is_ok()) {
    done(ud, static_cast<prpc_status>(r.status().code()), nullptr, str(r.status().message()));
  } else if (!r->has_value()) {
    done(ud, PRPC_OK, nullptr, prpc_str{nullptr, 0});
  } else {
    prpc_stored_result v = stored_result_view(**r);
    done(ud, PRPC_OK, &v, prpc_str{nullptr, 0});
  }
}

// And the reverse: what a C lookup completion reports, as the C++ callbacks' argument.
inline Result<std::optional<std::string>> lookup_from_c(prpc_status code, const prpc_bytes* payload,
                                                        prpc_str message) {
  if (code != PRPC_OK) return Status(status_code_from_abi(code), std::string(view(message)));
  if (payload == nullptr) return std::optional<std::string>();
  return std::optional<std::string>(std::string(view(*payload)));
}

inline Result<std::optional<StoredResult>> stored_result_from_c(prpc_status code,
                                                                const prpc_stored_result* result,
                                                                prpc_str message) {
  if (code != PRPC_OK) return Status(status_code_from_abi(code), std::string(view(message)));
  if (result == nullptr) return std::optional<StoredResult>();
  return std::optional<StoredResult>(stored_result_from(result));
}

inline prpc_queue_stats queue_stats_view(const QueueStats& s) noexcept {
  auto v = make_sized<prpc_queue_stats>();
  v.length = s.length;
  v.pending = s.pending;
  v.consumers = s.consumers;
  v.dead_letters = s.dead_letters;
  return v;
}

inline QueueStats queue_stats_from(const prpc_queue_stats& v) noexcept {
  return QueueStats{v.length, v.pending, v.consumers, v.dead_letters};
}

inline prpc_dead_letter dead_letter_view(const DeadLetter& d) noexcept {
  auto v = make_sized<prpc_dead_letter>();
  v.id = str(d.id);
  v.flavour = static_cast<std::int32_t>(d.flavour);
  v.reason = str(d.reason);
  v.payload = bytes(d.payload);
  return v;
}

inline DeadLetter dead_letter_from(const prpc_dead_letter* raw) {
  prpc_dead_letter v = copy_sized(raw);
  return DeadLetter{std::string(view(v.id)), static_cast<Flavour>(v.flavour),
                    std::string(view(v.reason)), std::string(view(v.payload))};
}

}  // namespace prpc::abi
