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

constexpr const char* kUsage =
    R"(usage: prpc-worker [--config FILE] [--set KEY=VALUE]... [--log-level LEVEL]
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

int run(const CommonArgs& args) {
  auto fd = worker_protocol::fd_from_environment();
  if (!fd.is_ok()) return fail(kProgram, kExitUsage, fd.status());
  // The executor reaps its workers; one orphaned by a crashed host must not live on.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);

  auto config = configure_from(args);
  if (!config.is_ok()) return fail(kProgram, kExitConfig, config.status());

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
  Status served = worker_protocol::serve(*fd, **functions);
  if (!served.is_ok()) return fail(kProgram, kExitFailure, served);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CommonArgs args;
  std::string version = "prpc-worker " PRPC_VERSION_STRING " (worker protocol " +
                        std::to_string(worker_protocol::kProtocolVersion) + ")";
  if (auto done = parse_command_line(argc, argv, kProgram, kUsage, version, args)) return *done;
  try {
    return run(args);
  } catch (const std::exception& e) {
    return fail(kProgram, kExitFailure, std::string("unexpected error: ") + e.what());
  }
}
