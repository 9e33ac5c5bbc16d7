#include "connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <charconv>

#include "slots.hpp"

namespace prpc::redis::details {

namespace {

constexpr std::size_t kReadChunk = std::size_t{64} * 1024;
constexpr std::size_t kMaxIov = 64;
// How many extra writes a caller thread makes for commands other threads queued meanwhile.
constexpr int kMaxDirectRounds = 4;

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
  c.bytes_ = std::shared_ptr<char>(out, Free{});
  c.size_ = static_cast<std::size_t>(n);
  std::string_view key = command_key(args);
  if (!key.empty()) c.slot_ = key_slot(key);
  return c;
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

Link::~Link() = default;

std::string Link::describe() const {
  std::string out = settings_.url.redacted();
  if (settings_.url.sentinel() && !master_host_.empty()) {
    out += " (master " + master_host_ + ":" + std::to_string(master_port_) + ")";
  }
  return out + " (" + role_ + ")";
}

void Link::start() {
  {
    std::lock_guard lock(mutex_);
    if (state_ != State::kIdle) return;
    state_ = State::kConnecting;
  }
  watchdog();
  connect();
}

void Link::connect() {
  {
    std::lock_guard lock(mutex_);
    state_ = State::kConnecting;
  }
  std::uint64_t gen = generation_;
  auto self = shared_from_this();
  connect_timer_.expires_after(settings_.connect_timeout);
  connect_timer_.async_wait([self, gen](const boost::system::error_code& ec) {
    if (ec || gen != self->generation_) return;
    State s = self->state_;
    if (s == State::kConnecting || s == State::kHandshake) {
      self->fail(Status(StatusCode::kTimeout,
                        "no connection within " + ms_text(self->settings_.connect_timeout)));
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
  if (settings_.url.sentinel()) {
    ask_sentinel(0, Status(StatusCode::kUnavailable, "no sentinel"));
    return;
  }
  resolve_and_connect(settings_.url.host, settings_.url.port);
}

void Link::resolve_and_connect(const std::string& host, std::uint16_t port) {
  using Endpoints = std::vector<asio::generic::stream_protocol::endpoint>;
  std::uint64_t gen = generation_;
  auto self = shared_from_this();
  resolver_.async_resolve(
      host, std::to_string(port),
      [self, gen, host](const boost::system::error_code& ec,
                        const asio::ip::tcp::resolver::results_type& results) {
        if (gen != self->generation_) return;
        if (ec) {
          self->fail(
              Status(StatusCode::kUnavailable, "cannot resolve '" + host + "': " + ec.message()));
          return;
        }
        auto eps = std::make_shared<Endpoints>();
        for (const auto& entry : results) eps->emplace_back(entry.endpoint());
        self->connect_next(eps, 0, Status(StatusCode::kUnavailable, "no address to connect to"));
      });
}

// SENTINEL get-master-addr-by-name on one sentinel after the other; the first that names a
// master wins (the ROLE check of the login catches a sentinel that lags behind a failover).
void Link::ask_sentinel(std::size_t index, Status last) {
  const auto& sentinels = settings_.url.sentinels;
  if (index >= sentinels.size()) {
    fail(Status(StatusCode::kUnavailable, "no sentinel named the master '" +
                                              settings_.url.master_name + "': " + last.message()));
    return;
  }
  std::uint64_t gen = generation_;
  auto self = shared_from_this();
  const auto& [host, port] = sentinels[index];
  std::string where = host + ":" + std::to_string(port);
  sentinel_socket_ = std::make_shared<asio::ip::tcp::socket>(io_);
  sentinel_reader_.reset(redisReaderCreate());
  sentinel_query_ = std::string(
      Command::make({"SENTINEL", "get-master-addr-by-name", settings_.url.master_name}).bytes());
  auto next = [self, gen, index, where](const std::string& why) {
    if (gen != self->generation_) return;
    self->ask_sentinel(index + 1,
                       Status(StatusCode::kUnavailable, "sentinel " + where + ": " + why));
  };
  resolver_.async_resolve(
      host, std::to_string(port),
      [self, gen, index, next](const boost::system::error_code& ec,
                               const asio::ip::tcp::resolver::results_type& results) {
        if (gen != self->generation_) return;
        if (ec) {
          next(ec.message());
          return;
        }
        asio::async_connect(
            *self->sentinel_socket_, results,
            [self, gen, index, next](const boost::system::error_code& ec2,
                                     const asio::ip::tcp::endpoint&) {
              if (gen != self->generation_) return;
              if (ec2) {
                next(ec2.message());
                return;
              }
              asio::async_write(
                  *self->sentinel_socket_, asio::buffer(self->sentinel_query_),
                  [self, gen, index, next](const boost::system::error_code& ec3, std::size_t) {
                    if (gen != self->generation_) return;
                    if (ec3) {
                      next(ec3.message());
                      return;
                    }
                    self->read_sentinel(index, gen);
                  });
            });
      });
}

void Link::read_sentinel(std::size_t index, std::uint64_t gen) {
  auto self = shared_from_this();
  sentinel_socket_->async_read_some(
      asio::buffer(sentinel_buffer_),
      [self, gen, index](const boost::system::error_code& ec, std::size_t n) {
        if (gen != self->generation_) return;
        const auto& address = self->settings_.url.sentinels[index];
        auto next = [&](const std::string& why) {
          self->ask_sentinel(index + 1, Status(StatusCode::kUnavailable,
                                               "sentinel " + address.first + ":" +
                                                   std::to_string(address.second) + ": " + why));
        };
        if (ec) {
          next(ec.message());
          return;
        }
        void* raw = nullptr;
        if (redisReaderFeed(self->sentinel_reader_.get(), self->sentinel_buffer_.data(), n) !=
                REDIS_OK ||
            redisReaderGetReply(self->sentinel_reader_.get(), &raw) != REDIS_OK) {
          next("unreadable answer");
          return;
        }
        if (raw == nullptr) {
          self->read_sentinel(index, gen);  // the answer is not complete yet
          return;
        }
        ReplyPtr reply(static_cast<redisReply*>(raw));
        boost::system::error_code ignored;
        self->sentinel_socket_->close(ignored);
        if (is_error(reply.get())) {
          next(std::string(text(reply.get())));
          return;
        }
        if (!is_array(reply.get()) || reply->elements != 2 || !is_string(reply->element[0]) ||
            !is_string(reply->element[1])) {
          next("it does not know the master '" + self->settings_.url.master_name + "'");
          return;
        }
        unsigned master_port = 0;
        std::string_view port_text = text(reply->element[1]);
        auto [end, perr] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), master_port);
        if (perr != std::errc() || master_port == 0 || master_port > 65535) {
          next("it named a master with an invalid port");
          return;
        }
        self->master_host_ = std::string(text(reply->element[0]));
        self->master_port_ = static_cast<std::uint16_t>(master_port);
        self->resolve_and_connect(self->master_host_, self->master_port_);
      });
}

void Link::connect_next(std::shared_ptr<std::vector<asio::generic::stream_protocol::endpoint>> eps,
                        std::size_t index, Status last) {
  if (index >= eps->size()) {
    fail(last);
    return;
  }
  std::uint64_t gen = generation_;
  auto self = shared_from_this();
  auto endpoint = (*eps)[index];
  {
    // No direct write can be running: they start only on a ready connection, and drop() waited
    // for the last one before the link left that state.
    std::lock_guard lock(mutex_);
    boost::system::error_code ignored;
    socket_.close(ignored);
    socket_.async_connect(endpoint, [self, gen, eps, index](const boost::system::error_code& ec) {
      if (gen != self->generation_) return;
      if (ec) {
        self->connect_next(eps, index + 1, Status(StatusCode::kUnavailable, ec.message()));
        return;
      }
      self->connected();
    });
  }
}

void Link::connected() {
  reader_.reset(redisReaderCreate());
  if (!reader_) {
    fail(Status(StatusCode::kResourceExhausted, "cannot allocate a reply reader"));
    return;
  }
  handshake_error_ = Status::ok();
  client_id_ = -1;

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
  // Behind sentinels, only a master will do: a sentinel may still name the old master while a
  // failover is under way, or a restarted old master may come back as a replica.
  if (url.sentinel()) steps.push_back({Command::make({"ROLE"}), true, "ROLE"});
  std::string name = settings_.client_name + "-" + role_;
  steps.push_back({Command::make({"CLIENT", "SETNAME", name}), false, "CLIENT SETNAME"});
  steps.push_back({Command::make({"CLIENT", "ID"}), false, "CLIENT ID"});
  for (const std::string& script : settings_.scripts) {
    steps.push_back({Command::make({"SCRIPT", "LOAD", script}), true, "SCRIPT LOAD"});
  }
  handshake_left_ = static_cast<int>(steps.size());
  std::weak_ptr<Link> weak = weak_from_this();
  {
    std::lock_guard lock(mutex_);
    state_ = State::kHandshake;
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
    auto now = Clock::now();
    for (Step& step : steps) {
      bool required = step.required;
      std::string_view step_name = step.name;
      enqueue_locked(Request{std::move(step.command),
                             [weak, required, step_name](const Status& s, ReplyPtr reply) {
                               if (auto self = weak.lock()) {
                                 self->handshake_reply(s, std::move(reply), required, step_name);
                               }
                             },
                             milliseconds(0)},
                     now);
    }
    schedule_flush_locked();
  }
  read();
}

void Link::handshake_reply(const Status& s, ReplyPtr reply, bool required, std::string_view step) {
  if (!s.is_ok() || state_ != State::kHandshake) return;
  if (is_error(reply.get())) {
    // Without AUTH, a server with requirepass refuses every command of the login with NOAUTH.
    bool noauth = starts_with(reply.get(), "NOAUTH");
    if ((required || noauth) && handshake_error_.is_ok()) {
      handshake_error_ = step == "AUTH" || noauth ? login_error(reply.get(), "authentication")
                                                  : login_error(reply.get(), step);
    }
  } else if (step == "CLIENT ID") {
    client_id_ = integer_of(reply.get(), -1);
  } else if (step == "ROLE" && handshake_error_.is_ok()) {
    const redisReply* r = reply.get();
    std::string_view role =
        is_array(r) && r->elements > 0 && is_string(r->element[0]) ? text(r->element[0]) : "";
    if (role != "master") {
      handshake_error_ =
          Status(StatusCode::kUnavailable, "the sentinels named " + master_host_ + ":" +
                                               std::to_string(master_port_) + ", which is a " +
                                               std::string(role.empty() ? "?" : role) +
                                               ", not a master (a failover is under way)");
    }
  }
  if (--handshake_left_ > 0) return;
  if (!handshake_error_.is_ok()) {
    fail(handshake_error_);
    return;
  }
  become_ready();
}

void Link::become_ready() {
  connect_timer_.cancel();
  backoff_ = milliseconds(0);
  if (log_ != nullptr) {
    if (down_logged_) {
      auto down =
          std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - down_since_);
      log_->info("reconnected to " + describe() + " after " + std::to_string(down.count()) +
                 " ms and " + std::to_string(retries_) + " attempts");
    } else if (!was_ready_) {
      log_->debug("connected to " + describe());
    }
  }
  was_ready_ = true;
  down_logged_ = false;
  {
    std::lock_guard lock(mutex_);
    state_ = State::kReady;
    last_error_ = Status::ok();
    auto now = Clock::now();
    std::deque<Held> held;
    held.swap(held_);
    for (Held& h : held) enqueue_locked(std::move(h.request), now);
    schedule_flush_locked();
  }
  if (on_ready_) on_ready_();
}

Status Link::unavailable_locked() const {
  std::string why = last_error_.is_ok() ? std::string("not connected yet") : last_error_.message();
  return Status(StatusCode::kUnavailable, "Redis at " + describe() + " is unreachable: " + why);
}

void Link::fail_later(ReplyFn done, const Status& why, bool on_io_thread) {
  if (on_io_thread) {
    done(why, nullptr);
  } else {
    asio::post(io_, [done = std::move(done), why] { done(why, nullptr); });
  }
}

void Link::send_to_node(const std::string& /*node*/, Command command, ReplyFn done) {
  send(std::move(command), std::move(done));
}

std::vector<Request> Link::take_held() {
  std::lock_guard lock(mutex_);
  std::vector<Request> out;
  out.reserve(held_.size());
  for (Held& h : held_) out.push_back(std::move(h.request));
  held_.clear();
  return out;
}

void Link::send_batch(std::vector<Request> batch) {
  const bool on_io = io_.get_executor().running_in_this_thread();
  std::unique_lock lock(mutex_);
  State state = state_;
  if (state == State::kClosed || (state != State::kReady && settings_.hold.count() <= 0)) {
    Status why = state == State::kClosed
                     ? Status(StatusCode::kCancelled, "the Redis connection is closed")
                     : unavailable_locked();
    lock.unlock();
    for (Request& r : batch) fail_later(std::move(r.done), why, on_io);
    return;
  }
  auto now = Clock::now();
  if (state != State::kReady) {
    for (Request& r : batch) held_.push_back(Held{std::move(r), now + settings_.hold});
    return;
  }
  if (on_io || writing_ || flush_scheduled_ || direct_writing_ || !out_.empty()) {
    // Joins the bytes already waiting; on the io thread, the deferred flush gathers every
    // command issued while the current handler runs into one write. While another thread
    // writes directly, that thread sends these too when it is done (group commit).
    for (Request& r : batch) enqueue_locked(std::move(r), now);
    schedule_flush_locked();
    return;
  }
  // The connection is idle: write from this thread rather than waking the io thread, and
  // without the lock, so that commands sent meanwhile by other threads queue up behind this
  // write and leave together in the next one instead of each paying for its own syscall.
  for (Request& r : batch) {
    inflight_.push_back(Pending{std::move(r.done), now + settings_.command_timeout + r.extra});
  }
  direct_writing_ = true;
  const std::uint64_t gen = generation_;
  const int fd = socket_.native_handle();  // not closed before direct_writing_ is cleared
  lock.unlock();

  iovec iov[kMaxIov];
  std::size_t count = 0;
  for (const Request& r : batch) {
    if (count == kMaxIov) break;
    std::string_view b = r.command.bytes();
    iov[count].iov_base = const_cast<char*>(b.data());  // NOLINT: sendmsg does not write
    iov[count].iov_len = b.size();
    ++count;
  }
  std::size_t written = 0;
  if (count == batch.size()) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    // On an error the io thread's write meets it again and drops the connection.
    if (n > 0) written = static_cast<std::size_t>(n);
  }
  std::string carry;  // bytes already promised to Redis (their replies are in inflight_)
  for (const Request& r : batch) {
    std::string_view b = r.command.bytes();
    std::size_t skip = std::min(written, b.size());
    written -= skip;
    if (skip < b.size()) carry.append(b.substr(skip));
  }
  for (int round = 0;; ++round) {
    lock.lock();
    if (gen != generation_) {
      // The connection was dropped meanwhile: its commands were failed with it.
      direct_writing_ = false;
      direct_done_.notify_all();
      return;
    }
    if (!carry.empty() || out_.empty() || round == kMaxDirectRounds) {
      // The socket is full, nothing else came, or this caller has written for others long
      // enough: what is left goes first, through the io thread.
      out_.insert(0, carry);
      direct_writing_ = false;
      direct_done_.notify_all();
      schedule_flush_locked();
      return;
    }
    carry.swap(out_);
    lock.unlock();
    ssize_t n = ::send(fd, carry.data(), carry.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) carry.erase(0, static_cast<std::size_t>(n));
  }
}

void Link::enqueue_locked(Request request, Clock::time_point now) {
  out_.append(request.command.bytes());
  inflight_.push_back(
      Pending{std::move(request.done), now + settings_.command_timeout + request.extra});
}

void Link::schedule_flush_locked() {
  if (flush_scheduled_ || writing_ || direct_writing_ || out_.empty()) return;
  flush_scheduled_ = true;
  std::uint64_t gen = generation_;
  asio::post(io_, [self = shared_from_this(), gen] {
    std::lock_guard lock(self->mutex_);
    self->flush_scheduled_ = false;
    if (gen == self->generation_) self->flush_locked();
  });
}

void Link::flush_locked() {
  if (writing_ || direct_writing_ || out_.empty()) return;
  writing_ = true;
  auto buffer = std::make_shared<std::string>();
  buffer->swap(out_);
  std::uint64_t gen = generation_;
  asio::async_write(
      socket_, asio::buffer(*buffer),
      [self = shared_from_this(), gen, buffer](const boost::system::error_code& ec, std::size_t) {
        {
          std::lock_guard lock(self->mutex_);
          if (gen != self->generation_) return;
          self->writing_ = false;
          if (!ec) {
            self->flush_locked();
            return;
          }
        }
        self->fail(Status(StatusCode::kUnavailable, "writing to Redis failed: " + ec.message()));
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
  if (redisReaderFeed(reader_.get(), read_buffer_.data(), n) != REDIS_OK) {
    fail(Status(StatusCode::kResourceExhausted, "cannot buffer the reply"));
    return;
  }
  while (true) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
      fail(Status(StatusCode::kInternal, std::string("Redis protocol error: ") + reader_->errstr));
      return;
    }
    if (raw == nullptr) break;
    ReplyPtr reply(static_cast<redisReply*>(raw));
    Pending p;
    {
      std::lock_guard lock(mutex_);
      if (!inflight_.empty()) {
        p = std::move(inflight_.front());
        inflight_.pop_front();
      }
    }
    if (!p.done) {
      fail(Status(StatusCode::kInternal, "Redis sent a reply nobody asked for"));
      return;
    }
    // Behind sentinels, a master that became a replica: find the new master.
    bool demoted = settings_.url.sentinel() && starts_with(reply.get(), "READONLY");
    p.done(Status::ok(), std::move(reply));
    if (gen != generation_) return;  // the callback closed or reset this link
    if (demoted) {
      fail(Status(StatusCode::kUnavailable, "the master became a replica; asking the sentinels"));
      return;
    }
  }
  read();
}

void Link::fail(const Status& why) {
  State s = state_;
  if (s == State::kClosed || s == State::kBackoff || s == State::kIdle) return;
  bool was_ready = s == State::kReady;
  if (log_ != nullptr && !down_logged_) {
    down_logged_ = true;
    down_since_ = std::chrono::steady_clock::now();
    retries_ = 0;
    std::string msg = (was_ready ? "lost the connection to " : "cannot connect to ") + describe() +
                      ": " + why.message();
    if (was_ready_) msg += "; reconnecting with backoff";
    if (!was_ready_ && settings_.quiet_until_ready) {
      log_->debug(msg);
    } else if (why.code() == StatusCode::kFailedPrecondition) {
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
  drop(State::kBackoff, lost, Status::ok(), why);
  if (on_down_) on_down_(why);
  if (state_ == State::kBackoff) schedule_reconnect();
}

// Leaves the connection: commands in flight get `why`; held ones get `held_status` unless it is
// OK (then they keep waiting for the next connection).
void Link::drop(State next, const Status& why, const Status& held_status, const Status& cause) {
  std::deque<Pending> inflight;
  std::deque<Held> held;
  {
    std::unique_lock lock(mutex_);
    // A thread writing directly uses the descriptor without the lock: closing it under that
    // write could let a new connection reuse the number and receive the old bytes.
    direct_done_.wait(lock, [this] { return !direct_writing_; });
    ++generation_;
    state_ = next;
    last_error_ = cause;
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (sentinel_socket_) sentinel_socket_->close(ignored);
    out_.clear();
    writing_ = false;
    inflight.swap(inflight_);
    if (!held_status.is_ok()) held.swap(held_);
  }
  resolver_.cancel();
  connect_timer_.cancel();
  reader_.reset();
  client_id_ = -1;
  handshake_left_ = 0;
  for (Pending& p : inflight) p.done(why, nullptr);
  for (Held& h : held) h.request.done(held_status, nullptr);
}

void Link::schedule_reconnect() {
  backoff_ = backoff_.count() == 0 ? settings_.reconnect_min
                                   : std::min(backoff_ * 2, settings_.reconnect_max);
  // Jitter keeps a fleet of clients from reconnecting in lockstep after a Redis restart.
  auto span = static_cast<std::uint64_t>(std::max<std::int64_t>(1, backoff_.count() / 4));
  auto delay = backoff_ + milliseconds(static_cast<std::int64_t>(jitter_() % span));
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ != State::kBackoff) return;
    ++self->retries_;
    self->connect();
  });
}

