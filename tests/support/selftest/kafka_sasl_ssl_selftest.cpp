// Self-test of the SASL_SSL Kafka fixture: the right SCRAM-SHA-512 credentials over TLS (the
// certificate checked against the fixture's CA, host name included) produce and consume; a
// wrong password, an unknown user, plaintext and an untrusted CA are refused.
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "kafka_client.hpp"
#include "kafka_sasl_ssl.hpp"

namespace prpc::testing {
namespace {

class KafkaSaslSslFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t0 = std::chrono::steady_clock::now();
    server_ = std::make_unique<KafkaSaslSslServer>();
    std::cout << "SASL_SSL broker up in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0)
                     .count()
              << " ms\n";
  }
  static void TearDownTestSuite() { server_.reset(); }
  static std::unique_ptr<KafkaSaslSslServer> server_;
};

std::unique_ptr<KafkaSaslSslServer> KafkaSaslSslFixture::server_;

TEST_F(KafkaSaslSslFixture, ClientOptionsNameEverythingAClientNeeds) {
  auto config = server_->client_config();
  EXPECT_EQ(config["bootstrap.servers"], server_->bootstrap());
  EXPECT_EQ(config["security.protocol"], "SASL_SSL");
  EXPECT_EQ(config["sasl.mechanisms"], "SCRAM-SHA-512");
  EXPECT_EQ(config["sasl.username"], "alice");
  EXPECT_EQ(config["sasl.password"], server_->password());
  EXPECT_EQ(config["ssl.ca.location"], server_->ca_file().string());
  EXPECT_EQ(config["ssl.endpoint.identification.algorithm"], "https");
  EXPECT_TRUE(std::filesystem::exists(server_->ca_file()));
  EXPECT_GE(server_->password().size(), 16u);
}

TEST_F(KafkaSaslSslFixture, RightCredentialsProduceAndConsume) {
  auto probe = kafka_probe(server_->client_config());
  EXPECT_TRUE(probe.ok) << probe.error;
  ASSERT_EQ(kafka_produce(server_->client_config(), "prpc_secure", {"one", "two", "three"}), "");
  auto read = kafka_consume(server_->client_config(), "prpc_secure", 3);
  EXPECT_EQ(std::set<std::string>(read.begin(), read.end()),
            (std::set<std::string>{"one", "two", "three"}));
}

TEST_F(KafkaSaslSslFixture, WrongPasswordIsRefused) {
  const int failed_before = server_->failed_authentications();
  auto probe = kafka_probe(server_->client_config(server_->user(), "not-the-password"));
  EXPECT_FALSE(probe.ok);
  EXPECT_EQ(probe.error_code, RD_KAFKA_RESP_ERR__AUTHENTICATION) << probe.error;
  EXPECT_NE(probe.error.find("SCRAM-SHA-512"), std::string::npos) << probe.error;
  // The broker saw the attempt and said no (not a network failure).
  EXPECT_TRUE(wait_until([&] { return server_->failed_authentications() > failed_before; },
                         std::chrono::seconds(10)));
  EXPECT_NE(kafka_produce(server_->client_config(server_->user(), "not-the-password"),
                          "prpc_secure_refused", {"x"}, std::chrono::seconds(3)),
            "");
}

TEST_F(KafkaSaslSslFixture, UnknownUserIsRefused) {
  auto probe = kafka_probe(server_->client_config("mallory", server_->password()));
  EXPECT_FALSE(probe.ok);
  EXPECT_EQ(probe.error_code, RD_KAFKA_RESP_ERR__AUTHENTICATION) << probe.error;
}

TEST_F(KafkaSaslSslFixture, PlaintextAndSslWithoutSaslGetNoAnswer) {
  auto plain = kafka_probe({{"bootstrap.servers", server_->bootstrap()}}, std::chrono::seconds(3));
  EXPECT_FALSE(plain.ok);
  EXPECT_NE(plain.error_code, 0);
  auto ssl_only = kafka_probe({{"bootstrap.servers", server_->bootstrap()},
                               {"security.protocol", "SSL"},
                               {"ssl.ca.location", server_->ca_file().string()}},
                              std::chrono::seconds(3));
  EXPECT_FALSE(ssl_only.ok);
  EXPECT_NE(ssl_only.error_code, 0);
}

TEST_F(KafkaSaslSslFixture, UntrustedCertificateIsRefused) {
  // The system's CAs did not sign the broker's certificate.
  const std::filesystem::path system_cas = "/etc/ssl/certs/ca-certificates.crt";
  if (!std::filesystem::exists(system_cas)) GTEST_SKIP() << "no system CA bundle";
  auto config = server_->client_config();
  config["ssl.ca.location"] = system_cas.string();
  auto probe = kafka_probe(config, std::chrono::seconds(5));
  EXPECT_FALSE(probe.ok);
  EXPECT_EQ(probe.error_code, RD_KAFKA_RESP_ERR__SSL) << probe.error;
}

}  // namespace
}  // namespace prpc::testing
