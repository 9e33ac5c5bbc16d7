// The client frame: librdkafka configuration and logging, the producer and its thread, and
// shutdown.
#include <cstring>

#include "kafka_impl.hpp"

namespace prpc::kafka {

bool Outage::failed() {
  std::lock_guard lock(mutex_);
  ++failures_;
  if (down_.load(std::memory_order_relaxed)) return false;
  down_.store(true, std::memory_order_relaxed);
  since_ = Clock::now();
  failures_ = 1;
  return true;
}

std::optional<std::string> Outage::recovered() {
  if (!down_.load(std::memory_order_relaxed)) return std::nullopt;
  std::lock_guard lock(mutex_);
  if (!down_.load(std::memory_order_relaxed)) return std::nullopt;
  down_.store(false, std::memory_order_relaxed);
  auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since_);
  return "Kafka is reachable again after " + std::to_string(lasted.count()) + " ms (" +
         std::to_string(failures_) + " connection errors meanwhile)";
}

namespace {

// Errors that mean "the cluster (or a broker of it) cannot be reached": one outage, not a line
// per retry.
bool is_unreachable(int err) {
  return err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
         err == RD_KAFKA_RESP_ERR__RESOLVE;
}

// A connection failure reported by librdkafka (an error or a FAIL line): the first of an outage
// is a WARNING, the others DEBUG.
void report_unreachable(const HandleContext& ctx, const std::string& line) {
  if (ctx.outage != nullptr && !ctx.outage->failed()) {
    ctx.log->debug(line);
    return;
  }
  ctx.log->warn(line +
                " (retrying; further connection errors are logged at debug level until "
                "Kafka answers again)");
}

// Where a librdkafka log line goes: syslog levels to PRPC levels.
void log_callback(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  auto* ctx = static_cast<const HandleContext*>(rd_kafka_opaque(rk));
  if (ctx == nullptr || ctx->log == nullptr) return;
  const sdk::Logger* log = ctx->log;
  std::string line = std::string(rd_kafka_name(rk)) + " " + fac + ": " + buf;
  if (level <= 4 && std::strcmp(fac, "FAIL") == 0) {
    report_unreachable(*ctx, line);  // a broker connection failed
  } else if (level <= 3) {
    log->error(line);
  } else if (level == 4) {
    log->warn(line);
  } else if (level <= 6) {
    log->info(line);
  } else {
    log->debug(line);
  }
}

// The producer's errors: logged as librdkafka logs them when there is no error callback, and
// kept (but "all brokers are down", which says nothing new) for connect()'s message.
void error_callback(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* ctx = static_cast<HandleContext*>(opaque);
  if (ctx == nullptr) return;
  if (ctx->log != nullptr) {
    std::string line = std::string(rd_kafka_name(rk)) + " ERROR: " + reason;
    if (is_unreachable(err)) {
      report_unreachable(*ctx, line);
    } else {
      ctx->log->error(line);
    }
  }
  if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    std::lock_guard lock(ctx->error_mutex);
    ctx->last_error = reason;
  }
}

}  // namespace

// Offset commits that failed (async ones are only known here). Records after a partition's last
// commit are delivered again to its next owner: a repeat, never a loss, but worth a line.
void commit_callback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  auto* ctx = static_cast<const HandleContext*>(opaque);
  if (ctx == nullptr || ctx->log == nullptr) return;
  std::string line =
      std::string(rd_kafka_name(rk)) + ": offset commit failed (" + rd_kafka_err2name(err) + ")";
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

KafkaBroker::Impl::Impl(Settings settings, sdk::Logger log)
    : settings_(std::move(settings)), log_(std::move(log)), cache_(settings_.result_cache_entries) {
  log_context_.log = &log_;
  log_context_.outage = &outage_;
}

// ---- configuration ----
Result<ConfPtr> KafkaBroker::Impl::make_conf(bool producer,
                                             const std::map<std::string, std::string>& fixed) {
  ConfPtr conf(rd_kafka_conf_new());
  char err[512];
  auto set = [&](const std::string& k, const std::string& v) -> Status {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      // librdkafka's text may quote the value: keep it out for secrets.
      std::string why = is_secret_property(k) ? std::string("invalid value") : std::string(err);
      return Status(StatusCode::kInvalidArgument, "kafka: property '" + k + "' rejected: " + why);
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
    // The group's session timeout is how long a SIGKILLed server keeps its partitions: 6 s is
    // the least a broker accepts by default (group.min.session.timeout.ms); librdkafka's own
    // default is 45 s. Heartbeats go from librdkafka's thread, so a long call does not stop them.
    defaults = {{"queued.min.messages", "1000"},
                {"fetch.wait.max.ms", "100"},
                {"session.timeout.ms", "6000"},
                {"heartbeat.interval.ms", "1000"}};
  }
  for (const auto& [k, v] : defaults) PRPC_RETURN_IF_ERROR(set(k, v));
  for (const auto& [k, v] : settings_.common) PRPC_RETURN_IF_ERROR(set(k, v));
  for (const auto& [k, v] : producer ? settings_.producer : settings_.consumer) {
    PRPC_RETURN_IF_ERROR(set(k, v));
  }
  for (const auto& [k, v] : fixed) PRPC_RETURN_IF_ERROR(set(k, v));
  rd_kafka_conf_set_log_cb(conf.get(), &log_callback);
  rd_kafka_conf_set_error_cb(conf.get(), &error_callback);
  rd_kafka_conf_set_opaque(conf.get(), &log_context_);
  return conf;
}

