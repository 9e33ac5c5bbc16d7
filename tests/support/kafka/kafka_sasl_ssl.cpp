#include "kafka_sasl_ssl.hpp"

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "kafka_fixtures.hpp"
#include "kafka_jvm.hpp"

namespace prpc::testing {
namespace {

std::string random_token() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 24; ++i) out += "0123456789abcdef"[rd() % 16];
  return out;
}

// StorageTool's --add-scram value is [name=...,password=...]: these would break it.
void check_scram_text(const std::string& what, const std::string& value) {
  if (value.empty() || value.find_first_of(",[]=\"\\ ") != std::string::npos) {
    throw std::invalid_argument("KafkaSaslSslServer: the " + what +
                                " must be non-empty, without , [ ] = \" \\ or spaces");
  }
}

}  // namespace

KafkaSaslSslServer::KafkaSaslSslServer(KafkaSaslSslOptions options)
    : options_(std::move(options)),
      classpath_(kafka_classpath()),
      store_password_(random_token()),
      broker_password_(random_token()) {
  if (options_.password.empty()) options_.password = random_token();
  check_scram_text("user", options_.user);
  check_scram_text("password", options_.password);
  const auto& d = dir_.path();
  log_file_ = d / "kafka.log";
  make_keys();

  int port = free_port();
  int controller = free_port();
  while (controller == port) controller = free_port();
  bootstrap_ = "127.0.0.1:" + std::to_string(port);
  {
    std::ofstream p(d / "server.properties");
    p << "process.roles=broker,controller\n"
      << "node.id=1\n"
      << "controller.quorum.voters=1@127.0.0.1:" << controller
      << "\n"
      // The controller listener is PLAINTEXT: KRaft controllers cannot use SCRAM (its
      // credentials live in the metadata the controller serves). Clients never see it.
      << "listeners=SASL_SSL://127.0.0.1:" << port << ",CONTROLLER://127.0.0.1:" << controller
      << "\n"
      << "advertised.listeners=SASL_SSL://127.0.0.1:" << port << "\n"
      << "controller.listener.names=CONTROLLER\n"
      << "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL\n"
      << "inter.broker.listener.name=SASL_SSL\n"
      << "sasl.enabled.mechanisms=SCRAM-SHA-512\n"
      << "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n"
      << "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
         "org.apache.kafka.common.security.scram.ScramLoginModule required "
         "username=\"prpc-broker\" "
         "password=\""
      << broker_password_ << "\";\n"
      << "ssl.keystore.type=PKCS12\n"
      << "ssl.keystore.location=" << (d / "broker.p12").string() << "\n"
      << "ssl.keystore.password=" << store_password_ << "\n"
      << "ssl.key.password=" << store_password_ << "\n"
      << "ssl.truststore.type=PKCS12\n"
      << "ssl.truststore.location=" << (d / "truststore.p12").string() << "\n"
      << "ssl.truststore.password=" << store_password_ << "\n"
      << "ssl.endpoint.identification.algorithm=https\n"
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
  }
  // The Selector logs each failed authentication at INFO: failed_authentications() counts them.
  details::write_kafka_log4j(d / "log4j.properties", log_file_,
                             {"org.apache.kafka.common.network.Selector"});
  auto format = details::start_kafka_format(
      classpath_, details::new_kafka_cluster_id(), d / "server.properties", d / "format.log",
      {"--add-scram", "SCRAM-SHA-512=[name=prpc-broker,password=" + broker_password_ + "]",
       "--add-scram",
       "SCRAM-SHA-512=[name=" + options_.user + ",password=" + options_.password + "]"});
  details::finish_kafka_format(format, d / "format.log");
  launch();
}

KafkaSaslSslServer::~KafkaSaslSslServer() { process_.kill_now(); }

