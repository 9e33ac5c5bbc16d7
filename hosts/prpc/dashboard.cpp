#include "dashboard.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <tuple>

#include "dashboard_assets.inc"
#include "dashboard_http.hpp"
#include "host_common.hpp"
#include "prpc/client.hpp"
#include "prpc/json.hpp"
#include "prpc/log.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/runtime.hpp"
#include "prpc/version.h"

namespace prpc::dashboard {
namespace {

using namespace prpc::host;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;
using Clock = std::chrono::system_clock;

constexpr std::string_view kProgram = "prpc";
constexpr std::string_view kCookie = "prpc_dashboard_token";
constexpr std::size_t kDeadLettersRead = 200;  // brokers list the oldest first
constexpr std::size_t kDeadLettersShown = 25;
constexpr std::size_t kPayloadShown = 400;
constexpr std::int64_t kDeadLettersRefreshMs = 10'000;
constexpr std::int64_t kRateWindowMs = 60'000;
constexpr std::int64_t kLatencyWindowMs = 300'000;
constexpr std::int64_t kChartSpanMs = 300'000;
constexpr std::int64_t kChartBinMs = 10'000;
constexpr std::size_t kMaxPendingActions = 16;
constexpr std::size_t kMaxPendingCalls = 64;
constexpr double kMaxCallTimeoutS = 120;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

// Constant time in the token's length: the comparison does not say how much of a guess matched.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

std::uint64_t u64(const rapidjson::Value& object, const char* key) {
  if (!object.IsObject()) return 0;
  auto it = object.FindMember(key);
  if (it == object.MemberEnd()) return 0;
  if (it->value.IsUint64()) return it->value.GetUint64();
  if (it->value.IsNumber() && it->value.GetDouble() > 0) {
    return static_cast<std::uint64_t>(it->value.GetDouble());
  }
  return 0;
}

double number(const rapidjson::Value& object, const char* key, double fallback = 0) {
  if (!object.IsObject()) return fallback;
  auto it = object.FindMember(key);
  return it != object.MemberEnd() && it->value.IsNumber() ? it->value.GetDouble() : fallback;
}

std::string text(const rapidjson::Value& object, const char* key) {
  if (!object.IsObject()) return {};
  auto it = object.FindMember(key);
  return it != object.MemberEnd() && it->value.IsString() ? it->value.GetString() : std::string();
}

const rapidjson::Value& member(const rapidjson::Value& object, const char* key) {
  static const rapidjson::Value kNull;
  if (!object.IsObject()) return kNull;
  auto it = object.FindMember(key);
  return it != object.MemberEnd() ? it->value : kNull;
}

void put(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void put_ms_or_null(Writer& w, std::optional<double> ms) {
  if (ms) {
    w.Double(*ms);
  } else {
    w.Null();
  }
}

// UTF-8 cut at a character boundary.
std::string cut(std::string_view s, std::size_t max) {
  if (s.size() <= max) return std::string(s);
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "...";
}

// A histogram's q-quantile in milliseconds, interpolated within its bucket (as the servers'
// own p50/p99); nullopt when it is empty.
std::optional<double> quantile_ms(const std::vector<double>& bounds,
                                  const std::vector<std::uint64_t>& counts, double q) {
  std::uint64_t total = 0;
  for (std::uint64_t c : counts) total += c;
  if (total == 0 || bounds.empty()) return std::nullopt;
  double rank = q * static_cast<double>(total);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0 && static_cast<double>(below + counts[i]) >= rank) {
      if (i >= bounds.size()) return bounds.back() * 1000;
      double lower = i == 0 ? 0 : bounds[i - 1];
      double within = (rank - static_cast<double>(below)) / static_cast<double>(counts[i]);
      return (lower + (bounds[i] - lower) * within) * 1000;
    }
    below += counts[i];
  }
  return bounds.back() * 1000;
}

// What the dashboard remembers of one server between two polls.
struct Seen {
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  std::vector<std::uint64_t> buckets;
};

// The calls all servers of a queue finished between two polls.
struct Point {
  std::int64_t t_ms = 0;
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  std::vector<std::uint64_t> buckets;
};

struct QueueState {
  std::string name;
  std::map<std::string, Seen> seen;
  std::deque<Point> history;
  std::vector<double> bounds;
  bool first_round = true;
  // The dead letters as last read (a JSON array), read again when their count changes.
  std::string dead_json = "[]";
  std::size_t dead_read = 0;
  std::int64_t dead_total = -1;
  std::int64_t dead_read_at_ms = 0;
};

class ActionPool {
 public:
  explicit ActionPool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~ActionPool() { stop(); }
  ActionPool(const ActionPool&) = delete;
  ActionPool& operator=(const ActionPool&) = delete;

