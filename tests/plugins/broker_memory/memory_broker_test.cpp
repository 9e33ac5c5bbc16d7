// The in-process broker's contract, tested on the class directly.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "memory_broker.hpp"
#include "process.hpp"
#include "prpc/json.hpp"
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
  std::unique_ptr<MemoryBroker> make(std::chrono::milliseconds ttl = 6h,
                                     std::chrono::milliseconds server_history = 5min) {
    Settings s;
    s.bus = bus_;
    s.result_ttl = ttl;
    s.server_history = server_history;
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
    b->lookup_result(f, "q", id,
                     [&](Result<std::optional<std::string>> r) { p.set_value(std::move(r)); });
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

// ABI 1.2's reference semantics: a signature travels beside its payload, unchanged, wherever
// the payload goes (delivery, redelivery, requeue, stored result, pushed reply).
TEST_F(MemoryBrokerTest, SignaturesTravelWithRequestsResultsAndReplies) {
  auto server = make();
  auto client = make();
  std::promise<std::tuple<std::string, std::string, std::string, std::string>> pushed;
  auto reply_to = client->open_replies_signed("q", [&](const PushedReplyView& r) {
    pushed.set_value({std::string(r.message_id), std::string(r.payload), std::string(r.signature),
                      std::string(r.key_id)});
  });
  ASSERT_TRUE(reply_to.is_ok());
  std::promise<Status> sent;
  client->publish(PublishView{Flavour::kPython, "q", "id-1", "request", "5ig", "k1"},
                  [&](const Status& s) { sent.set_value(s); });
  ASSERT_TRUE(sent.get_future().get().is_ok());
  publish(*client, "unsigned", Flavour::kRaw);
  Collector c;
  ASSERT_TRUE(server->subscribe(sub("s"), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 2; }, 5s));
  auto got = c.take();
  EXPECT_EQ(got[0].payload, "request");
  EXPECT_EQ(got[0].signature, "5ig");
  EXPECT_EQ(got[0].key_id, "k1");
  EXPECT_EQ(got[1].signature, "");
  EXPECT_EQ(got[1].key_id, "");

  ReplyView reply{Flavour::kPython, "q", "id-1", *reply_to, "answer", false, "r5ig", "k2"};
  ASSERT_TRUE(finish(*server, got[0], &reply).is_ok());
  ASSERT_TRUE(finish(*server, got[1]).is_ok());
  auto f = pushed.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), std::make_tuple(std::string("id-1"), std::string("answer"),
                                     std::string("r5ig"), std::string("k2")));

  std::promise<Result<std::optional<StoredResult>>> stored;
  client->lookup_result_signed(
      Flavour::kPython, "q", "id-1",
      [&](Result<std::optional<StoredResult>> r) { stored.set_value(std::move(r)); });
  auto r = stored.get_future().get();
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->payload, "answer");
  EXPECT_EQ((*r)->signature, "r5ig");
  EXPECT_EQ((*r)->key_id, "k2");
  // The unsigned lookup reads the same result; a missing one is nullopt either way.
  std::promise<std::optional<std::string>> plain;
  client->lookup_result(Flavour::kPython, "q", "id-1", [&](Result<std::optional<std::string>> x) {
    plain.set_value(x.is_ok() ? *x : std::nullopt);
  });
  EXPECT_EQ(plain.get_future().get(), "answer");
  std::promise<bool> missing;
  client->lookup_result_signed(Flavour::kPython, "q", "id-2",
                               [&](Result<std::optional<StoredResult>> x) {
                                 missing.set_value(x.is_ok() && !x->has_value());
                               });
  EXPECT_TRUE(missing.get_future().get());
}

TEST_F(MemoryBrokerTest, ASignatureSurvivesRedeliveryAndRequeue) {
  std::promise<Status> sent;
  make()->publish(PublishView{Flavour::kRaw, "q", "id-1", "work", "5ig", "k1"},
                  [&](const Status& s) { sent.set_value(s); });
  ASSERT_TRUE(sent.get_future().get().is_ok());
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
  Delivery again = c.take()[0];
  EXPECT_EQ(again.delivery_count, 2u);
  EXPECT_EQ(again.signature, "5ig");
  EXPECT_EQ(again.key_id, "k1");
  ASSERT_TRUE(finish(*b, again, nullptr, "poisoned").is_ok());
  EXPECT_EQ(*b->requeue_dead_letters("q", {}), 1u);
  ASSERT_TRUE(wait_until([&] { return c.size() == 1; }, 5s));
  Delivery requeued = c.take()[0];
  EXPECT_EQ(requeued.payload, "work");
  EXPECT_EQ(requeued.signature, "5ig");
  EXPECT_EQ(requeued.key_id, "k1");
  ASSERT_TRUE(finish(*b, requeued).is_ok());
}

TEST_F(MemoryBrokerTest, OpenRepliesAndItsSignedFormShareOneAddress) {
  auto server = make();
  auto client = make();
  int unsigned_calls = 0;
  auto a = client->open_replies("q", [&](std::string_view, std::string_view) { ++unsigned_calls; });
  std::promise<std::string> got;
  auto b = client->open_replies_signed(
      "q", [&](const PushedReplyView& r) { got.set_value(std::string(r.signature)); });
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(*a, *b);
  publish(*client, "req");
  Collector c;
  ASSERT_TRUE(server->subscribe(sub("s"), c.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return c.size() == 1; }, 5s));
  ReplyView reply{Flavour::kPython, "q", "id-1", *a, "answer", false, "sig"};
  ASSERT_TRUE(finish(*server, c.take()[0], &reply).is_ok());
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), "sig");  // the newest handler, whichever form opened it
  EXPECT_EQ(unsigned_calls, 0);
}

