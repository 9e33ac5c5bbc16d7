// The Redis broker's state, shared by the files that each do one of its jobs:
//   redis_broker.cpp  the public face, settings, the thread, connections, housekeeping, close
//   subscription.cpp  consumer-group reads, claims of idle entries, back-pressure (parking), touch
//   finishing.cpp     store, push, dead-letter and acknowledge (MULTI/EXEC, or the finish script)
//   replies.cpp       the client side: publish, the reply-stream listener, stored results
//   operations.cpp    queue_stats, dead letters, requeue, trimming served entries
//   servers.cpp       the servers' announcements (announce_server, list_servers)
//   reply_reader.cpp  every hiredis reply turned into data (pure functions)
// Everything runs on the broker's one io thread unless a member says otherwise.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cluster.hpp"
#include "connection.hpp"
#include "prpc/broker_redis/redis_broker.hpp"
#include "prpc/broker_redis/url.hpp"
#include "reply_reader.hpp"
#include "scripts.hpp"

namespace prpc::redis {

using details::Channel;
using details::Clock;
using details::ClusterLink;
using details::Command;
using details::Link;
using details::LinkSettings;
using details::ReplyFn;
using details::ReplyPtr;
using details::Request;
// The reply helpers every job uses (reply_reader.hpp).
using details::error_status;
using details::expect_ok;
using details::integer_of;
using details::is_error;
using details::is_nil;
using details::is_permission_error;
using details::starts_with;
using details::text;
using std::chrono::milliseconds;
namespace asio = boost::asio;
namespace scripts = details::scripts;

struct Settings {
  RedisUrl url;
  std::string client_name = "prpc";
  milliseconds result_ttl = std::chrono::hours(6);
  milliseconds reply_ttl = std::chrono::minutes(5);
  milliseconds connect_timeout = std::chrono::seconds(5);
  milliseconds command_timeout = std::chrono::seconds(10);
  milliseconds reconnect_min = milliseconds(100);
  milliseconds reconnect_max = std::chrono::seconds(5);
  milliseconds hold = std::chrono::seconds(5);
  milliseconds block = std::chrono::seconds(2);
  milliseconds claim_interval = milliseconds(0);  // 0: a quarter of the visibility timeout
  // Liveness: a serving broker refreshes its deadline in prpc_alive:{q} every heartbeat; live
  // servers take over the pending requests of one whose deadline passed. 0: off.
  milliseconds heartbeat_interval = std::chrono::seconds(1);
  milliseconds liveness_timeout = std::chrono::seconds(3);
  milliseconds trim_interval = std::chrono::seconds(10);
  // How long a server silent past its announcement's ttl is still listed, as stopped.
  milliseconds server_history = std::chrono::minutes(5);
  std::int64_t stream_max_len = 0;
  std::int64_t dead_letter_max_len = 10000;
  std::int64_t reply_max_len = 10000;
  std::int64_t dead_letter_max_payload = std::int64_t{16} << 20;
  std::string group = "prpc_group_consumers";
};

// Throws std::invalid_argument for a malformed option.
Settings read_settings(const sdk::Options& o);

inline std::string ms_arg(milliseconds d) { return std::to_string(d.count()); }

// The key of a delivery in the books: one subscription per instance, so flavour + id is unique.
inline std::string delivery_key(Flavour f, std::string_view id) {
  std::string k(1, f == Flavour::kRaw ? 'r' : 'p');
  k += id;
  return k;
}

class RedisBroker::Impl {
 public:
  explicit Impl(const sdk::Context& ctx);
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Closes everything and frees the instance, from any thread.
  void release();

  Status connect();

  // subscription.cpp
  Status subscribe(const SubscribeOptions& options, DeliveryHandler handler);
  void unsubscribe();
  void touch(const DeliveryView& d);

  // finishing.cpp
  void finish(const DeliveryView& d, const FinishRequest& what, DoneCallback done);

  // replies.cpp
  void publish(const PublishView& m, DoneCallback done);
  Result<std::string> open_replies_signed(std::string_view queue, PushedReplyHandler on_reply);
  void lookup_result_signed(Flavour flavour, std::string_view queue, std::string_view message_id,
                            StoredResultCallback done);

