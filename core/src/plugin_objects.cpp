#include "plugin_objects.hpp"

#include <algorithm>
#include <array>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "prpc/abi_views.hpp"
#include "prpc/log.hpp"
#include "prpc/own_thread.hpp"

namespace prpc::details {
namespace {

constexpr std::size_t kErrorCapacity = 1024;

struct ErrorBuffer {
  std::array<char, kErrorCapacity> buf{};
  prpc_error err{buf.data(), buf.size()};
  Status status(prpc_status code, std::string_view context) const {
    std::string msg(context);
    if (buf[0] != '\0') {
      msg += ": ";
      msg += buf.data();
    }
    return Status(status_code_from_abi(code), std::move(msg));
  }
};

Status unimplemented(std::string_view what) {
  return Status(StatusCode::kUnimplemented, "the plugin does not implement " + std::string(what));
}

// A plugin may call back into the host on its own threads, and the callback may drop the last
// reference to the very object whose plugin is calling (a client closed from a reply handler).
// Destroying a plugin object there would make it join its own thread, so every callback marks
// the thread as running on behalf of its object, and a wrapper destroyed inside such a scope
// hands the plugin's destroy() to a short-lived thread instead.
thread_local std::vector<const void*> t_callback_owners;

class CallbackScope {
 public:
  explicit CallbackScope(const void* owner) { t_callback_owners.push_back(owner); }
  ~CallbackScope() { t_callback_owners.pop_back(); }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;
};

bool in_callback_of(const void* owner) {
  return std::find(t_callback_owners.begin(), t_callback_owners.end(), owner) !=
         t_callback_owners.end();
}

// Runs `destroy` now, or on a fresh thread when this thread is inside a callback of `owner`.
template <typename Destroy>
void destroy_safely(const void* owner, Destroy destroy) {
  tear_down(in_callback_of(owner), std::move(destroy));
}

// A callback handed through a C `void* ud`, tagged with the wrapper whose plugin calls it.
template <typename Fn>
struct Tagged {
  const void* owner;
  Fn fn;
};

template <typename Fn>
Tagged<Fn>* tagged(const void* owner, Fn fn) {
  return new Tagged<Fn>{owner, std::move(fn)};
}

// Takes a one-shot tagged callback and runs `use` on it inside its owner's scope; the callback
// (and whatever it holds) is released inside the scope too.
template <typename Fn, typename Use>
void run_once(void* ud, Use&& use) noexcept {
  auto* raw = static_cast<Tagged<Fn>*>(ud);
  CallbackScope scope(raw->owner);
  std::unique_ptr<Tagged<Fn>> cb(raw);
  abi::barrier_void([&] { use(cb->fn); });
}

void done_thunk(void* ud, prpc_status code, prpc_str message) noexcept {
  run_once<DoneCallback>(ud, [&](DoneCallback& fn) {
    if (code == PRPC_OK) {
      fn(Status::ok());
    } else {
      fn(Status(status_code_from_abi(code), std::string(abi::view(message))));
    }
  });
}

void lookup_thunk(void* ud, prpc_status code, const prpc_bytes* payload,
                  prpc_str message) noexcept {
  run_once<LookupCallback>(
      ud, [&](LookupCallback& fn) { fn(abi::lookup_from_c(code, payload, message)); });
}

void stored_result_thunk(void* ud, prpc_status code, const prpc_stored_result* result,
                         prpc_str message) noexcept {
  run_once<StoredResultCallback>(
      ud, [&](StoredResultCallback& fn) { fn(abi::stored_result_from_c(code, result, message)); });
}

void outcome_thunk(void* ud, const prpc_outcome* raw) noexcept {
  run_once<OutcomeCallback>(ud, [&](OutcomeCallback& fn) { fn(abi::outcome_from(raw)); });
}

void string_sink(void* ud, prpc_bytes value) noexcept {
  abi::barrier_void([&] { static_cast<std::string*>(ud)->assign(abi::view(value)); });
}

class PluginBroker final : public Broker {
 public:
  PluginBroker(LibraryHandle lib, const prpc_broker_vtable& vt, void* self)
      : lib_(std::move(lib)), vt_(vt), self_(self) {}
  ~PluginBroker() override {
    destroy_safely(this, [vt = vt_, self = self_, lib = lib_, handler = std::move(handler_),
                          replies = std::move(reply_handlers_),
                          pushed = std::move(pushed_handlers_)] { vt.destroy(self); });
  }

