// The `url` option: every accepted form, and refusals that say what is wrong.
#include "prpc/broker_redis/url.hpp"

#include <gtest/gtest.h>

#include "prpc/protocol.hpp"

namespace prpc::redis {
namespace {

TEST(RedisUrl, HostPortDb) {
  auto u = parse_redis_url("redis://example.org:6380/3");
  ASSERT_TRUE(u.is_ok()) << u.status().to_string();
  EXPECT_FALSE(u->unix_socket);
  EXPECT_EQ(u->host, "example.org");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 3);
  EXPECT_TRUE(u->user.empty());
  EXPECT_TRUE(u->password.empty());
}

TEST(RedisUrl, Defaults) {
  auto u = parse_redis_url("redis://");
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->db, 0);
  auto v = parse_redis_url("redis://h/");
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(v->db, 0);
}

TEST(RedisUrl, AclUserAndPassword) {
  auto u = parse_redis_url("redis://alice:s%40cret%3A1@127.0.0.1:7000/2");
  ASSERT_TRUE(u.is_ok()) << u.status().to_string();
  EXPECT_EQ(u->user, "alice");
  EXPECT_EQ(u->password, "s@cret:1");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->db, 2);
}

TEST(RedisUrl, PasswordOnlyIsTheDefaultUser) {
  auto u = parse_redis_url("redis://:pw@localhost:6379/0");
  ASSERT_TRUE(u.is_ok());
  EXPECT_TRUE(u->user.empty());
  EXPECT_EQ(u->password, "pw");
}

TEST(RedisUrl, UnescapedAtInPasswordUsesTheLastAt) {
  auto u = parse_redis_url("redis://bob:p@ss@host:1/0");
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ(u->user, "bob");
  EXPECT_EQ(u->password, "p@ss");
  EXPECT_EQ(u->host, "host");
}

TEST(RedisUrl, Ipv6) {
  auto u = parse_redis_url("redis://[::1]:6390/1");
  ASSERT_TRUE(u.is_ok()) << u.status().to_string();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 6390);
  EXPECT_EQ(u->redacted(), "redis://[::1]:6390/1");
}

TEST(RedisUrl, UnixSocket) {
  auto u = parse_redis_url("unix:///run/redis/redis.sock?db=5");
  ASSERT_TRUE(u.is_ok()) << u.status().to_string();
  EXPECT_TRUE(u->unix_socket);
  EXPECT_EQ(u->path, "/run/redis/redis.sock");
  EXPECT_EQ(u->db, 5);
  auto w = parse_redis_url("unix://carol:pw@/tmp/r.sock");
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(w->user, "carol");
  EXPECT_EQ(w->password, "pw");
  EXPECT_EQ(w->path, "/tmp/r.sock");
  auto q = parse_redis_url("unix:///tmp/r.sock?db=1&user=dave&password=x%26y");
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  EXPECT_EQ(q->user, "dave");
  EXPECT_EQ(q->password, "x&y");
}

TEST(RedisUrl, RedactedNeverShowsCredentials) {
  auto u = parse_redis_url("redis://alice:topsecret@h:1/4");
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ(u->redacted(), "redis://h:1/4");
  auto v = parse_redis_url("unix://alice:topsecret@/tmp/s.sock?db=2");
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(v->redacted(), "unix:///tmp/s.sock?db=2");
}

