// What the Kafka integration suites share: a cluster to run against (librdkafka's mock cluster
// or a real Apache Kafka broker), and a fixture that makes brokers, servers and clients on it
// from the bundled plugins.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>

#include "kafka_fixtures.hpp"
#include "process.hpp"
#include "prpc/client.hpp"
#include "prpc/log.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"
#include "prpc/uuid.hpp"

namespace prpc::kafka_tests {

using namespace std::chrono_literals;
using testing::wait_until;

// The cluster under test. Each suite's main file provides acquire_cluster().
class Cluster {
 public:
  virtual ~Cluster() = default;
  virtual std::string bootstrap() const = 0;
  virtual bool is_mock() const = 0;
  // Creates the queue's topics where the cluster cannot (the mock has no CreateTopics).
  virtual void prepare_queue(const std::string& queue, int partitions) = 0;
  virtual testing::KafkaMockCluster* mock() { return nullptr; }
  virtual testing::KafkaServer* server() { return nullptr; }
};
std::shared_ptr<Cluster> acquire_cluster();

class KafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = acquire_cluster();
    queue_ = "t" + new_uuid().substr(0, 8);
    codec_ = make(registry_.make_codec("rawjson", {}));
    functions_ = make(registry_.make_functions("example", {}));
  }
  void TearDown() override {
    for (auto& s : servers_) {
      if (s) s->stop(0ms);  // a test may have taken one away already
    }
    servers_.clear();
    clients_.clear();
  }

  template <typename T>
  static T make(Result<T> r) {
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  void prepare(int partitions = 4) {
    partitions_ = partitions;
    cluster_->prepare_queue(queue_, partitions);
  }

  OptionValues broker_options(OptionValues extra = {}) const {
    OptionValues o = {{"url", cluster_->bootstrap()},
                      {"partitions", std::to_string(partitions_)},
                      {"replication_factor", "1"},
                      // Short group timeouts: a killed server's partitions move on quickly.
                      {"consumer.session.timeout.ms", "6000"},
                      {"consumer.heartbeat.interval.ms", "500"},
                      {"admin_timeout", "20000"},
                      {"lookup_timeout", "20000"}};
    // The mock cluster answers no ListOffsets by timestamp.
    if (cluster_->is_mock()) o["lookup_by_timestamp"] = "false";
    // PRPC_TEST_KAFKA_DEBUG=cgrp,fetch,... turns on librdkafka's debug log for a failing test.
    if (const char* debug = std::getenv("PRPC_TEST_KAFKA_DEBUG"); debug != nullptr) {
      o["debug"] = debug;
      log::set_level(log::Level::kDebug);
    }
    // PRPC_TEST_KAFKA_TRACE=1 logs every request record's way through each server.
    if (const char* trace = std::getenv("PRPC_TEST_KAFKA_TRACE"); trace != nullptr && *trace) {
      o["trace_offsets"] = "true";
    }
    for (auto& [k, v] : extra) o[k] = v;
    return o;
  }

  std::shared_ptr<Broker> broker(OptionValues extra = {}) {
    return make(registry_.make_broker("kafka", broker_options(std::move(extra))));
  }

  Server& start_server(ServerOptions options = {}, int workers = 4, OptionValues extra = {}) {
    options.queue = queue_;
    auto executor =
        make(registry_.make_executor("thread", {{"workers", std::to_string(workers)}}, functions_));
    auto server = std::make_unique<Server>(options, broker(std::move(extra)), codec_, codec_,
                                           functions_, ExecutorMap{{"thread", executor}});
    Status s = server->start();
    if (!s.is_ok()) throw std::runtime_error("server start: " + s.to_string());
    servers_.push_back(std::move(server));
    return *servers_.back();
  }

  Client& client(Flavour flavour = Flavour::kRaw) {
    auto c = std::make_unique<Client>(ClientOptions{queue_, flavour}, broker(), codec_);
    Status s = c->start();
    if (!s.is_ok()) throw std::runtime_error("client start: " + s.to_string());
    clients_.push_back(std::move(c));
    return *clients_.back();
  }

  static Message request(std::string func, std::string args = "[]") {
    Message m;
    m.func_name = std::move(func);
    m.func_args = std::move(args);
    return m;
  }

  // A server in another process (prpc-kafka-test-server), for SIGKILL.
  testing::ChildProcess spawn_server(const std::string& log_name) {
    auto p = testing::ChildProcess::start(
        {PRPC_KAFKA_TEST_SERVER, "--plugins", PRPC_TEST_PLUGIN_DIR, "--url", cluster_->bootstrap(),
         "--queue", queue_, "--set", "partitions=" + std::to_string(partitions_), "--set",
         "consumer.session.timeout.ms=6000", "--set", "consumer.heartbeat.interval.ms=500", "--set",
         std::string("lookup_by_timestamp=") + (cluster_->is_mock() ? "false" : "true")},
        dir_.path() / log_name);
    EXPECT_TRUE(wait_until(
        [&] { return p.output().find("READY") != std::string::npos || !p.running(); }, 60s, 20ms))
        << p.output();
    EXPECT_NE(p.output().find("READY"), std::string::npos) << p.output();
    return p;
  }

  std::shared_ptr<Cluster> cluster_;
  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  testing::TempDir dir_{"prpc-kafka-test"};
  std::string queue_;
  int partitions_ = 4;
  std::shared_ptr<Codec> codec_;
  std::shared_ptr<FunctionTable> functions_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace prpc::kafka_tests
