// prpc-host: serves the functions a configuration names, through the broker, codecs and
// executors it names, until SIGINT or SIGTERM (then it drains calls in flight).
#include <dlfcn.h>
#include <unistd.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "host_common.hpp"
#include "prpc/json.hpp"
#include "prpc/log.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/runtime.hpp"
#include "prpc/server.hpp"
#include "prpc/version.h"

namespace {

using namespace prpc;
using namespace prpc::host;

constexpr std::string_view kProgram = "prpc-host";

constexpr const char* kUsage =
    R"(usage: prpc-host [--config FILE] [--app MODULE:ATTR] [--set KEY=VALUE]... [--log-level LEVEL]
       prpc-host --check [--config FILE] [--set KEY=VALUE]...
       prpc-host --list-plugins [--config FILE]
       prpc-host --version | --help

Serves the functions named by the configuration on queue.name through broker.type at
broker.url, until SIGINT or SIGTERM; calls in flight then get server.drain_grace to finish.
The functions are native (functions.plugins) or a Python application (app = "module:attr", an
AppServer, served by an embedded interpreter, or by python.executable, $PRPC_PYTHON or python3
when this installation has none). Every key can also be set with a PRPC_*
environment variable or --set.

  --config FILE      TOML configuration (default: $PRPC_CONFIG, else none)
  --app MODULE:ATTR  serve the prpc.AppServer `ATTR` of module `MODULE` (same as --set app=...)
  --set KEY=VALUE    override one key, e.g. --set queue.name=orders
  --log-level LEVEL  trace, debug, info, warn, error or off
  --check            validate the configuration and print each selected plugin's options
  --list-plugins     list the plugins on the plugin path with their ABI versions

Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 plugin, 5 broker unreachable.
)";

struct Args : CommonArgs {
  bool check = false;
  bool list = false;
};

const char* option_type_name(std::int32_t t) {
  switch (t) {
    case PRPC_OPT_INT: return "int";
    case PRPC_OPT_BOOL: return "bool";
    case PRPC_OPT_DOUBLE: return "number";
    case PRPC_OPT_DURATION_MS: return "duration";
    default: return "string";
  }
}

void print_factory(const PluginRegistry& registry, PluginKind kind, const std::string& name,
                   const OptionValues& given, std::string_view role = {}) {
  const FactoryInfo* f = registry.find(kind, name);
  if (f == nullptr) return;
  std::string file;
  for (const PluginInfo& p : registry.loaded()) {
    for (const FactoryInfo& pf : p.factories) {
      if (pf.kind == kind && pf.name == name) file = p.path.string() + " (" + p.version + ")";
    }
  }
  std::cout << plugin_kind_name(kind) << " '" << name << "'"
            << (role.empty() ? std::string() : " (" + std::string(role) + ")") << ": "
            << f->description << "\n  from " << file << "\n";
  for (const OptionInfo& o : f->options) {
    auto it = given.find(o.key);
    std::string value = it != given.end() ? it->second : o.default_value.value_or("(unset)");
    if (o.secret && it != given.end()) value = "********";
    std::cout << "  " << o.key << " = " << value << "  [" << option_type_name(o.type)
              << (o.default_value ? ", default " + *o.default_value : std::string())
              << (o.required ? ", required" : "") << "]  " << o.help << "\n";
  }
  for (const auto& [k, v] : given) {
    bool known = false;
    for (const OptionInfo& o : f->options) known = known || o.key == k;
    if (!known) {
      std::cout << "  " << k << " = " << (is_secret_key(k) ? std::string("********") : v)
                << "  [passed through]\n";
    }
  }
}

int list_plugins(PluginRegistry& registry) {
  std::cout << "plugin path:\n";
  for (const auto& dir : registry.search_path()) std::cout << "  " << dir.string() << "\n";
  for (const auto& entry : registry.scan()) {
    if (!entry.info) {
      std::cout << entry.path.string() << "\n  refused: " << entry.error.message() << "\n";
      continue;
    }
    const PluginInfo& p = *entry.info;
    std::cout << p.name << " " << p.version << "  (ABI " << p.abi_major << "." << p.abi_minor
              << ")  " << entry.path.string() << "\n";
    for (const FactoryInfo& f : p.factories) {
      std::cout << "  " << plugin_kind_name(f.kind) << " '" << f.name << "': " << f.description
                << "\n";
    }
  }
  return kExitOk;
}