  Status connect() override {
    if (vt_.connect == nullptr) return Status::ok();
    ErrorBuffer e;
    prpc_status code = vt_.connect(self_, &e.err);
    return code == PRPC_OK ? Status::ok() : e.status(code, "connect");
  }

  Status subscribe(const SubscribeOptions& options, DeliveryHandler handler) override {
    if (vt_.subscribe == nullptr) return unimplemented("subscribe");
    {
      std::lock_guard lock(mutex_);
      handler_.reset(tagged<DeliveryHandler>(this, std::move(handler)));
    }
    prpc_subscribe_options o = abi::subscribe_options_view(options);
    ErrorBuffer e;
    prpc_status code = vt_.subscribe(self_, &o, &deliver_thunk, handler_.get(), &e.err);
    return code == PRPC_OK ? Status::ok() : e.status(code, "subscribe");
  }

  void unsubscribe() override {
    if (vt_.unsubscribe != nullptr) vt_.unsubscribe(self_);
  }

  void finish(const DeliveryView& delivery, const FinishRequest& what, DoneCallback done) override {
    if (vt_.finish == nullptr) {
      done(unimplemented("finish"));
      return;
    }
    prpc_delivery d = abi::delivery_view(delivery);
    prpc_reply r;
    prpc_finish f = abi::finish_view(what, r);
    vt_.finish(self_, &d, &f, &done_thunk, tagged(this, std::move(done)));
  }

  void touch(const DeliveryView& delivery) override {
    if (vt_.touch == nullptr) return;
    prpc_delivery d = abi::delivery_view(delivery);
    vt_.touch(self_, &d);
  }

  void lookup_result(Flavour flavour, std::string_view queue, std::string_view message_id,
                     LookupCallback done) override {
    if (vt_.lookup_result == nullptr) {
      done(unimplemented("lookup_result"));
      return;
    }
    vt_.lookup_result(self_, static_cast<std::int32_t>(flavour), abi::str(queue),
                      abi::str(message_id), &lookup_thunk, tagged(this, std::move(done)));
  }

  void publish(const PublishView& message, DoneCallback done) override {
    if (vt_.publish == nullptr) {
      done(unimplemented("publish"));
      return;
    }
    prpc_publish p = abi::publish_view(message);
    vt_.publish(self_, &p, &done_thunk, tagged(this, std::move(done)));
  }

  Result<std::string> open_replies(std::string_view queue, ReplyHandler on_reply) override {
    if (vt_.open_replies == nullptr) return unimplemented("open_replies");
    Tagged<ReplyHandler>* handler = nullptr;
    {
      std::lock_guard lock(mutex_);
      reply_handlers_.emplace_back(tagged<ReplyHandler>(this, std::move(on_reply)));
      handler = reply_handlers_.back().get();
    }
    std::string reply_to;
    ErrorBuffer e;
    prpc_status code = vt_.open_replies(self_, abi::str(queue), &reply_thunk, handler, &string_sink,
                                        &reply_to, &e.err);
    if (code != PRPC_OK) return e.status(code, "open_replies");
    return reply_to;
  }

  Result<QueueStats> queue_stats(std::string_view queue) override {
    if (vt_.queue_stats == nullptr) return unimplemented("queue_stats");
    auto out = abi::make_sized<prpc_queue_stats>();
    ErrorBuffer e;
    prpc_status code = vt_.queue_stats(self_, abi::str(queue), &out, &e.err);
    if (code != PRPC_OK) return e.status(code, "queue_stats");
    return abi::queue_stats_from(out);
  }

  Result<std::vector<DeadLetter>> dead_letters(std::string_view queue,
                                               std::size_t max_count) override {
    if (vt_.dead_letters == nullptr) return unimplemented("dead_letters");
    std::vector<DeadLetter> out;
    ErrorBuffer e;
    prpc_status code =
        vt_.dead_letters(self_, abi::str(queue), max_count, &dead_letter_sink, &out, &e.err);
    if (code != PRPC_OK) return e.status(code, "dead_letters");
    return out;
  }

  Result<std::size_t> requeue_dead_letters(std::string_view queue,
                                           std::span<const std::string> ids) override {
    // copy_sized zeroed what a plugin built before ABI 1.1 did not have, so this also covers
    // plugins whose vtable ends before the pointer.
    if (vt_.requeue_dead_letters == nullptr) return Broker::requeue_dead_letters(queue, ids);
    std::vector<prpc_str> raw;
    raw.reserve(ids.size());
    for (const std::string& id : ids) raw.push_back(abi::str(id));
    std::uint64_t count = 0;
    ErrorBuffer e;
    prpc_status code =
        vt_.requeue_dead_letters(self_, abi::str(queue), raw.data(), raw.size(), &count, &e.err);
    if (code != PRPC_OK) return e.status(code, "requeue_dead_letters");
    return static_cast<std::size_t>(count);
  }

