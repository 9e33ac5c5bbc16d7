#include "prpc/broker_redis/redis_broker.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "connection.hpp"
#include "prpc/broker_redis/url.hpp"
#include "prpc/protocol.hpp"
#include "scripts.hpp"

namespace prpc::redis {

using namespace details;  // NOLINT(google-build-using-namespace): this file is the broker
using namespace std::chrono_literals;
namespace names = protocol;  // the keys and streams of docs/protocol.md, by their old short name

namespace {

constexpr std::string_view kDefaultUrl = "redis://localhost:6379/0";
constexpr std::string_view kDefaultGroup = "prpc_group_consumers";
constexpr std::size_t kReplyReadCount = 512;
constexpr std::size_t kMaxNoteFields = 200;

struct Settings {
  RedisUrl url;
  std::string client_name = "prpc";
  milliseconds result_ttl = 6h;
  milliseconds reply_ttl = 5min;
  milliseconds connect_timeout = 5s;
  milliseconds command_timeout = 10s;
  milliseconds reconnect_min = 100ms;
  milliseconds reconnect_max = 5s;
  milliseconds hold = 5s;
  milliseconds block = 2s;
  milliseconds claim_interval = 0ms;  // 0: a quarter of the visibility timeout
  milliseconds trim_interval = 10s;
  std::int64_t stream_max_len = 0;
  std::int64_t dead_letter_max_len = 10000;
  std::int64_t reply_max_len = 10000;
  std::int64_t dead_letter_max_payload = std::int64_t{16} << 20;
  std::string group = std::string(kDefaultGroup);
};

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
  s.stream_max_len = non_negative(o, "stream_max_len", s.stream_max_len);
  s.dead_letter_max_len = non_negative(o, "dead_letter_max_len", s.dead_letter_max_len);
  s.reply_max_len = non_negative(o, "reply_max_len", s.reply_max_len);
  s.dead_letter_max_payload = non_negative(o, "dead_letter_max_payload", s.dead_letter_max_payload);
  s.group = o.get("group", kDefaultGroup);
  if (s.group.empty()) throw std::invalid_argument("option 'group' must not be empty");
  return s;
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

std::string ms_arg(milliseconds d) { return std::to_string(d.count()); }

// The key of a delivery in the books: one subscription per instance, so flavour + id is unique.
std::string delivery_key(Flavour f, std::string_view id) {
  std::string k(1, f == Flavour::kRaw ? 'r' : 'p');
  k += id;
  return k;
}

// Reads field `name` of a stream entry's flat [field, value, ...] array.
const redisReply* entry_field(const redisReply* fields, std::string_view name) {
  if (!is_array(fields)) return nullptr;
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    if (text(fields->element[i]) == name) return fields->element[i + 1];
  }
  return nullptr;
}

std::string field_names(const redisReply* fields) {
  std::string out;
  if (!is_array(fields)) return out;
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    if (!out.empty()) out += ", ";
    out += text(fields->element[i]);
    if (out.size() > kMaxNoteFields) {
      out.resize(kMaxNoteFields);
      out += "...";
      break;
    }
  }
  return out.empty() ? std::string("none") : out;
}

std::int64_t integer_of(const redisReply* r, std::int64_t fallback = 0) {
  return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : fallback;
}

}  // namespace

// ---- the implementation -----------------------------------------------------------------------

