// Shared helpers of the Redis broker tests: brokers made straight from the static library (no
// dlopen), a delivery collector, and small synchronous wrappers around the async calls.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "log_capture.hpp"
#include "prpc/broker_redis/redis_broker.hpp"
#include "prpc/log.hpp"
#include "prpc/protocol.hpp"
#include "prpc/uuid.hpp"
#include "redis_server.hpp"

namespace prpc::redis::testing {

using namespace std::chrono_literals;
using prpc::testing::RedisClient;
using prpc::testing::RedisServer;
using prpc::testing::RedisServerOptions;
using prpc::testing::wait_until;

using OptionMap = std::map<std::string, std::string, std::less<>>;

inline std::unique_ptr<RedisBroker> make_broker(const std::string& url, OptionMap extra = {}) {
  OptionMap options{{"url", url}, {"reconnect_min", "20"}, {"reconnect_max", "200"}};
  for (auto& [k, v] : extra) options[k] = v;
  sdk::Context ctx{sdk::Logger(prpc::log::host_services(), "redis"), sdk::Options(options)};
  return std::make_unique<RedisBroker>(ctx);
}

inline std::string unique_queue(const std::string& prefix = "q") {
  return prefix + "_" + new_uuid().substr(0, 8);
}

// Collects deliveries handed to a subscription; tests wait on it with a bound.
class Collector {
 public:
  DeliveryHandler handler() {
    return [this](std::span<const DeliveryView> items) {
      std::lock_guard lock(mutex_);
      for (const DeliveryView& d : items) {
        all_.emplace_back(d);
        ++unfinished_;
        max_unfinished_ = std::max(max_unfinished_, unfinished_);
      }
      cv_.notify_all();
    };
  }

  // Waits until at least n deliveries arrived; returns them all.
  std::vector<Delivery> wait_for(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return all_.size() >= n; });
    return all_;
  }
  std::vector<Delivery> snapshot() {
    std::lock_guard lock(mutex_);
    return all_;
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return all_.size();
  }
  void finished_one() {
    std::lock_guard lock(mutex_);
    --unfinished_;
  }
  std::size_t max_unfinished() {
    std::lock_guard lock(mutex_);
    return max_unfinished_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Delivery> all_;
  std::size_t unfinished_ = 0;
  std::size_t max_unfinished_ = 0;
};

inline Status publish_sync(Broker& b, Flavour f, const std::string& queue,
                           const std::string& payload, const std::string& id = new_uuid()) {
  std::promise<Status> p;
  auto fut = p.get_future();
  b.publish(PublishView{f, queue, id, payload}, [&p](const Status& s) { p.set_value(s); });
  if (fut.wait_for(30s) != std::future_status::ready) {
    return Status(StatusCode::kTimeout, "publish never completed");
  }
  return fut.get();
}

inline Status finish_sync(Broker& b, const Delivery& d, const ReplyView* reply,
                          const std::string& dead_reason = {}) {
  std::promise<Status> p;
  auto fut = p.get_future();
  FinishRequest req;
  req.reply = reply;
  req.dead_letter_reason = dead_reason;
  b.finish(d.view(), req, [&p](const Status& s) { p.set_value(s); });
  if (fut.wait_for(30s) != std::future_status::ready) {
    return Status(StatusCode::kTimeout, "finish never completed");
  }
  return fut.get();
}

inline Result<std::optional<std::string>> lookup_sync(Broker& b, Flavour f,
                                                      const std::string& queue,
                                                      const std::string& id) {
  std::promise<Result<std::optional<std::string>>> p;
  auto fut = p.get_future();
  b.lookup_result(f, queue, id,
                  [&p](Result<std::optional<std::string>> r) { p.set_value(std::move(r)); });
  if (fut.wait_for(30s) != std::future_status::ready) {
    return Status(StatusCode::kTimeout, "lookup never completed");
  }
  return fut.get();
}

inline SubscribeOptions sub_options(const std::string& queue, const std::string& consumer,
                                    std::chrono::milliseconds visibility = 30s,
                                    std::uint32_t max_outstanding = 64) {
  SubscribeOptions o;
  o.queue = queue;
  o.consumer = consumer;
  o.visibility_timeout = visibility;
  o.max_outstanding = max_outstanding;
  return o;
}

