// Subscription: consumer-group reads, claims of entries idle consumers left, back-pressure
// (entries read beyond max_outstanding are parked), and keeping owned entries from looking idle.
#include "broker_impl.hpp"
#include "prpc/protocol.hpp"

namespace prpc::redis {

using namespace std::chrono_literals;

Status RedisBroker::Impl::subscribe(const SubscribeOptions& options, DeliveryHandler handler) {
  if (options.queue.empty()) return Status(StatusCode::kInvalidArgument, "the queue is empty");
  if (!options.python && !options.raw) {
    return Status(StatusCode::kInvalidArgument, "subscribe to at least one flavour");
  }
  if (options.group.empty()) return Status(StatusCode::kInvalidArgument, "the group is empty");
  if (!handler) return Status(StatusCode::kInvalidArgument, "no delivery handler");
  PRPC_RETURN_IF_ERROR(connect());
  auto sub = std::make_shared<Subscription>();
  sub->options = options;
  if (sub->options.consumer.empty()) sub->options.consumer = "prpc-" + client_id_;
  sub->options.max_outstanding = std::max<std::uint32_t>(1, options.max_outstanding);
  sub->options.batch_size = std::max<std::uint32_t>(1, options.batch_size);
  if (sub->options.visibility_timeout.count() <= 0) sub->options.visibility_timeout = 30s;
  sub->handler = std::move(handler);
  const bool cluster = settings_.url.cluster();
  const int shards = settings_.url.shards;
  for (int shard = 0; shard < shards; ++shard) {
    for (Flavour f : {Flavour::kPython, Flavour::kRaw}) {
      if (!(f == Flavour::kPython ? options.python : options.raw)) continue;
      StreamState st;
      st.name = details::shard_stream(protocol::request_stream(f, options.queue), shard, shards);
      st.flavour = f;
      st.cursor = "-";
      st.shard = shard;
      st.liveness_key = cluster ? "prpc_alive:{" + std::string(details::hashed_part(st.name)) + "}"
                                : protocol::liveness_key(options.queue);
      sub->streams.push_back(std::move(st));
    }
  }
  sub->claim_interval = settings_.claim_interval.count() > 0
                            ? settings_.claim_interval
                            : std::clamp(sub->options.visibility_timeout / 4, 10ms, 5000ms);
  // Unless told otherwise, a dead server's requests are looked for as often as servers renew
  // their liveness.
  if (settings_.claim_interval.count() == 0 && settings_.liveness_timeout.count() > 0) {
    sub->claim_interval = std::min(sub->claim_interval, settings_.heartbeat_interval);
  }

  auto r = run_sync<bool>(
      [this, sub](Complete<bool> complete) {
        if (closed_) {
          complete(Status(StatusCode::kCancelled, "the broker is closed"));
          return;
        }
        if (sub_) {
          complete(
              Status(StatusCode::kAlreadyExists,
                     "this broker instance already serves queue '" + sub_->options.queue + "'"));
          return;
        }
        create_groups(command_link(), sub, -1, [this, sub, complete](const Status& s) {
          if (!s.is_ok()) {
            complete(s);
            return;
          }
          if (closed_ || sub_) {
            complete(Status(StatusCode::kCancelled, "subscribe raced with close"));
            return;
          }
          start_subscription(sub);
          complete(true);
        });
      },
      settings_.connect_timeout + settings_.command_timeout + 2s);
  return r.is_ok() ? Status::ok() : r.status();
}

void RedisBroker::Impl::unsubscribe() {
  if (in_io_thread()) {
    stop_subscription(nullptr);
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  asio::post(io_, [this, done] { stop_subscription(done); });
  // The read in flight returns at once after CLIENT UNBLOCK, or within `block` without it.
  auto bound = settings_.block + settings_.command_timeout + 1s;
  if (future.wait_for(bound) != std::future_status::ready) {
    asio::post(io_, [this] { abandon_subscription(); });
    future.wait_for(2s);
  }
}

std::string RedisBroker::Impl::token_of(int shard, std::string_view id) {
  if (shard == 0) return std::string(id);
  std::string token = std::to_string(shard);
  token += ':';
  token += id;
  return token;
}

RedisBroker::Impl::EntryRef RedisBroker::Impl::entry_of(Flavour flavour, std::string_view queue,
                                                        std::string_view token) const {
  std::string stream = protocol::request_stream(flavour, queue);
  auto colon = token.find(':');
  if (colon == std::string_view::npos) return {std::move(stream), token};
  int shard = 0;
  std::from_chars(token.data(), token.data() + colon, shard);
  return {details::shard_stream(stream, shard, settings_.url.shards), token.substr(colon + 1)};
}

void RedisBroker::Impl::touch(const DeliveryView& d) {
  EntryRef ref = entry_of(d.flavour, d.queue, d.token);
  std::string stream = std::move(ref.stream);
  std::string id(ref.id);
  asio::post(io_, [this, stream = std::move(stream), id = std::move(id)] {
    if (closed_ || group_.empty()) return;
    send_touch(stream, id, [this, id](bool owned) {
      if (!owned) {
        log_.warn("request " + id +
                  " was claimed by another consumer while it ran here; it "
                  "may run twice");
      }
    });
  });
}

// XGROUP CREATE ... 0 MKSTREAM: from id 0, so requests sent before any server are served.
void RedisBroker::Impl::create_groups(const std::shared_ptr<Channel>& link,
                                      const std::shared_ptr<Subscription>& sub, int lane,
                                      std::function<void(const Status&)> done) {
  std::vector<const StreamState*> streams;
  if (lane < 0) {
    for (const StreamState& s : sub->streams) streams.push_back(&s);
  } else {
    for (std::size_t i : sub->lanes[static_cast<std::size_t>(lane)].streams) {
      streams.push_back(&sub->streams[i]);
    }
  }
  auto left = std::make_shared<std::size_t>(streams.size());
  auto first_error = std::make_shared<Status>();
  for (const StreamState* stream : streams) {
    const StreamState& s = *stream;
    link->send(Command::make({"XGROUP", "CREATE", s.name, sub->options.group, "0", "MKSTREAM"}),
               [left, first_error, done, name = s.name](const Status& st, ReplyPtr r) {
                 Status e = st;
                 if (e.is_ok() && is_error(r.get()) && !starts_with(r.get(), "BUSYGROUP")) {
                   e = error_status(r.get(), "creating the consumer group on " + name);
                 }
                 if (!e.is_ok() && first_error->is_ok()) *first_error = e;
                 if (--*left == 0 && done) done(*first_error);
               });
  }
}

void RedisBroker::Impl::start_subscription(const std::shared_ptr<Subscription>& sub) {
  sub_ = sub;
  {
    std::lock_guard lock(names_mutex_);
    group_ = sub->options.group;
    consumer_ = sub->options.consumer;
  }
  max_outstanding_ = sub->options.max_outstanding;
  visibility_ = sub->options.visibility_timeout;
  auto now = Clock::now();
  sub->next_trim = now + settings_.trim_interval;
  sub->next_heartbeat = now;
  heartbeat(now);  // known as alive before the first read
  auto add_lane = [&](std::shared_ptr<Channel> link) -> Lane& {
    Lane& lane = sub->lanes.emplace_back();
    lane.link = std::move(link);
    lane.next_claim = now;  // claim what crashed consumers left at once
    return lane;
  };
  if (!settings_.url.cluster()) {
    if (!read_) read_ = make_link("reads");
    Lane& lane = add_lane(read_);
    for (std::size_t i = 0; i < sub->streams.size(); ++i) lane.streams.push_back(i);
  } else {
    for (std::size_t i = 0; i < sub->streams.size(); ++i)
      add_lane(make_link("reads")).streams = {i};
  }
  for (std::size_t i = 0; i < sub->lanes.size(); ++i) {
    const std::shared_ptr<Channel>& link = sub->lanes[i].link;
    std::weak_ptr<Subscription> weak = sub;
    link->on_ready([this, weak, i] {
      auto live = weak.lock();
      if (!live || live != sub_) return;
      Lane& lane = live->lanes[i];
      // A single connection's reads in flight failed with it; a cluster lane's read is answered
      // (or failed) by its node's connection.
      if (!settings_.url.cluster()) {
        lane.reading = false;
        lane.claiming = false;
      }
      lane.recover = true;
      // Redis may have come back without its data: make sure the groups exist again.
      create_groups(lane.link, live, static_cast<int>(i), [this](const Status& s) {
        if (!s.is_ok()) log_.warn("re-creating the consumer groups failed: " + s.message());
      });
      pump();
    });
    if (link->idle()) {
      link->start();
    } else {
      pump();
    }
  }
  schedule_tick();
}

void RedisBroker::Impl::stop_subscription(const std::shared_ptr<std::promise<void>>& done) {
  if (!sub_) {
    if (done) done->set_value();
    return;
  }
  sub_->active = false;
  if (sub_->reading() && done) {
    sub_->stopped = done;  // finished when a read in flight returns
    for (const Lane& lane : sub_->lanes) {
      if (lane.reading || lane.claiming) unblock(*lane.link);
    }
    return;
  }
  abandon_subscription();
  if (done) done->set_value();
}

// Stops reading at once. Entries of a read still in flight stay pending under this consumer
// and go to another one after the visibility timeout.
void RedisBroker::Impl::abandon_subscription() {
  if (!sub_) return;
  auto sub = std::move(sub_);
  sub_.reset();
  parked_.clear();
  for (Lane& lane : sub->lanes) {
    if (lane.link != read_) lane.link->close();
  }
  if (read_) {
    auto link = std::move(read_);
    read_.reset();
    link->close();
  }
  if (sub->stopped) {
    auto p = std::move(sub->stopped);
    p->set_value();
  }
}

// Starts the next read or claim of each lane when there is room. On one Redis a lane's claim
// and read take turns. In a cluster they run side by side: a claim may be retried for seconds
// (TRYAGAIN while its slot migrates with the stream and the liveness hash not yet together),
// and reads must go on meanwhile; the claim queues behind the blocking read at most until its
// time, when the read returns.
void RedisBroker::Impl::pump() {
  if (closed_ || !sub_ || !sub_->active) return;
  hand_over_parked();
  const bool side_by_side = settings_.url.cluster();
  for (std::size_t i = 0; i < sub_->lanes.size(); ++i) {
    Lane& lane = sub_->lanes[i];
    if (!lane.link->ready() || (lane.reading && !side_by_side)) continue;
    std::size_t used = handed_.size() + parked_.size();
    if (used >= max_outstanding_) return;
    std::size_t room = max_outstanding_ - used;
    auto now = Clock::now();
    if (lane.recover) {
      if (!lane.reading && !lane.claiming) start_recover(i);
      continue;
    }
    if (now >= lane.next_claim && !lane.claiming && (side_by_side || !lane.reading)) {
      start_claim(i, room);
      if (!side_by_side) continue;
    }
    if (!lane.reading) {
      start_read(i, room,
                 std::chrono::duration_cast<milliseconds>(
                     std::max(lane.next_claim - now, Clock::duration::zero())));
    }
  }
}

// COUNT applies per stream: split the room between them, at least one each. With one slot
// left and two streams, one extra entry may come back; it is parked until a slot frees.
std::string RedisBroker::Impl::per_stream_count(std::size_t room) const {
  std::size_t n = std::max<std::size_t>(1, sub_->streams.size());
  std::size_t count = std::clamp<std::size_t>(room / n, 1, sub_->options.batch_size);
  return std::to_string(count);
}

void RedisBroker::Impl::start_read(std::size_t lane_index, std::size_t room,
                                   milliseconds until_claim) {
  Lane& lane = sub_->lanes[lane_index];
  // Wake up in time for the next claim round: an idle server must still recover entries.
  milliseconds block = std::max(1ms, std::min(settings_.block, until_claim + 1ms));
  std::string count = per_stream_count(room);
  std::string block_ms = ms_arg(block);
  std::vector<std::string_view> args{
      "XREADGROUP", "GROUP",  sub_->options.group, sub_->options.consumer, "COUNT", count, "BLOCK",
      block_ms,     "STREAMS"};
  for (std::size_t i : lane.streams) args.push_back(sub_->streams[i].name);
  for (std::size_t i = 0; i < lane.streams.size(); ++i) args.emplace_back(">");
  lane.reading = true;
  std::weak_ptr<Subscription> weak = sub_;
  lane.link->send(
      Command::make(args),
      [this, weak, lane_index](const Status& s, ReplyPtr r) {
        on_read(weak, lane_index, s, std::move(r));
      },
      block);
}

// After a (re)connect: this consumer's own pending entries that it is not working on are handed
// over again at once (hand_over skips the ones it holds) rather than after the visibility
// timeout. They are entries read just before a connection dropped, and after a failover entries
// whose finish reached the old master but not its replica: the acknowledgement is lost with it,
// and so are the result and the reply, so the caller still waits.
void RedisBroker::Impl::start_recover(std::size_t lane_index) {
  Lane& lane = sub_->lanes[lane_index];
  lane.recover = false;
  std::vector<std::string_view> args{
      "XREADGROUP", "GROUP",  sub_->options.group, sub_->options.consumer, "COUNT",
      "1000",       "STREAMS"};
  for (std::size_t i : lane.streams) args.push_back(sub_->streams[i].name);
  for (std::size_t i = 0; i < lane.streams.size(); ++i) args.emplace_back("0");
  lane.reading = true;
  std::weak_ptr<Subscription> weak = sub_;
  lane.link->send(Command::make(args), [this, weak, lane_index](const Status& s, ReplyPtr r) {
    on_read(weak, lane_index, s, std::move(r), true);
  });
}

void RedisBroker::Impl::on_read(const std::weak_ptr<Subscription>& weak, std::size_t lane,
                                const Status& s, ReplyPtr r, bool own_pending) {
  auto sub = weak.lock();
  if (!sub || sub != sub_) return;
  sub->lanes[lane].reading = false;
  if (!s.is_ok()) {  // the link reconnects; on_ready resumes
    finish_stop_if_asked(sub);
    return;
  }
  if (is_error(r.get())) {
    if (starts_with(r.get(), "NOGROUP")) {
      log_.warn(
          "the consumer group is gone (was Redis restarted without its data?); "
          "creating it again");
      create_groups(sub->lanes[lane].link, sub, static_cast<int>(lane), nullptr);
      pump();
    } else if (starts_with(r.get(), "UNBLOCKED")) {
      // The slot of the stream a blocked read waited on moved to another node (a cluster
      // migration): read again at once, and the next read follows the redirection.
      log_.debug(error_status(r.get(), "reading requests").message());
      pump();
    } else {
      log_.error(error_status(r.get(), "reading requests").message());
      retry_later();
    }
    finish_stop_if_asked(sub);
    return;
  }
  std::vector<Item> items;
  for (details::StreamBatch& batch : details::read_streams(r.get())) {
    const StreamState* st = find_stream(*sub, batch.stream);
    if (st != nullptr) collect_entries(st, batch.entries, items);
  }
  if (own_pending) {
    // Delivered before: the engine looks for a stored result before running it again.
    std::size_t lost = 0;
    for (Item& it : items) {
      it.count = std::max<std::uint32_t>(it.count, 2);
      std::string key = delivery_key(it.flavour, token_of(it.shard, it.id));
      if (handed_.count(key) == 0 && !is_parked(key)) ++lost;
    }
    if (lost > 0) {
      log_.info("recovered " + std::to_string(lost) +
                " request(s) of this server left pending across a reconnect");
    }
  }
  if (!items.empty()) hand_over(sub, items);
  finish_stop_if_asked(sub);
  pump();
}

void RedisBroker::Impl::finish_stop_if_asked(const std::shared_ptr<Subscription>& sub) {
  if (sub->active || sub != sub_) return;
  auto stopped = sub->stopped;
  sub->stopped.reset();
  abandon_subscription();
  if (stopped) stopped->set_value();
}

void RedisBroker::Impl::retry_later() {
  retry_timer_.expires_after(settings_.reconnect_max);
  retry_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) pump();
  });
}

