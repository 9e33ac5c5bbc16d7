#include "kafka_settings.hpp"

#include <algorithm>
#include <array>

namespace prpc::kafka {
namespace {

// Keys this plugin interprets itself; everything else goes to librdkafka.
constexpr std::array<std::string_view, 16> kOwnKeys = {
    "lookup_by_timestamp", "trace_offsets", "url",         "partitions",           "eager_produce",
    "replication_factor",  "linger_ms",     "client_id",   "connect_timeout",      "admin_timeout",
    "lookup_timeout",      "lookup_window", "lookup_skew", "result_cache_entries", "ledger_bytes",
    "server_history"};

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

std::vector<sdk::OptionSpec> option_specs() {
  return {
      {"url", PRPC_OPT_STRING, "localhost:9092",
       "bootstrap servers, host:port[,host:port...] (PRPC_URL_BROKER); a kafka:// prefix is "
       "accepted",
       0},
      {"partitions", PRPC_OPT_INT, "4", "partitions of the topics this broker creates", 0},
      {"replication_factor", PRPC_OPT_INT, "-1",
       "replication factor of created topics; -1 takes the cluster's default", 0},
      {"linger_ms", PRPC_OPT_DOUBLE, "0.5",
       "librdkafka linger.ms for requests and replies: small for latency, larger for batching", 0},
      {"eager_produce", PRPC_OPT_BOOL, "true",
       "a record produced while no other awaits its delivery goes out at once (a second "
       "producer, linger.ms 0); false: every record waits linger_ms",
       0},
      {"client_id", PRPC_OPT_STRING, "prpc", "client.id of every Kafka handle", 0},
      {"connect_timeout", PRPC_OPT_DURATION_MS, "10000",
       "how long connect() waits for the cluster's metadata", 0},
      {"admin_timeout", PRPC_OPT_DURATION_MS, "10000",
       "limit of topic creation and other administrative requests", 0},
      {"lookup_timeout", PRPC_OPT_DURATION_MS, "10000",
       "limit of one scan of a feedback topic for a stored result", 0},
      {"lookup_window", PRPC_OPT_DURATION_MS, "21600000",
       "how far back a result lookup without a known request time scans (default 6 h, the "
       "result TTL)",
       0},
      {"lookup_skew", PRPC_OPT_DURATION_MS, "60000",
       "clock skew tolerated between the request's and the reply's record timestamps", 0},
      {"lookup_by_timestamp", PRPC_OPT_BOOL, "true",
       "start result scans at the request's time (ListOffsets by timestamp); false scans the "
       "whole retained topic, for clusters without timestamp lookups (librdkafka's mock)",
       0},
      {"result_cache_entries", PRPC_OPT_INT, "10000",
       "results this process produced that it keeps for redelivery lookups", 0},
      {"ledger_bytes", PRPC_OPT_INT, "3000",
       "budget of the delivery ledger kept in offset-commit metadata (must stay below the "
       "broker's offset.metadata.max.bytes)",
       0},
      {"trace_offsets", PRPC_OPT_BOOL, "false",
       "log every request record's way through a server at info level: assigned, fetched, handed "
       "over, finished, committed, revoked, per partition; on a client, every reply read (for "
       "diagnosing lost or repeated calls)",
       0},
      {"server_history", PRPC_OPT_DURATION_MS, "300000",
       "how long list_servers() still lists a server whose announcement expired, with "
       "\"alive\": false (default 5 min)",
       0},
  };
}

Result<Settings> read_settings(const sdk::Options& options) {
  Settings s;
  std::string url = options.get("url", s.bootstrap);
  if (starts_with(url, "kafka://")) url = url.substr(8);
  if (!url.empty() && url.back() == '/') url.pop_back();
  if (url.empty()) return Status(StatusCode::kInvalidArgument, "kafka: the url option is empty");
  s.bootstrap = url;
  s.partitions = static_cast<std::int32_t>(options.get_int("partitions", s.partitions));
  if (s.partitions < 1) {
    return Status(StatusCode::kInvalidArgument, "kafka: partitions must be at least 1");
  }
  s.replication_factor =
      static_cast<std::int32_t>(options.get_int("replication_factor", s.replication_factor));
  if (s.replication_factor == 0 || s.replication_factor < -1) {
    return Status(StatusCode::kInvalidArgument,
                  "kafka: replication_factor must be -1 (cluster default) or at least 1");
  }
  s.linger_ms = options.get("linger_ms", s.linger_ms);
  s.eager_produce = options.get_bool("eager_produce", s.eager_produce);
  s.client_id = options.get("client_id", s.client_id);
  s.connect_timeout = options.get_duration("connect_timeout", s.connect_timeout);
  s.admin_timeout = options.get_duration("admin_timeout", s.admin_timeout);
  s.lookup_timeout = options.get_duration("lookup_timeout", s.lookup_timeout);
  s.lookup_window = options.get_duration("lookup_window", s.lookup_window);
  s.lookup_skew = options.get_duration("lookup_skew", s.lookup_skew);
  s.lookup_by_timestamp = options.get_bool("lookup_by_timestamp", s.lookup_by_timestamp);
  auto cache =
      options.get_int("result_cache_entries", static_cast<std::int64_t>(s.result_cache_entries));
  s.result_cache_entries = cache < 0 ? 0 : static_cast<std::size_t>(cache);
  auto ledger = options.get_int("ledger_bytes", static_cast<std::int64_t>(s.ledger_bytes));
  s.ledger_bytes = ledger < 64 ? 64 : static_cast<std::size_t>(ledger);
  s.trace_offsets = options.get_bool("trace_offsets", s.trace_offsets);
  s.server_history = options.get_duration("server_history", s.server_history);
  if (s.server_history.count() < 0) {
    return Status(StatusCode::kInvalidArgument, "kafka: server_history must not be negative");
  }

  for (const auto& [key, value] : options.all()) {
    if (std::find(kOwnKeys.begin(), kOwnKeys.end(), key) != kOwnKeys.end()) continue;
    if (starts_with(key, "producer.")) {
      s.producer[key.substr(9)] = value;
    } else if (starts_with(key, "consumer.")) {
      s.consumer[key.substr(9)] = value;
    } else {
      s.common[key] = value;
    }
  }
  return s;
}

bool is_secret_property(std::string_view key) {
  for (std::string_view word : {"password", "secret", "key", "token", "jaas", "credential"}) {
    if (key.find(word) != std::string_view::npos) return true;
  }
  return false;
}

std::string describe_properties(const std::map<std::string, std::string>& props) {
  std::string out;
  for (const auto& [k, v] : props) {
    if (!out.empty()) out += ", ";
    out += k;
    out += '=';
    out += is_secret_property(k) ? std::string("***") : v;
  }
  return out;
}

}  // namespace prpc::kafka
