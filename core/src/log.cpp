#include "prpc/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

#include "prpc/abi_views.hpp"
#include "prpc/iso_time.hpp"
#include "prpc/json.hpp"

namespace prpc::log {
namespace {

std::atomic<std::int32_t> g_level{static_cast<std::int32_t>(Level::kInfo)};
std::atomic<std::int32_t> g_format{static_cast<std::int32_t>(Format::kText)};
std::mutex g_mutex;
Sink& sink_ref() {
  static Sink sink;
  return sink;
}

std::string_view level_name(Level l) {
  switch (l) {
    case Level::kTrace: return "trace";
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
    case Level::kOff: return "off";
  }
  return "?";
}

void host_log(void*, std::int32_t level, prpc_str component, prpc_str message) noexcept {
  Level l = level < PRPC_LOG_TRACE   ? Level::kTrace
            : level > PRPC_LOG_ERROR ? Level::kError
                                     : static_cast<Level>(level);
  write(l, abi::view(component), abi::view(message));
}

}  // namespace

void set_level(Level level) noexcept { g_level.store(static_cast<std::int32_t>(level)); }
Level level() noexcept { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

std::optional<Level> parse_level(std::string_view name) noexcept {
  for (Level l :
       {Level::kTrace, Level::kDebug, Level::kInfo, Level::kWarn, Level::kError, Level::kOff}) {
    if (name == level_name(l)) return l;
  }
  if (name == "warning") return Level::kWarn;
  return std::nullopt;
}

void set_format(Format format) noexcept { g_format.store(static_cast<std::int32_t>(format)); }

std::optional<Format> parse_format(std::string_view name) noexcept {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  return std::nullopt;
}

void set_sink(Sink sink) {
  std::lock_guard lock(g_mutex);
  sink_ref() = std::move(sink);
}

void write(Level level, std::string_view component, std::string_view message) noexcept {
  if (!enabled(level) || level == Level::kOff) return;
  try {
    std::lock_guard lock(g_mutex);
    if (sink_ref()) {
      sink_ref()(level, component, message);
      return;
    }
    std::string line;
    if (g_format.load(std::memory_order_relaxed) == static_cast<std::int32_t>(Format::kJson)) {
      line = "{\"time\": ";
      json::append_quoted(line, now_iso8601());
      line += ", \"level\": ";
      json::append_quoted(line, level_name(level));
      line += ", \"component\": ";
      json::append_quoted(line, component);
      line += ", \"message\": ";
      json::append_quoted(line, message);
      line += "}\n";
    } else {
      line = now_iso8601();
      line += ' ';
      line += level_name(level);
      line += " [";
      line += component;
      line += "] ";
      line += message;
      line += '\n';
    }
    std::fwrite(line.data(), 1, line.size(), stderr);
  } catch (...) {  // NOLINT(bugprone-empty-catch): logging must never throw
  }
}

const prpc_host* host_services() noexcept {
  static const prpc_host host = [] {
    auto h = abi::make_sized<prpc_host>();
    h.abi_major = PRPC_ABI_MAJOR;
    h.abi_minor = PRPC_ABI_MINOR;
    h.log = &host_log;
    return h;
  }();
  return &host;
}

}  // namespace prpc::log
