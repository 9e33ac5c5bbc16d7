// Signatures through the Redis broker (docs/security.md): a request's `signature` and `key_id`
// fields reach the server, a reply's reach the client with the push and sit beside the stored
// result in <result key>:signature, and a dead letter keeps the request's, so a requeued request
// is signed as it was sent. The broker carries signatures; the engines check them, over real
// Redis too: requests XADDed by hand without a valid signature are dead-lettered and never run.
#include <gtest/gtest.h>

#include <mutex>

#include "prpc/client.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"
#include "prpc/signing.hpp"
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
    pushed.set_value({std::string(r.message_id), std::string(r.payload), std::string(r.signature),
                      std::string(r.key_id)});
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

// ---- The engines with signing keys over Redis ----

// `record(x)` notes x and answers it: what ran is the side effect the tests check.
class Recorder : public FunctionTable {
 public:
  std::vector<FunctionInfo> list() const override { return {{"record", "inline", "{}", ""}}; }
  void invoke(const Invocation& call, OutcomeCallback done) override {
    {
      std::lock_guard lock(mutex_);
      ran_.emplace_back(call.args);
    }
    done(Outcome::success(std::string(call.args)));
  }
  std::vector<std::string> ran() {
    std::lock_guard lock(mutex_);
    return ran_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> ran_;
};

class InlineExecutor : public Executor {
 public:
  explicit InlineExecutor(std::shared_ptr<Invoker> invoker) : invoker_(std::move(invoker)) {}
  void submit(const Invocation& call, OutcomeCallback done) override {
    invoker_->invoke(call, std::move(done));
  }
  void shutdown(std::chrono::milliseconds) override {}
  std::uint32_t workers() const override { return 1; }

 private:
  std::shared_ptr<Invoker> invoker_;
};

const std::string kKey = "k1-0123456789abcdef0123456789abcdef";
const std::string kWrongKey = "kx-not-the-key-of-this-deployment!";

std::string raw_request(const std::string& id, const std::string& args) {
  return R"({"func_name": "record", "func_args": )" + args +
         R"(, "func_kwargs": {}, )"
         R"("message_id": ")" +
         id + R"("})";
}