class RedisBroker::Impl {
 public:
  explicit Impl(const sdk::Context& ctx)
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
      // Destroyed from its own thread (see release()): the last handler has returned now.
      if (orphaned_.load()) delete this;
    });
  }

  // Closes everything and frees the instance, from any thread.
  void release() {
    if (std::this_thread::get_id() == thread_.get_id()) {
      // Called from a callback on the broker's own thread (a handler dropped the last reference).
      // The thread cannot join itself: close now and let it delete the instance on its way out.
      close_all();
      work_.reset();
      orphaned_.store(true);
      thread_.detach();
      return;
    }
    asio::post(io_, [this] { close_all(); });
    work_.reset();
    thread_.join();
    delete this;
  }

  // ---- connection ----------------------------------------------------------------------------

  Status connect() {
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
              give_up_connecting(
                  Status(StatusCode::kUnavailable,
                         "cannot reach Redis at " + settings_.url.redacted() + " within " +
                             ms_arg(settings_.connect_timeout) + " ms" +
                             (last.is_ok() ? std::string() : ": " + last.message())));
            });
          }
        },
        settings_.connect_timeout + 2s);
    return r.is_ok() ? Status::ok() : r.status();
  }

  // ---- server side ---------------------------------------------------------------------------

  Status subscribe(const SubscribeOptions& options, DeliveryHandler handler) {
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
    if (options.python) {
      sub->streams.push_back(
          {names::request_stream(Flavour::kPython, options.queue), Flavour::kPython, "-"});
    }
    if (options.raw) {
      sub->streams.push_back(
          {names::request_stream(Flavour::kRaw, options.queue), Flavour::kRaw, "-"});
    }
    sub->claim_interval = settings_.claim_interval.count() > 0
                              ? settings_.claim_interval
                              : std::clamp(sub->options.visibility_timeout / 4, 10ms, 5000ms);

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
          create_groups(command_link(), sub, [this, sub, complete](const Status& s) {
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

  void unsubscribe() {
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

  void finish(const DeliveryView& d, const FinishRequest& what, DoneCallback done) {
    auto op = std::make_shared<FinishOp>();
    op->key = delivery_key(d.flavour, d.token);
    op->done = std::move(done);
    std::string group;
    {
      std::lock_guard lock(names_mutex_);
      group = group_;
    }
    std::string note = take_note(op->key);
    if (closed_ || group.empty()) {
      Status why = closed_ ? Status(StatusCode::kCancelled, "the broker is closed")
                           : Status(StatusCode::kFailedPrecondition,
                                    "finish() on a broker instance that never subscribed");
      asio::post(io_, [this, op, why] { complete(op, why); });
      return;
    }
    std::string stream = names::request_stream(d.flavour, d.queue);
    std::string result_key, legacy_key, reply_stream, dead_stream;
    std::string_view payload;
    bool store = false, push = false, dead = !what.dead_letter_reason.empty();
    if (what.reply != nullptr && !what.reply->message_id.empty()) {
      const ReplyView& r = *what.reply;
      op->message_id = std::string(r.message_id);
      payload = r.payload;
      if (!r.push_only) {
        store = true;
        result_key = names::result_key(r.flavour, r.queue, r.message_id);
        // A Python request without reply_to comes from an original PRPC client, which polls
        // its own key.
        if (r.flavour == Flavour::kPython && r.reply_to.empty()) {
          legacy_key = names::legacy_result_key(r.queue, r.message_id);
        }
      }
      if (!r.reply_to.empty()) {
        if (names::is_reply_stream(r.reply_to, d.queue)) {
          push = true;
          reply_stream = std::string(r.reply_to);
        } else {
          log_.debug("not pushing to reply_to '" + std::string(r.reply_to.substr(0, 80)) +
                     "': not a reply stream of queue '" + std::string(d.queue) + "'");
        }
      }
    }
    std::string result_ttl = ms_arg(settings_.result_ttl);
    if (!dead) {
      finish_in_transaction(op, stream, group, d.token, store ? result_key : std::string(),
                            legacy_key, push ? reply_stream : std::string(), payload,
                            result_ttl);
      return;
    }
    if (!legacy_key.empty()) {
      // Before the script on the same connection, so it is stored by the time the ack is.
      send_now(Command::make({"SET", legacy_key, payload, "PX", result_ttl}),
               [](const Status&, const ReplyPtr&) {});
    }
    dead_stream = names::dead_letter_stream(d.queue);
    std::string reply_ttl = ms_arg(settings_.reply_ttl);
    std::string reply_cap = std::to_string(settings_.reply_max_len);
    std::string dead_cap = std::to_string(settings_.dead_letter_max_len);
    std::vector<std::string_view> args{"EVALSHA",
                                       scripts::shas().finish,
                                       "4",
                                       stream,
                                       result_key,
                                       reply_stream,
                                       dead_stream,
                                       group,
                                       d.token,
                                       store ? "1" : "0",
                                       push ? "1" : "0",
                                       dead ? "1" : "0",
                                       payload,
                                       result_ttl,
                                       op->message_id,
                                       reply_ttl,
                                       reply_cap,
                                       dead_cap};
    // The dead letter: the reason, flavour and the original payload (capped), and where it came
    // from.
    std::string reason, count, size;
    if (dead) {
      reason = std::string(what.dead_letter_reason);
      if (!note.empty()) reason += " (" + note + ")";
      std::string_view original = d.payload;
      bool truncated = false;
      if (settings_.dead_letter_max_payload > 0 &&
          original.size() > static_cast<std::size_t>(settings_.dead_letter_max_payload)) {
        original = original.substr(0, static_cast<std::size_t>(settings_.dead_letter_max_payload));
        truncated = true;
      }
      count = std::to_string(d.delivery_count);
      size = std::to_string(d.payload.size());
      for (std::string_view a :
           {std::string_view("reason"), std::string_view(reason), std::string_view("flavour"),
            flavour_name(d.flavour), std::string_view("stream"), std::string_view(stream),
            std::string_view("id"), d.token, std::string_view("message_id"),
            std::string_view(op->message_id), std::string_view("delivery_count"),
            std::string_view(count), std::string_view("payload_bytes"), std::string_view(size),
            std::string_view("truncated"), std::string_view(truncated ? "1" : "0"),
            std::string_view("payload"), original}) {
        args.push_back(a);
      }
    }
    send_now(Command::make(args),
             [this, op](const Status& s, ReplyPtr r) { on_finished(op, s, r.get()); });
  }

  void touch(const DeliveryView& d) {
    std::string stream = names::request_stream(d.flavour, d.queue);
    std::string id(d.token);
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

  void lookup_result(Flavour flavour, std::string_view queue, std::string_view message_id,
                     LookupCallback done) {
    std::string legacy;
    if (flavour == Flavour::kPython) legacy = names::legacy_result_key(queue, message_id);
    get_stored(names::result_key(flavour, queue, message_id), std::move(legacy), std::move(done));
  }

  // GETs `key`; when it holds nothing, `fallback` (if any): where an original PRPC server stored
  // the result of a request it served.
  void get_stored(const std::string& key, std::string fallback, LookupCallback done) {
    send_now(Command::make({"GET", key}), [this, fallback = std::move(fallback),
                                           done = std::move(done)](const Status& s,
                                                                   ReplyPtr r) mutable {
      if (!s.is_ok()) {
        done(s.with_context("reading the stored result"));
      } else if (is_error(r.get())) {
        done(error_status(r.get(), "reading the stored result"));
      } else if (!is_nil(r.get())) {
        done(std::optional<std::string>(std::string(text(r.get()))));
      } else if (!fallback.empty()) {
        get_stored(fallback, std::string(), std::move(done));
      } else {
        done(std::optional<std::string>());
      }
    });
  }

  // ---- client side ---------------------------------------------------------------------------

  void publish(const PublishView& m, DoneCallback done) {
    std::string stream = names::request_stream(m.flavour, m.queue);
    Command xadd;
    if (settings_.stream_max_len > 0) {
      std::string max_len = std::to_string(settings_.stream_max_len);
      xadd = Command::make(
          {"XADD", stream, "MAXLEN", "~", max_len, "*", names::kMessageField, m.payload});
    } else {
      xadd = Command::make({"XADD", stream, "*", names::kMessageField, m.payload});
    }
    send_now(std::move(xadd), [done = std::move(done)](const Status& s, ReplyPtr r) {
      if (!s.is_ok()) {
        // Nobody can tell whether a request lost in a broken connection was queued.
        done(Status(s.code() == StatusCode::kCancelled ? s.code() : StatusCode::kUnavailable,
                    "the request may not have reached Redis: " + s.message()));
      } else if (is_error(r.get())) {
        done(error_status(r.get(), "Redis refused the request"));
      } else {
        done(Status::ok());
      }
    });
  }

  Result<std::string> open_replies(std::string_view queue, ReplyHandler on_reply) {
    if (queue.empty()) return Status(StatusCode::kInvalidArgument, "the queue is empty");
    if (!on_reply) return Status(StatusCode::kInvalidArgument, "no reply handler");
    PRPC_RETURN_IF_ERROR(connect());
    std::string q(queue);
    return run_sync<std::string>(
        [this, q, on_reply = std::move(on_reply)](Complete<std::string> complete) mutable {
          if (closed_) {
            complete(Status(StatusCode::kCancelled, "the broker is closed"));
            return;
          }
          for (ReplyStream& r : replies_) {
            if (r.queue == q) {
              r.handler = std::move(on_reply);
              complete(r.key);
              return;
            }
          }
          ReplyStream r;
          r.queue = q;
          r.key = names::reply_stream_prefix(q) + client_id_;
          r.handler = std::move(on_reply);
          replies_.push_back(std::move(r));
          std::string key = replies_.back().key;
          if (!listen_) {
            listen_ = make_link("replies");
            listen_->on_ready([this] {
              listening_ = false;
              listen_next();
            });
            listen_->start();
            schedule_tick();
          } else if (listening_ && listen_->client_id() >= 0) {
            // Wake the blocked XREAD so that it comes back listening to the new stream too.
            unblock(listen_->client_id());
          } else {
            listen_next();
          }
          complete(key);
        },
        settings_.command_timeout);
  }

  // ---- operations ----------------------------------------------------------------------------

  Result<QueueStats> queue_stats(std::string_view queue) {
    PRPC_RETURN_IF_ERROR(connect());
    std::string q(queue);
    return run_sync<QueueStats>(
        [this, q](Complete<QueueStats> complete) {
          auto link = command_link();
          struct State {
            QueueStats stats;
            int left = 0;
            Status error;
          };
          auto st = std::make_shared<State>();
          std::string group = sub_ ? sub_->options.group : settings_.group;
          auto finish_one = [st, complete]() {
            if (--st->left == 0) {
              if (st->error.is_ok()) {
                complete(st->stats);
              } else {
                complete(st->error);
              }
            }
          };
          for (Flavour f : {Flavour::kPython, Flavour::kRaw}) {
            std::string stream = names::request_stream(f, q);
            auto xlen = std::make_shared<std::int64_t>(0);
            st->left += 2;
            link->send(Command::make({"XLEN", stream}),
                       [st, xlen, finish_one](const Status& s, ReplyPtr r) {
                         Status e = expect_ok(s, r.get(), "XLEN");
                         if (!e.is_ok() && st->error.is_ok()) st->error = e;
                         *xlen = integer_of(r.get());
                         finish_one();
                       });
            link->send(Command::make({"XINFO", "GROUPS", stream}),
                       [st, xlen, group, finish_one](const Status& s, ReplyPtr r) {
                         if (!s.is_ok() && st->error.is_ok()) st->error = s;
                         std::int64_t waiting = *xlen;
                         if (s.is_ok() && is_array(r.get())) {
                           for (std::size_t i = 0; i < r->elements; ++i) {
                             const redisReply* g = r->element[i];
                             if (text(entry_field(g, "name")) != group) continue;
                             st->stats.pending += integer_of(entry_field(g, "pending"));
                             st->stats.consumers = std::max(
                                 st->stats.consumers, integer_of(entry_field(g, "consumers")));
                             const redisReply* lag = entry_field(g, "lag");
                             if (lag != nullptr && lag->type == REDIS_REPLY_INTEGER) {
                               waiting = lag->integer;
                             }
                           }
                         }
                         st->stats.length += waiting;  // no such stream: an error, and 0
                         finish_one();
                       });
          }
          st->left += 1;
          link->send(Command::make({"XLEN", names::dead_letter_stream(q)}),
                     [st, finish_one](const Status& s, ReplyPtr r) {
                       Status e = expect_ok(s, r.get(), "XLEN");
                       if (!e.is_ok() && st->error.is_ok()) st->error = e;
                       st->stats.dead_letters = integer_of(r.get());
                       finish_one();
                     });
        },
        settings_.command_timeout + 1s);
  }

  Result<std::vector<DeadLetter>> dead_letters(std::string_view queue, std::size_t max_count) {
    PRPC_RETURN_IF_ERROR(connect());
    std::string stream = names::dead_letter_stream(queue);
    std::string count = std::to_string(std::max<std::size_t>(1, max_count));
    return run_sync<std::vector<DeadLetter>>(
        [this, stream, count](Complete<std::vector<DeadLetter>> complete) {
          command_link()->send(Command::make({"XRANGE", stream, "-", "+", "COUNT", count}),
                               [complete](const Status& s, ReplyPtr r) {
                                 Status e = expect_ok(s, r.get(), "reading dead letters");
                                 if (!e.is_ok()) {
                                   complete(e);
                                   return;
                                 }
                                 std::vector<DeadLetter> out;
                                 if (is_array(r.get())) {
                                   for (std::size_t i = 0; i < r->elements; ++i) {
                                     const redisReply* entry = r->element[i];
                                     if (!is_array(entry) || entry->elements < 2) continue;
                                     const redisReply* fields = entry->element[1];
                                     DeadLetter d;
                                     d.id = std::string(text(entry->element[0]));
                                     d.flavour = text(entry_field(fields, "flavour")) == "raw"
                                                     ? Flavour::kRaw
                                                     : Flavour::kPython;
                                     d.reason = std::string(text(entry_field(fields, "reason")));
                                     d.payload = std::string(text(entry_field(fields, "payload")));
                                     out.push_back(std::move(d));
                                   }
                                 }
                                 complete(std::move(out));
                               });
        },
        settings_.command_timeout + 1s);
  }

  Result<std::size_t> requeue_dead_letters(std::string_view queue,
                                           std::span<const std::string> ids) {
    PRPC_RETURN_IF_ERROR(connect());
    struct Page {
      std::int64_t requeued = 0;
      std::string next;
      std::int64_t skipped = 0;
    };
    std::vector<std::string> base{"EVALSHA",
                                  scripts::shas().requeue,
                                  "3",
                                  names::dead_letter_stream(queue),
                                  names::request_stream(Flavour::kPython, queue),
                                  names::request_stream(Flavour::kRaw, queue),
                                  names::result_key(Flavour::kPython, queue, ""),
                                  names::result_key(Flavour::kRaw, queue, ""),
                                  std::to_string(settings_.stream_max_len)};
    auto run_page = [this](std::vector<std::string> args) {
      return run_sync<Page>(
          [this, args = std::move(args)](Complete<Page> complete) {
            std::vector<std::string_view> views(args.begin(), args.end());
            command_link()->send(Command::make(views), [complete](const Status& s, ReplyPtr r) {
              Status e = expect_ok(s, r.get(), "requeueing dead letters");
              if (!e.is_ok()) {
                complete(e);
                return;
              }
              if (!is_array(r.get()) || r->elements < 3) {
                complete(Status(StatusCode::kInternal, "requeue: unexpected reply from Redis"));
                return;
              }
              complete(Page{integer_of(r->element[0]), std::string(text(r->element[1])),
                            integer_of(r->element[2])});
            });
          },
          settings_.command_timeout + 1s);
    };
    std::size_t requeued = 0;
    std::int64_t skipped = 0;
    if (!ids.empty()) {
      std::vector<std::string> args = base;
      args.emplace_back("ids");
      args.insert(args.end(), ids.begin(), ids.end());
      auto page = run_page(std::move(args));
      if (!page.is_ok()) return page.status();
      requeued = static_cast<std::size_t>(page->requeued);
      skipped = page->skipped;
    } else {
      // Pages keep each script short: Redis serves nobody else while one runs.
      std::string start = "-";
      while (!start.empty()) {
        std::vector<std::string> args = base;
        args.insert(args.end(), {"all", start, "100"});
        auto page = run_page(std::move(args));
        if (!page.is_ok()) {
          if (requeued == 0) return page.status();
          return Status(page.status().code(), "requeued " + std::to_string(requeued) +
                                                  ", then: " + page.status().message());
        }
        requeued += static_cast<std::size_t>(page->requeued);
        skipped += page->skipped;
        start = page->next;
      }
    }
    if (skipped > 0) {
      log_.warn(std::to_string(skipped) + " dead letter(s) of '" + std::string(queue) +
                "' left in place: their payload was cut at dead_letter_max_payload");
    }
    return requeued;
  }

 private:
  template <typename T>
  using Complete = std::function<void(Result<T>)>;

  struct StreamState {
    std::string name;
    Flavour flavour;
    std::string cursor;  // where the next claim scan of the pending list starts
  };

  struct Subscription {
    SubscribeOptions options;
    DeliveryHandler handler;
    std::vector<StreamState> streams;
    milliseconds claim_interval{0};
    bool active = true;
    bool reading = false;  // an XREADGROUP or a claim is in flight on the read link
    Clock::time_point next_claim{};
    Clock::time_point next_trim{};
    std::shared_ptr<std::promise<void>> stopped;  // unsubscribe() waiting for the read
  };

  // A delivery read but not handed over yet (back-pressure); it stays ours in Redis meanwhile.
  struct Parked {
    std::string key;
    Flavour flavour;
    std::string stream;
    std::string id;
    std::string payload;
    std::string note;
    std::uint32_t count = 1;
    Clock::time_point since;
  };

  struct Item {
    Flavour flavour;
    const std::string* stream;
    std::string_view id;
    std::string_view payload;
    std::uint32_t count = 1;
    std::string note;
  };

  struct FinishOp {
    std::string key;
    std::string message_id;
    DoneCallback done;
    Status refused;  // the first command of a transaction Redis would not queue
  };

  struct ReplyStream {
    std::string queue;
    std::string key;
    std::string last_id = "0-0";
    std::string trimmed_to = "0-0";
    ReplyHandler handler;
  };

  bool in_io_thread() { return io_.get_executor().running_in_this_thread(); }

  // Runs `op` on the broker's thread and waits for it to complete its Complete<T>.
  template <typename T, typename Op>
  Result<T> run_sync(Op op, milliseconds timeout) {
    if (in_io_thread()) {
      return Status(StatusCode::kFailedPrecondition,
                    "this broker call blocks and cannot be made from the broker's own thread");
    }
    auto promise = std::make_shared<std::promise<Result<T>>>();
    auto once = std::make_shared<std::atomic<bool>>(false);
    auto future = promise->get_future();
    Complete<T> complete = [promise, once](Result<T> r) {
      if (!once->exchange(true)) promise->set_value(std::move(r));
    };
    asio::post(io_, [op = std::move(op), complete]() mutable { op(complete); });
    if (future.wait_for(timeout) != std::future_status::ready) {
      return Status(StatusCode::kTimeout, "Redis did not answer within " + ms_arg(timeout) + " ms");
    }
    return future.get();
  }

  LinkSettings link_settings() const {
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

  std::shared_ptr<Link> make_link(std::string role) {
    LinkSettings ls = link_settings();
    ls.quiet_until_ready = role == "commands";  // connect() reports its failures
    return std::make_shared<Link>(io_, std::move(ls), &log_, std::move(role));
  }

  // The pipelined command connection; started on first use (and again after a failed
  // connect()). io thread.
  const std::shared_ptr<Link>& command_link() {
    if (cmd_->idle() && !closed_) cmd_->start();
    return cmd_;
  }

  // Sends from the calling thread when the command connection is up (no hop to the io thread);
  // otherwise lets the io thread start it and queue the command until it is.
  void send_now(Command command, ReplyFn done) {
    if (cmd_->ready() || in_io_thread()) {
      if (in_io_thread()) command_link();
      cmd_->send(std::move(command), std::move(done));
      return;
    }
    asio::post(io_, [this, command = std::move(command), done = std::move(done)]() mutable {
      command_link()->send(std::move(command), std::move(done));
    });
  }

  void give_up_connecting(const Status& why) {
    connect_timer_.cancel();
    auto waiters = std::move(connect_waiters_);
    connect_waiters_.clear();
    // Stop retrying: the next connect() starts over.
    if (!cmd_ready_once_) cmd_->stop(why);
    for (auto& w : waiters) w(why);
  }

  void unblock(std::int64_t client_id) {
    command_link()->send(Command::make({"CLIENT", "UNBLOCK", std::to_string(client_id)}),
                         [](const Status&, ReplyPtr) {});
  }

  // XGROUP CREATE ... 0 MKSTREAM: from id 0, so requests sent before any server are served.
  void create_groups(const std::shared_ptr<Link>& link, const std::shared_ptr<Subscription>& sub,
                     std::function<void(const Status&)> done) {
    auto left = std::make_shared<std::size_t>(sub->streams.size());
    auto first_error = std::make_shared<Status>();
    for (const StreamState& s : sub->streams) {
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

  void start_subscription(const std::shared_ptr<Subscription>& sub) {
    sub_ = sub;
    {
      std::lock_guard lock(names_mutex_);
      group_ = sub->options.group;
      consumer_ = sub->options.consumer;
    }
    max_outstanding_ = sub->options.max_outstanding;
    visibility_ = sub->options.visibility_timeout;
    auto now = Clock::now();
    sub->next_claim = now;  // recover what crashed consumers left behind right away
    sub->next_trim = now + settings_.trim_interval;
    if (!read_) {
      read_ = make_link("reads");
      read_->on_ready([this] {
        if (!sub_) return;
        sub_->reading = false;
        // Redis may have come back without its data: make sure the groups exist again.
        create_groups(read_, sub_, [this](const Status& s) {
          if (!s.is_ok()) log_.warn("re-creating the consumer groups failed: " + s.message());
        });
        pump();
      });
      read_->start();
    } else {
      pump();
    }
    schedule_tick();
  }

  void stop_subscription(const std::shared_ptr<std::promise<void>>& done) {
    if (!sub_) {
      if (done) done->set_value();
      return;
    }
    sub_->active = false;
    if (sub_->reading && done) {
      sub_->stopped = done;  // finished when the read in flight returns
      if (read_ && read_->client_id() >= 0) unblock(read_->client_id());
      return;
    }
    abandon_subscription();
    if (done) done->set_value();
  }

  // Stops reading at once. Entries of a read still in flight stay pending under this consumer
  // and go to another one after the visibility timeout.
  void abandon_subscription() {
    if (!sub_) return;
    auto sub = std::move(sub_);
    sub_.reset();
    parked_.clear();
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

  // Starts the next read or claim when there is room.
  void pump() {
    if (closed_ || !sub_ || !sub_->active) return;
    hand_over_parked();
    if (sub_->reading || !read_ || !read_->ready()) return;
    std::size_t used = handed_.size() + parked_.size();
    if (used >= max_outstanding_) return;
    std::size_t room = max_outstanding_ - used;
    auto now = Clock::now();
    if (now >= sub_->next_claim) {
      start_claim(room);
    } else {
      start_read(room, std::chrono::duration_cast<milliseconds>(sub_->next_claim - now));
    }
  }

  // COUNT applies per stream: split the room between them, at least one each. With one slot
  // left and two streams, one extra entry may come back; it is parked until a slot frees.
  std::string per_stream_count(std::size_t room) const {
    std::size_t n = std::max<std::size_t>(1, sub_->streams.size());
    std::size_t count = std::clamp<std::size_t>(room / n, 1, sub_->options.batch_size);
    return std::to_string(count);
  }

  void start_read(std::size_t room, milliseconds until_claim) {
    // Wake up in time for the next claim round: an idle server must still recover entries.
    milliseconds block = std::max(1ms, std::min(settings_.block, until_claim + 1ms));
    std::string count = per_stream_count(room);
    std::string block_ms = ms_arg(block);
    std::vector<std::string_view> args{"XREADGROUP",
                                       "GROUP",
                                       sub_->options.group,
                                       sub_->options.consumer,
                                       "COUNT",
                                       count,
                                       "BLOCK",
                                       block_ms,
                                       "STREAMS"};
    for (const StreamState& s : sub_->streams) args.push_back(s.name);
    for (std::size_t i = 0; i < sub_->streams.size(); ++i) args.push_back(">");
    sub_->reading = true;
    std::weak_ptr<Subscription> weak = sub_;
    read_->send(
        Command::make(args),
        [this, weak](const Status& s, ReplyPtr r) { on_read(weak, s, std::move(r)); }, block);
  }

  void on_read(const std::weak_ptr<Subscription>& weak, const Status& s, ReplyPtr r) {
    auto sub = weak.lock();
    if (!sub || sub != sub_) return;
    sub->reading = false;
    if (!s.is_ok()) {  // the link reconnects; on_ready resumes
      finish_stop_if_asked(sub);
      return;
    }
    if (is_error(r.get())) {
      if (starts_with(r.get(), "NOGROUP")) {
        log_.warn(
            "the consumer group is gone (was Redis restarted without its data?); "
            "creating it again");
        create_groups(read_, sub, nullptr);
        pump();
      } else {
        log_.error(error_status(r.get(), "reading requests").message());
        retry_later();
      }
      finish_stop_if_asked(sub);
      return;
    }
    std::vector<Item> items;
    if (is_array(r.get())) {
      for (std::size_t i = 0; i < r->elements; ++i) {
        const redisReply* stream = r->element[i];
        if (!is_array(stream) || stream->elements < 2) continue;
        const StreamState* st = find_stream(*sub, text(stream->element[0]));
        if (st == nullptr) continue;
        collect_entries(st, stream->element[1], nullptr, items);
      }
    }
    if (!items.empty()) hand_over(sub, items);
    finish_stop_if_asked(sub);
    pump();
  }

  void finish_stop_if_asked(const std::shared_ptr<Subscription>& sub) {
    if (sub->active || sub != sub_) return;
    auto stopped = sub->stopped;
    sub->stopped.reset();
    abandon_subscription();
    if (stopped) stopped->set_value();
  }

  void retry_later() {
    retry_timer_.expires_after(settings_.reconnect_max);
    retry_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) pump();
    });
  }

  static const StreamState* find_stream(const Subscription& sub, std::string_view name) {
    for (const StreamState& s : sub.streams) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  // Turns [[id, [field, value...]], ...] into items; `counts` (from the claim script) gives the
  // delivery count of each, else 1 (a first delivery).
  void collect_entries(const StreamState* st, const redisReply* entries, const redisReply* counts,
                       std::vector<Item>& items) {
    if (!is_array(entries)) return;
    for (std::size_t j = 0; j < entries->elements; ++j) {
      const redisReply* e = entries->element[j];
      if (!is_array(e) || e->elements < 1) continue;
      std::string_view id = text(e->element[0]);
      const redisReply* fields = e->elements > 1 ? e->element[1] : nullptr;
      if (is_nil(fields)) {
        // Deleted (XDEL) while pending: nothing left to serve.
        ack_orphan(st->name, id);
        continue;
      }
      Item item;
      item.flavour = st->flavour;
      item.stream = &st->name;
      item.id = id;
      if (is_array(counts) && j < counts->elements) {
        item.count =
            static_cast<std::uint32_t>(std::max<long long>(1, counts->element[j]->integer));
      }
      const redisReply* message = entry_field(fields, names::kMessageField);
      if (message != nullptr) {
        item.payload = text(message);
      } else {
        // Handed over with an empty payload, which the engine rejects (dead letter + reply).
        item.note = "the stream entry has no 'message' field; its fields: " + field_names(fields);
      }
      items.push_back(std::move(item));
    }
  }

  void ack_orphan(const std::string& stream, std::string_view id) {
    log_.debug("acknowledging deleted entry " + std::string(id) + " of " + stream);
    command_link()->send(Command::make({"XACK", stream, group_, id}),
                         [](const Status&, ReplyPtr) {});
  }

  bool is_parked(const std::string& key) const {
    return std::any_of(parked_.begin(), parked_.end(),
                       [&](const Parked& p) { return p.key == key; });
  }

  void hand_over(const std::shared_ptr<Subscription>& sub, std::vector<Item>& items) {
    std::vector<DeliveryView> batch;
    batch.reserve(items.size());
    auto now = Clock::now();
    for (Item& it : items) {
      std::string key = delivery_key(it.flavour, it.id);
      // A claim may return an entry this server is still working on: never hand it over twice.
      if (handed_.count(key) != 0 || is_parked(key)) continue;
      if (!parked_.empty() || handed_.size() >= max_outstanding_) {
        parked_.push_back(Parked{key, it.flavour, *it.stream, std::string(it.id),
                                 std::string(it.payload), std::move(it.note), it.count, now});
        continue;
      }
      handed_.insert(key);
      if (!it.note.empty()) put_note(key, std::move(it.note));
      batch.push_back(DeliveryView{it.flavour, sub->options.queue, it.id, it.payload, it.count});
    }
    deliver(sub, batch);
  }

  void hand_over_parked() {
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
      batch.push_back(DeliveryView{p.flavour, sub->options.queue, p.id, p.payload, p.count});
    }
    deliver(sub, batch);
  }

  void deliver(const std::shared_ptr<Subscription>& sub, const std::vector<DeliveryView>& batch) {
    if (batch.empty()) return;
    try {
      sub->handler(std::span<const DeliveryView>(batch.data(), batch.size()));
    } catch (const std::exception& e) {
      log_.error(std::string("the delivery handler threw: ") + e.what());
    } catch (...) {
      log_.error("the delivery handler threw");
    }
  }

  void start_claim(std::size_t room) {
    sub_->reading = true;
    sub_->next_claim = Clock::now() + sub_->claim_interval;
    std::string count = per_stream_count(room);
    std::string min_idle = ms_arg(visibility_);
    auto left = std::make_shared<std::size_t>(sub_->streams.size());
    auto replies = std::make_shared<std::vector<ReplyPtr>>(sub_->streams.size());
    std::weak_ptr<Subscription> weak = sub_;
    for (std::size_t i = 0; i < sub_->streams.size(); ++i) {
      const StreamState& s = sub_->streams[i];
      std::vector<std::string_view> args{"EVALSHA",
                                         scripts::shas().claim,
                                         "1",
                                         s.name,
                                         sub_->options.group,
                                         sub_->options.consumer,
                                         min_idle,
                                         s.cursor,
                                         count};
      // The ids this consumer holds (handed over or parked) are not to be claimed back.
      char prefix = s.flavour == Flavour::kRaw ? 'r' : 'p';
      for (const std::string& key : handed_) {
        if (key[0] == prefix) args.push_back(std::string_view(key).substr(1));
      }
      for (const Parked& pk : parked_) {
        if (pk.flavour == s.flavour) args.push_back(pk.id);
      }
      read_->send(Command::make(args),
                  [this, weak, i, left, replies, count](const Status& st, ReplyPtr r) {
                    if (st.is_ok()) (*replies)[i] = std::move(r);
                    if (--*left == 0) on_claimed(weak, *replies, std::stoul(count));
                  });
    }
  }

  void on_claimed(const std::weak_ptr<Subscription>& weak, std::vector<ReplyPtr>& replies,
                  std::size_t count) {
    auto sub = weak.lock();
    if (!sub || sub != sub_) return;
    sub->reading = false;
    std::vector<Item> items;
    bool more = false;
    for (std::size_t i = 0; i < replies.size() && i < sub->streams.size(); ++i) {
      const redisReply* r = replies[i].get();
      if (r == nullptr) continue;  // the link dropped; on_ready resumes
      StreamState& st = sub->streams[i];
      if (is_error(r)) {
        if (starts_with(r, "NOGROUP")) {
          create_groups(read_, sub, nullptr);
        } else if (starts_with(r, "NOSCRIPT")) {
          reload_scripts(read_);
        } else {
          log_.warn(error_status(r, "claiming idle requests on " + st.name).message());
        }
        continue;
      }
      if (!is_array(r) || r->elements < 3) continue;
      st.cursor = std::string(text(r->element[0]));
      if (st.cursor.empty()) st.cursor = "-";
      const redisReply* entries = r->element[1];
      std::size_t before = items.size();
      collect_entries(&st, entries, r->element[2], items);
      if (items.size() - before >= count || st.cursor != "-") more = true;
    }
    if (!items.empty()) {
      log_.info("claimed " + std::to_string(items.size()) +
                " idle request(s) from other consumers");
      hand_over(sub, items);
    }
    if (more) sub->next_claim = Clock::now();  // keep scanning while there is a backlog
    finish_stop_if_asked(sub);
    pump();
  }

  void send_touch(const std::string& stream, const std::string& id,
                  std::function<void(bool)> done) {
    command_link()->send(
        Command::make({"EVALSHA", scripts::shas().touch, "1", stream, group_, consumer_, id}),
        [this, done = std::move(done)](const Status& s, ReplyPtr r) {
          if (starts_with(r.get(), "NOSCRIPT")) reload_scripts(cmd_);
          // Errors (connection lost) and "acknowledged meanwhile" say nothing about ownership.
          if (s.is_ok() && r && r->type == REDIS_REPLY_INTEGER && r->integer != 0 && done) {
            done(r->integer == 1);
          }
        });
  }

  // ---- finish ----------------------------------------------------------------------------------

  // The common finish, without a dead letter, as one MULTI/EXEC (cheaper for Redis than a
  // script): SET, push, XACK. A command Redis refuses to queue (NOPERM, OOM, READONLY) aborts the
  // whole transaction, so the ack never runs without the store; SET has no other way to fail.
  // Only the push may fail inside EXEC (a foreign key of another type under the reply address).
  void finish_in_transaction(const std::shared_ptr<FinishOp>& op, const std::string& stream,
                             const std::string& group, std::string_view id,
                             const std::string& result_key, const std::string& legacy_key,
                             const std::string& reply_stream, std::string_view payload,
                             const std::string& result_ttl) {
    std::vector<Request> batch;
    // Each command's own answer is QUEUED, or why it was refused; keep the first refusal, which
    // says more than EXEC's EXECABORT.
    auto ignore = [op](const Status& s, ReplyPtr r) {
      if (s.is_ok() && is_error(r.get()) && op->refused.is_ok()) {
        op->refused = error_status(r.get(), "finishing the request");
      }
    };
    batch.push_back(Request{Command::make({"MULTI"}), ignore, {}});
    int store_at = -1, push_at = -1, index = 0;
    if (!result_key.empty()) {
      batch.push_back(
          Request{Command::make({"SET", result_key, payload, "PX", result_ttl}), ignore, {}});
      store_at = index++;
    }
    if (!legacy_key.empty()) {
      batch.push_back(
          Request{Command::make({"SET", legacy_key, payload, "PX", result_ttl}), ignore, {}});
      ++index;
    }
    if (!reply_stream.empty()) {
      std::string cap = std::to_string(settings_.reply_max_len);
      Command xadd = settings_.reply_max_len > 0
                         ? Command::make({"XADD", reply_stream, "MAXLEN", "~", cap, "*",
                                          names::kMessageIdField, op->message_id,
                                          names::kMessageField, payload})
                         : Command::make({"XADD", reply_stream, "*", names::kMessageIdField,
                                          op->message_id, names::kMessageField, payload});
      batch.push_back(Request{std::move(xadd), ignore, {}});
      push_at = index++;
      batch.push_back(Request{
          Command::make({"PEXPIRE", reply_stream, ms_arg(settings_.reply_ttl)}), ignore, {}});
      ++index;
    }
    batch.push_back(Request{Command::make({"XACK", stream, group, id}), ignore, {}});
    batch.push_back(Request{Command::make({"EXEC"}),
                            [this, op, store_at, push_at](const Status& s, ReplyPtr r) {
                              on_transaction(op, s, r.get(), store_at, push_at);
                            },
                            {}});
    if (cmd_->ready() || in_io_thread()) {
      if (in_io_thread()) command_link();
      cmd_->send_batch(std::move(batch));
      return;
    }
    auto shared = std::make_shared<std::vector<Request>>(std::move(batch));
    asio::post(io_, [this, shared] { command_link()->send_batch(std::move(*shared)); });
  }

  void on_transaction(const std::shared_ptr<FinishOp>& op, const Status& s, const redisReply* r,
                      int store_at, int push_at) {
    Status e = expect_ok(s, r, "finishing the request");
    if (!e.is_ok() && !op->refused.is_ok()) e = op->refused;
    if (e.is_ok() && !is_array(r)) {
      e = Status(StatusCode::kInternal, "finishing the request: the transaction did not run");
    }
    if (e.is_ok()) {
      auto at = [&](int i) -> const redisReply* {
        return i >= 0 && static_cast<std::size_t>(i) < r->elements ? r->element[i] : nullptr;
      };
      if (is_error(at(store_at))) e = error_status(at(store_at), "storing the result");
      if (is_error(at(push_at))) {
        log_.warn(error_status(at(push_at), "pushing the reply of " + op->message_id).message());
      }
    }
    complete(op, e);
  }

  // io thread: the finish script answered (or the connection failed under it).
  void on_finished(const std::shared_ptr<FinishOp>& op, const Status& s, const redisReply* r) {
    Status e = expect_ok(s, r, "finishing the request");
    if (starts_with(r, "NOSCRIPT")) reload_scripts(cmd_);
    if (e.is_ok() && is_array(r) && r->elements >= 2 &&
        r->element[1]->type != REDIS_REPLY_INTEGER) {
      log_.warn("pushing the reply of " + op->message_id +
                " failed: " + std::string(text(r->element[1])));
    }
    // Not acknowledged on failure: the request comes back for another try.
    complete(op, e);
  }

  // Someone ran SCRIPT FLUSH: load the scripts again on this connection. Commands already on
  // their way fail once and are retried by redelivery.
  void reload_scripts(const std::shared_ptr<Link>& link) {
    log_.warn("Redis forgot the broker's scripts (SCRIPT FLUSH?); loading them again");
    for (const std::string& body : scripts::all()) {
      link->send(Command::make({"SCRIPT", "LOAD", body}), [](const Status&, ReplyPtr) {});
    }
  }

  void complete(const std::shared_ptr<FinishOp>& op, const Status& s) {
    handed_.erase(op->key);
    pump();
    auto done = std::move(op->done);
    if (done) done(s);
  }

  void put_note(const std::string& key, std::string note) {
    std::lock_guard lock(notes_mutex_);
    notes_[key] = std::move(note);
  }

  std::string take_note(const std::string& key) {
    std::lock_guard lock(notes_mutex_);
    if (notes_.empty()) return {};
    auto it = notes_.find(key);
    if (it == notes_.end()) return {};
    std::string note = std::move(it->second);
    notes_.erase(it);
    return note;
  }

  // ---- replies ---------------------------------------------------------------------------------

  void listen_next() {
    if (closed_ || listening_ || !listen_ || !listen_->ready() || replies_.empty()) return;
    std::string count = std::to_string(kReplyReadCount);
    std::string block = ms_arg(settings_.block);
    std::vector<std::string_view> args{"XREAD", "COUNT", count, "BLOCK", block, "STREAMS"};
    for (const ReplyStream& r : replies_) args.push_back(r.key);
    for (const ReplyStream& r : replies_) args.push_back(r.last_id);
    listening_ = true;
    listen_->send(
        Command::make(args), [this](const Status& s, ReplyPtr r) { on_replies(s, std::move(r)); },
        settings_.block);
  }

  void on_replies(const Status& s, ReplyPtr r) {
    listening_ = false;
    if (closed_ || !s.is_ok()) return;  // on_ready of the reconnected link resumes
    if (is_error(r.get())) {
      log_.error(error_status(r.get(), "reading replies").message());
      listen_retry_timer_.expires_after(settings_.reconnect_max);
      listen_retry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) listen_next();
      });
      return;
    }
    if (is_array(r.get())) {
      for (std::size_t i = 0; i < r->elements && !closed_; ++i) {
        const redisReply* stream = r->element[i];
        if (!is_array(stream) || stream->elements < 2 || !is_array(stream->element[1])) continue;
        std::string_view key = text(stream->element[0]);
        auto target = std::find_if(replies_.begin(), replies_.end(),
                                   [&](const ReplyStream& rs) { return rs.key == key; });
        if (target == replies_.end()) continue;
        const redisReply* entries = stream->element[1];
        for (std::size_t j = 0; j < entries->elements; ++j) {
          const redisReply* e = entries->element[j];
          if (!is_array(e) || e->elements < 2) continue;
          target->last_id = std::string(text(e->element[0]));
          std::string_view id = text(entry_field(e->element[1], names::kMessageIdField));
          std::string_view payload = text(entry_field(e->element[1], names::kMessageField));
          ReplyHandler handler = target->handler;  // a handler may replace itself
          try {
            handler(id, payload);
          } catch (...) {
            log_.error("the reply handler threw");
          }
          if (closed_) return;
        }
      }
    }
    listen_next();
  }

  // ---- housekeeping ----------------------------------------------------------------------------

  void schedule_tick() {
    if (tick_scheduled_ || closed_) return;
    tick_scheduled_ = true;
    milliseconds period = 1000ms;
    if (sub_) period = std::clamp(visibility_ / 3, 10ms, 1000ms);
    tick_timer_.expires_after(period);
    tick_timer_.async_wait([this](const boost::system::error_code& ec) {
      tick_scheduled_ = false;
      if (ec || closed_) return;
      tick();
      if (sub_ || !replies_.empty()) schedule_tick();
    });
  }

  void tick() {
    auto now = Clock::now();
    // Parked entries are ours in Redis; keep them from looking abandoned.
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
    if (sub_ && settings_.trim_interval.count() > 0 && now >= sub_->next_trim) {
      sub_->next_trim = now + settings_.trim_interval;
      for (const StreamState& s : sub_->streams) {
        command_link()->send(Command::make({"EVALSHA", scripts::shas().trim, "1", s.name}),
                             [this, name = s.name](const Status& st, ReplyPtr r) {
                               if (starts_with(r.get(), "NOSCRIPT")) reload_scripts(cmd_);
                               if (st.is_ok() && is_error(r.get())) {
                                 log_.warn(error_status(r.get(), "trimming " + name).message());
                               }
                             });
      }
    }
    // Replies already read are dropped from this client's stream; the rest expire with it.
    for (ReplyStream& r : replies_) {
      if (r.last_id == r.trimmed_to) continue;
      r.trimmed_to = r.last_id;
      command_link()->send(Command::make({"XTRIM", r.key, "MINID", r.last_id}),
                           [](const Status&, ReplyPtr) {});
    }
  }

  void close_all() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
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

  sdk::Logger log_;
  const Settings settings_;
  const std::string client_id_;

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::atomic<bool> orphaned_{false};

  // Everything below belongs to the broker's thread.
  std::atomic<bool> closed_{false};  // read by finish() and publish() on any thread
  std::shared_ptr<Link> cmd_;
  std::shared_ptr<Link> read_;
  std::shared_ptr<Link> listen_;
  bool cmd_ready_once_ = false;
  std::vector<Complete<bool>> connect_waiters_;
  asio::steady_timer connect_timer_;
  asio::steady_timer tick_timer_;
  asio::steady_timer retry_timer_;
  asio::steady_timer listen_retry_timer_;
  bool tick_scheduled_ = false;

  std::shared_ptr<Subscription> sub_;
  // Written once by subscribe, read by finish() on the engine's threads.
  mutable std::mutex names_mutex_;
  std::string group_;  // kept after unsubscribe: late finishes still ack
  std::string consumer_;
  std::uint32_t max_outstanding_ = 1;
  milliseconds visibility_{30000};
  std::unordered_set<std::string> handed_;  // handed over, finish not completed
  std::deque<Parked> parked_;

  std::vector<ReplyStream> replies_;
  bool listening_ = false;

  std::mutex notes_mutex_;  // notes are written here and read by finish() on any thread
  std::unordered_map<std::string, std::string> notes_;
};

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
       "how often idle pending requests are claimed; 0: a quarter of the visibility timeout"},
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
  impl_->lookup_result(flavour, queue, message_id, std::move(done));
}
void RedisBroker::publish(const PublishView& message, DoneCallback done) {
  impl_->publish(message, std::move(done));
}
Result<std::string> RedisBroker::open_replies(std::string_view queue, ReplyHandler on_reply) {
  return impl_->open_replies(queue, std::move(on_reply));
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

}  // namespace prpc::redis