  // ABI 1.2. Each falls back to Broker's default when the plugin's vtable has no such pointer
  // (copy_sized zeroed what an older plugin's vtable does not reach).
  Result<std::string> open_replies_signed(std::string_view queue,
                                          PushedReplyHandler on_reply) override {
    if (vt_.open_replies_signed == nullptr) {
      return Broker::open_replies_signed(queue, std::move(on_reply));
    }
    Tagged<PushedReplyHandler>* handler = nullptr;
    {
      std::lock_guard lock(mutex_);
      pushed_handlers_.emplace_back(tagged<PushedReplyHandler>(this, std::move(on_reply)));
      handler = pushed_handlers_.back().get();
    }
    std::string reply_to;
    ErrorBuffer e;
    prpc_status code = vt_.open_replies_signed(self_, abi::str(queue), &pushed_reply_thunk, handler,
                                               &string_sink, &reply_to, &e.err);
    if (code != PRPC_OK) return e.status(code, "open_replies_signed");
    return reply_to;
  }

  void lookup_result_signed(Flavour flavour, std::string_view queue, std::string_view message_id,
                            StoredResultCallback done) override {
    if (vt_.lookup_result_signed == nullptr) {
      Broker::lookup_result_signed(flavour, queue, message_id, std::move(done));
      return;
    }
    vt_.lookup_result_signed(self_, static_cast<std::int32_t>(flavour), abi::str(queue),
                             abi::str(message_id), &stored_result_thunk,
                             tagged(this, std::move(done)));
  }

  void announce_server(std::string_view queue, std::string_view server_id,
                       std::string_view info_json, std::chrono::milliseconds ttl,
                       DoneCallback done) override {
    if (vt_.announce_server == nullptr) {
      Broker::announce_server(queue, server_id, info_json, ttl, std::move(done));
      return;
    }
    vt_.announce_server(self_, abi::str(queue), abi::str(server_id), abi::bytes(info_json),
                        ttl.count(), &done_thunk, tagged(this, std::move(done)));
  }

  Result<std::string> list_servers(std::string_view queue) override {
    if (vt_.list_servers == nullptr) return Broker::list_servers(queue);
    std::string out;
    ErrorBuffer e;
    prpc_status code = vt_.list_servers(self_, abi::str(queue), &string_sink, &out, &e.err);
    if (code != PRPC_OK) return e.status(code, "list_servers");
    return out;
  }

 private:
  static void deliver_thunk(void* ud, const prpc_delivery* const* items,
                            std::size_t count) noexcept {
    auto* handler = static_cast<Tagged<DeliveryHandler>*>(ud);
    CallbackScope scope(handler->owner);
    abi::barrier_void([&] {
      std::vector<DeliveryView> views;
      views.reserve(count);
      for (std::size_t i = 0; i < count; ++i) views.push_back(abi::delivery_from(items[i]));
      handler->fn(views);
    });
  }
  static void reply_thunk(void* ud, prpc_str message_id, prpc_bytes payload) noexcept {
    auto* handler = static_cast<Tagged<ReplyHandler>*>(ud);
    CallbackScope scope(handler->owner);
    abi::barrier_void([&] { handler->fn(abi::view(message_id), abi::view(payload)); });
  }
  static void pushed_reply_thunk(void* ud, const prpc_pushed_reply* reply) noexcept {
    auto* handler = static_cast<Tagged<PushedReplyHandler>*>(ud);
    CallbackScope scope(handler->owner);
    abi::barrier_void([&] { handler->fn(abi::pushed_reply_from(reply)); });
  }
  static void dead_letter_sink(void* ud, const prpc_dead_letter* raw) noexcept {
    abi::barrier_void(
        [&] { static_cast<std::vector<DeadLetter>*>(ud)->push_back(abi::dead_letter_from(raw)); });
  }

