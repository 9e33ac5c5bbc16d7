// Header-only helpers that turn C++ classes into a PRPC plugin.
//
//   class MyBroker : public prpc::Broker {
//    public:
//     static constexpr const char* kName = "mine";
//     static constexpr const char* kDescription = "what it is";
//     static std::vector<prpc::sdk::OptionSpec> options();   // optional
//     explicit MyBroker(const prpc::sdk::Context& ctx);
//     ... the prpc::Broker methods ...
//   };
//   PRPC_PLUGIN("my_plugin", "1.0.0", "What the plugin is", MyBroker)
//
// Kinds are told apart by base class: prpc::Broker, prpc::Codec, prpc::Executor (constructed as
// T(const Context&, prpc::Invoker&)) and prpc::FunctionTable. Every entry from the host goes
// through an exception barrier: a throw becomes a status code and a message.
#pragma once

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "prpc/abi_views.hpp"
#include "prpc/broker.hpp"
#include "prpc/codec.hpp"
#include "prpc/executor.hpp"
#include "prpc/functions.hpp"
#include "prpc/plugin_abi.h"

namespace prpc::sdk {

// ---- what a plugin instance gets from the host --------------------------------------------

class Logger {
 public:
  Logger() = default;
  Logger(const prpc_host* host, std::string component)
      : host_(abi::copy_sized(host)), component_(std::move(component)) {}

  void log(std::int32_t level, std::string_view message) const noexcept {
    if (host_.log != nullptr) host_.log(host_.ud, level, abi::str(component_), abi::str(message));
  }
  void debug(std::string_view m) const noexcept { log(PRPC_LOG_DEBUG, m); }
  void info(std::string_view m) const noexcept { log(PRPC_LOG_INFO, m); }
  void warn(std::string_view m) const noexcept { log(PRPC_LOG_WARN, m); }
  void error(std::string_view m) const noexcept { log(PRPC_LOG_ERROR, m); }

 private:
  prpc_host host_ = abi::make_sized<prpc_host>();
  std::string component_;
};

// The resolved options of one instance. The host has validated types and applied defaults, so
// values are canonical: integers and durations in decimal (durations in milliseconds), booleans
// "true" / "false".
class Options {
 public:
  Options() = default;
  explicit Options(std::map<std::string, std::string, std::less<>> values)
      : values_(std::move(values)) {}
  explicit Options(const prpc_config* config) {
    if (config == nullptr) return;
    prpc_config c = abi::copy_sized(config);
    for (std::size_t i = 0; i < c.count; ++i) {
      values_.emplace(std::string(abi::view(c.items[i].key)),
                      std::string(abi::view(c.items[i].value)));
    }
  }

  bool has(std::string_view key) const { return values_.find(key) != values_.end(); }
  std::string get(std::string_view key, std::string_view fallback = {}) const {
    auto it = values_.find(key);
    return it == values_.end() ? std::string(fallback) : it->second;
  }
  std::int64_t get_int(std::string_view key, std::int64_t fallback = 0) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    std::int64_t v = fallback;
    const std::string& s = it->second;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return (ec == std::errc() && p == s.data() + s.size()) ? v : fallback;
  }
  bool get_bool(std::string_view key, bool fallback = false) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    return it->second == "true";
  }
  double get_double(std::string_view key, double fallback = 0) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    try {
      return std::stod(it->second);
    } catch (...) {
      return fallback;
    }
  }
  std::chrono::milliseconds get_duration(std::string_view key,
                                         std::chrono::milliseconds fallback = {}) const {
    return std::chrono::milliseconds(get_int(key, fallback.count()));
  }
  const std::map<std::string, std::string, std::less<>>& all() const { return values_; }

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

struct Context {
  Logger log;
  Options options;
};

struct OptionSpec {
  const char* key;
  std::int32_t type;
  const char* default_value;  // nullptr: no default
  const char* help;
  std::uint32_t flags = 0;
};

// ---- plugin side view of the host's invoker -------------------------------------------------

