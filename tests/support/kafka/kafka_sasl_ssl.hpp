// Test support: one Apache Kafka 3.9.1 KRaft node whose only broker listener is SASL_SSL with
// SCRAM-SHA-512. The fixture makes a CA and a broker certificate (SAN IP:127.0.0.1 and
// DNS:localhost) with openssl, the broker's PKCS12 keystore and truststore (openssl, keytool),
// and creates the SCRAM users when it formats the storage (StorageTool --add-scram): the client
// user, and one the broker uses to talk to itself over the same listener.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>

#include "process.hpp"

namespace prpc::testing {

struct KafkaSaslSslOptions {
  std::string user = "alice";
  std::string password;  // random when empty
};

class KafkaSaslSslServer {
 public:
  // Makes the keys, formats, starts the broker and waits until an authenticated client gets a
  // metadata answer.
  explicit KafkaSaslSslServer(KafkaSaslSslOptions options = {});
  ~KafkaSaslSslServer();
  KafkaSaslSslServer(const KafkaSaslSslServer&) = delete;
  KafkaSaslSslServer& operator=(const KafkaSaslSslServer&) = delete;

  // "127.0.0.1:port" of the SASL_SSL listener.
  const std::string& bootstrap() const { return bootstrap_; }
  // The CA certificate (PEM) that signed the broker's certificate.
  const std::filesystem::path& ca_file() const { return ca_file_; }
  const std::string& user() const { return options_.user; }
  const std::string& password() const { return options_.password; }

  // librdkafka options for a client: bootstrap.servers, security.protocol=SASL_SSL,
  // sasl.mechanisms=SCRAM-SHA-512, sasl.username, sasl.password, ssl.ca.location, and
  // ssl.endpoint.identification.algorithm=https (the certificate names 127.0.0.1).
  std::map<std::string, std::string> client_config() const;
  // The same with other credentials (to show that they are refused).
  std::map<std::string, std::string> client_config(const std::string& user,
                                                   const std::string& password) const;

  // How many failed authentications the broker has logged so far.
  int failed_authentications() const;
  const std::filesystem::path& log_file() const { return log_file_; }

  void stop();
  void start();  // after stop(): the same data, ports and users

 private:
  void make_keys();
  void launch();

  KafkaSaslSslOptions options_;
  TempDir dir_{"prpc-kafka-sasl"};
  std::string classpath_;
  std::string bootstrap_;
  std::string store_password_;
  std::string broker_password_;
  std::filesystem::path ca_file_;
  std::filesystem::path log_file_;
  ChildProcess process_;
};

}  // namespace prpc::testing
