#include "prpc/server.hpp"

#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "event_loop.hpp"
#include "metrics.hpp"
#include "prpc/envelope.hpp"
#include "prpc/iso_time.hpp"
#include "prpc/json.hpp"
#include "prpc/log.hpp"
#include "prpc/uuid.hpp"
#include "prpc/version.h"
#include "service_info.hpp"

namespace prpc {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kLog = "server";
constexpr std::string_view kPing = "ping";
constexpr std::string_view kManifest = "get_function_server";
// The error type of the reply to a request that failed its signature check.
constexpr std::string_view kSignatureError = "SignatureError";

// How long a scrape reuses the broker's view of the queue (queue_stats is a round trip).
constexpr auto kBrokerViewMaxAge = std::chrono::seconds(2);

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// " trace <trace id>" for a request with a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>"),
// so that log lines join the caller's trace; "" otherwise.
std::string trace_suffix(std::string_view traceparent) {
  if (traceparent.size() < 55 || traceparent[2] != '-' || traceparent[35] != '-') return {};
  return " trace " + std::string(traceparent.substr(3, 32));
}

// ` key=value` for a logfmt line: the value quoted (JSON string rules) when it has spaces,
// quotes or '=' in it, or is empty.
void append_field(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += '=';
  if (value.empty() || value.find_first_of(" \"=\\\t\r\n") != std::string_view::npos) {
    json::append_quoted(out, value);
  } else {
    out += value;
  }
}

// One line per failed call, for people and log shippers alike: "call failed: function=f
// message_id=... error_type=ValueError trace_id=... queue=q error=\"...\"".
std::string failed_call_line(std::string_view queue, const Message& request,
                             std::string_view error_type, std::string_view message) {
  constexpr std::size_t kMaxText = 300;
  std::string line = "call failed:";
  append_field(line, "function", request.func_name);
  append_field(line, "message_id", request.message_id);
  append_field(line, "error_type", error_type);
  std::string_view tp = request.traceparent;
  bool traced = tp.size() >= 55 && tp[2] == '-' && tp[35] == '-';
  append_field(line, "trace_id", traced ? tp.substr(3, 32) : std::string_view("-"));
  append_field(line, "queue", queue);
  std::string_view text = message.substr(0, message.find('\n'));
  append_field(line, "error", text.substr(0, kMaxText));
  return line;
}

// A duration in seconds as a JSON number with microsecond resolution.
void append_seconds(std::string& out, double s) {
  char buf[32];
  int n = std::snprintf(buf, sizeof(buf), "%.6f", s < 0 ? 0.0 : s);
  out.append(buf, static_cast<std::size_t>(std::max(n, 0)));
}

std::string host_name() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return host[0] != '\0' ? host : "prpc";
}

std::string default_consumer_name() {
  return host_name() + "-" + std::to_string(getpid()) + "-" + new_uuid().substr(0, 8);
}

// A server is listed as alive until this many announce intervals pass without one.
constexpr int kAnnouncementsMissed = 5;

}  // namespace

std::string function_manifest(const std::string& queue, const std::vector<FunctionInfo>& functions,
                              const std::string& default_worker) {
  std::string out = "{\"queue\": ";
  json::append_quoted(out, queue);
  out += ", \"server\": {\"name\": \"prpc\", \"version\": \"" PRPC_VERSION_STRING "\"}";
  out += ", \"functions\": [";
  bool first = true;
  for (const FunctionInfo& f : functions) {
    if (!first) out += ", ";
    first = false;
    out += "{\"name\": ";
    json::append_quoted(out, f.name);
    out += ", \"worker\": ";
    json::append_quoted(out, f.worker.empty() ? default_worker : f.worker);
    out += ", \"doc\": ";
    json::append_quoted(out, f.doc);
    out += ", \"spec\": ";
    out += f.spec_json.empty() ? std::string("{}") : f.spec_json;
    out += "}";
  }
  out += "]}";
  return out;
}

// One request from delivery to acknowledgement.
struct Call {
  std::uint64_t id = 0;
  Delivery delivery;
  Message request;
  const Codec* codec = nullptr;
  std::string received_at;
  Clock::time_point started = Clock::now();
  // Deliveries of this very request (same flavour and message_id) that arrived while it ran
  // here: answered with its outcome instead of running again (under calls_mutex_).
  std::vector<std::shared_ptr<Call>> twins;
  // Its signature verified (or signing is off): its replies are signed. The replies to a
  // request that failed verification are not, so the server never signs what a sender without
  // the key chose.
  bool authenticated = false;
  details::FunctionMetrics* metrics = nullptr;  // null: the "(unknown)" series
  Clock::time_point executing_since{};
  double time_queued = -1;     // seconds from date_create_message to dispatch; <0: unknown
  double time_executing = -1;  // seconds on the executor; <0: not run
  std::string tracestate;      // the request's, decoded from its extensions
};
using CallPtr = std::shared_ptr<Call>;

