// The Redis broker against a real redis-server: delivery, finish (store -> push -> dead letter ->
// ack), lookups, malformed entries, back-pressure, TTLs, trimming and stats.
#include <gtest/gtest.h>

#include <thread>

#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

class RedisBrokerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static RedisServer& server() { return *server_; }
  static std::string url() { return server_->url(); }

  std::string q_ = unique_queue();

 private:
  static RedisServer* server_;
};
RedisServer* RedisBrokerTest::server_ = nullptr;

TEST_F(RedisBrokerTest, DeliversBothFlavoursInOrderWithTheirFirstDeliveryCount) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "p1").is_ok());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "p2").is_ok());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "{\"r\": 1}").is_ok());
  auto got = col.wait_for(3);
  ASSERT_EQ(got.size(), 3u);
  std::vector<std::string> python, raw;
  for (const Delivery& d : got) {
    EXPECT_EQ(d.queue, q_);
    EXPECT_EQ(d.delivery_count, 1u);
    EXPECT_FALSE(d.token.empty());
    (d.flavour == Flavour::kRaw ? raw : python).push_back(d.payload);
  }
  EXPECT_EQ(python, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(raw, (std::vector<std::string>{"{\"r\": 1}"}));
}

TEST_F(RedisBrokerTest, RequestsSentBeforeAnyServerExistedAreServed) {
  auto cli = make_broker(url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "early").is_ok());
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "early");
}

TEST_F(RedisBrokerTest, FinishStoresTheResultPushesTheReplyAndAcks) {
  for (Flavour f : {Flavour::kPython, Flavour::kRaw}) {
    SCOPED_TRACE(flavour_name(f));
    std::string q = unique_queue();
    auto srv = make_broker(url());
    Collector col;
    ASSERT_TRUE(srv->subscribe(sub_options(q, "s1"), col.handler()).is_ok());
    auto cli = make_broker(url());
    std::promise<std::pair<std::string, std::string>> pushed;
    auto reply_to = cli->open_replies(q, [&](std::string_view id, std::string_view payload) {
      pushed.set_value({std::string(id), std::string(payload)});
    });
    ASSERT_TRUE(reply_to.is_ok()) << reply_to.status().to_string();
    EXPECT_EQ(reply_to->rfind(protocol::reply_stream_prefix(q), 0), 0u) << *reply_to;

    std::string id = new_uuid();
    ASSERT_TRUE(publish_sync(*cli, f, q, "request", id).is_ok());
    auto got = col.wait_for(1);
    ASSERT_EQ(got.size(), 1u);
    ReplyView reply{f, q, id, *reply_to, "the result", false};
    ASSERT_TRUE(finish_sync(*srv, got[0], &reply).is_ok());

    auto fut = pushed.get_future();
    ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(fut.get(), std::make_pair(id, std::string("the result")));

    RedisClient c = server().client();
    EXPECT_EQ(c.get(protocol::result_key(f, q, id)), "the result");
    long long ttl = c.integer({"PTTL", protocol::result_key(f, q, id)});
    EXPECT_GT(ttl, 0);
    EXPECT_LE(ttl, 6LL * 3600 * 1000);
    EXPECT_EQ(pending_count(c, protocol::request_stream(f, q)), 0);
    long long reply_ttl = c.integer({"PTTL", *reply_to});
    EXPECT_GT(reply_ttl, 0);
    EXPECT_LE(reply_ttl, 5LL * 60 * 1000);
  }
}

