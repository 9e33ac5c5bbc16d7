// The consumer group: rebalances (assign, revoke), fetching with back-pressure, hand-overs with
// their delivery counts, and offset commits of the finished prefix.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kafka_impl.hpp"
#include "prpc/protocol.hpp"

namespace prpc::kafka {

// Names the server by its consumer name, or by its librdkafka handle when it has none (two
// subscriptions in one process would otherwise be told apart by nothing).
void KafkaBroker::Impl::trace(const Subscription* sub, const std::string& what) const {
  std::string line = "trace ";
  line += sub->options.consumer.empty() ? std::string(rd_kafka_name(sub->consumer.get()))
                                        : sub->options.consumer;
  line += ' ';
  line += what;
  log_.info(line);
}

Status KafkaBroker::Impl::subscribe(const SubscribeOptions& options, DeliveryHandler handler) {
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
  sub->context.outage = &outage_;
  sub->context.subscription = sub.get();
  PRPC_ASSIGN_OR_RETURN(sub->consumer, make_consumer(fixed, &Impl::on_rebalance, &sub->context));
  PartitionListPtr topics(rd_kafka_topic_partition_list_new(2));
  if (options.python) {
    rd_kafka_topic_partition_list_add(topics.get(), sub->python_topic.c_str(),
                                      RD_KAFKA_PARTITION_UA);
  }
  if (options.raw) {
    rd_kafka_topic_partition_list_add(topics.get(), sub->raw_topic.c_str(), RD_KAFKA_PARTITION_UA);
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

std::shared_ptr<KafkaBroker::Impl::Subscription> KafkaBroker::Impl::subscription() {
  std::lock_guard lock(sub_mutex_);
  return sub_;
}

void KafkaBroker::Impl::unsubscribe() {
  auto sub = subscription();
  if (!sub) return;
  {
    std::lock_guard lock(sub->handler_mutex);  // waits for a hand-over in progress
    sub->draining = true;
  }
}

void KafkaBroker::Impl::close_subscription() {
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

std::string KafkaBroker::Impl::state_key(const char* topic, std::int32_t partition) {
  return std::string(topic) + "\n" + std::to_string(partition);
}

// Rebalance callback: runs on the consumer thread inside rd_kafka_consumer_poll.
void KafkaBroker::Impl::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* sub = static_cast<Subscription*>(static_cast<HandleContext*>(opaque)->subscription);
  bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    sub->impl->assign(sub, parts);
    if (cooperative) {
      ErrorPtr e(rd_kafka_incremental_assign(rk, parts));
      if (e)
        sub->impl->log_.warn(std::string("incremental assign: ") + rd_kafka_error_string(e.get()));
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
      if (e)
        sub->impl->log_.warn(std::string("incremental unassign: ") +
                             rd_kafka_error_string(e.get()));
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  }
}

void KafkaBroker::Impl::assign(Subscription* sub, rd_kafka_topic_partition_list_t* parts) {
  rd_kafka_t* rk = sub->consumer.get();
  PartitionListPtr committed(rd_kafka_topic_partition_list_copy(parts));
  rd_kafka_resp_err_t e =
      rd_kafka_committed(rk, committed.get(), timeout_ms(settings_.admin_timeout));
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
    if (watermarks(rk, p.topic, p.partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR) {
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
    log_.debug("assigned " + std::string(p.topic) + "[" + std::to_string(p.partition) + "] at " +
               std::to_string(offset));
    if (tracing()) {
      trace(sub, "assigned " + state->where() + " committed=" + std::to_string(offset) +
                     " suspect_end=" + std::to_string(high) +
                     " paused=" + std::to_string(sub->paused));
    }
  }
}

void KafkaBroker::Impl::revoke(Subscription* sub, rd_kafka_topic_partition_list_t* parts) {
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
        trace(sub, "revoked " + s->where() +
                       " commit=" + std::to_string(s->ledger.commit_offset()) +
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
void KafkaBroker::Impl::commit_locked(Subscription* sub, const std::vector<StatePtr>& states,
                                      bool async, bool only_dirty) {
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
  rd_kafka_resp_err_t e = async ? rd_kafka_commit(sub->consumer.get(), list.get(), 1)
                                : rd_kafka_commit_queue(sub->consumer.get(), list.get(), nullptr,
                                                        &commit_callback, &sub->context);
  if (tracing()) {
    std::string what = async ? "commit-async" : "commit-sync";
    for (int i = 0; i < list->cnt; ++i) {
      what += ' ';
      what += list->elems[i].topic;
      what += "[" + std::to_string(list->elems[i].partition) +
              "]=" + std::to_string(list->elems[i].offset);
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
void KafkaBroker::Impl::flush_commits() {
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

void KafkaBroker::Impl::consume_loop(Subscription* sub) {
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
    bool want_pause =
        draining || sub->held.size() >= bound || (sub->paused && sub->held.size() > bound / 2);
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

void KafkaBroker::Impl::hold(Subscription* sub, const rd_kafka_message_t* m) {
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
      log_.info(state->where() + ": offsets " + std::to_string(state->cursor.gap_from()) + ".." +
                std::to_string(m->offset - 1) + " hold no records; going on at " +
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
    trace(sub,
          "fetched " + state->where() + " off=" + std::to_string(m->offset) + (gap ? " GAP" : ""));
  }
  state->last_fetched = m->offset;
  Held h;
  h.state = std::move(state);
  h.offset = m->offset;
  rd_kafka_timestamp_type_t tstype;
  h.timestamp = rd_kafka_message_timestamp(m, &tstype);
  h.key = std::string(message_key(m));
  h.payload = std::string(message_value(m));
  h.signature = header_value(m, protocol::kSignatureHeader);
  h.key_id = header_value(m, protocol::kKeyIdHeader);
  sub->held.push_back(std::move(h));
}

// Moves a partition's fetch position back to `offset`, where a record was skipped. Records
// fetched before the seek are dropped by librdkafka from here on (the seek's op version).
// Consumer thread; waits for the seek to be applied.
bool KafkaBroker::Impl::seek_back(Subscription* sub, const PartitionState& state,
                                  std::int64_t offset) {
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

void KafkaBroker::Impl::hand_over(Subscription* sub) {
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
  std::size_t n =
      std::min<std::size_t>({sub->held.size(), opt.max_outstanding - outstanding, opt.batch_size});

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
        std::int64_t expected =
            h.state->last_handed >= 0 ? h.state->last_handed + 1 : h.state->ledger.commit_offset();
        if (!h.retry && expected >= 0 && h.offset != expected) {
          note = h.offset < expected ? " BEHIND" : " GAP";
        }
        trace(sub, "handed " + h.state->where() + " off=" + std::to_string(h.offset) +
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
    tokens.push_back(format_token({sub->id, h.state->epoch, h.offset}));
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
    v.signature = h.signature;
    v.key_id = h.key_id;
    views.push_back(v);
  }
  sub->outstanding.fetch_add(static_cast<std::uint32_t>(views.size()));
  sub->handler(views);
}

}  // namespace prpc::kafka
