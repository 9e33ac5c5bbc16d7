// Liveness decides redelivery: a server that stops renewing its deadline in prpc_alive:{q} loses
// its pending requests to a live one at once, whatever the visibility timeout; a live server
// keeps what it holds; a consumer that never announced itself (an older PRPC, the original) is
// left to the visibility timeout.
#include <gtest/gtest.h>

#include <set>

#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

// Long enough that anything claimed within the tests' bounds was claimed by liveness.
constexpr auto kVisibility = 60s;
const OptionMap kFastLiveness{{"heartbeat_interval", "100"}, {"liveness_timeout", "500"}};

class RedisLivenessTest : public ::testing::Test {
 protected:
  RedisServer server_;
  std::string q_ = unique_queue();
  std::string stream_ = protocol::request_stream(Flavour::kPython, q_);

  std::set<std::string> consumers() {
    RedisClient c = server_.client();
    std::set<std::string> out;
    auto r = c.command({"XINFO", "CONSUMERS", stream_, "prpc_group_consumers"});
    if (r->type != REDIS_REPLY_ARRAY) return out;
    for (std::size_t i = 0; i < r->elements; ++i) {
      const redisReply* fields = r->element[i];
      for (std::size_t k = 0; k + 1 < fields->elements; k += 2) {
        if (std::string_view(fields->element[k]->str) == "name") {
          out.insert(fields->element[k + 1]->str);
        }
      }
    }
    return out;
  }
};

TEST_F(RedisLivenessTest, ADeadServersRequestsGoToALiveOneAtOnce) {
  auto cli = make_broker(server_.url());
  auto live = make_broker(server_.url(), kFastLiveness);
  Collector col_live;
  {
    auto dying = make_broker(server_.url(), kFastLiveness);
    Collector col;
    ASSERT_TRUE(dying->subscribe(sub_options(q_, "dying", kVisibility), col.handler()).is_ok());
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "call " + std::to_string(i)).is_ok());
    }
    ASSERT_EQ(col.wait_for(4).size(), 4u);
    ASSERT_TRUE(live->subscribe(sub_options(q_, "live", kVisibility), col_live.handler()).is_ok());
    // While `dying` renews its deadline, nothing moves (10 liveness timeouts).
    EXPECT_FALSE(wait_until([&] { return col_live.size() > 0; }, 5s));
    // `dying` goes away without finishing or renewing anything, as a SIGKILLed server does.
  }
  auto got = col_live.wait_for(4, 10s);  // far below the 60 s visibility timeout
  ASSERT_EQ(got.size(), 4u);
  std::set<std::string> payloads;
  for (const Delivery& d : got) {
    payloads.insert(d.payload);
    EXPECT_EQ(d.delivery_count, 2u);
    ASSERT_TRUE(finish_sync(*live, d, nullptr).is_ok());
  }
  EXPECT_EQ(payloads.size(), 4u);
  RedisClient c = server_.client();
  EXPECT_EQ(pending_count(c, stream_), 0);
  // The dead server holds nothing any more: it leaves the group.
  EXPECT_TRUE(wait_until([&] { return consumers() == std::set<std::string>{"live"}; }, 10s));
}

TEST_F(RedisLivenessTest, ALiveServerKeepsWhatItHoldsPastTheLivenessTimeout) {
  auto cli = make_broker(server_.url());
  auto holder = make_broker(server_.url(), kFastLiveness);
  Collector col;
  ASSERT_TRUE(holder->subscribe(sub_options(q_, "holder", kVisibility), col.handler()).is_ok());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "long").is_ok());
  ASSERT_EQ(col.wait_for(1).size(), 1u);
  auto other = make_broker(server_.url(), kFastLiveness);
  Collector col_other;
  ASSERT_TRUE(other->subscribe(sub_options(q_, "other", kVisibility), col_other.handler()).is_ok());
  // Twenty liveness timeouts without a touch: liveness, not idle time, protects the call.
  EXPECT_FALSE(wait_until([&] { return col_other.size() > 0; }, 10s));
  ASSERT_TRUE(finish_sync(*holder, col.snapshot()[0], nullptr).is_ok());
  RedisClient c = server_.client();
  EXPECT_EQ(pending_count(c, stream_), 0);
}

TEST_F(RedisLivenessTest, AConsumerThatNeverAnnouncedItselfIsLeftToTheVisibilityTimeout) {
  auto cli = make_broker(server_.url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "legacy").is_ok());
  RedisClient c = server_.client();
  c.command({"XGROUP", "CREATE", stream_, "prpc_group_consumers", "0", "MKSTREAM"});
  c.command({"XREADGROUP", "GROUP", "prpc_group_consumers", "original", "COUNT", "1", "STREAMS",
             stream_, ">"});
  ASSERT_EQ(pending_count(c, stream_), 1);
  auto srv = make_broker(server_.url(), kFastLiveness);
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "srv", 3s), col.handler()).is_ok());
  // Not taken on liveness grounds (it has no deadline to miss)...
  EXPECT_FALSE(wait_until([&] { return col.size() > 0; }, 1500ms));
  // ...but still recovered once idle past the visibility timeout.
  auto got = col.wait_for(1, 20s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "legacy");
}

TEST_F(RedisLivenessTest, WithLivenessOffOnlyTheVisibilityTimeoutRecovers) {
  const OptionMap off{{"liveness_timeout", "0"}};
  auto cli = make_broker(server_.url());
  {
    auto dying = make_broker(server_.url(), off);
    Collector col;
    ASSERT_TRUE(dying->subscribe(sub_options(q_, "dying", kVisibility), col.handler()).is_ok());
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "x").is_ok());
    ASSERT_EQ(col.wait_for(1).size(), 1u);
  }
  RedisClient c = server_.client();
  EXPECT_EQ(c.integer({"EXISTS", protocol::liveness_key(q_)}), 0);
  auto live = make_broker(server_.url(), off);
  Collector col_live;
  ASSERT_TRUE(live->subscribe(sub_options(q_, "live", kVisibility), col_live.handler()).is_ok());
  EXPECT_FALSE(wait_until([&] { return col_live.size() > 0; }, 2s));
}

TEST_F(RedisLivenessTest, ALivenessTimeoutShorterThanTwoHeartbeatsIsRefused) {
  OptionMap options{
      {"url", server_.url()}, {"heartbeat_interval", "1000"}, {"liveness_timeout", "1500"}};
  sdk::Context ctx{sdk::Logger(prpc::log::host_services(), "redis"), sdk::Options(options)};
  EXPECT_THROW(RedisBroker broker(ctx), std::invalid_argument);
}

}  // namespace
}  // namespace prpc::redis::testing
