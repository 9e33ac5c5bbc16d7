// Connections: ACL users, plain passwords, SELECT, unix sockets, unreachable Redis, restarts in
// the middle of traffic, and credentials kept out of every log line.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

std::string tcp_url(const RedisServer& s, const std::string& userinfo, int db = 0) {
  return "redis://" + userinfo + "@127.0.0.1:" + std::to_string(s.port()) + "/" +
         std::to_string(db);
}

TEST(RedisConnection, AnAclUserLogsInAndWorks) {
  RedisServer server;
  server.set_acl_user("alice", "alice-pw-1");
  std::string q = unique_queue();
  auto b = make_broker(tcp_url(server, "alice:alice-pw-1"));
  ASSERT_TRUE(b->connect().is_ok());
  ASSERT_TRUE(publish_sync(*b, Flavour::kRaw, q, "{}").is_ok());
  RedisClient c = server.client();
  EXPECT_EQ(c.integer({"XLEN", protocol::request_stream(Flavour::kRaw, q)}), 1);
  // Redis saw the commands as alice's.
  std::string clients = c.text({"CLIENT", "LIST"});
  EXPECT_NE(clients.find("user=alice"), std::string::npos) << clients;
}

TEST(RedisConnection, AWrongPasswordFailsAtOnceAndIsNeverShown) {
  RedisServer server;
  server.set_acl_user("bob", "right-pw");
  LogCapture logs;
  prpc::log::set_level(prpc::log::Level::kDebug);
  auto b = make_broker(tcp_url(server, "bob:wrong-pw-XYZ"), {{"connect_timeout", "10000"}});
  auto start = std::chrono::steady_clock::now();
  Status s = b->connect();
  auto took = std::chrono::steady_clock::now() - start;
  prpc::log::set_level(prpc::log::Level::kInfo);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.to_string();
  EXPECT_NE(s.message().find("WRONGPASS"), std::string::npos) << s.to_string();
  EXPECT_EQ(s.message().find("wrong-pw-XYZ"), std::string::npos) << s.to_string();
  EXPECT_LT(took, 5s) << "a refused login is not retried until the connect timeout";
  EXPECT_EQ(logs.joined().find("wrong-pw-XYZ"), std::string::npos) << logs.joined();
}

TEST(RedisConnection, APlainPasswordLogsInAsTheDefaultUser) {
  RedisServer server;
  server.require_password("plain-secret");
  std::string q = unique_queue();
  auto ok = make_broker(tcp_url(server, ":plain-secret"));
  ASSERT_TRUE(ok->connect().is_ok());
  ASSERT_TRUE(publish_sync(*ok, Flavour::kPython, q, "x").is_ok());
  auto anonymous = make_broker(server.url());
  Status s = anonymous->connect();
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.to_string();
  EXPECT_NE(s.message().find("NOAUTH"), std::string::npos) << s.to_string();
}

TEST(RedisConnection, TheDatabaseComesFromTheUrl) {
  RedisServer server;
  std::string q = unique_queue();
  auto b = make_broker(server.url(5));
  ASSERT_TRUE(publish_sync(*b, Flavour::kPython, q, "x").is_ok());
  RedisClient c = server.client();
  std::string stream = protocol::request_stream(Flavour::kPython, q);
  EXPECT_EQ(c.integer({"EXISTS", stream}), 0);
  c.command({"SELECT", "5"});
  EXPECT_EQ(c.integer({"XLEN", stream}), 1);
}

TEST(RedisConnection, ADatabaseThatDoesNotExistIsRefused) {
  RedisServer server;
  auto b = make_broker(server.url(99));
  Status s = b->connect();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("SELECT"), std::string::npos) << s.to_string();
}

TEST(RedisConnection, AUnixSocketUrlWithCredentialsAndDatabase) {
  RedisServerOptions opts;
  opts.unix_socket = true;
  RedisServer server(opts);
  server.set_acl_user("carol", "carol-pw");
  std::string q = unique_queue();
  std::string url = "unix://carol:carol-pw@" + server.unix_path().string() + "?db=2";
  auto srv = make_broker(url);
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q, "s"), col.handler()).is_ok());
  auto cli = make_broker(url);
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q, "via socket").is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "via socket");
  RedisClient c = RedisClient::unix_socket(server.unix_path(), "carol", "carol-pw");
  c.command({"SELECT", "2"});
  EXPECT_EQ(c.integer({"XLEN", protocol::request_stream(Flavour::kRaw, q)}), 1);
}

