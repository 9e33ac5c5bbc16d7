#include "host_common.hpp"

#include <cstdlib>
#include <iostream>

#include "prpc/log.hpp"

namespace prpc::host {

int fail(std::string_view program, int code, std::string_view message) {
  std::string line(program);
  line += ": error: ";
  for (char c : message) line += (c == '\n' ? ' ' : c);
  line += '\n';
  std::fputs(line.c_str(), stderr);
  return code;
}

int fail(std::string_view program, int code, const Status& status) {
  return fail(program, code, status.message());
}

int setup_exit_code(const Status& status) {
  switch (status.code()) {
    case StatusCode::kUnavailable:
    case StatusCode::kTimeout: return kExitUnreachable;
    case StatusCode::kInvalidArgument: return kExitConfig;
    default: return kExitPlugin;
  }
}

bool split_assignment(std::string_view text, std::string& key, std::string& value) {
  std::size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) return false;
  key.assign(text.substr(0, eq));
  value.assign(text.substr(eq + 1));
  return true;
}

Result<Config> load_config(const std::string& file, const std::vector<std::string>& sets) {
  Config config;
  std::string path = file;
  if (path.empty()) {
    if (const char* env = std::getenv("PRPC_CONFIG"); env != nullptr) path = env;
  }
  if (!path.empty()) {
    PRPC_ASSIGN_OR_RETURN(config, Config::load_file(path));
  }
  config.apply_environment();
  for (const std::string& s : sets) {
    std::string key, value;
    if (!split_assignment(s, key, value)) {
      return Status(StatusCode::kInvalidArgument, "--set expects key=value, got '" + s + "'");
    }
    config.set(key, value);
  }
  return config;
}

std::optional<int> parse_command_line(int argc, char** argv, std::string_view program,
                                      std::string_view usage, std::string_view version_line,
                                      CommonArgs& args, const FlagHandler& own) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next_value = [&](std::string& out) -> bool {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string value;
    if (a == "--help" || a == "-h") {
      std::cout << usage;
      return kExitOk;
    } else if (a == "--version") {
      std::cout << version_line << "\n";
      return kExitOk;
    } else if (a == "--config" || a == "-c") {
      if (!next_value(args.config)) return fail(program, kExitUsage, "--config needs a file");
    } else if (a == "--set") {
      if (!next_value(value)) return fail(program, kExitUsage, "--set needs KEY=VALUE");
      args.sets.push_back(value);
    } else if (a == "--log-level") {
      if (!next_value(args.log_level))
        return fail(program, kExitUsage, "--log-level needs a level");
    } else {
      int answer = own ? own(a, next_value) : kNotMyFlag;
      if (answer == kFlagTaken) continue;
      if (answer != kNotMyFlag) return answer;
      return fail(
          program, kExitUsage,
          "unknown argument '" + std::string(a) + "' (see " + std::string(program) + " --help)");
    }
  }
  return std::nullopt;
}

Result<Config> configure_from(const CommonArgs& args) {
  auto config = load_config(args.config, args.sets);
  if (!config.is_ok()) return config.status();
  std::string level = args.log_level.empty() ? config->get_or("log.level", "info") : args.log_level;
  auto parsed = log::parse_level(level);
  if (!parsed) {
    return Status(StatusCode::kInvalidArgument, "log.level: unknown level '" + level + "'");
  }
  log::set_level(*parsed);
  std::string format = config->get_or("log.format", "text");
  auto parsed_format = log::parse_format(format);
  if (!parsed_format) {
    return Status(StatusCode::kInvalidArgument,
                  "log.format: unknown format '" + format + "' (text or json)");
  }
  log::set_format(*parsed_format);
  return config;
}

}  // namespace prpc::host