void Link::reset(const Status& why) {
  State s = state_;
  if (s == State::kReady || s == State::kConnecting || s == State::kHandshake) fail(why);
}

void Link::stop(const Status& why) {
  if (state_ == State::kClosed) return;
  retry_timer_.cancel();
  watchdog_timer_.cancel();
  drop(State::kIdle, why, why, why);
}

void Link::close() {
  if (state_ == State::kClosed) return;
  retry_timer_.cancel();
  watchdog_timer_.cancel();
  Status cancelled(StatusCode::kCancelled, "the Redis connection was closed");
  drop(State::kClosed, cancelled, cancelled, cancelled);
}

void Link::fail_held(bool expired_only) {
  std::deque<Held> expired;
  Status why;
  {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    while (!held_.empty() && (!expired_only || held_.front().deadline <= now)) {
      expired.push_back(std::move(held_.front()));
      held_.pop_front();
    }
    if (expired.empty()) return;
    std::string reason = last_error_.is_ok() ? std::string("not connected") : last_error_.message();
    why = Status(StatusCode::kUnavailable, "Redis at " + describe() + " was unreachable for " +
                                               ms_text(settings_.hold) + ": " + reason);
  }
  for (Held& h : expired) h.request.done(why, nullptr);
}

void Link::watchdog() {
  auto tick = std::clamp(settings_.command_timeout / 4, milliseconds(20), milliseconds(1000));
  if (settings_.hold.count() > 0) {
    tick = std::min(tick, std::max(settings_.hold / 4, milliseconds(5)));
  }
  watchdog_timer_.expires_after(tick);
  watchdog_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->closed() || self->idle()) return;
    bool stuck = false;
    {
      std::lock_guard lock(self->mutex_);
      State s = self->state_;
      stuck = (s == State::kReady || s == State::kHandshake) && !self->inflight_.empty() &&
              self->inflight_.front().deadline <= Clock::now();
    }
    if (stuck) {
      self->fail(Status(StatusCode::kTimeout,
                        "Redis did not answer within " + ms_text(self->settings_.command_timeout)));
    }
    self->fail_held(true);
    if (!self->closed() && !self->idle()) self->watchdog();
  });
}

}  // namespace prpc::redis::details
