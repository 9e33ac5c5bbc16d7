// The queue's list of servers in prpc_servers:{q}: announcements are listed with their info and
// an age on Redis's clock, a server silent past its ttl is listed as stopped, then forgotten
// after the history; malformed info is refused before it reaches Redis.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <future>

#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

Status announce_sync(RedisBroker& b, const std::string& q, const std::string& id,
                     const std::string& info, std::chrono::milliseconds ttl) {
  auto done = std::make_shared<std::promise<Status>>();
  auto future = done->get_future();
  b.announce_server(q, id, info, ttl, [done](const Status& s) { done->set_value(s); });
  if (future.wait_for(10s) != std::future_status::ready) {
    return Status(StatusCode::kTimeout, "announce_server did not complete");
  }
  return future.get();
}

// id -> (alive, info["n"]) of a list_servers() answer.
std::map<std::string, std::pair<bool, int>> listed(RedisBroker& b, const std::string& q) {
  auto text = b.list_servers(q);
  EXPECT_TRUE(text.is_ok()) << text.status().to_string();
  std::map<std::string, std::pair<bool, int>> out;
  if (!text.is_ok()) return out;
  rapidjson::Document d;
  d.Parse(text->c_str(), text->size());
  EXPECT_FALSE(d.HasParseError()) << *text;
  EXPECT_TRUE(d.IsArray()) << *text;
  if (d.HasParseError() || !d.IsArray()) return out;
  for (const auto& s : d.GetArray()) {
    EXPECT_GE(s["age_ms"].GetInt64(), 0);
    const auto& info = s["info"];
    int n = info.IsObject() && info.HasMember("n") ? info["n"].GetInt() : -1;
    out[s["id"].GetString()] = {s["alive"].GetBool(), n};
  }
  return out;
}

TEST(RedisServers, AnnouncedServersAreListedWithTheirInfo) {
  RedisServer server;
  std::string q = unique_queue();
  auto one = make_broker(server.url());
  auto two = make_broker(server.url());
  ASSERT_TRUE(one->connect().is_ok());
  ASSERT_TRUE(two->connect().is_ok());
  EXPECT_EQ(*one->list_servers(q), "[]");
  ASSERT_TRUE(announce_sync(*one, q, "server-1", R"({"n": 1})", 5s).is_ok());
  ASSERT_TRUE(
      announce_sync(*two, q, "server-2", R"({"n": 2, "text": "a \"quoted\" word"})", 5s).is_ok());
  using Entry = std::pair<bool, int>;
  std::map<std::string, Entry> want{{"server-1", {true, 1}}, {"server-2", {true, 2}}};
  EXPECT_EQ(listed(*one, q), want);
  // A newer announcement replaces the older one.
  ASSERT_TRUE(announce_sync(*one, q, "server-1", R"({"n": 11})", 5s).is_ok());
  want["server-1"] = {true, 11};
  EXPECT_EQ(listed(*two, q), want);
  // Another queue's servers are its own.
  EXPECT_EQ(*one->list_servers(unique_queue()), "[]");
  // The key is the documented one.
  RedisClient c = server.client();
  EXPECT_EQ(c.command({"HLEN", protocol::servers_key(q)})->integer, 2);
}

TEST(RedisServers, ASilentServerIsListedAsStoppedThenForgotten) {
  RedisServer server;
  std::string q = unique_queue();
  auto b = make_broker(server.url(), {{"server_history", "700"}});
  ASSERT_TRUE(b->connect().is_ok());
  ASSERT_TRUE(announce_sync(*b, q, "stays", R"({"n": 1})", 60s).is_ok());
  ASSERT_TRUE(announce_sync(*b, q, "goes", R"({"n": 2})", 200ms).is_ok());
  using Entry = std::pair<bool, int>;
  // "stays" keeps announcing, as a live server does (each announcement keeps the hash too).
  auto listed_live = [&] {
    EXPECT_TRUE(announce_sync(*b, q, "stays", R"({"n": 1})", 60s).is_ok());
    return listed(*b, q);
  };
  std::map<std::string, Entry> stopped{{"stays", {true, 1}}, {"goes", {false, 2}}};
  EXPECT_TRUE(wait_until([&] { return listed_live() == stopped; }, 5s));
  std::map<std::string, Entry> forgotten{{"stays", {true, 1}}};
  EXPECT_TRUE(wait_until([&] { return listed_live() == forgotten; }, 5s));
  RedisClient c = server.client();
  EXPECT_EQ(c.command({"HLEN", protocol::servers_key(q)})->integer, 1);
}

TEST(RedisServers, MalformedAnnouncementsAreRefused) {
  RedisServer server;
  std::string q = unique_queue();
  auto b = make_broker(server.url());
  ASSERT_TRUE(b->connect().is_ok());
  for (const char* bad : {"[1, 2]", "{\"a\": ", "not json", "\"text\""}) {
    EXPECT_EQ(announce_sync(*b, q, "s", bad, 5s).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(announce_sync(*b, q, "", "{}", 5s).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(announce_sync(*b, q, "s", "{}", 0ms).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*b->list_servers(q), "[]");
  // Empty info is {}.
  ASSERT_TRUE(announce_sync(*b, q, "s", "", 5s).is_ok());
  EXPECT_EQ(listed(*b, q), (std::map<std::string, std::pair<bool, int>>{{"s", {true, -1}}}));
  // A field somebody else wrote in the hash is skipped, not a failure.
  RedisClient c = server.client();
  c.command({"HSET", protocol::servers_key(q), "foreign", "garbage"});
  EXPECT_EQ(listed(*b, q).size(), 1u);
}

}  // namespace
}  // namespace prpc::redis::testing
