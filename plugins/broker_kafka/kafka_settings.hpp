// The broker's options, read from the host's resolved option map: PRPC's own keys, plus every
// other key passed through to librdkafka ("producer." / "consumer." target one side only).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/sdk/plugin.hpp"
#include "prpc/status.hpp"

namespace prpc::kafka {

struct Settings {
  std::string bootstrap = "localhost:9092";
  std::int32_t partitions = 4;           // of the topics this broker creates
  std::int32_t replication_factor = -1;  // -1: the cluster's default
  std::string linger_ms = "0.5";
  // A record produced while no other awaits its delivery report goes out at once, through a
  // second producer with linger.ms 0; the others wait linger_ms to share a request.
  bool eager_produce = true;
  std::string client_id = "prpc";
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds admin_timeout{10'000};
  std::chrono::milliseconds lookup_timeout{10'000};
  std::chrono::milliseconds lookup_window{6LL * 3600 * 1000};  // Client::fetch scans this far back
  std::chrono::milliseconds lookup_skew{60'000};  // clock skew allowed between producers
  bool lookup_by_timestamp = true;  // false: scans start at the beginning of the topic
  std::size_t result_cache_entries = 10'000;
  std::size_t ledger_bytes = 3'000;  // commit metadata budget (brokers allow 4096 by default)
  bool trace_offsets = false;        // logs each record's way through a server (diagnostics)
  // How long list_servers() still shows a server whose announcement expired ("alive": false).
  std::chrono::milliseconds server_history{5 * 60 * 1000};
  // Pass-through librdkafka properties: common to every handle, producer-only, consumer-only.
  std::map<std::string, std::string> common;
  std::map<std::string, std::string> producer;
  std::map<std::string, std::string> consumer;
};

// The option table the factory publishes (keys, types, defaults, help).
std::vector<sdk::OptionSpec> option_specs();

// Reads the resolved options. Unknown keys become librdkafka properties.
Result<Settings> read_settings(const sdk::Options& options);

// True for librdkafka properties whose values must never be logged (passwords, keys, tokens).
bool is_secret_property(std::string_view key);

// "sasl.password=***" style rendering of a property set, for logs.
std::string describe_properties(const std::map<std::string, std::string>& props);

}  // namespace prpc::kafka