namespace details {

// Heap-held C++ callback handed through a C `void* ud`; the thunk runs it once and frees it.
inline void outcome_thunk(void* ud, const prpc_outcome* raw) noexcept {
  std::unique_ptr<OutcomeCallback> cb(static_cast<OutcomeCallback*>(ud));
  abi::barrier_void([&] { (*cb)(abi::outcome_from(raw)); });
}

}  // namespace details

// The host's invoker, seen from inside a plugin as a prpc::Invoker.
class InvokerRef final : public Invoker {
 public:
  explicit InvokerRef(const prpc_invoker* raw) : raw_(abi::copy_sized(raw)) {}
  void invoke(const Invocation& call, OutcomeCallback done) override {
    if (raw_.invoke == nullptr) {
      done(Outcome::failure(StatusCode::kUnimplemented, error_types::kInternal,
                            "the host gave no invoker"));
      return;
    }
    prpc_invocation v = abi::invocation_view(call);
    raw_.invoke(raw_.ud, &v, &details::outcome_thunk, new OutcomeCallback(std::move(done)));
  }
  void cancel(std::uint64_t call_id) override {
    if (raw_.cancel != nullptr) raw_.cancel(raw_.ud, call_id);
  }

 private:
  prpc_invoker raw_;
};

// ---- vtables ---------------------------------------------------------------------------------

