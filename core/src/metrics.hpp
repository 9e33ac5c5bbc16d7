// The server engine's Prometheus metrics (counters and histograms updated with atomics on the
// hot path, rendered in the text format on a scrape) and the small HTTP listener that serves
// them on the engine's own Asio loop (docs/observability.md).
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "prpc/broker.hpp"
#include "prpc/status.hpp"

namespace prpc::details {

// Upper bounds (seconds) of every latency histogram: 0.5 ms to 1 min.
inline constexpr std::array<double, 16> kLatencyBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

class Histogram {
 public:
  void observe(double seconds) noexcept;
  // Appends the _bucket, _sum and _count lines of series `name` with labels `labels`
  // (`key="value",...` without braces).
  void render(std::string& out, std::string_view name, std::string_view labels) const;
  std::uint64_t count() const noexcept;
  double sum() const noexcept;
  // The estimated q-quantile (0 < q < 1) by linear interpolation within its bucket.
  double quantile(double q) const noexcept;
  // Adds the calls of each bucket (the last one: above the last bound) to `into`.
  void add_counts(std::array<std::uint64_t, kLatencyBounds.size() + 1>& into) const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kLatencyBounds.size() + 1> buckets_{};  // last: +Inf
  std::atomic<std::uint64_t> sum_ns_{0};
};

enum class CallOutcome : std::uint8_t { kOk, kError, kTimeout, kDeadLetter };
inline constexpr std::array<std::string_view, 4> kOutcomeNames = {"ok", "error", "timeout",
                                                                  "dead_letter"};

struct FunctionMetrics {
  std::array<std::atomic<std::uint64_t>, kOutcomeNames.size()> calls{};
  Histogram seconds;  // execution time of the calls an executor ran

  void count(CallOutcome o) noexcept {
    calls[static_cast<std::size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  }
};

// The label of requests that name no served function (or could not be decoded): the function
// label's values stay bounded whatever clients send.
inline constexpr std::string_view kUnknownFunctionLabel = "(unknown)";

class ServerMetrics {
 public:
  explicit ServerMetrics(std::string queue);

  // Called before serving: the functions served at start (lookups of these take no lock).
  void add_known(std::string_view function);
  // The series of a served function, or of kUnknownFunctionLabel when `function` is not known.
  FunctionMetrics& find(std::string_view function);
  // The series of `function` itself; null when it has none (not served, or no call yet).
  const FunctionMetrics* get(std::string_view function) const;
  // For a function registered after start: made on first use, under a lock.
  FunctionMetrics& late(std::string_view function);

  Histogram queue_wait;
  std::atomic<std::uint64_t> redeliveries{0};
  std::atomic<std::uint64_t> deduplicated{0};

  // Calls `visit(name, series)` for every function's series, the "(unknown)" one included.
  template <typename Visit>
  void for_each(Visit&& visit) const {
    for (const auto& [name, m] : known_) visit(std::string_view(name), *m);
    {
      std::lock_guard lock(late_mutex_);
      for (const auto& [name, m] : late_) visit(std::string_view(name), *m);
    }
    visit(kUnknownFunctionLabel, unknown_);
  }

  // The text format of every series; `broker` is the broker's view when known.
  std::string render(std::uint64_t in_flight, const std::optional<QueueStats>& broker,
                     double uptime_seconds) const;

 private:
  std::string queue_;
  std::map<std::string, std::unique_ptr<FunctionMetrics>, std::less<>> known_;
  FunctionMetrics unknown_;
  mutable std::mutex late_mutex_;
  std::map<std::string, std::unique_ptr<FunctionMetrics>, std::less<>> late_;
};

// A plain HTTP/1.1 server of GET requests on an io_context: asynchronous reads and writes, no
// thread of its own and none per connection.
class MetricsListener {
 public:
  // Answers a GET of `path` with (status, content type, body); runs on the io_context's thread.
  struct Response {
    unsigned status = 200;
    std::string content_type;
    std::string body;
  };
  using Handler = std::function<Response(std::string_view path)>;

  // Binds `listen` ("host:port", "[v6]:port", ":port" for every address; port 0 picks one).
  static Result<std::shared_ptr<MetricsListener>> start(boost::asio::io_context& io,
                                                        std::string_view listen, Handler handler);
  virtual ~MetricsListener() = default;
  virtual std::uint16_t port() const = 0;
  // Closes the listening socket and every connection; call it on the io_context's thread.
  virtual void close() = 0;
};

// The Prometheus text format's content type.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// A label value escaped for the text format.
void append_label_value(std::string& out, std::string_view value);

}  // namespace prpc::details
