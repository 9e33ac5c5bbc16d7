// The Kafka broker's state, shared by the files that each do one of its jobs:
//   client.cpp        librdkafka configuration, the producer and its thread, shutdown
//   admin.cpp         topics, metadata, watermarks
//   replies.cpp       the client side: publish, and the listener on this client's partition
//   subscription.cpp  the consumer group: rebalances, fetching, back-pressure, hand-overs, commits
//   results.cpp       finish (store, push, dead-letter, commit), result lookups and topic scans,
//                     queue_stats and dead letters
//   servers.cpp       the servers' announcements and the list of them
//   kafka_broker.cpp  the public face
//   wire_format.cpp   what goes into records and commits, and is read back (pure functions)
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kafka_broker.hpp"
#include "kafka_handles.hpp"
#include "offset_ledger.hpp"
#include "wire_format.hpp"

namespace prpc::kafka {

using Clock = std::chrono::steady_clock;

// The cluster being unreachable, as every handle of one broker instance sees it: reported once at
// WARNING when it starts, counted quietly while it lasts, and once at INFO with a summary when a
// metadata request is answered again (client.cpp).
class Outage {
 public:
  // A connection-level failure (a broker down, refused, unresolvable). Returns whether it began
  // an outage (the caller logs it at WARNING; the rest of the outage goes to DEBUG).
  bool failed();
  bool down() const { return down_.load(std::memory_order_relaxed); }
  // A request was answered: the end of the outage, if there was one; returns its summary.
  std::optional<std::string> recovered();

 private:
  std::atomic<bool> down_{false};
  std::mutex mutex_;
  Clock::time_point since_{};
  std::uint64_t failures_ = 0;
};

// What every handle's opaque points to: its log, and for the group consumer its subscription.
struct HandleContext {
  const sdk::Logger* log = nullptr;
  Outage* outage = nullptr;  // the broker instance's
  void* subscription = nullptr;
  // The producer's last reported error that names a cause (error_callback in client.cpp), which
  // explains a failed connect better than the metadata request's own error.
  std::mutex error_mutex;
  std::string last_error;
};

// Offset commits that failed, to the log of the handle's context (client.cpp).
void commit_callback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t* offsets, void* opaque);

// Results this process produced, for redeliveries that land here again: bounded, oldest out first.
class ResultCache {
 public:
  explicit ResultCache(std::size_t capacity) : capacity_(capacity) {}

  void put(const std::string& key, StoredResult result);
  std::optional<StoredResult> get(const std::string& key);

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::pair<std::string, StoredResult>> order_;
  std::unordered_map<std::string, std::list<std::pair<std::string, StoredResult>>::iterator> index_;
};

// The commit state of one assigned partition, for one assignment (a reassignment is a new one).
struct PartitionState {
  std::string topic;
  std::int32_t partition = 0;
  Flavour flavour = Flavour::kPython;
  std::string queue;
  std::uint64_t epoch = 0;
  bool revoked = false;
  bool dirty = false;
  OffsetLedger ledger;
  FetchCursor cursor;  // consumer thread only (under states_mutex_ with the ledger)
  // For trace_offsets: where the fetch and the hand-overs of this assignment got to.
  std::int64_t last_fetched = -1;
  std::int64_t last_handed = -1;

  std::string where() const {
    return topic + "[" + std::to_string(partition) + "]e" + std::to_string(epoch);
  }

  PartitionState(std::int64_t committed, DeliveryCounts inherited, std::int64_t suspect_end)
      : ledger(committed, std::move(inherited), suspect_end), cursor(committed) {}
};
using StatePtr = std::shared_ptr<PartitionState>;

// A record fetched but not (or no longer) handed over.
struct Held {
  StatePtr state;
  std::int64_t offset = 0;
  std::int64_t timestamp = 0;
  std::string key;
  std::string payload;
  std::string signature;  // the prpc-signature and prpc-key-id headers ("" when unsigned)
  std::string key_id;
  bool retry = false;  // its earlier delivery's finish failed
};

