#include "kafka_broker.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "kafka_handles.hpp"
#include "offset_ledger.hpp"
#include "prpc/protocol.hpp"

namespace prpc::kafka {

std::string request_topic(std::string_view queue, Flavour flavour) {
  return protocol::request_stream(flavour, queue);
}
std::string reply_topic(std::string_view queue, Flavour flavour) {
  return protocol::reply_topic(flavour, queue);
}
std::string dead_topic(std::string_view queue) { return protocol::dead_letter_stream(queue); }

namespace {

using Clock = std::chrono::steady_clock;

// Header names on dead-lettered records.
constexpr const char* kHeaderReason = "prpc-reason";
constexpr const char* kHeaderFlavour = "prpc-flavour";
constexpr const char* kHeaderSource = "prpc-source";
constexpr const char* kHeaderCount = "prpc-delivery-count";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view message_key(const rd_kafka_message_t* m) {
  if (m->key == nullptr) return {};
  return {static_cast<const char*>(m->key), m->key_len};
}
std::string_view message_value(const rd_kafka_message_t* m) {
  if (m->payload == nullptr) return {};
  return {static_cast<const char*>(m->payload), m->len};
}

std::string header_value(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* hdrs = nullptr;
  // The headers belong to the message; do not free them.
  if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr) {
    return {};
  }
  return std::string(static_cast<const char*>(value), size);
}

// reply_to: "<feedback topic>:<partition>". A malformed or foreign address yields nullopt and the
// reply falls back to the default (key-hash) partitioner.
std::optional<std::int32_t> reply_partition(std::string_view reply_to, std::string_view topic) {
  std::size_t colon = reply_to.rfind(':');
  if (colon == std::string_view::npos || reply_to.substr(0, colon) != topic) return std::nullopt;
  std::string_view digits = reply_to.substr(colon + 1);
  std::int32_t p = -1;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || p < 0) return std::nullopt;
  return p;
}

// What every handle's opaque points to: its log, and for the group consumer its subscription.
struct HandleContext {
  const sdk::Logger* log = nullptr;
  void* subscription = nullptr;
};

// Where a librdkafka log line goes: syslog levels to PRPC levels.
void log_callback(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  auto* ctx = static_cast<const HandleContext*>(rd_kafka_opaque(rk));
  if (ctx == nullptr || ctx->log == nullptr) return;
  const sdk::Logger* log = ctx->log;
  std::string line = std::string(rd_kafka_name(rk)) + " " + fac + ": " + buf;
  if (level <= 3) {
    log->error(line);
  } else if (level == 4) {
    log->warn(line);
  } else if (level <= 6) {
    log->info(line);
  } else {
    log->debug(line);
  }
}

// Offset commits that failed (async ones are only known here). Records after a partition's last
// commit are delivered again to its next owner: a repeat, never a loss, but worth a line.
void commit_callback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  auto* ctx = static_cast<const HandleContext*>(opaque);
  if (ctx == nullptr || ctx->log == nullptr) return;
  std::string line = std::string(rd_kafka_name(rk)) + ": offset commit failed (" +
                     rd_kafka_err2name(err) + ")";
  for (int i = 0; offsets != nullptr && i < offsets->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = offsets->elems[i];
    line += ' ';
    line += p.topic;
    line += "[" + std::to_string(p.partition) + "]=" + std::to_string(p.offset);
  }
  line += "; calls after the last commit may run again on the partitions' next owner";
  // Commits racing a rebalance are refused by design; anything else deserves a warning.
  if (err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
      err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
      err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || err == RD_KAFKA_RESP_ERR__STATE) {
    ctx->log->info(line);
  } else {
    ctx->log->warn(line);
  }
}

// Results this process produced, for redeliveries that land here again: bounded, oldest out first.
class ResultCache {
 public:
  explicit ResultCache(std::size_t capacity) : capacity_(capacity) {}

  void put(const std::string& key, std::string payload) {
    if (capacity_ == 0) return;
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) {
      it->second->second = std::move(payload);
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    order_.emplace_front(key, std::move(payload));
    index_[key] = order_.begin();
    while (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }
  std::optional<std::string> get(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    return it->second->second;
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::pair<std::string, std::string>> order_;
  std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator> index_;
};

std::string cache_key(Flavour f, std::string_view queue, std::string_view id) {
  std::string k(flavour_name(f));
  k += '\n';
  k += queue;
  k += '\n';
  k += id;
  return k;
}

// The commit state of one assigned partition, for one assignment (a reassignment is a new one).
struct PartitionState {
  std::string topic;
  std::int32_t partition = 0;
  Flavour flavour = Flavour::kPython;
  std::string queue;
  std::uint64_t epoch = 0;
  bool revoked = false;
  bool dirty = false;
  OffsetLedger ledger;
  FetchCursor cursor;  // consumer thread only (under states_mutex_ with the ledger)
  // For trace_offsets: where the fetch and the hand-overs of this assignment got to.
  std::int64_t last_fetched = -1;
  std::int64_t last_handed = -1;

  std::string where() const {
    return topic + "[" + std::to_string(partition) + "]e" + std::to_string(epoch);
  }

  PartitionState(std::int64_t committed, DeliveryCounts inherited, std::int64_t suspect_end)
      : ledger(committed, std::move(inherited), suspect_end), cursor(committed) {}
};
using StatePtr = std::shared_ptr<PartitionState>;

// A record fetched but not (or no longer) handed over.
struct Held {
  StatePtr state;
  std::int64_t offset = 0;
  std::int64_t timestamp = 0;
  std::string key;
  std::string payload;
  bool retry = false;  // its earlier delivery's finish failed
};

}  // namespace

// ---- Impl ------------------------------------------------------------------------------------

class KafkaBroker::Impl : public std::enable_shared_from_this<KafkaBroker::Impl> {
 public:
  Impl(Settings settings, sdk::Logger log)
      : settings_(std::move(settings)),
        log_(std::move(log)),
        cache_(settings_.result_cache_entries) {
    log_context_.log = &log_;
  }

  ~Impl() { shutdown(); }

  void shutdown();

  // trace_offsets: one line per event in a record's life on this server.
  bool tracing() const { return settings_.trace_offsets; }

