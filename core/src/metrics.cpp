#include "metrics.hpp"

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "prpc/log.hpp"

namespace prpc::details {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::string_view kLog = "metrics";

void append_double(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  int n = std::snprintf(buf, sizeof(buf), "%.9g", v);
  out.append(buf, static_cast<std::size_t>(std::max(n, 0)));
}

void append_sample(std::string& out, std::string_view name, std::string_view labels,
                   std::string_view value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

void append_header(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

std::string label(std::string_view key, std::string_view value) {
  std::string out(key);
  out += "=\"";
  append_label_value(out, value);
  out += '"';
  return out;
}

}  // namespace

void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

// ---- Histogram -------------------------------------------------------------------------------

void Histogram::observe(double seconds) noexcept {
  if (!(seconds >= 0)) seconds = 0;  // NaN and clock skew count as 0
  std::size_t i = 0;
  while (i < kLatencyBounds.size() && seconds > kLatencyBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  double ns = std::min(seconds * 1e9, 1e18);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

std::uint64_t Histogram::count() const noexcept {
  std::uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

double Histogram::sum() const noexcept {
  return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
}

double Histogram::quantile(double q) const noexcept {
  std::array<std::uint64_t, kLatencyBounds.size() + 1> counts{};
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    counts[i] = buckets_[i].load(std::memory_order_relaxed);
    total += counts[i];
  }
  if (total == 0) return 0;
  double rank = q * static_cast<double>(total);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (static_cast<double>(below + counts[i]) >= rank && counts[i] > 0) {
      if (i == kLatencyBounds.size()) return kLatencyBounds.back();  // beyond the last bound
      double lower = i == 0 ? 0 : kLatencyBounds[i - 1];
      double within = (rank - static_cast<double>(below)) / static_cast<double>(counts[i]);
      return lower + (kLatencyBounds[i] - lower) * within;
    }
    below += counts[i];
  }
  return kLatencyBounds.back();
}

void Histogram::add_counts(
    std::array<std::uint64_t, kLatencyBounds.size() + 1>& into) const noexcept {
  for (std::size_t i = 0; i < into.size(); ++i) {
    into[i] += buckets_[i].load(std::memory_order_relaxed);
  }
}

void Histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  // Read once: _count is the +Inf bucket, so a scrape is consistent with itself.
  std::uint64_t cumulative = 0;
  std::string bucket = std::string(name) + "_bucket";
  std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  for (std::size_t i = 0; i <= kLatencyBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::string le = prefix + "le=\"";
    append_double(le, i < kLatencyBounds.size() ? kLatencyBounds[i]
                                                : std::numeric_limits<double>::infinity());
    le += '"';
    append_sample(out, bucket, le, std::to_string(cumulative));
  }
  std::string sum;
  append_double(sum, this->sum());
  append_sample(out, std::string(name) + "_sum", labels, sum);
  append_sample(out, std::string(name) + "_count", labels, std::to_string(cumulative));
}

// ---- ServerMetrics ---------------------------------------------------------------------------

ServerMetrics::ServerMetrics(std::string queue) : queue_(std::move(queue)) {}

void ServerMetrics::add_known(std::string_view function) {
  if (known_.find(function) == known_.end()) {
    known_.emplace(std::string(function), std::make_unique<FunctionMetrics>());
  }
}

FunctionMetrics& ServerMetrics::find(std::string_view function) {
  if (auto it = known_.find(function); it != known_.end()) return *it->second;
  std::lock_guard lock(late_mutex_);
  if (auto it = late_.find(function); it != late_.end()) return *it->second;
  return unknown_;
}

const FunctionMetrics* ServerMetrics::get(std::string_view function) const {
  if (auto it = known_.find(function); it != known_.end()) return it->second.get();
  std::lock_guard lock(late_mutex_);
  if (auto it = late_.find(function); it != late_.end()) return it->second.get();
  return nullptr;
}

FunctionMetrics& ServerMetrics::late(std::string_view function) {
  if (auto it = known_.find(function); it != known_.end()) return *it->second;
  std::lock_guard lock(late_mutex_);
  auto [it, added] = late_.try_emplace(std::string(function));
  if (added) it->second = std::make_unique<FunctionMetrics>();
  return *it->second;
}

std::string ServerMetrics::render(std::uint64_t in_flight, const std::optional<QueueStats>& broker,
                                  double uptime_seconds) const {
  std::string out;
  out.reserve(8192);
  const std::string q = label("queue", queue_);
  std::vector<std::pair<std::string_view, const FunctionMetrics*>> functions;
  for (const auto& [name, m] : known_) functions.emplace_back(name, m.get());
  std::unique_lock lock(late_mutex_);
  for (const auto& [name, m] : late_) functions.emplace_back(name, m.get());
  lock.unlock();  // the entries themselves live as long as this object
  functions.emplace_back(kUnknownFunctionLabel, &unknown_);

  append_header(out, "prpc_server_calls_total", "counter",
                "Requests this server answered, by function and outcome.");
  for (const auto& [name, m] : functions) {
    std::string labels = q + "," + label("function", name) + ",outcome=\"";
    for (std::size_t o = 0; o < kOutcomeNames.size(); ++o) {
      std::string l = labels;
      l += kOutcomeNames[o];
      l += '"';
      append_sample(out, "prpc_server_calls_total", l,
                    std::to_string(m->calls[o].load(std::memory_order_relaxed)));
    }
  }
  append_header(out, "prpc_server_call_seconds", "histogram",
                "Execution time of the calls this server ran, from the hand-over to the "
                "executor to the result.");
  for (const auto& [name, m] : functions) {
    m->seconds.render(out, "prpc_server_call_seconds", q + "," + label("function", name));
  }
  append_header(out, "prpc_server_queue_wait_seconds", "histogram",
                "From the request's creation (date_create_message) to the start of its "
                "execution.");
  queue_wait.render(out, "prpc_server_queue_wait_seconds", q);
  append_header(out, "prpc_server_in_flight", "gauge",
                "Requests delivered to this server and not yet answered.");
  append_sample(out, "prpc_server_in_flight", q, std::to_string(in_flight));
  append_header(out, "prpc_server_redeliveries_total", "counter",
                "Requests delivered to this server more than once.");
  append_sample(out, "prpc_server_redeliveries_total", q, std::to_string(redeliveries.load()));
  append_header(out, "prpc_server_deduplicated_total", "counter",
                "Redeliveries answered from the stored result instead of running again.");
  append_sample(out, "prpc_server_deduplicated_total", q, std::to_string(deduplicated.load()));
  append_header(out, "prpc_server_uptime_seconds", "gauge", "Seconds since the server started.");
  std::string up;
  append_double(up, uptime_seconds);
  append_sample(out, "prpc_server_uptime_seconds", q, up);
  if (broker) {
    append_header(out, "prpc_queue_waiting", "gauge",
                  "Requests in the queue not yet delivered to any server (the broker's view).");
    append_sample(out, "prpc_queue_waiting", q, std::to_string(broker->length));
    append_header(out, "prpc_queue_pending", "gauge",
                  "Requests delivered and not yet acknowledged (the broker's view).");
    append_sample(out, "prpc_queue_pending", q, std::to_string(broker->pending));
    append_header(out, "prpc_queue_dead_letters", "gauge",
                  "Requests in the queue's dead letters (the broker's view).");
    append_sample(out, "prpc_queue_dead_letters", q, std::to_string(broker->dead_letters));
  }
  return out;
}

// ---- MetricsListener -------------------------------------------------------------------------

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr std::size_t kMaxConnections = 64;

class Listener;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::weak_ptr<Listener> owner)
      : stream_(std::move(socket)), owner_(std::move(owner)) {}
  void read();
  void close() {
    boost::system::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void answer();
  void done();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  std::weak_ptr<Listener> owner_;
};

class Listener : public MetricsListener, public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& io, Handler handler) : acceptor_(io), handler_(std::move(handler)) {}

  Status open(const tcp::endpoint& at) {
    boost::system::error_code ec;
    acceptor_.open(at.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(at, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status(StatusCode::kUnavailable, ec.message());
    port_ = acceptor_.local_endpoint(ec).port();
    return Status::ok();
  }

  void accept() {
    acceptor_.async_accept(
        [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
          if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
          if (!ec) {
            if (self->sessions_.size() >= kMaxConnections) {
              boost::system::error_code ignored;
              socket.close(ignored);  // a scraper holds few connections; this is a flood
            } else {
              auto session = std::make_shared<Session>(std::move(socket), self);
              self->sessions_.insert(session);
              session->read();
            }
          }
          self->accept();
        });
  }

  std::uint16_t port() const override { return port_; }

  void close() override {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    auto sessions = std::move(sessions_);
    sessions_.clear();
    for (const auto& s : sessions) s->close();
  }

  Response handle(std::string_view path) { return handler_(path); }
  void forget(const std::shared_ptr<Session>& s) { sessions_.erase(s); }

 private:
  tcp::acceptor acceptor_;
  Handler handler_;
  std::uint16_t port_ = 0;
  std::set<std::shared_ptr<Session>> sessions_;
};

void Session::read() {
  request_ = {};
  stream_.expires_after(kIdleTimeout);
  http::async_read(stream_, buffer_, request_,
                   [self = shared_from_this()](beast::error_code ec, std::size_t) {
                     if (ec) {
                       self->done();
                       return;
                     }
                     self->answer();
                   });
}

void Session::answer() {
  auto owner = owner_.lock();
  if (!owner) return;
  response_ = {};
  response_.version(request_.version());
  response_.keep_alive(request_.keep_alive());
  response_.set(http::field::server, "prpc");
  if (request_.method() != http::verb::get && request_.method() != http::verb::head) {
    response_.result(http::status::method_not_allowed);
    response_.set(http::field::content_type, "text/plain");
    response_.body() = "only GET\n";
  } else {
    std::string_view target = request_.target();
    target = target.substr(0, target.find('?'));
    MetricsListener::Response r = owner->handle(target);
    response_.result(r.status);
    response_.set(http::field::content_type, r.content_type);
    if (request_.method() == http::verb::get) response_.body() = std::move(r.body);
  }
  response_.prepare_payload();
  http::async_write(stream_, response_,
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec || !self->response_.keep_alive()) {
                        self->close();
                        self->done();
                        return;
                      }
                      self->read();
                    });
}

void Session::done() {
  if (auto owner = owner_.lock()) owner->forget(shared_from_this());
}

}  // namespace

Result<std::shared_ptr<MetricsListener>> MetricsListener::start(asio::io_context& io,
                                                                std::string_view listen,
                                                                Handler handler) {
  std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return Status(StatusCode::kInvalidArgument,
                  "metrics.listen: '" + std::string(listen) + "' is not host:port");
  }
  std::string host(listen.substr(0, colon));
  std::string port(listen.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  auto found =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || found.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  "metrics.listen: cannot resolve '" + std::string(listen) +
                      "': " + (ec ? ec.message() : std::string("no address")));
  }
  auto listener = std::make_shared<Listener>(io, std::move(handler));
  Status opened = listener->open(found.begin()->endpoint());
  if (!opened.is_ok()) {
    return Status(StatusCode::kUnavailable, "metrics.listen: cannot listen on '" +
                                                std::string(listen) + "': " + opened.message());
  }
  listener->accept();
  log::info(kLog, "serving /metrics on " + host + ":" + std::to_string(listener->port()));
  return std::shared_ptr<MetricsListener>(std::move(listener));
}

}  // namespace prpc::details
