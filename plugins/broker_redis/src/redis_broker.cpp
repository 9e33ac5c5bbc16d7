// The Redis broker's public face and its frame: settings, the io thread and its lifetime, the
// connections, housekeeping and close. The jobs live beside it (see broker_impl.hpp).
#include "prpc/broker_redis/redis_broker.hpp"

#include <random>
#include <stdexcept>

#include "broker_impl.hpp"
#include "prpc/own_thread.hpp"

namespace prpc::redis {

using namespace std::chrono_literals;

namespace {

constexpr std::string_view kDefaultUrl = "redis://localhost:6379/0";

milliseconds positive(const sdk::Options& o, std::string_view key, milliseconds fallback,
                      bool zero_ok = false) {
  milliseconds v = o.get_duration(key, fallback);
  if (v.count() < 0 || (!zero_ok && v.count() == 0)) {
    throw std::invalid_argument("option '" + std::string(key) + "' must be a positive duration");
  }
  return v;
}

std::int64_t non_negative(const sdk::Options& o, std::string_view key, std::int64_t fallback) {
  std::int64_t v = o.get_int(key, fallback);
  if (v < 0) throw std::invalid_argument("option '" + std::string(key) + "' must be >= 0");
  return v;
}

std::string random_hex(std::size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string out;
  out.reserve(bytes * 2);
  for (std::size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(rd() & 0xffu);
    out += kHex[b >> 4];
    out += kHex[b & 0xfu];
  }
  return out;
}

}  // namespace

Settings read_settings(const sdk::Options& o) {
  Settings s;
  auto url = parse_redis_url(o.get("url", kDefaultUrl));
  if (!url.is_ok()) throw std::invalid_argument(url.status().message());
  s.url = std::move(*url);
  s.client_name = o.get("client_name", "prpc");
  if (s.client_name.empty() || s.client_name.find_first_of(" \t\r\n") != std::string::npos) {
    throw std::invalid_argument("option 'client_name' must be one word");
  }
  s.result_ttl = positive(o, "result_ttl", s.result_ttl);
  s.reply_ttl = positive(o, "reply_ttl", s.reply_ttl);
  s.connect_timeout = positive(o, "connect_timeout", s.connect_timeout);
  s.command_timeout = positive(o, "command_timeout", s.command_timeout);
  s.reconnect_min = positive(o, "reconnect_min", s.reconnect_min);
  s.reconnect_max = std::max(s.reconnect_min, positive(o, "reconnect_max", s.reconnect_max));
  s.hold = positive(o, "reconnect_hold", s.hold, true);
  s.block = positive(o, "block", s.block);
  s.claim_interval = positive(o, "claim_interval", s.claim_interval, true);
  s.trim_interval = positive(o, "trim_interval", s.trim_interval, true);
  s.server_history = positive(o, "server_history", s.server_history, true);
  s.liveness_timeout = positive(o, "liveness_timeout", s.liveness_timeout, true);
  s.heartbeat_interval = positive(o, "heartbeat_interval", s.heartbeat_interval);
  if (s.liveness_timeout.count() > 0 && s.liveness_timeout < 2 * s.heartbeat_interval) {
    throw std::invalid_argument(
        "option 'liveness_timeout' must be at least twice 'heartbeat_interval' (or 0: off)");
  }
  s.stream_max_len = non_negative(o, "stream_max_len", s.stream_max_len);
  s.dead_letter_max_len = non_negative(o, "dead_letter_max_len", s.dead_letter_max_len);
  s.reply_max_len = non_negative(o, "reply_max_len", s.reply_max_len);
  s.dead_letter_max_payload = non_negative(o, "dead_letter_max_payload", s.dead_letter_max_payload);
  s.group = o.get("group", s.group);
  if (s.group.empty()) throw std::invalid_argument("option 'group' must not be empty");
  return s;
}

// ---- the frame ------------------------------------------------------------------------------

RedisBroker::Impl::Impl(const sdk::Context& ctx)
    : log_(ctx.log),
      settings_(read_settings(ctx.options)),
      client_id_(random_hex(12)),
      work_(asio::make_work_guard(io_)),
      connect_timer_(io_),
      tick_timer_(io_),
      retry_timer_(io_),
      listen_retry_timer_(io_) {
  cmd_ = make_link("commands");
  cmd_->on_ready([this] {
    cmd_ready_once_ = true;
    connect_timer_.cancel();
    auto waiters = std::move(connect_waiters_);
    connect_waiters_.clear();
    for (auto& w : waiters) w(true);
  });
  cmd_->on_down([this](const Status& why) {
    // Wrong credentials or database will not heal: report them to connect() at once.
    if (!cmd_ready_once_ && (why.code() == StatusCode::kFailedPrecondition ||
                             why.code() == StatusCode::kInvalidArgument)) {
      give_up_connecting(why.with_context("connecting to " + settings_.url.redacted()));
    }
  });
  thread_ = std::thread([this] {
    // A handler that throws (a callback of the host, an allocation) must not take the host
    // process down with std::terminate: log it and keep serving.
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception& e) {
        log_.error(std::string("unexpected exception on the broker's thread: ") + e.what());
      } catch (...) {
        log_.error("unexpected exception on the broker's thread");
      }
    }
  });
}

