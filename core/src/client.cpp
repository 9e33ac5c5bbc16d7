#include "prpc/client.hpp"

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <unordered_map>

#include "event_loop.hpp"
#include "prpc/iso_time.hpp"
#include "prpc/log.hpp"
#include "prpc/own_thread.hpp"
#include "prpc/uuid.hpp"

namespace prpc {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Every callback into a client (pushed replies, publish completions, the deadline timer) passes
// through its gate. Closing the gate waits for callbacks in progress, so a client is destroyed
// by whoever closes it; closed from inside one of its own callbacks, it is destroyed on a thread
// of its own once the callbacks have left (tear_down).
struct ClientGate {
  std::mutex mutex;
  std::condition_variable idle;
  Client::Impl* impl = nullptr;
  int active = 0;
};

namespace {

constexpr std::string_view kLog = "client";
thread_local const ClientGate* t_inside = nullptr;
}  // namespace

class Client::Impl {
 public:
  Impl(ClientOptions options, std::shared_ptr<Broker> broker, std::shared_ptr<Codec> codec,
       std::shared_ptr<ClientGate> gate)
      : options_(std::move(options)),
        signer_(Signer::make(options_.signing)),
        broker_(std::move(broker)),
        codec_(std::move(codec)),
        gate_(std::move(gate)),
        deadline_timer_(loop_.io()),
        poll_timer_(loop_.io()) {}

  ~Impl() {
    std::unordered_map<std::string, Pending> left;
    {
      std::lock_guard lock(mutex_);
      left.swap(pending_);
      deadlines_.clear();
    }
    for (auto& [id, p] : left) p.done(Status(StatusCode::kCancelled, "the client was closed"));
    cancel_timer();
  }

  // Runs f(impl) unless the client is closing; see ClientGate.
  template <typename F>
  static void enter(const std::shared_ptr<ClientGate>& gate, F&& f) {
    Impl* impl = nullptr;
    {
      std::lock_guard lock(gate->mutex);
      if (gate->impl == nullptr) return;
      impl = gate->impl;
      ++gate->active;
    }
    const ClientGate* outer = t_inside;
    t_inside = gate.get();
    f(*impl);
    t_inside = outer;
    std::lock_guard lock(gate->mutex);
    if (--gate->active == 0) gate->idle.notify_all();
  }

  Status start() {
    std::lock_guard lock(start_mutex_);
    if (started_) return Status::ok();
    if (!signer_.is_ok()) return signer_.status();
    PRPC_RETURN_IF_ERROR(broker_->connect());
    // The signed forms cost nothing with brokers that lack them (Broker's defaults forward to
    // the unsigned ones); signatures are not checked yet.
    auto reply_to =
        broker_->open_replies_signed(options_.queue, [gate = gate_](const PushedReplyView& reply) {
          enter(gate, [&](Impl& self) { self.on_reply(reply); });
        });
    if (!reply_to.is_ok()) return reply_to.status();
    reply_to_ = std::move(*reply_to);
    started_ = true;
    if (options_.stored_reply_poll.count() > 0) {
      asio::post(loop_.io(),
                 [gate = gate_] { enter(gate, [](Impl& self) { self.schedule_poll(); }); });
    }
    return Status::ok();
  }

  std::string call(Message request, std::chrono::milliseconds timeout, ReplyCallback done) {
    if (request.message_id.empty()) request.message_id = new_uuid();
    if (request.date_create_message.empty()) request.date_create_message = now_iso8601();
    std::string id = request.message_id;
    Status started = start();
    if (!started.is_ok()) {
      done(started);
      return id;
    }
    if (request.reply_to.empty()) request.reply_to = reply_to_;
    auto encoded = codec_->encode(request);
    if (!encoded.is_ok()) {
      done(encoded.status().with_context("encoding the request"));
      return id;
    }
    bool rearm = false;
    {
      std::lock_guard lock(mutex_);
      if (pending_.count(id) != 0) {
        done(Status(StatusCode::kAlreadyExists,
                    "a call with message_id " + id + " is already pending"));
        return id;
      }
      Pending p{std::move(done), deadlines_.end(), timeout, Clock::now()};
      if (timeout.count() > 0) {
        // One timer serves every call; it is re-armed only for an earlier deadline.
        Clock::time_point at = Clock::now() + timeout;
        p.deadline = deadlines_.emplace(at, id);
        if (!timer_armed_ || at < timer_at_) {
          timer_armed_ = true;
          timer_at_ = at;
          rearm = true;
        }
      }
      pending_.emplace(id, std::move(p));
    }
    if (rearm) arm_timer();
    Signer::Signature sig = signer_->sign(*encoded);
    publish(std::make_shared<const Outgoing>(Outgoing{id, std::move(*encoded), std::move(sig)}), 1);
    return id;
  }