  bool submit(std::function<void()> job) {
    std::lock_guard lock(mutex_);
    if (stopping_ || jobs_.size() >= kMaxPendingActions) return false;
    jobs_.push_back(std::move(job));
    cv_.notify_one();
    return true;
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

HttpResponse json_error(unsigned status, std::string_view message) {
  rapidjson::StringBuffer b;
  Writer w(b);
  w.StartObject();
  w.Key("error");
  put(w, message);
  w.EndObject();
  return {status, "application/json", b.GetString(), {}};
}

class Dashboard {
 public:
  Dashboard(Options options, Config config, PluginRegistry& registry,
            std::shared_ptr<Broker> broker)
      : options_(std::move(options)),
        config_(std::move(config)),
        registry_(registry),
        broker_(std::move(broker)),
        actions_(2) {
    for (const std::string& q : options_.queues) {
      queues_.push_back(std::make_unique<QueueState>());
      queues_.back()->name = q;
    }
    actions_on_ = !options_.token.empty() || options_.allow_actions;
    render();
  }
  ~Dashboard() { stop(); }
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  void start() {
    poller_ = std::thread([this] { poll_loop(); });
  }
  void stop() {
    {
      std::lock_guard lock(poll_mutex_);
      stopping_ = true;
    }
    poll_cv_.notify_all();
    if (poller_.joinable()) poller_.join();
    actions_.stop();
    // Calls still waiting end now (their requests get kCancelled answers).
    std::lock_guard lock(clients_mutex_);
    clients_.clear();
  }

  void set_loopback_only(bool on, std::string bound) {
    loopback_only_ = on;
    bound_ = std::move(bound);
  }

  void handle(const HttpRequest& r, const Reply& reply) {
    if (loopback_only_ && !host_allowed(r.host)) {
      reply(json_error(421, "unexpected Host header"));  // DNS rebinding
      return;
    }
    if (!options_.token.empty()) {
      std::string given = query_value(r.query, "token");
      if (r.method == "GET" && !given.empty() && same_secret(given, options_.token)) {
        // The first visit with ?token=: a cookie from now on, and the token off the address bar.
        HttpResponse to{303, "text/plain; charset=utf-8", "see /\n", {}};
        to.headers.emplace_back("Location", r.path.empty() ? "/" : r.path);
        to.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=" + options_.token +
                                                  "; Path=/; HttpOnly; SameSite=Strict");
        reply(std::move(to));
        return;
      }
      if (!authorized(r)) {
        HttpResponse no =
            r.path.starts_with("/api/")
                ? json_error(401, "this dashboard needs its token")
                : HttpResponse{401, "text/html; charset=utf-8", std::string(kUnauthorizedHtml), {}};
        no.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"prpc-dashboard\"");
        reply(std::move(no));
        return;
      }
    }
    if (r.method == "GET" || r.method == "HEAD") {
      get(r, reply);
    } else if (r.method == "POST") {
      post(r, reply);
    } else {
      reply(json_error(405, "only GET and POST"));
    }
  }

 private:
  bool authorized(const HttpRequest& r) const {
    std::string_view auth = r.authorization;
    if (auth.starts_with("Bearer ") && same_secret(auth.substr(7), options_.token)) return true;
    std::string cookie = cookie_value(r.cookie, kCookie);
    return !cookie.empty() && same_secret(cookie, options_.token);
  }

  // On a loopback address, only names of this machine: a page elsewhere cannot point a name of
  // its own at 127.0.0.1 and read the dashboard (DNS rebinding).
  bool host_allowed(std::string_view host) const {
    if (host.empty()) return true;  // HTTP/1.0
    std::string_view name = host;
    if (name.starts_with("[")) {
      name = name.substr(0, name.find(']') + 1);
    } else {
      name = name.substr(0, name.find(':'));
    }
    std::string_view bound_host = std::string_view(bound_).substr(0, bound_.rfind(':'));
    return name == "localhost" || name == "127.0.0.1" || name == "[::1]" || name == bound_host;
  }