namespace {

// The quick calls of the deliveries being handed out on this thread (Impl::dispatch()), and
// the server handing them out.
struct InlineCall {
  CallPtr call;
  Invocation invocation;
};
struct Gathering {
  const void* server = nullptr;
  std::vector<InlineCall>* calls = nullptr;
};
thread_local Gathering t_gathering{};

}  // namespace

class Server::Impl : public std::enable_shared_from_this<Server::Impl> {
 public:
  Impl(ServerOptions options, std::shared_ptr<Broker> broker, std::shared_ptr<Codec> python_codec,
       std::shared_ptr<Codec> raw_codec, std::shared_ptr<FunctionTable> functions,
       ExecutorMap executors)
      : options_(std::move(options)),
        broker_(std::move(broker)),
        python_codec_(std::move(python_codec)),
        raw_codec_(std::move(raw_codec)),
        functions_(std::move(functions)),
        executors_(std::move(executors)),
        metrics_(options_.queue),
        sweeper_(loop_.io()),
        announcer_(loop_.io()) {
    if (options_.consumer.empty()) options_.consumer = default_consumer_name();
    limits_.max_depth = options_.max_json_depth;
    limits_.max_bytes = options_.max_message_bytes;
  }

  Status start() {
    std::lock_guard lock(state_mutex_);
    if (running_) return Status(StatusCode::kFailedPrecondition, "the server is already running");
    if (!python_codec_ && !raw_codec_) {
      return Status(StatusCode::kInvalidArgument, "the server has no codec to decode requests");
    }
    if (!functions_) return Status(StatusCode::kInvalidArgument, "the server has no functions");
    PRPC_ASSIGN_OR_RETURN(signer_, Signer::make(options_.signing));
    for (const FunctionInfo& f : functions_->list()) {
      const std::string& worker = f.worker.empty() ? options_.default_worker : f.worker;
      if (executors_.find(worker) == executors_.end()) {
        return Status(StatusCode::kInvalidArgument, "function '" + f.name +
                                                        "' runs on worker type '" + worker +
                                                        "', which this server has no executor for");
      }
      if (f.name.starts_with(details::kReservedPrefix)) {
        return Status(StatusCode::kInvalidArgument,
                      "function '" + f.name + "': names starting with '" +
                          std::string(details::kReservedPrefix) + "' are reserved by PRPC");
      }
      function_workers_[f.name] = worker;
      metrics_.add_known(f.name);
    }
    for (std::string_view reserved :
         {kPing, kManifest, details::kInfoFunction, details::kStatsFunction}) {
      metrics_.add_known(reserved);
    }
    started_at_ = Clock::now();
    started_iso_ = now_iso8601();
    if (!options_.metrics_listen.empty() && !metrics_listener_) {
      std::weak_ptr<Impl> weak = weak_from_this();
      auto listener = details::MetricsListener::start(
          loop_.io(), options_.metrics_listen, [weak](std::string_view path) {
            details::MetricsListener::Response r;
            auto self = weak.lock();
            if (!self || (path != "/metrics" && path != "/")) {
              r.status = 404;
              r.content_type = "text/plain";
              r.body = "PRPC serves /metrics\n";
              return r;
            }
            r.content_type = std::string(details::kPrometheusContentType);
            r.body = self->metrics_text();
            return r;
          });
      if (!listener.is_ok()) return listener.status();
      metrics_listener_ = std::move(*listener);
    }
    if (Status connected = broker_->connect(); !connected.is_ok()) {
      close_metrics_listener();
      return connected;
    }

    SubscribeOptions sub;
    sub.queue = options_.queue;
    sub.group = options_.group;
    sub.consumer = options_.consumer;
    sub.python = python_codec_ != nullptr;
    sub.raw = raw_codec_ != nullptr;
    sub.max_outstanding = options_.max_in_flight;
    sub.batch_size = options_.batch_size;
    sub.visibility_timeout = options_.visibility_timeout;
    std::weak_ptr<Impl> weak = weak_from_this();
    Status subscribed = broker_->subscribe(sub, [weak](std::span<const DeliveryView> items) {
      if (auto self = weak.lock()) self->on_deliveries(items);
    });
    if (!subscribed.is_ok()) {
      close_metrics_listener();
      return subscribed;
    }
    running_ = true;
    abandoning_ = false;
    schedule_sweep();
    if (options_.announce_interval.count() > 0) {
      asio::post(loop_.io(), [weak] {
        if (auto self = weak.lock()) self->announce();
      });
    }
    log::info(kLog, "serving queue '" + options_.queue + "' as consumer '" + options_.consumer +
                        "' (" + std::to_string(function_workers_.size()) + " functions)");
    return Status::ok();
  }