  // A request on its way to the broker, kept for a retry.
  struct Outgoing {
    std::string id;
    std::string payload;
    Signer::Signature sig;
  };

  // A publish whose fate is unknown (the connection dropped before the broker answered, as in a
  // Redis failover) is sent again, with the same message_id, while the call waits: at least once.
  // Servers run a request that arrived twice twice at most; the caller gets the first reply.
  static constexpr int kPublishAttempts = 3;

  void publish(std::shared_ptr<const Outgoing> out, int attempt) {
    PublishView pub(options_.flavour, options_.queue, out->id, out->payload, out->sig.signature,
                    out->sig.key_id);
    broker_->publish(pub, [gate = gate_, out, attempt](const Status& s) {
      if (s.is_ok()) return;
      enter(gate, [&](Impl& self) {
        bool waiting = false;
        {
          std::lock_guard lock(self.mutex_);
          waiting = self.pending_.count(out->id) != 0;
        }
        if (waiting && s.code() == StatusCode::kUnavailable && attempt < kPublishAttempts) {
          log::info(kLog, "publishing request " + out->id + " again (attempt " +
                              std::to_string(attempt + 1) + "): " + s.message());
          self.publish(out, attempt + 1);
          return;
        }
        self.resolve(out->id, s.with_context("publishing the request"));
      });
    });
  }

  bool cancel(std::string_view message_id) {
    return resolve(std::string(message_id), Status(StatusCode::kCancelled, "cancelled"));
  }

  void fetch(std::string_view message_id,
             std::function<void(Result<std::optional<Message>>)> done) {
    if (!signer_.is_ok()) {
      done(signer_.status());
      return;
    }
    auto codec = codec_;
    broker_->lookup_result_signed(
        options_.flavour, options_.queue, message_id,
        [codec, signer = *signer_, done = std::move(done)](Result<std::optional<StoredResult>> r) {
          if (!r.is_ok()) {
            done(r.status());
            return;
          }
          if (!r->has_value()) {
            done(std::optional<Message>());
            return;
          }
          const StoredResult& stored = **r;
          Status genuine =
              signer.verify(stored.payload, stored.signature, stored.key_id, "stored result");
          if (!genuine.is_ok()) {
            done(genuine);
            return;
          }
          auto decoded = codec->decode(stored.payload);
          if (!decoded.is_ok()) {
            done(decoded.status());
            return;
          }
          done(std::optional<Message>(std::move(*decoded)));
        });
  }

  std::size_t pending() const {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }

  std::string diagnosis() const {
    if (!foreign_replies_.load()) return {};
    return "replies without a key were seen on queue '" + options_.queue +
           "': its servers look like the original PRPC, which stores replies where only its own "
           "clients look; upgrade the servers first (docs/migration.md)";
  }

  const std::string& reply_to() const { return reply_to_; }
  const Codec& codec() const { return *codec_; }
  const ClientOptions& options() const { return options_; }

 private:
  using Deadlines = std::multimap<Clock::time_point, std::string>;
  struct Pending {
    ReplyCallback done;
    Deadlines::iterator deadline;
    std::chrono::milliseconds timeout{0};
    Clock::time_point sent{};
    bool looking = false;  // a lookup of its stored result is under way
  };