  void get(const HttpRequest& r, const Reply& reply) {
    HttpResponse out;
    if (r.path == "/api/state") {
      std::lock_guard lock(state_mutex_);
      out.body = *state_;
    } else if (r.path == "/api/health") {
      out.body = "{\"ok\": true}";
    } else if (const Asset* a = find_asset(r.path)) {
      out.content_type = std::string(a->content_type);
      out.body = std::string(a->body);
      out.headers.emplace_back("Content-Security-Policy",
                               "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
      out.headers.emplace_back("Referrer-Policy", "no-referrer");
    } else {
      out = json_error(404, "no such page");
    }
    if (r.method == "HEAD") out.body.clear();
    reply(std::move(out));
  }

  void post(const HttpRequest& r, const Reply& reply) {
    if (r.path != "/api/call" && r.path != "/api/requeue") {
      reply(json_error(404, "no such action"));
      return;
    }
    if (!actions_on_) {
      reply(
          json_error(403, "actions are off: start the dashboard with --token or --allow-actions"));
      return;
    }
    // A JSON body needs a CORS preflight from another origin, which this server never grants.
    if (!r.content_type.starts_with("application/json")) {
      reply(json_error(415, "send application/json"));
      return;
    }
    rapidjson::Document body;
    body.Parse(r.body.c_str(), r.body.size());
    if (body.HasParseError() || !body.IsObject()) {
      reply(json_error(400, "the body is not a JSON object"));
      return;
    }
    std::string queue = text(body, "queue");
    if (std::none_of(queues_.begin(), queues_.end(),
                     [&](const auto& q) { return q->name == queue; })) {
      reply(json_error(400, "not a queue of this dashboard: '" + queue + "'"));
      return;
    }
    auto shared = std::make_shared<rapidjson::Document>(std::move(body));
    bool call = r.path == "/api/call";
    // Off the HTTP loop: a first call opens the queue's reply listener, and requeue blocks.
    bool queued = actions_.submit([this, shared, queue, call, reply] {
      if (call) {
        start_call(*shared, queue, reply);
      } else {
        reply(do_requeue(*shared, queue));
      }
    });
    if (!queued) reply(json_error(503, "too many actions in progress; try again"));
  }

  Result<Client*> client_for(const std::string& queue) {
    std::lock_guard lock(clients_mutex_);
    if (auto it = clients_.find(queue); it != clients_.end()) return it->second.get();
    std::string codec_name = config_.get_or("codec.raw", "rawjson");
    auto codec =
        registry_.make_codec(codec_name, options_under(config_, "codec.options." + codec_name));
    if (!codec.is_ok()) return codec.status();
    auto options = configured_client_options(config_, Flavour::kRaw);
    if (!options.is_ok()) return options.status();
    options->queue = queue;
    auto client = std::make_unique<Client>(std::move(*options), broker_, *codec);
    Client* raw = client.get();
    clients_.emplace(queue, std::move(client));
    return raw;
  }

  // Sends the call and returns: the reply comes from the client's thread, so no thread waits.
  void start_call(const rapidjson::Document& body, const std::string& queue, const Reply& reply) {
    HttpResponse refused = json_error(400, "");
    auto client = check_call(body, queue, refused);
    if (!client) {
      reply(std::move(refused));
      return;
    }
    auto [c, request, timeout] = std::move(*client);
    if (c->pending() >= kMaxPendingCalls) {
      reply(json_error(503, "too many calls in progress; try again"));
      return;
    }
    auto sent = std::chrono::steady_clock::now();
    c->call(std::move(request), timeout,
            [reply, sent](Result<Message> r) { reply(call_response(r, sent)); });
  }

  std::optional<std::tuple<Client*, Message, std::chrono::milliseconds>> check_call(
      const rapidjson::Document& body, const std::string& queue, HttpResponse& refused) {
    auto no = [&](HttpResponse r) {
      refused = std::move(r);
      return std::nullopt;
    };
    std::string func = text(body, "function");
    std::string args = text(body, "args");
    std::string kwargs = text(body, "kwargs");
    if (args.find_first_not_of(" \t\r\n") == std::string::npos) args = "[]";
    if (kwargs.find_first_not_of(" \t\r\n") == std::string::npos) kwargs = "{}";
    if (func.empty()) return no(json_error(400, "name a function"));
    for (const auto& [what, value, type] :
         {std::tuple{"arguments", args, json::Type::kArray},
          std::tuple{"keyword arguments", kwargs, json::Type::kObject}}) {
      Status valid = json::validate(value, {});
      if (!valid.is_ok()) return no(json_error(400, std::string(what) + ": " + valid.message()));
      if (json::peek_type(value) != type) {
        return no(json_error(
            400, std::string(what) + " must be a JSON " + std::string(json::type_name(type))));
      }
    }
    double timeout_s = std::clamp(number(body, "timeout_s", 30), 0.1, kMaxCallTimeoutS);
    auto client = client_for(queue);
    if (!client.is_ok()) return no(json_error(500, client.status().message()));
    Message request;
    request.func_name = func;
    request.func_args = args;
    request.func_kwargs = kwargs;
    return std::tuple{*client, std::move(request),
                      std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000))};
  }

