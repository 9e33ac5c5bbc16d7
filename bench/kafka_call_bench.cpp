// Calls through Kafka: a no-op function served by a prpc::Server in another process
// (prpc-kafka-test-server), called by a prpc::Client here, on a real Apache Kafka broker.
//
//   prpc_kafka_call_bench [--url HOST:PORT] [--sequential N] [--concurrent N] [--callers N]
//                         [--linger-ms X]
//
// Without --url it starts its own broker (tests/support/kafka). Prints the sequential latency
// percentiles and the throughput with `callers` calls kept in flight.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kafka_fixtures.hpp"
#include "process.hpp"
#include "prpc/client.hpp"
#include "prpc/log.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/uuid.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

template <typename T>
T need(prpc::Result<T> r, const char* what) {
  if (!r.is_ok()) {
    std::cerr << what << ": " << r.status().to_string() << "\n";
    std::exit(1);
  }
  return std::move(r).value();
}

prpc::Message noop() {
  prpc::Message m;
  m.func_name = "noop";
  return m;
}

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  std::string linger = "0.5";
  int sequential = 2000;
  int concurrent = 20000;
  int callers = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    std::string v = argv[i + 1];
    if (a == "--url") {
      url = v;
    } else if (a == "--sequential") {
      sequential = std::stoi(v);
    } else if (a == "--concurrent") {
      concurrent = std::stoi(v);
    } else if (a == "--callers") {
      callers = std::stoi(v);
    } else if (a == "--linger-ms") {
      linger = v;
    }
  }
  prpc::log::set_level(prpc::log::Level::kWarn);
  std::unique_ptr<prpc::testing::KafkaServer> kafka;
  if (url.empty()) {
    kafka = std::make_unique<prpc::testing::KafkaServer>();
    url = kafka->bootstrap();
  }
  std::string queue = "bench_" + prpc::new_uuid().substr(0, 8);
  prpc::testing::TempDir dir("prpc-kafka-bench");
  auto server = prpc::testing::ChildProcess::start(
      {PRPC_KAFKA_TEST_SERVER, "--quiet", "--plugins", PRPC_BENCH_PLUGIN_DIR, "--url", url,
       "--queue", queue, "--workers", "4", "--set", "linger_ms=" + linger},
      dir.path() / "server.log");
  if (!prpc::testing::wait_until(
          [&] { return server.output().find("READY") != std::string::npos || !server.running(); },
          60s) ||
      !server.running()) {
    std::cerr << "the server did not start:\n" << server.output();
    return 1;
  }
  prpc::PluginRegistry registry({PRPC_BENCH_PLUGIN_DIR});
  auto broker =
      need(registry.make_broker("kafka", {{"url", url}, {"linger_ms", linger}}), "broker");
  auto codec = need(registry.make_codec("rawjson", {}), "codec");
  prpc::Client client({queue, prpc::Flavour::kRaw}, broker, codec);
  if (auto s = client.start(); !s.is_ok()) {
    std::cerr << "client: " << s.to_string() << "\n";
    return 1;
  }
  // Warm-up: the group settles, connections open, the broker's JIT warms.
  for (int i = 0; i < 300; ++i) {
    auto r = client.call_sync(noop(), 30s);
    if (!r.is_ok() || r->failed()) {
      std::cerr << "warm-up call failed\n";
      return 1;
    }
  }

  std::vector<double> lat;
  lat.reserve(static_cast<std::size_t>(sequential));
  for (int i = 0; i < sequential; ++i) {
    auto t0 = Clock::now();
    auto r = client.call_sync(noop(), 30s);
    lat.push_back(micros(Clock::now() - t0));
    if (!r.is_ok() || r->failed()) {
      std::cerr << "call failed\n";
      return 1;
    }
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    return lat[static_cast<std::size_t>(p * static_cast<double>(lat.size() - 1))];
  };

  // Throughput: `callers` calls always in flight; each reply launches the next call.
  std::mutex m;
  std::condition_variable cv;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::atomic<int> failed{0};
  std::function<void()> launch = [&] {
    if (started.fetch_add(1) >= concurrent) return;
    client.call(noop(), 60s, [&](prpc::Result<prpc::Message> r) {
      if (!r.is_ok() || r->failed()) failed.fetch_add(1);
      if (finished.fetch_add(1) + 1 == concurrent) {
        std::lock_guard lock(m);
        cv.notify_all();
      }
      launch();
    });
  };
  auto t0 = Clock::now();
  for (int i = 0; i < callers; ++i) launch();
  {
    std::unique_lock lock(m);
    cv.wait_for(lock, 300s, [&] { return finished.load() >= concurrent; });
  }
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  std::printf("kafka call bench (Apache Kafka 3.9.1, noop, linger.ms=%s)\n", linger.c_str());
  std::printf("  sequential: %d calls  p50 %.0f us  p90 %.0f us  p99 %.0f us\n", sequential,
              pct(0.5), pct(0.9), pct(0.99));
  std::printf("  %d callers: %d calls in %.2f s = %.0f calls/s (%d failed)\n", callers,
              finished.load(), seconds, finished.load() / seconds, failed.load());
  server.stop(10s);
  return failed.load() == 0 && finished.load() >= concurrent ? 0 : 1;
}