  void on_reply(const PushedReplyView& reply) {
    std::string_view id = reply.message_id;
    if (id.empty()) {
      on_unaddressed_reply(reply);
      return;
    }
    {
      // Replies for other clients that share the channel are not even decoded.
      std::lock_guard lock(mutex_);
      if (pending_.find(std::string(id)) == pending_.end()) return;
    }
    if (Status genuine = check(reply); !genuine.is_ok()) {
      resolve(std::string(id), genuine);
      return;
    }
    auto decoded = codec_->decode(reply.payload);
    if (!decoded.is_ok()) {
      log::warn("client",
                "undecodable reply for " + std::string(id) + ": " + decoded.status().message());
      resolve(std::string(id), decoded.status().with_context("decoding the reply"));
      return;
    }
    resolve(std::string(id), std::move(*decoded));
  }

  // With a signing key, a reply counts only when it is signed with an accepted key; otherwise
  // it fails its call (kDecode) rather than being taken for the answer.
  Status check(const PushedReplyView& reply) const {
    Status genuine = signer_->verify(reply.payload, reply.signature, reply.key_id, "reply");
    if (genuine.is_ok()) return genuine;
    log::warn("client", "rejected the reply to " + std::string(reply.message_id.substr(0, 64)) +
                            ": " + genuine.message());
    return Status(StatusCode::kDecode, "rejected the reply: " + genuine.message());
  }

  // A reply without an address (no Kafka key): written by a server that does not know
  // reply_to, as the original PRPC's did. Routed by the message_id inside it when it decodes,
  // and remembered: the calls such a server answers elsewhere will time out, and say why.
  void on_unaddressed_reply(const PushedReplyView& reply) {
    auto decoded = codec_->decode(reply.payload);
    if (!decoded.is_ok()) return;
    bool first = !foreign_replies_.exchange(true);
    if (first) {
      log::warn("client", "a reply without a key arrived on queue '" + options_.queue +
                              "': its servers look like the original PRPC, which does not send "
                              "replies where this client waits (upgrade the servers first)");
    }
    std::string id = decoded->message_id;
    {
      std::lock_guard lock(mutex_);
      if (pending_.find(id) == pending_.end()) return;
    }
    if (Status genuine = check(reply); !genuine.is_ok()) {
      resolve(id, genuine);
      return;
    }
    resolve(id, std::move(*decoded));
  }

  bool resolve(const std::string& id, Result<Message> result) {
    Pending p;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return false;  // a late reply, or already timed out
      p = std::move(it->second);
      if (p.deadline != deadlines_.end()) deadlines_.erase(p.deadline);
      pending_.erase(it);
    }
    p.done(std::move(result));
    return true;
  }

  void arm_timer() {
    asio::post(loop_.io(),
               [gate = gate_] { enter(gate, [](Impl& self) { self.schedule_expiry(); }); });
  }

  // On the loop thread: waits for the earliest deadline.
  void schedule_expiry() {
    Clock::time_point at;
    {
      std::lock_guard lock(mutex_);
      if (deadlines_.empty()) {
        timer_armed_ = false;
        return;
      }
      at = deadlines_.begin()->first;
      timer_at_ = at;
    }
    deadline_timer_.expires_at(at);
    deadline_timer_.async_wait([gate = gate_](const boost::system::error_code& ec) {
      if (ec) return;
      enter(gate, [](Impl& self) { self.expire(); });
    });
  }