struct Listed {
  std::string id;
  bool alive = false;
  std::int64_t age_ms = -1;
  std::string info;
};

std::vector<Listed> listed(Broker& b, const std::string& queue) {
  auto text = b.list_servers(queue);
  EXPECT_TRUE(text.is_ok()) << text.status().to_string();
  std::vector<Listed> out;
  if (!text.is_ok()) return out;
  Status s = json::scan_array(*text, {}, [&](const json::Member& e) {
    Listed l;
    l.id = json::get_string_member(e.raw, "id").value_or("?");
    l.alive = json::get_member(e.raw, "alive") == "true";
    l.age_ms = std::stoll(std::string(json::get_member(e.raw, "age_ms").value_or("-1")));
    l.info = std::string(json::get_member(e.raw, "info").value_or("?"));
    out.push_back(std::move(l));
    return Status::ok();
  });
  EXPECT_TRUE(s.is_ok()) << s.to_string() << " in " << *text;
  return out;
}

Status announce(Broker& b, std::string_view queue, std::string_view id, std::string_view info,
                std::chrono::milliseconds ttl) {
  std::promise<Status> p;
  b.announce_server(queue, id, info, ttl, [&](const Status& s) { p.set_value(s); });
  return p.get_future().get();
}

TEST_F(MemoryBrokerTest, AnnouncedServersAreListedWhileAlive) {
  auto one = make();
  auto other = make();  // the same bus: every instance sees every server
  EXPECT_EQ(*one->list_servers("q"), "[]");
  ASSERT_TRUE(announce(*one, "q", "server-b", R"({"version": "0.1", "pid": 42})", 30s).is_ok());
  ASSERT_TRUE(announce(*other, "q", "server-a \"quoted\"", "", 30s).is_ok());
  ASSERT_TRUE(announce(*other, "elsewhere", "server-c", "{}", 30s).is_ok());
  auto servers = listed(*one, "q");
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[0].id, "server-a \"quoted\"");  // by id
  EXPECT_EQ(servers[0].info, "{}");
  EXPECT_EQ(servers[1].id, "server-b");
  EXPECT_EQ(servers[1].info, R"({"version": "0.1", "pid": 42})");
  for (const Listed& s : servers) {
    EXPECT_TRUE(s.alive);
    EXPECT_GE(s.age_ms, 0);
    EXPECT_LT(s.age_ms, 30000);
  }
  // A new announcement replaces the info.
  ASSERT_TRUE(announce(*one, "q", "server-b", R"({"version": "0.2"})", 30s).is_ok());
  EXPECT_EQ(listed(*other, "q")[1].info, R"({"version": "0.2"})");
  EXPECT_EQ(listed(*other, "elsewhere").size(), 1u);
}

TEST_F(MemoryBrokerTest, AServerWhoseAnnouncementExpiredIsListedDeadThenForgotten) {
  auto b = make(6h, 1s);
  ASSERT_TRUE(announce(*b, "q", "steady", "{}", 1h).is_ok());
  ASSERT_TRUE(announce(*b, "q", "crashed", "{}", 50ms).is_ok());
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = listed(*b, "q");
        return s.size() == 2 && !s[0].alive;
      },
      5s));
  auto s = listed(*b, "q");
  EXPECT_EQ(s[0].id, "crashed");
  EXPECT_GE(s[0].age_ms, 50);
  EXPECT_TRUE(s[1].alive);
  // Announcing again brings it back.
  ASSERT_TRUE(announce(*b, "q", "crashed", "{}", 1h).is_ok());
  EXPECT_TRUE(listed(*b, "q")[0].alive);
  // Silent for ttl + server_history: no longer listed.
  ASSERT_TRUE(announce(*b, "q", "gone", "{}", 50ms).is_ok());
  EXPECT_EQ(listed(*b, "q").size(), 3u);
  ASSERT_TRUE(wait_until([&] { return listed(*b, "q").size() == 2; }, 5s));
  s = listed(*b, "q");
  EXPECT_EQ(s[0].id, "crashed");
  EXPECT_EQ(s[1].id, "steady");
}

TEST_F(MemoryBrokerTest, AnnouncementsAreChecked) {
  auto b = make();
  EXPECT_EQ(announce(*b, "q", "s", "[1]", 1s).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(announce(*b, "q", "s", "{broken", 1s).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(announce(*b, "q", "", "{}", 1s).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(announce(*b, "", "s", "{}", 1s).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(announce(*b, "q", "s", "{}", 0ms).code(), StatusCode::kInvalidArgument);
  Status s = announce(*b, "q", "s", "[1]", 1s);
  EXPECT_EQ(s.message(), "announce_server: info: expected a JSON object, got array");
  EXPECT_EQ(*b->list_servers("q"), "[]");
}

TEST(MemoryBrokerUrl, Parses) {
  EXPECT_EQ(*parse_bus_url("memory://tests"), "tests");
  EXPECT_EQ(*parse_bus_url("memory://"), "default");
  EXPECT_EQ(*parse_bus_url("memory:x"), "x");
  EXPECT_FALSE(parse_bus_url("redis://localhost").is_ok());
}

}  // namespace
}  // namespace prpc::memory