  // ---- configuration ----
  Result<ConfPtr> make_conf(bool producer, const std::map<std::string, std::string>& fixed) {
    ConfPtr conf(rd_kafka_conf_new());
    char err[512];
    auto set = [&](const std::string& k, const std::string& v) -> Status {
      if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof(err)) !=
          RD_KAFKA_CONF_OK) {
        // librdkafka's text may quote the value: keep it out for secrets.
        std::string why = is_secret_property(k) ? std::string("invalid value") : std::string(err);
        return Status(StatusCode::kInvalidArgument,
                      "kafka: property '" + k + "' rejected: " + why);
      }
      return Status::ok();
    };
    PRPC_RETURN_IF_ERROR(set("bootstrap.servers", settings_.bootstrap));
    PRPC_RETURN_IF_ERROR(set("client.id", settings_.client_id));
    PRPC_RETURN_IF_ERROR(set("socket.nagle.disable", "true"));
    // Defaults first, then what the user passed through, then what correctness needs.
    std::map<std::string, std::string> defaults;
    if (producer) {
      defaults = {{"linger.ms", settings_.linger_ms}, {"message.timeout.ms", "60000"}};
    } else {
      defaults = {{"queued.min.messages", "1000"}, {"fetch.wait.max.ms", "100"}};
    }
    for (const auto& [k, v] : defaults) PRPC_RETURN_IF_ERROR(set(k, v));
    for (const auto& [k, v] : settings_.common) PRPC_RETURN_IF_ERROR(set(k, v));
    for (const auto& [k, v] : producer ? settings_.producer : settings_.consumer) {
      PRPC_RETURN_IF_ERROR(set(k, v));
    }
    for (const auto& [k, v] : fixed) PRPC_RETURN_IF_ERROR(set(k, v));
    rd_kafka_conf_set_log_cb(conf.get(), &log_callback);
    rd_kafka_conf_set_opaque(conf.get(), &log_context_);
    return conf;
  }

  // A consumer that only reads assigned partitions: librdkafka 2.0 wants a group.id for
  // rd_kafka_assign, so it gets a private one that never joins nor commits.
  std::map<std::string, std::string> standalone() const {
    return {{"group.id", "prpc-standalone-" + settings_.client_id},
            {"enable.partition.eof", "false"},
            {"enable.auto.commit", "false"},
            {"enable.auto.offset.store", "false"}};
  }

  Result<KafkaPtr> make_consumer(const std::map<std::string, std::string>& fixed,
                                 void (*rebalance)(rd_kafka_t*, rd_kafka_resp_err_t,
                                                   rd_kafka_topic_partition_list_t*, void*) =
                                     nullptr,
                                 HandleContext* context = nullptr) {
    PRPC_ASSIGN_OR_RETURN(ConfPtr conf, make_conf(false, fixed));
    if (rebalance != nullptr) rd_kafka_conf_set_rebalance_cb(conf.get(), rebalance);
    if (context != nullptr) {
      rd_kafka_conf_set_opaque(conf.get(), context);
      rd_kafka_conf_set_offset_commit_cb(conf.get(), &commit_callback);
    }
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof(err));
    if (rk == nullptr) return Status(StatusCode::kInvalidArgument, std::string("kafka: ") + err);
    (void)conf.release();  // owned by rk now
    rd_kafka_poll_set_consumer(rk);
    return KafkaPtr(rk);
  }

  // ---- connection ----
  Status connect() {
    std::lock_guard lock(connect_mutex_);
    if (producer_) return Status::ok();
    PRPC_ASSIGN_OR_RETURN(ConfPtr conf,
                          make_conf(true, {{"enable.idempotence", "true"}, {"acks", "all"}}));
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &Impl::on_delivery_report);
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof(err));
    if (rk == nullptr) return Status(StatusCode::kInvalidArgument, std::string("kafka: ") + err);
    (void)conf.release();
    KafkaPtr producer(rk);
    // Fail fast on an unreachable cluster: one metadata answer proves the connection.
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e =
        rd_kafka_metadata(rk, 0, nullptr, &md, timeout_ms(settings_.connect_timeout));
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return kafka_status(e, "kafka: no metadata from " + settings_.bootstrap);
    }
    rd_kafka_metadata_destroy(md);
    producer_ = std::move(producer);
    running_ = true;
    producer_thread_ = std::thread([this] { producer_loop(); });
    log_.info("connected to " + settings_.bootstrap);
    return Status::ok();
  }

  Status require_connected() {
    if (producer_) return Status::ok();
    return connect();
  }

  // ---- produce ----
  struct ProduceWaiter {
    std::function<void(rd_kafka_resp_err_t)> done;
  };

  static void on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    std::unique_ptr<ProduceWaiter> w(static_cast<ProduceWaiter*>(m->_private));
    if (w && w->done) w->done(m->err);
  }

  void producer_loop() {
    while (running_.load()) {
      rd_kafka_poll(producer_.get(), 100);
      flush_commits();
    }
  }

  using Headers = std::vector<std::pair<std::string, std::string>>;

  // Produces one record; `done` runs once with the delivery report's error.
  void produce(const std::string& topic, std::int32_t partition, std::string_view key,
               std::string_view value, const Headers& headers,
               std::function<void(rd_kafka_resp_err_t)> done) {
    auto* waiter = new ProduceWaiter{std::move(done)};
    std::vector<rd_kafka_vu_t> vus;
    vus.reserve(6 + headers.size());
    rd_kafka_vu_t v{};
    v.vtype = RD_KAFKA_VTYPE_TOPIC;
    v.u.cstr = topic.c_str();
    vus.push_back(v);
    v = {};
    v.vtype = RD_KAFKA_VTYPE_PARTITION;
    v.u.i32 = partition;
    vus.push_back(v);
    if (!key.empty()) {
      v = {};
      v.vtype = RD_KAFKA_VTYPE_KEY;
      v.u.mem.ptr = const_cast<char*>(key.data());
      v.u.mem.size = key.size();
      vus.push_back(v);
    }
    v = {};
    v.vtype = RD_KAFKA_VTYPE_VALUE;
    v.u.mem.ptr = const_cast<char*>(value.data());
    v.u.mem.size = value.size();
    vus.push_back(v);
    v = {};
    v.vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    v.u.i = RD_KAFKA_MSG_F_COPY;
    vus.push_back(v);
    for (const auto& [name, val] : headers) {
      v = {};
      v.vtype = RD_KAFKA_VTYPE_HEADER;
      v.u.header.name = name.c_str();
      v.u.header.val = val.data();
      v.u.header.size = static_cast<ssize_t>(val.size());
      vus.push_back(v);
    }
    v = {};
    v.vtype = RD_KAFKA_VTYPE_OPAQUE;
    v.u.ptr = waiter;
    vus.push_back(v);
    ErrorPtr error(rd_kafka_produceva(producer_.get(), vus.data(), vus.size()));
    if (error) {
      rd_kafka_resp_err_t code = rd_kafka_error_code(error.get());
      std::unique_ptr<ProduceWaiter> owned(waiter);
      if (owned->done) owned->done(code);
    }
  }

  // ---- topics ----
  Status ensure_topics(std::string_view queue) {
    std::string q(queue);
    {
      std::lock_guard lock(topics_mutex_);
      if (ensured_.count(q) != 0) return Status::ok();
    }
    PRPC_RETURN_IF_ERROR(require_connected());
    std::vector<std::string> names = {request_topic(q, Flavour::kPython),
                                      request_topic(q, Flavour::kRaw),
                                      reply_topic(q, Flavour::kPython),
                                      reply_topic(q, Flavour::kRaw), dead_topic(q)};
    PRPC_RETURN_IF_ERROR(create_topics(names));
    std::lock_guard lock(topics_mutex_);
    ensured_.insert(q);
    return Status::ok();
  }

  Status create_topics(const std::vector<std::string>& wanted) {
    rd_kafka_t* rk = producer_.get();
    // Usually every topic is there already: one metadata answer says so.
    std::vector<std::string> names;
    for (const std::string& n : wanted) {
      auto count = partition_count(rk, n);
      if (!count.is_ok() || *count == 0) names.push_back(n);
    }
    if (names.empty()) return Status::ok();
    char err[512];
    std::vector<rd_kafka_NewTopic_t*> topics;
    for (const std::string& n : names) {
      rd_kafka_NewTopic_t* t = rd_kafka_NewTopic_new(n.c_str(), settings_.partitions,
                                                     settings_.replication_factor, err,
                                                     sizeof(err));
      if (t == nullptr) {
        for (auto* x : topics) rd_kafka_NewTopic_destroy(x);
        return Status(StatusCode::kInvalidArgument, std::string("kafka: topic ") + n + ": " + err);
      }
      topics.push_back(t);
    }
    QueuePtr queue(rd_kafka_queue_new(rk));
    AdminOptionsPtr opts(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
    rd_kafka_AdminOptions_set_request_timeout(opts.get(), timeout_ms(settings_.admin_timeout), err,
                                              sizeof(err));
    rd_kafka_CreateTopics(rk, topics.data(), topics.size(), opts.get(), queue.get());
    for (auto* x : topics) rd_kafka_NewTopic_destroy(x);
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
  Result<std::int32_t> partition_count(rd_kafka_t* rk, const std::string& topic,
                                       bool auto_create = false) {
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
  rd_kafka_resp_err_t watermarks(rd_kafka_t* rk, const char* topic, std::int32_t partition,
                                 std::int64_t* low, std::int64_t* high) {
    auto deadline = Clock::now() + settings_.admin_timeout;
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
          rk, topic, partition, low, high, timeout_ms(settings_.admin_timeout));
      bool transient = e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                       e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                       e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                       e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                       e == RD_KAFKA_RESP_ERR__TRANSPORT;
      if (!transient || Clock::now() >= deadline) return e;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a bounded retry
    }
  }

  // ---- client side ----
  void publish(const PublishView& m, DoneCallback done) {
    Status s = ensure_topics(m.queue);
    if (!s.is_ok()) {
      done(s);
      return;
    }
    produce(request_topic(m.queue, m.flavour), RD_KAFKA_PARTITION_UA, m.message_id, m.payload, {},
            [done = std::move(done)](rd_kafka_resp_err_t e) {
              done(kafka_status(e, "kafka: producing the request"));
            });
  }

  struct ReplyListener {
    std::string address;
    KafkaPtr consumer;
    std::thread thread;
    std::atomic<bool> stop{false};
    std::mutex handler_mutex;
    std::shared_ptr<ReplyHandler> handler;
  };

  Result<std::string> open_replies(std::string_view queue, ReplyHandler on_reply) {
    std::lock_guard lock(replies_mutex_);
    std::string q(queue);
    if (auto it = listeners_.find(q); it != listeners_.end()) {
      std::lock_guard hl(it->second->handler_mutex);
      it->second->handler = std::make_shared<ReplyHandler>(std::move(on_reply));
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
    if (count <= 0) return Status(StatusCode::kUnavailable, "kafka: topic " + topic + " has no partitions");
    std::random_device rd;
    std::int32_t partition = static_cast<std::int32_t>(rd() % static_cast<unsigned>(count));

    auto listener = std::make_unique<ReplyListener>();
    PRPC_ASSIGN_OR_RETURN(listener->consumer,
                          make_consumer(standalone()));
    // Read from the end as it is now, not as it is when the first fetch starts: a reply produced
    // in between would otherwise be skipped.
    PartitionListPtr list(rd_kafka_topic_partition_list_new(2));
    for (const std::string& t : {topic, raw_topic}) {
      std::int64_t low = 0;
      std::int64_t high = 0;
      rd_kafka_resp_err_t e = watermarks(listener->consumer.get(), t.c_str(), partition, &low, &high);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: end offset of " + t);
      rd_kafka_topic_partition_list_add(list.get(), t.c_str(), partition)->offset = high;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(listener->consumer.get(), list.get());
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: assigning " + topic);
    listener->address = topic + ":" + std::to_string(partition);
    listener->handler = std::make_shared<ReplyHandler>(std::move(on_reply));
    ReplyListener* raw = listener.get();
    listener->thread = std::thread([raw] {
      while (!raw->stop.load()) {
        MessagePtr m(rd_kafka_consumer_poll(raw->consumer.get(), 100));
        if (!m || m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        std::shared_ptr<ReplyHandler> h;
        {
          std::lock_guard hl(raw->handler_mutex);
          h = raw->handler;
        }
        if (h && *h) (*h)(message_key(m.get()), message_value(m.get()));
      }
    });
    std::string address = listener->address;
    log_.debug("listening for replies on " + address);
    listeners_.emplace(q, std::move(listener));
    return address;
  }

  // ---- server side ----
  struct Subscription {
    // The handle goes first: its callbacks point into the members below.
    ~Subscription() { consumer.reset(); }
    Impl* impl = nullptr;
    HandleContext context;
    std::uint64_t id = 0;
    SubscribeOptions options;
    DeliveryHandler handler;
    KafkaPtr consumer;
    std::thread thread;
    std::atomic<bool> stop{false};      // leave now
    std::atomic<bool> draining{false};  // no more hand-overs; leave when nothing is outstanding
    std::mutex handler_mutex;           // held while the handler runs
    std::atomic<std::uint32_t> outstanding{0};
    bool paused = false;  // consumer thread only
    std::deque<Held> held;  // consumer thread only
    std::mutex retry_mutex;
    std::deque<Held> retries;  // finishes that failed, to hand over again
    std::string python_topic;
    std::string raw_topic;
    // Record timestamps of redelivered records by key, where lookups start scanning.
    std::mutex stamps_mutex;
    std::unordered_map<std::string, std::int64_t> stamps;
  };

  // Names the server by its consumer name, or by its librdkafka handle when it has none (two
  // subscriptions in one process would otherwise be told apart by nothing).
  void trace(const Subscription* sub, const std::string& what) const {
    std::string line = "trace ";
    line += sub->options.consumer.empty() ? std::string(rd_kafka_name(sub->consumer.get()))
                                          : sub->options.consumer;
    line += ' ';
    line += what;
    log_.info(line);
  }

  Status subscribe(const SubscribeOptions& options, DeliveryHandler handler) {
    PRPC_RETURN_IF_ERROR(require_connected());
    close_subscription();  // a previous one that was still draining
    if (!options.python && !options.raw) {
      return Status(StatusCode::kInvalidArgument, "kafka: subscribe to no flavour");
    }
    PRPC_RETURN_IF_ERROR(ensure_topics(options.queue));
    auto sub = std::make_shared<Subscription>();
    sub->impl = this;
    sub->id = next_subscription_.fetch_add(1) + 1;
    sub->options = options;
    if (sub->options.max_outstanding == 0) sub->options.max_outstanding = 1;
    if (sub->options.batch_size == 0) sub->options.batch_size = 1;
    sub->handler = std::move(handler);
    sub->python_topic = request_topic(options.queue, Flavour::kPython);
    sub->raw_topic = request_topic(options.queue, Flavour::kRaw);
    std::map<std::string, std::string> fixed = {
        {"group.id", options.group.empty() ? std::string("prpc_group_consumers") : options.group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"}};
    if (settings_.consumer.count("partition.assignment.strategy") == 0 &&
        settings_.common.count("partition.assignment.strategy") == 0) {
      // Partitions that stay put are not revoked at each rebalance, so their calls keep going.
      // Before librdkafka 2.3.0, though, a cooperative-sticky member that loses its membership
      // before its first assignment aborts the whole process (an assertion in
      // rd_kafka_sticky_assignor_state_destroy, librdkafka issue 4312; seen here under load
      // when a server joins during a rebalance): older libraries get the eager protocol.
      fixed["partition.assignment.strategy"] =
          rd_kafka_version() >= 0x020300ff ? "cooperative-sticky" : "range,roundrobin";
    }
    if (settings_.consumer.count("auto.offset.reset") == 0 &&
        settings_.common.count("auto.offset.reset") == 0) {
      fixed["auto.offset.reset"] = "earliest";  // requests sent before any server started
    }
    if (!options.consumer.empty()) fixed["client.id"] = settings_.client_id + "-" + options.consumer;
    sub->context.log = &log_;
    sub->context.subscription = sub.get();
    PRPC_ASSIGN_OR_RETURN(sub->consumer,
                          make_consumer(fixed, &Impl::on_rebalance, &sub->context));
    PartitionListPtr topics(rd_kafka_topic_partition_list_new(2));
    if (options.python) {
      rd_kafka_topic_partition_list_add(topics.get(), sub->python_topic.c_str(),
                                        RD_KAFKA_PARTITION_UA);
    }
    if (options.raw) {
      rd_kafka_topic_partition_list_add(topics.get(), sub->raw_topic.c_str(),
                                        RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(sub->consumer.get(), topics.get());
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: subscribe");
    Subscription* raw = sub.get();
    sub->thread = std::thread([this, raw] { consume_loop(raw); });
    std::lock_guard lock(sub_mutex_);
    sub_ = std::move(sub);
    log_.info("consuming " + std::string(options.python ? sub_->python_topic + " " : "") +
              (options.raw ? sub_->raw_topic : "") + " in group " + fixed["group.id"]);
    return Status::ok();
  }

  std::shared_ptr<Subscription> subscription() {
    std::lock_guard lock(sub_mutex_);
    return sub_;
  }

  void unsubscribe() {
    auto sub = subscription();
    if (!sub) return;
    {
      std::lock_guard lock(sub->handler_mutex);  // waits for a hand-over in progress
      sub->draining = true;
    }
  }

  void close_subscription() {
    std::shared_ptr<Subscription> sub;
    {
      std::lock_guard lock(sub_mutex_);
      sub = std::move(sub_);
    }
    if (!sub) return;
    {
      std::lock_guard lock(sub->handler_mutex);
      sub->draining = true;
    }
    sub->stop = true;
    if (sub->thread.joinable()) sub->thread.join();
  }

  static std::string state_key(const char* topic, std::int32_t partition) {
    return std::string(topic) + "\n" + std::to_string(partition);
  }

  // Rebalance callback: runs on the consumer thread inside rd_kafka_consumer_poll.
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* sub = static_cast<Subscription*>(static_cast<HandleContext*>(opaque)->subscription);
    bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      sub->impl->assign(sub, parts);
      if (cooperative) {
        ErrorPtr e(rd_kafka_incremental_assign(rk, parts));
        if (e) sub->impl->log_.warn(std::string("incremental assign: ") + rd_kafka_error_string(e.get()));
      } else {
        rd_kafka_assign(rk, parts);
      }
      // Set the pause state of what arrives either way: librdkafka keeps a partition's pause
      // flag after it is revoked, so a partition paused here under back-pressure, revoked, and
      // assigned back later would return paused. The consumer loop only pauses and resumes on a
      // change of back-pressure, which may never come, and the calls in that partition would
      // wait unanswered until some later rebalance moved it away.
      if (sub->paused) {
        rd_kafka_pause_partitions(rk, parts);
      } else {
        rd_kafka_resume_partitions(rk, parts);
      }
    } else {
      sub->impl->revoke(sub, parts);
      if (cooperative) {
        ErrorPtr e(rd_kafka_incremental_unassign(rk, parts));
        if (e) sub->impl->log_.warn(std::string("incremental unassign: ") + rd_kafka_error_string(e.get()));
      } else {
        rd_kafka_assign(rk, nullptr);
      }
    }
  }

  void assign(Subscription* sub, rd_kafka_topic_partition_list_t* parts) {
    rd_kafka_t* rk = sub->consumer.get();
    PartitionListPtr committed(rd_kafka_topic_partition_list_copy(parts));
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, committed.get(), timeout_ms(settings_.admin_timeout));
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log_.warn(std::string("reading committed offsets: ") + rd_kafka_err2str(e) +
                "; delivery counts start at 1");
    }
    std::lock_guard lock(states_mutex_);
    for (int i = 0; i < parts->cnt; ++i) {
      rd_kafka_topic_partition_t& p = parts->elems[i];
      std::int64_t offset = RD_KAFKA_OFFSET_INVALID;
      DeliveryCounts inherited;
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_t* c =
            rd_kafka_topic_partition_list_find(committed.get(), p.topic, p.partition);
        if (c != nullptr && c->err == RD_KAFKA_RESP_ERR_NO_ERROR && c->offset >= 0) {
          offset = c->offset;
          if (c->metadata != nullptr && c->metadata_size > 0) {
            inherited = parse_ledger(
                std::string_view(static_cast<const char*>(c->metadata), c->metadata_size), offset);
          }
        }
      }
      // Records below today's end may have reached a previous owner that died before writing
      // them down; they are written to the ledger before they are handed over.
      std::int64_t low = 0;
      std::int64_t high = INT64_MAX;
      if (watermarks(rk, p.topic, p.partition, &low, &high) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        high = INT64_MAX;
      }
      auto state = std::make_shared<PartitionState>(offset, std::move(inherited), high);
      state->topic = p.topic;
      state->partition = p.partition;
      state->flavour = sub->raw_topic == p.topic ? Flavour::kRaw : Flavour::kPython;
      state->queue = sub->options.queue;
      state->epoch = next_epoch_.fetch_add(1) + 1;
      states_[state_key(p.topic, p.partition)] = state;
      epochs_[state->epoch] = state;
      p.offset = offset;
      log_.debug("assigned " + std::string(p.topic) + "[" + std::to_string(p.partition) +
                 "] at " + std::to_string(offset));
      if (tracing()) {
        trace(sub,
              "assigned " + state->where() + " committed=" + std::to_string(offset) +
                  " suspect_end=" + std::to_string(high) + " paused=" +
                  std::to_string(sub->paused));
      }
    }
  }

  void revoke(Subscription* sub, rd_kafka_topic_partition_list_t* parts) {
    std::vector<StatePtr> gone;
    {
      std::lock_guard lock(states_mutex_);
      for (int i = 0; i < parts->cnt; ++i) {
        auto it = states_.find(state_key(parts->elems[i].topic, parts->elems[i].partition));
        if (it == states_.end()) continue;
        gone.push_back(it->second);
        epochs_.erase(it->second->epoch);
        states_.erase(it);
      }
      // The last commit of each: calls still running keep their count for the next owner.
      commit_locked(sub, gone, /*async=*/false, /*only_dirty=*/false);
      for (auto& s : gone) {
        s->revoked = true;
        if (tracing()) {
          trace(sub,
                "revoked " + s->where() + " commit=" + std::to_string(s->ledger.commit_offset()) +
                    " unfinished=" + std::to_string(s->ledger.unfinished()) +
                    " last_fetched=" + std::to_string(s->last_fetched) +
                    " last_handed=" + std::to_string(s->last_handed));
        }
      }
    }
    auto dropped = [&](const Held& h) {
      return std::find(gone.begin(), gone.end(), h.state) != gone.end();
    };
    sub->held.erase(std::remove_if(sub->held.begin(), sub->held.end(), dropped), sub->held.end());
    std::lock_guard lock(sub->retry_mutex);
    sub->retries.erase(std::remove_if(sub->retries.begin(), sub->retries.end(), dropped),
                       sub->retries.end());
  }

  // Commits the given states' ledgers. Caller holds states_mutex_.
  void commit_locked(Subscription* sub, const std::vector<StatePtr>& states, bool async,
                     bool only_dirty) {
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(states.size())));
    for (const StatePtr& s : states) {
      if (s->revoked || (only_dirty && !s->dirty)) continue;
      s->dirty = false;
      std::int64_t offset = s->ledger.commit_offset();
      if (offset < 0) continue;  // nothing handed over yet
      rd_kafka_topic_partition_t* p =
          rd_kafka_topic_partition_list_add(list.get(), s->topic.c_str(), s->partition);
      p->offset = offset;
      std::string md = s->ledger.metadata(settings_.ledger_bytes);
      p->metadata = std::malloc(md.size());  // freed by the list
      if (p->metadata != nullptr) {
        std::memcpy(p->metadata, md.data(), md.size());
        p->metadata_size = md.size();
      }
    }
    if (list->cnt == 0) return;
    // A synchronous commit reports to commit_callback from within this call (with the offsets),
    // not also to the handle's callback on a later poll: one line per failure.
    rd_kafka_resp_err_t e =
        async ? rd_kafka_commit(sub->consumer.get(), list.get(), 1)
              : rd_kafka_commit_queue(sub->consumer.get(), list.get(), nullptr, &commit_callback,
                                      &sub->context);
    if (tracing()) {
      std::string what = async ? "commit-async" : "commit-sync";
      for (int i = 0; i < list->cnt; ++i) {
        what += ' ';
        what += list->elems[i].topic;
        what += "[" + std::to_string(list->elems[i].partition) + "]=" +
                std::to_string(list->elems[i].offset);
      }
      // An asynchronous commit's NO_ERROR only says it was queued; its outcome is not seen here.
      what += std::string(" -> ") +
              (async && e == RD_KAFKA_RESP_ERR_NO_ERROR ? "queued" : rd_kafka_err2name(e));
      trace(sub, what);
    }
    if (async && e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Not even queued, so no callback will tell.
      log_.warn(std::string("offset commit not sent: ") + rd_kafka_err2str(e) +
                " (the records stay uncommitted and may be delivered again)");
    }
  }

  // Commits every partition whose finished prefix moved. Any thread.
  void flush_commits() {
    auto sub = subscription();
    if (!sub || sub->stop.load()) return;
    std::lock_guard lock(states_mutex_);
    if (!any_dirty_) return;
    any_dirty_ = false;
    std::vector<StatePtr> states;
    for (const auto& [k, s] : states_) {
      if (s->dirty) states.push_back(s);
    }
    commit_locked(sub.get(), states, /*async=*/true, /*only_dirty=*/true);
  }

  void consume_loop(Subscription* sub) {
    rd_kafka_t* rk = sub->consumer.get();
    const auto& opt = sub->options;
    while (!sub->stop.load()) {
      bool draining = sub->draining.load();
      if (draining) {
        sub->held.clear();
        std::lock_guard lock(sub->retry_mutex);
        sub->retries.clear();
        if (sub->outstanding.load() == 0) break;
      } else {
        hand_over(sub);
      }
      std::uint32_t outstanding = sub->outstanding.load();
      bool full = outstanding >= opt.max_outstanding;
      // Records beyond the limit wait here; fetching pauses only when a whole batch waits, and
      // resumes when half of it went, so a server at its limit does not pause and resume (and
      // refetch) for every call that ends.
      std::size_t bound = std::max<std::size_t>(opt.max_outstanding, opt.batch_size);
      bool want_pause = draining || sub->held.size() >= bound ||
                        (sub->paused && sub->held.size() > bound / 2);
      if (want_pause != sub->paused) {
        rd_kafka_topic_partition_list_t* assigned = nullptr;
        if (rd_kafka_assignment(rk, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR && assigned) {
          PartitionListPtr owned(assigned);
          if (want_pause) {
            rd_kafka_pause_partitions(rk, assigned);
          } else {
            rd_kafka_resume_partitions(rk, assigned);
          }
        }
        sub->paused = want_pause;
        if (tracing()) {
          trace(sub, std::string(want_pause ? "paused" : "resumed") +
                                  " held=" + std::to_string(sub->held.size()) +
                                  " outstanding=" + std::to_string(sub->outstanding.load()));
        }
      }
      // Fetch a batch: wait for the first record, then take what is already there. While calls
      // are what we wait for (paused, or records held back), wake often to hand over: finishes
      // do not interrupt the poll (a yield would also cut short a consumer close).
      std::size_t room = bound > sub->held.size() ? bound - sub->held.size() : 0;
      std::size_t limit = std::max<std::size_t>(1, std::min<std::size_t>(opt.batch_size, room));
      int wait_ms = (want_pause || !sub->held.empty() || full) ? 2 : 100;
      for (std::size_t n = 0; n < limit; ++n) {
        MessagePtr m(rd_kafka_consumer_poll(rk, n == 0 ? wait_ms : 0));
        if (!m) break;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_.warn(std::string("consumer: ") + rd_kafka_message_errstr(m.get()));
          }
          continue;
        }
        hold(sub, m.get());
      }
    }
    // Leaving the group revokes everything, which commits what finished.
    rd_kafka_consumer_close(rk);
    log_.debug("consumer closed");
  }

  void hold(Subscription* sub, const rd_kafka_message_t* m) {
    const char* topic = rd_kafka_topic_name(m->rkt);
    StatePtr state;
    FetchCursor::Verdict verdict = FetchCursor::Verdict::kTake;
    std::int64_t expected = -1;
    {
      std::lock_guard lock(states_mutex_);
      auto it = states_.find(state_key(topic, m->partition));
      if (it == states_.end()) {
        if (tracing()) {
          trace(sub, "dropped " + std::string(topic) + "[" + std::to_string(m->partition) +
                         "] off=" + std::to_string(m->offset) + ": no state (revoked)");
        }
        return;  // revoked meanwhile
      }
      state = it->second;
      expected = state->cursor.expected();
      verdict = state->cursor.offer(m->offset);
      if (verdict == FetchCursor::Verdict::kRecovered) {
        log_.warn(state->where() + ": offset " + std::to_string(m->offset) +
                  " came after seeking back: librdkafka had skipped it; nothing is lost");
      } else if (verdict == FetchCursor::Verdict::kTakeAfterGap) {
        log_.info(state->where() + ": offsets " + std::to_string(state->cursor.gap_from()) +
                  ".." + std::to_string(m->offset - 1) + " hold no records; going on at " +
                  std::to_string(m->offset));
        if (state->ledger.skip(state->cursor.gap_from(), m->offset)) {
          state->dirty = true;
          any_dirty_ = true;
        }
      }
    }
    if (verdict == FetchCursor::Verdict::kSeekBack && !seek_back(sub, *state, expected)) {
      std::lock_guard lock(states_mutex_);
      state->cursor.seek_failed(m->offset);
      verdict = FetchCursor::Verdict::kTake;  // the hole stays uncommitted (see the ledger)
    }
    if (verdict == FetchCursor::Verdict::kRepeat || verdict == FetchCursor::Verdict::kSeekBack) {
      if (tracing()) {
        trace(sub, "dropped " + state->where() + " off=" + std::to_string(m->offset) +
                       (verdict == FetchCursor::Verdict::kRepeat
                            ? ": fetched before"
                            : ": expected " + std::to_string(expected) + ", seeking back"));
      }
      return;
    }
    if (tracing()) {
      // Repeats were dropped above: a record here is the next one or follows a confirmed hole.
      bool gap = state->last_fetched >= 0 && m->offset != state->last_fetched + 1;
      trace(sub, "fetched " + state->where() + " off=" + std::to_string(m->offset) +
                     (gap ? " GAP" : ""));
    }
    state->last_fetched = m->offset;
    Held h;
    h.state = std::move(state);
    h.offset = m->offset;
    rd_kafka_timestamp_type_t tstype;
    h.timestamp = rd_kafka_message_timestamp(m, &tstype);
    h.key = std::string(message_key(m));
    h.payload = std::string(message_value(m));
    sub->held.push_back(std::move(h));
  }

  // Moves a partition's fetch position back to `offset`, where a record was skipped. Records
  // fetched before the seek are dropped by librdkafka from here on (the seek's op version).
  // Consumer thread; waits for the seek to be applied.
  bool seek_back(Subscription* sub, const PartitionState& state, std::int64_t offset) {
    log_.info(state.where() + ": expected offset " + std::to_string(offset) +
              " next; seeking back to it (a hole in the log, or records the consumer skipped)");
    PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), state.topic.c_str(), state.partition)->offset =
        offset;
    ErrorPtr e(rd_kafka_seek_partitions(sub->consumer.get(), list.get(),
                                        timeout_ms(settings_.admin_timeout)));
    rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e.get()) : list->elems[0].err;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
    log_.warn(state.where() + ": seeking back to " + std::to_string(offset) + " failed (" +
              rd_kafka_err2name(err) + "); its records wait uncommitted for the next owner");
    return false;
  }

  void hand_over(Subscription* sub) {
    {
      std::lock_guard lock(sub->retry_mutex);
      while (!sub->retries.empty()) {
        sub->held.push_front(std::move(sub->retries.back()));
        sub->retries.pop_back();
      }
    }
    if (sub->held.empty()) return;
    const auto& opt = sub->options;
    std::uint32_t outstanding = sub->outstanding.load();
    if (outstanding >= opt.max_outstanding) return;
    std::size_t n = std::min<std::size_t>(
        {sub->held.size(), opt.max_outstanding - outstanding, opt.batch_size});

    std::lock_guard hl(sub->handler_mutex);
    if (sub->draining.load()) return;
    std::vector<Held> batch;
    std::vector<std::uint32_t> counts;
    std::vector<StatePtr> suspects;
    {
      std::lock_guard lock(states_mutex_);
      for (std::size_t i = 0; i < n; ++i) {
        Held h = std::move(sub->held.front());
        sub->held.pop_front();
        if (h.state->revoked) continue;
        if (tracing()) {
          std::string note;
          std::int64_t expected = h.state->last_handed >= 0 ? h.state->last_handed + 1
                                                            : h.state->ledger.commit_offset();
          if (!h.retry && expected >= 0 && h.offset != expected) {
            note = h.offset < expected ? " BEHIND" : " GAP";
          }
          trace(sub, "handed " + h.state->where() + " off=" +
                                           std::to_string(h.offset) +
                                           (h.retry ? " retry" : "") + note);
        }
        if (!h.retry) h.state->last_handed = h.offset;
        std::uint32_t count =
            h.retry ? h.state->ledger.restart(h.offset) : h.state->ledger.start(h.offset);
        if (h.state->ledger.suspect(h.offset) || h.retry) {
          if (std::find(suspects.begin(), suspects.end(), h.state) == suspects.end()) {
            suspects.push_back(h.state);
          }
        }
        counts.push_back(count);
        batch.push_back(std::move(h));
      }
      // Write the counts down before the calls start, so a crash during them counts.
      if (!suspects.empty()) commit_locked(sub, suspects, /*async=*/false, /*only_dirty=*/false);
    }
    if (batch.empty()) return;
    std::vector<std::string> tokens;
    tokens.reserve(batch.size());
    std::vector<DeliveryView> views;
    views.reserve(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const Held& h = batch[i];
      tokens.push_back(std::to_string(sub->id) + ":" + std::to_string(h.state->epoch) + ":" +
                       std::to_string(h.offset));
      if (counts[i] > 1) {
        std::lock_guard sl(sub->stamps_mutex);
        sub->stamps[h.key] = h.timestamp;
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const Held& h = batch[i];
      DeliveryView v;
      v.flavour = h.state->flavour;
      v.queue = h.state->queue;
      v.token = tokens[i];
      v.payload = h.payload;
      v.delivery_count = counts[i];
      views.push_back(v);
    }
    sub->outstanding.fetch_add(static_cast<std::uint32_t>(views.size()));
    sub->handler(views);
  }

  struct Token {
    std::uint64_t subscription = 0;
    std::uint64_t epoch = 0;
    std::int64_t offset = -1;
  };
  static std::optional<Token> parse_token(std::string_view t) {
    Token out;
    auto field = [&t](auto* value) {
      std::size_t colon = t.find(':');
      std::string_view part = t.substr(0, colon);
      auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), *value);
      t.remove_prefix(colon == std::string_view::npos ? t.size() : colon + 1);
      return ec == std::errc() && p == part.data() + part.size();
    };
    if (!field(&out.subscription) || !field(&out.epoch) || !field(&out.offset)) return std::nullopt;
    return out;
  }

  // The end of one finish(): all its records were produced (or not).
  struct FinishJob {
    Impl* impl = nullptr;  // shutdown() runs every pending delivery report before Impl goes
    std::shared_ptr<Subscription> sub;
    Token token;
    Flavour flavour = Flavour::kPython;
    std::string queue;
    std::string key;
    std::string payload;  // the request, for a local redelivery if this finish fails
    std::string cache_key;  // where the result goes in the cache once it is stored
    std::string result;
    DoneCallback done;
    std::mutex mutex;
    int remaining = 0;
    rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
  };

  void finish(const DeliveryView& d, const FinishRequest& what, DoneCallback done) {
    auto job = std::make_shared<FinishJob>();
    job->impl = this;
    job->flavour = d.flavour;
    job->queue = std::string(d.queue);
    job->done = std::move(done);
    auto token = parse_token(d.token);
    if (token) {
      job->token = *token;
      auto sub = subscription();
      if (sub && sub->id == token->subscription) job->sub = std::move(sub);
    }
    if (!producer_) {
      complete(job, RD_KAFKA_RESP_ERR__STATE, true);
      return;
    }
    const ReplyView* reply = what.reply;
    std::string_view reply_queue;
    std::optional<std::int32_t> push_partition;
    if (reply != nullptr) {
      reply_queue = reply->queue.empty() ? d.queue : reply->queue;
      push_partition = reply_partition(reply->reply_to, reply_topic(reply_queue, Flavour::kPython));
    }
    // The result is stored on the flavour's feedback topic; for a caller that listens on
    // partition p (reply_to names it on prpc_feedback_{q}; it also reads p of
    // prpc_feedback_raw_{q}) it is stored on p, which is its push. A deduplicated redelivery is
    // stored already and is only pushed.
    bool store = reply != nullptr && !reply->push_only;
    bool push = reply != nullptr && push_partition.has_value() && reply->push_only;
    bool send_dead = !what.dead_letter_reason.empty();
    if (reply != nullptr) job->key = std::string(reply->message_id);
    if (store || push || send_dead) job->payload = std::string(d.payload);
    job->remaining = (store ? 1 : 0) + (push ? 1 : 0) + (send_dead ? 1 : 0);
    if (job->remaining == 0) {
      // The result is in the feedback topic already (a deduplicated redelivery): only commit.
      complete(job, RD_KAFKA_RESP_ERR_NO_ERROR, true);
      return;
    }
    auto on_report = [job](rd_kafka_resp_err_t e) {
      bool last = false;
      rd_kafka_resp_err_t err;
      {
        std::lock_guard lock(job->mutex);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && job->error == RD_KAFKA_RESP_ERR_NO_ERROR) {
          job->error = e;
        }
        last = --job->remaining == 0;
        err = job->error;
      }
      // The producer thread commits after each round of delivery reports.
      if (last) job->impl->complete(job, err, false);
    };
    if (send_dead) {
      std::string source = request_topic(d.queue, d.flavour);
      {
        std::lock_guard lock(states_mutex_);
        if (auto it = epochs_.find(job->token.epoch); it != epochs_.end()) {
          source += ":" + std::to_string(it->second->partition) + ":" +
                    std::to_string(job->token.offset);
        }
      }
      Headers headers = {
          {kHeaderReason, std::string(what.dead_letter_reason)},
          {kHeaderFlavour, std::string(flavour_name(d.flavour))},
          {kHeaderSource, source},
          {kHeaderCount, std::to_string(d.delivery_count)}};
      produce(dead_topic(d.queue), RD_KAFKA_PARTITION_UA, job->key, d.payload, headers, on_report);
    }
    if (store) {
      std::int32_t partition = push_partition ? *push_partition : RD_KAFKA_PARTITION_UA;
      job->cache_key = cache_key(reply->flavour, reply_queue, reply->message_id);
      job->result = std::string(reply->payload);
      produce(reply_topic(reply_queue, reply->flavour), partition, reply->message_id,
              reply->payload, {}, on_report);
    }
    if (push) {
      produce(reply_topic(reply_queue, reply->flavour), *push_partition, reply->message_id,
              reply->payload, {}, on_report);
    }
  }

  void complete(const std::shared_ptr<FinishJob>& job, rd_kafka_resp_err_t err, bool commit_now) {
    Status status = kafka_status(err, "kafka: producing the reply");
    if (status.is_ok() && !job->cache_key.empty()) cache_.put(job->cache_key, std::move(job->result));
    Subscription* sub = job->sub.get();
    if (sub != nullptr) {
      StatePtr state;
      {
        std::lock_guard lock(states_mutex_);
        auto it = epochs_.find(job->token.epoch);
        if (it != epochs_.end() && !it->second->revoked) state = it->second;
        if (state && status.is_ok()) {
          if (state->ledger.finish(job->token.offset)) {
            state->dirty = true;
            any_dirty_ = true;
          }
        }
        if (tracing()) {
          trace(sub,
                "finished e" + std::to_string(job->token.epoch) + " off=" +
                    std::to_string(job->token.offset) + (status.is_ok() ? " ok" : " FAILED") +
                    (state ? " commit=" + std::to_string(state->ledger.commit_offset())
                           : std::string(" (no longer assigned)")));
        }
      }
      if (state && !status.is_ok() && !sub->draining.load()) {
        // Hand it over again later (its count grows); the reply may still reach the cluster.
        Held h;
        h.state = state;
        h.offset = job->token.offset;
        h.key = job->key;
        h.payload = std::move(job->payload);
        h.retry = true;
        std::lock_guard lock(sub->retry_mutex);
        sub->retries.push_back(std::move(h));
      }
      if (!job->key.empty()) {
        std::lock_guard sl(sub->stamps_mutex);
        sub->stamps.erase(job->key);
      }
      sub->outstanding.fetch_sub(1);
    }
    if (job->done) job->done(status);
    if (commit_now && status.is_ok()) flush_commits();
  }

  // ---- lookups ----
  struct LookupJob {
    Flavour flavour;
    std::string queue;
    std::string id;
    std::int64_t from_ms;
    LookupCallback done;
  };

  void lookup_result(Flavour flavour, std::string_view queue, std::string_view message_id,
                     LookupCallback done) {
    if (auto hit = cache_.get(cache_key(flavour, queue, message_id))) {
      done(std::optional<std::string>(std::move(*hit)));
      return;
    }
    std::int64_t from = now_ms() - settings_.lookup_window.count();
    if (auto sub = subscription()) {
      std::lock_guard lock(sub->stamps_mutex);
      if (auto it = sub->stamps.find(std::string(message_id)); it != sub->stamps.end()) {
        from = it->second - settings_.lookup_skew.count();
      } else if (!sub->stamps.empty()) {
        // A request without a key: its reply is no older than the oldest redelivery.
        std::int64_t oldest = INT64_MAX;
        for (const auto& [k, ts] : sub->stamps) oldest = std::min(oldest, ts);
        from = std::max(from, oldest - settings_.lookup_skew.count());
      }
    }
    {
      std::lock_guard lock(lookup_mutex_);
      lookups_.push_back(LookupJob{flavour, std::string(queue), std::string(message_id), from,
                                   std::move(done)});
      if (!lookup_thread_.joinable()) lookup_thread_ = std::thread([this] { lookup_loop(); });
    }
    lookup_cv_.notify_one();
  }

  bool lookup_stopped() {
    std::lock_guard lock(lookup_mutex_);
    return lookup_stop_;
  }

  // Whether the caller runs on one of this broker's threads (a callback that dropped the last
  // reference to the broker): such a thread cannot join itself.
  bool on_own_thread() {
    auto me = std::this_thread::get_id();
    if (me == producer_thread_.get_id() || me == lookup_thread_.get_id()) return true;
    if (auto sub = subscription(); sub && me == sub->thread.get_id()) return true;
    std::lock_guard lock(replies_mutex_);
    for (const auto& [q, l] : listeners_) {
      if (me == l->thread.get_id()) return true;
    }
    return false;
  }

  void lookup_loop() {
    for (;;) {
      LookupJob job;
      {
        std::unique_lock lock(lookup_mutex_);
        lookup_cv_.wait(lock, [this] { return lookup_stop_ || !lookups_.empty(); });
        if (lookups_.empty()) return;
        job = std::move(lookups_.front());
        lookups_.pop_front();
      }
      if (lookup_stopped()) {
        job.done(Status(StatusCode::kCancelled, "kafka: the broker is shutting down"));
        continue;
      }
      if (auto hit = cache_.get(cache_key(job.flavour, job.queue, job.id))) {
        job.done(std::optional<std::string>(std::move(*hit)));
        continue;
      }
      std::optional<std::string> found;
      Status s = scan(reply_topic(job.queue, job.flavour), job.from_ms,
                      [&](const rd_kafka_message_t* m) {
                        if (message_key(m) != job.id) return true;
                        found = std::string(message_value(m));
                        return false;
                      });
      if (!s.is_ok()) {
        job.done(s);
      } else {
        job.done(std::move(found));
      }
    }
  }

  // Reads `topic` from the first record at or after `from_ms` (negative: the beginning) up to
  // the end as it was when the scan started, calling `visit` until it returns false.
  Status scan(const std::string& topic, std::int64_t from_ms,
              const std::function<bool(const rd_kafka_message_t*)>& visit) {
    std::lock_guard lock(scan_mutex_);
    PRPC_RETURN_IF_ERROR(require_connected());
    if (!settings_.lookup_by_timestamp) from_ms = -1;
    if (!scanner_) {
      PRPC_ASSIGN_OR_RETURN(scanner_, make_consumer(standalone()));
    }
    rd_kafka_t* rk = scanner_.get();
    PRPC_ASSIGN_OR_RETURN(std::int32_t count, partition_count(rk, topic));
    auto deadline = Clock::now() + settings_.lookup_timeout;
    PartitionListPtr list(rd_kafka_topic_partition_list_new(count));
    for (std::int32_t p = 0; p < count; ++p) {
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
          from_ms < 0 ? RD_KAFKA_OFFSET_BEGINNING : from_ms;
    }
    if (from_ms >= 0 && rd_kafka_offsets_for_times(rk, list.get(),
                                                   timeout_ms(settings_.lookup_timeout)) !=
                            RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Without timestamp lookups, read the whole retained topic.
      for (int i = 0; i < list->cnt; ++i) list->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    std::map<std::int32_t, std::int64_t> ends;  // partition -> end offset to reach
    PartitionListPtr assign(rd_kafka_topic_partition_list_new(count));
    for (int i = 0; i < list->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = list->elems[i];
      std::int64_t low = 0;
      std::int64_t high = 0;
      rd_kafka_resp_err_t e = watermarks(rk, topic.c_str(), p.partition, &low, &high);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: end offset of " + topic);
      std::int64_t start = p.offset;
      if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR) start = RD_KAFKA_OFFSET_BEGINNING;
      if (start == RD_KAFKA_OFFSET_END || start == -1) continue;  // nothing newer there
      if (start == RD_KAFKA_OFFSET_BEGINNING) start = low;
      if (start >= high) continue;
      ends[p.partition] = high;
      rd_kafka_topic_partition_list_add(assign.get(), topic.c_str(), p.partition)->offset = start;
    }
    log_.debug("scanning " + topic + " (" + std::to_string(ends.size()) + " of " +
               std::to_string(count) + " partitions)");
    if (ends.empty()) return Status::ok();
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, assign.get());
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: assigning " + topic);
    Status result = Status::ok();
    while (!ends.empty()) {
      if (Clock::now() >= deadline) {
        result = Status(StatusCode::kTimeout, "kafka: scanning " + topic + " took too long");
        break;
      }
      MessagePtr m(rd_kafka_consumer_poll(rk, 100));
      if (!m) continue;
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
        result = kafka_status(m->err, "kafka: scanning " + topic);
        break;
      }
      auto it = ends.find(m->partition);
      if (it == ends.end()) continue;
      if (m->offset + 1 >= it->second) ends.erase(it);
      if (!visit(m.get())) break;
    }
    rd_kafka_assign(rk, nullptr);
    return result;
  }

  // ---- operations ----
  Result<QueueStats> queue_stats(std::string_view queue) {
    PRPC_RETURN_IF_ERROR(require_connected());
    QueueStats out;
    std::string group = "prpc_group_consumers";
    std::uint32_t outstanding = 0;
    if (auto sub = subscription()) {
      if (!sub->options.group.empty()) group = sub->options.group;
      outstanding = sub->outstanding.load();
    }
    out.pending = outstanding;
    PRPC_ASSIGN_OR_RETURN(KafkaPtr rk, make_consumer({{"group.id", group},
                                                      {"enable.auto.commit", "false"}}));
    for (Flavour f : {Flavour::kPython, Flavour::kRaw}) {
      std::string topic = request_topic(queue, f);
      PRPC_ASSIGN_OR_RETURN(std::int32_t count, partition_count(rk.get(), topic));
      PartitionListPtr list(rd_kafka_topic_partition_list_new(count));
      for (std::int32_t p = 0; p < count; ++p) {
        rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
      }
      bool have_committed = count > 0 && rd_kafka_committed(rk.get(), list.get(),
                                                            timeout_ms(settings_.admin_timeout)) ==
                                              RD_KAFKA_RESP_ERR_NO_ERROR;
      for (std::int32_t p = 0; p < count; ++p) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        rd_kafka_resp_err_t e = watermarks(rk.get(), topic.c_str(), p, &low, &high);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_status(e, "kafka: offsets of " + topic);
        std::int64_t from = low;
        if (have_committed && list->elems[p].offset >= 0) from = std::max(low, list->elems[p].offset);
        out.length += std::max<std::int64_t>(0, high - from);
      }
    }
    const rd_kafka_group_list* groups = nullptr;
    if (rd_kafka_list_groups(rk.get(), group.c_str(), &groups,
                             timeout_ms(settings_.admin_timeout)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      GroupListPtr owned(groups);
      for (int i = 0; i < groups->group_cnt; ++i) out.consumers += groups->groups[i].member_cnt;
    }
    std::string dead = dead_topic(queue);
    PRPC_ASSIGN_OR_RETURN(std::int32_t dead_count, partition_count(rk.get(), dead));
    for (std::int32_t p = 0; p < dead_count; ++p) {
      std::int64_t low = 0;
      std::int64_t high = 0;
      if (watermarks(rk.get(), dead.c_str(), p, &low, &high) ==
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        out.dead_letters += high - low;
      }
    }
    rd_kafka_consumer_close(rk.get());
    return out;
  }

  Result<std::vector<DeadLetter>> dead_letters(std::string_view queue, std::size_t max_count) {
    std::vector<DeadLetter> out;
    if (max_count == 0) return out;
    Status s = scan(dead_topic(queue), -1, [&](const rd_kafka_message_t* m) {
      DeadLetter d;
      d.id = std::to_string(m->partition) + ":" + std::to_string(m->offset);
      d.flavour = header_value(m, kHeaderFlavour) == "raw" ? Flavour::kRaw : Flavour::kPython;
      d.reason = header_value(m, kHeaderReason);
      d.payload = std::string(message_value(m));
      out.push_back(std::move(d));
      return out.size() < max_count;
    });
    if (!s.is_ok()) return s;
    return out;
  }

  Settings settings_;
  sdk::Logger log_;
  HandleContext log_context_;
  ResultCache cache_;

  std::mutex connect_mutex_;
  KafkaPtr producer_;
  std::thread producer_thread_;
  std::atomic<bool> running_{false};

  std::mutex topics_mutex_;
  std::set<std::string> ensured_;

  std::mutex replies_mutex_;
  std::map<std::string, std::unique_ptr<ReplyListener>> listeners_;

  std::mutex sub_mutex_;
  std::shared_ptr<Subscription> sub_;
  std::atomic<std::uint64_t> next_subscription_{0};

  std::mutex states_mutex_;
  std::unordered_map<std::string, StatePtr> states_;
  std::unordered_map<std::uint64_t, StatePtr> epochs_;
  std::atomic<std::uint64_t> next_epoch_{0};
  bool any_dirty_ = false;

  std::mutex lookup_mutex_;
  std::condition_variable lookup_cv_;
  std::deque<LookupJob> lookups_;
  std::thread lookup_thread_;
  bool lookup_stop_ = false;

  std::mutex scan_mutex_;
  KafkaPtr scanner_;
};