  LibraryHandle lib_;
  prpc_broker_vtable vt_;
  void* self_;
  std::mutex mutex_;
  std::unique_ptr<Tagged<DeliveryHandler>> handler_;
  std::vector<std::unique_ptr<Tagged<ReplyHandler>>> reply_handlers_;  // live until destroy
  std::vector<std::unique_ptr<Tagged<PushedReplyHandler>>> pushed_handlers_;
};

struct DecodeSink {
  Result<Message> result = Status(StatusCode::kInternal, "the codec produced no message");
  Message* salvaged = nullptr;
};

void decode_thunk(void* ud, prpc_status code, const prpc_message* msg, prpc_str error) noexcept {
  abi::barrier_void([&] {
    auto* sink = static_cast<DecodeSink*>(ud);
    if (code == PRPC_OK) {
      sink->result = abi::message_from(msg);
    } else {
      sink->result = Status(status_code_from_abi(code), std::string(abi::view(error)));
      if (sink->salvaged != nullptr && msg != nullptr) *sink->salvaged = abi::message_from(msg);
    }
  });
}

class PluginCodec final : public Codec {
 public:
  PluginCodec(LibraryHandle lib, const prpc_codec_vtable& vt, void* self)
      : lib_(std::move(lib)), vt_(vt), self_(self) {
    const char* d = vt_.dialect != nullptr ? vt_.dialect(self_) : nullptr;
    dialect_ = d != nullptr ? d : "json";
  }
  ~PluginCodec() override { vt_.destroy(self_); }

  std::string_view dialect() const override { return dialect_; }

  Result<Message> decode(std::string_view bytes, Message* salvaged) const override {
    if (vt_.decode == nullptr) return unimplemented("decode");
    DecodeSink sink;
    sink.salvaged = salvaged;
    vt_.decode(self_, abi::bytes(bytes), &decode_thunk, &sink);
    return std::move(sink.result);
  }

  Result<std::string> encode(const Message& message) const override {
    if (vt_.encode == nullptr) return unimplemented("encode");
    prpc_message v = abi::message_view(message);
    std::string out;
    ErrorBuffer e;
    prpc_status code = vt_.encode(self_, &v, &string_sink, &out, &e.err);
    if (code != PRPC_OK) {
      return Status(status_code_from_abi(code), std::string(e.buf.data()));
    }
    return out;
  }

 private:
  LibraryHandle lib_;
  prpc_codec_vtable vt_;
  void* self_;
  std::string dialect_;
};

void invoker_invoke(void* ud, const prpc_invocation* inv, prpc_outcome_fn done,
                    void* done_ud) noexcept {
  run_guarded("the invoker", abi::outcome_to_c(done, done_ud), [&](OutcomeCallback once) {
    static_cast<Invoker*>(ud)->invoke(abi::invocation_from(inv), std::move(once));
  });
}

void invoker_cancel(void* ud, std::uint64_t call_id) noexcept {
  abi::barrier_void([&] { static_cast<Invoker*>(ud)->cancel(call_id); });
}

class PluginExecutor final : public Executor {
 public:
  PluginExecutor(LibraryHandle lib, const prpc_executor_vtable& vt,
                 std::shared_ptr<Invoker> invoker)
      : lib_(std::move(lib)), vt_(vt), invoker_(std::move(invoker)) {
    raw_invoker_ = abi::make_sized<prpc_invoker>();
    raw_invoker_.ud = invoker_.get();
    raw_invoker_.invoke = &invoker_invoke;
    raw_invoker_.cancel = &invoker_cancel;
  }
  ~PluginExecutor() override {
    if (self_ == nullptr) return;
    destroy_safely(this,
                   [vt = vt_, self = self_, lib = lib_, invoker = invoker_] { vt.destroy(self); });
  }

  Status create(const prpc_config* config) {
    ErrorBuffer e;
    prpc_status code = vt_.create(log::host_services(), config, &raw_invoker_, &self_, &e.err);
    if (code != PRPC_OK) {
      self_ = nullptr;
      return e.status(code, "create");
    }
    return Status::ok();
  }

  void submit(const Invocation& call, OutcomeCallback done) override {
    if (vt_.submit == nullptr) {
      done(Outcome::failure(StatusCode::kUnimplemented, error_types::kInternal,
                            "the executor plugin does not implement submit"));
      return;
    }
    prpc_invocation v = abi::invocation_view(call);
    vt_.submit(self_, &v, &outcome_thunk, tagged(this, std::move(done)));
  }

  void shutdown(std::chrono::milliseconds grace) override {
    if (vt_.shutdown != nullptr) vt_.shutdown(self_, grace.count());
  }

