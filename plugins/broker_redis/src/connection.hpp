// One Redis connection driven by an Asio io_context: connect (TCP or unix socket) with a timeout,
// log in (AUTH, SELECT, SCRIPT LOAD), pipeline commands, match replies to callbacks in order, and
// reconnect with backoff when the connection drops.
//
// Why not hiredis' async API: Asio owns the socket here, so connect and DNS are asynchronous with
// our own timeouts, writes use send(MSG_NOSIGNAL) (hiredis' write() would raise SIGPIPE in the
// host process when Redis goes away), a large payload is written from one buffer instead of being
// shifted down after every partial write, and a command can be written straight from the calling
// thread when the connection is idle (no hop to the io thread on the hot path). hiredis still
// does the protocol work: commands are formatted from argv (binary-safe, never a printf format)
// and replies are parsed by its redisReader.
//
// send() may be called from any thread. Everything else, and every callback, runs on the
// io_context's single thread.
#pragma once

#include <hiredis/hiredis.h>

#include <array>
#include <atomic>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/broker_redis/url.hpp"
#include "prpc/sdk/plugin.hpp"
#include "prpc/status.hpp"
#include "reply_reader.hpp"

namespace prpc::redis::details {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Owns hiredis' protocol parser of one connection.
struct ReaderDeleter {
  void operator()(redisReader* r) const noexcept {
    if (r != nullptr) redisReaderFree(r);
  }
};
using ReaderPtr = std::unique_ptr<redisReader, ReaderDeleter>;

// A command in RESP form, formatted by hiredis from an argument vector, and the cluster slot of
// its first key (-1: it has none). Copies share the bytes: a cluster link resends a command
// after a redirection.
class Command {
 public:
  Command() = default;
  static Command make(std::initializer_list<std::string_view> args);
  static Command make(const std::vector<std::string_view>& args);

  bool empty() const noexcept { return bytes_ == nullptr; }
  std::string_view bytes() const noexcept {
    return bytes_ ? std::string_view(bytes_.get(), size_) : std::string_view();
  }
  int slot() const noexcept { return slot_; }

 private:
  struct Free {
    void operator()(char* p) const noexcept { redisFreeSdsCommand(p); }
  };
  std::shared_ptr<char> bytes_;
  std::size_t size_ = 0;
  int slot_ = -1;
};

// Called exactly once per command, on the io thread. status is OK when Redis answered (the reply
// may still be an error reply); otherwise reply is null and status says why no answer came.
using ReplyFn = std::function<void(const Status& status, ReplyPtr reply)>;

struct Request {
  Command command;
  ReplyFn done;
  milliseconds extra{0};  // extends the reply deadline, for blocking commands
};

struct LinkSettings {
  RedisUrl url;
  std::string client_name = "prpc";
  milliseconds connect_timeout{5000};
  milliseconds command_timeout{10000};
  milliseconds reconnect_min{100};
  milliseconds reconnect_max{5000};
  // How long a command issued while the link is down waits for it to come back.
  milliseconds hold{5000};
  // Lua scripts loaded (SCRIPT LOAD) during every login, before any other command, so that
  // EVALSHA works after a Redis restart too.
  std::vector<std::string> scripts;
  // Failures before the first login are logged at debug level only: the owner reports them
  // (connect() returns them as its one-line error).
  bool quiet_until_ready = false;
};

// What the broker needs of its connection to Redis: one server (Link) or a Redis Cluster
// (ClusterLink, cluster.hpp), which routes each command to the node that owns its key.
class Channel {
 public:
  Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  virtual ~Channel() = default;

  // Starts connecting; reconnects by itself until stop() or close().
  virtual void start() = 0;
  // Back to idle: fails every command not yet answered with `why`; start() again later.
  virtual void stop(const Status& why) = 0;
  // Fails every command not yet answered with kCancelled and stops for good.
  virtual void close() = 0;
  // Drops the current connection(s) (as if they failed) and reconnects.
  virtual void reset(const Status& why) = 0;

  // Any thread. Commands of one batch leave in one write (per node), in order.
  void send(Command command, ReplyFn done, milliseconds extra = milliseconds(0)) {
    std::vector<Request> batch;
    batch.push_back(Request{std::move(command), std::move(done), extra});
    send_batch(std::move(batch));
  }
  virtual void send_batch(std::vector<Request> batch) = 0;
  // Sends a command to the node named by node() of another channel of the same Redis (CLIENT
  // UNBLOCK must reach the server where the blocked client waits); a Link has one node.
  virtual void send_to_node(const std::string& node, Command command, ReplyFn done) = 0;

  virtual bool ready() const noexcept = 0;
  virtual bool idle() const noexcept = 0;
  virtual bool closed() const noexcept = 0;
  // CLIENT ID of the connection the last keyed command went to, or -1.
  virtual std::int64_t client_id() const noexcept = 0;
  // host:port of that connection ("" for a Link: it has one).
  virtual std::string node() const { return {}; }
  // The reason of the last failure (io thread).
  virtual const Status& last_error() const noexcept = 0;

