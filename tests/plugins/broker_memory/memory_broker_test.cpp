// The in-process broker's contract, tested on the class directly.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "memory_broker.hpp"
#include "process.hpp"
#include "prpc/uuid.hpp"

namespace prpc::memory {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

class Collector {
 public:
  DeliveryHandler handler() {
    return [this](std::span<const DeliveryView> items) {
      std::lock_guard lock(mutex_);
      for (const auto& d : items) got_.emplace_back(d);
    };
  }
  std::vector<Delivery> take() {
    std::lock_guard lock(mutex_);
    std::vector<Delivery> out;
    out.swap(got_);
    return out;
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return got_.size();
  }

 private:
  std::mutex mutex_;
  std::vector<Delivery> got_;
};

class MemoryBrokerTest : public ::testing::Test {
 protected:
  std::unique_ptr<MemoryBroker> make(std::chrono::milliseconds ttl = 6h) {
    Settings s;
    s.bus = bus_;
    s.result_ttl = ttl;
    s.max_dead_letters = 3;
    s.max_queue_length = 100;
    return std::make_unique<MemoryBroker>(s);
  }
  SubscribeOptions sub(const std::string& consumer, std::uint32_t max = 64,
                       std::chrono::milliseconds vis = 30s) {
    SubscribeOptions o;
    o.queue = "q";
    o.consumer = consumer;
    o.max_outstanding = max;
    o.visibility_timeout = vis;
    return o;
  }
  static void publish(Broker& b, const std::string& payload, Flavour f = Flavour::kPython) {
    std::promise<Status> p;
    b.publish(PublishView{f, "q", "", payload}, [&](const Status& s) { p.set_value(s); });
    ASSERT_TRUE(p.get_future().get().is_ok());
  }
  static Status finish(Broker& b, const Delivery& d, const ReplyView* reply = nullptr,
                       std::string_view reason = {}) {
    std::promise<Status> p;
    b.finish(d.view(), FinishRequest{reply, reason}, [&](const Status& s) { p.set_value(s); });
    return p.get_future().get();
  }
  std::string bus_ = "unit-" + new_uuid();
};

TEST_F(MemoryBrokerTest, DeliversInOrderAndAcks) {
  auto b = make();
  publish(*b, "one");
  publish(*b, "two", Flavour::kRaw);  // sent before anyone subscribed: still served
  Collector c;
  ASSERT_TRUE(b->subscribe(sub("c1"), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 2; }, 5s));
  auto got = c.take();
  EXPECT_EQ(got[0].payload, "one");
  EXPECT_EQ(got[0].flavour, Flavour::kPython);
  EXPECT_EQ(got[1].payload, "two");
  EXPECT_EQ(got[1].flavour, Flavour::kRaw);
  EXPECT_EQ(got[0].delivery_count, 1u);
  EXPECT_EQ(b->queue_stats("q")->pending, 2);
  for (const auto& d : got) EXPECT_TRUE(finish(*b, d).is_ok());
  QueueStats s = *b->queue_stats("q");
  EXPECT_EQ(s.pending, 0);
  EXPECT_EQ(s.length, 0);
}

TEST_F(MemoryBrokerTest, HonoursMaxOutstanding) {
  auto b = make();
  for (int i = 0; i < 5; ++i) publish(*b, std::to_string(i));
  Collector c;
  ASSERT_TRUE(b->subscribe(sub("c1", 2), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 2; }, 5s));
  std::this_thread::sleep_for(50ms);  // give it the chance to overdeliver
  auto first = c.take();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(b->queue_stats("q")->length, 3);
  ASSERT_TRUE(finish(*b, first[0]).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 1; }, 5s));
  EXPECT_EQ(c.take()[0].payload, "2");
}

TEST_F(MemoryBrokerTest, UnacknowledgedDeliveriesAreClaimedAfterTheVisibilityTimeout) {
  publish(*make(), "work");
  {
    auto crashing = make();
    Collector c;
    ASSERT_TRUE(crashing->subscribe(sub("crashing"), c.handler()).is_ok());
    ASSERT_TRUE(wait_until([&] { return c.size() == 1; }, 5s));
  }
  auto b = make();
  Collector c;
  ASSERT_TRUE(b->subscribe(sub("survivor", 64, 50ms), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 1; }, 5s));
  auto got = c.take();
  EXPECT_EQ(got[0].payload, "work");
  EXPECT_EQ(got[0].delivery_count, 2u);
  EXPECT_TRUE(finish(*b, got[0]).is_ok());
  EXPECT_EQ(b->queue_stats("q")->pending, 0);
}

