// Test support: a plain librdkafka producer, consumer and connection probe for assertions
// against the real Kafka fixtures (any options: security settings pass through).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace prpc::testing {

using KafkaConfig = std::map<std::string, std::string>;

// Produces the payloads (acks=all, idempotent unless `config` says otherwise) and waits for
// every delivery report. Returns an empty string, or the first failure.
std::string kafka_produce(const KafkaConfig& config, const std::string& topic,
                          const std::vector<std::string>& payloads,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Reads every partition of `topic` from the beginning (assigned, no consumer group, so no
// coordinator is needed) until `count` records arrived or `timeout` passed.
std::vector<std::string> kafka_consume(
    const KafkaConfig& config, const std::string& topic, std::size_t count,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

struct KafkaProbeResult {
  bool ok = false;     // a metadata answer came back
  int error_code = 0;  // rd_kafka_resp_err_t of the first reported error, 0 when none
  std::string error;   // its text
};

// Connects with `config` and asks for metadata; reports the first error librdkafka raised
// (e.g. RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR__SSL).
KafkaProbeResult kafka_probe(const KafkaConfig& config,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace prpc::testing