TEST(RedisConnection, AnUnreachableRedisIsUnavailableWithinTheConnectTimeout) {
  int port = prpc::testing::free_port();
  auto b =
      make_broker("redis://127.0.0.1:" + std::to_string(port) + "/0", {{"connect_timeout", "500"}});
  auto start = std::chrono::steady_clock::now();
  Status s = b->connect();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_TRUE(s.retriable());
}

TEST(RedisConnection, CommandsWhileRedisIsDownFailClearlyAfterTheHoldThenRecover) {
  RedisServer server;
  std::string q = unique_queue();
  auto b = make_broker(server.url(), {{"reconnect_hold", "300"}});
  ASSERT_TRUE(publish_sync(*b, Flavour::kPython, q, "before").is_ok());
  server.stop(/*keep_data=*/true);
  Status down = publish_sync(*b, Flavour::kPython, q, "during");
  ASSERT_FALSE(down.is_ok());
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.to_string();
  EXPECT_NE(down.message().find("may not have reached Redis"), std::string::npos)
      << down.to_string();
  server.start();
  EXPECT_TRUE(wait_until([&] { return publish_sync(*b, Flavour::kPython, q, "after").is_ok(); },
                         10s, 50ms));
  RedisClient c = server.client();
  EXPECT_GE(c.integer({"XLEN", protocol::request_stream(Flavour::kPython, q)}), 2);
}

TEST(RedisConnection, ARestartInTheMiddleOfTrafficLosesNothing) {
  RedisServer server;
  std::string q = unique_queue();
  auto cli = make_broker(server.url(), {{"reconnect_hold", "10000"}});
  ReplyLog replies;
  auto reply_to = cli->open_replies(q, replies.handler());
  ASSERT_TRUE(reply_to.is_ok());
  EchoServer echo(server.url(), q, "echo", *reply_to, 500ms, {{"reconnect_hold", "10000"}});

  const int window = 20;  // publishes allowed in flight at once
  std::vector<std::string> ids;
  std::mutex failed_mutex;
  std::set<std::string> failed;
  std::atomic<int> published{0};
  std::atomic<bool> restarting{false}, restarted{false};
  int issued_during_restart = 0;
  int most_in_flight = 0;
  std::thread restarter([&] {
    wait_until([&] { return published.load() >= 100; }, 30s, 1ms);
    restarting = true;
    server.restart(/*keep_data=*/true);
    restarted = true;
  });
  // Traffic before, during and after the restart.
  int after = 0;
  for (int i = 0; after < 100 && i < 100000; ++i) {
    std::string id = new_uuid();
    ids.push_back(id);
    if (restarting && !restarted) ++issued_during_restart;
    if (restarted) ++after;
    // The payload is the id: the echo server replies under it.
    cli->publish(PublishView{Flavour::kPython, q, id, id}, [&, id](const Status& s) {
      if (!s.is_ok()) {
        std::lock_guard lock(failed_mutex);
        failed.insert(id);
      }
      ++published;
    });
    most_in_flight = std::max(most_in_flight, i + 1 - published.load());
    if (i % window == window - 1) {
      wait_until([&] { return published.load() > i - window / 2; }, 30s, 1ms);
    }
  }
  const int n = static_cast<int>(ids.size());
  restarter.join();
  ASSERT_TRUE(wait_until([&] { return published.load() == n; }, 30s));
  // Every request is answered, or its publish said it may not have gone through.
  bool all = wait_until(
      [&] {
        std::lock_guard lock(failed_mutex);
        for (const auto& id : ids) {
          if (!replies.has(id) && failed.count(id) == 0) return false;
        }
        return true;
      },
      60s, 20ms);
  std::lock_guard lock(failed_mutex);
  std::size_t missing = 0;
  for (const auto& id : ids)
    if (!replies.has(id) && failed.count(id) == 0) ++missing;
  EXPECT_TRUE(all) << missing << " requests neither answered nor reported as failed";
  EXPECT_GT(issued_during_restart, 0);
  // Only commands already sent when the connection dropped can fail; later ones are held until
  // Redis is back.
  EXPECT_LE(failed.size(), static_cast<std::size_t>(most_in_flight));
  RedisClient c = server.client();
  EXPECT_TRUE(wait_until(
      [&] { return pending_count(c, protocol::request_stream(Flavour::kPython, q)) == 0; }, 30s));
  for (const auto& id : ids) {
    if (replies.has(id)) {
      EXPECT_EQ(replies.payload(id), "echo:" + id);
    }
  }
}