// A process executor without a worker_command runs the prpc-worker next to this program with the
// same configuration (but the broker's settings and secrets), so its workers serve the functions
// this host was told to serve.
void default_worker_commands(Config& config, const Args& args) {
  std::set<std::string> workers;
  for (const auto& [key, value] : config.subtree("executors")) {
    workers.insert(key.substr(0, key.find('.')));
  }
  for (const std::string& worker : workers) {
    std::string prefix = "executors." + worker + ".";
    if (config.get_or(prefix + "plugin", worker) != "process") continue;
    if (config.has(prefix + "worker_command")) continue;
    std::error_code ec;
    std::filesystem::path self = boost::dll::program_location(ec);
    std::vector<std::string> command{ec ? std::string("prpc-worker")
                                        : (self.parent_path() / "prpc-worker").string()};
    if (!args.config.empty()) {
      command.emplace_back("--config");
      command.push_back(std::filesystem::absolute(args.config, ec).string());
    }
    for (const std::string& s : args.sets) {
      // Workers only load function tables: broker settings and secrets (which would show in
      // `ps` and in --check's listing of this command) are left out.
      std::string key = s.substr(0, s.find('='));
      if (key.rfind("broker.", 0) == 0 || is_secret_key(key)) continue;
      command.emplace_back("--set");
      command.push_back(s);
    }
    if (!args.log_level.empty()) {
      command.emplace_back("--log-level");
      command.push_back(args.log_level);
    }
    std::string text = "[";
    for (const std::string& part : command) {
      if (text.size() > 1) text += ", ";
      json::append_quoted(text, part);
    }
    config.set(prefix + "worker_command", text + "]");
  }
}

