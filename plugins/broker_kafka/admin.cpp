// Topics and metadata: creating a queue's topics, partition counts, watermarks.
#include <thread>

#include "kafka_impl.hpp"

namespace prpc::kafka {

// ---- topics ----
Status KafkaBroker::Impl::ensure_topics(std::string_view queue) {
  std::string q(queue);
  {
    std::lock_guard lock(topics_mutex_);
    if (ensured_.count(q) != 0) return Status::ok();
  }
  PRPC_RETURN_IF_ERROR(require_connected());
  std::vector<std::string> names = {
      request_topic(q, Flavour::kPython), request_topic(q, Flavour::kRaw),
      reply_topic(q, Flavour::kPython), reply_topic(q, Flavour::kRaw), dead_topic(q)};
  PRPC_RETURN_IF_ERROR(create_topics(names));
  std::lock_guard lock(topics_mutex_);
  ensured_.insert(q);
  return Status::ok();
}

Status KafkaBroker::Impl::create_topics(const std::vector<std::string>& wanted,
                                        std::int32_t partitions,
                                        const std::map<std::string, std::string>& config) {
  if (partitions <= 0) partitions = settings_.partitions;
  rd_kafka_t* rk = producer_.get();
  // Usually every topic is there already: one metadata answer says so.
  std::vector<std::string> names;
  for (const std::string& n : wanted) {
    auto count = partition_count(rk, n);
    if (!count.is_ok() || *count == 0) names.push_back(n);
  }
  if (names.empty()) return Status::ok();
  char err[512];
  std::vector<NewTopicPtr> owned;
  std::vector<rd_kafka_NewTopic_t*> topics;  // the same, as the array CreateTopics takes
  for (const std::string& n : names) {
    NewTopicPtr t(rd_kafka_NewTopic_new(n.c_str(), partitions, settings_.replication_factor, err,
                                        sizeof(err)));
    if (!t) {
      return Status(StatusCode::kInvalidArgument, std::string("kafka: topic ") + n + ": " + err);
    }
    for (const auto& [k, v] : config) {
      rd_kafka_resp_err_t e = rd_kafka_NewTopic_set_config(t.get(), k.c_str(), v.c_str());
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::string what = "kafka: topic " + n;
        what += ": ";
        what += k;
        return kafka_status(e, what);
      }
    }
    topics.push_back(t.get());
    owned.push_back(std::move(t));
  }
  QueuePtr queue(rd_kafka_queue_new(rk));
  AdminOptionsPtr opts(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_request_timeout(opts.get(), timeout_ms(settings_.admin_timeout), err,
                                            sizeof(err));
  rd_kafka_CreateTopics(rk, topics.data(), topics.size(), opts.get(), queue.get());
  topics.clear();
  owned.clear();  // CreateTopics copied them
  EventPtr ev(rd_kafka_queue_poll(queue.get(), timeout_ms(settings_.admin_timeout) + 1000));
  bool fallback = false;
  if (!ev) {
    return Status(StatusCode::kTimeout, "kafka: no answer to CreateTopics");
  }
  if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Clusters without the admin API (librdkafka's mock cluster) create topics on first use.
    log_.debug(std::string("CreateTopics failed (") + rd_kafka_event_error_string(ev.get()) +
               "); relying on automatic topic creation");
    fallback = true;
  } else {
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev.get());
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_.info(std::string("created topic ") + rd_kafka_topic_result_name(results[i]));
      } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* msg = rd_kafka_topic_result_error_string(results[i]);
        return kafka_status(e, std::string("kafka: creating topic ") +
                                   rd_kafka_topic_result_name(results[i]) +
                                   (msg != nullptr ? std::string(" (") + msg + ")" : ""));
      }
    }
  }
  // Wait until the metadata shows every topic with its partitions (a new topic's leaders take
  // a moment), so producers and assignments that follow find them.
  auto deadline = Clock::now() + settings_.admin_timeout;
  for (const std::string& n : names) {
    for (;;) {
      auto count = partition_count(rk, n, fallback);
      if (count.is_ok() && *count > 0) break;
      if (Clock::now() >= deadline) {
        return Status(StatusCode::kTimeout, "kafka: topic " + n + " did not appear in time");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a bounded retry
    }
  }
  return Status::ok();
}

// The topic's partition count with leaders, from a metadata request. `auto_create` asks for
// the topic by name, which creates it on clusters that allow that.
Result<std::int32_t> KafkaBroker::Impl::partition_count(rd_kafka_t* rk, const std::string& topic,
                                                        bool auto_create) const {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e;
  if (auto_create) {
    TopicPtr rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
    e = rd_kafka_metadata(rk, 0, rkt.get(), &md, timeout_ms(settings_.admin_timeout));
  } else {
    e = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms(settings_.admin_timeout));
  }
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: metadata of " + topic);
  MetadataPtr owned(md);
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = md->topics[i];
    if (topic != t.topic) continue;
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(t.err, "kafka: topic " + topic);
    for (int p = 0; p < t.partition_cnt; ++p) {
      if (t.partitions[p].leader < 0) return std::int32_t{0};
    }
    return std::int32_t{t.partition_cnt};
  }
  return std::int32_t{0};
}

// Watermarks of one partition. A topic created a moment ago answers "not leader" for a short
// while, so transient errors are retried within the admin timeout.
rd_kafka_resp_err_t KafkaBroker::Impl::watermarks(rd_kafka_t* rk, const char* topic,
                                                  std::int32_t partition, std::int64_t* low,
                                                  std::int64_t* high) const {
  auto deadline = Clock::now() + settings_.admin_timeout;
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, partition, low, high,
                                                             timeout_ms(settings_.admin_timeout));
    bool transient = e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                     e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                     e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                     e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || e == RD_KAFKA_RESP_ERR__TRANSPORT;
    if (!transient || Clock::now() >= deadline) return e;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a bounded retry
  }
}

}  // namespace prpc::kafka