TEST_F(RedisBrokerTest, TheAckGoesOutOnlyAfterTheResultIsStoredAndPushed) {
  // Both ways finish() runs: a transaction (no dead letter) and the script (with one).
  for (bool dead_letter : {false, true}) {
    SCOPED_TRACE(dead_letter ? "with a dead letter" : "without a dead letter");
    std::string q = unique_queue();
    auto srv = make_broker(url());
    Collector col;
    ASSERT_TRUE(srv->subscribe(sub_options(q, "s1"), col.handler()).is_ok());
    auto cli = make_broker(url());
    auto reply_to = cli->open_replies(q, [](std::string_view, std::string_view) {});
    ASSERT_TRUE(reply_to.is_ok());
    std::string id = new_uuid();
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q, "req", id).is_ok());
    auto got = col.wait_for(1);
    ASSERT_EQ(got.size(), 1u);

    // MONITOR shows the order in which Redis ran the commands.
    RedisClient monitor = server().client();
    ASSERT_EQ(monitor.text({"MONITOR"}), "OK");
    std::vector<std::string> lines;
    std::thread watcher([&] {
      for (int i = 0; i < 10000; ++i) {
        auto r = monitor.next_reply();
        std::string line(r->str, r->len);
        if (line.find(q) == std::string::npos && line.find(id) == std::string::npos) continue;
        lines.push_back(line);
        if (line.find("\"XACK\"") != std::string::npos) return;
      }
    });
    ReplyView reply{Flavour::kPython, q, id, *reply_to, "result", false};
    ASSERT_TRUE(finish_sync(*srv, got[0], &reply, dead_letter ? "also dead-lettered" : "").is_ok());
    watcher.join();
    auto index_of = [&](std::string_view needle) {
      for (std::size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].find(needle) != std::string::npos) return static_cast<long>(i);
      }
      return -1L;
    };
    long set = index_of("\"SET\" \"prcp_message_feedback_" + id + "\"");
    long push = index_of("\"XADD\" \"" + *reply_to + "\"");
    long ack = index_of("\"XACK\"");
    ASSERT_GE(set, 0);
    ASSERT_GE(push, 0);
    ASSERT_GE(ack, 0);
    EXPECT_LT(set, push);
    EXPECT_LT(push, ack);
    if (dead_letter) {
      long dead = index_of("\"XADD\" \"prpc_dead_" + q + "\"");
      ASSERT_GE(dead, 0);
      EXPECT_LT(push, dead);
      EXPECT_LT(dead, ack);
    }
  }
}

TEST_F(RedisBrokerTest, AResultThatCannotBeStoredIsNotAcknowledged) {
  // This user may do everything but SET: the store fails, so the request must stay pending.
  server().set_acl_user("nostore", "pw-nostore", {"~*", "&*", "+@all", "-set"});
  std::string url =
      "redis://nostore:pw-nostore@127.0.0.1:" + std::to_string(server().port()) + "/0";
  auto srv = make_broker(url);
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(this->url());
  std::string id = new_uuid();
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "req", id).is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  ReplyView reply{Flavour::kPython, q_, id, {}, "result", false};
  Status s = finish_sync(*srv, got[0], &reply);
  EXPECT_FALSE(s.is_ok());
  // Refused inside the finish script: Redis 7 words it "can't run this command".
  EXPECT_TRUE(s.message().find("NOPERM") != std::string::npos ||
              s.message().find("can't run this command") != std::string::npos)
      << s.to_string();
  RedisClient c = server().client();
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kPython, q_)), 1);
  EXPECT_EQ(c.get(protocol::result_key(Flavour::kPython, q_, id)), std::nullopt);
}

TEST_F(RedisBrokerTest, LookupFindsAStoredResultOnly) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  std::string id = new_uuid();
  auto none = lookup_sync(*srv, Flavour::kRaw, q_, id);
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
  auto cli = make_broker(url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "{}", id).is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  ReplyView reply{Flavour::kRaw, q_, id, {}, "{\"result\": 3}", false};
  ASSERT_TRUE(finish_sync(*srv, got[0], &reply).is_ok());
  auto found = lookup_sync(*cli, Flavour::kRaw, q_, id);
  ASSERT_TRUE(found.is_ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, "{\"result\": 3}");
}