const RedisBroker::Impl::StreamState* RedisBroker::Impl::find_stream(const Subscription& sub,
                                                                     std::string_view name) {
  for (const StreamState& s : sub.streams) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// Turns stream entries into items; an entry deleted while pending is acknowledged instead.
void RedisBroker::Impl::collect_entries(const StreamState* st,
                                        std::vector<details::StreamEntry>& entries,
                                        std::vector<Item>& items) {
  for (details::StreamEntry& e : entries) {
    if (e.deleted) {
      // Deleted (XDEL) while pending: nothing left to serve.
      ack_orphan(st->name, e.id);
      continue;
    }
    Item item;
    item.flavour = st->flavour;
    item.stream = &st->name;
    item.shard = st->shard;
    item.id = e.id;
    item.count = e.delivery_count;
    item.signature = e.signature;
    item.key_id = e.key_id;
    if (e.message) {
      item.payload = *e.message;
    } else {
      // Handed over with an empty payload, which the engine rejects (dead letter + reply).
      item.note = "the stream entry has no 'message' field; its fields: " + e.other_fields;
    }
    items.push_back(std::move(item));
  }
}

void RedisBroker::Impl::ack_orphan(const std::string& stream, std::string_view id) {
  log_.debug("acknowledging deleted entry " + std::string(id) + " of " + stream);
  command_link()->send(Command::make({"XACK", stream, group_, id}), [](const Status&, ReplyPtr) {});
}

bool RedisBroker::Impl::is_parked(const std::string& key) const {
  return std::any_of(parked_.begin(), parked_.end(), [&](const Parked& p) { return p.key == key; });
}

void RedisBroker::Impl::hand_over(const std::shared_ptr<Subscription>& sub,
                                  std::vector<Item>& items) {
  std::vector<DeliveryView> batch;
  batch.reserve(items.size());
  std::vector<std::string> tokens;  // reserved: the views into them must stay put
  tokens.reserve(items.size());
  auto now = Clock::now();
  for (Item& it : items) {
    std::string token = token_of(it.shard, it.id);
    std::string key = delivery_key(it.flavour, token);
    // A claim may return an entry this server is still working on: never hand it over twice.
    if (handed_.count(key) != 0 || is_parked(key)) continue;
    if (!parked_.empty() || handed_.size() >= max_outstanding_) {
      parked_.push_back(Parked{key, it.flavour, *it.stream, std::string(it.id), std::move(token),
                               std::string(it.payload), std::move(it.note), it.count, now,
                               std::string(it.signature), std::string(it.key_id)});
      continue;
    }
    handed_.insert(key);
    if (!it.note.empty()) put_note(key, std::move(it.note));
    tokens.push_back(std::move(token));
    batch.emplace_back(it.flavour, sub->options.queue, tokens.back(), it.payload, it.count,
                       it.signature, it.key_id);
  }
  deliver(sub, batch);
}

void RedisBroker::Impl::hand_over_parked() {
  if (parked_.empty() || !sub_) return;
  auto sub = sub_;
  std::vector<Parked> taken;
  while (!parked_.empty() && handed_.size() + taken.size() < max_outstanding_) {
    taken.push_back(std::move(parked_.front()));
    parked_.pop_front();
  }
  if (taken.empty()) return;
  std::vector<DeliveryView> batch;
  for (Parked& p : taken) {
    handed_.insert(p.key);
    if (!p.note.empty()) put_note(p.key, std::move(p.note));
    batch.emplace_back(p.flavour, sub->options.queue, p.token, p.payload, p.count, p.signature,
                       p.key_id);
  }
  deliver(sub, batch);
}

void RedisBroker::Impl::deliver(const std::shared_ptr<Subscription>& sub,
                                const std::vector<DeliveryView>& batch) {
  if (batch.empty()) return;
  try {
    sub->handler(std::span<const DeliveryView>(batch.data(), batch.size()));
  } catch (const std::exception& e) {
    log_.error(std::string("the delivery handler threw: ") + e.what());
  } catch (...) {
    log_.error("the delivery handler threw");
  }
}

void RedisBroker::Impl::start_claim(std::size_t lane_index, std::size_t room) {
  Lane& lane = sub_->lanes[lane_index];
  lane.claiming = true;
  lane.next_claim = Clock::now() + sub_->claim_interval;
  std::string count = per_stream_count(room);
  std::string min_idle = ms_arg(visibility_);
  // A dead server leaves the liveness hash a while after its deadline (never before this server
  // could have claimed by idle time too); "0" turns the liveness pass off.
  std::string grace = liveness_on()
                          ? ms_arg(std::max<milliseconds>(visibility_, std::chrono::minutes(1)))
                          : std::string("0");
  auto left = std::make_shared<std::size_t>(lane.streams.size());
  auto replies = std::make_shared<std::vector<ReplyPtr>>(lane.streams.size());
  std::weak_ptr<Subscription> weak = sub_;
  for (std::size_t i = 0; i < lane.streams.size(); ++i) {
    const StreamState& s = sub_->streams[lane.streams[i]];
    std::vector<std::string_view> args{"EVALSHA",
                                       scripts::shas().claim,
                                       "2",
                                       s.name,
                                       s.liveness_key,
                                       sub_->options.group,
                                       sub_->options.consumer,
                                       min_idle,
                                       s.cursor,
                                       count,
                                       grace};
    // The ids this consumer holds (handed over or parked) are not to be claimed back.
    char prefix = s.flavour == Flavour::kRaw ? 'r' : 'p';
    for (const std::string& key : handed_) {
      if (key[0] != prefix) continue;
      std::string_view token = std::string_view(key).substr(1);
      EntryRef ref = entry_of(s.flavour, sub_->options.queue, token);
      if (ref.stream == s.name) args.push_back(ref.id);
    }
    for (const Parked& pk : parked_) {
      if (pk.stream == s.name) args.push_back(pk.id);
    }
    lane.link->send(Command::make(args), [this, weak, lane_index, i, left, replies, count](
                                             const Status& st, ReplyPtr r) {
      if (st.is_ok()) (*replies)[i] = std::move(r);
      if (--*left == 0) on_claimed(weak, lane_index, *replies, std::stoul(count));
    });
  }
}

void RedisBroker::Impl::on_claimed(const std::weak_ptr<Subscription>& weak, std::size_t lane_index,
                                   std::vector<ReplyPtr>& replies, std::size_t count) {
  auto sub = weak.lock();
  if (!sub || sub != sub_) return;
  Lane& lane = sub->lanes[lane_index];
  lane.claiming = false;
  std::vector<Item> items;
  bool more = false;
  for (std::size_t i = 0; i < replies.size() && i < lane.streams.size(); ++i) {
    const redisReply* r = replies[i].get();
    if (r == nullptr) continue;  // the link dropped; on_ready resumes
    StreamState& st = sub->streams[lane.streams[i]];
    if (is_error(r)) {
      if (starts_with(r, "NOGROUP")) {
        create_groups(lane.link, sub, static_cast<int>(lane_index), nullptr);
      } else if (starts_with(r, "NOSCRIPT")) {
        reload_scripts(lane.link);
      } else if (is_permission_error(r) && liveness_on()) {
        refuse_liveness(error_status(r, "claiming a dead server's requests").message());
        more = true;  // again at once, by idle time alone
      } else {
        log_.warn(error_status(r, "claiming idle requests on " + st.name).message());
      }
      continue;
    }
    std::optional<details::ClaimPage> page = details::read_claim(r);
    if (!page) continue;
    st.cursor = std::move(page->cursor);
    std::size_t before = items.size();
    collect_entries(&st, page->entries, items);
    if (items.size() - before >= count || st.cursor != "-") more = true;
  }
  if (!items.empty()) {
    log_.info("claimed " + std::to_string(items.size()) + " idle request(s) from other consumers");
    hand_over(sub, items);
  }
  if (more) lane.next_claim = Clock::now();  // keep scanning while there is a backlog
  finish_stop_if_asked(sub);
  pump();
}

void RedisBroker::Impl::send_touch(const std::string& stream, const std::string& id,
                                   std::function<void(bool)> done) {
  command_link()->send(
      Command::make({"EVALSHA", scripts::shas().touch, "1", stream, group_, consumer_, id}),
      [this, done = std::move(done)](const Status& s, ReplyPtr r) {
        if (starts_with(r.get(), "NOSCRIPT")) reload_scripts(cmd_);
        // Errors (connection lost) and "acknowledged meanwhile" say nothing about ownership.
        std::optional<bool> owned = details::read_touch(r.get());
        if (s.is_ok() && owned && done) done(*owned);
      });
}

// Renews this server's liveness deadline while it serves (see scripts::kHeartbeat).
bool RedisBroker::Impl::liveness_on() const {
  return settings_.liveness_timeout.count() > 0 && !liveness_refused_;
}

// A user whose ACL predates liveness (no hash commands or TIME) still gets recovery by idle
// time, with one warning that says what to grant.
void RedisBroker::Impl::refuse_liveness(const std::string& why) {
  if (liveness_refused_) return;
  liveness_refused_ = true;
  log_.warn(why + "; liveness is off for this server, so a dead server's requests wait for the " +
            "visibility timeout (grant +hset +hgetall +hdel +time to turn it on)");
}

void RedisBroker::Impl::heartbeat(Clock::time_point now) {
  if (!sub_ || !liveness_on() || now < sub_->next_heartbeat) return;
  sub_->next_heartbeat = now + settings_.heartbeat_interval;
  std::vector<std::string_view> keys;  // one, or in a cluster one per stream
  for (const StreamState& s : sub_->streams) {
    if (std::find(keys.begin(), keys.end(), s.liveness_key) == keys.end()) {
      keys.push_back(s.liveness_key);
    }
  }
  for (std::string_view key : keys) send_heartbeat(key);
}

void RedisBroker::Impl::send_heartbeat(std::string_view key) {
  command_link()->send(Command::make({"EVALSHA", scripts::shas().heartbeat, "1", key,
                                      sub_->options.consumer, ms_arg(settings_.liveness_timeout)}),
                       [this](const Status& st, ReplyPtr r) {
                         if (starts_with(r.get(), "NOSCRIPT")) reload_scripts(cmd_);
                         if (!st.is_ok() || !is_error(r.get())) return;
                         Status e = error_status(r.get(), "renewing this server's liveness");
                         if (is_permission_error(r.get())) {
                           refuse_liveness(e.message());
                         } else {
                           log_.warn(e.message());
                         }
                       });
}

// Parked entries are ours in Redis; keep them from looking abandoned.
void RedisBroker::Impl::touch_parked(Clock::time_point now) {
  for (Parked& p : parked_) {
    if (now - p.since < visibility_ / 3) continue;
    p.since = now;
    std::string key = p.key;
    send_touch(p.stream, p.id, [this, key](bool owned) {
      if (owned) return;
      auto it = std::find_if(parked_.begin(), parked_.end(),
                             [&](const Parked& x) { return x.key == key; });
      if (it != parked_.end()) parked_.erase(it);  // another server has it now
    });
  }
}

}  // namespace prpc::redis