TEST_F(MemoryBrokerTest, TouchKeepsALongCallFromBeingClaimed) {
  auto owner = make();
  publish(*owner, "long");
  Collector mine;
  ASSERT_TRUE(owner->subscribe(sub("owner", 64, 100ms), mine.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return mine.size() == 1; }, 5s));
  Delivery d = mine.take()[0];
  auto thief = make();
  Collector stolen;
  ASSERT_TRUE(thief->subscribe(sub("thief", 64, 100ms), stolen.handler()).is_ok());
  for (int i = 0; i < 12; ++i) {
    owner->touch(d.view());
    std::this_thread::sleep_for(30ms);
  }
  EXPECT_EQ(stolen.size(), 0u);
  ASSERT_TRUE(finish(*owner, d).is_ok());
}

TEST_F(MemoryBrokerTest, StoredResultsExpire) {
  auto b = make(80ms);
  publish(*b, "x");
  Collector c;
  ASSERT_TRUE(b->subscribe(sub("c"), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 1; }, 5s));
  ReplyView reply{Flavour::kPython, "q", "id-1", "", "result-bytes", false};
  ASSERT_TRUE(finish(*b, c.take()[0], &reply).is_ok());
  auto lookup = [&](Flavour f) {
    std::promise<std::optional<std::string>> p;
    b->lookup_result(f, "q", "id-1", [&](Result<std::optional<std::string>> r) {
      p.set_value(r.is_ok() ? *r : std::nullopt);
    });
    return p.get_future().get();
  };
  EXPECT_EQ(lookup(Flavour::kPython), "result-bytes");
  EXPECT_EQ(lookup(Flavour::kRaw), std::nullopt);  // raw results live under their own key
  ASSERT_TRUE(wait_until([&] { return !lookup(Flavour::kPython).has_value(); }, 5s));
}

TEST_F(MemoryBrokerTest, RepliesArePushedToTheirClient) {
  auto server = make();
  auto client = make();
  std::promise<std::pair<std::string, std::string>> pushed;
  auto reply_to = client->open_replies("q", [&](std::string_view id, std::string_view payload) {
    pushed.set_value({std::string(id), std::string(payload)});
  });
  ASSERT_TRUE(reply_to.is_ok());
  EXPECT_EQ(reply_to->rfind("prpc_feedback_q_", 0), 0u);
  EXPECT_EQ(*client->open_replies("q", [](auto, auto) {}), *reply_to);  // once per queue
  publish(*client, "req");
  Collector c;
  ASSERT_TRUE(server->subscribe(sub("s"), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 1; }, 5s));
  // The second open_replies replaced the handler; open a fresh one to receive.
  std::promise<std::pair<std::string, std::string>> got;
  ASSERT_TRUE(client
                  ->open_replies("q",
                                 [&](std::string_view id, std::string_view payload) {
                                   got.set_value({std::string(id), std::string(payload)});
                                 })
                  .is_ok());
  ReplyView reply{Flavour::kPython, "q", "id-7", *reply_to, "answer", false};
  ASSERT_TRUE(finish(*server, c.take()[0], &reply).is_ok());
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), (std::pair<std::string, std::string>{"id-7", "answer"}));
}

TEST_F(MemoryBrokerTest, DeadLettersKeepReasonAndPayloadAndAreBounded) {
  auto b = make();
  for (int i = 0; i < 5; ++i) publish(*b, "bad-" + std::to_string(i));
  Collector c;
  ASSERT_TRUE(b->subscribe(sub("c"), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 5; }, 5s));
  for (const Delivery& d : c.take()) {
    ASSERT_TRUE(finish(*b, d, nullptr, "broken: " + d.payload).is_ok());
  }
  auto letters = b->dead_letters("q", 10);
  ASSERT_TRUE(letters.is_ok());
  ASSERT_EQ(letters->size(), 3u);  // max_dead_letters keeps the newest
  EXPECT_EQ((*letters)[0].payload, "bad-2");
  EXPECT_EQ((*letters)[0].reason, "broken: bad-2");
  EXPECT_EQ(b->queue_stats("q")->dead_letters, 3);
  EXPECT_EQ(b->queue_stats("q")->pending, 0);
}