TEST(RedisConnection, AfterAHardKillTheBrokersComeBackAndServeAgain) {
  RedisServer server;
  std::string q = unique_queue();
  auto cli = make_broker(server.url(), {{"reconnect_hold", "200"}});
  ReplyLog replies;
  auto reply_to = cli->open_replies(q, replies.handler());
  ASSERT_TRUE(reply_to.is_ok());
  EchoServer echo(server.url(), q, "echo", *reply_to, 500ms, {{"reconnect_hold", "200"}});
  std::string before = new_uuid();
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q, before, before).is_ok());
  ASSERT_TRUE(replies.wait_for_ids({before}, 10s));

  server.kill();  // nothing saved: streams, groups and keys are gone
  Status during = publish_sync(*cli, Flavour::kPython, q, "x");
  EXPECT_FALSE(during.is_ok());
  EXPECT_EQ(during.code(), StatusCode::kUnavailable) << during.to_string();
  server.start();

  // The server side notices the lost group (NOGROUP) and creates it again.
  std::string after = new_uuid();
  ASSERT_TRUE(wait_until(
      [&] { return publish_sync(*cli, Flavour::kPython, q, after, after).is_ok(); }, 10s, 50ms));
  EXPECT_TRUE(replies.wait_for_ids({after}, 15s));
}

TEST(RedisConnection, CredentialsNeverReachTheLog) {
  RedisServer server;
  server.set_acl_user("dora", "dora-secret-77");
  LogCapture logs;
  prpc::log::set_level(prpc::log::Level::kDebug);
  {
    std::string q = unique_queue();
    std::string url = tcp_url(server, "dora:dora-secret-77");
    auto cli = make_broker(url);
    ReplyLog replies;
    auto reply_to = cli->open_replies(q, replies.handler());
    ASSERT_TRUE(reply_to.is_ok());
    EchoServer echo(url, q, "echo", *reply_to, 500ms);
    std::string id = new_uuid();
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q, id, id).is_ok());
    ASSERT_TRUE(replies.wait_for_ids({id}, 10s));
    server.restart(true);
    server.set_acl_user("dora", "dora-secret-77");  // ACL users are not in the dump
    std::string id2 = new_uuid();
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q, id2, id2).is_ok());
    ASSERT_TRUE(replies.wait_for_ids({id2}, 15s));
    auto wrong = make_broker(tcp_url(server, "dora:not-dora-secret-88"));
    EXPECT_FALSE(wrong->connect().is_ok());
  }
  prpc::log::set_level(prpc::log::Level::kInfo);
  std::string all = logs.joined();
  EXPECT_FALSE(all.empty());
  EXPECT_EQ(all.find("dora-secret-77"), std::string::npos) << all;
  EXPECT_EQ(all.find("not-dora-secret-88"), std::string::npos) << all;
}