// A consumer that only reads assigned partitions: librdkafka 2.0 wants a group.id for
// rd_kafka_assign, so it gets a private one that never joins nor commits.
std::map<std::string, std::string> KafkaBroker::Impl::standalone() const {
  return {{"group.id", "prpc-standalone-" + settings_.client_id},
          {"enable.partition.eof", "false"},
          {"enable.auto.commit", "false"},
          {"enable.auto.offset.store", "false"}};
}

Result<KafkaPtr> KafkaBroker::Impl::make_consumer(
    const std::map<std::string, std::string>& fixed,
    void (*rebalance)(rd_kafka_t*, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t*, void*),
    HandleContext* context) {
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
Status KafkaBroker::Impl::connect() {
  std::lock_guard lock(connect_mutex_);
  if (producer_) return Status::ok();
  PRPC_ASSIGN_OR_RETURN(ConfPtr conf,
                        make_conf(true, {{"enable.idempotence", "true"}, {"acks", "all"}}));
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Impl::on_delivery_report);
  {
    std::lock_guard error_lock(log_context_.error_mutex);
    log_context_.last_error.clear();  // from an earlier attempt
  }
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
    Status s = kafka_status(e, "kafka: no metadata from " + settings_.bootstrap);
    // Why the brokers were unreachable (a failed SASL authentication, a TLS error) was reported
    // to the error callback, which runs on poll.
    rd_kafka_poll(rk, 0);
    std::lock_guard error_lock(log_context_.error_mutex);
    if (log_context_.last_error.empty()) return s;
    return Status(s.code(), s.message() + " (" + log_context_.last_error + ")");
  }
  rd_kafka_metadata_destroy(md);
  if (settings_.eager_produce) {
    PRPC_ASSIGN_OR_RETURN(
        ConfPtr eager_conf,
        make_conf(true, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "0"}}));
    rd_kafka_conf_set_dr_msg_cb(eager_conf.get(), &Impl::on_delivery_report);
    rd_kafka_t* eager = rd_kafka_new(RD_KAFKA_PRODUCER, eager_conf.get(), err, sizeof(err));
    if (eager == nullptr) return Status(StatusCode::kInvalidArgument, std::string("kafka: ") + err);
    (void)eager_conf.release();
    eager_.reset(eager);
  }
  producer_ = std::move(producer);
  running_ = true;
  producer_thread_ = std::thread([this] { producer_loop(); });
  if (eager_) {
    // Its delivery reports are served at once: until they are, records take the other producer.
    eager_thread_ = std::thread([this] {
      while (running_.load()) rd_kafka_poll(eager_.get(), 100);
    });
  }
  log_.info("connected to " + settings_.bootstrap);
  return Status::ok();
}

Status KafkaBroker::Impl::require_connected() {
  if (producer_) return Status::ok();
  return connect();
}

// Produces the record of a delivery report again, to the same partition, with the same waiter.
rd_kafka_resp_err_t KafkaBroker::Impl::resend(rd_kafka_t* rk, const rd_kafka_message_t* m,
                                              ProduceWaiter* waiter) {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) headers = nullptr;
  rd_kafka_headers_t* copy = headers != nullptr ? rd_kafka_headers_copy(headers) : nullptr;
  std::vector<rd_kafka_vu_t> vus(7);
  vus[0].vtype = RD_KAFKA_VTYPE_RKT;
  vus[0].u.rkt = m->rkt;
  vus[1].vtype = RD_KAFKA_VTYPE_PARTITION;
  vus[1].u.i32 = m->partition;
  vus[2].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[2].u.mem = {m->payload, m->len};
  vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vus[3].u.i = RD_KAFKA_MSG_F_COPY;
  vus[4].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vus[4].u.ptr = waiter;
  std::size_t n = 5;
  if (m->key != nullptr) {
    vus[n].vtype = RD_KAFKA_VTYPE_KEY;
    vus[n++].u.mem = {m->key, m->key_len};
  }
  if (copy != nullptr) {
    vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
    vus[n++].u.headers = copy;  // owned by the record once it is accepted
  }
  ErrorPtr error(rd_kafka_produceva(rk, vus.data(), n));
  if (!error) return RD_KAFKA_RESP_ERR_NO_ERROR;
  if (copy != nullptr) rd_kafka_headers_destroy(copy);
  return rd_kafka_error_code(error.get());
}