  static HttpResponse call_response(const Result<Message>& r,
                                    std::chrono::steady_clock::time_point sent) {
    double round_trip_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
    rapidjson::StringBuffer b;
    Writer w(b);
    w.StartObject();
    w.Key("round_trip_ms");
    w.Double(round_trip_ms);
    if (!r.is_ok()) {
      w.Key("ok");
      w.Bool(false);
      w.Key("error");
      put(w, r.status().message());
      w.Key("code");
      put(w, r.status().code() == StatusCode::kTimeout ? "timeout" : "failed");
    } else {
      w.Key("ok");
      w.Bool(!r->failed());
      if (r->failed()) {
        w.Key("error");
        put(w, *r->exception_info);
        w.Key("traceback");
        put(w, r->traceback);
      } else {
        w.Key("result");
        put(w, r->result);
      }
      w.Key("server");
      put(w, json::get_string_member(r->extensions, "server").value_or(""));
      for (const char* key : {"time_queued", "time_executing"}) {
        auto v = json::get_member(r->extensions, key);
        w.Key(key);
        if (v && json::peek_type(*v) == json::Type::kNumber) {
          w.Double(std::strtod(std::string(*v).c_str(), nullptr));
        } else {
          w.Null();
        }
      }
    }
    w.EndObject();
    return {200, "application/json", b.GetString(), {}};
  }

  HttpResponse do_requeue(const rapidjson::Document& body, const std::string& queue) {
    std::vector<std::string> ids;
    const rapidjson::Value& list = member(body, "ids");
    if (list.IsArray()) {
      for (const auto& v : list.GetArray()) {
        if (v.IsString()) ids.emplace_back(v.GetString());
      }
    }
    if (ids.empty() && !member(body, "all").IsTrue()) {
      return json_error(400, "name the dead letters (ids) or ask for all of them (all: true)");
    }
    std::size_t count = 0;
    std::vector<std::string> missing;
    if (ids.empty()) {
      auto r = broker_->requeue_dead_letters(queue, {});
      if (!r.is_ok()) return requeue_failed(r.status(), count);
      count = *r;
    } else {
      for (const std::string& id : ids) {
        auto r = broker_->requeue_dead_letters(queue, std::span<const std::string>(&id, 1));
        if (!r.is_ok()) return requeue_failed(r.status(), count);
        if (*r == 0) missing.push_back(id);
        count += *r;
      }
    }
    dead_refresh_ = true;
    wake_poller();  // the page shows the change at its next refresh, not a poll later
    rapidjson::StringBuffer b;
    Writer w(b);
    w.StartObject();
    w.Key("requeued");
    w.Uint64(count);
    w.Key("not_found");
    w.StartArray();
    for (const auto& id : missing) put(w, id);
    w.EndArray();
    w.EndObject();
    return {200, "application/json", b.GetString(), {}};
  }

  HttpResponse requeue_failed(const Status& st, std::size_t done) {
    if (st.code() == StatusCode::kUnimplemented) {
      requeue_supported_ = false;
      return json_error(501, st.message());
    }
    return json_error(502, done == 0
                               ? st.message()
                               : "requeued " + std::to_string(done) + ", then: " + st.message());
  }

  void wake_poller() {
    {
      std::lock_guard lock(poll_mutex_);
      wake_ = true;
    }
    poll_cv_.notify_all();
  }

  void poll_loop() {
    std::unique_lock lock(poll_mutex_);
    while (!stopping_) {
      lock.unlock();
      poll_once();
      lock.lock();
      poll_cv_.wait_for(lock, options_.poll, [this] { return stopping_ || wake_; });
      wake_ = false;
    }
  }

  // One round: every queue's numbers from the broker (blocking calls, on this thread only).
  void poll_once() {
    if (!connected_) {
      Status st = broker_->connect();
      if (!st.is_ok()) {
        broker_error_ = st.message();
        render();
        return;
      }
      connected_ = true;
      broker_error_.clear();
    }
    if (!requeue_probed_ && !queues_.empty()) {
      // An id no dead letter has: brokers that can requeue skip it, the others say they cannot.
      std::string none = "0-0";
      auto r = broker_->requeue_dead_letters(queues_.front()->name,
                                             std::span<const std::string>(&none, 1));
      if (r.is_ok() || r.status().code() == StatusCode::kUnimplemented) {
        requeue_probed_ = true;
        requeue_supported_ = r.is_ok();
        if (!r.is_ok()) requeue_reason_ = r.status().message();
      }
    }
    std::vector<std::string> rendered;
    refresh_dead_ = dead_refresh_.exchange(false);
    for (auto& q : queues_) rendered.push_back(poll_queue(*q));
    std::lock_guard lock(state_mutex_);
    queue_json_ = std::move(rendered);
    render_locked();
  }

