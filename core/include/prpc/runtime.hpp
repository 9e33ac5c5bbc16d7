// Builds what a configuration names: the plugin search path, the broker, the codecs, the function
// tables, the executors and the server options. Shared by prpc-host, the prpc CLI and the
// Python SDK, so a key means the same thing everywhere (docs/configuration.md).
#pragma once

#include <memory>
#include <string>

#include "prpc/broker.hpp"
#include "prpc/client.hpp"
#include "prpc/codec.hpp"
#include "prpc/config.hpp"
#include "prpc/function_router.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"

namespace prpc {

// plugins.path (extra directories, searched first) and plugins.load (library files to load).
Status configure_plugins(PluginRegistry& registry, const Config& config);

// broker.type (default "redis"), broker.url, and broker.options.* as plugin options.
Result<std::shared_ptr<Broker>> make_configured_broker(PluginRegistry& registry,
                                                       const Config& config);

struct Codecs {
  std::shared_ptr<Codec> python;  // null when codec.python = "none"
  std::shared_ptr<Codec> raw;     // null when codec.raw = "none"
};
// codec.python (default "jsonpickle"), codec.raw (default "rawjson"), options under
// codec.options.<name>.*.
Result<Codecs> make_configured_codecs(PluginRegistry& registry, const Config& config);

// functions.plugins (a list of functions plugin names), options under functions.<name>.*.
Result<std::shared_ptr<FunctionRouter>> make_configured_functions(PluginRegistry& registry,
                                                                  const Config& config);

// One executor per [executors.<worker>] table (its `plugin` key names the executor plugin, by
// default the worker's own name; other keys are the plugin's options). Without any table: a
// "thread" executor with its defaults.
Result<ExecutorMap> make_configured_executors(PluginRegistry& registry, const Config& config,
                                              std::shared_ptr<Invoker> invoker);

// security.signing_key, security.previous_keys (a list) and security.accept_unsigned, checked
// (key lengths) as a Signer would.
Result<SigningOptions> configured_signing(const Config& config);

// queue.name, queue.group, the [server] table and the signing keys.
Result<ServerOptions> configured_server_options(const Config& config);

// queue.name, the [client] table: stored_reply_poll (default 1s, but 0 on Kafka, where a
// lookup scans the feedback topic), and the signing keys.
Result<ClientOptions> configured_client_options(const Config& config, Flavour flavour);

// The option values under `prefix.` (e.g. "broker.options").
OptionValues options_under(const Config& config, std::string_view prefix);

}  // namespace prpc