TEST_F(RedisBrokerTest, PushOnlyDoesNotRewriteTheStoredResult) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  std::promise<std::string> pushed;
  auto reply_to = cli->open_replies(
      q_, [&](std::string_view, std::string_view p) { pushed.set_value(std::string(p)); });
  ASSERT_TRUE(reply_to.is_ok());
  std::string id = new_uuid();
  RedisClient c = server().client();
  c.command({"SET", protocol::result_key(Flavour::kPython, q_, id), "stored"});
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "req", id).is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  ReplyView reply{Flavour::kPython, q_, id, *reply_to, "stored", true};
  ASSERT_TRUE(finish_sync(*srv, got[0], &reply).is_ok());
  auto fut = pushed.get_future();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(fut.get(), "stored");
  EXPECT_EQ(c.integer({"PTTL", protocol::result_key(Flavour::kPython, q_, id)}), -1)
      << "push_only must not SET the key again";
}

TEST_F(RedisBrokerTest, AForeignReplyToIsNeverWritten) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  std::string id = new_uuid();
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "{}", id).is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  std::string victim = "victim_" + q_;
  ReplyView reply{Flavour::kRaw, q_, id, victim, "{}", false};
  ASSERT_TRUE(finish_sync(*srv, got[0], &reply).is_ok());
  RedisClient c = server().client();
  EXPECT_EQ(c.integer({"EXISTS", victim}), 0);
  EXPECT_EQ(c.get(protocol::result_key(Flavour::kRaw, q_, id)), "{}");
}

TEST_F(RedisBrokerTest, DeadLettersKeepReasonFlavourAndPayload) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "not json").is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(finish_sync(*srv, got[0], nullptr, "invalid JSON at offset 0").is_ok());
  auto dead = cli->dead_letters(q_, 10);
  ASSERT_TRUE(dead.is_ok()) << dead.status().to_string();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].reason, "invalid JSON at offset 0");
  EXPECT_EQ((*dead)[0].flavour, Flavour::kRaw);
  EXPECT_EQ((*dead)[0].payload, "not json");
  EXPECT_FALSE((*dead)[0].id.empty());
  auto stats = cli->queue_stats(q_);
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->dead_letters, 1);
  RedisClient c = server().client();
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kRaw, q_)), 0);
}

TEST_F(RedisBrokerTest, AnEntryWithoutAMessageFieldIsDeliveredForTheEngineToReject) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  RedisClient c = server().client();
  c.command({"XADD", protocol::request_stream(Flavour::kPython, q_), "*", "colour", "blue"});
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].payload.empty());
  ASSERT_TRUE(finish_sync(*srv, got[0], nullptr, "the message is not valid JSON").is_ok());
  auto dead = srv->dead_letters(q_, 10);
  ASSERT_TRUE(dead.is_ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_NE((*dead)[0].reason.find("the message is not valid JSON"), std::string::npos);
  EXPECT_NE((*dead)[0].reason.find("no 'message' field"), std::string::npos) << (*dead)[0].reason;
  EXPECT_NE((*dead)[0].reason.find("colour"), std::string::npos);
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kPython, q_)), 0);
}

TEST_F(RedisBrokerTest, NeverHandsOverMoreThanMaxOutstanding) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1", 30s, 3), col.handler()).is_ok());
  auto cli = make_broker(url());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "m" + std::to_string(i)).is_ok());
  }
  ASSERT_EQ(col.wait_for(3).size(), 3u);
  EXPECT_FALSE(wait_until([&] { return col.size() > 3; }, 300ms));
  std::size_t finished = 0;
  while (finished < 10) {
    auto all = col.wait_for(finished + 1);
    ASSERT_GT(all.size(), finished);
    col.finished_one();
    ASSERT_TRUE(finish_sync(*srv, all[finished], nullptr).is_ok());
    ++finished;
  }
  EXPECT_EQ(col.size(), 10u);
  EXPECT_LE(col.max_unfinished(), 3u);
}

