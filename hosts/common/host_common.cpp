#include "host_common.hpp"

#include <cstdlib>
#include <iostream>

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

}  // namespace prpc::host