  // operations.cpp
  Result<QueueStats> queue_stats(std::string_view queue);
  Result<std::vector<DeadLetter>> dead_letters(std::string_view queue, std::size_t max_count);
  Result<std::size_t> requeue_dead_letters(std::string_view queue,
                                           std::span<const std::string> ids);

  // servers.cpp
  void announce_server(std::string_view queue, std::string_view server_id,
                       std::string_view info_json, milliseconds ttl, DoneCallback done);
  Result<std::string> list_servers(std::string_view queue);

 private:
  template <typename T>
  using Complete = std::function<void(Result<T>)>;

  struct StreamState {
    std::string name;
    Flavour flavour;
    std::string cursor;  // where the next claim scan of the pending list starts
    int shard = 0;       // of the queue's shards (url ?shards=N); 0 has the seed's name
    // The liveness hash the claims of this stream read: prpc_alive:{q}, or in a cluster
    // prpc_alive:{<the stream's hashed part>}, in the stream's slot (a script's keys share one).
    std::string liveness_key;
  };

  // Reads: one blocking XREADGROUP at a time per lane. One lane reads every stream on one
  // connection; in a cluster the streams live in different slots, so each has its own lane
  // and connection.
  struct Lane {
    std::shared_ptr<Channel> link;
    std::vector<std::size_t> streams;  // indexes into Subscription::streams
    bool reading = false;              // an XREADGROUP is in flight
    bool claiming = false;             // a claim is in flight
    bool recover = false;              // reconnected: look at this consumer's own pending entries
    Clock::time_point next_claim{};
  };

  struct Subscription {
    SubscribeOptions options;
    DeliveryHandler handler;
    std::vector<StreamState> streams;
    std::vector<Lane> lanes;
    milliseconds claim_interval{0};
    bool active = true;
    Clock::time_point next_trim{};
    Clock::time_point next_heartbeat{};
    std::shared_ptr<std::promise<void>> stopped;  // unsubscribe() waiting for the reads

    bool reading() const {
      return std::any_of(lanes.begin(), lanes.end(),
                         [](const Lane& l) { return l.reading || l.claiming; });
    }
  };

  // A delivery read but not handed over yet (back-pressure); it stays ours in Redis meanwhile.
  struct Parked {
    std::string key;
    Flavour flavour;
    std::string stream;
    std::string id;     // the entry's id
    std::string token;  // what the engine knows it by (token_of)
    std::string payload;
    std::string note;
    std::uint32_t count = 1;
    Clock::time_point since;
    std::string signature;
    std::string key_id;
  };

  // A delivery read from a stream, its views into the reply it came in.
  struct Item {
    Flavour flavour;
    const std::string* stream;
    int shard = 0;
    std::string_view id;
    std::string_view payload;
    std::uint32_t count = 1;
    std::string note;
    std::string_view signature;
    std::string_view key_id;
  };

  struct FinishOp {
    std::string key;
    std::string message_id;
    DoneCallback done;
    Status refused;  // the first command of a transaction Redis would not queue
    // Sends the finish again when the connection failed under it (every write in it may be
    // repeated); without it the request would wait for the visibility timeout to come back.
    std::function<void()> again;
    int attempts = 0;
  };

  struct ReplyStream {
    std::string queue;
    std::string key;
    std::string last_id = "0-0";
    std::string trimmed_to = "0-0";
    std::shared_ptr<PushedReplyHandler> handler;  // shared: a handler may replace itself
  };

  // ---- redis_broker.cpp: the thread, the connections, housekeeping ----
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

  LinkSettings link_settings() const;
  std::shared_ptr<Channel> make_link(std::string role);
  const std::shared_ptr<Channel>& command_link();
  void send_now(Command command, ReplyFn done);
  void give_up_connecting(const Status& why);
  void unblock(const Channel& blocked);
  void reload_scripts(const std::shared_ptr<Channel>& link);
  void schedule_tick();
  void tick();
  void close_all();

