// RAII owners for librdkafka's C handles and small helpers around them.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "prpc/status.hpp"

namespace prpc::kafka {

struct HandleDeleter {
  void operator()(rd_kafka_t* p) const noexcept { rd_kafka_destroy(p); }
  void operator()(rd_kafka_conf_t* p) const noexcept { rd_kafka_conf_destroy(p); }
  void operator()(rd_kafka_queue_t* p) const noexcept { rd_kafka_queue_destroy(p); }
  void operator()(rd_kafka_topic_partition_list_t* p) const noexcept {
    rd_kafka_topic_partition_list_destroy(p);
  }
  void operator()(rd_kafka_message_t* p) const noexcept { rd_kafka_message_destroy(p); }
  void operator()(rd_kafka_event_t* p) const noexcept { rd_kafka_event_destroy(p); }
  void operator()(rd_kafka_error_t* p) const noexcept { rd_kafka_error_destroy(p); }
  void operator()(const rd_kafka_metadata_t* p) const noexcept { rd_kafka_metadata_destroy(p); }
  void operator()(rd_kafka_topic_t* p) const noexcept { rd_kafka_topic_destroy(p); }
  void operator()(rd_kafka_AdminOptions_t* p) const noexcept { rd_kafka_AdminOptions_destroy(p); }
  void operator()(rd_kafka_headers_t* p) const noexcept { rd_kafka_headers_destroy(p); }
  void operator()(const rd_kafka_group_list* p) const noexcept { rd_kafka_group_list_destroy(p); }
  void operator()(rd_kafka_NewTopic_t* p) const noexcept { rd_kafka_NewTopic_destroy(p); }
};

using KafkaPtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, HandleDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, HandleDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, HandleDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, HandleDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, HandleDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, HandleDeleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, HandleDeleter>;
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, HandleDeleter>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, HandleDeleter>;
using GroupListPtr = std::unique_ptr<const rd_kafka_group_list, HandleDeleter>;
using NewTopicPtr = std::unique_ptr<rd_kafka_NewTopic_t, HandleDeleter>;

inline int timeout_ms(std::chrono::milliseconds t) {
  return static_cast<int>(std::min<std::int64_t>(t.count(), 1'000'000'000));
}

// Kafka errors a caller may retry map to kUnavailable; the rest keep their meaning.
inline Status kafka_status(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::ok();
  std::string msg(context);
  msg += ": ";
  msg += rd_kafka_err2str(err);
  switch (err) {
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT: return Status(StatusCode::kTimeout, std::move(msg));
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return Status(StatusCode::kResourceExhausted, std::move(msg));
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      return Status(StatusCode::kInvalidArgument, std::move(msg));
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      return Status(StatusCode::kFailedPrecondition, std::move(msg));
    default: return Status(StatusCode::kUnavailable, std::move(msg));
  }
}

}  // namespace prpc::kafka