  void expire() {
    std::vector<std::pair<std::string, Pending>> expired;
    {
      std::lock_guard lock(mutex_);
      auto now = Clock::now();
      while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        auto it = pending_.find(deadlines_.begin()->second);
        deadlines_.erase(deadlines_.begin());
        if (it == pending_.end()) continue;
        it->second.deadline = deadlines_.end();
        expired.emplace_back(it->first, std::move(it->second));
        pending_.erase(it);
      }
    }
    std::string why = diagnosis();
    for (auto& [id, p] : expired) {
      p.done(Status(StatusCode::kTimeout, "no reply within " + std::to_string(p.timeout.count()) +
                                              " ms" + (why.empty() ? "" : "; " + why)));
    }
    schedule_expiry();
  }

  // On the loop thread: looks up the stored results of calls that waited a poll interval for
  // their push, one lookup per call at a time.
  void schedule_poll() {
    poll_timer_.expires_after(options_.stored_reply_poll);
    poll_timer_.async_wait([gate = gate_](const boost::system::error_code& ec) {
      if (ec) return;
      enter(gate, [](Impl& self) { self.poll_stored(); });
    });
  }

  void poll_stored() {
    std::vector<std::string> due;
    {
      std::lock_guard lock(mutex_);
      auto before = Clock::now() - options_.stored_reply_poll;
      for (auto& [id, p] : pending_) {
        if (p.looking || p.sent > before) continue;
        p.looking = true;
        due.push_back(id);
      }
    }
    for (const std::string& id : due) {
      broker_->lookup_result_signed(options_.flavour, options_.queue, id,
                                    [gate = gate_, id](Result<std::optional<StoredResult>> found) {
                                      enter(gate, [&](Impl& self) { self.on_stored(id, found); });
                                    });
    }
    schedule_poll();
  }

  void on_stored(const std::string& id, const Result<std::optional<StoredResult>>& found) {
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return;  // answered meanwhile
      it->second.looking = false;
    }
    if (found.is_ok() && found->has_value()) {
      log::debug("client", "the reply of " + id + " was not pushed; read where it is stored");
      const StoredResult& stored = **found;
      on_reply(PushedReplyView{id, stored.payload, stored.signature, stored.key_id});
    }
  }

  void cancel_timer() {
    if (loop_.in_loop_thread()) {
      deadline_timer_.cancel();
      poll_timer_.cancel();
      return;
    }
    std::promise<void> cancelled;
    asio::post(loop_.io(), [&] {
      deadline_timer_.cancel();
      poll_timer_.cancel();
      cancelled.set_value();
    });
    cancelled.get_future().wait();
  }

  ClientOptions options_;
  Result<Signer> signer_;  // an error (bad keys) fails start() and every call
  std::shared_ptr<Broker> broker_;
  std::shared_ptr<Codec> codec_;
  std::shared_ptr<ClientGate> gate_;
  details::EventLoop loop_;
  asio::steady_timer deadline_timer_;
  asio::steady_timer poll_timer_;
  std::mutex start_mutex_;
  bool started_ = false;
  std::string reply_to_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Pending> pending_;
  Deadlines deadlines_;
  bool timer_armed_ = false;
  Clock::time_point timer_at_{};
  std::atomic<bool> foreign_replies_{false};
};

Client::Client(ClientOptions options, std::shared_ptr<Broker> broker, std::shared_ptr<Codec> codec)
    : gate_(std::make_shared<ClientGate>()),
      impl_(
          std::make_unique<Impl>(std::move(options), std::move(broker), std::move(codec), gate_)) {
  gate_->impl = impl_.get();
}

Client::~Client() {
  {
    std::lock_guard lock(gate_->mutex);
    gate_->impl = nullptr;  // no callback starts from now on
  }
  tear_down(t_inside == gate_.get(), [gate = gate_, impl = std::move(impl_)]() mutable {
    std::unique_lock lock(gate->mutex);
    gate->idle.wait(lock, [&gate] { return gate->active == 0; });
    lock.unlock();
    impl.reset();
  });
}

Status Client::start() { return impl_->start(); }

std::string Client::call(Message request, std::chrono::milliseconds timeout, ReplyCallback done) {
  return impl_->call(std::move(request), timeout, std::move(done));
}

Result<Message> Client::call_sync(Message request, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<Result<Message>>>();
  auto future = promise->get_future();
  impl_->call(std::move(request), timeout,
              [promise](Result<Message> r) { promise->set_value(std::move(r)); });
  return future.get();
}

bool Client::cancel(std::string_view message_id) { return impl_->cancel(message_id); }

void Client::fetch(std::string_view message_id,
                   std::function<void(Result<std::optional<Message>>)> done) {
  impl_->fetch(message_id, std::move(done));
}

std::size_t Client::pending() const { return impl_->pending(); }
std::string Client::diagnosis() const { return impl_->diagnosis(); }
const std::string& Client::reply_to() const { return impl_->reply_to(); }
const Codec& Client::codec() const { return impl_->codec(); }
const ClientOptions& Client::options() const { return impl_->options(); }

}  // namespace prpc
