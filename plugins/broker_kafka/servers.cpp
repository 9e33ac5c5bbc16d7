// The servers of a queue: each announces itself (a record keyed by its id in the queue's servers
// topic, prpc-servers-{q}), and list_servers() reads that topic from where it last stopped and
// keeps the newest announcement per server.
#include <algorithm>

#include "kafka_impl.hpp"
#include "prpc/json.hpp"

namespace prpc::kafka {

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// Compacted (the newest announcement per server is what matters) and short-lived: segments roll
// every minute, so compaction and deletion can reach them; what is older than the history plus a
// minute goes. Stamped by the cluster (LogAppendTime): every server's age is measured against
// one clock, whatever the servers' own clocks say.
Status KafkaBroker::Impl::ensure_servers_topic(const std::string& topic) {
  {
    std::lock_guard lock(topics_mutex_);
    if (servers_topics_.count(topic) != 0) return Status::ok();
  }
  PRPC_RETURN_IF_ERROR(require_connected());
  std::int64_t retention = settings_.server_history.count() + 60'000;
  PRPC_RETURN_IF_ERROR(create_topics({topic}, 1,
                                     {{"cleanup.policy", "compact,delete"},
                                      {"retention.ms", std::to_string(retention)},
                                      {"segment.ms", "60000"},
                                      {"message.timestamp.type", "LogAppendTime"}}));
  std::lock_guard lock(topics_mutex_);
  servers_topics_.insert(topic);
  return Status::ok();
}

void KafkaBroker::Impl::announce_server(std::string_view queue, std::string_view server_id,
                                        std::string_view info_json, std::chrono::milliseconds ttl,
                                        DoneCallback done) {
  auto checked = json::checked_announcement(queue, server_id, info_json, ttl.count());
  if (!checked.is_ok()) {
    done(checked.status());
    return;
  }
  std::string info = std::move(*checked);
  std::string topic = servers_topic(queue);
  bool ready = false;
  if (producer_) {
    std::lock_guard lock(topics_mutex_);
    ready = servers_topics_.count(topic) != 0;
  }
  if (ready) {
    produce_announcement(topic, std::string(server_id), info, ttl.count(), std::move(done));
    return;
  }
  // The first announcement may have to connect and create the topic: not on the caller's thread.
  in_background([this, topic = std::move(topic), id = std::string(server_id),
                 info = std::move(info), ttl_ms = ttl.count(),
                 done = std::move(done)](bool cancelled) mutable {
    if (cancelled) {
      done(Status(StatusCode::kCancelled, "kafka: the broker is shutting down"));
      return;
    }
    Status s = ensure_servers_topic(topic);
    if (!s.is_ok()) {
      done(s);
      return;
    }
    produce_announcement(topic, id, info, ttl_ms, std::move(done));
  });
}

void KafkaBroker::Impl::produce_announcement(const std::string& topic, const std::string& server_id,
                                             const std::string& info, std::int64_t ttl_ms,
                                             DoneCallback done) {
  produce(topic, RD_KAFKA_PARTITION_UA, server_id, info, {{kHeaderTtl, std::to_string(ttl_ms)}},
          [done = std::move(done)](rd_kafka_resp_err_t err) {
            done(kafka_status(err, "kafka: announcing a server"));
          });
}

Result<std::string> KafkaBroker::Impl::list_servers(std::string_view queue) {
  PRPC_RETURN_IF_ERROR(require_connected());
  std::string topic = servers_topic(queue);
  std::vector<ServerRecord> records;
  std::lock_guard lock(servers_mutex_);
  ServersView& view = servers_views_[topic];
  PRPC_RETURN_IF_ERROR(read_announcements(topic, view));
  std::int64_t now = wall_ms();
  for (auto it = view.servers.begin(); it != view.servers.end();) {
    const Announcement& a = it->second;
    std::int64_t age = now - a.stamp_ms;
    if (age >= a.ttl_ms + settings_.server_history.count()) {
      it = view.servers.erase(it);  // silent for long enough to be forgotten
      continue;
    }
    records.push_back(
        ServerRecord{it->first, age < a.ttl_ms, std::chrono::milliseconds(age), a.info_json});
    ++it;
  }
  return servers_json(records);
}

// Reads the records added to `topic` since the last call (all retained ones the first time) up to
// the end offsets of now, within the admin timeout. Records that are not announcements (no
// valid ttl, an info that is not a JSON object) are skipped; an empty value forgets the server.
Status KafkaBroker::Impl::read_announcements(const std::string& topic, ServersView& view) {
  if (!servers_reader_) {
    auto props = standalone();
    props["enable.partition.eof"] = "true";  // the end is reached even when compaction left a gap
    PRPC_ASSIGN_OR_RETURN(servers_reader_, make_consumer(props));
  }
  rd_kafka_t* rk = servers_reader_.get();
  PRPC_ASSIGN_OR_RETURN(std::int32_t count, partition_count(rk, topic));
  std::map<std::int32_t, std::int64_t> ends;  // partition -> end offset to reach
  PartitionListPtr assign(rd_kafka_topic_partition_list_new(std::max(count, 1)));
  for (std::int32_t p = 0; p < count; ++p) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    rd_kafka_resp_err_t e = watermarks(rk, topic.c_str(), p, &low, &high);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: end offset of " + topic);
    auto next = view.next.find(p);
    std::int64_t start = next == view.next.end() ? low : std::max(low, next->second);
    if (start >= high) {
      view.next[p] = std::max(start, high);
      continue;
    }
    ends[p] = high;
    view.next[p] = start;
    rd_kafka_topic_partition_list_add(assign.get(), topic.c_str(), p)->offset = start;
  }
  if (ends.empty()) return Status::ok();
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, assign.get());
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: assigning " + topic);
  auto deadline = Clock::now() + settings_.admin_timeout;
  Status result = Status::ok();
  while (!ends.empty()) {
    if (Clock::now() >= deadline) {
      result = Status(StatusCode::kTimeout, "kafka: reading " + topic + " took too long");
      break;
    }
    MessagePtr m(rd_kafka_consumer_poll(rk, 100));
    if (!m) continue;
    auto it = ends.find(m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // An end reported before this call's assignment (still queued from the previous one) is
      // below the end offset it must reach.
      if (it != ends.end() && m->offset >= it->second) {
        view.next[m->partition] = m->offset;
        ends.erase(it);
      }
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      result = kafka_status(m->err, "kafka: reading " + topic);
      break;
    }
    if (it == ends.end() || m->offset < view.next[m->partition]) continue;
    view.next[m->partition] = m->offset + 1;
    if (m->offset + 1 >= it->second) ends.erase(it);
    std::string id(message_key(m.get()));
    if (id.empty()) continue;
    if (m->payload == nullptr) {
      view.servers.erase(id);  // a tombstone
      continue;
    }
    auto ttl = parse_ttl_ms(header_value(m.get(), kHeaderTtl));
    std::string info(message_value(m.get()));
    rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    std::int64_t stamp = rd_kafka_message_timestamp(m.get(), &type);
    if (!ttl || stamp < 0 || !json::announced_info(info).is_ok()) continue;
    view.servers[id] = Announcement{std::move(info), stamp, *ttl};
  }
  rd_kafka_assign(rk, nullptr);
  return result;
}

}  // namespace prpc::kafka