// Closes everything and frees the instance, from any thread.
void RedisBroker::Impl::release() {
  // From a callback on the broker's own thread (a handler dropped the last reference) it closes
  // at once, and the instance goes once that handler has returned.
  bool own = std::this_thread::get_id() == thread_.get_id();
  if (own) {
    close_all();
  } else {
    asio::post(io_, [this] { close_all(); });
  }
  work_.reset();
  tear_down(own, [this] {
    thread_.join();
    delete this;
  });
}

Status RedisBroker::Impl::connect() {
  auto r = run_sync<bool>(
      [this](Complete<bool> complete) {
        if (closed_) {
          complete(Status(StatusCode::kCancelled, "the broker is closed"));
          return;
        }
        command_link();
        if (cmd_ready_once_) {
          complete(true);
          return;
        }
        connect_waiters_.push_back(std::move(complete));
        if (connect_waiters_.size() == 1) {
          connect_timer_.expires_after(settings_.connect_timeout);
          connect_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || cmd_ready_once_) return;
            Status last = cmd_->last_error();
            give_up_connecting(Status(StatusCode::kUnavailable,
                                      "cannot reach Redis at " + settings_.url.redacted() +
                                          " within " + ms_arg(settings_.connect_timeout) + " ms" +
                                          (last.is_ok() ? std::string() : ": " + last.message())));
          });
        }
      },
      settings_.connect_timeout + 2s);
  return r.is_ok() ? Status::ok() : r.status();
}

LinkSettings RedisBroker::Impl::link_settings() const {
  LinkSettings ls;
  ls.url = settings_.url;
  ls.client_name = settings_.client_name;
  ls.connect_timeout = settings_.connect_timeout;
  ls.command_timeout = settings_.command_timeout;
  ls.reconnect_min = settings_.reconnect_min;
  ls.reconnect_max = settings_.reconnect_max;
  ls.hold = settings_.hold;
  ls.scripts = scripts::all();
  return ls;
}

std::shared_ptr<Channel> RedisBroker::Impl::make_link(std::string role) {
  LinkSettings ls = link_settings();
  ls.quiet_until_ready = role == "commands";  // connect() reports its failures
  if (settings_.url.cluster()) {
    return std::make_shared<ClusterLink>(io_, std::move(ls), &log_, std::move(role));
  }
  return std::make_shared<Link>(io_, std::move(ls), &log_, std::move(role));
}

// The pipelined command connection; started on first use (and again after a failed
// connect()). io thread.
const std::shared_ptr<Channel>& RedisBroker::Impl::command_link() {
  if (cmd_->idle() && !closed_) cmd_->start();
  return cmd_;
}

// Sends from the calling thread when the command connection is up (no hop to the io thread);
// otherwise lets the io thread start it and queue the command until it is.
void RedisBroker::Impl::send_now(Command command, ReplyFn done) {
  if (cmd_->ready() || in_io_thread()) {
    if (in_io_thread()) command_link();
    cmd_->send(std::move(command), std::move(done));
    return;
  }
  asio::post(io_, [this, command = std::move(command), done = std::move(done)]() mutable {
    command_link()->send(std::move(command), std::move(done));
  });
}

void RedisBroker::Impl::give_up_connecting(const Status& why) {
  connect_timer_.cancel();
  auto waiters = std::move(connect_waiters_);
  connect_waiters_.clear();
  // Stop retrying: the next connect() starts over.
  if (!cmd_ready_once_) cmd_->stop(why);
  for (auto& w : waiters) w(why);
}