void KafkaBroker::Impl::shutdown() {
  close_subscription();
  {
    std::lock_guard lock(replies_mutex_);
    for (auto& [q, l] : listeners_) {
      l->stop = true;
      if (l->thread.joinable()) l->thread.join();
      rd_kafka_consumer_close(l->consumer.get());
    }
    listeners_.clear();
  }
  {
    std::lock_guard lock(lookup_mutex_);
    lookup_stop_ = true;
  }
  lookup_cv_.notify_all();
  if (lookup_thread_.joinable()) lookup_thread_.join();
  {
    std::lock_guard lock(scan_mutex_);
    if (scanner_) rd_kafka_consumer_close(scanner_.get());
    scanner_.reset();
  }
  if (producer_) {
    // Replies in flight still get their chance to be delivered.
    rd_kafka_flush(producer_.get(), 5000);
    running_ = false;
    if (producer_thread_.joinable()) producer_thread_.join();
    rd_kafka_purge(producer_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(producer_.get(), 0);  // runs the purged records' callbacks
    producer_.reset();
  }
}

// ---- KafkaBroker ------------------------------------------------------------------------------

namespace {
Settings settings_or_throw(const sdk::Options& options) {
  auto s = read_settings(options);
  if (!s.is_ok()) throw std::invalid_argument(s.status().message());
  return std::move(s).value();
}
}  // namespace

KafkaBroker::KafkaBroker(const sdk::Context& ctx)
    : impl_(std::make_shared<Impl>(settings_or_throw(ctx.options), ctx.log)) {}

KafkaBroker::KafkaBroker(Settings settings, sdk::Logger log)
    : impl_(std::make_shared<Impl>(std::move(settings), std::move(log))) {}

KafkaBroker::~KafkaBroker() {
  if (impl_->on_own_thread()) {
    // Released from inside one of our callbacks: finish on a thread of its own.
    std::thread([impl = std::move(impl_)]() mutable {
      impl->shutdown();
      impl.reset();
    }).detach();
    return;
  }
  impl_->shutdown();
}

Status KafkaBroker::connect() { return impl_->connect(); }
Status KafkaBroker::subscribe(const SubscribeOptions& options, DeliveryHandler handler) {
  return impl_->subscribe(options, std::move(handler));
}
void KafkaBroker::unsubscribe() { impl_->unsubscribe(); }
void KafkaBroker::finish(const DeliveryView& delivery, const FinishRequest& what,
                         DoneCallback done) {
  impl_->finish(delivery, what, std::move(done));
}
void KafkaBroker::touch(const DeliveryView&) {
  // Kafka has no per-record visibility timeout: ownership lasts as long as the group membership,
  // which the consumer thread keeps alive by polling.
}
void KafkaBroker::lookup_result(Flavour flavour, std::string_view queue,
                                std::string_view message_id, LookupCallback done) {
  impl_->lookup_result(flavour, queue, message_id, std::move(done));
}
void KafkaBroker::publish(const PublishView& message, DoneCallback done) {
  Status s = impl_->require_connected();
  if (!s.is_ok()) {
    done(s);
    return;
  }
  impl_->publish(message, std::move(done));
}
Result<std::string> KafkaBroker::open_replies(std::string_view queue, ReplyHandler on_reply) {
  PRPC_RETURN_IF_ERROR(impl_->require_connected());
  return impl_->open_replies(queue, std::move(on_reply));
}
Result<QueueStats> KafkaBroker::queue_stats(std::string_view queue) {
  return impl_->queue_stats(queue);
}
Result<std::vector<DeadLetter>> KafkaBroker::dead_letters(std::string_view queue,
                                                          std::size_t max_count) {
  return impl_->dead_letters(queue, max_count);
}

}  // namespace prpc::kafka
