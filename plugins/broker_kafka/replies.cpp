// The client side: publishing requests, and the listener on the one partition of the feedback
// topics that this client owns.
#include <random>

#include "kafka_impl.hpp"
#include "prpc/protocol.hpp"

namespace prpc::kafka {

// ---- client side ----
void KafkaBroker::Impl::publish(const PublishView& m, DoneCallback done) {
  Status s = ensure_topics(m.queue);
  if (!s.is_ok()) {
    done(s);
    return;
  }
  Headers headers;
  if (!m.signature.empty()) {
    headers.emplace_back(protocol::kSignatureHeader, std::string(m.signature));
    if (!m.key_id.empty()) headers.emplace_back(protocol::kKeyIdHeader, std::string(m.key_id));
  }
  produce(
      request_topic(m.queue, m.flavour), RD_KAFKA_PARTITION_UA, m.message_id, m.payload, headers,
      [done = std::move(done)](rd_kafka_resp_err_t e) {
        done(kafka_status(e, "kafka: producing the request"));
      },
      tracing());
}

Result<std::string> KafkaBroker::Impl::open_replies_signed(std::string_view queue,
                                                           PushedReplyHandler on_reply) {
  std::lock_guard lock(replies_mutex_);
  std::string q(queue);
  if (auto it = listeners_.find(q); it != listeners_.end()) {
    std::lock_guard hl(it->second->handler_mutex);
    it->second->handler = std::make_shared<PushedReplyHandler>(std::move(on_reply));
    return it->second->address;
  }
  PRPC_RETURN_IF_ERROR(ensure_topics(q));
  // Python replies come on a partition of prpc_feedback_{q}, raw ones on the same partition
  // of prpc_feedback_raw_{q}: an original PRPC client scanning prpc_feedback_{q} decodes every
  // record there as jsonpickle, so no raw JSON may land on it.
  std::string topic = reply_topic(q, Flavour::kPython);
  std::string raw_topic = reply_topic(q, Flavour::kRaw);
  PRPC_ASSIGN_OR_RETURN(std::int32_t count, partition_count(producer_.get(), topic));
  PRPC_ASSIGN_OR_RETURN(std::int32_t raw_count, partition_count(producer_.get(), raw_topic));
  count = std::min(count, raw_count);
  if (count <= 0)
    return Status(StatusCode::kUnavailable, "kafka: topic " + topic + " has no partitions");
  std::random_device rd;
  std::int32_t partition = static_cast<std::int32_t>(rd() % static_cast<unsigned>(count));

  auto listener = std::make_unique<ReplyListener>();
  PRPC_ASSIGN_OR_RETURN(listener->consumer, make_consumer(standalone()));
  // Read from the end as it is now, not as it is when the first fetch starts: a reply produced
  // in between would otherwise be skipped.
  PartitionListPtr list(rd_kafka_topic_partition_list_new(2));
  for (const std::string& t : {topic, raw_topic}) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    rd_kafka_resp_err_t e = watermarks(listener->consumer.get(), t.c_str(), partition, &low, &high);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: end offset of " + t);
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), partition)->offset = high;
    if (tracing()) {
      log_.info("trace client listening " + t + "[" + std::to_string(partition) +
                "] from=" + std::to_string(high) + " low=" + std::to_string(low));
    }
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(listener->consumer.get(), list.get());
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: assigning " + topic);
  listener->address = reply_address(topic, partition);
  listener->handler = std::make_shared<PushedReplyHandler>(std::move(on_reply));
  ReplyListener* raw = listener.get();
  bool trace = tracing();
  listener->thread = std::thread([this, raw, trace] {
    while (!raw->stop.load()) {
      MessagePtr m(rd_kafka_consumer_poll(raw->consumer.get(), 100));
      if (m && trace) {
        log_.info("trace client " +
                  std::string(m->err != RD_KAFKA_RESP_ERR_NO_ERROR
                                  ? std::string("error ") + rd_kafka_err2name(m->err)
                                  : std::string("reply")) +
                  " " + (m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "?") + "[" +
                  std::to_string(m->partition) + "] off=" + std::to_string(m->offset) +
                  " key=" + std::string(message_key(m.get())));
      }
      if (!m || m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      std::shared_ptr<PushedReplyHandler> h;
      {
        std::lock_guard hl(raw->handler_mutex);
        h = raw->handler;
      }
      if (!h || !*h) continue;
      std::string signature = header_value(m.get(), protocol::kSignatureHeader);
      std::string key_id = header_value(m.get(), protocol::kKeyIdHeader);
      (*h)(PushedReplyView{message_key(m.get()), message_value(m.get()), signature, key_id});
    }
  });
  std::string address = listener->address;
  log_.debug("listening for replies on " + address);
  listeners_.emplace(q, std::move(listener));
  return address;
}

}  // namespace prpc::kafka