class KafkaBroker::Impl : public std::enable_shared_from_this<KafkaBroker::Impl> {
 public:
  Impl(Settings settings, sdk::Logger log);
  ~Impl() { shutdown(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // ---- client.cpp ----
  void shutdown();
  Status connect();
  Status require_connected();
  // Whether the caller runs on one of this broker's threads (a callback that dropped the last
  // reference to the broker): such a thread cannot join itself.
  bool on_own_thread();

  // ---- replies.cpp ----
  void publish(const PublishView& m, DoneCallback done);
  Result<std::string> open_replies_signed(std::string_view queue, PushedReplyHandler on_reply);

  // ---- subscription.cpp ----
  Status subscribe(const SubscribeOptions& options, DeliveryHandler handler);
  void unsubscribe();

  // ---- results.cpp ----
  void finish(const DeliveryView& d, const FinishRequest& what, DoneCallback done);
  void lookup_result_signed(Flavour flavour, std::string_view queue, std::string_view message_id,
                            StoredResultCallback done);
  Result<QueueStats> queue_stats(std::string_view queue);
  Result<std::vector<DeadLetter>> dead_letters(std::string_view queue, std::size_t max_count);

  // ---- servers.cpp ----
  void announce_server(std::string_view queue, std::string_view server_id,
                       std::string_view info_json, std::chrono::milliseconds ttl,
                       DoneCallback done);
  Result<std::string> list_servers(std::string_view queue);

 private:
  using Headers = std::vector<std::pair<std::string, std::string>>;
  struct ProduceWaiter {
    ProduceWaiter(std::function<void(rd_kafka_resp_err_t)> d, bool t,
                  std::atomic<std::uint32_t>* count)
        : done(std::move(d)), traced(t), unacknowledged(count) {
      unacknowledged->fetch_add(1);
    }
    ~ProduceWaiter() { unacknowledged->fetch_sub(1); }
    ProduceWaiter(const ProduceWaiter&) = delete;
    ProduceWaiter& operator=(const ProduceWaiter&) = delete;
    std::function<void(rd_kafka_resp_err_t)> done;
    bool traced = false;  // trace_offsets: log where the record went
    int resends = 0;      // after deliveries reported without an offset (on_delivery_report)
    std::atomic<std::uint32_t>* unacknowledged;  // the broker's count of records awaiting a report
  };
  static constexpr int kMaxResends = 3;
  struct ReplyListener {
    std::string address;
    KafkaPtr consumer;
    std::thread thread;
    std::atomic<bool> stop{false};
    std::mutex handler_mutex;
    std::shared_ptr<PushedReplyHandler> handler;
  };

  struct Subscription {
    // The handle goes first: its callbacks point into the members below.
    ~Subscription() { consumer.reset(); }
    Impl* impl = nullptr;
    HandleContext context;
    std::uint64_t id = 0;
    SubscribeOptions options;
    DeliveryHandler handler;
    KafkaPtr consumer;
    std::thread thread;
    std::atomic<bool> stop{false};      // leave now
    std::atomic<bool> draining{false};  // no more hand-overs; leave when nothing is outstanding
    std::mutex handler_mutex;           // held while the handler runs
    std::atomic<std::uint32_t> outstanding{0};
    bool paused = false;    // consumer thread only
    std::deque<Held> held;  // consumer thread only
    std::mutex retry_mutex;
    std::deque<Held> retries;  // finishes that failed, to hand over again
    std::string python_topic;
    std::string raw_topic;
    // Record timestamps of redelivered records by key, where lookups start scanning.
    std::mutex stamps_mutex;
    std::unordered_map<std::string, std::int64_t> stamps;
  };

  // The end of one finish(): all its records were produced (or not).
  struct FinishJob {
    Impl* impl = nullptr;  // shutdown() runs every pending delivery report before Impl goes
    std::shared_ptr<Subscription> sub;
    DeliveryToken token;
    Flavour flavour = Flavour::kPython;
    std::string queue;
    std::string key;
    std::string payload;    // the request, for a local redelivery if this finish fails
    std::string signature;  // and its signature, so the redelivery is checked as it was sent
    std::string key_id;
    std::string cache_key;  // where the result goes in the cache once it is stored
    StoredResult result;
    DoneCallback done;
    std::mutex mutex;
    int remaining = 0;
    rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
  };

  struct LookupJob {
    Flavour flavour;
    std::string queue;
    std::string id;
    std::int64_t from_ms;
    StoredResultCallback done;
  };

  // The newest announcement of one server, as read from the queue's servers topic.
  struct Announcement {
    std::string info_json;
    std::int64_t stamp_ms = 0;  // the record's timestamp (the cluster's append time)
    std::int64_t ttl_ms = 0;
  };
  // What this process has read of one queue's servers topic so far.
  struct ServersView {
    std::map<std::int32_t, std::int64_t> next;  // partition -> the next offset to read
    std::map<std::string, Announcement> servers;
  };

  // trace_offsets: one line per event in a record's life on this server.
  bool tracing() const { return settings_.trace_offsets; }

  // ---- client.cpp ----
  Result<ConfPtr> make_conf(bool producer, const std::map<std::string, std::string>& fixed);
  std::map<std::string, std::string> standalone() const;
  Result<KafkaPtr> make_consumer(const std::map<std::string, std::string>& fixed,
                                 void (*rebalance)(rd_kafka_t*, rd_kafka_resp_err_t,
                                                   rd_kafka_topic_partition_list_t*,
                                                   void*) = nullptr,
                                 HandleContext* context = nullptr);
  static void on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* m, void*);
  static rd_kafka_resp_err_t resend(rd_kafka_t* rk, const rd_kafka_message_t* m,
                                    ProduceWaiter* waiter);
  void producer_loop();
  // Produces one record; `done` runs once with the delivery report's error.
  void produce(const std::string& topic, std::int32_t partition, std::string_view key,
               std::string_view value, const Headers& headers,
               std::function<void(rd_kafka_resp_err_t)> done, bool traced = false,
               bool batched = false);

  // ---- admin.cpp ----
  Status ensure_topics(std::string_view queue);
  // Creates the missing ones with `partitions` (0: the configured count) and topic `config`.
  Status create_topics(const std::vector<std::string>& wanted, std::int32_t partitions = 0,
                       const std::map<std::string, std::string>& config = {});
  Result<std::int32_t> partition_count(rd_kafka_t* rk, const std::string& topic,
                                       bool auto_create = false) const;
  rd_kafka_resp_err_t watermarks(rd_kafka_t* rk, const char* topic, std::int32_t partition,
                                 std::int64_t* low, std::int64_t* high) const;

  // ---- servers.cpp ----
  Status ensure_servers_topic(const std::string& topic);
  void produce_announcement(const std::string& topic, const std::string& server_id,
                            const std::string& info, std::int64_t ttl_ms, DoneCallback done);
  Status read_announcements(const std::string& topic, ServersView& view);

  // ---- subscription.cpp ----
  void trace(const Subscription* sub, const std::string& what) const;
  std::shared_ptr<Subscription> subscription();
  void close_subscription();
  static std::string state_key(const char* topic, std::int32_t partition);
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque);
  void assign(Subscription* sub, rd_kafka_topic_partition_list_t* parts);
  void revoke(Subscription* sub, rd_kafka_topic_partition_list_t* parts);
  void commit_locked(Subscription* sub, const std::vector<StatePtr>& states, bool async,
                     bool only_dirty);
  void flush_commits();
  void consume_loop(Subscription* sub);
  void hold(Subscription* sub, const rd_kafka_message_t* m);
  bool seek_back(Subscription* sub, const PartitionState& state, std::int64_t offset);
  void hand_over(Subscription* sub);

