#include "connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace prpc::redis::details {

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;

std::string ms_text(milliseconds d) { return std::to_string(d.count()) + " ms"; }

// Login failures will not heal by retrying the same credentials.
Status login_error(const redisReply* r, std::string_view step) {
  return Status(StatusCode::kFailedPrecondition,
                std::string(step) + " was refused: " + std::string(text(r)));
}

}  // namespace

Command Command::make(std::initializer_list<std::string_view> args) {
  return make(std::vector<std::string_view>(args));
}

Command Command::make(const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  sds out = nullptr;
  int n = redisFormatSdsCommandArgv(&out, static_cast<int>(argv.size()), argv.data(), lens.data());
  Command c;
  if (n < 0 || out == nullptr) throw std::bad_alloc();
  c.bytes_.reset(out);
  c.size_ = static_cast<std::size_t>(n);
  return c;
}

Status error_status(const redisReply* r, std::string_view context) {
  std::string_view t = text(r);
  StatusCode code = StatusCode::kInternal;
  auto has = [&](std::string_view p) { return t.substr(0, p.size()) == p; };
  if (has("NOGROUP")) {
    code = StatusCode::kNotFound;
  } else if (has("NOPERM") || has("NOAUTH") || has("WRONGPASS") || has("WRONGTYPE")) {
    code = StatusCode::kFailedPrecondition;
  } else if (has("OOM")) {
    code = StatusCode::kResourceExhausted;
  } else if (has("LOADING") || has("BUSY") || has("MASTERDOWN") || has("TRYAGAIN") ||
             has("READONLY") || has("CLUSTERDOWN")) {
    code = StatusCode::kUnavailable;
  }
  std::string msg(context);
  if (!msg.empty()) msg += ": ";
  msg += t;
  return Status(code, std::move(msg));
}

Status expect_ok(const Status& s, const redisReply* r, std::string_view context) {
  if (!s.is_ok()) return s.with_context(context);
  if (is_error(r)) return error_status(r, context);
  return Status::ok();
}

Link::Link(asio::io_context& io, LinkSettings settings, const sdk::Logger* log, std::string role)
    : io_(io),
      settings_(std::move(settings)),
      log_(log),
      role_(std::move(role)),
      socket_(io),
      resolver_(io),
      connect_timer_(io),
      retry_timer_(io),
      watchdog_timer_(io),
      read_buffer_(kReadChunk),
      jitter_(std::random_device{}()) {}

Link::~Link() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

std::string Link::describe() const { return settings_.url.redacted() + " (" + role_ + ")"; }

void Link::start() {
  if (state_ != State::kIdle) return;
  watchdog();
  connect();
}

void Link::connect() {
  state_ = State::kConnecting;
  std::uint64_t gen = generation_;
  auto self = shared_from_this();
  connect_timer_.expires_after(settings_.connect_timeout);
  connect_timer_.async_wait([self, gen](const boost::system::error_code& ec) {
    if (ec || gen != self->generation_) return;
    if (self->state_ == State::kConnecting || self->state_ == State::kHandshake) {
      self->fail(Status(StatusCode::kTimeout, "no connection within " +
                                                  ms_text(self->settings_.connect_timeout)));
    }
  });

  using Endpoints = std::vector<asio::generic::stream_protocol::endpoint>;
  if (settings_.url.unix_socket) {
    auto eps = std::make_shared<Endpoints>();
    if (settings_.url.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      fail(Status(StatusCode::kInvalidArgument, "the unix socket path is too long"));
      return;
    }
    eps->emplace_back(asio::local::stream_protocol::endpoint(settings_.url.path));
    connect_next(eps, 0, Status::ok());
    return;
  }
  resolver_.async_resolve(
      settings_.url.host, std::to_string(settings_.url.port),
      [self, gen](const boost::system::error_code& ec,
                  const asio::ip::tcp::resolver::results_type& results) {
        if (gen != self->generation_) return;
        if (ec) {
          self->fail(Status(StatusCode::kUnavailable,
                            "cannot resolve '" + self->settings_.url.host + "': " + ec.message()));
          return;
        }
        auto eps = std::make_shared<Endpoints>();
        for (const auto& entry : results) eps->emplace_back(entry.endpoint());
        self->connect_next(eps, 0, Status(StatusCode::kUnavailable, "no address to connect to"));
      });
}

