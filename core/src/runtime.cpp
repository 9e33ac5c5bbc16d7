#include "prpc/runtime.hpp"

#include <set>

namespace prpc {
namespace {

bool disabled(const std::string& name) { return name.empty() || name == "none"; }

}  // namespace

OptionValues options_under(const Config& config, std::string_view prefix) {
  OptionValues out;
  for (auto& [k, v] : config.subtree(prefix)) out[k] = v;
  return out;
}

Status configure_plugins(PluginRegistry& registry, const Config& config) {
  std::vector<std::string> dirs = config.get_list("plugins.path");
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) registry.add_search_dir(*it, true);
  for (const std::string& file : config.get_list("plugins.load")) {
    PRPC_RETURN_IF_ERROR(registry.load(file));
  }
  return Status::ok();
}

Result<std::shared_ptr<Broker>> make_configured_broker(PluginRegistry& registry,
                                                       const Config& config) {
  std::string type = config.get_or("broker.type", "redis");
  OptionValues options = options_under(config, "broker.options");
  if (auto url = config.get("broker.url")) options["url"] = *url;
  return registry.make_broker(type, options);
}

Result<Codecs> make_configured_codecs(PluginRegistry& registry, const Config& config) {
  Codecs out;
  std::string python = config.get_or("codec.python", "jsonpickle");
  std::string raw = config.get_or("codec.raw", "rawjson");
  if (!disabled(python)) {
    PRPC_ASSIGN_OR_RETURN(
        out.python, registry.make_codec(python, options_under(config, "codec.options." + python)));
  }
  if (!disabled(raw)) {
    PRPC_ASSIGN_OR_RETURN(out.raw,
                          registry.make_codec(raw, options_under(config, "codec.options." + raw)));
  }
  if (!out.python && !out.raw) {
    return Status(StatusCode::kInvalidArgument,
                  "codec.python and codec.raw are both \"none\": nothing to serve");
  }
  return out;
}

Result<std::shared_ptr<FunctionRouter>> make_configured_functions(PluginRegistry& registry,
                                                                  const Config& config) {
  auto router = std::make_shared<FunctionRouter>();
  for (const std::string& name : config.get_list("functions.plugins")) {
    PRPC_ASSIGN_OR_RETURN(
        auto table, registry.make_functions(name, options_under(config, "functions." + name)));
    Status added = router->add(std::move(table));
    if (!added.is_ok()) return added.with_context("functions plugin '" + name + "'");
  }
  return router;
}

Result<ExecutorMap> make_configured_executors(PluginRegistry& registry, const Config& config,
                                              std::shared_ptr<Invoker> invoker) {
  std::set<std::string> workers;
  for (const auto& [key, value] : config.subtree("executors")) {
    workers.insert(key.substr(0, key.find('.')));
  }
  if (workers.empty()) workers.insert("thread");
  ExecutorMap out;
  for (const std::string& worker : workers) {
    OptionValues options = options_under(config, "executors." + worker);
    std::string plugin = worker;
    if (auto it = options.find("plugin"); it != options.end()) {
      plugin = it->second;
      options.erase(it);
    }
    PRPC_ASSIGN_OR_RETURN(auto executor, registry.make_executor(plugin, options, invoker));
    out.emplace(worker, std::move(executor));
  }
  return out;
}

Result<SigningOptions> configured_signing(const Config& config) {
  SigningOptions o;
  o.key = config.get_or("security.signing_key", "");
  o.previous = config.get_list("security.previous_keys");
  auto lenient = config.get_bool("security.accept_unsigned", false);
  if (!lenient.is_ok()) return lenient.status();
  o.accept_unsigned = *lenient;
  auto checked = Signer::make(o);
  if (!checked.is_ok()) return checked.status();
  return o;
}

Result<ClientOptions> configured_client_options(const Config& config, Flavour flavour) {
  ClientOptions o;
  o.queue = config.get_or("queue.name", "task_prpc");
  o.flavour = flavour;
  auto fallback = config.get_or("broker.type", "redis") == "kafka" ? std::chrono::milliseconds(0)
                                                                   : std::chrono::seconds(1);
  auto poll = config.get_duration("client.stored_reply_poll", fallback);
  if (!poll.is_ok()) return poll.status();
  o.stored_reply_poll = *poll;
  PRPC_ASSIGN_OR_RETURN(o.signing, configured_signing(config));
  return o;
}

Result<ServerOptions> configured_server_options(const Config& config) {
  ServerOptions o;
  o.queue = config.get_or("queue.name", o.queue);
  o.group = config.get_or("queue.group", o.group);
  o.consumer = config.get_or("server.consumer", o.consumer);
  o.default_worker = config.get_or("server.default_worker", o.default_worker);
  o.metrics_listen = config.get_or("metrics.listen", o.metrics_listen);
  auto count = [&](std::string_view key, auto& field) -> Status {
    auto v = config.get_int(key, static_cast<std::int64_t>(field));
    if (!v.is_ok()) return v.status();
    if (*v < 1) return Status(StatusCode::kInvalidArgument, std::string(key) + ": must be >= 1");
    field = static_cast<std::remove_reference_t<decltype(field)>>(*v);
    return Status::ok();
  };
  auto duration = [&](std::string_view key, std::chrono::milliseconds& field) -> Status {
    auto v = config.get_duration(key, field);
    if (!v.is_ok()) return v.status();
    field = *v;
    return Status::ok();
  };
  PRPC_RETURN_IF_ERROR(count("server.max_in_flight", o.max_in_flight));
  PRPC_RETURN_IF_ERROR(count("server.batch_size", o.batch_size));
  PRPC_RETURN_IF_ERROR(count("server.max_deliveries", o.max_deliveries));
  PRPC_RETURN_IF_ERROR(count("server.max_message_bytes", o.max_message_bytes));
  PRPC_RETURN_IF_ERROR(count("server.max_json_depth", o.max_json_depth));
  auto inline_max = config.get_int("server.inline_max_us", o.inline_max.count());
  if (!inline_max.is_ok()) return inline_max.status();
  if (*inline_max < 0) {
    return Status(StatusCode::kInvalidArgument, "server.inline_max_us: must be >= 0");
  }
  o.inline_max = std::chrono::microseconds(*inline_max);
  PRPC_RETURN_IF_ERROR(duration("server.visibility_timeout", o.visibility_timeout));
  PRPC_RETURN_IF_ERROR(duration("server.call_timeout", o.call_timeout));
  PRPC_RETURN_IF_ERROR(duration("server.drain_grace", o.drain_grace));
  PRPC_RETURN_IF_ERROR(duration("server.announce_interval", o.announce_interval));
  if (o.queue.empty()) return Status(StatusCode::kInvalidArgument, "queue.name: must not be empty");
  PRPC_ASSIGN_OR_RETURN(o.signing, configured_signing(config));
  return o;
}

}  // namespace prpc
