#include "prpc/client.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <mutex>
#include <unordered_map>

#include "event_loop.hpp"
#include "prpc/iso_time.hpp"
#include "prpc/log.hpp"
#include "prpc/uuid.hpp"

namespace prpc {
namespace asio = boost::asio;

class Client::Impl : public std::enable_shared_from_this<Client::Impl> {
 public:
  Impl(ClientOptions options, std::shared_ptr<Broker> broker, std::shared_ptr<Codec> codec)
      : options_(std::move(options)), broker_(std::move(broker)), codec_(std::move(codec)) {}

  ~Impl() {
    std::unordered_map<std::string, Pending> left;
    {
      std::lock_guard lock(mutex_);
      left.swap(pending_);
    }
    for (auto& [id, p] : left) {
      p.done(Status(StatusCode::kCancelled, "the client was closed"));
    }
  }

  Status start() {
    std::lock_guard lock(start_mutex_);
    if (started_) return Status::ok();
    PRPC_RETURN_IF_ERROR(broker_->connect());
    std::weak_ptr<Impl> weak = weak_from_this();
    auto reply_to = broker_->open_replies(options_.queue, [weak](std::string_view id, std::string_view payload) {
      if (auto self = weak.lock()) self->on_reply(id, payload);
    });
    if (!reply_to.is_ok()) return reply_to.status();
    reply_to_ = std::move(*reply_to);
    started_ = true;
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
    std::shared_ptr<asio::steady_timer> timer;
    if (timeout.count() > 0) {
      timer = std::make_shared<asio::steady_timer>(loop_.io(), timeout);
    }
    {
      std::lock_guard lock(mutex_);
      if (pending_.count(id) != 0) {
        done(Status(StatusCode::kAlreadyExists, "a call with message_id " + id +
                                                     " is already pending"));
        return id;
      }
      pending_.emplace(id, Pending{std::move(done), timer});
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    if (timer) {
      timer->async_wait([weak, id, timeout](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto self = weak.lock()) {
          self->resolve(id, Status(StatusCode::kTimeout,
                                   "no reply within " + std::to_string(timeout.count()) + " ms"));
        }
      });
    }
    PublishView pub{options_.flavour, options_.queue, id, *encoded};
    broker_->publish(pub, [weak, id](const Status& s) {
      if (s.is_ok()) return;
      if (auto self = weak.lock()) self->resolve(id, s.with_context("publishing the request"));
    });
    return id;
  }

  bool cancel(std::string_view message_id) {
    return resolve(std::string(message_id), Status(StatusCode::kCancelled, "cancelled"));
  }

  void fetch(std::string_view message_id,
             std::function<void(Result<std::optional<Message>>)> done) {
    auto codec = codec_;
    broker_->lookup_result(
        options_.flavour, options_.queue, message_id,
        [codec, done = std::move(done)](Result<std::optional<std::string>> r) {
          if (!r.is_ok()) {
            done(r.status());
            return;
          }
          if (!r->has_value()) {
            done(std::optional<Message>());
            return;
          }
          auto decoded = codec->decode(**r);
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

  const std::string& reply_to() const { return reply_to_; }
  const Codec& codec() const { return *codec_; }
  const ClientOptions& options() const { return options_; }

 private:
  struct Pending {
    ReplyCallback done;
    std::shared_ptr<asio::steady_timer> timer;
  };

  void on_reply(std::string_view id, std::string_view payload) {
    auto decoded = codec_->decode(payload);
    if (!decoded.is_ok()) {
      log::warn("client", "undecodable reply for " + std::string(id) + ": " +
                              decoded.status().message());
      resolve(std::string(id), decoded.status().with_context("decoding the reply"));
      return;
    }
    resolve(std::string(id), std::move(*decoded));
  }

  bool resolve(const std::string& id, Result<Message> result) {
    Pending p;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return false;  // late reply, or already timed out
      p = std::move(it->second);
      pending_.erase(it);
    }
    if (p.timer) {
      // Timers belong to the loop thread; cancel there.
      asio::post(loop_.io(), [timer = p.timer] { timer->cancel(); });
    }
    p.done(std::move(result));
    return true;
  }

  ClientOptions options_;
  std::shared_ptr<Broker> broker_;
  std::shared_ptr<Codec> codec_;
  details::EventLoop loop_;
  std::mutex start_mutex_;
  bool started_ = false;
  std::string reply_to_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Pending> pending_;
};

Client::Client(ClientOptions options, std::shared_ptr<Broker> broker, std::shared_ptr<Codec> codec)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(broker), std::move(codec))) {}

Client::~Client() = default;

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
const std::string& Client::reply_to() const { return impl_->reply_to(); }
const Codec& Client::codec() const { return impl_->codec(); }
const ClientOptions& Client::options() const { return impl_->options(); }

}  // namespace prpc