namespace details {

template <typename T>
T* as(void* self) noexcept {
  return static_cast<T*>(self);
}

template <typename T>
Context make_context(const prpc_host* host, const prpc_config* config) {
  return Context{Logger(host, T::kName), Options(config)};
}

// create/destroy of a plugin object built from its context (brokers, codecs, function tables).
template <typename T>
struct LifecycleThunks {
  static prpc_status create(const prpc_host* host, const prpc_config* config, void** out,
                            prpc_error* err) noexcept {
    return abi::barrier(err, [&] {
      *out = new T(make_context<T>(host, config));
      return Status::ok();
    });
  }
  static void destroy(void* self) noexcept {
    abi::barrier_void([&] { delete as<T>(self); });
  }
};

template <typename T>
struct BrokerThunks : LifecycleThunks<T> {
  using LifecycleThunks<T>::create;
  using LifecycleThunks<T>::destroy;
  static prpc_status connect(void* self, prpc_error* err) noexcept {
    return abi::barrier(err, [&] { return as<T>(self)->connect(); });
  }
  static prpc_status subscribe(void* self, const prpc_subscribe_options* raw, prpc_delivery_fn sink,
                               void* sink_ud, prpc_error* err) noexcept {
    return abi::barrier(err, [&] {
      SubscribeOptions options = abi::subscribe_options_from(raw);
      return as<T>(self)->subscribe(options, [sink, sink_ud](std::span<const DeliveryView> items) {
        std::vector<prpc_delivery> views;
        views.reserve(items.size());
        for (const auto& d : items) views.push_back(abi::delivery_view(d));
        std::vector<const prpc_delivery*> ptrs;
        ptrs.reserve(views.size());
        for (const auto& v : views) ptrs.push_back(&v);
        sink(sink_ud, ptrs.data(), ptrs.size());
      });
    });
  }
  static void unsubscribe(void* self) noexcept {
    abi::barrier_void([&] { as<T>(self)->unsubscribe(); });
  }
  static void finish(void* self, const prpc_delivery* delivery, const prpc_finish* raw,
                     prpc_done_fn done, void* ud) noexcept {
    try {
      ReplyView reply;
      FinishRequest req = abi::finish_from(raw, reply);
      as<T>(self)->finish(abi::delivery_from(delivery), req, abi::done_to_c(done, ud));
    } catch (const std::exception& e) {
      if (done != nullptr) done(ud, PRPC_ERR_INTERNAL, abi::str(e.what()));
    } catch (...) {
      if (done != nullptr) done(ud, PRPC_ERR_INTERNAL, abi::str("unknown exception"));
    }
  }
  static void touch(void* self, const prpc_delivery* delivery) noexcept {
    abi::barrier_void([&] { as<T>(self)->touch(abi::delivery_from(delivery)); });
  }
  static void lookup_result(void* self, std::int32_t flavour, prpc_str queue, prpc_str message_id,
                            prpc_lookup_fn done, void* ud) noexcept {
    try {
      as<T>(self)->lookup_result(
          static_cast<Flavour>(flavour), abi::view(queue), abi::view(message_id),
          [done, ud](Result<std::optional<std::string>> r) { abi::lookup_to_c(r, done, ud); });
    } catch (const std::exception& e) {
      done(ud, PRPC_ERR_INTERNAL, nullptr, abi::str(e.what()));
    } catch (...) {
      done(ud, PRPC_ERR_INTERNAL, nullptr, abi::str("unknown exception"));
    }
  }
  static void publish(void* self, const prpc_publish* raw, prpc_done_fn done, void* ud) noexcept {
    try {
      as<T>(self)->publish(abi::publish_from(raw), abi::done_to_c(done, ud));
    } catch (const std::exception& e) {
      if (done != nullptr) done(ud, PRPC_ERR_INTERNAL, abi::str(e.what()));
    } catch (...) {
      if (done != nullptr) done(ud, PRPC_ERR_INTERNAL, abi::str("unknown exception"));
    }
  }
  static prpc_status open_replies(void* self, prpc_str queue, prpc_reply_fn on_reply,
                                  void* on_reply_ud, prpc_bytes_sink_fn reply_to_sink,
                                  void* sink_ud, prpc_error* err) noexcept {
    return abi::barrier(err, [&]() -> Status {
      auto r = as<T>(self)->open_replies(
          abi::view(queue), [on_reply, on_reply_ud](std::string_view id, std::string_view payload) {
            on_reply(on_reply_ud, abi::str(id), abi::bytes(payload));
          });
      if (!r.is_ok()) return r.status();
      reply_to_sink(sink_ud, abi::bytes(*r));
      return Status::ok();
    });
  }
  static prpc_status queue_stats(void* self, prpc_str queue, prpc_queue_stats* out,
                                 prpc_error* err) noexcept {
    return abi::barrier(err, [&]() -> Status {
      auto r = as<T>(self)->queue_stats(abi::view(queue));
      if (!r.is_ok()) return r.status();
      prpc_queue_stats v = abi::queue_stats_view(*r);
      std::memcpy(out, &v, std::min<std::size_t>(sizeof(v), out->struct_size));
      return Status::ok();
    });
  }
  static prpc_status dead_letters(void* self, prpc_str queue, std::size_t max_count,
                                  prpc_dead_letter_fn sink, void* ud, prpc_error* err) noexcept {
    return abi::barrier(err, [&]() -> Status {
      auto r = as<T>(self)->dead_letters(abi::view(queue), max_count);
      if (!r.is_ok()) return r.status();
      for (const auto& d : *r) {
        prpc_dead_letter v = abi::dead_letter_view(d);
        sink(ud, &v);
      }
      return Status::ok();
    });
  }

  static prpc_status requeue_dead_letters(void* self, prpc_str queue, const prpc_str* ids,
                                          std::size_t id_count, std::uint64_t* out_count,
                                          prpc_error* err) noexcept {
    return abi::barrier(err, [&]() -> Status {
      std::vector<std::string> wanted;
      wanted.reserve(id_count);
      for (std::size_t i = 0; i < id_count; ++i) wanted.emplace_back(abi::view(ids[i]));
      auto r = as<T>(self)->requeue_dead_letters(abi::view(queue), wanted);
      if (!r.is_ok()) return r.status();
      if (out_count != nullptr) *out_count = static_cast<std::uint64_t>(*r);
      return Status::ok();
    });
  }