  std::uint32_t workers() const override { return vt_.workers != nullptr ? vt_.workers(self_) : 0; }

 private:
  LibraryHandle lib_;
  prpc_executor_vtable vt_;
  std::shared_ptr<Invoker> invoker_;
  prpc_invoker raw_invoker_{};
  void* self_ = nullptr;
};

void function_info_sink(void* ud, const prpc_function_info* raw) noexcept {
  abi::barrier_void([&] {
    static_cast<std::vector<FunctionInfo>*>(ud)->push_back(abi::function_info_from(raw));
  });
}

class PluginFunctions final : public FunctionTable {
 public:
  PluginFunctions(LibraryHandle lib, const prpc_functions_vtable& vt, void* self)
      : lib_(std::move(lib)), vt_(vt), self_(self) {}
  ~PluginFunctions() override {
    destroy_safely(this, [vt = vt_, self = self_, lib = lib_] { vt.destroy(self); });
  }

  std::vector<FunctionInfo> list() const override {
    std::vector<FunctionInfo> out;
    if (vt_.list != nullptr) vt_.list(self_, &function_info_sink, &out);
    return out;
  }

  void invoke(const Invocation& call, OutcomeCallback done) override {
    if (vt_.invoke == nullptr) {
      done(Outcome::failure(StatusCode::kUnimplemented, error_types::kInternal,
                            "the functions plugin does not implement invoke"));
      return;
    }
    prpc_invocation v = abi::invocation_view(call);
    vt_.invoke(self_, &v, &outcome_thunk, tagged(this, std::move(done)));
  }

  void cancel(std::uint64_t call_id) override {
    if (vt_.cancel != nullptr) vt_.cancel(self_, call_id);
  }

 private:
  LibraryHandle lib_;
  prpc_functions_vtable vt_;
  void* self_;
};

template <typename Vtable>
Status create_instance(const Vtable& vt, const prpc_config* config, void** self) {
  if (vt.create == nullptr || vt.destroy == nullptr) {
    return Status(StatusCode::kFailedPrecondition, "the plugin's vtable has no create/destroy");
  }
  ErrorBuffer e;
  prpc_status code = vt.create(log::host_services(), config, self, &e.err);
  if (code != PRPC_OK) return e.status(code, "create");
  return Status::ok();
}

}  // namespace

Result<std::shared_ptr<Broker>> make_plugin_broker(LibraryHandle lib, const prpc_broker_vtable* raw,
                                                   const prpc_config* config) {
  prpc_broker_vtable vt = abi::copy_sized(raw);
  void* self = nullptr;
  PRPC_RETURN_IF_ERROR(create_instance(vt, config, &self));
  return std::shared_ptr<Broker>(std::make_shared<PluginBroker>(std::move(lib), vt, self));
}

Result<std::shared_ptr<Codec>> make_plugin_codec(LibraryHandle lib, const prpc_codec_vtable* raw,
                                                 const prpc_config* config) {
  prpc_codec_vtable vt = abi::copy_sized(raw);
  void* self = nullptr;
  PRPC_RETURN_IF_ERROR(create_instance(vt, config, &self));
  return std::shared_ptr<Codec>(std::make_shared<PluginCodec>(std::move(lib), vt, self));
}

Result<std::shared_ptr<Executor>> make_plugin_executor(LibraryHandle lib,
                                                       const prpc_executor_vtable* raw,
                                                       const prpc_config* config,
                                                       std::shared_ptr<Invoker> invoker) {
  prpc_executor_vtable vt = abi::copy_sized(raw);
  if (vt.create == nullptr || vt.destroy == nullptr) {
    return Status(StatusCode::kFailedPrecondition, "the plugin's vtable has no create/destroy");
  }
  auto executor = std::make_shared<PluginExecutor>(std::move(lib), vt, std::move(invoker));
  PRPC_RETURN_IF_ERROR(executor->create(config));
  return std::shared_ptr<Executor>(std::move(executor));
}

Result<std::shared_ptr<FunctionTable>> make_plugin_functions(LibraryHandle lib,
                                                             const prpc_functions_vtable* raw,
                                                             const prpc_config* config) {
  prpc_functions_vtable vt = abi::copy_sized(raw);
  void* self = nullptr;
  PRPC_RETURN_IF_ERROR(create_instance(vt, config, &self));
  return std::shared_ptr<FunctionTable>(
      std::make_shared<PluginFunctions>(std::move(lib), vt, self));
}

}  // namespace prpc::details