// The reference semantics of requeue: back into the request queue of its flavour, its stored
// error result forgotten (or the server would answer from it), gone from the dead letters.
TEST_F(MemoryBrokerTest, RequeueDeadLettersPutsThemBackAndForgetsTheirErrorResult) {
  auto b = make();
  EXPECT_EQ(*b->requeue_dead_letters("q", {}), 0u);  // nothing dead yet
  publish(*b, "p-0");
  publish(*b, "r-1", Flavour::kRaw);
  publish(*b, "p-2");
  Collector c;
  ASSERT_TRUE(b->subscribe(sub("c"), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 3; }, 5s));
  for (const Delivery& d : c.take()) {
    std::string id = "id-" + d.payload;
    std::string payload = "error for " + d.payload;  // the view below must not dangle
    ReplyView error{d.flavour, "q", id, "", payload, false};
    ASSERT_TRUE(finish(*b, d, &error, "failed: " + d.payload).is_ok());
  }
  auto stored = [&](Flavour f, const std::string& id) {
    std::promise<Result<std::optional<std::string>>> p;
    b->lookup_result(f, "q", id, [&](Result<std::optional<std::string>> r) {
      p.set_value(std::move(r));
    });
    auto r = p.get_future().get();
    return r.is_ok() && r->has_value();
  };
  ASSERT_TRUE(stored(Flavour::kRaw, "id-r-1"));
  auto letters = *b->dead_letters("q", 10);
  ASSERT_EQ(letters.size(), 3u);

  // One id: only that one comes back, with its flavour, and its error result is gone.
  auto raw = std::find_if(letters.begin(), letters.end(),
                          [](const DeadLetter& l) { return l.payload == "r-1"; });
  ASSERT_NE(raw, letters.end());
  std::vector<std::string> one{raw->id};
  EXPECT_EQ(*b->requeue_dead_letters("q", one), 1u);
  ASSERT_TRUE(wait_until([&] { return c.size() == 1; }, 5s));
  Delivery again = c.take()[0];
  EXPECT_EQ(again.payload, "r-1");
  EXPECT_EQ(again.flavour, Flavour::kRaw);
  EXPECT_FALSE(stored(Flavour::kRaw, "id-r-1"));
  EXPECT_TRUE(stored(Flavour::kPython, "id-p-0"));
  auto left = *b->dead_letters("q", 10);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].payload + left[1].payload, "p-0p-2");
  ASSERT_TRUE(finish(*b, again).is_ok());

  // An unknown id requeues nothing; no ids requeues the rest.
  std::vector<std::string> unknown{"no-such-id"};
  EXPECT_EQ(*b->requeue_dead_letters("q", unknown), 0u);
  EXPECT_EQ(*b->requeue_dead_letters("q", {}), 2u);
  ASSERT_TRUE(wait_until([&] { return c.size() == 2; }, 5s));
  EXPECT_EQ(b->queue_stats("q")->dead_letters, 0);
  EXPECT_FALSE(stored(Flavour::kPython, "id-p-0"));
  EXPECT_EQ(*b->requeue_dead_letters("q", {}), 0u);
  for (const Delivery& d : c.take()) ASSERT_TRUE(finish(*b, d).is_ok());
}

TEST_F(MemoryBrokerTest, UnsubscribeStopsDeliveries) {
  auto b = make();
  Collector c;
  ASSERT_TRUE(b->subscribe(sub("c"), c.handler()).is_ok());
  b->unsubscribe();
  publish(*b, "late");
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(b->queue_stats("q")->length, 1);
}

TEST_F(MemoryBrokerTest, BusesAreIsolatedAndQueuesBounded) {
  auto b = make();
  Settings other;
  other.bus = bus_ + "-other";
  MemoryBroker elsewhere(other);
  publish(*b, "mine");
  EXPECT_EQ(elsewhere.queue_stats("q")->length, 0);
  for (int i = 1; i < 100; ++i) publish(*b, "fill");
  std::promise<Status> p;
  b->publish(PublishView{Flavour::kPython, "q", "", "overflow"},
             [&](const Status& s) { p.set_value(s); });
  EXPECT_EQ(p.get_future().get().code(), StatusCode::kResourceExhausted);
}

TEST(MemoryBrokerUrl, Parses) {
  EXPECT_EQ(*parse_bus_url("memory://tests"), "tests");
  EXPECT_EQ(*parse_bus_url("memory://"), "default");
  EXPECT_EQ(*parse_bus_url("memory:x"), "x");
  EXPECT_FALSE(parse_bus_url("redis://localhost").is_ok());
}

}  // namespace
}  // namespace prpc::memory