TEST(RedisUrl, Refusals) {
  for (const char* bad :
       {"http://h", "rediss://h:1", "redis://h:0", "redis://h:70000", "redis://h:x",
        "redis://h/abc", "redis://h/-1", "unix://relative.sock", "unix:///s.sock?db=x",
        "unix:///s.sock?colour=red", "redis://[::1", "redis://a:%zz@h"}) {
    auto u = parse_redis_url(bad);
    EXPECT_FALSE(u.is_ok()) << bad;
    if (!u.is_ok()) {
      EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
  // One line that says why and what to do instead.
  auto tls = parse_redis_url("rediss://user:secret@h:1");
  EXPECT_EQ(tls.status().message().find('\n'), std::string::npos);
  EXPECT_NE(tls.status().message().find("rediss:// (TLS) is not supported"), std::string::npos);
  EXPECT_NE(tls.status().message().find("TLS tunnel"), std::string::npos);
  EXPECT_EQ(tls.status().message().find("secret"), std::string::npos);
}

TEST(RedisNames, KeysFollowTheProtocol) {
  EXPECT_EQ(protocol::request_stream(Flavour::kPython, "task_prpc"), "prpc_task_prpc");
  EXPECT_EQ(protocol::request_stream(Flavour::kRaw, "task_prpc"), "prpc_raw_task_prpc");
  EXPECT_EQ(protocol::result_key(Flavour::kPython, "task_prpc", "id1"),
            "prcp_message_feedback_id1");
  EXPECT_EQ(protocol::result_key(Flavour::kRaw, "task_prpc", "id1"),
            "prpc_feedback_raw_task_prpc_id1");
  EXPECT_EQ(protocol::dead_letter_stream("task_prpc"), "prpc_dead_task_prpc");
  EXPECT_EQ(protocol::reply_stream_prefix("task_prpc"), "prpc_feedback_task_prpc:");
}

TEST(RedisNames, OnlyReplyStreamsOfTheQueueArePushedTo) {
  EXPECT_TRUE(protocol::is_reply_stream("prpc_feedback_q:abc123", "q"));
  EXPECT_FALSE(protocol::is_reply_stream("prpc_feedback_q:", "q"));
  EXPECT_FALSE(protocol::is_reply_stream("prpc_feedback_other:abc", "q"));
  EXPECT_FALSE(protocol::is_reply_stream("prcp_message_feedback_x", "q"));
  EXPECT_FALSE(protocol::is_reply_stream("prpc_feedback_q:a b", "q"));
  EXPECT_FALSE(protocol::is_reply_stream("prpc_feedback_q:" + std::string(65, 'a'), "q"));
  // In a Redis Cluster the client part is a hash tag.
  EXPECT_TRUE(protocol::is_reply_stream("prpc_feedback_q:{abc123}", "q"));
  EXPECT_TRUE(protocol::is_reply_stream("prpc_feedback_q:{" + std::string(64, 'a') + "}", "q"));
  EXPECT_FALSE(protocol::is_reply_stream("prpc_feedback_q:{}", "q"));
  EXPECT_FALSE(protocol::is_reply_stream("prpc_feedback_q:{a}b}", "q"));
  EXPECT_FALSE(protocol::is_reply_stream("prpc_feedback_q:{abc", "q"));
}

TEST(RedisUrl, ParsesTheSentinelsTheMasterAndTheDatabase) {
  auto url = parse_redis_url("redis+sentinel://u:p%40ss@10.0.0.1:26380,[::1],host3/mymaster/2");
  ASSERT_TRUE(url.is_ok()) << url.status().to_string();
  EXPECT_TRUE(url->sentinel());
  EXPECT_EQ(url->master_name, "mymaster");
  EXPECT_EQ(url->db, 2);
  EXPECT_EQ(url->user, "u");
  EXPECT_EQ(url->password, "p@ss");
  using Address = std::pair<std::string, std::uint16_t>;
  std::vector<Address> want{{"10.0.0.1", 26380}, {"::1", 26379}, {"host3", 26379}};
  EXPECT_EQ(url->sentinels, want);
  EXPECT_EQ(url->redacted(), "redis+sentinel://10.0.0.1:26380,[::1]:26379,host3:26379/mymaster/2");
  auto no_db = parse_redis_url("redis+sentinel://127.0.0.1:5000/m");
  ASSERT_TRUE(no_db.is_ok());
  EXPECT_EQ(no_db->db, 0);
  for (const char* bad : {"redis+sentinel://127.0.0.1:5000", "redis+sentinel://127.0.0.1:5000/",
                          "redis+sentinel://127.0.0.1:0/m", "redis+sentinel://h:1/m/x"}) {
    EXPECT_FALSE(parse_redis_url(bad).is_ok()) << bad;
  }
}

TEST(RedisUrl, ParsesClusterSeedsAndShards) {
  auto url = parse_redis_url("redis+cluster://u:p%40ss@10.0.0.1:7000,[::1]:7001,host3?shards=3");
  ASSERT_TRUE(url.is_ok()) << url.status().to_string();
  EXPECT_TRUE(url->cluster());
  EXPECT_FALSE(url->sentinel());
  EXPECT_EQ(url->user, "u");
  EXPECT_EQ(url->password, "p@ss");
  EXPECT_EQ(url->shards, 3);
  using Address = std::pair<std::string, std::uint16_t>;
  std::vector<Address> want{{"10.0.0.1", 7000}, {"::1", 7001}, {"host3", 6379}};
  EXPECT_EQ(url->seeds, want);
  EXPECT_EQ(url->redacted(), "redis+cluster://10.0.0.1:7000,[::1]:7001,host3:6379?shards=3");
  EXPECT_TRUE(parse_redis_url("redis+cluster://127.0.0.1:7000/").is_ok());
  EXPECT_TRUE(parse_redis_url("redis+cluster://127.0.0.1:7000/0").is_ok());
  EXPECT_EQ(parse_redis_url("redis+cluster://127.0.0.1:7000")->shards, 1);
  // Shards work on one Redis too (they then share it).
  EXPECT_EQ(parse_redis_url("redis://h:1/2?shards=4")->shards, 4);
  EXPECT_EQ(parse_redis_url("redis://h:1/2?shards=4")->redacted(), "redis://h:1/2?shards=4");
  for (const char* bad :
       {"redis+cluster://", "redis+cluster://h:1/3", "redis+cluster://h:1?db=2",
        "redis+cluster://h:0", "redis+cluster://h:1?shards=0", "redis+cluster://h:1?shards=65",
        "redis+cluster://h:1?shards=x", "redis://h?shards="}) {
    EXPECT_FALSE(parse_redis_url(bad).is_ok()) << bad;
  }
}

}  // namespace
}  // namespace prpc::redis
