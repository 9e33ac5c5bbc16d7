// Configuration: a TOML file, then PRPC_* environment variables, then explicit overrides (flags),
// flattened to dotted keys ("broker.url", "server.max_in_flight") with text values.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/status.hpp"

namespace prpc {

// Typed readings of configuration text, shared with plugin option validation.
Result<std::int64_t> parse_int(std::string_view text);
Result<bool> parse_bool(std::string_view text);
Result<double> parse_double(std::string_view text);
// "250ms", "5s", "1.5s", "2m", "6h", "1d", or a plain number of milliseconds.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// Whether a configuration key holds a secret (a password, a private or signing key, a token):
// hosts print its value as "********" and never log it. Judged by the key's words, so it also
// covers options passed through to a library (sasl.password, ssl.key.pem).
bool is_secret_key(std::string_view key);

class Config {
 public:
  Config() = default;

  static Result<Config> load_file(const std::filesystem::path& path);
  static Result<Config> parse_toml(std::string_view text, std::string_view source = "config");

  // Applies PRPC_* variables from `envp` (the process environment by default). The seed's names
  // are aliases: PRPC_TYPE_BROKER -> broker.type, PRPC_URL_BROKER -> broker.url,
  // PRPC_QUEUE_NAME -> queue.name; PRPC_PLUGIN_PATH -> plugins.path,
  // PRPC_LOG_LEVEL -> log.level, PRPC_SIGNING_KEY -> security.signing_key,
  // PRPC_SIGNING_PREVIOUS_KEYS -> security.previous_keys. Any other PRPC_A__B_C sets a.b_c
  // ("__" separates levels).
  void apply_environment(const char* const* envp = nullptr);
  // The environment variable that sets `key`.
  static std::string env_name(std::string_view key);

  void set(std::string key, std::string value);
  bool has(std::string_view key) const;
  std::optional<std::string> get(std::string_view key) const;
  std::string get_or(std::string_view key, std::string_view fallback) const;
  Result<std::int64_t> get_int(std::string_view key, std::int64_t fallback) const;
  Result<bool> get_bool(std::string_view key, bool fallback) const;
  Result<std::chrono::milliseconds> get_duration(std::string_view key,
                                                 std::chrono::milliseconds fallback) const;
  // A TOML array of strings, or comma-separated text (from the environment).
  std::vector<std::string> get_list(std::string_view key) const;
  // Keys below `prefix.`, with the prefix removed.
  std::map<std::string, std::string> subtree(std::string_view prefix) const;
  const std::map<std::string, std::string, std::less<>>& all() const { return values_; }

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

}  // namespace prpc