  // ABI 1.2.
  static prpc_status open_replies_signed(void* self, prpc_str queue, prpc_pushed_reply_fn on_reply,
                                         void* on_reply_ud, prpc_bytes_sink_fn reply_to_sink,
                                         void* sink_ud, prpc_error* err) noexcept {
    return abi::barrier(err, [&]() -> Status {
      auto r = as<T>(self)->open_replies_signed(
          abi::view(queue), [on_reply, on_reply_ud](const PushedReplyView& reply) {
            prpc_pushed_reply v = abi::pushed_reply_view(reply);
            on_reply(on_reply_ud, &v);
          });
      if (!r.is_ok()) return r.status();
      reply_to_sink(sink_ud, abi::bytes(*r));
      return Status::ok();
    });
  }
  static void lookup_result_signed(void* self, std::int32_t flavour, prpc_str queue,
                                   prpc_str message_id, prpc_stored_result_fn done,
                                   void* ud) noexcept {
    try {
      as<T>(self)->lookup_result_signed(static_cast<Flavour>(flavour), abi::view(queue),
                                        abi::view(message_id),
                                        [done, ud](Result<std::optional<StoredResult>> r) {
                                          abi::stored_result_to_c(r, done, ud);
                                        });
    } catch (const std::exception& e) {
      done(ud, PRPC_ERR_INTERNAL, nullptr, abi::str(e.what()));
    } catch (...) {
      done(ud, PRPC_ERR_INTERNAL, nullptr, abi::str("unknown exception"));
    }
  }
  static void announce_server(void* self, prpc_str queue, prpc_str server_id, prpc_bytes info_json,
                              std::int64_t ttl_ms, prpc_done_fn done, void* ud) noexcept {
    try {
      as<T>(self)->announce_server(abi::view(queue), abi::view(server_id), abi::view(info_json),
                                   std::chrono::milliseconds(ttl_ms), abi::done_to_c(done, ud));
    } catch (const std::exception& e) {
      if (done != nullptr) done(ud, PRPC_ERR_INTERNAL, abi::str(e.what()));
    } catch (...) {
      if (done != nullptr) done(ud, PRPC_ERR_INTERNAL, abi::str("unknown exception"));
    }
  }
  static prpc_status list_servers(void* self, prpc_str queue, prpc_bytes_sink_fn sink, void* ud,
                                  prpc_error* err) noexcept {
    return abi::barrier(err, [&]() -> Status {
      auto r = as<T>(self)->list_servers(abi::view(queue));
      if (!r.is_ok()) return r.status();
      sink(ud, abi::bytes(*r));
      return Status::ok();
    });
  }

