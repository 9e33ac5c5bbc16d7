// Pending-entry recovery: a request whose consumer died or stalled goes to a live one after the
// visibility timeout, with its true delivery count; touch() keeps a long call where it is.
#include <gtest/gtest.h>

#include <thread>

#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

constexpr auto kVisibility = 400ms;

class RedisRecoveryTest : public ::testing::Test {
 protected:
  RedisServer server_;
  std::string q_ = unique_queue();
};

TEST_F(RedisRecoveryTest, ARequestOfACrashedConsumerIsRedeliveredToAnother) {
  auto cli = make_broker(server_.url());
  std::string id = new_uuid();
  {
    auto a = make_broker(server_.url());
    Collector col;
    ASSERT_TRUE(a->subscribe(sub_options(q_, "a", kVisibility), col.handler()).is_ok());
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "work", id).is_ok());
    ASSERT_EQ(col.wait_for(1).size(), 1u);
    // `a` goes away without finishing: the entry stays pending under consumer "a".
  }
  RedisClient c = server_.client();
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kPython, q_)), 1);

  auto b = make_broker(server_.url());
  Collector col;
  ASSERT_TRUE(b->subscribe(sub_options(q_, "b", kVisibility), col.handler()).is_ok());
  auto got = col.wait_for(1, 10s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "work");
  EXPECT_EQ(got[0].delivery_count, 2u);
  ASSERT_TRUE(finish_sync(*b, got[0], nullptr).is_ok());
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kPython, q_)), 0);
}

TEST_F(RedisRecoveryTest, AStalledConsumerLosesTheRequestToALiveOne) {
  auto cli = make_broker(server_.url());
  auto a = make_broker(server_.url());
  Collector col_a;
  ASSERT_TRUE(a->subscribe(sub_options(q_, "a", kVisibility), col_a.handler()).is_ok());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "{}").is_ok());
  ASSERT_EQ(col_a.wait_for(1).size(), 1u);

  auto b = make_broker(server_.url());
  Collector col_b;
  ASSERT_TRUE(b->subscribe(sub_options(q_, "b", kVisibility), col_b.handler()).is_ok());
  auto got = col_b.wait_for(1, 10s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].delivery_count, 2u);
  EXPECT_EQ(got[0].flavour, Flavour::kRaw);
  // The stalled one never sees it twice: claims skip what it already holds.
  EXPECT_EQ(col_a.size(), 1u);
}

TEST_F(RedisRecoveryTest, TouchKeepsALongCallFromBeingClaimed) {
  auto cli = make_broker(server_.url());
  auto a = make_broker(server_.url());
  Collector col_a;
  ASSERT_TRUE(a->subscribe(sub_options(q_, "a", kVisibility), col_a.handler()).is_ok());
  auto b = make_broker(server_.url());
  Collector col_b;
  ASSERT_TRUE(b->subscribe(sub_options(q_, "b", kVisibility), col_b.handler()).is_ok());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "long").is_ok());
  ASSERT_TRUE(wait_until([&] { return col_a.size() + col_b.size() == 1; }, 10s));
  bool on_a = col_a.size() == 1;
  Broker& owner = on_a ? static_cast<Broker&>(*a) : static_cast<Broker&>(*b);
  Collector& owner_col = on_a ? col_a : col_b;
  Collector& other_col = on_a ? col_b : col_a;
  Delivery d = owner_col.snapshot()[0];

  // A call lasting 8 visibility timeouts, touched every third of one (as the engine does).
  auto end = std::chrono::steady_clock::now() + 8 * kVisibility;
  while (std::chrono::steady_clock::now() < end) {
    owner.touch(d.view());
    std::this_thread::sleep_for(kVisibility / 3);  // the call's own pace, not a readiness wait
  }
  EXPECT_EQ(other_col.size(), 0u);
  EXPECT_EQ(owner_col.size(), 1u);
  ASSERT_TRUE(finish_sync(owner, d, nullptr).is_ok());
  EXPECT_FALSE(wait_until([&] { return other_col.size() > 0; }, 3 * kVisibility));
}

TEST_F(RedisRecoveryTest, DeliveryCountsGrowWithEveryRedelivery) {
  auto cli = make_broker(server_.url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "poison").is_ok());
  for (std::uint32_t attempt = 1; attempt <= 4; ++attempt) {
    auto srv = make_broker(server_.url());
    Collector col;
    ASSERT_TRUE(srv->subscribe(sub_options(q_, "c" + std::to_string(attempt), 200ms), col.handler())
                    .is_ok());
    auto got = col.wait_for(1, 10s);
    ASSERT_EQ(got.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(got[0].delivery_count, attempt);
    if (attempt == 4) {
      ASSERT_TRUE(finish_sync(*srv, got[0], nullptr, "delivered 4 times").is_ok());
    }
  }
  auto dead = cli->dead_letters(q_, 10);
  ASSERT_TRUE(dead.is_ok());
  ASSERT_EQ(dead->size(), 1u);
  RedisClient c = server_.client();
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kPython, q_)), 0);
}