// Python mode without the embedding module (a wheel has none: the manylinux policy forbids
// linking libpython): this process becomes `python -m prpc._hosting APP`, which serves the
// application the same way, with the resolved configuration in PRPC_HOSTING_CONFIG (a JSON
// object; the environment, not the command line, since it may hold the broker's password).
int exec_python_app(const Config& config, bool check) {
  std::string python = config.get_or("python.executable", "");
  if (const char* env = std::getenv("PRPC_PYTHON"); python.empty() && env != nullptr) python = env;
  if (python.empty()) python = "python3";
  std::string text = "{";
  for (const auto& [k, v] : config.all()) {
    if (k == "app" || k.rfind("python.", 0) == 0) continue;
    if (text.size() > 1) text += ", ";
    json::append_quoted(text, k);
    text += ": ";
    json::append_quoted(text, v);
  }
  text += "}";
  ::setenv("PRPC_HOSTING_CONFIG", text.c_str(), 1);
  std::string app = config.get_or("app", "");
  std::vector<std::string> argv_text{python, "-m", "prpc._hosting", app};
  if (check) argv_text.emplace_back("--check");
  std::vector<char*> argv;
  for (std::string& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  ::execvp(argv[0], argv.data());
  return fail(kProgram, kExitPlugin,
              "Python applications run in " + python + ", which cannot be started: " +
                  std::strerror(errno) + " (set python.executable or PRPC_PYTHON)");
}

// Python mode: hands the application and the configuration to the embedded interpreter, or to a
// Python process of its own when this installation has no embedding module.
int run_python_app(const Config& config, bool check) {
  std::error_code ec;
  std::filesystem::path module = boost::dll::program_location(ec).parent_path().parent_path() /
                                 "lib" / "prpc" / "prpc_host_python.so";
  if (const char* env = std::getenv("PRPC_HOST_PYTHON_MODULE"); env != nullptr) module = env;
  if (!std::filesystem::exists(module, ec)) return exec_python_app(config, check);
  // RTLD_GLOBAL: extension modules the interpreter imports later resolve libpython through it.
  void* handle = dlopen(module.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) {
    return fail(kProgram, kExitPlugin,
                std::string("Python applications need ") + module.string() +
                    " (build with PRPC_BUILD_PYTHON=ON): " + dlerror());
  }
  using Serve =
      int (*)(const char*, const char*, const char* const*, const char* const*, std::size_t, int);
  auto serve = reinterpret_cast<Serve>(dlsym(handle, "prpc_host_serve_python"));
  if (serve == nullptr) return fail(kProgram, kExitPlugin, module.string() + " is not prpc-host's");
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [k, v] : config.all()) {
    if (k == "app" || k.rfind("python.", 0) == 0) continue;
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  std::string app = config.get_or("app", "");
  std::string executable = config.get_or("python.executable", "");
  return serve(app.c_str(), executable.c_str(), keys.data(), values.data(), keys.size(),
               check ? 1 : 0);
}

int run(const Args& args) {
  auto config = configure_from(args);
  if (!config.is_ok()) return fail(kProgram, kExitConfig, config.status());

  PluginRegistry registry;
  if (Status s = configure_plugins(registry, *config); !s.is_ok()) {
    return fail(kProgram, kExitPlugin, s);
  }
  if (args.list) return list_plugins(registry);
  if (config->has("app")) {
    if (!config->get_list("functions.plugins").empty()) {
      return fail(kProgram, kExitConfig,
                  "serve either a Python app or functions plugins, not both (app and "
                  "functions.plugins are both set)");
    }
    return run_python_app(*config, args.check);
  }
  default_worker_commands(*config, args);  // native functions only: a Python app has its own

  auto server_options = configured_server_options(*config);
  if (!server_options.is_ok()) return fail(kProgram, kExitConfig, server_options.status());
  auto functions = make_configured_functions(registry, *config);
  if (!functions.is_ok())
    return fail(kProgram, setup_exit_code(functions.status()), functions.status());
  if ((*functions)->list().empty()) {
    return fail(kProgram, kExitConfig,
                "nothing to serve: name at least one functions plugin in functions.plugins");
  }
  auto broker = make_configured_broker(registry, *config);
  if (!broker.is_ok()) return fail(kProgram, setup_exit_code(broker.status()), broker.status());
  auto codecs = make_configured_codecs(registry, *config);
  if (!codecs.is_ok()) return fail(kProgram, setup_exit_code(codecs.status()), codecs.status());
  auto executors = make_configured_executors(registry, *config, *functions);
  if (!executors.is_ok()) {
    return fail(kProgram, setup_exit_code(executors.status()), executors.status());
  }

  if (args.check) {
    OptionValues broker_options = options_under(*config, "broker.options");
    if (auto url = config->get("broker.url")) broker_options["url"] = *url;
    print_factory(registry, PluginKind::kBroker, config->get_or("broker.type", "redis"),
                  broker_options);
    for (const char* flavour : {"python", "raw"}) {
      std::string name =
          config->get_or(std::string("codec.") + flavour,
                         flavour == std::string("python") ? "jsonpickle" : "rawjson");
      if (name != "none") {
        print_factory(registry, PluginKind::kCodec, name,
                      options_under(*config, "codec.options." + name),
                      std::string(flavour) + " flavour");
      }
    }
    for (const auto& [worker, executor] : *executors) {
      OptionValues o = options_under(*config, "executors." + worker);
      std::string plugin = o.count("plugin") != 0 ? o["plugin"] : worker;
      o.erase("plugin");
      print_factory(registry, PluginKind::kExecutor, plugin, o, "worker type '" + worker + "'");
    }
    for (const std::string& name : config->get_list("functions.plugins")) {
      print_factory(registry, PluginKind::kFunctions, name,
                    options_under(*config, "functions." + name));
    }
    const SigningOptions& signing = server_options->signing;
    if (signing.key.empty()) {
      std::cout << "signing: off (requests are not signed or checked)\n";
    } else {
      // The key's id only: the key itself is never printed.
      std::cout << "signing: on, key id " << signing_key_id(signing.key) << ", "
                << signing.previous.size() << " previous key(s) accepted, unsigned requests "
                << (signing.accept_unsigned ? "accepted" : "dead-lettered") << "\n";
    }
    std::cout << "functions:";
    for (const FunctionInfo& f : (*functions)->list()) std::cout << " " << f.name;
    std::cout << "\nthe configuration is valid\n";
    return kExitOk;
  }

  Server server(*server_options, *broker, codecs->python, codecs->raw, *functions, *executors);
  Status ran = server.run();
  for (auto& [name, executor] : *executors) executor->shutdown(std::chrono::seconds(1));
  if (!ran.is_ok()) {
    return fail(kProgram, ran.code() == StatusCode::kUnavailable ? kExitUnreachable : kExitFailure,
                ran);
  }
  ServerStats st = server.stats();
  log::info("host", "stopped after " + std::to_string(st.received) + " requests (" +
                        std::to_string(st.succeeded) + " ok, " + std::to_string(st.failed) +
                        " failed, " + std::to_string(st.dead_lettered) + " dead-lettered)");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::string version = "prpc-host " PRPC_VERSION_STRING " (plugin ABI " +
                        std::to_string(PRPC_ABI_MAJOR) + "." + std::to_string(PRPC_ABI_MINOR) + ")";
  auto own = [&args](std::string_view a, const std::function<bool(std::string&)>& next_value) {
    if (a == "--app") {
      std::string spec;
      if (!next_value(spec)) return fail(kProgram, kExitUsage, "--app needs MODULE:ATTR");
      args.sets.push_back("app=" + spec);
    } else if (a == "--check") {
      args.check = true;
    } else if (a == "--list-plugins") {
      args.list = true;
    } else {
      return kNotMyFlag;
    }
    return kFlagTaken;
  };
  if (auto done = parse_command_line(argc, argv, kProgram, kUsage, version, args, own)) {
    return *done;
  }
  try {
    return run(args);
  } catch (const std::exception& e) {
    return fail(kProgram, kExitFailure, std::string("unexpected error: ") + e.what());
  }
}
