// What prpc-host and the prpc CLI share: exit codes, reading the configuration from a file,
// the environment and --set flags, and one-line error reporting.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/config.hpp"
#include "prpc/status.hpp"

namespace prpc::host {

// Documented in docs/hosts.md; never changed once released.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,      // a call failed, or the server stopped on an error
  kExitUsage = 2,        // bad command line
  kExitConfig = 3,       // unreadable or invalid configuration
  kExitPlugin = 4,       // a plugin is missing, incompatible or refused its options
  kExitUnreachable = 5,  // the broker cannot be reached
  kExitTimeout = 6,      // (prpc call) no reply in time
};

// "prpc-host: error: <message>" on stderr, one line; returns `code`.
int fail(std::string_view program, int code, const Status& status);
int fail(std::string_view program, int code, std::string_view message);

// Exit code for a status from building a broker/codec/executor: unreachable brokers get their own.
int setup_exit_code(const Status& status);

// Reads --config FILE (or PRPC_CONFIG), then the PRPC_* environment, then each "--set key=value".
Result<Config> load_config(const std::string& file, const std::vector<std::string>& sets);

// Splits "key=value"; false when there is no '='.
bool split_assignment(std::string_view text, std::string& key, std::string& value);

}  // namespace prpc::host
