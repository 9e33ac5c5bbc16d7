#include "kafka_fixtures.hpp"

#include "kafka_jvm.hpp"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

namespace prpc::testing {
namespace {

std::string run_capture(const std::string& command) {
  std::string out;
  std::FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("cannot run " + command);
  std::array<char, 4096> buf{};
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;)
    out.append(buf.data(), n);
  int rc = ::pclose(p);
  if (rc != 0) throw std::runtime_error(command + " failed (" + std::to_string(rc) + ")");
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace

bool wait_for_kafka(const std::string& bootstrap, std::chrono::milliseconds timeout) {
  return wait_for_kafka({{"bootstrap.servers", bootstrap}}, timeout);
}

bool wait_for_kafka(const std::map<std::string, std::string>& config,
                    std::chrono::milliseconds timeout, int min_brokers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
  rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "200", err, sizeof(err));
  for (const auto& [key, value] : config) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::invalid_argument("librdkafka option " + key + ": " + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) return false;
  bool ok = wait_until(
      [rk, min_brokers] {
        const rd_kafka_metadata_t* md = nullptr;
        if (rd_kafka_metadata(rk, 1, nullptr, &md, 1000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
          return false;
        }
        bool enough = md->broker_cnt >= min_brokers;
        rd_kafka_metadata_destroy(md);
        return enough;
      },
      timeout, std::chrono::milliseconds(50));
  rd_kafka_destroy(rk);
  return ok;
}

std::string produce_aborted_transaction(const std::string& bootstrap, const std::string& topic,
                                        int partition, const std::vector<std::string>& payloads) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string id = "prpc-test-txn-" + std::to_string(::getpid()) + "-" + topic;
  for (const auto& [key, value] : std::map<std::string, std::string>{
           {"bootstrap.servers", bootstrap}, {"transactional.id", id}, {"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return err;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) return err;
  std::string failure;
  auto check = [&failure](rd_kafka_error_t* e, const char* what) {
    if (e == nullptr) return true;
    failure = std::string(what) + ": " + rd_kafka_error_string(e);
    rd_kafka_error_destroy(e);
    return false;
  };
  constexpr int kTimeoutMs = 30000;
  if (check(rd_kafka_init_transactions(rk, kTimeoutMs), "init_transactions") &&
      check(rd_kafka_begin_transaction(rk), "begin_transaction")) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    for (const auto& payload : payloads) {
      if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, const_cast<char*>(payload.data()),
                           payload.size(), nullptr, 0, nullptr) != 0) {
        failure = std::string("produce: ") + rd_kafka_err2str(rd_kafka_last_error());
        break;
      }
    }
    rd_kafka_topic_destroy(rkt);
    // The records must be in the log before the abort, or there is no hole.
    if (failure.empty() && rd_kafka_flush(rk, kTimeoutMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failure = "flush timed out";
    }
    if (failure.empty()) check(rd_kafka_abort_transaction(rk, kTimeoutMs), "abort_transaction");
  }
  rd_kafka_destroy(rk);
  return failure;
}

std::vector<std::string> kafka_queue_topics(const std::string& queue) {
  return {"prpc_" + queue, "prpc_raw_" + queue, "prpc_feedback_" + queue,
          "prpc_feedback_raw_" + queue, "prpc_dead_" + queue};
}

// ---- mock cluster ---------------------------------------------------------------------------

KafkaMockCluster::KafkaMockCluster(int brokers) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  std::string bin = PRPC_KAFKA_MOCK_BIN;
  std::string count = std::to_string(brokers);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::setpgid(0, 0);
    ::execl(bin.c_str(), bin.c_str(), "--brokers", count.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  to_child_ = in[1];
  from_child_ = ::fdopen(out[0], "r");
  std::string line = command("");  // the BOOTSTRAP line
  const std::string prefix = "BOOTSTRAP ";
  if (line.rfind(prefix, 0) != 0) {
    throw std::runtime_error("prpc-kafka-mock did not start: '" + line + "'");
  }
  bootstrap_ = line.substr(prefix.size());
  if (!wait_for_kafka(bootstrap_, std::chrono::seconds(10))) {
    throw std::runtime_error("the mock cluster at " + bootstrap_ + " does not answer");
  }
}

KafkaMockCluster::~KafkaMockCluster() {
  if (to_child_ >= 0) ::close(to_child_);  // end of input: the helper exits
  if (pid_ > 0) {
    bool gone = wait_until(
        [this] {
          int status = 0;
          return ::waitpid(pid_, &status, WNOHANG) == pid_;
        },
        std::chrono::seconds(5));
    if (!gone) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  if (from_child_ != nullptr) std::fclose(from_child_);
}

std::string KafkaMockCluster::command(const std::string& line) {
  if (!line.empty()) {
    std::string l = line + "\n";
    if (::write(to_child_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) {
      throw std::runtime_error("prpc-kafka-mock is gone");
    }
  }
  std::array<char, 4096> buf{};
  if (std::fgets(buf.data(), static_cast<int>(buf.size()), from_child_) == nullptr) {
    throw std::runtime_error("prpc-kafka-mock closed its output");
  }
  std::string answer(buf.data());
  while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) answer.pop_back();
  return answer;
}

static void expect_ok(const std::string& what, const std::string& answer) {
  if (answer != "ok") throw std::runtime_error("prpc-kafka-mock: " + what + ": " + answer);
}

void KafkaMockCluster::create_topic(const std::string& name, int partitions) {
  expect_ok("topic " + name, command("topic " + name + " " + std::to_string(partitions)));
}
void KafkaMockCluster::create_queue_topics(const std::string& queue, int partitions) {
  for (const std::string& t : kafka_queue_topics(queue)) create_topic(t, partitions);
}
void KafkaMockCluster::broker_down(int broker) {
  expect_ok("down", command("down " + std::to_string(broker)));
}
void KafkaMockCluster::broker_up(int broker) {
  expect_ok("up", command("up " + std::to_string(broker)));
}
void KafkaMockCluster::set_rtt(int broker, int ms) {
  expect_ok("rtt", command("rtt " + std::to_string(broker) + " " + std::to_string(ms)));
}
void KafkaMockCluster::push_errors(const std::string& api, const std::string& error, int count) {
  expect_ok("error", command("error " + api + " " + error + " " + std::to_string(count)));
}

// ---- real broker ------------------------------------------------------------------------------

std::string kafka_classpath() {
  const char* env = std::getenv("PRPC_KAFKA_CLASSPATH");
  if (env != nullptr && *env != '\0') return env;
  return run_capture(std::string(PRPC_KAFKA_SUPPORT_DIR) + "/kafka-classpath.sh");
}

KafkaServer::KafkaServer() : classpath_(kafka_classpath()) {
  int port = free_port();
  int controller = free_port();
  while (controller == port) controller = free_port();
  bootstrap_ = "127.0.0.1:" + std::to_string(port);
  const auto& d = dir_.path();
  log_file_ = d / "kafka.log";
  {
    std::ofstream p(d / "server.properties");
    p << "process.roles=broker,controller\n"
      << "node.id=1\n"
      << "controller.quorum.voters=1@127.0.0.1:" << controller << "\n"
      << "listeners=PLAINTEXT://127.0.0.1:" << port << ",CONTROLLER://127.0.0.1:" << controller
      << "\n"
      << "advertised.listeners=PLAINTEXT://127.0.0.1:" << port << "\n"
      << "controller.listener.names=CONTROLLER\n"
      << "inter.broker.listener.name=PLAINTEXT\n"
      << "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
      << "log.dirs=" << (d / "data").string() << "\n"
      << "num.partitions=1\n"
      << "auto.create.topics.enable=true\n"
      << "offsets.topic.replication.factor=1\n"
      << "offsets.topic.num.partitions=1\n"
      << "transaction.state.log.replication.factor=1\n"
      << "transaction.state.log.min.isr=1\n"
      << "transaction.state.log.num.partitions=1\n"
      << "group.initial.rebalance.delay.ms=0\n"
      << "group.min.session.timeout.ms=1000\n"
      << "num.network.threads=2\n"
      << "num.io.threads=2\n"
      << "background.threads=2\n"
      << "log.segment.bytes=16777216\n";
    std::ofstream l(d / "log4j.properties");
    l << "log4j.rootLogger=WARN, file\n"
      << "log4j.appender.file=org.apache.log4j.FileAppender\n"
      << "log4j.appender.file.File=" << log_file_.string() << "\n"
      << "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
      << "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
      << "log4j.logger.kafka.server.KafkaServer=INFO\n"
      << "log4j.logger.kafka.server.BrokerServer=INFO\n";
  }
  std::string cluster_id = details::new_kafka_cluster_id();
  auto format =
      ChildProcess::start({"java", "-Xshare:auto", "-cp", classpath_, "kafka.tools.StorageTool",
                           "format", "-t", cluster_id, "-c", (d / "server.properties").string()},
                          d / "format.log");
  int rc = format.wait(std::chrono::seconds(120));
  if (rc != 0) {
    throw std::runtime_error("kafka StorageTool format failed (" + std::to_string(rc) + "):\n" +
                             details::file_tail(d / "format.log"));
  }
  launch();
}

KafkaServer::~KafkaServer() { stop(); }

void KafkaServer::launch() {
  const auto& d = dir_.path();
  process_ = ChildProcess::start(
      {"java", "-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
       "-Dlog4j.configuration=file:" + (d / "log4j.properties").string(),
       "-Dkafka.logs.dir=" + (d / "logs").string(), "-cp", classpath_, "kafka.Kafka",
       (d / "server.properties").string()},
      d / "stdout.log");
  bool ready = wait_until(
      [this] { return !process_.running() || wait_for_kafka(bootstrap_, std::chrono::seconds(1)); },
      std::chrono::seconds(120), std::chrono::milliseconds(100));
  if (!ready || !process_.running()) {
    std::string why = details::file_tail(log_file_) + details::file_tail(d / "stdout.log");
    process_.kill_now();
    throw std::runtime_error("Apache Kafka did not start at " + bootstrap_ + ":\n" + why);
  }
}

void KafkaServer::stop() {
  if (process_.pid() > 0 && process_.running()) process_.stop(std::chrono::seconds(30));
}

void KafkaServer::start() {
  if (process_.pid() > 0 && process_.running()) return;
  launch();
}

}  // namespace prpc::testing
