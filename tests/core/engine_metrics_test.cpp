// The server engine's observability over the in-process broker: exact counters per function and
// outcome, histograms, the broker's view, /metrics over HTTP, and the latency breakdown in
// every reply.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include "process.hpp"
#include "prpc/client.hpp"
#include "prpc/json.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"
#include "prpc/uuid.hpp"

namespace prpc {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

template <typename T>
T make(Result<T> r) {
  if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
  return std::move(r).value();
}

// GET `path` from 127.0.0.1:`port` with HTTP/1.0; the whole response, headers included.
std::string http_get(std::uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: test\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) {
        out.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

class EngineMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = "memory://metrics-" + new_uuid();
    codec_ = make(registry_.make_codec("rawjson", {}));
    functions_ = make(registry_.make_functions("example", {}));
  }

  std::shared_ptr<Broker> broker() {
    return make(registry_.make_broker("memory", {{"url", url_}}));
  }

  std::unique_ptr<Server> start_server(ServerOptions options) {
    options.queue = queue_;
    auto executor = make(registry_.make_executor("thread", {{"workers", "2"}}, functions_));
    executors_.push_back(executor);
    auto server = std::make_unique<Server>(options, broker(), codec_, codec_, functions_,
                                           ExecutorMap{{"thread", executor}});
    Status s = server->start();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return server;
  }

  Message call(std::string func, std::string args = "[]") {
    if (!client_) {
      client_ = std::make_unique<Client>(ClientOptions{queue_, Flavour::kRaw}, broker(), codec_);
      EXPECT_TRUE(client_->start().is_ok());
    }
    Message m;
    m.func_name = std::move(func);
    m.func_args = std::move(args);
    return make(client_->call_sync(std::move(m), 10s));
  }

  void publish_raw(const std::string& payload) {
    if (!publisher_) publisher_ = broker();
    std::promise<Status> sent;
    publisher_->publish(PublishView{Flavour::kRaw, queue_, "", payload},
                        [&](const Status& s) { sent.set_value(s); });
    ASSERT_TRUE(sent.get_future().get().is_ok());
  }

  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::string url_;
  std::string queue_ = "metrics_test";
  std::shared_ptr<Codec> codec_;
  std::shared_ptr<FunctionTable> functions_;
  std::vector<std::shared_ptr<Executor>> executors_;
  std::unique_ptr<Client> client_;
  std::shared_ptr<Broker> publisher_;
};

TEST_F(EngineMetricsTest, CountersMatchTheCallsMade) {
  ServerOptions options;
  options.call_timeout = 150ms;
  options.metrics_listen = "127.0.0.1:0";
  auto server = start_server(options);
  ASSERT_NE(server->metrics_port(), 0);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(call("summ", "[1, 2]").failed());
  EXPECT_TRUE(call("fail", R"(["x"])").failed());
  EXPECT_TRUE(call("fail", R"(["y"])").failed());
  EXPECT_TRUE(call("slow", "[2]").failed());  // the server's limit is 150 ms
  EXPECT_TRUE(call("nope").failed());
  EXPECT_EQ(call("ping").result, "\"pong\"");
  publish_raw("not json");  // dead-lettered
  ASSERT_TRUE(wait_until([&] { return server->stats().dead_lettered == 1; }, 5s));
  ASSERT_TRUE(wait_until([&] { return server->stats().in_flight == 0; }, 5s));

  std::string text = server->metrics_text();
  auto calls = [&](const std::string& function, const std::string& outcome, int n) {
    std::string line = R"(prpc_server_calls_total{queue="metrics_test",function=")" + function +
                       R"(",outcome=")" + outcome + "\"} " + std::to_string(n);
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
  };
  calls("summ", "ok", 3);
  calls("summ", "error", 0);
  calls("fail", "error", 2);
  calls("slow", "timeout", 1);
  calls("(unknown)", "error", 1);
  calls("(unknown)", "dead_letter", 1);
  calls("ping", "ok", 1);
  EXPECT_TRUE(
      has_line(text, R"(prpc_server_call_seconds_count{queue="metrics_test",function="summ"} 3)"));
  EXPECT_TRUE(has_line(
      text,
      R"(prpc_server_call_seconds_bucket{queue="metrics_test",function="fail",le="+Inf"} 2)"));
  // summ, fail, slow, nope and ping reached dispatch: 8 queue waits.
  EXPECT_TRUE(has_line(text, R"(prpc_server_queue_wait_seconds_count{queue="metrics_test"} 8)"))
      << text;
  EXPECT_TRUE(has_line(text, R"(prpc_server_in_flight{queue="metrics_test"} 0)"));
  EXPECT_TRUE(has_line(text, R"(prpc_queue_dead_letters{queue="metrics_test"} 1)"));

  // The same text over HTTP, and a 404 elsewhere.
  std::string response = http_get(server->metrics_port(), "/metrics");
  EXPECT_EQ(response.rfind("HTTP/1.0 200", 0), 0u) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(response.find(R"(function="summ",outcome="ok"} 3)"), std::string::npos);
  EXPECT_EQ(http_get(server->metrics_port(), "/nothing").rfind("HTTP/1.0 404", 0), 0u);
  server->stop(1s);
  EXPECT_EQ(server->metrics_port(), 0);
}

TEST_F(EngineMetricsTest, EveryReplyCarriesItsLatencyBreakdown) {
  ServerOptions options;
  options.consumer = "breakdown-1";
  auto server = start_server(options);
  EXPECT_EQ(server->metrics_port(), 0);  // no listener unless asked
  Message r = call("slow", "[0.05]");
  ASSERT_FALSE(r.failed());
  EXPECT_EQ(json::get_string_member(r.extensions, "server"), "breakdown-1") << r.extensions;
  auto number = [&](std::string_view key) {
    auto text = json::get_member(r.extensions, key);
    return text ? std::stod(std::string(*text)) : -1.0;
  };
  EXPECT_GE(number("time_queued"), 0.0);
  EXPECT_GE(number("time_executing"), 0.05);
  // Nothing ran for ping: no time_executing.
  Message pong = call("ping");
  EXPECT_TRUE(json::get_member(pong.extensions, "time_queued").has_value());
  EXPECT_FALSE(json::get_member(pong.extensions, "time_executing").has_value());
}

TEST_F(EngineMetricsTest, AnAddressThatCannotBeServedStopsTheStart) {
  ServerOptions options;
  options.queue = queue_;
  options.metrics_listen = "no-port-here";
  auto executor = make(registry_.make_executor("thread", {{"workers", "1"}}, functions_));
  Server bad(options, broker(), codec_, codec_, functions_, ExecutorMap{{"thread", executor}});
  Status s = bad.start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();

  ServerOptions first;
  first.metrics_listen = "127.0.0.1:0";
  auto server = start_server(first);
  options.metrics_listen = "127.0.0.1:" + std::to_string(server->metrics_port());
  Server taken(options, broker(), codec_, codec_, functions_, ExecutorMap{{"thread", executor}});
  EXPECT_EQ(taken.start().code(), StatusCode::kUnavailable);
  executor->shutdown(1s);
}

}  // namespace
}  // namespace prpc