  std::string poll_queue(QueueState& q) {
    rapidjson::StringBuffer b;
    Writer w(b);
    std::int64_t now = now_ms();
    w.StartObject();
    w.Key("name");
    put(w, q.name);

    auto stats = broker_->queue_stats(q.name);
    w.Key("error");
    if (stats.is_ok()) {
      w.Null();
    } else {
      put(w, stats.status().message());
    }
    w.Key("stats");
    if (stats.is_ok()) {
      w.StartObject();
      w.Key("waiting");
      w.Int64(stats->length);
      w.Key("pending");
      w.Int64(stats->pending);
      w.Key("consumers");
      w.Int64(stats->consumers);
      w.Key("dead_letters");
      w.Int64(stats->dead_letters);
      w.EndObject();
    } else {
      w.Null();
    }

    // Servers, their functions, and this round's point of the rate and latency history.
    auto listed = broker_->list_servers(q.name);
    rapidjson::Document servers;
    if (listed.is_ok()) servers.Parse(listed->c_str(), listed->size());
    bool have_servers = listed.is_ok() && !servers.HasParseError() && servers.IsArray();
    w.Key("servers_error");
    if (have_servers) {
      w.Null();
    } else if (!listed.is_ok()) {
      put(w, listed.status().message());
    } else {
      put(w, "the broker's list of servers is not understood");
    }
    Point point;
    point.t_ms = now;
    struct Fn {
      std::string worker, signature, doc;
      std::uint64_t calls = 0, ok = 0, errors = 0, timeouts = 0, dead_letters = 0;
      double p50 = 0, p99 = 0, weight = 0;
    };
    std::map<std::string, Fn> functions;
    std::map<std::string, Seen> seen_now;
    w.Key("servers");
    w.StartArray();
    if (have_servers) {
      for (const auto& s : servers.GetArray()) {
        if (!s.IsObject()) continue;
        const rapidjson::Value& info = member(s, "info");
        std::string id = text(s, "id");
        w.StartObject();
        w.Key("id");
        put(w, id);
        w.Key("alive");
        w.Bool(member(s, "alive").IsBool() ? member(s, "alive").GetBool() : true);
        w.Key("age_ms");
        w.Double(number(s, "age_ms"));
        for (const char* key : {"host", "version", "started_at"}) {
          w.Key(key);
          put(w, text(info, key));
        }
        w.Key("pid");
        w.Uint64(u64(info, "pid"));
        w.Key("uptime_s");
        w.Double(number(info, "uptime_s"));
        w.Key("in_flight");
        w.Uint64(u64(info, "in_flight"));
        w.Key("workers");
        w.StartObject();
        if (member(info, "workers").IsObject()) {
          for (const auto& m : member(info, "workers").GetObject()) {
            if (!m.value.IsNumber()) continue;
            w.Key(m.name.GetString());
            w.Uint64(u64(member(info, "workers"), m.name.GetString()));
          }
        }
        w.EndObject();
        const rapidjson::Value& totals = member(info, "totals");
        w.Key("totals");
        w.StartObject();
        for (const char* key : {"received", "ok", "error", "timeout", "dead_letter", "redeliveries",
                                "deduplicated"}) {
          w.Key(key);
          w.Uint64(u64(totals, key));
        }
        w.EndObject();
        w.EndObject();

        // This server's progress since the last round.
        Seen now_seen;
        now_seen.errors =
            u64(totals, "error") + u64(totals, "timeout") + u64(totals, "dead_letter");
        now_seen.calls = u64(totals, "ok") + now_seen.errors;
        const rapidjson::Value& latency = member(info, "latency");
        if (member(latency, "bounds_s").IsArray() && q.bounds.empty()) {
          for (const auto& v : member(latency, "bounds_s").GetArray()) {
            if (v.IsNumber()) q.bounds.push_back(v.GetDouble());
          }
        }
        if (member(latency, "counts").IsArray()) {
          for (const auto& v : member(latency, "counts").GetArray()) {
            now_seen.buckets.push_back(v.IsUint64() ? v.GetUint64() : 0);
          }
        }
        auto before = q.seen.find(id);
        if (before == q.seen.end() && q.first_round) {
          // Calls made before the dashboard started are not this minute's.
        } else {
          Seen base = before == q.seen.end() ? Seen{} : before->second;
          // Counters that went back mean the server restarted under the same id.
          if (now_seen.calls < base.calls) base = Seen{};
          point.calls += now_seen.calls - base.calls;
          point.errors += now_seen.errors >= base.errors ? now_seen.errors - base.errors : 0;
          if (point.buckets.size() < now_seen.buckets.size()) {
            point.buckets.resize(now_seen.buckets.size());
          }
          for (std::size_t i = 0; i < now_seen.buckets.size(); ++i) {
            std::uint64_t was = i < base.buckets.size() ? base.buckets[i] : 0;
            if (now_seen.buckets[i] >= was) point.buckets[i] += now_seen.buckets[i] - was;
          }
        }
        seen_now[id] = std::move(now_seen);

        // Functions merged over servers: counts add up; percentiles are the busiest server's.
        if (member(info, "functions").IsArray()) {
          for (const auto& f : member(info, "functions").GetArray()) {
            std::string name = text(f, "name");
            if (name.empty()) continue;
            Fn& fn = functions[name];
            if (fn.signature.empty()) fn.signature = text(f, "signature");
            if (fn.worker.empty()) fn.worker = text(f, "worker");
            if (fn.doc.empty()) fn.doc = text(f, "doc");
            std::uint64_t calls = u64(f, "calls");
            fn.calls += calls;
            fn.ok += u64(f, "ok");
            fn.errors += u64(f, "errors");
            fn.timeouts += u64(f, "timeouts");
            fn.dead_letters += u64(f, "dead_letters");
            if (static_cast<double>(calls) >= fn.weight) {
              fn.weight = static_cast<double>(calls);
              fn.p50 = number(f, "p50_ms");
              fn.p99 = number(f, "p99_ms");
            }
          }
        }
      }
    }
    w.EndArray();
    if (have_servers) {
      q.seen = std::move(seen_now);
      if (!q.first_round) q.history.push_back(std::move(point));
      q.first_round = false;
    }
    while (!q.history.empty() && q.history.front().t_ms < now - kLatencyWindowMs - kChartBinMs) {
      q.history.pop_front();
    }

    w.Key("functions");
    w.StartArray();
    for (const auto& [name, fn] : functions) {
      w.StartObject();
      w.Key("name");
      put(w, name);
      w.Key("worker");
      put(w, fn.worker);
      w.Key("signature");
      put(w, fn.signature);
      w.Key("doc");
      put(w, fn.doc);
      w.Key("calls");
      w.Uint64(fn.calls);
      w.Key("ok");
      w.Uint64(fn.ok);
      w.Key("errors");
      w.Uint64(fn.errors);
      w.Key("timeouts");
      w.Uint64(fn.timeouts);
      w.Key("dead_letters");
      w.Uint64(fn.dead_letters);
      w.Key("p50_ms");
      w.Double(fn.p50);
      w.Key("p99_ms");
      w.Double(fn.p99);
      w.EndObject();
    }
    w.EndArray();

    render_rates(w, q, now);
    render_dead_letters(w, q, stats.is_ok() ? stats->dead_letters : -1, now);
    w.EndObject();
    return b.GetString();
  }