TEST_F(RedisRecoveryTest, ARedeliveryFindsTheResultOfTheRunWhoseAckWasLost) {
  // Simulates "the result was stored but the ack never happened": the second consumer looks the
  // result up (what the engine does for delivery_count > 1) and only pushes it.
  auto cli = make_broker(server_.url());
  std::string id = new_uuid();
  {
    auto a = make_broker(server_.url());
    Collector col;
    ASSERT_TRUE(a->subscribe(sub_options(q_, "a", kVisibility), col.handler()).is_ok());
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "req", id).is_ok());
    ASSERT_EQ(col.wait_for(1).size(), 1u);
    RedisClient c = server_.client();
    c.command({"SET", protocol::result_key(Flavour::kPython, q_, id), "done once", "PX", "60000"});
  }
  auto b = make_broker(server_.url());
  Collector col;
  ASSERT_TRUE(b->subscribe(sub_options(q_, "b", kVisibility), col.handler()).is_ok());
  auto got = col.wait_for(1, 10s);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_GT(got[0].delivery_count, 1u);
  auto found = lookup_sync(*b, Flavour::kPython, q_, id);
  ASSERT_TRUE(found.is_ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, "done once");
}

TEST_F(RedisRecoveryTest, AParkedEntryStaysOursUntilASlotFrees) {
  // One slot and two streams: both entries come back from one read; the second is parked.
  auto srv = make_broker(server_.url());
  auto cli = make_broker(server_.url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "p").is_ok());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "r").is_ok());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s", kVisibility, 1), col.handler()).is_ok());
  auto first = col.wait_for(1);
  ASSERT_EQ(first.size(), 1u);
  auto other = make_broker(server_.url());
  Collector col_other;
  ASSERT_TRUE(other->subscribe(sub_options(q_, "o", kVisibility, 1), col_other.handler()).is_ok());
  // Longer than the visibility timeout. The engine touches the call it runs; the broker itself
  // must touch the parked entry, or `other` would claim it.
  auto end = std::chrono::steady_clock::now() + 4 * kVisibility;
  while (std::chrono::steady_clock::now() < end) {
    srv->touch(first[0].view());
    EXPECT_FALSE(
        wait_until([&] { return col.size() > 1 || col_other.size() > 0; }, kVisibility / 3));
  }
  ASSERT_TRUE(finish_sync(*srv, first[0], nullptr).is_ok());
  auto both = col.wait_for(2);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_NE(both[0].payload, both[1].payload);
  EXPECT_EQ(both[1].delivery_count, 1u);
  EXPECT_EQ(col_other.size(), 0u);
}

TEST_F(RedisRecoveryTest, ItsOwnEntriesThatNeverReachedItAreRecoveredBySoleServer) {
  // As if a read's reply was lost with its connection: the entry is pending under this very
  // consumer name but was never handed over. With no other server, it must still be served.
  auto cli = make_broker(server_.url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "lost read").is_ok());
  RedisClient c = server_.client();
  std::string stream = protocol::request_stream(Flavour::kPython, q_);
  c.command({"XGROUP", "CREATE", stream, "prpc_group_consumers", "0", "MKSTREAM"});
  c.command({"XREADGROUP", "GROUP", "prpc_group_consumers", "solo", "COUNT", "1", "STREAMS", stream,
             ">"});
  ASSERT_EQ(pending_count(c, stream), 1);
  auto srv = make_broker(server_.url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "solo", kVisibility), col.handler()).is_ok());
  auto got = col.wait_for(1, 10s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "lost read");
  EXPECT_EQ(got[0].delivery_count, 2u);
}

TEST_F(RedisRecoveryTest, AfterAReconnectItsOwnPendingEntriesComeBackAtOnce) {
  // As after a failover that lost a finish (or a read's reply lost with its connection): an entry
  // pending under this consumer that it is not working on. With a visibility timeout of a
  // minute, only the look at its own pending entries after the reconnect serves it in time.
  auto srv = make_broker(server_.url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "solo", 60s), col.handler()).is_ok());
  // Once a first request is served, the reads are past the look at the first connection.
  auto cli = make_broker(server_.url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "first").is_ok());
  auto first = col.wait_for(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(finish_sync(*srv, first[0], nullptr).is_ok());
  RedisClient c = server_.client();
  std::string stream = protocol::request_stream(Flavour::kPython, q_);
  // XADD and read it as "solo" in one transaction: the server's blocked read sees nothing.
  c.command({"MULTI"});
  c.command({"XADD", stream, "*", "message", "left pending"});
  c.command({"XREADGROUP", "GROUP", "prpc_group_consumers", "solo", "COUNT", "1", "STREAMS", stream,
             ">"});
  c.command({"EXEC"});
  ASSERT_EQ(pending_count(c, stream), 1);
  EXPECT_FALSE(wait_until([&] { return col.size() > 1; }, 300ms));
  c.command({"CLIENT", "KILL", "SKIPME", "yes"});
  auto got = col.wait_for(2, 10s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].payload, "left pending");
  EXPECT_GE(got[1].delivery_count, 2u);
}

}  // namespace
}  // namespace prpc::redis::testing