// Pending entries of the group on a stream (XPENDING summary count).
inline long long pending_count(RedisClient& c, const std::string& stream,
                               const std::string& group = "prpc_group_consumers") {
  auto r = c.command({"XPENDING", stream, group});
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) return -1;
  return r->element[0]->integer;
}

using ::prpc::testing::LogCapture;

// A minimal server on the broker API alone: every delivery is finished from a worker thread with
// a reply whose message_id is the request payload and whose payload is "echo:" + payload.
class EchoServer {
 public:
  EchoServer(const std::string& url, const std::string& queue, const std::string& consumer,
             std::string reply_to, std::chrono::milliseconds visibility = 30s,
             OptionMap options = {})
      : broker_(make_broker(url, std::move(options))),
        queue_(queue),
        reply_to_(std::move(reply_to)) {
    worker_ = std::thread([this] { work(); });
    Status s = broker_->subscribe(sub_options(queue, consumer, visibility), [this](auto items) {
      std::lock_guard lock(mutex_);
      for (const DeliveryView& d : items) todo_.emplace_back(d);
      cv_.notify_all();
    });
    if (!s.is_ok()) {
      stop();
      throw std::runtime_error("subscribe failed: " + s.to_string());
    }
  }
  ~EchoServer() { stop(); }

  Broker& broker() { return *broker_; }
  std::size_t handled() {
    std::lock_guard lock(mutex_);
    return handled_.size();
  }
  // How often each payload was handled.
  std::map<std::string, int> counts() {
    std::lock_guard lock(mutex_);
    std::map<std::string, int> out;
    for (const auto& p : handled_) ++out[p];
    return out;
  }
  std::size_t failed_finishes() { return failed_finishes_.load(); }

  void stop() {
    if (stopped_.exchange(true)) return;
    broker_->unsubscribe();
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

 private:
  void work() {
    while (true) {
      Delivery d;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return quit_ || !todo_.empty(); });
        if (todo_.empty()) return;
        d = std::move(todo_.front());
        todo_.pop_front();
        handled_.push_back(d.payload);
      }
      std::string payload = "echo:" + d.payload;
      ReplyView reply{d.flavour, queue_, d.payload, reply_to_, payload, false};
      FinishRequest req;
      req.reply = &reply;
      auto done = std::make_shared<std::promise<Status>>();
      auto fut = done->get_future();
      broker_->finish(d.view(), req, [done](const Status& s) { done->set_value(s); });
      if (fut.wait_for(60s) != std::future_status::ready || !fut.get().is_ok()) {
        ++failed_finishes_;
      }
    }
  }

  std::unique_ptr<RedisBroker> broker_;
  std::string queue_;
  std::string reply_to_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Delivery> todo_;
  std::vector<std::string> handled_;
  bool quit_ = false;
  std::atomic<bool> stopped_{false};
  std::atomic<std::size_t> failed_finishes_{0};
  std::thread worker_;
};

// Replies pushed to one client, counted per message_id.
class ReplyLog {
 public:
  ReplyHandler handler() {
    return [this](std::string_view id, std::string_view payload) {
      std::lock_guard lock(mutex_);
      ++counts_[std::string(id)];
      last_payload_[std::string(id)] = std::string(payload);
      cv_.notify_all();
    };
  }
  bool wait_for_ids(const std::vector<std::string>& ids, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const auto& id : ids) {
        if (counts_.count(id) == 0) return false;
      }
      return true;
    });
  }
  bool has(const std::string& id) {
    std::lock_guard lock(mutex_);
    return counts_.count(id) != 0;
  }
  int count(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(id);
    return it == counts_.end() ? 0 : it->second;
  }
  std::string payload(const std::string& id) {
    std::lock_guard lock(mutex_);
    return last_payload_[id];
  }
  std::size_t distinct() {
    std::lock_guard lock(mutex_);
    return counts_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, int> counts_;
  std::map<std::string, std::string> last_payload_;
};

}  // namespace prpc::redis::testing
