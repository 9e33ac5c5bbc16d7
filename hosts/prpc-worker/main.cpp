// prpc-worker: one worker process of the process executor for native functions. It builds the
// function tables a configuration names (the same flags and environment as prpc-host), then
// serves calls over the socket the executor passed as $PRPC_WORKER_FD until the executor closes
// it. Its stdout and stderr are the host's, untouched by the protocol.
#include <signal.h>
#include <sys/prctl.h>

#include <iostream>
#include <string>
#include <vector>

#include "host_common.hpp"
#include "prpc/log.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/runtime.hpp"
#include "prpc/version.h"
#include "prpc/worker.hpp"

namespace {

using namespace prpc;
using namespace prpc::host;

constexpr std::string_view kProgram = "prpc-worker";

constexpr const char* kUsage = R"(usage: prpc-worker [--config FILE] [--set KEY=VALUE]... [--log-level LEVEL]
       prpc-worker --version | --help

A worker process of the process executor: prpc-host starts it (executors.<name>.worker_command,
by default this program with prpc-host's own --config and --set flags). It loads the function
tables named by functions.plugins, says hello on the socket $PRPC_WORKER_FD, then runs one call at
a time until the socket closes.

  --config FILE      TOML configuration (default: $PRPC_CONFIG, else none)
  --set KEY=VALUE    override one key, e.g. --set functions.plugins=["example"]
  --log-level LEVEL  trace, debug, info, warn, error or off

Exit codes: 0 the executor closed the socket, 1 the socket broke, 2 usage (no $PRPC_WORKER_FD),
3 configuration, 4 plugin.
)";

struct Args {
  std::string config;
  std::vector<std::string> sets;
  std::string log_level;
};

int run(const Args& args) {
  auto fd = worker::fd_from_environment();
  if (!fd.is_ok()) return fail(kProgram, kExitUsage, fd.status());
  // The executor reaps its workers; one orphaned by a crashed host must not live on.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);

  auto config = load_config(args.config, args.sets);
  if (!config.is_ok()) return fail(kProgram, kExitConfig, config.status());
  std::string level = args.log_level.empty() ? config->get_or("log.level", "info") : args.log_level;
  auto parsed_level = log::parse_level(level);
  if (!parsed_level) return fail(kProgram, kExitConfig, "log.level: unknown level '" + level + "'");
  log::set_level(*parsed_level);

  PluginRegistry registry;
  if (Status s = configure_plugins(registry, *config); !s.is_ok()) {
    return fail(kProgram, kExitPlugin, s);
  }
  auto functions = make_configured_functions(registry, *config);
  if (!functions.is_ok()) {
    return fail(kProgram, setup_exit_code(functions.status()), functions.status());
  }
  if ((*functions)->list().empty()) {
    return fail(kProgram, kExitConfig,
                "nothing to serve: name at least one functions plugin in functions.plugins");
  }
  Status served = worker::serve(*fd, **functions);
  if (!served.is_ok()) return fail(kProgram, kExitFailure, served);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string& out) -> bool {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return kExitOk;
    } else if (a == "--version") {
      std::cout << "prpc-worker " PRPC_VERSION_STRING " (worker protocol "
                << worker::kProtocolVersion << ")\n";
      return kExitOk;
    } else if (a == "--config" || a == "-c") {
      if (!value(args.config)) return fail(kProgram, kExitUsage, "--config needs a file");
    } else if (a == "--set") {
      std::string s;
      if (!value(s)) return fail(kProgram, kExitUsage, "--set needs KEY=VALUE");
      args.sets.push_back(s);
    } else if (a == "--log-level") {
      if (!value(args.log_level)) return fail(kProgram, kExitUsage, "--log-level needs a level");
    } else {
      return fail(kProgram, kExitUsage,
                  "unknown argument '" + std::string(a) + "' (see prpc-worker --help)");
    }
  }
  try {
    return run(args);
  } catch (const std::exception& e) {
    return fail(kProgram, kExitFailure, std::string("unexpected error: ") + e.what());
  }
}
