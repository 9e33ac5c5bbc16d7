// PRPC over Redis against the hiredis floor, in the same run on the same Redis: a prpc::Client
// (core engine + the Redis broker plugin + the raw JSON codec) calling a prpc-host process that
// serves functions_example on a thread executor. Prints sequential p50/p99 latency and the
// throughput of 64 concurrent callers for both, and how PRPC compares with the targets
// (p50 within 1.5x of the floor, throughput at least 60% of it).
//
// The machine is shared, so the load changes under the benchmark: the systems are measured in
// alternating rounds and each figure is the median over the rounds.
//
//   redis_call_bench [--function noop|ping] [--rounds R] [--calls N] [--duration-ms D]
//                    [--callers C] [--workers W] [--port REDIS_PORT] [--skip-floor]
//                    [--timeout-ms T (0: calls without a client-side timeout)] [--log-level L]
#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "floor_hiredis.hpp"
#include "prpc/client.hpp"
#include "prpc/log.hpp"
#include "prpc/plugin_loader.hpp"
#include "redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using prpc::bench::LatencyStats;

struct Args {
  std::string function = "noop";
  int rounds = 5;
  int calls = 2000;
  int warmup = 200;
  int duration_ms = 2000;
  int callers = 64;
  int workers = 4;
  int port = 0;
  int timeout_ms = 30000;
  bool skip_floor = false;
  std::string log_level = "warn";
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--function")
      a.function = value();
    else if (k == "--calls")
      a.calls = std::atoi(value().c_str());
    else if (k == "--rounds")
      a.rounds = std::max(1, std::atoi(value().c_str()));
    else if (k == "--duration-ms")
      a.duration_ms = std::atoi(value().c_str());
    else if (k == "--callers")
      a.callers = std::atoi(value().c_str());
    else if (k == "--workers")
      a.workers = std::atoi(value().c_str());
    else if (k == "--port")
      a.port = std::atoi(value().c_str());
    else if (k == "--timeout-ms")
      a.timeout_ms = std::atoi(value().c_str());
    else if (k == "--skip-floor")
      a.skip_floor = true;
    else if (k == "--log-level")
      a.log_level = value();
    else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

template <typename T>
T must(prpc::Result<T> r, const char* what) {
  if (!r.is_ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

prpc::testing::ChildProcess start_host(const Args& a, const prpc::testing::TempDir& dir,
                                       const std::string& url, const std::string& queue) {
  auto config = dir.path() / "host.toml";
  std::ofstream out(config);
  out << "[log]\nlevel = \"" << a.log_level << "\"\n"
      << "[broker]\ntype = \"redis\"\nurl = \"" << url << "\"\n"
      << "[queue]\nname = \"" << queue << "\"\n"
      << "[codec]\npython = \"none\"\nraw = \"rawjson\"\n"
      << "[server]\nmax_in_flight = " << std::max(64, a.callers * 2) << "\nbatch_size = 64\n"
      << "[executors.thread]\nworkers = " << a.workers << "\n"
      << "[functions]\nplugins = [\"example\"]\n";
  out.close();
  auto host = prpc::testing::ChildProcess::start(
      {PRPC_BENCH_HOST, "--config", config.string(), "--log-level", "info"},
      dir.path() / "host.log");
  bool up = prpc::testing::wait_until(
      [&] { return !host.running() || host.output().find("serving queue") != std::string::npos; },
      20s);
  if (!up || !host.running()) {
    std::fprintf(stderr, "prpc-host did not start:\n%s\n", host.output().c_str());
    std::exit(1);
  }
  return host;
}

}  // namespace

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Series {
  std::vector<double> p50, p99, rate;
  void add(const LatencyStats& s) {
    p50.push_back(s.p50_us);
    p99.push_back(s.p99_us);
  }
};

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  prpc::log::set_level(prpc::log::parse_level(a.log_level).value_or(prpc::log::Level::kWarn));
  std::unique_ptr<prpc::testing::RedisServer> own_redis;
  int port = a.port;
  if (port == 0) {
    own_redis = std::make_unique<prpc::testing::RedisServer>();
    port = own_redis->port();
  }
  std::string url = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  std::printf("Redis %s, %u cores, %d rounds of %d sequential calls and %d ms with %d callers\n",
              url.c_str(), std::thread::hardware_concurrency(), a.rounds, a.calls, a.duration_ms,
              a.callers);

  std::unique_ptr<prpc::bench::Floor> floor, floor_piped;
  if (!a.skip_floor) {
    prpc::bench::FloorOptions fo;
    fo.port = port;
    floor = std::make_unique<prpc::bench::Floor>(fo);
    fo.pipelined = true;
    floor_piped = std::make_unique<prpc::bench::Floor>(fo);
  }

  prpc::testing::TempDir dir("prpc-bench");
  std::string queue = "bench_" + std::to_string(::getpid());
  auto host = start_host(a, dir, url, queue);

  prpc::PluginRegistry registry({PRPC_BENCH_PLUGIN_DIR});
  auto broker = must(registry.make_broker("redis", {{"url", url}}), "redis broker");
  auto codec = must(registry.make_codec("rawjson", {}), "rawjson codec");
  prpc::Client client(prpc::ClientOptions{queue, prpc::Flavour::kRaw}, broker, codec);
  if (prpc::Status s = client.start(); !s.is_ok()) {
    std::fprintf(stderr, "client: %s\n", s.to_string().c_str());
    return 1;
  }
  auto request = [&] {
    prpc::Message m;
    m.func_name = a.function;
    return m;
  };
  auto one = [&] {
    auto r = client.call_sync(request(), std::chrono::milliseconds(a.timeout_ms));
    if (!r.is_ok() || r->failed()) {
      std::fprintf(stderr, "call failed: %s\n",
                   r.is_ok() ? r->exception_info->c_str() : r.status().to_string().c_str());
      std::exit(1);
    }
  };
  auto prpc_sequential = [&] {
    for (int i = 0; i < a.warmup; ++i) one();
    std::vector<double> samples;
    samples.reserve(static_cast<std::size_t>(a.calls));
    for (int i = 0; i < a.calls; ++i) {
      auto t0 = Clock::now();
      one();
      samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    return prpc::bench::summarise(std::move(samples));
  };
  std::atomic<std::size_t> errors{0};
  // Concurrent callers: each completion issues that caller's next call.
  auto prpc_concurrent = [&] {
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> done{0};
    std::atomic<int> outstanding{a.callers};
    std::function<void()> issue = [&] {
      if (stop.load()) {
        --outstanding;
        return;
      }
      client.call(request(), std::chrono::milliseconds(a.timeout_ms),
                  [&](const prpc::Result<prpc::Message>& r) {
                    if (!r.is_ok() || r->failed()) {
                      ++errors;
                    } else {
                      ++done;
                    }
                    issue();
                  });
    };
    auto start = Clock::now();
    for (int i = 0; i < a.callers; ++i) issue();
    std::this_thread::sleep_for(std::chrono::milliseconds(a.duration_ms));  // the window
    std::size_t in_window = done.load();
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    stop = true;
    prpc::testing::wait_until([&] { return outstanding.load() == 0; }, 30s);
    return static_cast<double>(in_window) / seconds;
  };

  // The broker alone, without the engines: a server broker that finishes every delivery on its
  // own thread, and a client broker that publishes and waits for the pushed reply. It tells the
  // broker's share of PRPC's time from the engines'.
  std::string raw_queue = queue + "_broker";
  auto server_broker = must(registry.make_broker("redis", {{"url", url}}), "redis broker");
  auto client_broker = must(registry.make_broker("redis", {{"url", url}}), "redis broker");
  std::mutex reply_mutex;
  std::condition_variable reply_cv;
  std::string last_reply;
  auto reply_to = must(client_broker->open_replies(raw_queue,
                                                   [&](std::string_view id, std::string_view) {
                                                     std::lock_guard lock(reply_mutex);
                                                     last_reply = std::string(id);
                                                     reply_cv.notify_all();
                                                   }),
                       "open_replies");
  prpc::SubscribeOptions so;
  so.queue = raw_queue;
  so.consumer = "bench";
  so.python = false;
  prpc::Broker* sb = server_broker.get();
  if (prpc::Status s = sb->subscribe(so,
                                     [&, sb](std::span<const prpc::DeliveryView> items) {
                                       for (const auto& d : items) {
                                         prpc::ReplyView reply{d.flavour, d.queue,   d.payload,
                                                               reply_to,  d.payload, false};
                                         prpc::FinishRequest fr;
                                         fr.reply = &reply;
                                         sb->finish(d, fr, [](const prpc::Status&) {});
                                       }
                                     });
      !s.is_ok()) {
    std::fprintf(stderr, "subscribe: %s\n", s.to_string().c_str());
    return 1;
  }
  auto broker_sequential = [&] {
    std::vector<double> samples;
    for (int i = 0; i < a.warmup + a.calls; ++i) {
      std::string id = "c" + std::to_string(i);
      auto t0 = Clock::now();
      client_broker->publish(prpc::PublishView{prpc::Flavour::kRaw, raw_queue, id, id},
                             [](const prpc::Status&) {});
      std::unique_lock lock(reply_mutex);
      reply_cv.wait(lock, [&] { return last_reply == id; });
      if (i >= a.warmup) {
        samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    }
    return prpc::bench::summarise(std::move(samples));
  };

  Series f, fp, b, p;
  for (int r = 0; r < a.rounds; ++r) {
    if (floor) {
      f.add(floor->sequential(a.calls, a.warmup));
      fp.add(floor_piped->sequential(a.calls, a.warmup));
    }
    b.add(broker_sequential());
    p.add(prpc_sequential());
  }
  auto window = std::chrono::milliseconds(a.duration_ms);
  for (int r = 0; r < a.rounds; ++r) {
    if (floor) {
      f.rate.push_back(floor->concurrent(a.callers, window));
      fp.rate.push_back(floor_piped->concurrent(a.callers, window));
    }
    p.rate.push_back(prpc_concurrent());
  }
  host.stop(5s);
  server_broker->unsubscribe();

  std::printf("\n%-36s %10s %10s %14s\n", "(median of rounds)", "p50 us", "p99 us", "calls/s");
  auto row = [](const char* name, const Series& s) {
    std::printf("%-36s %10.1f %10.1f %14.0f\n", name, median(s.p50), median(s.p99), median(s.rate));
  };
  if (floor) {
    row("hiredis floor (XADD, then BLPOP)", f);
    row("hiredis floor (XADD+BLPOP pipelined)", fp);
  }
  std::printf("%-36s %10.1f %10.1f %14s\n", "Redis broker alone (no engines)", median(b.p50),
              median(b.p99), "-");
  std::string label = "PRPC over Redis ('" + a.function + "')";
  row(label.c_str(), p);
  if (errors.load() != 0) std::printf("errors during the concurrent runs: %zu\n", errors.load());
  std::printf("p50 per round, us [floor / pipelined floor / broker alone / PRPC]:");
  for (std::size_t i = 0; i < p.p50.size(); ++i) {
    std::printf("  [%.0f / %.0f / %.0f / %.0f]", floor ? f.p50[i] : 0.0, floor ? fp.p50[i] : 0.0,
                b.p50[i], p.p50[i]);
  }
  std::printf("\n");
  if (floor) {
    for (const Series* s : {&f, &fp}) {
      const char* name = s == &f ? "floor" : "pipelined floor";
      double lat = median(p.p50) / median(s->p50);
      double thr = median(p.rate) / median(s->rate);
      std::printf(
          "vs %-16s p50 %.2fx (target <= 1.5x: %s), throughput %.0f%% (target >= 60%%: %s)\n", name,
          lat, lat <= 1.5 ? "met" : "MISSED", 100 * thr, thr >= 0.6 ? "met" : "MISSED");
    }
  }
  return 0;
}
