// What prpc-host and the prpc CLI share: exit codes, reading the configuration from a file,
// the environment and --set flags, and one-line error reporting.
#pragma once

#include <cstdio>
#include <functional>
#include <optional>
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

// The flags prpc-host and prpc-worker share: --config/-c FILE, --set KEY=VALUE (repeated),
// --log-level LEVEL, --help/-h and --version.
struct CommonArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string log_level;
};

// What a program's own flag handler answers for one argument.
inline constexpr int kNotMyFlag = -2;  // unknown here: a usage error
inline constexpr int kFlagTaken = -1;  // understood, parsing goes on
// Any other value: stop and exit with it.
using FlagHandler = std::function<int(std::string_view flag,
                                      const std::function<bool(std::string& value)>& next_value)>;

// Reads the command line: the common flags into `args`, the rest through `own`. Returns the exit
// code when the program is done (after --help or --version, 0; a usage error, reported, 2), or
// nullopt when it should run.
std::optional<int> parse_command_line(int argc, char** argv, std::string_view program,
                                      std::string_view usage, std::string_view version_line,
                                      CommonArgs& args, const FlagHandler& own = {});

// load_config() for `args`, then the log level from --log-level, else the configuration's
// log.level (default info). Errors are configuration errors (exit code kExitConfig).
Result<Config> configure_from(const CommonArgs& args);

// Splits "key=value"; false when there is no '='.
bool split_assignment(std::string_view text, std::string& key, std::string& value);

}  // namespace prpc::host
