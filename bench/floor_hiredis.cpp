// The hiredis floor (see floor_hiredis.hpp). Built twice: into redis_call_bench, which runs it
// beside PRPC, and alone as floor_hiredis (PRPC_FLOOR_MAIN).
#include "floor_hiredis.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <thread>

namespace prpc::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct ContextFree {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;
struct ReplyFree {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

ContextPtr connect(const FloorOptions& o) {
  ContextPtr c(redisConnect(o.host.c_str(), o.port));
  if (!c || c->err != 0) throw std::runtime_error("floor: cannot connect to Redis");
  return c;
}

void append(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
}

ReplyPtr next_reply(redisContext* c) {
  void* r = nullptr;
  if (redisGetReply(c, &r) != REDIS_OK || r == nullptr) {
    throw std::runtime_error(std::string("floor: Redis failed: ") + c->errstr);
  }
  return ReplyPtr(static_cast<redisReply*>(r));
}

// Reads requests in batches and answers each on the caller's list, pipelined.
class FloorServer {
 public:
  FloorServer(const FloorOptions& o, std::string stream) : stream_(std::move(stream)) {
    ContextPtr c = connect(o);
    append(c.get(), {"XGROUP", "CREATE", stream_, "floor", "$", "MKSTREAM"});
    next_reply(c.get());
    thread_ = std::thread([this, c = std::move(c)]() mutable { serve(c.get()); });
  }
  ~FloorServer() {
    stop_ = true;
    thread_.join();
  }

 private:
  void serve(redisContext* c) {
    while (!stop_) {
      append(c, {"XREADGROUP", "GROUP", "floor", "server", "COUNT", "128", "BLOCK", "100", "NOACK",
                 "STREAMS", stream_, ">"});
      ReplyPtr r = next_reply(c);
      if (r->type != REDIS_REPLY_ARRAY) continue;  // timeout: nil
      std::size_t answers = 0;
      for (std::size_t s = 0; s < r->elements; ++s) {
        const redisReply* entries = r->element[s]->element[1];
        for (std::size_t i = 0; i < entries->elements; ++i) {
          const redisReply* fields = entries->element[i]->element[1];
          // fields: reply <list> message <payload>
          std::string list(fields->element[1]->str, fields->element[1]->len);
          std::string payload(fields->element[3]->str, fields->element[3]->len);
          append(c, {"LPUSH", list, payload});
          ++answers;
        }
      }
      for (std::size_t i = 0; i < answers; ++i) next_reply(c);
    }
  }

  std::string stream_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class FloorCaller {
 public:
  FloorCaller(const FloorOptions& o, std::string stream, std::string list)
      : c_(connect(o)),
        stream_(std::move(stream)),
        list_(std::move(list)),
        pipelined_(o.pipelined) {}

  void call(const std::string& payload) {
    append(c_.get(), {"XADD", stream_, "*", "reply", list_, "message", payload});
    if (!pipelined_) next_reply(c_.get());
    append(c_.get(), {"BLPOP", list_, "10"});
    if (pipelined_) next_reply(c_.get());
    ReplyPtr r = next_reply(c_.get());
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
      throw std::runtime_error("floor: no reply within 10 s");
    }
  }

 private:
  ContextPtr c_;
  std::string stream_;
  std::string list_;
  bool pipelined_;
};

std::string run_id() {
  std::random_device rd;
  return std::to_string(rd());
}

}  // namespace

LatencyStats summarise(std::vector<double> samples) {
  LatencyStats s;
  s.calls = samples.size();
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    std::size_t i = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1));
    return samples[i];
  };
  s.p50_us = at(0.50);
  s.p99_us = at(0.99);
  s.mean_us =
      std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(samples.size());
  return s;
}

struct Floor::Impl {
  FloorOptions options;
  std::string id = run_id();
  std::string stream = "floor_requests_" + id;
  FloorServer server{options, stream};
  explicit Impl(const FloorOptions& o) : options(o) {}
  ~Impl() {
    try {
      ContextPtr c = connect(options);
      append(c.get(), {"DEL", stream});
      next_reply(c.get());
    } catch (...) {  // NOLINT(bugprone-empty-catch): best-effort cleanup
    }
  }
};

Floor::Floor(const FloorOptions& options) : impl_(new Impl(options)) {}
Floor::~Floor() { delete impl_; }

LatencyStats Floor::sequential(int calls, int warmup) {
  FloorCaller caller(impl_->options, impl_->stream, "floor_reply_" + impl_->id + "_seq");
  const std::string payload = R"({"func_name": "noop", "func_args": [], "message_id": "x"})";
  for (int i = 0; i < warmup; ++i) caller.call(payload);
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    auto t0 = Clock::now();
    caller.call(payload);
    samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return summarise(std::move(samples));
}

double Floor::concurrent(int callers, std::chrono::milliseconds duration, std::size_t* count) {
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> calls{0};
  std::vector<std::thread> threads;
  // Callers connect before the window opens.
  std::vector<std::unique_ptr<FloorCaller>> conns;
  for (int t = 0; t < callers; ++t) {
    conns.push_back(std::make_unique<FloorCaller>(
        impl_->options, impl_->stream, "floor_reply_" + impl_->id + "_" + std::to_string(t)));
  }
  auto start = Clock::now();
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      const std::string payload = R"({"func_name": "noop", "func_args": [], "message_id": "x"})";
      while (!stop.load(std::memory_order_relaxed)) {
        conns[static_cast<std::size_t>(t)]->call(payload);
        calls.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(duration);  // the measuring window
  std::size_t in_window = calls.load();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  for (auto& t : threads) t.join();
  if (count != nullptr) *count = in_window;
  return static_cast<double>(in_window) / seconds;
}

FloorResult run_floor(const FloorOptions& o) {
  Floor floor(o);
  FloorResult result;
  result.sequential = floor.sequential(o.sequential_calls, o.warmup_calls);
  result.calls_per_second = floor.concurrent(o.callers, o.duration, &result.concurrent_calls);
  return result;
}

}  // namespace prpc::bench

#ifdef PRPC_FLOOR_MAIN
#include <cstdio>
#include <cstdlib>

#include "redis_server.hpp"

// floor_hiredis [--port N] [--pipelined]: against a running Redis, or a private redis-server.
int main(int argc, char** argv) {
  prpc::bench::FloorOptions o;
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--pipelined") == 0) o.pipelined = true;
  }
  std::unique_ptr<prpc::testing::RedisServer> own;
  if (port == 0) {
    own = std::make_unique<prpc::testing::RedisServer>();
    port = own->port();
  }
  o.port = port;
  auto r = prpc::bench::run_floor(o);
  std::printf("hiredis floor (%s): sequential p50 %.1f us  p99 %.1f us  (%zu calls)\n",
              o.pipelined ? "XADD+BLPOP pipelined" : "XADD, then BLPOP", r.sequential.p50_us,
              r.sequential.p99_us, r.sequential.calls);
  std::printf("hiredis floor: %d callers: %.0f calls/s (%zu calls)\n", o.callers,
              r.calls_per_second, r.concurrent_calls);
  return 0;
}
#endif