TEST(RedisConnection, TheDocumentedAclPermissionsAreEnough) {
  RedisServer server;
  // docs/brokers/redis.md, "ACL permissions".
  server.set_acl_user("minimal", "minimal-pw",
                      {"~prpc_*",
                       "~prcp_message_feedback_*",
                       "-@all",
                       "+@stream",
                       "+get",
                       "+set",
                       "+pexpire",
                       "+exists",
                       "+multi",
                       "+exec",
                       "+evalsha",
                       "+script|load",
                       "+client|id",
                       "+client|setname",
                       "+client|unblock",
                       "+select",
                       "+hset",
                       "+hgetall",
                       "+hdel",
                       "+time"});
  std::string url = tcp_url(server, "minimal:minimal-pw", 1);
  std::string q = unique_queue();
  auto srv = make_broker(url, {{"trim_interval", "50"}});
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q, "s", 300ms), col.handler()).is_ok());
  auto cli = make_broker(url);
  ReplyLog replies;
  auto reply_to = cli->open_replies(q, replies.handler());
  ASSERT_TRUE(reply_to.is_ok()) << reply_to.status().to_string();
  std::string a = new_uuid(), b = new_uuid();
  ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q, "a", a).is_ok());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q, "b", b).is_ok());
  auto got = col.wait_for(2);
  ASSERT_EQ(got.size(), 2u);
  srv->touch(got[0].view());
  for (const Delivery& d : got) {
    std::string id = d.payload == "a" ? a : b;
    std::string result = "r-" + d.payload;
    ReplyView reply{d.flavour, q, id, *reply_to, result, false};
    ASSERT_TRUE(finish_sync(*srv, d, &reply, d.payload == "b" ? "dead" : "").is_ok());
  }
  ASSERT_TRUE(replies.wait_for_ids({a, b}, 10s));
  auto found = lookup_sync(*cli, Flavour::kPython, q, a);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_EQ(found->value_or(""), "r-a");
  auto stats = cli->queue_stats(q);
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
  EXPECT_EQ(stats->dead_letters, 1);
  EXPECT_EQ(stats->pending, 0);
  // A crashed consumer's request is claimed under the same permissions.
  std::string c = new_uuid();
  {
    auto crashing = make_broker(url);
    Collector lost;
    ASSERT_TRUE(crashing->subscribe(sub_options(q, "gone", 300ms), lost.handler()).is_ok());
    srv->unsubscribe();
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q, "c", c).is_ok());
    ASSERT_EQ(lost.wait_for(1).size(), 1u);
  }
  auto again = make_broker(url);
  Collector col2;
  ASSERT_TRUE(again->subscribe(sub_options(q, "s2", 300ms), col2.handler()).is_ok());
  auto claimed = col2.wait_for(1, 10s);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].delivery_count, 2u);
  ASSERT_TRUE(finish_sync(*again, claimed[0], nullptr).is_ok());
  ASSERT_TRUE(again->queue_stats(q).is_ok());
}

TEST(RedisConnection, AnAclWithoutTheLivenessCommandsStillRecoversByIdleTime) {
  // The permissions documented before liveness: the hash commands and TIME are missing.
  RedisServer server;
  server.set_acl_user("older", "older-pw",
                      {"~prpc_*", "~prcp_message_feedback_*", "-@all", "+@stream", "+get", "+set",
                       "+pexpire", "+exists", "+multi", "+exec", "+evalsha", "+script|load",
                       "+client|id", "+client|setname", "+client|unblock", "+select"});
  LogCapture logs;
  std::string url = tcp_url(server, "older:older-pw", 1);
  std::string q = unique_queue();
  auto cli = make_broker(url);
  std::string id = new_uuid();
  {
    auto crashing = make_broker(url);
    Collector lost;
    ASSERT_TRUE(crashing->subscribe(sub_options(q, "gone", 300ms), lost.handler()).is_ok());
    ASSERT_TRUE(publish_sync(*cli, Flavour::kPython, q, "c", id).is_ok());
    ASSERT_EQ(lost.wait_for(1).size(), 1u);
  }
  auto again = make_broker(url);
  Collector col;
  ASSERT_TRUE(again->subscribe(sub_options(q, "s", 300ms), col.handler()).is_ok());
  auto claimed = col.wait_for(1, 10s);
  ASSERT_EQ(claimed.size(), 1u) << logs.joined();
  EXPECT_EQ(claimed[0].delivery_count, 2u);
  ASSERT_TRUE(finish_sync(*again, claimed[0], nullptr).is_ok());
  EXPECT_TRUE(wait_until(
      [&] { return logs.joined().find("+hset +hgetall +hdel +time") != std::string::npos; }, 5s))
      << logs.joined();
}

}  // namespace
}  // namespace prpc::redis::testing
