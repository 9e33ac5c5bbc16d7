#include "memory_broker.hpp"

#include <algorithm>

#include "prpc/json.hpp"
#include "prpc/protocol.hpp"
#include "prpc/uuid.hpp"

namespace prpc::memory {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::request_stream;
using protocol::result_key;

std::string make_token(const std::string& stream, std::uint64_t seq) {
  return stream + "#" + std::to_string(seq);
}

bool split_token(std::string_view token, std::string& stream, std::uint64_t& seq) {
  std::size_t hash = token.rfind('#');
  if (hash == std::string_view::npos) return false;
  stream.assign(token.substr(0, hash));
  seq = 0;
  for (char c : token.substr(hash + 1)) {
    if (c < '0' || c > '9') return false;
    seq = seq * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

}  // namespace

// The shared state of every broker instance on one bus. One mutex guards it all; instances wait
// on the condition variable for work.
class Bus {
 public:
  struct Entry {
    std::string payload;
    std::string signature;
    std::string key_id;
  };
  struct Pending {
    std::string consumer;
    std::uint32_t deliveries = 0;
    Clock::time_point last_delivery;
  };
  struct Group {
    std::uint64_t last_delivered = 0;
    std::map<std::uint64_t, Pending> pending;
  };
  struct Stream {
    Flavour flavour = Flavour::kPython;
    std::string queue;
    std::uint64_t next_seq = 1;
    std::map<std::uint64_t, Entry> entries;
    std::map<std::string, Group, std::less<>> groups;
  };
  struct Stored {
    StoredResult result;
    Clock::time_point expires;
  };
  // The message_id (when the engine knew it) names the error result stored for the request,
  // which a requeue must forget; the signature goes back with the request.
  struct DeadEntry {
    DeadLetter letter;
    std::string message_id;
    std::string signature;
    std::string key_id;
  };
  struct Announced {
    std::string info_json;
    Clock::time_point last;
    std::chrono::milliseconds ttl{0};
  };

  // A bus lives as long as the process, like a broker server outlives its clients: a request
  // published by a client that then went away is still there for the next server.
  static std::shared_ptr<Bus> named(const std::string& name) {
    static std::mutex registry_mutex;
    static auto* registry = new std::map<std::string, std::shared_ptr<Bus>>();
    std::lock_guard lock(registry_mutex);
    std::shared_ptr<Bus>& slot = (*registry)[name];
    if (!slot) slot = std::make_shared<Bus>();
    return slot;
  }

  Stream& stream(Flavour f, std::string_view queue) {
    std::string name = request_stream(f, queue);
    auto it = streams.find(name);
    if (it == streams.end()) {
      it = streams.emplace(name, Stream{}).first;
      it->second.flavour = f;
      it->second.queue = std::string(queue);
    }
    return it->second;
  }

  // Drops an entry once no group still owes it a delivery or an acknowledgement.
  void release_if_done(Stream& s, std::uint64_t seq) {
    for (const auto& [name, g] : s.groups) {
      if (g.last_delivered < seq || g.pending.count(seq) != 0) return;
    }
    s.entries.erase(seq);
  }

  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::string, Stream, std::less<>> streams;
  std::map<std::string, Stored, std::less<>> results;
  // queue -> server id -> its latest announcement
  std::map<std::string, std::map<std::string, Announced, std::less<>>, std::less<>> servers;
  std::map<std::string, std::deque<DeadEntry>, std::less<>> dead;
  std::map<std::string, MemoryBroker*, std::less<>> reply_channels;
  std::uint64_t dead_seq = 0;
  std::uint32_t stores_since_sweep = 0;
};

Result<std::string> parse_bus_url(std::string_view url) {
  std::string_view name = url;
  if (name.rfind("memory://", 0) == 0) {
    name.remove_prefix(9);
  } else if (name.rfind("memory:", 0) == 0) {
    name.remove_prefix(7);
  } else if (name.find("://") != std::string_view::npos) {
    return Status(StatusCode::kInvalidArgument,
                  "'" + std::string(url) + "' is not a memory:// URL");
  }
  while (!name.empty() && name.back() == '/') name.remove_suffix(1);
  if (name.empty()) name = "default";
  return std::string(name);
}

std::vector<sdk::OptionSpec> MemoryBroker::options() {
  return {
      {"url", PRPC_OPT_STRING, "memory://default",
       "memory://<bus>: brokers with the same bus name in one process share queues"},
      {"result_ttl", PRPC_OPT_DURATION_MS, "6h", "how long stored results are kept"},
      {"max_queue_length", PRPC_OPT_INT, "1000000",
       "unconsumed requests per stream before publish is refused"},
      {"max_dead_letters", PRPC_OPT_INT, "10000", "dead letters kept per queue"},
      {"server_history", PRPC_OPT_DURATION_MS, "5m",
       "how long a server whose announcement expired is still listed (alive: false)"},
  };
}

MemoryBroker::MemoryBroker(Settings settings)
    : settings_(std::move(settings)), bus_(Bus::named(settings_.bus)) {
  thread_ = std::thread([this] { run(); });
}

namespace {
Settings settings_from(const sdk::Context& ctx) {
  Settings s;
  auto bus = parse_bus_url(ctx.options.get("url", "memory://default"));
  if (!bus.is_ok()) throw std::invalid_argument(bus.status().message());
  s.bus = *bus;
  s.result_ttl = ctx.options.get_duration("result_ttl", s.result_ttl);
  s.max_queue_length = static_cast<std::size_t>(
      ctx.options.get_int("max_queue_length", static_cast<std::int64_t>(s.max_queue_length)));
  s.max_dead_letters = static_cast<std::size_t>(
      ctx.options.get_int("max_dead_letters", static_cast<std::int64_t>(s.max_dead_letters)));
  s.server_history = ctx.options.get_duration("server_history", s.server_history);
  return s;
}
}  // namespace

MemoryBroker::MemoryBroker(const sdk::Context& ctx) : MemoryBroker(settings_from(ctx)) {}

MemoryBroker::~MemoryBroker() {
  {
    std::lock_guard lock(bus_->mutex);
    stopping_ = true;
    for (const auto& [reply_to, handler] : reply_handlers_) bus_->reply_channels.erase(reply_to);
  }
  bus_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
  // Outstanding deliveries stay pending in the bus, as after a crash: another consumer claims
  // them once their visibility timeout passes.
}

Status MemoryBroker::connect() { return Status::ok(); }

Status MemoryBroker::subscribe(const SubscribeOptions& options, DeliveryHandler handler) {
  if (options.queue.empty()) return Status(StatusCode::kInvalidArgument, "subscribe: no queue");
  if (!options.python && !options.raw) {
    return Status(StatusCode::kInvalidArgument, "subscribe: no flavour selected");
  }
  {
    std::lock_guard lock(bus_->mutex);
    if (subscribed_) return Status(StatusCode::kFailedPrecondition, "already subscribed");
    subscription_ = options;
    if (subscription_.max_outstanding == 0) subscription_.max_outstanding = 1;
    if (subscription_.batch_size == 0) subscription_.batch_size = 1;
    handler_ = std::move(handler);
    // Like XGROUP CREATE ... 0 MKSTREAM: requests sent before the first server are served.
    for (Flavour f : {Flavour::kPython, Flavour::kRaw}) {
      if ((f == Flavour::kPython && !options.python) || (f == Flavour::kRaw && !options.raw)) {
        continue;
      }
      bus_->stream(f, options.queue).groups.try_emplace(options.group);
    }
    subscribed_ = true;
    next_claim_scan_ = Clock::now();
  }
  bus_->cv.notify_all();
  return Status::ok();
}

void MemoryBroker::unsubscribe() {
  std::unique_lock lock(bus_->mutex);
  subscribed_ = false;
  if (thread_.get_id() == std::this_thread::get_id()) return;  // called from the handler
  bus_->cv.wait(lock, [this] { return !delivering_; });
}

void MemoryBroker::finish(const DeliveryView& delivery, const FinishRequest& what,
                          DoneCallback done) {
  std::string stream_name;
  std::uint64_t seq = 0;
  if (!split_token(delivery.token, stream_name, seq)) {
    done(Status(StatusCode::kInvalidArgument,
                "not a memory broker delivery: '" + std::string(delivery.token) + "'"));
    return;
  }
  {
    std::lock_guard lock(bus_->mutex);
    if (what.reply != nullptr) {
      const ReplyView& r = *what.reply;
      if (!r.push_only) {
        auto now = Clock::now();
        bus_->results[result_key(r.flavour, r.queue, r.message_id)] = Bus::Stored{
            StoredResult{std::string(r.payload), std::string(r.signature), std::string(r.key_id)},
            now + settings_.result_ttl};
        if (++bus_->stores_since_sweep >= 1024) {  // expire old results, amortised
          bus_->stores_since_sweep = 0;
          std::erase_if(bus_->results, [now](const auto& kv) { return kv.second.expires <= now; });
        }
      }
      if (!r.reply_to.empty()) {
        auto channel = bus_->reply_channels.find(r.reply_to);
        // A reply for a client that is gone is dropped; the stored result remains.
        if (channel != bus_->reply_channels.end()) {
          channel->second->enqueue_reply(std::string(r.reply_to), r);
        }
      }
    }
    if (!what.dead_letter_reason.empty()) {
      auto& letters = bus_->dead[std::string(delivery.queue)];
      letters.push_back(Bus::DeadEntry{
          DeadLetter{std::to_string(++bus_->dead_seq), delivery.flavour,
                     std::string(what.dead_letter_reason), std::string(delivery.payload)},
          what.reply != nullptr ? std::string(what.reply->message_id) : std::string(),
          std::string(delivery.signature), std::string(delivery.key_id)});
      while (letters.size() > settings_.max_dead_letters) letters.pop_front();
    }
    auto s = bus_->streams.find(stream_name);
    if (s != bus_->streams.end()) {
      auto g = s->second.groups.find(subscription_.group);
      if (g != s->second.groups.end()) g->second.pending.erase(seq);
      bus_->release_if_done(s->second, seq);
    }
    outstanding_.erase(std::string(delivery.token));
  }
  bus_->cv.notify_all();
  done(Status::ok());
}

void MemoryBroker::touch(const DeliveryView& delivery) {
  std::string stream_name;
  std::uint64_t seq = 0;
  if (!split_token(delivery.token, stream_name, seq)) return;
  std::lock_guard lock(bus_->mutex);
  auto s = bus_->streams.find(stream_name);
  if (s == bus_->streams.end()) return;
  auto g = s->second.groups.find(subscription_.group);
  if (g == s->second.groups.end()) return;
  auto p = g->second.pending.find(seq);
  if (p != g->second.pending.end() && p->second.consumer == subscription_.consumer) {
    p->second.last_delivery = Clock::now();
  }
}

void MemoryBroker::lookup_result(Flavour flavour, std::string_view queue,
                                 std::string_view message_id, LookupCallback done) {
  lookup_result_signed(flavour, queue, message_id,
                       [done = std::move(done)](Result<std::optional<StoredResult>> r) {
                         if (!r.is_ok()) {
                           done(r.status());
                         } else if (!r->has_value()) {
                           done(std::optional<std::string>());
                         } else {
                           done(std::optional<std::string>(std::move((*r)->payload)));
                         }
                       });
}

void MemoryBroker::lookup_result_signed(Flavour flavour, std::string_view queue,
                                        std::string_view message_id, StoredResultCallback done) {
  std::optional<StoredResult> found;
  {
    std::lock_guard lock(bus_->mutex);
    auto it = bus_->results.find(result_key(flavour, queue, message_id));
    if (it != bus_->results.end()) {
      if (it->second.expires > Clock::now()) {
        found = it->second.result;
      } else {
        bus_->results.erase(it);
      }
    }
  }
  done(std::move(found));
}

void MemoryBroker::publish(const PublishView& message, DoneCallback done) {
  if (message.queue.empty()) {
    done(Status(StatusCode::kInvalidArgument, "publish: no queue"));
    return;
  }
  {
    std::lock_guard lock(bus_->mutex);
    Bus::Stream& s = bus_->stream(message.flavour, message.queue);
    if (s.entries.size() >= settings_.max_queue_length) {
      done(Status(StatusCode::kResourceExhausted, request_stream(message.flavour, message.queue) +
                                                      " holds " + std::to_string(s.entries.size()) +
                                                      " requests (max_queue_length)"));
      return;
    }
    s.entries.emplace(s.next_seq++,
                      Bus::Entry{std::string(message.payload), std::string(message.signature),
                                 std::string(message.key_id)});
  }
  bus_->cv.notify_all();
  done(Status::ok());
}

Result<std::string> MemoryBroker::open_replies(std::string_view queue, ReplyHandler on_reply) {
  return open_replies_signed(queue, [on_reply = std::move(on_reply)](const PushedReplyView& r) {
    on_reply(r.message_id, r.payload);
  });
}

Result<std::string> MemoryBroker::open_replies_signed(std::string_view queue,
                                                      PushedReplyHandler on_reply) {
  std::lock_guard lock(bus_->mutex);
  auto it = reply_addresses_.find(queue);
  if (it == reply_addresses_.end()) {
    std::string reply_to = "prpc_feedback_" + std::string(queue) + "_" + new_uuid();
    it = reply_addresses_.emplace(std::string(queue), reply_to).first;
    bus_->reply_channels[reply_to] = this;
  }
  reply_handlers_[it->second] = std::make_shared<PushedReplyHandler>(std::move(on_reply));
  return it->second;
}

void MemoryBroker::enqueue_reply(const std::string& reply_to, const ReplyView& reply) {
  inbox_.push_back(PushedReply{reply_to, std::string(reply.message_id), std::string(reply.payload),
                               std::string(reply.signature), std::string(reply.key_id)});
}

Result<QueueStats> MemoryBroker::queue_stats(std::string_view queue) {
  std::lock_guard lock(bus_->mutex);
  QueueStats stats;
  std::set<std::string> consumers;
  for (Flavour f : {Flavour::kPython, Flavour::kRaw}) {
    auto it = bus_->streams.find(request_stream(f, queue));
    if (it == bus_->streams.end()) continue;
    const Bus::Stream& s = it->second;
    std::uint64_t delivered = s.groups.empty() ? 0 : UINT64_MAX;
    for (const auto& [name, g] : s.groups) {
      delivered = std::min(delivered, g.last_delivered);
      stats.pending += static_cast<std::int64_t>(g.pending.size());
      for (const auto& [seq, p] : g.pending) consumers.insert(p.consumer);
    }
    for (const auto& [seq, e] : s.entries) {
      if (seq > delivered) ++stats.length;
    }
  }
  auto d = bus_->dead.find(queue);
  if (d != bus_->dead.end()) stats.dead_letters = static_cast<std::int64_t>(d->second.size());
  stats.consumers = static_cast<std::int64_t>(consumers.size());
  return stats;
}

Result<std::vector<DeadLetter>> MemoryBroker::dead_letters(std::string_view queue,
                                                           std::size_t max_count) {
  std::lock_guard lock(bus_->mutex);
  std::vector<DeadLetter> out;
  auto d = bus_->dead.find(queue);
  if (d == bus_->dead.end()) return out;
  for (const Bus::DeadEntry& entry : d->second) {
    if (out.size() >= max_count) break;
    out.push_back(entry.letter);
  }
  return out;
}

Result<std::size_t> MemoryBroker::requeue_dead_letters(std::string_view queue,
                                                       std::span<const std::string> ids) {
  std::size_t requeued = 0;
  Status status = Status::ok();
  {
    std::lock_guard lock(bus_->mutex);
    auto d = bus_->dead.find(queue);
    if (d == bus_->dead.end()) return requeued;
    std::set<std::string_view> wanted(ids.begin(), ids.end());
    auto& letters = d->second;
    for (auto it = letters.begin(); it != letters.end();) {
      if (!wanted.empty() && wanted.count(it->letter.id) == 0) {
        ++it;
        continue;
      }
      Bus::Stream& s = bus_->stream(it->letter.flavour, queue);
      if (s.entries.size() >= settings_.max_queue_length) {
        status =
            Status(StatusCode::kResourceExhausted,
                   "requeued " + std::to_string(requeued) + ", then " +
                       request_stream(it->letter.flavour, queue) + " was full (max_queue_length)");
        break;
      }
      s.entries.emplace(s.next_seq++, Bus::Entry{it->letter.payload, it->signature, it->key_id});
      if (!it->message_id.empty()) {
        bus_->results.erase(result_key(it->letter.flavour, queue, it->message_id));
      }
      it = letters.erase(it);
      ++requeued;
    }
  }
  if (requeued > 0) bus_->cv.notify_all();
  if (!status.is_ok()) return status;
  return requeued;
}

void MemoryBroker::announce_server(std::string_view queue, std::string_view server_id,
                                   std::string_view info_json, std::chrono::milliseconds ttl,
                                   DoneCallback done) {
  auto info = json::checked_announcement(queue, server_id, info_json, ttl.count());
  if (!info.is_ok()) {
    done(info.status());
    return;
  }
  {
    std::lock_guard lock(bus_->mutex);
    bus_->servers[std::string(queue)][std::string(server_id)] =
        Bus::Announced{std::move(*info), Clock::now(), ttl};
  }
  done(Status::ok());
}

Result<std::string> MemoryBroker::list_servers(std::string_view queue) {
  std::vector<ServerRecord> records;
  {
    std::lock_guard lock(bus_->mutex);
    auto q = bus_->servers.find(queue);
    if (q == bus_->servers.end()) return servers_json(records);
    auto now = Clock::now();
    for (auto it = q->second.begin(); it != q->second.end();) {
      auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - it->second.last);
      if (age >= it->second.ttl + settings_.server_history) {
        it = q->second.erase(it);  // silent for long enough to be forgotten
        continue;
      }
      records.push_back(ServerRecord{it->first, age < it->second.ttl, age, it->second.info_json});
      ++it;
    }
  }
  return servers_json(records);
}

std::size_t MemoryBroker::collect(std::vector<Delivery>& out) {
  const SubscribeOptions& sub = subscription_;
  std::size_t room =
      sub.max_outstanding > outstanding_.size() ? sub.max_outstanding - outstanding_.size() : 0;
  room = std::min<std::size_t>(room, sub.batch_size);
  if (room == 0) return 0;
  auto now = Clock::now();
  bool scan_claims = now >= next_claim_scan_;
  if (scan_claims) {
    auto step = std::clamp(sub.visibility_timeout / 4, std::chrono::milliseconds(5),
                           std::chrono::milliseconds(200));
    next_claim_scan_ = now + step;
  }
  for (Flavour f : {Flavour::kPython, Flavour::kRaw}) {
    if ((f == Flavour::kPython && !sub.python) || (f == Flavour::kRaw && !sub.raw)) continue;
    std::string name = request_stream(f, sub.queue);
    Bus::Stream& s = bus_->stream(f, sub.queue);
    Bus::Group& g = s.groups[sub.group];
    auto hand_over = [&](std::uint64_t seq, const Bus::Entry& entry, std::uint32_t count) {
      Delivery d;
      d.flavour = f;
      d.queue = sub.queue;
      d.token = make_token(name, seq);
      d.payload = entry.payload;
      d.delivery_count = count;
      d.signature = entry.signature;
      d.key_id = entry.key_id;
      outstanding_.insert(d.token);
      out.push_back(std::move(d));
    };
    // Idle pending entries first (XAUTOCLAIM): a crashed consumer's work is not starved.
    if (scan_claims) {
      for (auto& [seq, p] : g.pending) {
        if (out.size() >= room) return room;
        if (now - p.last_delivery < sub.visibility_timeout) continue;
        std::string token = make_token(name, seq);
        if (outstanding_.count(token) != 0) continue;
        auto e = s.entries.find(seq);
        if (e == s.entries.end()) continue;
        p.consumer = sub.consumer;
        p.deliveries += 1;
        p.last_delivery = now;
        hand_over(seq, e->second, p.deliveries);
      }
    }
    // Then new entries (XREADGROUP >).
    for (auto e = s.entries.upper_bound(g.last_delivered);
         e != s.entries.end() && out.size() < room; ++e) {
      g.last_delivered = e->first;
      g.pending[e->first] = Bus::Pending{sub.consumer, 1, now};
      hand_over(e->first, e->second, 1);
    }
  }
  return room;
}

void MemoryBroker::run() {
  std::unique_lock lock(bus_->mutex);
  while (!stopping_) {
    if (!inbox_.empty()) {
      std::deque<PushedReply> batch;
      batch.swap(inbox_);
      std::vector<std::pair<std::shared_ptr<PushedReplyHandler>, PushedReply>> calls;
      for (PushedReply& r : batch) {
        auto h = reply_handlers_.find(r.reply_to);
        if (h != reply_handlers_.end()) calls.emplace_back(h->second, std::move(r));
      }
      lock.unlock();
      for (auto& [handler, r] : calls) {
        (*handler)(PushedReplyView{r.message_id, r.payload, r.signature, r.key_id});
      }
      lock.lock();
      continue;
    }
    if (subscribed_) {
      std::vector<Delivery> batch;
      std::size_t room = collect(batch);
      if (!batch.empty()) {
        delivering_ = true;
        lock.unlock();
        std::vector<DeliveryView> views;
        views.reserve(batch.size());
        for (const Delivery& d : batch) views.push_back(d.view());
        handler_(views);
        lock.lock();
        delivering_ = false;
        bus_->cv.notify_all();
        continue;
      }
      if (room == 0) {
        bus_->cv.wait(lock);  // full: finish() makes room and notifies
      } else {
        bus_->cv.wait_until(lock, next_claim_scan_);
      }
    } else {
      bus_->cv.wait(lock);
    }
  }
}

}  // namespace prpc::memory
