// Several servers on one queue: every request runs exactly once and every caller is answered
// once; and the same broker loaded as a plugin through the C ABI.
#include <gtest/gtest.h>

#include "prpc/plugin_loader.hpp"
#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

TEST(RedisSharing, TwoServersShareAQueueUnderLoadWithoutDuplicatesOrLoss) {
  RedisServer server;
  std::string q = unique_queue();
  auto cli = make_broker(server.url());
  ReplyLog replies;
  auto reply_to = cli->open_replies(q, replies.handler());
  ASSERT_TRUE(reply_to.is_ok());
  // Each server has its own broker instance: its own connections and consumer, as a separate
  // process would.
  EchoServer a(server.url(), q, "server-a", *reply_to);
  EchoServer b(server.url(), q, "server-b", *reply_to);

  const int n = 4000;
  std::vector<std::string> ids;
  std::atomic<int> published{0}, failed{0};
  for (int i = 0; i < n; ++i) {
    ids.push_back(new_uuid());
    Flavour f = i % 4 == 0 ? Flavour::kRaw : Flavour::kPython;
    cli->publish(PublishView{f, q, ids.back(), ids.back()}, [&](const Status& s) {
      if (!s.is_ok()) ++failed;
      ++published;
    });
  }
  ASSERT_TRUE(wait_until([&] { return published.load() == n; }, 60s));
  EXPECT_EQ(failed.load(), 0);
  ASSERT_TRUE(replies.wait_for_ids(ids, 60s)) << replies.distinct() << " of " << n;

  auto ca = a.counts();
  auto cb = b.counts();
  std::size_t duplicates = 0, runs = 0;
  for (const auto& id : ids) {
    int total = (ca.count(id) ? ca[id] : 0) + (cb.count(id) ? cb[id] : 0);
    runs += static_cast<std::size_t>(total);
    if (total != 1) ++duplicates;
    EXPECT_EQ(replies.count(id), 1) << id;
  }
  EXPECT_EQ(duplicates, 0u);
  EXPECT_EQ(runs, static_cast<std::size_t>(n));
  EXPECT_GT(a.handled(), 0u);
  EXPECT_GT(b.handled(), 0u);
  RedisClient c = server.client();
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kPython, q)), 0);
  EXPECT_EQ(pending_count(c, protocol::request_stream(Flavour::kRaw, q)), 0);
}

TEST(RedisPlugin, TheBrokerWorksThroughTheCAbi) {
  RedisServer server;
  PluginRegistry registry;
  ASSERT_TRUE(registry.ensure(PluginKind::kBroker, "redis").is_ok());
  const FactoryInfo* info = registry.find(PluginKind::kBroker, "redis");
  ASSERT_NE(info, nullptr);
  bool url_is_secret = false;
  for (const OptionInfo& o : info->options) {
    if (o.key == "url") url_is_secret = o.secret;
  }
  EXPECT_TRUE(url_is_secret);

  auto srv = registry.make_broker("redis", {{"url", server.url()}, {"result_ttl", "1m"}});
  ASSERT_TRUE(srv.is_ok()) << srv.status().to_string();
  auto cli = registry.make_broker("redis", {{"url", server.url()}});
  ASSERT_TRUE(cli.is_ok()) << cli.status().to_string();
  auto bad = registry.make_broker("redis", {{"url", "http://nope"}});
  EXPECT_FALSE(bad.is_ok());

  std::string q = unique_queue();
  Collector col;
  ASSERT_TRUE((*srv)->subscribe(sub_options(q, "s"), col.handler()).is_ok());
  ReplyLog replies;
  auto reply_to = (*cli)->open_replies(q, replies.handler());
  ASSERT_TRUE(reply_to.is_ok()) << reply_to.status().to_string();
  std::string id = new_uuid();
  ASSERT_TRUE(publish_sync(**cli, Flavour::kRaw, q, "{\"x\": 1}", id).is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "{\"x\": 1}");
  ReplyView reply{Flavour::kRaw, q, id, *reply_to, "{\"result\": 1}", false};
  ASSERT_TRUE(finish_sync(**srv, got[0], &reply).is_ok());
  ASSERT_TRUE(replies.wait_for_ids({id}, 10s));
  EXPECT_EQ(replies.payload(id), "{\"result\": 1}");
  RedisClient c = server.client();
  long long ttl = c.integer({"PTTL", protocol::result_key(Flavour::kRaw, q, id)});
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 60000);
  auto stats = (*cli)->queue_stats(q);
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->pending, 0);
}

}  // namespace
}  // namespace prpc::redis::testing