  // ---- results.cpp ----
  void complete(const std::shared_ptr<FinishJob>& job, rd_kafka_resp_err_t err, bool commit_now);
  bool lookup_stopped();
  void lookup_loop();
  // Runs `task` on the lookup thread after the lookups queued before it; with true (and at once
  // when the broker is shutting down) if it should only report that it was cancelled.
  void in_background(std::function<void(bool cancelled)> task);
  Status scan(const std::string& topic, std::int64_t from_ms,
              const std::function<bool(const rd_kafka_message_t*)>& visit);

  Settings settings_;
  sdk::Logger log_;
  Outage outage_;
  HandleContext log_context_;
  ResultCache cache_;

  std::mutex connect_mutex_;
  KafkaPtr producer_;
  std::thread producer_thread_;
  // Settings::eager_produce: the producer without linger, its poll thread, and the records of
  // both producers that await their delivery report (none: the next one goes eagerly).
  KafkaPtr eager_;
  std::thread eager_thread_;
  std::atomic<std::uint32_t> unacknowledged_{0};
  // Whether the eager producer may take a record for `topic`: not the first one, which goes
  // through the other producer while this one learns the topic's partitions (a record would
  // otherwise wait for that metadata).
  bool eager_knows(const std::string& topic);
  std::mutex eager_mutex_;
  std::map<std::string, TopicPtr, std::less<>> eager_topics_;
  std::atomic<bool> running_{false};

  std::mutex topics_mutex_;
  std::set<std::string> ensured_;

  std::mutex replies_mutex_;
  std::map<std::string, std::unique_ptr<ReplyListener>> listeners_;

  std::mutex sub_mutex_;
  std::shared_ptr<Subscription> sub_;
  std::atomic<std::uint64_t> next_subscription_{0};

  std::mutex states_mutex_;
  std::unordered_map<std::string, StatePtr> states_;
  std::unordered_map<std::uint64_t, StatePtr> epochs_;
  std::atomic<std::uint64_t> next_epoch_{0};
  bool any_dirty_ = false;

  std::mutex lookup_mutex_;
  std::condition_variable lookup_cv_;
  std::deque<LookupJob> lookups_;
  std::deque<std::function<void(bool)>> tasks_;  // other work for the lookup thread
  std::thread lookup_thread_;
  bool lookup_stop_ = false;

  std::mutex scan_mutex_;
  KafkaPtr scanner_;

  std::set<std::string> servers_topics_;  // created or found (under topics_mutex_)
  std::mutex servers_mutex_;
  KafkaPtr servers_reader_;  // list_servers() reads incrementally with it, one call at a time
  std::map<std::string, ServersView> servers_views_;  // by topic
};

}  // namespace prpc::kafka