TEST_F(RedisBrokerTest, BackPressureHoldsWithTwoStreamsAndOneSlot) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1", 30s, 1), col.handler()).is_ok());
  auto cli = make_broker(url());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "p" + std::to_string(i)).is_ok());
    ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "r" + std::to_string(i)).is_ok());
  }
  for (std::size_t n = 0; n < 8; ++n) {
    auto all = col.wait_for(n + 1);
    ASSERT_EQ(all.size(), n + 1);
    EXPECT_FALSE(wait_until([&] { return col.size() > n + 1; }, 50ms));
    col.finished_one();
    ASSERT_TRUE(finish_sync(*srv, all[n], nullptr).is_ok());
  }
  EXPECT_EQ(col.max_unfinished(), 1u);
  RedisClient c = server().client();
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kPython, q_)), 0);
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kRaw, q_)), 0);
}

TEST_F(RedisBrokerTest, ResultsExpireAfterTheConfiguredTtl) {
  auto srv = make_broker(url(), {{"result_ttl", "1500"}});
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  std::string id = new_uuid();
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "x", id).is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  ReplyView reply{Flavour::kPython, q_, id, {}, "r", false};
  ASSERT_TRUE(finish_sync(*srv, got[0], &reply).is_ok());
  RedisClient c = server().client();
  std::string key = protocol::result_key(Flavour::kPython, q_, id);
  long long ttl = c.integer({"PTTL", key});
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 1500);
  EXPECT_TRUE(wait_until([&] { return c.integer({"EXISTS", key}) == 0; }, 5s));
}

TEST_F(RedisBrokerTest, OpenRepliesTwiceKeepsTheAddressAndUsesTheNewestHandler) {
  auto cli = make_broker(url());
  std::atomic<int> first{0}, second{0};
  auto a = cli->open_replies(q_, [&](std::string_view, std::string_view) { ++first; });
  auto b = cli->open_replies(q_, [&](std::string_view, std::string_view) { ++second; });
  ASSERT_TRUE(a.is_ok());
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(*a, *b);
  RedisClient c = server().client();
  c.command({"XADD", *a, "*", "message_id", "m1", "message", "p"});
  EXPECT_TRUE(wait_until([&] { return second.load() == 1; }, 5s));
  EXPECT_EQ(first.load(), 0);
  // A second queue on the same instance gets its own stream, read by the same listener.
  std::string q2 = unique_queue();
  std::atomic<int> third{0};
  auto other = cli->open_replies(q2, [&](std::string_view, std::string_view) { ++third; });
  ASSERT_TRUE(other.is_ok());
  EXPECT_NE(*other, *a);
  c.command({"XADD", *other, "*", "message_id", "m2", "message", "p"});
  EXPECT_TRUE(wait_until([&] { return third.load() == 1; }, 5s));
}

TEST_F(RedisBrokerTest, ConsumedRepliesAreTrimmedFromTheClientStream) {
  auto cli = make_broker(url());
  std::atomic<int> got{0};
  auto reply_to = cli->open_replies(q_, [&](std::string_view, std::string_view) { ++got; });
  ASSERT_TRUE(reply_to.is_ok());
  RedisClient c = server().client();
  for (int i = 0; i < 50; ++i) {
    c.command({"XADD", *reply_to, "*", "message_id", std::to_string(i), "message", "p"});
  }
  ASSERT_TRUE(wait_until([&] { return got.load() == 50; }, 5s));
  EXPECT_TRUE(wait_until([&] { return c.integer({"XLEN", *reply_to}) <= 1; }, 5s));
}

TEST_F(RedisBrokerTest, QueueStatsCountWaitingPendingConsumersAndDeadLetters) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1", 30s, 2), col.handler()).is_ok());
  auto cli = make_broker(url());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "m").is_ok());
  }
  ASSERT_EQ(col.wait_for(2).size(), 2u);
  auto stats = cli->queue_stats(q_);
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
  EXPECT_EQ(stats->pending, 2);
  EXPECT_EQ(stats->length, 3);
  EXPECT_EQ(stats->consumers, 1);
  EXPECT_EQ(stats->dead_letters, 0);
  auto empty = cli->queue_stats(unique_queue());
  ASSERT_TRUE(empty.is_ok()) << empty.status().to_string();
  EXPECT_EQ(empty->length, 0);
}