void KafkaSaslSslServer::make_keys() {
  const auto& d = dir_.path();
  {
    std::ofstream pw(d / "store.pw");
    pw << store_password_ << "\n";
    std::ofstream ext(d / "broker-ext.cnf");
    ext << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        << "basicConstraints=CA:FALSE\n"
        << "keyUsage=digitalSignature,keyEncipherment\n"
        << "extendedKeyUsage=serverAuth,clientAuth\n";
  }
  ca_file_ = d / "ca.pem";
  const std::string ec = "ec";
  const std::vector<std::vector<std::string>> steps = {
      // A CA, then a broker key and certificate signed by it (EC keys: quick to make).
      {"openssl",
       "req",
       "-x509",
       "-newkey",
       ec,
       "-pkeyopt",
       "ec_paramgen_curve:prime256v1",
       "-nodes",
       "-keyout",
       (d / "ca.key").string(),
       "-out",
       ca_file_.string(),
       "-days",
       "7",
       "-subj",
       "/CN=prpc-test-ca",
       "-addext",
       "basicConstraints=critical,CA:TRUE",
       "-addext",
       "keyUsage=critical,keyCertSign,cRLSign"},
      {"openssl", "req", "-newkey", ec, "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", (d / "broker.key").string(), "-out", (d / "broker.csr").string(), "-subj",
       "/CN=localhost"},
      {"openssl", "x509", "-req", "-in", (d / "broker.csr").string(), "-CA", ca_file_.string(),
       "-CAkey", (d / "ca.key").string(), "-CAcreateserial", "-out", (d / "broker.pem").string(),
       "-days", "7", "-extfile", (d / "broker-ext.cnf").string()},
      // The broker's keystore (key and chain) and truststore (the CA, for its own SSL client).
      {"openssl", "pkcs12", "-export", "-in", (d / "broker.pem").string(), "-inkey",
       (d / "broker.key").string(), "-certfile", ca_file_.string(), "-name", "broker", "-out",
       (d / "broker.p12").string(), "-passout", "file:" + (d / "store.pw").string()},
      // keytool, not openssl: Java trusts only certificates that keytool marks as trusted.
      {"keytool", "-importcert", "-noprompt", "-alias", "prpc-test-ca", "-file", ca_file_.string(),
       "-keystore", (d / "truststore.p12").string(), "-storetype", "PKCS12", "-storepass:file",
       (d / "store.pw").string()},
  };
  for (const auto& argv : steps) {
    auto r = run_program(argv, d / "keys.log", std::chrono::seconds(60));
    if (r.exit_code != 0) {
      throw std::runtime_error(argv[0] + " " + argv[1] + " failed (" + std::to_string(r.exit_code) +
                               "):\n" + r.output);
    }
  }
}

void KafkaSaslSslServer::launch() {
  const auto& d = dir_.path();
  process_ = details::start_kafka_jvm(classpath_, d, d / "server.properties", d / "stdout.log");
  bool ready = wait_until(
      [this] {
        return !process_.running() || wait_for_kafka(client_config(), std::chrono::seconds(2));
      },
      std::chrono::seconds(120), std::chrono::milliseconds(100));
  if (!ready || !process_.running()) {
    std::string why = details::file_tail(log_file_) + details::file_tail(d / "stdout.log");
    process_.kill_now();
    throw std::runtime_error("Kafka (SASL_SSL) did not start at " + bootstrap_ + ":\n" + why);
  }
}

std::map<std::string, std::string> KafkaSaslSslServer::client_config() const {
  return client_config(options_.user, options_.password);
}

std::map<std::string, std::string> KafkaSaslSslServer::client_config(
    const std::string& user, const std::string& password) const {
  return {{"bootstrap.servers", bootstrap_},
          {"security.protocol", "SASL_SSL"},
          {"sasl.mechanisms", "SCRAM-SHA-512"},
          {"sasl.username", user},
          {"sasl.password", password},
          {"ssl.ca.location", ca_file_.string()},
          {"ssl.endpoint.identification.algorithm", "https"}};
}

int KafkaSaslSslServer::failed_authentications() const {
  std::ifstream in(log_file_);
  int count = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("Failed authentication with") != std::string::npos) ++count;
  }
  return count;
}

void KafkaSaslSslServer::stop() {
  if (process_.pid() > 0 && process_.running()) process_.stop(std::chrono::seconds(30));
}

void KafkaSaslSslServer::start() {
  if (process_.pid() > 0 && process_.running()) return;
  launch();
}

}  // namespace prpc::testing
