// What a server says about itself: the info it announces through the broker about once a second
// (Broker::announce_server) and what the reserved functions prpc.info and prpc.stats answer
// (docs/observability.md has the fields).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics.hpp"
#include "prpc/functions.hpp"

namespace prpc::details {

// Reserved: answered by the engine itself, never registered by an application.
inline constexpr std::string_view kInfoFunction = "prpc.info";
inline constexpr std::string_view kStatsFunction = "prpc.stats";
// Names with this prefix are kept for the engine's own functions.
inline constexpr std::string_view kReservedPrefix = "prpc.";

struct ServiceSnapshot {
  std::string id;  // the consumer name the server subscribes with
  std::string queue;
  std::string host;
  std::int64_t pid = 0;
  std::string started_at;  // ISO 8601, UTC
  double uptime_s = 0;
  std::vector<std::pair<std::string, std::uint32_t>> workers;  // worker type -> workers
  std::uint64_t in_flight = 0;
  std::uint64_t received = 0;
  std::uint64_t redeliveries = 0;
  std::uint64_t deduplicated = 0;
  std::uint64_t inlined = 0;
};

// The info object: the snapshot, the call totals by outcome, the execution-time histogram of
// every call and each served function with its signature and numbers. `functions` are the
// served ones; reserved names among them are left out.
std::string service_info_json(const ServiceSnapshot& snapshot,
                              const std::vector<FunctionInfo>& functions,
                              const std::string& default_worker, const ServerMetrics& metrics);

// What prpc.stats answers: {"queue": ..., "servers": <servers>}, `servers` being a
// list_servers() array.
std::string service_stats_json(std::string_view queue, std::string_view servers);

}  // namespace prpc::details
