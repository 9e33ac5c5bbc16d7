#include "service_info.hpp"

#include <array>
#include <cstdio>

#include "prpc/json.hpp"
#include "prpc/server.hpp"
#include "prpc/version.h"

namespace prpc::details {
namespace {

// A non-negative number with three decimals (%.3f), or as short as it goes (%g).
void append_number(std::string& out, double v, bool shortest = false) {
  char buf[40];
  double x = v < 0 ? 0.0 : v;
  int n = shortest ? std::snprintf(buf, sizeof(buf), "%g", x)
                   : std::snprintf(buf, sizeof(buf), "%.3f", x);
  out.append(buf, static_cast<std::size_t>(std::max(n, 0)));
}

void append_ms(std::string& out, double seconds) { append_number(out, seconds * 1e3); }

void append_count(std::string& out, std::string_view key, std::uint64_t v) {
  out += ", \"";
  out += key;
  out += "\": ";
  out += std::to_string(v);
}

std::uint64_t outcome(const FunctionMetrics& m, CallOutcome o) {
  return m.calls[static_cast<std::size_t>(o)].load(std::memory_order_relaxed);
}

bool is_reserved(std::string_view name) {
  return name == "ping" || name == "get_function_server" ||
         name.substr(0, kReservedPrefix.size()) == kReservedPrefix;
}

}  // namespace

std::string service_info_json(const ServiceSnapshot& s, const std::vector<FunctionInfo>& functions,
                              const std::string& default_worker, const ServerMetrics& metrics) {
  std::string out;
  out.reserve(1024 + functions.size() * 256);
  out += "{\"id\": ";
  json::append_quoted(out, s.id);
  out += ", \"queue\": ";
  json::append_quoted(out, s.queue);
  out += ", \"host\": ";
  json::append_quoted(out, s.host);
  out += ", \"pid\": " + std::to_string(s.pid);
  out += ", \"version\": \"" PRPC_VERSION_STRING "\", \"started_at\": ";
  json::append_quoted(out, s.started_at);
  out += ", \"uptime_s\": ";
  append_number(out, s.uptime_s);
  out += ", \"workers\": {";
  for (std::size_t i = 0; i < s.workers.size(); ++i) {
    if (i > 0) out += ", ";
    json::append_quoted(out, s.workers[i].first);
    out += ": " + std::to_string(s.workers[i].second);
  }
  out += "}, \"in_flight\": " + std::to_string(s.in_flight);

  // Totals over every series, the reserved functions' and unknown names' included.
  std::array<std::uint64_t, kOutcomeNames.size()> totals{};
  std::array<std::uint64_t, kLatencyBounds.size() + 1> buckets{};
  metrics.for_each([&](std::string_view, const FunctionMetrics& m) {
    for (std::size_t o = 0; o < totals.size(); ++o) {
      totals[o] += outcome(m, static_cast<CallOutcome>(o));
    }
    m.seconds.add_counts(buckets);
  });
  out += ", \"totals\": {\"received\": " + std::to_string(s.received);
  for (std::size_t o = 0; o < totals.size(); ++o) append_count(out, kOutcomeNames[o], totals[o]);
  append_count(out, "redeliveries", s.redeliveries);
  append_count(out, "deduplicated", s.deduplicated);
  append_count(out, "inlined", s.inlined);
  out += "}, \"latency\": {\"bounds_s\": [";
  for (std::size_t i = 0; i < kLatencyBounds.size(); ++i) {
    if (i > 0) out += ", ";
    append_number(out, kLatencyBounds[i], true);
  }
  out += "], \"counts\": [";
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(buckets[i]);
  }
  out += "]}, \"functions\": [";
  bool first = true;
  for (const FunctionInfo& f : functions) {
    if (is_reserved(f.name)) continue;
    if (!first) out += ", ";
    first = false;
    out += "{\"name\": ";
    json::append_quoted(out, f.name);
    out += ", \"worker\": ";
    json::append_quoted(out, f.worker.empty() ? default_worker : f.worker);
    out += ", \"signature\": ";
    json::append_quoted(out, function_signature(f.spec_json));
    out += ", \"doc\": ";
    json::append_quoted(out, f.doc);
    const FunctionMetrics* m = metrics.get(f.name);
    std::uint64_t ok = m != nullptr ? outcome(*m, CallOutcome::kOk) : 0;
    std::uint64_t errors = m != nullptr ? outcome(*m, CallOutcome::kError) : 0;
    std::uint64_t timeouts = m != nullptr ? outcome(*m, CallOutcome::kTimeout) : 0;
    std::uint64_t dead = m != nullptr ? outcome(*m, CallOutcome::kDeadLetter) : 0;
    append_count(out, "calls", ok + errors + timeouts + dead);
    append_count(out, "ok", ok);
    append_count(out, "errors", errors);
    append_count(out, "timeouts", timeouts);
    append_count(out, "dead_letters", dead);
    std::uint64_t ran = m != nullptr ? m->seconds.count() : 0;
    out += ", \"mean_ms\": ";
    append_ms(out, ran > 0 ? m->seconds.sum() / static_cast<double>(ran) : 0);
    out += ", \"p50_ms\": ";
    append_ms(out, ran > 0 ? m->seconds.quantile(0.5) : 0);
    out += ", \"p99_ms\": ";
    append_ms(out, ran > 0 ? m->seconds.quantile(0.99) : 0);
    out += '}';
  }
  out += "]}";
  return out;
}

std::string service_stats_json(std::string_view queue, std::string_view servers) {
  std::string out = "{\"queue\": ";
  json::append_quoted(out, queue);
  out += ", \"servers\": ";
  out += servers;
  out += '}';
  return out;
}

}  // namespace prpc::details