  // Calls/s over the last minute, p50/p99 over the last five, and the chart's bins.
  void render_rates(Writer& w, const QueueState& q, std::int64_t now) const {
    std::uint64_t calls = 0, errors = 0;
    std::vector<std::uint64_t> buckets;
    auto add = [](std::vector<std::uint64_t>& to, const std::vector<std::uint64_t>& from) {
      if (to.size() < from.size()) to.resize(from.size());
      for (std::size_t i = 0; i < from.size(); ++i) to[i] += from[i];
    };
    for (const Point& p : q.history) {
      if (p.t_ms > now - kRateWindowMs) {
        calls += p.calls;
        errors += p.errors;
      }
      if (p.t_ms > now - kLatencyWindowMs) add(buckets, p.buckets);
    }
    // Until a minute has passed, the rate is over the time the dashboard has watched.
    double span_s =
        q.history.empty()
            ? 1
            : std::max<double>(
                  1, static_cast<double>(std::min<std::int64_t>(
                         kRateWindowMs, now - q.history.front().t_ms + options_.poll.count())) /
                         1000);
    w.Key("rate");
    w.StartObject();
    w.Key("calls_per_s");
    w.Double(static_cast<double>(calls) / span_s);
    w.Key("errors_per_s");
    w.Double(static_cast<double>(errors) / span_s);
    w.Key("p50_ms");
    put_ms_or_null(w, quantile_ms(q.bounds, buckets, 0.5));
    w.Key("p99_ms");
    put_ms_or_null(w, quantile_ms(q.bounds, buckets, 0.99));
    w.EndObject();

    w.Key("series");
    w.StartArray();
    std::int64_t first = (now - kChartSpanMs) / kChartBinMs * kChartBinMs + kChartBinMs;
    for (std::int64_t start = first; start <= now; start += kChartBinMs) {
      std::uint64_t n = 0;
      std::vector<std::uint64_t> bin;
      for (const Point& p : q.history) {
        if (p.t_ms >= start && p.t_ms < start + kChartBinMs) {
          n += p.calls;
          add(bin, p.buckets);
        }
      }
      double width_s = static_cast<double>(std::min(kChartBinMs, now - start + 1)) / 1000;
      w.StartObject();
      w.Key("t");
      w.Int64(start);
      w.Key("calls_per_s");
      w.Double(static_cast<double>(n) / std::max(width_s, 1.0));
      w.Key("p50_ms");
      put_ms_or_null(w, quantile_ms(q.bounds, bin, 0.5));
      w.Key("p99_ms");
      put_ms_or_null(w, quantile_ms(q.bounds, bin, 0.99));
      w.EndObject();
    }
    w.EndArray();
  }