  // ---- subscription.cpp ----
  // XGROUP CREATE for the streams of `lane` (-1: all of them).
  void create_groups(const std::shared_ptr<Channel>& link, const std::shared_ptr<Subscription>& sub,
                     int lane, std::function<void(const Status&)> done);
  void start_subscription(const std::shared_ptr<Subscription>& sub);
  void stop_subscription(const std::shared_ptr<std::promise<void>>& done);
  void abandon_subscription();
  void pump();
  std::string per_stream_count(std::size_t room) const;
  void start_read(std::size_t lane, std::size_t room, milliseconds until_claim);
  void start_recover(std::size_t lane);
  void on_read(const std::weak_ptr<Subscription>& weak, std::size_t lane, const Status& s,
               ReplyPtr r, bool own_pending = false);
  void finish_stop_if_asked(const std::shared_ptr<Subscription>& sub);
  void retry_later();
  static const StreamState* find_stream(const Subscription& sub, std::string_view name);
  void collect_entries(const StreamState* st, std::vector<details::StreamEntry>& entries,
                       std::vector<Item>& items);
  void ack_orphan(const std::string& stream, std::string_view id);
  bool is_parked(const std::string& key) const;
  void hand_over(const std::shared_ptr<Subscription>& sub, std::vector<Item>& items);
  void hand_over_parked();
  void deliver(const std::shared_ptr<Subscription>& sub, const std::vector<DeliveryView>& batch);
  void start_claim(std::size_t lane, std::size_t room);
  void heartbeat(Clock::time_point now);
  void send_heartbeat(std::string_view key);
  bool liveness_on() const;
  void refuse_liveness(const std::string& why);
  void on_claimed(const std::weak_ptr<Subscription>& weak, std::size_t lane,
                  std::vector<ReplyPtr>& replies, std::size_t count);
  void send_touch(const std::string& stream, const std::string& id, std::function<void(bool)> done);
  void touch_parked(Clock::time_point now);

  // Shards (url ?shards=N): what the engine knows a delivery by is its entry id on shard 0, and
  // "<shard>:<id>" on the others.
  static std::string token_of(int shard, std::string_view id);
  struct EntryRef {
    std::string stream;
    std::string_view id;
  };
  EntryRef entry_of(Flavour flavour, std::string_view queue, std::string_view token) const;

  // ---- finishing.cpp ----
  void restore_legacy_later(std::string key, std::string payload);
  void send_transaction(const std::shared_ptr<FinishOp>& op, std::vector<Command> commands,
                        int store_at, int push_at);
  void finish_in_transaction(const std::shared_ptr<FinishOp>& op, const std::string& stream,
                             const std::string& group, std::string_view id,
                             const std::string& result_key, const std::string& legacy_key,
                             const std::string& reply_stream, std::string_view payload,
                             std::string_view signature, std::string_view key_id,
                             const std::string& result_ttl);
  void on_transaction(const std::shared_ptr<FinishOp>& op, const Status& s, const redisReply* r,
                      int store_at, int push_at);
  // In a cluster: the writes of a finish (in other slots than the request stream), and the
  // acknowledgement once they all succeeded.
  void finish_split(const std::shared_ptr<FinishOp>& op, std::vector<Command> writes, int push_at,
                    Command ack);
  void on_finished(const std::shared_ptr<FinishOp>& op, const Status& s, const redisReply* r);
  void complete(const std::shared_ptr<FinishOp>& op, const Status& s);
  void put_note(const std::string& key, std::string note);
  std::string take_note(const std::string& key);

  // ---- replies.cpp ----
  void get_stored(const std::string& key, std::string fallback, StoredResultCallback done);
  void listen_next();
  void on_replies(const Status& s, ReplyPtr r);
  void trim_replies();

  // ---- operations.cpp ----
  void trim_streams(Clock::time_point now);

  sdk::Logger log_;
  const Settings settings_;
  const std::string client_id_;

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;

  // Everything below belongs to the broker's thread.
  std::atomic<bool> closed_{false};           // read by finish() and publish() on any thread
  std::atomic<std::uint32_t> next_shard_{0};  // publish()'s round robin
  std::shared_ptr<Channel> cmd_;
  std::shared_ptr<Channel> read_;
  std::shared_ptr<Channel> listen_;
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
  bool liveness_refused_ = false;           // the ACL forbids the liveness scripts' commands
  std::unordered_set<std::string> handed_;  // handed over, finish not completed
  std::deque<Parked> parked_;

  std::vector<ReplyStream> replies_;
  bool listening_ = false;

  std::mutex notes_mutex_;  // notes are written here and read by finish() on any thread
  std::unordered_map<std::string, std::string> notes_;
};

}  // namespace prpc::redis
