#include "kafka_client.hpp"

#include <librdkafka/rdkafka.h>

#include <memory>
#include <stdexcept>
#include <thread>

namespace prpc::testing {
namespace {

struct HandleFree {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleFree>;

struct TopicFree {
  void operator()(rd_kafka_topic_t* t) const noexcept { rd_kafka_topic_destroy(t); }
};

// `config` over `defaults`; `setup` may add callbacks before the handle is made.
template <typename Setup>
Handle make_handle(rd_kafka_type_t type, const KafkaConfig& config, KafkaConfig defaults,
                   Setup&& setup) {
  for (const auto& [k, v] : config) defaults[k] = v;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : defaults) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::invalid_argument("librdkafka option " + k + ": " + err);
    }
  }
  setup(conf);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) throw std::runtime_error(std::string("rd_kafka_new: ") + err);
  return Handle(rk);
}

struct DeliveryState {
  std::size_t done = 0;
  std::string first_error;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* state = static_cast<DeliveryState*>(opaque);
  ++state->done;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && state->first_error.empty()) {
    state->first_error = rd_kafka_err2str(m->err);
  }
}

struct ErrorState {
  std::vector<std::pair<int, std::string>> errors;
};

void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  static_cast<ErrorState*>(opaque)->errors.emplace_back(err, reason);
}

}  // namespace

std::string kafka_produce(const KafkaConfig& config, const std::string& topic,
                          const std::vector<std::string>& payloads,
                          std::chrono::milliseconds timeout) {
  DeliveryState state;
  Handle rk = make_handle(RD_KAFKA_PRODUCER, config,
                          {{"acks", "all"},
                           {"enable.idempotence", "true"},
                           {"log_level", "0"},
                           {"message.timeout.ms", std::to_string(timeout.count())}},
                          [&state](rd_kafka_conf_t* conf) {
                            rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
                            rd_kafka_conf_set_opaque(conf, &state);
                          });
  std::unique_ptr<rd_kafka_topic_t, TopicFree> rkt(
      rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr));
  for (const std::string& payload : payloads) {
    if (rd_kafka_produce(rkt.get(), RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                         const_cast<char*>(payload.data()), payload.size(), nullptr, 0,
                         nullptr) != 0) {
      return std::string("produce: ") + rd_kafka_err2str(rd_kafka_last_error());
    }
    rd_kafka_poll(rk.get(), 0);
  }
  rd_kafka_flush(rk.get(), static_cast<int>(timeout.count()) + 5000);
  if (!state.first_error.empty()) return state.first_error;
  if (state.done != payloads.size()) {
    return std::to_string(state.done) + " of " + std::to_string(payloads.size()) +
           " deliveries reported";
  }
  return {};
}

std::vector<std::string> kafka_consume(const KafkaConfig& config, const std::string& topic,
                                       std::size_t count, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Handle rk = make_handle(RD_KAFKA_CONSUMER, config,
                          {{"group.id", "prpc-test-reader"},
                           {"enable.auto.commit", "false"},
                           {"auto.offset.reset", "earliest"},
                           {"log_level", "0"}},
                          [](rd_kafka_conf_t*) {});
  // The partitions, from the metadata (the topic may still be being created).
  int partitions = 0;
  {
    std::unique_ptr<rd_kafka_topic_t, TopicFree> rkt(
        rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr));
    while (partitions == 0 && std::chrono::steady_clock::now() < deadline) {
      const rd_kafka_metadata_t* md = nullptr;
      if (rd_kafka_metadata(rk.get(), 0, rkt.get(), &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          partitions = md->topics[0].partition_cnt;
        }
        rd_kafka_metadata_destroy(md);
      }
      if (partitions == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::vector<std::string> out;
  if (partitions == 0) return out;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.emplace_back(static_cast<const char*>(m->payload), m->len);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk.get());
  return out;
}

KafkaProbeResult kafka_probe(const KafkaConfig& config, std::chrono::milliseconds timeout) {
  ErrorState state;
  Handle rk =
      make_handle(RD_KAFKA_PRODUCER, config, {{"log_level", "0"}}, [&state](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_error_cb(conf, on_error);
        rd_kafka_conf_set_opaque(conf, &state);
      });
  KafkaProbeResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto decisive = [&state] {
    for (const auto& [code, text] : state.errors) {
      if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION || code == RD_KAFKA_RESP_ERR__SSL) {
        return true;
      }
    }
    return false;
  };
  while (std::chrono::steady_clock::now() < deadline) {
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk.get(), 1, nullptr, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_metadata_destroy(md);
      result.ok = true;
      break;
    }
    rd_kafka_poll(rk.get(), 0);  // serves the error callback
    if (decisive()) break;
  }
  rd_kafka_poll(rk.get(), 0);
  for (const auto& [code, text] : state.errors) {
    bool better = code == RD_KAFKA_RESP_ERR__AUTHENTICATION || code == RD_KAFKA_RESP_ERR__SSL;
    if (result.error_code == 0 ||
        (better && result.error_code != RD_KAFKA_RESP_ERR__AUTHENTICATION &&
         result.error_code != RD_KAFKA_RESP_ERR__SSL)) {
      result.error_code = code;
      result.error = text;
    }
  }
  return result;
}

}  // namespace prpc::testing