  static const prpc_broker_vtable* vtable() noexcept {
    static const prpc_broker_vtable table = [] {
      auto t = abi::make_sized<prpc_broker_vtable>();
      t.create = &create;
      t.destroy = &destroy;
      t.connect = &connect;
      t.subscribe = &subscribe;
      t.unsubscribe = &unsubscribe;
      t.finish = &finish;
      t.touch = &touch;
      t.lookup_result = &lookup_result;
      t.publish = &publish;
      t.open_replies = &open_replies;
      t.queue_stats = &queue_stats;
      t.dead_letters = &dead_letters;
      t.requeue_dead_letters = &requeue_dead_letters;
      t.open_replies_signed = &open_replies_signed;
      t.lookup_result_signed = &lookup_result_signed;
      t.announce_server = &announce_server;
      t.list_servers = &list_servers;
      return t;
    }();
    return &table;
  }
};

template <typename T>
struct CodecThunks : LifecycleThunks<T> {
  using LifecycleThunks<T>::create;
  using LifecycleThunks<T>::destroy;
  static const char* dialect(void* self) noexcept {
    // Codecs return a view of a static string literal.
    return as<T>(self)->dialect().data();
  }
  static void decode(void* self, prpc_bytes input, prpc_message_sink_fn sink, void* ud) noexcept {
    try {
      Message salvaged;
      auto r = as<T>(self)->decode(abi::view(input), &salvaged);
      if (r.is_ok()) {
        prpc_message v = abi::message_view(*r);
        sink(ud, PRPC_OK, &v, prpc_str{nullptr, 0});
      } else {
        prpc_message v = abi::message_view(salvaged);
        sink(ud, static_cast<prpc_status>(r.status().code()), &v, abi::str(r.status().message()));
      }
    } catch (const std::exception& e) {
      sink(ud, PRPC_ERR_INTERNAL, nullptr, abi::str(e.what()));
    } catch (...) {
      sink(ud, PRPC_ERR_INTERNAL, nullptr, abi::str("unknown exception"));
    }
  }
  static prpc_status encode(void* self, const prpc_message* msg, prpc_bytes_sink_fn sink, void* ud,
                            prpc_error* err) noexcept {
    return abi::barrier(err, [&]() -> Status {
      auto r = as<T>(self)->encode(abi::message_from(msg));
      if (!r.is_ok()) return r.status();
      sink(ud, abi::bytes(*r));
      return Status::ok();
    });
  }
  static const prpc_codec_vtable* vtable() noexcept {
    static const prpc_codec_vtable table = [] {
      auto t = abi::make_sized<prpc_codec_vtable>();
      t.create = &create;
      t.destroy = &destroy;
      t.dialect = &dialect;
      t.decode = &decode;
      t.encode = &encode;
      return t;
    }();
    return &table;
  }
};

// An executor instance owns the adapter of the host's invoker it was created with.
template <typename T>
struct ExecutorInstance {
  InvokerRef invoker;
  T executor;
  ExecutorInstance(const prpc_invoker* raw, const Context& ctx)
      : invoker(raw), executor(ctx, invoker) {}
};

template <typename T>
struct ExecutorThunks {
  using Instance = ExecutorInstance<T>;
  static prpc_status create(const prpc_host* host, const prpc_config* config,
                            const prpc_invoker* invoker, void** out, prpc_error* err) noexcept {
    return abi::barrier(err, [&] {
      *out = new Instance(invoker, make_context<T>(host, config));
      return Status::ok();
    });
  }
  static void destroy(void* self) noexcept {
    abi::barrier_void([&] { delete as<Instance>(self); });
  }
  static void submit(void* self, const prpc_invocation* inv, prpc_outcome_fn done,
                     void* ud) noexcept {
    run_guarded("the executor", abi::outcome_to_c(done, ud), [&](OutcomeCallback once) {
      as<Instance>(self)->executor.submit(abi::invocation_from(inv), std::move(once));
    });
  }
  static void shutdown(void* self, std::int64_t grace_ms) noexcept {
    abi::barrier_void(
        [&] { as<Instance>(self)->executor.shutdown(std::chrono::milliseconds(grace_ms)); });
  }
  static std::uint32_t workers(void* self) noexcept {
    try {
      return as<Instance>(self)->executor.workers();
    } catch (...) {
      return 0;
    }
  }
  static const prpc_executor_vtable* vtable() noexcept {
    static const prpc_executor_vtable table = [] {
      auto t = abi::make_sized<prpc_executor_vtable>();
      t.create = &create;
      t.destroy = &destroy;
      t.submit = &submit;
      t.shutdown = &shutdown;
      t.workers = &workers;
      return t;
    }();
    return &table;
  }
};

template <typename T>
struct FunctionsThunks : LifecycleThunks<T> {
  using LifecycleThunks<T>::create;
  using LifecycleThunks<T>::destroy;
  static void list(void* self, prpc_function_info_fn sink, void* ud) noexcept {
    abi::barrier_void([&] {
      for (const FunctionInfo& f : as<T>(self)->list()) {
        prpc_function_info v = abi::function_info_view(f);
        sink(ud, &v);
      }
    });
  }
  static void invoke(void* self, const prpc_invocation* inv, prpc_outcome_fn done,
                     void* ud) noexcept {
    run_guarded("the function table", abi::outcome_to_c(done, ud), [&](OutcomeCallback once) {
      as<T>(self)->invoke(abi::invocation_from(inv), std::move(once));
    });
  }
  static void cancel(void* self, std::uint64_t call_id) noexcept {
    abi::barrier_void([&] { as<T>(self)->cancel(call_id); });
  }
  static const prpc_functions_vtable* vtable() noexcept {
    static const prpc_functions_vtable table = [] {
      auto t = abi::make_sized<prpc_functions_vtable>();
      t.create = &create;
      t.destroy = &destroy;
      t.list = &list;
      t.invoke = &invoke;
      t.cancel = &cancel;
      return t;
    }();
    return &table;
  }
};

template <typename T>
concept HasOptions = requires {
  T::options();
};

template <typename T>
concept HasFlags = requires {
  T::kFactoryFlags;
};

// Option tables and factories live for the whole life of the loaded library.
template <typename T>
const prpc_factory* factory() noexcept {
  static const std::vector<prpc_option_spec> specs = [] {
    std::vector<prpc_option_spec> out;
    if constexpr (HasOptions<T>) {
      for (const OptionSpec& o : T::options()) {
        auto s = abi::make_sized<prpc_option_spec>();
        s.key = o.key;
        s.type = o.type;
        s.default_value = o.default_value;
        s.help = o.help;
        s.flags = o.flags;
        out.push_back(s);
      }
    }
    return out;
  }();
  static const std::vector<const prpc_option_spec*> spec_ptrs = [] {
    std::vector<const prpc_option_spec*> out;
    for (const auto& s : specs) out.push_back(&s);
    return out;
  }();
  static const prpc_factory f = [] {
    auto out = abi::make_sized<prpc_factory>();
    out.name = T::kName;
    out.description = T::kDescription;
    out.options = spec_ptrs.data();
    out.option_count = spec_ptrs.size();
    if constexpr (HasFlags<T>) out.flags = T::kFactoryFlags;
    if constexpr (std::is_base_of_v<Broker, T>) {
      out.kind = PRPC_KIND_BROKER;
      out.vtable = BrokerThunks<T>::vtable();
    } else if constexpr (std::is_base_of_v<Codec, T>) {
      out.kind = PRPC_KIND_CODEC;
      out.vtable = CodecThunks<T>::vtable();
    } else if constexpr (std::is_base_of_v<Executor, T>) {
      out.kind = PRPC_KIND_EXECUTOR;
      out.vtable = ExecutorThunks<T>::vtable();
    } else if constexpr (std::is_base_of_v<FunctionTable, T>) {
      out.kind = PRPC_KIND_FUNCTIONS;
      out.vtable = FunctionsThunks<T>::vtable();
    } else {
      static_assert(sizeof(T) == 0,
                    "a plugin class derives from Broker, Codec, Executor or "
                    "FunctionTable");
    }
    return out;
  }();
  return &f;
}

template <typename... Ts>
const prpc_plugin* describe_plugin(const char* name, const char* version,
                                   const char* description) noexcept {
  static const std::array<const prpc_factory*, sizeof...(Ts)> factories{factory<Ts>()...};
  static const prpc_plugin plugin = [&] {
    auto p = abi::make_sized<prpc_plugin>();
    p.abi_major = PRPC_ABI_MAJOR;
    p.abi_minor = PRPC_ABI_MINOR;
    p.name = name;
    p.version = version;
    p.description = description;
    p.factories = factories.data();
    p.factory_count = factories.size();
    return p;
  }();
  return &plugin;
}

}  // namespace details
}  // namespace prpc::sdk

// Defines the plugin's one exported symbol. The host compares ABI versions and refuses a
// mismatch with a message, so the entry always describes itself.
#define PRPC_PLUGIN(name, version, description, ...)                                         \
  extern "C" PRPC_PLUGIN_EXPORT const prpc_plugin* prpc_plugin_entry(                        \
      std::uint16_t /*host_abi_major*/, std::uint16_t /*host_abi_minor*/) {                  \
    try {                                                                                    \
      return ::prpc::sdk::details::describe_plugin<__VA_ARGS__>(name, version, description); \
    } catch (...) {                                                                          \
      return nullptr;                                                                        \
    }                                                                                        \
  }