  // Called on the io thread after every successful login (the first and each reconnect).
  void on_ready(std::function<void()> fn) { on_ready_ = std::move(fn); }
  // Called on the io thread when a connection attempt or an established connection fails.
  void on_down(std::function<void(const Status&)> fn) { on_down_ = std::move(fn); }

 protected:
  std::function<void()> on_ready_;
  std::function<void(const Status&)> on_down_;
};

class Link : public Channel, public std::enable_shared_from_this<Link> {
 public:
  Link(asio::io_context& io, LinkSettings settings, const sdk::Logger* log, std::string role);
  ~Link() override;

  void start() override;
  void stop(const Status& why) override;
  void close() override;
  void reset(const Status& why) override;
  void send_batch(std::vector<Request> batch) override;
  void send_to_node(const std::string& node, Command command, ReplyFn done) override;

  bool ready() const noexcept override { return state_.load() == State::kReady; }
  bool idle() const noexcept override { return state_.load() == State::kIdle; }
  bool closed() const noexcept override { return state_.load() == State::kClosed; }
  std::int64_t client_id() const noexcept override { return client_id_.load(); }
  const Status& last_error() const noexcept override { return last_error_; }

  // The commands waiting for the connection to come back (a cluster link routes them to
  // another node after a failover).
  std::vector<Request> take_held();

 private:
  enum class State { kIdle, kConnecting, kHandshake, kReady, kBackoff, kClosed };
  struct Pending {
    ReplyFn done;
    Clock::time_point deadline;
  };
  struct Held {
    Request request;
    Clock::time_point deadline;
  };

  void connect();
  void resolve_and_connect(const std::string& host, std::uint16_t port);
  // Sentinel mode: asks the sentinels in turn for the master's address, then connects there.
  void ask_sentinel(std::size_t index, Status last);
  void read_sentinel(std::size_t index, std::uint64_t gen);
  void connect_next(std::shared_ptr<std::vector<asio::generic::stream_protocol::endpoint>> eps,
                    std::size_t index, Status last);
  void connected();
  void handshake_reply(const Status& s, ReplyPtr reply, bool required, std::string_view step);
  void become_ready();
  // The *_locked helpers expect mutex_ held.
  void enqueue_locked(Request request, Clock::time_point now);
  void schedule_flush_locked();
  void flush_locked();
  void read();
  void on_read(std::size_t n);
  void fail(const Status& why);
  void drop(State next, const Status& why, const Status& held_status, const Status& cause);
  void schedule_reconnect();
  void watchdog();
  void fail_held(bool expired_only);
  void fail_later(ReplyFn done, const Status& why, bool on_io_thread);
  std::string describe() const;
  Status unavailable_locked() const;

  asio::io_context& io_;
  const LinkSettings settings_;
  const sdk::Logger* log_;
  const std::string role_;

  // Guards the write side, the queues and the state, which send() touches from any thread.
  std::mutex mutex_;
  std::atomic<State> state_{State::kIdle};
  std::uint64_t generation_ = 0;  // bumped on every disconnect; stale handlers compare it
  asio::generic::stream_protocol::socket socket_;
  std::string out_;  // bytes waiting for the write in progress to finish
  bool writing_ = false;
  bool flush_scheduled_ = false;
  // A caller thread is writing without the lock (send_batch); the socket stays open until
  // it is done, and bytes queued meanwhile wait for it (direct_done_ says when).
  bool direct_writing_ = false;
  std::condition_variable direct_done_;
  std::deque<Pending> inflight_;
  std::deque<Held> held_;
  Status last_error_;

  // The io thread's own.
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer connect_timer_;
  asio::steady_timer retry_timer_;
  asio::steady_timer watchdog_timer_;
  ReaderPtr reader_;
  std::vector<char> read_buffer_;
  // Sentinel mode: the query in progress, and the master it named last.
  std::shared_ptr<asio::ip::tcp::socket> sentinel_socket_;
  ReaderPtr sentinel_reader_;
  std::string sentinel_query_;
  std::array<char, 1024> sentinel_buffer_{};
  std::string master_host_;
  std::uint16_t master_port_ = 0;
  int handshake_left_ = 0;
  Status handshake_error_;
  std::atomic<std::int64_t> client_id_{-1};
  milliseconds backoff_{0};
  bool was_ready_ = false;    // connected at least once
  bool down_logged_ = false;  // one warning per outage, not one per retry
  // The outage being logged: when it began and how many reconnects it took, for the summary
  // line on recovery.
  std::chrono::steady_clock::time_point down_since_{};
  std::uint32_t retries_ = 0;
  std::minstd_rand jitter_;
};

}  // namespace prpc::redis::details
