// ISO 8601 timestamps with an offset, as the message's date fields carry them.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace prpc {

using SysMicros = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

// "2024-11-06T09:00:05.123456+00:00" (UTC, microseconds, as Python's isoformat() writes it).
std::string format_iso8601(SysMicros t);
std::string now_iso8601();

// Parses "YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+HH:MM|-HH:MM]" (a space may replace the T). A value
// without an offset is taken as UTC.
std::optional<SysMicros> parse_iso8601(std::string_view text);

}  // namespace prpc