  // Payloads can be large: read again only when the count changed, or every 10 s (a requeue
  // by someone else keeps the count when a new letter comes in).
  void render_dead_letters(Writer& w, QueueState& q, std::int64_t total, std::int64_t now) {
    if (refresh_dead_ || total != q.dead_total ||
        now - q.dead_read_at_ms >= kDeadLettersRefreshMs) {
      rapidjson::StringBuffer b;
      Writer lw(b);
      lw.StartArray();
      bool ok = true;
      std::size_t read = 0;
      if (total != 0) {
        auto letters = broker_->dead_letters(q.name, kDeadLettersRead);
        ok = letters.is_ok();
        if (ok) {
          read = letters->size();
          std::size_t shown = 0;
          for (auto it = letters->rbegin(); it != letters->rend() && shown < kDeadLettersShown;
               ++it, ++shown) {
            write_dead_letter(lw, *it);
          }
        }
      }
      lw.EndArray();
      if (ok) {
        q.dead_json = b.GetString();
        q.dead_read = read;
        q.dead_total = total;
        q.dead_read_at_ms = now;
      }
    }
    w.Key("dead_letters");
    w.RawValue(q.dead_json.c_str(), q.dead_json.size(), rapidjson::kArrayType);
    w.Key("dead_letters_read");
    w.Uint64(q.dead_read);
  }

  static void write_dead_letter(Writer& w, const DeadLetter& d) {
    w.StartObject();
    w.Key("id");
    put(w, d.id);
    w.Key("flavour");
    put(w, flavour_name(d.flavour));
    w.Key("reason");
    put(w, d.reason);
    json::Limits small{64, d.payload.size() + 1};
    w.Key("message_id");
    put(w, json::get_string_member(d.payload, "message_id", small).value_or(""));
    w.Key("function");
    put(w, json::get_string_member(d.payload, "func_name", small).value_or(""));
    w.Key("payload");
    put(w, cut(d.payload, kPayloadShown));
    w.EndObject();
  }

  void render() {
    std::lock_guard lock(state_mutex_);
    render_locked();
  }

  void render_locked() {
    rapidjson::StringBuffer b;
    Writer w(b);
    w.StartObject();
    w.Key("version");
    put(w, PRPC_VERSION_STRING);
    w.Key("now_ms");
    w.Int64(now_ms());
    w.Key("poll_ms");
    w.Int64(options_.poll.count());
    w.Key("broker");
    w.StartObject();
    w.Key("type");
    put(w, config_.get_or("broker.type", "redis"));
    w.Key("connected");
    w.Bool(connected_ && broker_error_.empty());
    w.Key("error");
    if (broker_error_.empty()) {
      w.Null();
    } else {
      put(w, broker_error_);
    }
    w.EndObject();
    w.Key("actions");
    w.StartObject();
    w.Key("enabled");
    w.Bool(actions_on_);
    w.Key("reason");
    put(w,
        actions_on_ ? "" : "actions are off: start the dashboard with --token or --allow-actions");
    w.Key("requeue");
    w.Bool(actions_on_ && requeue_supported_);
    w.Key("requeue_reason");
    put(w, !actions_on_ ? "actions are off"
           : requeue_supported_
               ? ""
               : (requeue_reason_.empty() ? "this broker cannot requeue dead letters"
                                          : requeue_reason_));
    w.EndObject();
    w.Key("queues");
    w.StartArray();
    for (std::size_t i = 0; i < queues_.size(); ++i) {
      if (i < queue_json_.size()) {
        w.RawValue(queue_json_[i].c_str(), queue_json_[i].size(), rapidjson::kObjectType);
      } else {
        w.StartObject();
        w.Key("name");
        put(w, queues_[i]->name);
        w.Key("error");
        if (broker_error_.empty()) {
          w.Null();
        } else {
          put(w, broker_error_);
        }
        w.Key("loading");
        w.Bool(broker_error_.empty());
        w.EndObject();
      }
    }
    w.EndArray();
    w.EndObject();
    state_ = std::make_shared<const std::string>(b.GetString());
  }