// Wakes the blocking read in flight on `blocked`, through the command connection to the same
// server (of a cluster: the node the read waits on).
void RedisBroker::Impl::unblock(const Channel& blocked) {
  std::int64_t client_id = blocked.client_id();
  if (client_id < 0) return;
  command_link()->send_to_node(blocked.node(),
                               Command::make({"CLIENT", "UNBLOCK", std::to_string(client_id)}),
                               [](const Status&, ReplyPtr) {});
}

// Someone ran SCRIPT FLUSH: load the scripts again on this connection. Commands already on
// their way fail once and are retried by redelivery.
void RedisBroker::Impl::reload_scripts(const std::shared_ptr<Channel>& link) {
  if (settings_.url.cluster()) {
    // SCRIPT LOAD reaches one node: reconnecting loads them on every node the link uses.
    log_.warn("a Redis Cluster node forgot the broker's scripts (SCRIPT FLUSH?); reconnecting");
    link->reset(Status(StatusCode::kUnavailable, "reloading the scripts"));
    return;
  }
  log_.warn("Redis forgot the broker's scripts (SCRIPT FLUSH?); loading them again");
  for (const std::string& body : scripts::all()) {
    link->send(Command::make({"SCRIPT", "LOAD", body}), [](const Status&, ReplyPtr) {});
  }
}

void RedisBroker::Impl::schedule_tick() {
  if (tick_scheduled_ || closed_) return;
  tick_scheduled_ = true;
  milliseconds period = 1000ms;
  if (sub_) period = std::clamp(visibility_ / 3, 10ms, 1000ms);
  if (sub_ && settings_.liveness_timeout.count() > 0) {
    period = std::min(period, settings_.heartbeat_interval);
  }
  tick_timer_.expires_after(period);
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    tick_scheduled_ = false;
    if (ec || closed_) return;
    tick();
    if (sub_ || !replies_.empty()) schedule_tick();
  });
}

void RedisBroker::Impl::tick() {
  auto now = Clock::now();
  heartbeat(now);
  touch_parked(now);
  trim_streams(now);
  trim_replies();
}

void RedisBroker::Impl::close_all() {
  if (closed_) return;
  closed_ = true;
  connect_timer_.cancel();
  tick_timer_.cancel();
  retry_timer_.cancel();
  listen_retry_timer_.cancel();
  if (sub_) {
    auto stopped = sub_->stopped;
    sub_.reset();
    if (stopped) stopped->set_value();
  }
  parked_.clear();
  replies_.clear();
  for (auto& w : connect_waiters_) w(Status(StatusCode::kCancelled, "the broker is closed"));
  connect_waiters_.clear();
  if (read_) read_->close();
  if (listen_) listen_->close();
  cmd_->close();
}

// ---- the public face ----------------------------------------------------------------------------

std::vector<sdk::OptionSpec> RedisBroker::options() {
  return {
      {"url", PRPC_OPT_STRING, "redis://localhost:6379/0",
       "redis://[user:password@]host:port/db or unix:///path/redis.sock?db=N",
       PRPC_OPT_FLAG_SECRET},
      {"result_ttl", PRPC_OPT_DURATION_MS, "6h", "how long a stored result lives"},
      {"reply_ttl", PRPC_OPT_DURATION_MS, "5m",
       "a client's reply stream expires this long after the last reply pushed to it"},
      {"connect_timeout", PRPC_OPT_DURATION_MS, "5s", "limit for connecting and logging in"},
      {"command_timeout", PRPC_OPT_DURATION_MS, "10s",
       "a connection whose oldest command gets no reply this long is dropped and re-made"},
      {"reconnect_min", PRPC_OPT_DURATION_MS, "100ms", "first reconnect delay"},
      {"reconnect_max", PRPC_OPT_DURATION_MS, "5s", "longest reconnect delay"},
      {"reconnect_hold", PRPC_OPT_DURATION_MS, "5s",
       "how long a command waits for a lost connection to come back before it fails"},
      {"block", PRPC_OPT_DURATION_MS, "2s", "longest blocking read (XREADGROUP/XREAD BLOCK)"},
      {"claim_interval", PRPC_OPT_DURATION_MS, "0",
       "how often dead servers' and idle pending requests are claimed; 0: a quarter of the "
       "visibility timeout, at most heartbeat_interval while liveness is on"},
      {"heartbeat_interval", PRPC_OPT_DURATION_MS, "1s",
       "how often a serving broker renews its liveness deadline in prpc_alive:{q}"},
      {"liveness_timeout", PRPC_OPT_DURATION_MS, "3s",
       "a server silent this long is dead: live servers take its pending requests at once, "
       "whatever their idle time; 0: off (only the visibility timeout recovers them)"},
      {"server_history", PRPC_OPT_DURATION_MS, "5m",
       "how long a server whose announcement expired is still listed in prpc_servers:{q} "
       "(alive: false)"},
      {"trim_interval", PRPC_OPT_DURATION_MS, "10s",
       "how often served requests are trimmed from the streams; 0: never"},
      {"stream_max_len", PRPC_OPT_INT, "0",
       "cap the request streams at about this many entries on publish (drops the oldest, even "
       "unserved ones); 0: no cap, served entries are trimmed anyway"},
      {"dead_letter_max_len", PRPC_OPT_INT, "10000", "approximate cap of prpc_dead_{q}"},
      {"reply_max_len", PRPC_OPT_INT, "10000", "approximate cap of a client's reply stream"},
      {"dead_letter_max_payload", PRPC_OPT_INT, "16777216",
       "bytes of a dead request's payload kept in prpc_dead_{q}; 0: all"},
      {"group", PRPC_OPT_STRING, "prpc_group_consumers",
       "the consumer group queue_stats() reports on when this instance does not serve"},
      {"client_name", PRPC_OPT_STRING, "prpc", "CLIENT SETNAME prefix of the connections"},
  };
}

