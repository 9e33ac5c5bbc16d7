// Signatures through the Redis broker (docs/security.md): a request's `signature` and `key_id`
// fields reach the server, a reply's reach the client with the push and sit beside the stored
// result in <result key>:signature, and a dead letter keeps the request's, so a requeued request
// is signed as it was sent. The broker carries signatures; the engines check them.
#include <gtest/gtest.h>

#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

class RedisSignatureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static std::string url() { return server_->url(); }
  static RedisClient admin() { return server_->client(); }

  std::string q_ = unique_queue();

 private:
  static RedisServer* server_;
};
RedisServer* RedisSignatureTest::server_ = nullptr;

Status publish_signed(Broker& b, const std::string& queue, const std::string& payload,
                      const std::string& signature, const std::string& key_id) {
  std::promise<Status> p;
  b.publish(PublishView(Flavour::kRaw, queue, "", payload, signature, key_id),
            [&p](const Status& s) { p.set_value(s); });
  return p.get_future().get();
}

Result<std::optional<StoredResult>> lookup_signed(Broker& b, Flavour f, const std::string& queue,
                                                  const std::string& id) {
  std::promise<Result<std::optional<StoredResult>>> p;
  b.lookup_result_signed(f, queue, id,
                         [&p](Result<std::optional<StoredResult>> r) { p.set_value(r); });
  return p.get_future().get();
}

TEST_F(RedisSignatureTest, SignaturesTravelWithRequestsRepliesAndStoredResults) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  std::promise<std::vector<std::string>> pushed;
  auto reply_to = cli->open_replies_signed(q_, [&](const PushedReplyView& r) {
    pushed.set_value({std::string(r.message_id), std::string(r.payload),
                      std::string(r.signature), std::string(r.key_id)});
  });
  ASSERT_TRUE(reply_to.is_ok()) << reply_to.status().to_string();

  ASSERT_TRUE(publish_signed(*cli, q_, "the request", "aa11", "key-1").is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "the request");
  EXPECT_EQ(got[0].signature, "aa11");
  EXPECT_EQ(got[0].key_id, "key-1");
  // As the entry holds them, for a raw reader.
  auto entries = admin().command({"XRANGE", protocol::request_stream(Flavour::kRaw, q_), "-", "+"});
  ASSERT_EQ(entries->elements, 1u);
  std::vector<std::string> fields;
  for (std::size_t i = 0; i < entries->element[0]->element[1]->elements; ++i) {
    const redisReply* f = entries->element[0]->element[1]->element[i];
    fields.emplace_back(f->str, f->len);
  }
  EXPECT_EQ(fields, (std::vector<std::string>{"message", "the request", "signature", "aa11",
                                              "key_id", "key-1"}));

  std::string id = new_uuid();
  ReplyView reply(Flavour::kRaw, q_, id, *reply_to, "the result", false, "bb22", "key-2");
  ASSERT_TRUE(finish_sync(*srv, got[0], &reply).is_ok());
  auto future = pushed.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(future.get(), (std::vector<std::string>{id, "the result", "bb22", "key-2"}));
  std::string key = protocol::result_key(Flavour::kRaw, q_, id);
  EXPECT_EQ(admin().get(key), "the result");
  EXPECT_EQ(admin().get(key + ":signature"), "bb22");
  // Same TTL as the result.
  long long ttl = admin().integer({"PTTL", key + ":signature"});
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, admin().integer({"PTTL", key}) + 1000);
  auto stored = lookup_signed(*cli, Flavour::kRaw, q_, id);
  ASSERT_TRUE(stored.is_ok() && stored->has_value());
  EXPECT_EQ((*stored)->payload, "the result");
  EXPECT_EQ((*stored)->signature, "bb22");
  // The unsigned lookup still reads the result alone.
  EXPECT_EQ(lookup_sync(*cli, Flavour::kRaw, q_, id)->value_or(""), "the result");
}

TEST_F(RedisSignatureTest, UnsignedRepliesLeaveNoSignatureBehind) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  ASSERT_TRUE(publish_sync(*cli, Flavour::kRaw, q_, "plain").is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].signature, "");
  std::string id = new_uuid();
  ReplyView reply(Flavour::kRaw, q_, id, "", "unsigned result", false);
  ASSERT_TRUE(finish_sync(*srv, got[0], &reply).is_ok());
  std::string key = protocol::result_key(Flavour::kRaw, q_, id);
  EXPECT_EQ(admin().integer({"EXISTS", key + ":signature"}), 0);
  auto stored = lookup_signed(*cli, Flavour::kRaw, q_, id);
  ASSERT_TRUE(stored.is_ok() && stored->has_value());
  EXPECT_EQ((*stored)->signature, "");
}

TEST_F(RedisSignatureTest, ADeadLetterKeepsItsSignatureThroughARequeue) {
  auto srv = make_broker(url());
  Collector col;
  ASSERT_TRUE(srv->subscribe(sub_options(q_, "s1"), col.handler()).is_ok());
  auto cli = make_broker(url());
  std::promise<std::string> pushed;
  auto reply_to = cli->open_replies_signed(
      q_, [&](const PushedReplyView& r) { pushed.set_value(std::string(r.signature)); });
  ASSERT_TRUE(reply_to.is_ok());
  std::string id = new_uuid();
  ASSERT_TRUE(publish_signed(*cli, q_, "signed request", "cc33", "key-3").is_ok());
  auto got = col.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  // Dead-lettered (the finish script) with a signed error reply, stored and pushed.
  ReplyView reply(Flavour::kRaw, q_, id, *reply_to, "an error", false, "dd44", "key-3");
  ASSERT_TRUE(finish_sync(*srv, got[0], &reply, "delivered too often").is_ok());
  auto future = pushed.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(future.get(), "dd44");
  std::string key = protocol::result_key(Flavour::kRaw, q_, id);
  EXPECT_EQ(admin().get(key + ":signature"), "dd44");
  auto requeued = cli->requeue_dead_letters(q_, {});
  ASSERT_TRUE(requeued.is_ok()) << requeued.status().to_string();
  EXPECT_EQ(*requeued, 1u);
  // The error result and its signature are gone; the request is back, signed as it was sent.
  EXPECT_EQ(admin().integer({"EXISTS", key, key + ":signature"}), 0);
  auto again = col.wait_for(2);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[1].payload, "signed request");
  EXPECT_EQ(again[1].signature, "cc33");
  EXPECT_EQ(again[1].key_id, "key-3");
}

}  // namespace
}  // namespace prpc::redis::testing