void Link::connect_next(std::shared_ptr<std::vector<asio::generic::stream_protocol::endpoint>> eps,
                        std::size_t index, Status last) {
  if (index >= eps->size()) {
    fail(last);
    return;
  }
  boost::system::error_code ignored;
  socket_.close(ignored);
  std::uint64_t gen = generation_;
  auto self = shared_from_this();
  auto endpoint = (*eps)[index];
  socket_.async_connect(endpoint, [self, gen, eps, index](const boost::system::error_code& ec) {
    if (gen != self->generation_) return;
    if (ec) {
      self->connect_next(eps, index + 1, Status(StatusCode::kUnavailable, ec.message()));
      return;
    }
    self->connected();
  });
}

void Link::connected() {
  int fd = socket_.native_handle();
  if (!settings_.url.unix_socket) {
    // Requests and replies are small: Nagle would hold them back by up to 40 ms.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // A peer that vanished without a FIN is noticed even on an idle blocking read.
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    int idle = 15;
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  }
  reader_ = redisReaderCreate();
  if (reader_ == nullptr) {
    fail(Status(StatusCode::kResourceExhausted, "cannot allocate a reply reader"));
    return;
  }
  state_ = State::kHandshake;
  handshake_error_ = Status::ok();
  client_id_ = -1;
  read();

  const RedisUrl& url = settings_.url;
  struct Step {
    Command command;
    bool required;
    std::string_view name;
  };
  std::vector<Step> steps;
  if (!url.password.empty() || !url.user.empty()) {
    steps.push_back({url.user.empty() ? Command::make({"AUTH", url.password})
                                      : Command::make({"AUTH", url.user, url.password}),
                     true, "AUTH"});
  }
  if (url.db != 0) {
    std::string db = std::to_string(url.db);
    steps.push_back({Command::make({"SELECT", db}), true, "SELECT"});
  }
  std::string name = settings_.client_name + "-" + role_;
  steps.push_back({Command::make({"CLIENT", "SETNAME", name}), false, "CLIENT SETNAME"});
  steps.push_back({Command::make({"CLIENT", "ID"}), false, "CLIENT ID"});
  handshake_left_ = static_cast<int>(steps.size());
  std::weak_ptr<Link> weak = weak_from_this();
  for (Step& step : steps) {
    bool required = step.required;
    std::string_view step_name = step.name;
    enqueue(std::move(step.command),
            [weak, required, step_name](const Status& s, ReplyPtr reply) {
              if (auto self = weak.lock()) {
                self->handshake_reply(s, std::move(reply), required, step_name);
              }
            },
            milliseconds(0));
  }
}

void Link::handshake_reply(const Status& s, ReplyPtr reply, bool required, std::string_view step) {
  if (!s.is_ok() || state_ != State::kHandshake) return;
  if (is_error(reply.get())) {
    // Without AUTH, a server with requirepass refuses every command of the login with NOAUTH.
    if (starts_with(reply.get(), "NOAUTH")) required = true;
    if (required && handshake_error_.is_ok()) {
      handshake_error_ = step == "AUTH" || starts_with(reply.get(), "NOAUTH")
                             ? login_error(reply.get(), "authentication")
                                        : login_error(reply.get(), step);
    }
  } else if (step == "CLIENT ID" && reply->type == REDIS_REPLY_INTEGER) {
    client_id_ = reply->integer;
  }
  if (--handshake_left_ > 0) return;
  if (!handshake_error_.is_ok()) {
    fail(handshake_error_);
    return;
  }
  become_ready();
}