void KafkaBroker::Impl::on_delivery_report(rd_kafka_t* rk, const rd_kafka_message_t* m, void*) {
  std::unique_ptr<ProduceWaiter> w(static_cast<ProduceWaiter*>(m->_private));
  auto* ctx = static_cast<const HandleContext*>(rd_kafka_opaque(rk));
  std::string where = std::string(m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "?") + "[" +
                      std::to_string(m->partition) + "]";
  if (w && w->traced && ctx != nullptr && ctx->log != nullptr) {
    ctx->log->info("trace client published " + where + " off=" + std::to_string(m->offset) +
                   " key=" + std::string(message_key(m)) + " " + rd_kafka_err2name(m->err) +
                   " status=" + std::to_string(rd_kafka_message_status(m)));
  }
  // librdkafka 2.0's idempotent producer can report a record delivered that the cluster never
  // wrote (seen under load on the first records to a partition: a success without an offset,
  // while the next record got offset 0). A success without an offset is therefore not trusted:
  // the record is produced again, which at worst writes it twice (a request then runs twice,
  // a reply arrives twice; both are tolerated), never loses it.
  if (w && m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset < 0 && w->resends < kMaxResends) {
    w->resends += 1;
    rd_kafka_resp_err_t e = resend(rk, m, w.get());
    if (ctx != nullptr && ctx->log != nullptr) {
      ctx->log->info(where + ": record " + std::string(message_key(m)) +
                     " reported delivered without an offset; producing it again (" +
                     rd_kafka_err2name(e) + ")");
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      (void)w.release();  // the new record's report owns it
      return;
    }
    if (w->done) w->done(e);
    return;
  }
  if (w && w->done) w->done(m->err);
}

void KafkaBroker::Impl::producer_loop() {
  constexpr auto kProbeEvery = std::chrono::seconds(1);
  Clock::time_point next_probe{};
  while (running_.load()) {
    rd_kafka_poll(producer_.get(), 100);
    flush_commits();
    // While Kafka is unreachable, ask for metadata now and then: its answer ends the outage.
    if (outage_.down() && Clock::now() >= next_probe) {
      next_probe = Clock::now() + kProbeEvery;
      const rd_kafka_metadata_t* md = nullptr;
      if (rd_kafka_metadata(producer_.get(), 0, nullptr, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        if (auto summary = outage_.recovered()) log_.info(*summary);
      }
    }
  }
}

// Produces one record; `done` runs once with the delivery report's error. `batched`: through the
// lingering producer even when the eager one could take it (records that must stay in order).
void KafkaBroker::Impl::produce(const std::string& topic, std::int32_t partition,
                                std::string_view key, std::string_view value,
                                const Headers& headers,
                                std::function<void(rd_kafka_resp_err_t)> done, bool traced,
                                bool batched) {
  auto* waiter = new ProduceWaiter(std::move(done), traced, &unacknowledged_);
  // Nothing else on its way: no batch to wait for, so this record goes out at once.
  rd_kafka_t* rk = !batched && eager_ && unacknowledged_.load() == 1 && eager_knows(topic)
                       ? eager_.get()
                       : producer_.get();
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
  ErrorPtr error(rd_kafka_produceva(rk, vus.data(), vus.size()));
  if (error) {
    rd_kafka_resp_err_t code = rd_kafka_error_code(error.get());
    std::unique_ptr<ProduceWaiter> owned(waiter);
    if (owned->done) owned->done(code);
  }
}

bool KafkaBroker::Impl::eager_knows(const std::string& topic) {
  std::lock_guard lock(eager_mutex_);
  if (eager_topics_.count(topic) != 0) return true;
  // A new topic handle asks the cluster for the topic's metadata in the background.
  if (rd_kafka_topic_t* t = rd_kafka_topic_new(eager_.get(), topic.c_str(), nullptr)) {
    eager_topics_.emplace(topic, TopicPtr(t));
  }
  return false;
}

// Whether the caller runs on one of this broker's threads (a callback that dropped the last
// reference to the broker): such a thread cannot join itself.
bool KafkaBroker::Impl::on_own_thread() {
  auto me = std::this_thread::get_id();
  if (me == producer_thread_.get_id() || me == eager_thread_.get_id() ||
      me == lookup_thread_.get_id()) {
    return true;
  }
  if (auto sub = subscription(); sub && me == sub->thread.get_id()) return true;
  std::lock_guard lock(replies_mutex_);
  for (const auto& [q, l] : listeners_) {
    if (me == l->thread.get_id()) return true;
  }
  return false;
}

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
  {
    std::lock_guard lock(servers_mutex_);
    if (servers_reader_) rd_kafka_consumer_close(servers_reader_.get());
    servers_reader_.reset();
  }
  if (producer_) {
    // Replies in flight still get their chance to be delivered.
    rd_kafka_flush(producer_.get(), 5000);
    if (eager_) rd_kafka_flush(eager_.get(), 5000);
    running_ = false;
    if (producer_thread_.joinable()) producer_thread_.join();
    if (eager_thread_.joinable()) eager_thread_.join();
    for (KafkaPtr* p : {&eager_, &producer_}) {
      if (!*p) continue;
      rd_kafka_purge(p->get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(p->get(), 0);  // runs the purged records' callbacks
    }
    {
      std::lock_guard lock(eager_mutex_);
      eager_topics_.clear();
    }
    eager_.reset();
    producer_.reset();
  }
}

}  // namespace prpc::kafka
