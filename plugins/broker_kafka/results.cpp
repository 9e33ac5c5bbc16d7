// Results: finish (store, push, dead-letter, then the commit), result lookups from the cache
// or by scanning the feedback topic, queue_stats and dead letters.
#include <algorithm>

#include "kafka_impl.hpp"
#include "prpc/protocol.hpp"

namespace prpc::kafka {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string cache_key(Flavour f, std::string_view queue, std::string_view id) {
  std::string k(flavour_name(f));
  k += '\n';
  k += queue;
  k += '\n';
  k += id;
  return k;
}

}  // namespace

void ResultCache::put(const std::string& key, StoredResult result) {
  if (capacity_ == 0) return;
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->second = std::move(result);
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.emplace_front(key, std::move(result));
  index_[key] = order_.begin();
  while (order_.size() > capacity_) {
    index_.erase(order_.back().first);
    order_.pop_back();
  }
}

std::optional<StoredResult> ResultCache::get(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return it->second->second;
}

void KafkaBroker::Impl::finish(const DeliveryView& d, const FinishRequest& what,
                               DoneCallback done) {
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
  if (store || push || send_dead) {
    job->payload = std::string(d.payload);
    job->signature = std::string(d.signature);
    job->key_id = std::string(d.key_id);
  }
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
        source +=
            ":" + std::to_string(it->second->partition) + ":" + std::to_string(job->token.offset);
      }
    }
    Headers headers = {{kHeaderReason, std::string(what.dead_letter_reason)},
                       {kHeaderFlavour, std::string(flavour_name(d.flavour))},
                       {kHeaderSource, source},
                       {kHeaderCount, std::to_string(d.delivery_count)}};
    // The request's own signature, so the dead letter can be checked as it was sent.
    if (!d.signature.empty()) {
      headers.emplace_back(protocol::kSignatureHeader, std::string(d.signature));
      headers.emplace_back(protocol::kKeyIdHeader, std::string(d.key_id));
    }
    // With the reply through the same producer, which sends them in order: a caller that has
    // its DeadLetterError finds the dead letter.
    produce(dead_topic(d.queue), RD_KAFKA_PARTITION_UA, job->key, d.payload, headers, on_report,
            false, /*batched=*/true);
  }
  Headers signature_headers;
  if (reply != nullptr && !reply->signature.empty()) {
    signature_headers = {{protocol::kSignatureHeader, std::string(reply->signature)},
                         {protocol::kKeyIdHeader, std::string(reply->key_id)}};
  }
  if (store) {
    std::int32_t partition = push_partition ? *push_partition : RD_KAFKA_PARTITION_UA;
    job->cache_key = cache_key(reply->flavour, reply_queue, reply->message_id);
    job->result = StoredResult{std::string(reply->payload), std::string(reply->signature),
                               std::string(reply->key_id)};
    produce(reply_topic(reply_queue, reply->flavour), partition, reply->message_id, reply->payload,
            signature_headers, on_report);
  }
  if (push) {
    produce(reply_topic(reply_queue, reply->flavour), *push_partition, reply->message_id,
            reply->payload, signature_headers, on_report);
  }
}

void KafkaBroker::Impl::complete(const std::shared_ptr<FinishJob>& job, rd_kafka_resp_err_t err,
                                 bool commit_now) {
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
        trace(sub, "finished e" + std::to_string(job->token.epoch) + " off=" +
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
      h.signature = std::move(job->signature);
      h.key_id = std::move(job->key_id);
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

void KafkaBroker::Impl::lookup_result_signed(Flavour flavour, std::string_view queue,
                                             std::string_view message_id,
                                             StoredResultCallback done) {
  if (auto hit = cache_.get(cache_key(flavour, queue, message_id))) {
    done(std::move(hit));
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
    lookups_.push_back(
        LookupJob{flavour, std::string(queue), std::string(message_id), from, std::move(done)});
    if (!lookup_thread_.joinable()) lookup_thread_ = std::thread([this] { lookup_loop(); });
  }
  lookup_cv_.notify_one();
}

bool KafkaBroker::Impl::lookup_stopped() {
  std::lock_guard lock(lookup_mutex_);
  return lookup_stop_;
}

void KafkaBroker::Impl::in_background(std::function<void(bool cancelled)> task) {
  {
    std::lock_guard lock(lookup_mutex_);
    if (!lookup_stop_) {
      tasks_.push_back(std::move(task));
      if (!lookup_thread_.joinable()) lookup_thread_ = std::thread([this] { lookup_loop(); });
      lookup_cv_.notify_one();
      return;
    }
  }
  task(true);  // the broker is shutting down
}

void KafkaBroker::Impl::lookup_loop() {
  for (;;) {
    LookupJob job;
    std::function<void(bool)> task;
    {
      std::unique_lock lock(lookup_mutex_);
      lookup_cv_.wait(lock,
                      [this] { return lookup_stop_ || !lookups_.empty() || !tasks_.empty(); });
      if (!tasks_.empty()) {
        task = std::move(tasks_.front());
        tasks_.pop_front();
      } else if (lookups_.empty()) {
        return;
      } else {
        job = std::move(lookups_.front());
        lookups_.pop_front();
      }
    }
    if (task) {
      task(lookup_stopped());
      continue;
    }
    if (lookup_stopped()) {
      job.done(Status(StatusCode::kCancelled, "kafka: the broker is shutting down"));
      continue;
    }
    if (auto hit = cache_.get(cache_key(job.flavour, job.queue, job.id))) {
      job.done(std::move(hit));
      continue;
    }
    std::optional<StoredResult> found;
    Status s =
        scan(reply_topic(job.queue, job.flavour), job.from_ms, [&](const rd_kafka_message_t* m) {
          if (message_key(m) != job.id) return true;
          found = StoredResult{std::string(message_value(m)),
                               header_value(m, protocol::kSignatureHeader),
                               header_value(m, protocol::kKeyIdHeader)};
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
Status KafkaBroker::Impl::scan(const std::string& topic, std::int64_t from_ms,
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
  if (from_ms >= 0 &&
      rd_kafka_offsets_for_times(rk, list.get(), timeout_ms(settings_.lookup_timeout)) !=
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
Result<QueueStats> KafkaBroker::Impl::queue_stats(std::string_view queue) {
  PRPC_RETURN_IF_ERROR(require_connected());
  QueueStats out;
  std::string group = "prpc_group_consumers";
  std::uint32_t outstanding = 0;
  if (auto sub = subscription()) {
    if (!sub->options.group.empty()) group = sub->options.group;
    outstanding = sub->outstanding.load();
  }
  out.pending = outstanding;
  PRPC_ASSIGN_OR_RETURN(KafkaPtr rk,
                        make_consumer({{"group.id", group}, {"enable.auto.commit", "false"}}));
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
  if (rd_kafka_list_groups(rk.get(), group.c_str(), &groups, timeout_ms(settings_.admin_timeout)) ==
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    GroupListPtr owned(groups);
    for (int i = 0; i < groups->group_cnt; ++i) out.consumers += groups->groups[i].member_cnt;
  }
  std::string dead = dead_topic(queue);
  PRPC_ASSIGN_OR_RETURN(std::int32_t dead_count, partition_count(rk.get(), dead));
  for (std::int32_t p = 0; p < dead_count; ++p) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    if (watermarks(rk.get(), dead.c_str(), p, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.dead_letters += high - low;
    }
  }
  rd_kafka_consumer_close(rk.get());
  return out;
}

Result<std::vector<DeadLetter>> KafkaBroker::Impl::dead_letters(std::string_view queue,
                                                                std::size_t max_count) {
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

}  // namespace prpc::kafka