TEST_F(RedisBrokerTest, ServedRequestsAreTrimmedAndUnservedOnesAreKept) {
  auto srv = make_broker(url(), {{"trim_interval", "50"}});
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1", 30s, 64), col.handler()).is_ok());
  auto cli = make_broker(url());
  const int n = 300;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, "m").is_ok());
  }
  for (int i = 0; i < n; ++i) {
    auto all = col.wait_for(static_cast<std::size_t>(i) + 1);
    ASSERT_GT(all.size(), static_cast<std::size_t>(i));
    ASSERT_TRUE(finish_sync(*srv, all[static_cast<std::size_t>(i)], nullptr).is_ok());
  }
  RedisClient c = server().client();
  std::string stream = protocol::request_stream(Flavour::kPython, q_);
  // MINID ~ drops whole stream nodes (100 entries each by default).
  EXPECT_TRUE(wait_until(
      [&] {
        return c.integer({"XLEN", stream}) <= 100;
      },
      10s))
      << c.integer({"XLEN", stream});

  // A queue whose requests are delivered but not finished keeps every one of them.
  std::string q2 = unique_queue();
  auto srv2 = make_broker(url(), {{"trim_interval", "50"}});
  Collector col2;
  ASSERT_TRUE(srv2->subscribe(sub_options(q2, "s2", 30s, 5), col2.handler()).is_ok());
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q2, "m").is_ok());
  }
  ASSERT_EQ(col2.wait_for(5).size(), 5u);
  std::string stream2 = protocol::request_stream(Flavour::kPython, q2);
  EXPECT_FALSE(wait_until([&] { return c.integer({"XLEN", stream2}) < n; }, 500ms));
}

TEST_F(RedisBrokerTest, PublishCapsTheStreamWhenAskedTo) {
  auto cli = make_broker(url(), {{"stream_max_len", "100"}});
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "m").is_ok());
  }
  RedisClient c = server().client();
  EXPECT_LT(c.integer({"XLEN", protocol::request_stream(Flavour::kRaw, q_)}), 1000);
}

TEST_F(RedisBrokerTest, BinaryPayloadsSurviveTheRoundTrip) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  std::string payload("a\0b\r\n$3\r\n\xff\xfe", 12);
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q_, payload).is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, payload);
}

TEST_F(RedisBrokerTest, A64MegabytePayloadIsDeliveredAndItsDeadLetterTruncated) {
  auto srv = make_broker(url(), {{"dead_letter_max_payload", "1048576"}});
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url(), {{"command_timeout", "60000"}});
  std::string big(64u << 20, 'x');
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, big).is_ok());
  auto got = col.wait_for(1, 60s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload.size(), big.size());
  ASSERT_TRUE(finish_sync(*srv, got[0], nullptr, "message too large").is_ok());
  RedisClient c = server().client();
  auto r = c.command({"XRANGE", protocol::dead_letter_stream(q_), "-", "+"});
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(r->elements, 1u);
  const redisReply* fields = r->element[0]->element[1];
  std::map<std::string, std::string> f;
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    f[std::string(fields->element[i]->str, fields->element[i]->len)] =
        std::string(fields->element[i + 1]->str, fields->element[i + 1]->len);
  }
  EXPECT_EQ(f["payload_bytes"], std::to_string(big.size()));
  EXPECT_EQ(f["truncated"], "1");
  EXPECT_EQ(f["payload"].size(), 1048576u);
  EXPECT_EQ(f["reason"], "message too large");
}

}  // namespace
}  // namespace prpc::redis::testing