void Link::become_ready() {
  state_ = State::kReady;
  connect_timer_.cancel();
  backoff_ = milliseconds(0);
  if (log_ != nullptr) {
    if (down_logged_) {
      log_->info("reconnected to " + describe());
    } else if (!was_ready_) {
      log_->debug("connected to " + describe());
    }
  }
  was_ready_ = true;
  down_logged_ = false;
  last_error_ = Status::ok();
  std::deque<Held> held;
  held.swap(held_);
  for (Held& h : held) enqueue(std::move(h.command), std::move(h.done), h.extra);
  if (on_ready_) on_ready_();
}

void Link::send(Command command, ReplyFn done, milliseconds extra) {
  if (state_ == State::kClosed) {
    done(Status(StatusCode::kCancelled, "the Redis connection is closed"), nullptr);
    return;
  }
  if (state_ == State::kReady) {
    enqueue(std::move(command), std::move(done), extra);
    return;
  }
  if (settings_.hold.count() <= 0) {
    std::string why = last_error_.is_ok() ? std::string("not connected yet")
                                          : last_error_.message();
    done(Status(StatusCode::kUnavailable, "Redis at " + describe() + " is unreachable: " + why),
         nullptr);
    return;
  }
  held_.push_back(Held{std::move(command), std::move(done), extra, Clock::now() + settings_.hold});
}

void Link::enqueue(Command command, ReplyFn done, milliseconds extra) {
  out_.append(command.bytes());
  inflight_.push_back(Pending{std::move(done), Clock::now() + settings_.command_timeout + extra});
  schedule_flush();
}

void Link::schedule_flush() {
  // Deferred so that every command issued in the current handler leaves in one write.
  if (flush_scheduled_ || writing_) return;
  flush_scheduled_ = true;
  std::uint64_t gen = generation_;
  asio::post(io_, [self = shared_from_this(), gen] {
    self->flush_scheduled_ = false;
    if (gen == self->generation_) self->flush();
  });
}

void Link::flush() {
  if (writing_ || out_.empty()) return;
  writing_ = true;
  auto buffer = std::make_shared<std::string>();
  buffer->swap(out_);
  std::uint64_t gen = generation_;
  asio::async_write(socket_, asio::buffer(*buffer),
                    [self = shared_from_this(), gen, buffer](const boost::system::error_code& ec,
                                                             std::size_t) {
                      if (gen != self->generation_) return;
                      self->writing_ = false;
                      if (ec) {
                        self->fail(Status(StatusCode::kUnavailable,
                                          "writing to Redis failed: " + ec.message()));
                        return;
                      }
                      self->flush();
                    });
}

void Link::read() {
  std::uint64_t gen = generation_;
  socket_.async_read_some(
      asio::buffer(read_buffer_),
      [self = shared_from_this(), gen](const boost::system::error_code& ec, std::size_t n) {
        if (gen != self->generation_) return;
        if (ec) {
          self->fail(Status(StatusCode::kUnavailable,
                            ec == asio::error::eof ? std::string("Redis closed the connection")
                                                   : "reading from Redis failed: " + ec.message()));
          return;
        }
        self->on_read(n);
      });
}

void Link::on_read(std::size_t n) {
  std::uint64_t gen = generation_;
  if (redisReaderFeed(reader_, read_buffer_.data(), n) != REDIS_OK) {
    fail(Status(StatusCode::kResourceExhausted, "cannot buffer the reply"));
    return;
  }
  while (true) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
      fail(Status(StatusCode::kInternal,
                  std::string("Redis protocol error: ") + reader_->errstr));
      return;
    }
    if (raw == nullptr) break;
    ReplyPtr reply(static_cast<redisReply*>(raw));
    if (inflight_.empty()) {
      fail(Status(StatusCode::kInternal, "Redis sent a reply nobody asked for"));
      return;
    }
    Pending p = std::move(inflight_.front());
    inflight_.pop_front();
    p.done(Status::ok(), std::move(reply));
    if (gen != generation_) return;  // the callback closed or reset this link
  }
  read();
}