  void stop(std::chrono::milliseconds grace) {
    {
      std::lock_guard lock(state_mutex_);
      if (!running_) return;
      running_ = false;
    }
    broker_->unsubscribe();
    std::unique_lock lock(calls_mutex_);
    bool drained = calls_cv_.wait_for(lock, grace, [this] { return calls_.empty(); });
    if (!drained) {
      abandoning_ = true;
      log::warn(kLog, std::to_string(calls_.size()) +
                          " calls still running after the drain grace period; their requests "
                          "stay unacknowledged for another server");
    }
    lock.unlock();
    // On the loop thread, and waited for: the timer may be destroyed right after stop().
    if (loop_.in_loop_thread()) {
      sweeper_.cancel();
    } else {
      std::promise<void> cancelled;
      asio::post(loop_.io(), [&] {
        sweeper_.cancel();
        announcer_.cancel();
        cancelled.set_value();
      });
      cancelled.get_future().wait();
    }
    if (loop_.in_loop_thread()) announcer_.cancel();
    withdraw();
    close_metrics_listener();
  }

  // Announces the server to the broker (prpc.stats, `prpc stats --servers`, the dashboard),
  // then again every announce interval while it runs.
  void announce() {
    {
      std::lock_guard lock(state_mutex_);
      if (!running_) return;
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    broker_->announce_server(
        options_.queue, options_.consumer, info_json(),
        options_.announce_interval * kAnnouncementsMissed, [weak](const Status& s) {
          auto self = weak.lock();
          if (!self) return;
          if (s.code() == StatusCode::kUnimplemented) {
            // This broker keeps no list of servers: prpc.info still answers.
            log::debug(kLog, "not announcing the server: " + s.message());
            return;
          }
          if (!s.is_ok() && !self->announce_failing_.exchange(true)) {
            log::warn(kLog, "could not announce the server (will keep trying): " + s.to_string());
          } else if (s.is_ok() && self->announce_failing_.exchange(false)) {
            log::info(kLog, "announcing the server again");
          }
          asio::post(self->loop_.io(), [weak] {
            auto again = weak.lock();
            if (!again) return;
            again->announcer_.expires_after(again->options_.announce_interval);
            again->announcer_.async_wait([weak](const boost::system::error_code& ec) {
              if (ec) return;
              if (auto next = weak.lock()) next->announce();
            });
          });
        });
  }

  // A last announcement that expires at once: listed as stopped rather than alive for the ttl.
  void withdraw() {
    if (options_.announce_interval.count() <= 0) return;
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    broker_->announce_server(options_.queue, options_.consumer, info_json(),
                             std::chrono::milliseconds(1),
                             [done](const Status&) { done->set_value(); });
    // Bounded: a broker that is down must not hold up the stop.
    future.wait_for(std::chrono::seconds(1));
  }

  std::string info_json() const {
    details::ServiceSnapshot s;
    s.id = options_.consumer;
    s.queue = options_.queue;
    s.host = host_name();
    s.pid = getpid();
    s.started_at = started_iso_;
    s.uptime_s =
        started_at_ == Clock::time_point{} ? 0 : seconds_between(started_at_, Clock::now());
    for (const auto& [name, executor] : executors_)
      s.workers.emplace_back(name, executor->workers());
    s.in_flight = executing_.load();
    s.received = received_.load();
    s.redeliveries = metrics_.redeliveries.load();
    s.deduplicated = deduplicated_.load();
    s.inlined = inlined_.load();
    return details::service_info_json(s, functions_->list(), options_.default_worker, metrics_);
  }

  // prpc.stats: every server the broker lists for the queue. Listing is a blocking round trip,
  // made on the operations thread; without a list of servers, the answer names this one only.
  void answer_stats(const CallPtr& call) {
    auto self = shared_from_this();
    asio::post(ops_.io(), [self, call] {
      auto listed = self->broker_->list_servers(self->options_.queue);
      if (listed.is_ok()) {
        self->reply_success(call, details::service_stats_json(self->options_.queue, *listed));
        return;
      }
      if (listed.status().code() == StatusCode::kUnimplemented) {
        ServerRecord own{self->options_.consumer, true, std::chrono::milliseconds(0),
                         self->info_json()};
        self->reply_success(
            call, details::service_stats_json(
                      self->options_.queue, servers_json(std::span<const ServerRecord>(&own, 1))));
        return;
      }
      self->reply_error(call, listed.status().code(), error_types::kInternal,
                        "could not list the servers: " + listed.status().message());
    });
  }

  // Closes the listener on the loop thread, its sockets' only user, and waits for that.
  void close_metrics_listener() {
    if (!metrics_listener_) return;
    auto listener = std::move(metrics_listener_);
    if (loop_.in_loop_thread()) {
      listener->close();
      return;
    }
    std::promise<void> closed;
    asio::post(loop_.io(), [&] {
      listener->close();
      closed.set_value();
    });
    closed.get_future().wait();
  }

  std::uint16_t metrics_port() const {
    return metrics_listener_ ? metrics_listener_->port() : std::uint16_t{0};
  }

  std::string metrics_text() {
    std::optional<QueueStats> view;
    {
      std::lock_guard lock(broker_view_mutex_);
      auto now = Clock::now();
      if (!broker_view_ || now - broker_view_at_ >= kBrokerViewMaxAge) {
        auto fresh = broker_->queue_stats(options_.queue);
        broker_view_at_ = now;
        // A broker that cannot answer leaves the series out rather than report stale numbers.
        broker_view_ = fresh.is_ok() ? std::optional<QueueStats>(*fresh) : std::nullopt;
      }
      view = broker_view_;
    }
    double uptime =
        started_at_ == Clock::time_point{} ? 0 : seconds_between(started_at_, Clock::now());
    return metrics_.render(executing_.load(), view, uptime);
  }

  Status run() {
    // The handler is in place before the server answers anything: a SIGTERM sent as soon as it
    // serves drains it rather than killing the process.
    {
      std::lock_guard lock(state_mutex_);
      stop_requested_ = false;
    }
    asio::signal_set signals(loop_.io(), SIGINT, SIGTERM);
    std::weak_ptr<Impl> weak = weak_from_this();
    signals.async_wait([weak](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (auto self = weak.lock()) {
        log::info(kLog, std::string("received ") + (signo == SIGINT ? "SIGINT" : "SIGTERM") +
                            ", draining");
        self->request_stop();
      }
    });
    Status started = start();
    if (started.is_ok()) {
      {
        std::unique_lock lock(state_mutex_);
        stop_cv_.wait(lock, [this] { return stop_requested_; });
      }
      stop(options_.drain_grace);
    }
    std::promise<void> cancelled;
    asio::post(loop_.io(), [&] {
      boost::system::error_code ignored;
      signals.cancel(ignored);
      cancelled.set_value();
    });
    cancelled.get_future().wait();
    return started;
  }

  void request_stop() noexcept {
    {
      std::lock_guard lock(state_mutex_);
      stop_requested_ = true;
    }
    stop_cv_.notify_all();
  }

  ServerStats stats() const {
    ServerStats s;
    s.received = received_.load();
    s.succeeded = succeeded_.load();
    s.failed = failed_.load();
    s.dead_lettered = dead_lettered_.load();
    s.deduplicated = deduplicated_.load();
    s.in_flight = executing_.load();
    s.inlined = inlined_.load();
    return s;
  }

  const ServerOptions& options() const { return options_; }

 private:
  details::FunctionMetrics& series(const CallPtr& call) {
    return call->metrics != nullptr ? *call->metrics : metrics_.find({});
  }

  const Codec* codec_for(Flavour f) const {
    return f == Flavour::kRaw ? raw_codec_.get() : python_codec_.get();
  }

  void on_deliveries(std::span<const DeliveryView> items) {
    std::vector<InlineCall> quick;
    Gathering outer = t_gathering;
    t_gathering = Gathering{this, &quick};
    struct Restore {
      Gathering saved;
      ~Restore() { t_gathering = saved; }
    } restore{outer};
    for (const DeliveryView& d : items) {
      auto call = std::make_shared<Call>();
      call->id = next_call_id_.fetch_add(1) + 1;
      call->delivery = Delivery(d);
      call->received_at = now_iso8601();
      {
        std::lock_guard lock(calls_mutex_);
        calls_.emplace(call->id, call);
      }
      received_.fetch_add(1);
      executing_.fetch_add(1);
      begin(call);
    }
    t_gathering = outer;
    run_inline(quick);
  }

  // Whether a call goes to run_inline() instead of its executor: a plain function of the
  // "thread" worker that its table knows to be quick, met while a batch is being handed out.
  bool runs_inline(const std::string& worker, std::string_view func_name) const {
    return options_.inline_max.count() > 0 && t_gathering.server == this && worker == "thread" &&
           functions_->quick(func_name, options_.inline_max);
  }

  // Runs the batch's quick calls one after another on this thread: no executor hand-off, and
  // for Python one GIL acquisition for the lot. Their replies go out as each finishes.
  void run_inline(std::vector<InlineCall>& quick) {
    if (quick.empty()) return;
    std::vector<Invocation> calls;
    std::vector<OutcomeCallback> done;
    calls.reserve(quick.size());
    done.reserve(quick.size());
    auto self = shared_from_this();
    Clock::time_point now = Clock::now();
    // Which calls have their outcome: a table that throws leaves the rest to be answered here.
    auto answered = std::make_shared<std::vector<std::atomic<bool>>>(quick.size());
    for (std::size_t i = 0; i < quick.size(); ++i) {
      quick[i].call->executing_since = now;
      calls.push_back(quick[i].invocation);
      done.emplace_back([self, answered, i, call = quick[i].call](Outcome outcome) {
        if ((*answered)[i].exchange(true)) return;
        self->complete(call, std::move(outcome));
      });
    }
    inlined_.fetch_add(quick.size(), std::memory_order_relaxed);
    std::string thrown;
    try {
      functions_->invoke_batch(calls, done);
    } catch (const std::exception& e) {
      thrown = std::string("the function table threw: ") + e.what();
    } catch (...) {
      thrown = "the function table threw an unknown exception";
    }
    if (thrown.empty()) return;
    for (std::size_t i = 0; i < quick.size(); ++i) {
      if ((*answered)[i].exchange(true)) continue;
      complete(quick[i].call,
               Outcome::failure(StatusCode::kInternal, error_types::kInternal, thrown));
    }
  }

  void begin(const CallPtr& call) {
    call->codec = codec_for(call->delivery.flavour);
    if (call->codec == nullptr) {
      reject(call, "no codec serves the " + std::string(flavour_name(call->delivery.flavour)) +
                       " flavour");
      return;
    }
    const std::string& payload = call->delivery.payload;
    // Before any decoding, cheapest first: the size, the signature, the nesting.
    std::string refused = over_size(*call);
    std::string_view error_type = error_types::kDecode;
    if (refused.empty()) {
      Status verified =
          signer_.verify(payload, call->delivery.signature, call->delivery.key_id, "request");
      call->authenticated = verified.is_ok();
      if (!verified.is_ok()) {
        refused = verified.message();
        error_type = kSignatureError;
      }
    }
    if (refused.empty()) refused = over_depth(*call);
    if (!refused.empty()) {
      // Never decoded: whom to answer is read from the top level of the bytes.
      Sender sender = find_sender(payload, call->delivery.flavour);
      call->request.message_id = std::move(sender.message_id);
      call->request.reply_to = std::move(sender.reply_to);
      reject(call, refused, error_type);
      return;
    }
    Message salvaged;
    auto decoded = call->codec->decode(payload, &salvaged);
    if (!decoded.is_ok()) {
      call->request = std::move(salvaged);
      reject(call, decoded.status().message());
      return;
    }
    call->request = std::move(*decoded);
    call->metrics = &metrics_.find(call->request.func_name);
    if (call->request.func_name.empty()) {
      reject(call, "func_name: must not be empty");
      return;
    }
    if (call->delivery.delivery_count > options_.max_deliveries) {
      std::string reason = "delivered " + std::to_string(call->delivery.delivery_count) +
                           " times without finishing (limit " +
                           std::to_string(options_.max_deliveries) + ")";
      reply_error(call, StatusCode::kResourceExhausted, error_types::kDeadLetter, reason, {},
                  reason);
      return;
    }
    if (call->delivery.delivery_count > 1) {
      metrics_.redeliveries.fetch_add(1, std::memory_order_relaxed);
      // A redelivery: the call may have finished before its ack was lost. Do not run it twice.
      auto self = shared_from_this();
      broker_->lookup_result_signed(
          call->delivery.flavour, call->delivery.queue, call->request.message_id,
          [self, call](Result<std::optional<StoredResult>> found) {
            if (!found.is_ok() || !found->has_value()) {
              self->dispatch(call);
              return;
            }
            const StoredResult& stored = **found;
            Status genuine = self->signer_.verify(stored.payload, stored.signature, stored.key_id,
                                                  "stored result");
            if (!genuine.is_ok()) {
              // Someone else wrote it: run the call and store a result of our own over it.
              log::warn(kLog, "not answering request " + call->request.message_id +
                                  " from its stored result: " + genuine.message());
              self->dispatch(call);
              return;
            }
            self->deduplicated_.fetch_add(1);
            self->metrics_.deduplicated.fetch_add(1);
            self->finish(call, stored.payload, /*push_only=*/true, {},
                         Signer::Signature{stored.signature, stored.key_id});
          });
      return;
    }
    dispatch(call);
  }

  // Why a request is over the server's limits, checked on its bytes before any decoding; empty
  // when it is within them. Nesting is counted for JSON codecs only.
  std::string over_size(const Call& call) const {
    const std::string& payload = call.delivery.payload;
    if (payload.size() > options_.max_message_bytes) {
      return "message of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
             std::to_string(options_.max_message_bytes) + " bytes (server.max_message_bytes)";
    }
    return {};
  }
  std::string over_depth(const Call& call) const {
    std::string_view dialect = call.codec->dialect();
    if ((dialect == "json" || dialect == "jsonpickle") &&
        json_nesting_depth(call.delivery.payload, options_.max_json_depth) >
            options_.max_json_depth) {
      return "message nests deeper than " + std::to_string(options_.max_json_depth) +
             " levels (server.max_json_depth)";
    }
    return {};
  }

  void dispatch(const CallPtr& call) {
    const Message& req = call->request;
    if (!req.date_create_message.empty()) {
      if (auto created = parse_iso8601(req.date_create_message)) {
        call->time_queued = std::max(
            0.0,
            std::chrono::duration<double>(std::chrono::system_clock::now() - *created).count());
        metrics_.queue_wait.observe(call->time_queued);
      }
    }
    if (!req.deadline.empty()) {
      auto deadline = parse_iso8601(req.deadline);
      if (deadline && *deadline < std::chrono::system_clock::now()) {
        reply_error(call, StatusCode::kTimeout, error_types::kTimeout,
                    "the deadline " + req.deadline + " passed before the call started");
        return;
      }
    }
    if (req.func_name == kPing) {
      reply_success(call, "\"pong\"");
      return;
    }
    if (req.func_name == details::kInfoFunction) {
      reply_success(call, info_json());
      return;
    }
    if (req.func_name == details::kStatsFunction) {
      answer_stats(call);
      return;
    }
    if (req.func_name == kManifest) {
      reply_success(
          call, wants_manifest(req.func_kwargs)
                    ? function_manifest(options_.queue, functions_->list(), options_.default_worker)
                    : original_function_list(functions_->list()));
      return;
    }
    std::string worker;
    if (auto it = function_workers_.find(req.func_name); it != function_workers_.end()) {
      worker = it->second;
    } else {
      // The table may have grown since start (functions registered late): the slow path.
      for (const FunctionInfo& f : functions_->list()) {
        if (f.name == req.func_name) worker = f.worker.empty() ? options_.default_worker : f.worker;
      }
      if (!worker.empty()) call->metrics = &metrics_.late(req.func_name);
    }
    if (worker.empty()) {
      reply_error(call, StatusCode::kNotFound, error_types::kUnknownFunction,
                  not_found_text(req.func_name) + " (queue '" + options_.queue + "')");
      return;
    }
    auto executor = executors_.find(worker);
    if (executor == executors_.end()) {
      reply_error(call, StatusCode::kFailedPrecondition, error_types::kInternal,
                  "no executor for worker type '" + worker + "'");
      return;
    }
    if (!req.message_id.empty()) {
      // A request redelivered to the server that is still running it (a Kafka rebalance that
      // gives the partition back, a Redis claim after a stall) waits for that run: at least
      // once, never twice at once on one server.
      std::lock_guard lock(calls_mutex_);
      auto [it, fresh] = running_ids_.try_emplace(running_key(call), call);
      if (!fresh) {
        it->second->twins.push_back(call);
        deduplicated_.fetch_add(1);
        metrics_.deduplicated.fetch_add(1);
        call->metrics = &twin_sink_;  // the request is counted once, by the run it waits for
        return;
      }
    }
    Invocation inv;
    inv.call_id = call->id;
    inv.func_name = req.func_name;
    inv.args = req.func_args;
    inv.kwargs = req.func_kwargs;
    inv.dialect = call->codec->dialect();
    inv.message_id = req.message_id;
    inv.timeout = options_.call_timeout;
    // The trace context passes through to the function (docs/observability.md).
    inv.traceparent = req.traceparent;
    if (!req.traceparent.empty() && !req.extensions.empty()) {
      call->tracestate = json::get_string_member(req.extensions, "tracestate").value_or("");
      inv.tracestate = call->tracestate;
    }
    if (runs_inline(worker, req.func_name)) {
      t_gathering.calls->push_back(InlineCall{call, inv});
      return;
    }
    auto self = shared_from_this();
    call->executing_since = Clock::now();
    executor->second->submit(
        inv, [self, call](Outcome outcome) { self->complete(call, std::move(outcome)); });
  }

  static std::string running_key(const CallPtr& call) {
    return std::string(flavour_name(call->delivery.flavour)) + ":" + call->request.message_id;
  }

  void complete(const CallPtr& call, Outcome outcome) {
    call->time_executing = seconds_between(call->executing_since, Clock::now());
    series(call).seconds.observe(call->time_executing);
    std::vector<CallPtr> twins;
    if (!call->request.message_id.empty()) {
      std::lock_guard lock(calls_mutex_);
      running_ids_.erase(running_key(call));
      twins.swap(call->twins);
    }
    for (const CallPtr& twin : twins) answer(twin, outcome);
    answer(call, std::move(outcome));
  }

  void answer(const CallPtr& call, Outcome outcome) {
    if (abandoning_.load()) {
      executing_.fetch_sub(1);
      forget(call);  // left unacknowledged for another server
      return;
    }
    if (outcome.ok()) {
      Status valid = json::validate(outcome.result, limits_);
      if (!valid.is_ok()) {
        reply_error(call, StatusCode::kEncode, error_types::kEncode,
                    "the function's result is not valid JSON: " + valid.message());
        return;
      }
      reply_success(call, std::move(outcome.result));
      return;
    }
    std::string type = outcome.error_type.empty()
                           ? std::string(status_code_name(outcome.status.code()))
                           : outcome.error_type;
    reply_error(call, outcome.status.code(), type, outcome.status.message(), outcome.traceback);
  }

  Message base_reply(const CallPtr& call) const {
    Message reply = call->request;
    if (reply.date_create_message.empty()) reply.date_create_message = call->received_at;
    reply.reply_to.clear();
    // A request's other fields are not echoed; a reply adds the latency breakdown
    // (docs/protocol.md).
    reply.extensions = "{\"server\": ";
    json::append_quoted(reply.extensions, options_.consumer);
    if (call->time_queued >= 0) {
      reply.extensions += ", \"time_queued\": ";
      append_seconds(reply.extensions, call->time_queued);
    }
    if (call->time_executing >= 0) {
      reply.extensions += ", \"time_executing\": ";
      append_seconds(reply.extensions, call->time_executing);
    }
    reply.extensions += "}";
    reply.date_done_message = now_iso8601();
    return reply;
  }

  void reply_success(const CallPtr& call, std::string result) {
    Message reply = base_reply(call);
    reply.result = std::move(result);
    reply.exception_info.reset();
    auto encoded = call->codec->encode(reply);
    if (!encoded.is_ok()) {
      reply_error(call, StatusCode::kEncode, error_types::kEncode,
                  "the result cannot be encoded: " + encoded.status().message());
      return;
    }
    succeeded_.fetch_add(1);
    series(call).count(details::CallOutcome::kOk);
    finish(call, *encoded, false, {});
  }

  void reply_error(const CallPtr& call, StatusCode code, std::string_view type,
                   const std::string& message, const std::string& traceback = {},
                   const std::string& dead_letter_reason = {}) {
    (void)code;
    Message reply = base_reply(call);
    reply.result = "null";
    reply.exception_info = format_exception_info(type, message);
    reply.exception_type = std::string(type);
    reply.traceback = traceback;
    auto encoded = call->codec->encode(reply);
    if (!encoded.is_ok()) {
      reject(call, "the error reply cannot be encoded: " + encoded.status().message());
      return;
    }
    if (dead_letter_reason.empty()) {
      log::warn(kLog, failed_call_line(options_.queue, call->request, type, message));
      failed_.fetch_add(1);
      series(call).count(type == error_types::kTimeout ? details::CallOutcome::kTimeout
                                                       : details::CallOutcome::kError);
    } else {
      dead_lettered_.fetch_add(1);
      series(call).count(details::CallOutcome::kDeadLetter);
      log::warn(kLog, "dead-lettered request " + call->request.message_id +
                          trace_suffix(call->request.traceparent) + ": " + dead_letter_reason);
    }
    finish(call, *encoded, false, dead_letter_reason);
  }

  // Bad input: dead-letter it with the reason and answer the sender when its id is known.
  void reject(const CallPtr& call, const std::string& reason,
              std::string_view error_type = error_types::kDecode) {
    dead_lettered_.fetch_add(1);
    series(call).count(details::CallOutcome::kDeadLetter);
    std::string what = error_type == kSignatureError ? "an unauthenticated " : "a malformed ";
    log::warn(kLog, "dead-lettered " + what + std::string(flavour_name(call->delivery.flavour)) +
                        " request (" + call->delivery.token + "): " + reason);
    std::string payload;
    if (call->codec != nullptr && !call->request.message_id.empty()) {
      Message reply = base_reply(call);
      reply.result = "null";
      reply.exception_info = format_exception_info(error_type, reason);
      reply.exception_type = std::string(error_type);
      auto encoded = call->codec->encode(reply);
      if (encoded.is_ok()) payload = std::move(*encoded);
    }
    if (payload.empty()) {
      finish_raw(call, nullptr, reason);
      return;
    }
    finish(call, payload, false, reason);
  }

  // Stores and pushes the reply, signed when the request was authenticated; a push_only reply
  // (a stored result) keeps the signature it was stored with.
  void finish(const CallPtr& call, const std::string& payload, bool push_only,
              const std::string& dead_letter_reason, Signer::Signature stored = {}) {
    Signer::Signature sig =
        push_only ? std::move(stored)
                  : (call->authenticated ? signer_.sign(payload) : Signer::Signature{});
    ReplyView view(call->delivery.flavour, call->delivery.queue, call->request.message_id,
                   call->request.reply_to, payload, push_only, sig.signature, sig.key_id);
    finish_raw(call, &view, dead_letter_reason);
  }

  void finish_raw(const CallPtr& call, const ReplyView* reply, const std::string& reason) {
    executing_.fetch_sub(1);  // done running; the broker's slot is freed by finish itself
    FinishRequest req;
    req.reply = reply;
    req.dead_letter_reason = reason;
    auto self = shared_from_this();
    broker_->finish(call->delivery.view(), req, [self, call](const Status& s) {
      if (!s.is_ok()) {
        log::warn(kLog, "could not finish request " + call->request.message_id +
                            trace_suffix(call->request.traceparent) + " (" + call->delivery.token +
                            "), left for redelivery: " + s.to_string());
      }
      self->forget(call);
    });
  }

  void forget(const CallPtr& call) {
    std::lock_guard lock(calls_mutex_);
    calls_.erase(call->id);
    if (calls_.empty()) calls_cv_.notify_all();
  }

  // Keeps long calls' deliveries from being claimed by another consumer.
  void schedule_sweep() {
    auto period = std::max(options_.visibility_timeout / 3, std::chrono::milliseconds(20));
    sweeper_.expires_after(period);
    std::weak_ptr<Impl> weak = weak_from_this();
    sweeper_.async_wait([weak, period](const boost::system::error_code& ec) {
      if (ec) return;
      auto self = weak.lock();
      if (!self) return;
      std::vector<CallPtr> old;
      {
        std::lock_guard lock(self->calls_mutex_);
        auto now = Clock::now();
        for (const auto& [id, call] : self->calls_) {
          if (now - call->started >= period) old.push_back(call);
        }
      }
      for (const CallPtr& call : old) self->broker_->touch(call->delivery.view());
      bool again = false;
      {
        std::lock_guard lock(self->state_mutex_);
        again = self->running_;
      }
      if (again) self->schedule_sweep();
    });
  }

  ServerOptions options_;
  std::shared_ptr<Broker> broker_;
  std::shared_ptr<Codec> python_codec_;
  std::shared_ptr<Codec> raw_codec_;
  std::shared_ptr<FunctionTable> functions_;
  ExecutorMap executors_;
  json::Limits limits_;
  Signer signer_;  // made by start() from options_.signing
  std::map<std::string, std::string, std::less<>> function_workers_;

  details::ServerMetrics metrics_;
  Clock::time_point started_at_{};
  std::string started_iso_;
  std::atomic<bool> announce_failing_{false};
  std::mutex broker_view_mutex_;
  std::optional<QueueStats> broker_view_;
  Clock::time_point broker_view_at_{};

  details::EventLoop loop_;
  asio::steady_timer sweeper_;
  asio::steady_timer announcer_;
  // Blocking broker reads that callers wait for (prpc.stats), kept off the broker's thread and
  // the loop.
  details::EventLoop ops_;
  // After the loop: closed (stop()) before the loop's io_context goes.
  std::shared_ptr<details::MetricsListener> metrics_listener_;

  mutable std::mutex state_mutex_;
  std::condition_variable stop_cv_;
  bool running_ = false;
  bool stop_requested_ = false;
  std::atomic<bool> abandoning_{false};

  mutable std::mutex calls_mutex_;
  std::condition_variable calls_cv_;
  std::unordered_map<std::uint64_t, CallPtr> calls_;
  std::unordered_map<std::string, CallPtr> running_ids_;  // "<flavour>:<message_id>" -> its run
  details::FunctionMetrics twin_sink_;  // where the answers to twins count: nowhere exported

  std::atomic<std::uint64_t> next_call_id_{0};
  std::atomic<std::uint64_t> received_{0};
  std::atomic<std::uint64_t> succeeded_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> dead_lettered_{0};
  std::atomic<std::uint64_t> deduplicated_{0};
  std::atomic<std::uint64_t> inlined_{0};
  std::atomic<std::uint64_t> executing_{0};  // delivered and not yet handed back to the broker
};

Server::Server(ServerOptions options, std::shared_ptr<Broker> broker,
               std::shared_ptr<Codec> python_codec, std::shared_ptr<Codec> raw_codec,
               std::shared_ptr<FunctionTable> functions, ExecutorMap executors)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(broker), std::move(python_codec),
                                   std::move(raw_codec), std::move(functions),
                                   std::move(executors))) {}

Server::~Server() { impl_->stop(std::chrono::milliseconds(0)); }

Status Server::start() { return impl_->start(); }
void Server::stop(std::chrono::milliseconds grace) { impl_->stop(grace); }
Status Server::run() { return impl_->run(); }
void Server::request_stop() noexcept { impl_->request_stop(); }
ServerStats Server::stats() const { return impl_->stats(); }
const ServerOptions& Server::options() const { return impl_->options(); }
std::uint16_t Server::metrics_port() const { return impl_->metrics_port(); }
std::string Server::metrics_text() const { return impl_->metrics_text(); }

}  // namespace prpc