  struct Asset {
    std::string_view path;
    std::string_view content_type;
    std::string_view body;
  };
  static const Asset* find_asset(std::string_view path) {
    static const Asset kAssets[] = {
        {"/", "text/html; charset=utf-8", kIndexHtml},
        {"/index.html", "text/html; charset=utf-8", kIndexHtml},
        {"/app.js", "text/javascript; charset=utf-8", kAppJs},
        {"/style.css", "text/css; charset=utf-8", kStyleCss},
        {"/favicon.svg", "image/svg+xml", kFaviconSvg},
    };
    for (const Asset& a : kAssets) {
      if (a.path == path) return &a;
    }
    return nullptr;
  }

  Options options_;
  Config config_;
  PluginRegistry& registry_;
  std::shared_ptr<Broker> broker_;
  std::vector<std::unique_ptr<QueueState>> queues_;
  bool actions_on_ = false;
  bool loopback_only_ = false;
  std::string bound_;

  // The poller's own (only its thread touches them) but for the flags the state reads.
  std::atomic<bool> connected_{false};
  bool requeue_probed_ = false;
  std::atomic<bool> requeue_supported_{true};
  std::string requeue_reason_;
  std::string broker_error_;
  std::atomic<bool> dead_refresh_{false};  // set by a requeue
  bool refresh_dead_ = false;              // this round's copy of it

  std::mutex poll_mutex_;
  std::condition_variable poll_cv_;
  bool stopping_ = false;
  bool wake_ = false;
  std::thread poller_;

  std::mutex state_mutex_;
  std::vector<std::string> queue_json_;
  std::shared_ptr<const std::string> state_;

  std::mutex clients_mutex_;
  std::map<std::string, std::unique_ptr<Client>> clients_;
  ActionPool actions_;
};

}  // namespace

int run(const Options& given, const std::string& config_file,
        const std::vector<std::string>& sets) {
  auto config = load_config(config_file, sets);
  if (!config.is_ok()) return fail(kProgram, kExitConfig, config.status());
  auto level = log::parse_level(config->get_or("log.level", "warn"));
  log::set_level(level.value_or(log::Level::kWarn));
  PluginRegistry registry;
  if (Status st = configure_plugins(registry, *config); !st.is_ok()) {
    return fail(kProgram, kExitPlugin, st);
  }
  auto broker = make_configured_broker(registry, *config);
  if (!broker.is_ok()) return fail(kProgram, setup_exit_code(broker.status()), broker.status());

  Options options = given;
  if (options.queues.empty()) options.queues.push_back(config->get_or("queue.name", "task_prpc"));
  if (options.token.empty()) {
    if (const char* t = std::getenv("PRPC_DASHBOARD_TOKEN"); t != nullptr) options.token = t;
  }

  // The token goes into a cookie as it is: characters a cookie value may hold, and no fewer
  // than a guess would need.
  for (char c : options.token) {
    if (c <= ' ' || c > '~' || c == ';' || c == ',' || c == '"' || c == '\\') {
      return fail(kProgram, kExitUsage,
                  "the dashboard's token may hold printable ASCII but for spaces, ; , \" and \\");
    }
  }
  if (!options.token.empty() && options.token.size() < 8) {
    return fail(kProgram, kExitUsage, "the dashboard's token is shorter than 8 characters");
  }

  boost::asio::io_context io(1);
  Dashboard dashboard(options, *config, registry, *broker);
  auto server = HttpServer::start(
      io, options.listen, HttpLimits{},
      [&dashboard](const HttpRequest& r, Reply reply) { dashboard.handle(r, reply); });
  if (!server.is_ok()) return fail(kProgram, kExitConfig, server.status());
  dashboard.set_loopback_only((*server)->loopback(), (*server)->address());
  dashboard.start();
  std::cout << "prpc dashboard: serving http://" << (*server)->address() << "/" << std::endl;

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    (*server)->close();
    io.stop();
  });
  io.run();
  dashboard.stop();
  return kExitOk;
}

}  // namespace prpc::dashboard