class RedisSignedEngineTest : public RedisSignatureTest {
 protected:
  template <typename T>
  static T make(Result<T> r) {
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  std::shared_ptr<Broker> broker() {
    return make(registry_.make_broker("redis", {{"url", url()}}));
  }

  std::unique_ptr<Server> start_server(SigningOptions signing) {
    ServerOptions options;
    options.queue = q_;
    options.signing = std::move(signing);
    ExecutorMap executors{{"inline", std::make_shared<InlineExecutor>(recorder_)}};
    auto server = std::make_unique<Server>(options, broker(), codec_, codec_, recorder_, executors);
    Status s = server->start();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return server;
  }

  Result<Message> call(const std::string& args, SigningOptions signing) {
    Client client(ClientOptions{q_, Flavour::kRaw, {}, std::move(signing)}, broker(), codec_);
    Message m;
    m.func_name = "record";
    m.func_args = args;
    return client.call_sync(std::move(m), 10s);
  }

  std::vector<DeadLetter> dead_letters() { return make(ops_->dead_letters(q_, 100)); }

  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::shared_ptr<Codec> codec_ = make(registry_.make_codec("rawjson", {}));
  std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
  std::shared_ptr<Broker> ops_ = broker();
};

TEST_F(RedisSignedEngineTest, ASignedCallWorksEndToEnd) {
  auto server = start_server({kKey, {}, false});
  auto r = call(R"(["signed"])", {kKey, {}, false});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(r->failed()) << *r->exception_info;
  EXPECT_EQ(r->result, R"(["signed"])");
  EXPECT_EQ(recorder_->ran(), std::vector<std::string>{R"(["signed"])"});
  // The request went out signed, as its entry shows a raw reader...
  auto entries = admin().command({"XRANGE", protocol::request_stream(Flavour::kRaw, q_), "-", "+"});
  ASSERT_EQ(entries->elements, 1u);
  const redisReply* fields = entries->element[0]->element[1];
  ASSERT_EQ(fields->elements, 6u);
  std::string message(fields->element[1]->str, fields->element[1]->len);
  EXPECT_EQ(std::string(fields->element[2]->str), "signature");
  EXPECT_EQ(std::string(fields->element[3]->str), hmac_sha256_hex(kKey, message));
  EXPECT_EQ(std::string(fields->element[5]->str), signing_key_id(kKey));
  // ...and the stored result is signed: its bytes' HMAC is <result key>:signature.
  std::string key = protocol::result_key(Flavour::kRaw, q_, r->message_id);
  auto result = admin().get(key);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(admin().get(key + ":signature"), hmac_sha256_hex(kKey, *result));
}

TEST_F(RedisSignedEngineTest, UnsignedAndMisSignedRequestsAddedByHandAreDeadLetteredNotRun) {
  auto server = start_server({kKey, {}, false});
  std::string stream = protocol::request_stream(Flavour::kRaw, q_);
  std::string unsigned_id = new_uuid(), wrong_id = new_uuid();
  std::string plain = raw_request(unsigned_id, R"(["unsigned"])");
  std::string wrong = raw_request(wrong_id, R"(["mis-signed"])");
  // As any program with a Redis client would send them (the original PRPC's clients never sign).
  admin().command({"XADD", stream, "*", "message", plain});
  admin().command({"XADD", stream, "*", "message", wrong, "signature",
                   hmac_sha256_hex(kWrongKey, wrong), "key_id", signing_key_id(kKey)});
  ASSERT_TRUE(wait_until([&] { return dead_letters().size() == 2; }, 10s));
  std::map<std::string, std::string> reasons;
  for (const DeadLetter& d : dead_letters()) reasons[d.payload] = d.reason;
  EXPECT_EQ(reasons[plain],
            "unsigned request: signed messages are required (a signing key is configured)");
  EXPECT_EQ(reasons[wrong],
            "the request's signature does not match its bytes under any accepted key");
  // Answered, unsigned, so a caller without the key learns why.
  for (const std::string& id : {unsigned_id, wrong_id}) {
    std::string key = protocol::result_key(Flavour::kRaw, q_, id);
    ASSERT_TRUE(wait_until([&] { return admin().get(key).has_value(); }, 5s));
    EXPECT_NE(admin().get(key)->find("SignatureError: "), std::string::npos) << *admin().get(key);
    EXPECT_EQ(admin().integer({"EXISTS", key + ":signature"}), 0);
  }
  // Never run; a signed request XADDed by hand the same way is.
  EXPECT_TRUE(recorder_->ran().empty());
  std::string signed_id = new_uuid();
  std::string good = raw_request(signed_id, R"(["by hand"])");
  admin().command({"XADD", stream, "*", "message", good, "signature", hmac_sha256_hex(kKey, good),
                   "key_id", signing_key_id(kKey)});
  ASSERT_TRUE(wait_until([&] { return !recorder_->ran().empty(); }, 10s));
  EXPECT_EQ(recorder_->ran(), std::vector<std::string>{R"(["by hand"])"});
  EXPECT_EQ(dead_letters().size(), 2u);
}

TEST_F(RedisSignedEngineTest, AClientWithAKeyRejectsAnUnsignedReply) {
  auto server = start_server({});  // no key: its replies are unsigned
  auto r = call("[1]", {kKey, {}, false});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDecode);
  EXPECT_EQ(r.status().message(),
            "rejected the reply: unsigned reply: signed messages are required (a signing key "
            "is configured)");
  EXPECT_EQ(recorder_->ran().size(), 1u);  // the server ran it; the client would not trust it
}

TEST_F(RedisSignedEngineTest, AClientWithAKeyRejectsAReplySignedWithAnotherKey) {
  auto server = start_server({kWrongKey, {kKey}, false});  // accepts ours, signs with another
  auto r = call("[2]", {kKey, {}, false});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(),
            "rejected the reply: the reply is signed with an unknown key "
            "(key id '" +
                signing_key_id(kWrongKey) + "')");
}

}  // namespace
}  // namespace prpc::redis::testing