void Link::fail(const Status& why) {
  if (state_ == State::kClosed || state_ == State::kBackoff || state_ == State::kIdle) return;
  bool was_ready = state_ == State::kReady;
  ++generation_;
  state_ = State::kBackoff;
  last_error_ = why;
  boost::system::error_code ignored;
  socket_.close(ignored);
  resolver_.cancel();
  connect_timer_.cancel();
  if (reader_ != nullptr) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  out_.clear();
  writing_ = false;
  client_id_ = -1;
  handshake_left_ = 0;
  if (log_ != nullptr && !down_logged_) {
    down_logged_ = true;
    std::string msg = (was_ready ? "lost the connection to " : "cannot connect to ") + describe() +
                      ": " + why.message();
    if (was_ready_) msg += "; reconnecting with backoff";
    if (why.code() == StatusCode::kFailedPrecondition) {
      log_->error(msg);
    } else {
      log_->warn(msg);
    }
  }
  Status lost = why;
  if (was_ready) {
    lost = Status(StatusCode::kUnavailable,
                  "the connection to Redis was lost before the reply came (" + why.message() +
                      "); the command may or may not have run");
  }
  std::deque<Pending> inflight;
  inflight.swap(inflight_);
  for (Pending& p : inflight) p.done(lost, nullptr);
  if (on_down_) on_down_(why);
  if (state_ == State::kBackoff) schedule_reconnect();
}

void Link::schedule_reconnect() {
  backoff_ = backoff_.count() == 0 ? settings_.reconnect_min
                                   : std::min(backoff_ * 2, settings_.reconnect_max);
  // Jitter keeps a fleet of clients from reconnecting in lockstep after a Redis restart.
  auto span = std::max<std::int64_t>(1, backoff_.count() / 4);
  auto delay = backoff_ + milliseconds(static_cast<std::int64_t>(jitter_() % static_cast<std::uint64_t>(span)));
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ != State::kBackoff) return;
    self->connect();
  });
}

void Link::reset(const Status& why) {
  if (state_ == State::kReady || state_ == State::kConnecting || state_ == State::kHandshake) {
    fail(why);
  }
}

void Link::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  ++generation_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  resolver_.cancel();
  connect_timer_.cancel();
  retry_timer_.cancel();
  watchdog_timer_.cancel();
  if (reader_ != nullptr) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  out_.clear();
  writing_ = false;
  Status cancelled(StatusCode::kCancelled, "the Redis connection was closed");
  std::deque<Pending> inflight;
  inflight.swap(inflight_);
  for (Pending& p : inflight) p.done(cancelled, nullptr);
  fail_held(false);
}

void Link::fail_held(bool expired_only) {
  auto now = Clock::now();
  while (!held_.empty() && (!expired_only || held_.front().deadline <= now)) {
    Held h = std::move(held_.front());
    held_.pop_front();
    if (state_ == State::kClosed) {
      h.done(Status(StatusCode::kCancelled, "the Redis connection was closed"), nullptr);
    } else {
      std::string why = last_error_.is_ok() ? std::string("not connected") : last_error_.message();
      h.done(Status(StatusCode::kUnavailable, "Redis at " + describe() + " was unreachable for " +
                                                  ms_text(settings_.hold) + ": " + why),
             nullptr);
    }
  }
}

void Link::watchdog() {
  auto tick = std::clamp(settings_.command_timeout / 4, milliseconds(20), milliseconds(1000));
  if (settings_.hold.count() > 0) tick = std::min(tick, std::max(settings_.hold / 4, milliseconds(5)));
  watchdog_timer_.expires_after(tick);
  watchdog_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ == State::kClosed) return;
    if ((self->state_ == State::kReady || self->state_ == State::kHandshake) &&
        !self->inflight_.empty() && self->inflight_.front().deadline <= Clock::now()) {
      self->fail(Status(StatusCode::kTimeout,
                        "Redis did not answer within " +
                            ms_text(self->settings_.command_timeout)));
    }
    self->fail_held(true);
    if (self->state_ != State::kClosed) self->watchdog();
  });
}

}  // namespace prpc::redis::details