RedisBroker::RedisBroker(const sdk::Context& context) : impl_(new Impl(context)) {}

// The instance may be destroyed from one of its own callbacks (the engine dropping its last
// reference inside a done callback); release() then hands the deletion to the broker's thread.
RedisBroker::~RedisBroker() { impl_->release(); }

Status RedisBroker::connect() { return impl_->connect(); }
Status RedisBroker::subscribe(const SubscribeOptions& options, DeliveryHandler handler) {
  return impl_->subscribe(options, std::move(handler));
}
void RedisBroker::unsubscribe() { impl_->unsubscribe(); }
void RedisBroker::finish(const DeliveryView& delivery, const FinishRequest& what,
                         DoneCallback done) {
  impl_->finish(delivery, what, std::move(done));
}
void RedisBroker::touch(const DeliveryView& delivery) { impl_->touch(delivery); }
void RedisBroker::lookup_result(Flavour flavour, std::string_view queue,
                                std::string_view message_id, LookupCallback done) {
  impl_->lookup_result_signed(flavour, queue, message_id,
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
void RedisBroker::lookup_result_signed(Flavour flavour, std::string_view queue,
                                       std::string_view message_id, StoredResultCallback done) {
  impl_->lookup_result_signed(flavour, queue, message_id, std::move(done));
}
void RedisBroker::publish(const PublishView& message, DoneCallback done) {
  impl_->publish(message, std::move(done));
}
Result<std::string> RedisBroker::open_replies(std::string_view queue, ReplyHandler on_reply) {
  return impl_->open_replies_signed(queue,
                                    [on_reply = std::move(on_reply)](const PushedReplyView& r) {
                                      on_reply(r.message_id, r.payload);
                                    });
}
Result<std::string> RedisBroker::open_replies_signed(std::string_view queue,
                                                     PushedReplyHandler on_reply) {
  return impl_->open_replies_signed(queue, std::move(on_reply));
}
Result<QueueStats> RedisBroker::queue_stats(std::string_view queue) {
  return impl_->queue_stats(queue);
}
Result<std::vector<DeadLetter>> RedisBroker::dead_letters(std::string_view queue,
                                                          std::size_t max_count) {
  return impl_->dead_letters(queue, max_count);
}

Result<std::size_t> RedisBroker::requeue_dead_letters(std::string_view queue,
                                                      std::span<const std::string> ids) {
  return impl_->requeue_dead_letters(queue, ids);
}
void RedisBroker::announce_server(std::string_view queue, std::string_view server_id,
                                  std::string_view info_json, std::chrono::milliseconds ttl,
                                  DoneCallback done) {
  impl_->announce_server(queue, server_id, info_json, ttl, std::move(done));
}
Result<std::string> RedisBroker::list_servers(std::string_view queue) {
  return impl_->list_servers(queue);
}

}  // namespace prpc::redis
