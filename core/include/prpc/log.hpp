// The host's log: one line per event on stderr, thread-safe, with a level threshold. Plugins
// write to it through prpc_host::log.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "prpc/plugin_abi.h"

namespace prpc::log {

enum class Level : std::int32_t {
  kTrace = PRPC_LOG_TRACE,
  kDebug = PRPC_LOG_DEBUG,
  kInfo = PRPC_LOG_INFO,
  kWarn = PRPC_LOG_WARN,
  kError = PRPC_LOG_ERROR,
  kOff = 5,
};

void set_level(Level level) noexcept;
Level level() noexcept;
std::optional<Level> parse_level(std::string_view name) noexcept;

// How the stderr writer writes a line: `2026-12-03T10:50:01.120031+00:00 warn [redis] text`, or
// one JSON object a line for log shippers: {"time": "...", "level": "warn", "component":
// "redis", "message": "text"}.
enum class Format : std::int32_t { kText, kJson };
void set_format(Format format) noexcept;
std::optional<Format> parse_format(std::string_view name) noexcept;

// Replaces the stderr writer (the Python SDK routes lines to the `logging` module).
using Sink = std::function<void(Level, std::string_view component, std::string_view message)>;
void set_sink(Sink sink);

void write(Level level, std::string_view component, std::string_view message) noexcept;

inline bool enabled(Level l) noexcept {
  return static_cast<std::int32_t>(l) >= static_cast<std::int32_t>(level());
}
inline void debug(std::string_view c, std::string_view m) noexcept { write(Level::kDebug, c, m); }
inline void info(std::string_view c, std::string_view m) noexcept { write(Level::kInfo, c, m); }
inline void warn(std::string_view c, std::string_view m) noexcept { write(Level::kWarn, c, m); }
inline void error(std::string_view c, std::string_view m) noexcept { write(Level::kError, c, m); }

// The prpc_host handed to plugin instances; its log() forwards here.
const prpc_host* host_services() noexcept;

}  // namespace prpc::log
