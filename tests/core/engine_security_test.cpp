// The engines' defences over the in-process broker: requests over the server's limits, and
// unsigned or mis-signed requests when the server has a signing key, are dead-lettered with the
// reason before any codec reads them and never run, and the server keeps serving; a client with
// a key rejects replies that are not signed with it. The functions here record every call they
// run (the side effect the tests check).
#include <gtest/gtest.h>

#include <future>
#include <mutex>

#include "process.hpp"
#include "prpc/client.hpp"
#include "prpc/envelope.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"
#include "prpc/signing.hpp"
#include "prpc/uuid.hpp"

namespace prpc {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

// `record(x)` notes x and answers it; nothing else is served.
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

// Runs each call on the submitting thread.
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

class EngineSecurityTest : public ::testing::Test {
 protected:
  template <typename T>
  static T make(Result<T> r) {
    if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
    return std::move(r).value();
  }

  std::shared_ptr<Broker> broker() {
    return make(registry_.make_broker("memory", {{"url", url_}}));
  }

  std::unique_ptr<Server> start_server(ServerOptions options = {}) {
    options.queue = queue_;
    ExecutorMap executors{{"inline", std::make_shared<InlineExecutor>(recorder_)}};
    auto server =
        std::make_unique<Server>(options, broker(), jsonpickle_, rawjson_, recorder_, executors);
    Status s = server->start();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return server;
  }

  Result<Message> call(const std::string& args, Flavour flavour = Flavour::kRaw,
                       SigningOptions signing = {}) {
    auto& client = flavour == Flavour::kRaw ? raw_client_ : python_client_;
    if (!client || client->options().signing.key != signing.key) {
      client = std::make_unique<Client>(ClientOptions{queue_, flavour, {}, signing}, broker(),
                                        flavour == Flavour::kRaw ? rawjson_ : jsonpickle_);
    }
    Message m;
    m.func_name = "record";
    m.func_args = args;
    return client->call_sync(std::move(m), 10s);
  }

  void publish(const std::string& payload, Flavour flavour = Flavour::kRaw,
               const std::string& signature = {}, const std::string& key_id = {}) {
    std::promise<Status> sent;
    publisher_->publish(PublishView(flavour, queue_, "", payload, signature, key_id),
                        [&](const Status& s) { sent.set_value(s); });
    ASSERT_TRUE(sent.get_future().get().is_ok());
  }

  std::optional<StoredResult> stored_signed(const std::string& id,
                                            Flavour flavour = Flavour::kRaw) {
    std::promise<std::optional<StoredResult>> found;
    publisher_->lookup_result_signed(flavour, queue_, id,
                                     [&](Result<std::optional<StoredResult>> r) {
                                       found.set_value(r.is_ok() ? *r : std::nullopt);
                                     });
    return found.get_future().get();
  }

  std::optional<std::string> stored(const std::string& id, Flavour flavour = Flavour::kRaw) {
    std::promise<std::optional<std::string>> found;
    publisher_->lookup_result(flavour, queue_, id, [&](Result<std::optional<std::string>> r) {
      found.set_value(r.is_ok() ? *r : std::nullopt);
    });
    return found.get_future().get();
  }

  std::vector<DeadLetter> dead_letters() { return make(publisher_->dead_letters(queue_, 100)); }

  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
  std::string url_ = "memory://security-" + new_uuid();
  std::string queue_ = "security_test";
  std::shared_ptr<Codec> rawjson_ = make(registry_.make_codec("rawjson", {}));
  std::shared_ptr<Codec> jsonpickle_ = make(registry_.make_codec("jsonpickle", {}));
  std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
  std::shared_ptr<Broker> publisher_ = broker();
  std::unique_ptr<Client> raw_client_;
  std::unique_ptr<Client> python_client_;
};

std::string nested(std::size_t levels) {
  return std::string(levels, '[') + "1" + std::string(levels, ']');
}

TEST(Envelope, NestingIsCountedOutsideStrings) {
  EXPECT_EQ(json_nesting_depth(R"({"a": [1, {"b": [2]}]})", 100), 4u);
  EXPECT_EQ(json_nesting_depth(R"({"a": "[[[[[[", "b": "\"[{"})", 100), 1u);
  EXPECT_EQ(json_nesting_depth("17", 100), 0u);
  // It stops counting past the limit.
  EXPECT_EQ(json_nesting_depth(nested(100000), 64), 65u);
  EXPECT_EQ(json_nesting_depth(nested(64), 64), 64u);
  // Malformed text is measured as far as it goes.
  EXPECT_EQ(json_nesting_depth(R"({"a": [[["unterminated)", 100), 4u);
}

TEST(Envelope, TheSenderIsReadFromTheTopLevelOnly) {
  // A member of the same name inside the arguments is not the message's own.
  std::string raw = R"({"func_name": "f", "func_kwargs": {"message_id": "decoy", "reply_to": "x"},
    "func_args": [{"message_id": "decoy"}, "\"message_id\": \"decoy\""],
    "message_id": "m-1", "reply_to": "prpc_feedback_q:abc"})";
  Sender s = find_sender(raw, Flavour::kRaw);
  EXPECT_EQ(s.message_id, "m-1");
  EXPECT_EQ(s.reply_to, "prpc_feedback_q:abc");
  // A jsonpickle uuid.UUID comes back canonical.
  std::string python =
      R"({"py/object": "prpc.prpcmessage.PRPCMessage", "func_args": [[[1]]], "message_id":
      {"py/object": "uuid.UUID", "hex": "6F1C2D3E4F5061728394A5B6C7D8E9F0"}})";
  EXPECT_EQ(find_sender(python, Flavour::kPython).message_id,
            "6f1c2d3e-4f50-6172-8394-a5b6c7d8e9f0");
  // Raw ids come back as they were sent.
  EXPECT_EQ(find_sender(R"({"message_id": "6F1C2D3E4F5061728394A5B6C7D8E9F0"})", Flavour::kRaw)
                .message_id,
            "6F1C2D3E4F5061728394A5B6C7D8E9F0");
  // What cannot be read is left empty.
  for (const char* text : {"not json", R"({"message_id": 7})", R"({"message_id": "a\"b"})",
                           R"(["message_id", "x"])", R"({"func_args": [1, 2)"}) {
    EXPECT_EQ(find_sender(text, Flavour::kRaw).message_id, "") << text;
  }
}

TEST_F(EngineSecurityTest, OversizedRequestsAreDeadLetteredUnreadAndNotRun) {
  ServerOptions options;
  options.max_message_bytes = 4096;
  auto server = start_server(options);
  // The id comes last, after the large arguments, as the raw flavour writes it.
  std::string id = new_uuid();
  std::string request = R"({"func_name": "record", "func_args": [")" + std::string(8000, 'x') +
                        R"("], "message_id": ")" + id + R"("})";
  publish(request);
  ASSERT_TRUE(wait_until([&] { return stored(id).has_value(); }, 5s));
  std::string reason = "message of " + std::to_string(request.size()) +
                       " bytes exceeds the limit of 4096 bytes (server.max_message_bytes)";
  EXPECT_NE(stored(id)->find("DecodeError: " + reason), std::string::npos) << *stored(id);
  auto letters = dead_letters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].reason, reason);
  EXPECT_EQ(letters[0].payload, request);
  // Never run; and the server goes on serving, requests just under the limit included.
  auto ok = call("[\"" + std::string(3700, 'y') + "\"]");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_FALSE(ok->failed());
  ASSERT_EQ(recorder_->ran().size(), 1u);
  EXPECT_EQ(recorder_->ran()[0].size(), 3704u);
  EXPECT_EQ(server->stats().dead_lettered, 1u);
}

TEST_F(EngineSecurityTest, RequestsNestedTooDeeplyAreDeadLetteredUnreadAndNotRun) {
  ServerOptions options;
  options.max_json_depth = 32;
  auto server = start_server(options);
  // Both flavours; the reply goes to the caller's reply_to, read without decoding.
  auto deep = call(nested(40));
  ASSERT_TRUE(deep.is_ok()) << deep.status().to_string();
  ASSERT_TRUE(deep->failed());
  EXPECT_EQ(*deep->exception_info,
            "DecodeError: message nests deeper than 32 levels (server.max_json_depth)");
  auto deep_python = call(nested(40), Flavour::kPython);
  ASSERT_TRUE(deep_python.is_ok()) << deep_python.status().to_string();
  EXPECT_EQ(deep_python->exception_type, "DecodeError");
  // A bomb far past any parser's stack, in one request.
  std::string bomb_id = new_uuid();
  publish(R"({"message_id": ")" + bomb_id + R"(", "func_name": "record", "func_args": )" +
          nested(1'000'000) + "}");
  ASSERT_TRUE(wait_until([&] { return dead_letters().size() == 3; }, 10s));
  EXPECT_NE(stored(bomb_id)->find("nests deeper than 32 levels"), std::string::npos);
  for (const DeadLetter& d : dead_letters()) {
    EXPECT_EQ(d.reason, "message nests deeper than 32 levels (server.max_json_depth)");
  }
  // 30 levels of arguments (32 with the message and the argument list) still run.
  auto ok = call("[" + nested(30) + "]");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_FALSE(ok->failed()) << *ok->exception_info;
  EXPECT_EQ(recorder_->ran(), std::vector<std::string>{"[" + nested(30) + "]"});
}

const std::string kKey = "k1-0123456789abcdef0123456789abcdef";
const std::string kOldKey = "k0-fedcba9876543210fedcba9876543210";
const std::string kWrongKey = "kx-not-the-key-of-this-deployment!";

std::string raw_request(const std::string& id, const std::string& args = "[1]") {
  return R"({"func_name": "record", "func_args": )" + args +
         R"(, "func_kwargs": {}, )"
         R"("message_id": ")" +
         id + R"("})";
}

TEST_F(EngineSecurityTest, SignedCallsWorkAndTheirResultsAreSigned) {
  ServerOptions options;
  options.signing.key = kKey;
  auto server = start_server(options);
  for (Flavour f : {Flavour::kRaw, Flavour::kPython}) {
    SCOPED_TRACE(std::string(flavour_name(f)));
    auto r = call("[\"signed\"]", f, {kKey, {}, false});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_FALSE(r->failed()) << *r->exception_info;
    // What a raw client can check: the stored bytes' HMAC is the stored signature.
    auto stored = stored_signed(r->message_id, f);
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(stored->signature, hmac_sha256_hex(kKey, stored->payload));
    EXPECT_EQ(stored->key_id, signing_key_id(kKey));
  }
  EXPECT_EQ(recorder_->ran().size(), 2u);
}

TEST_F(EngineSecurityTest, UnsignedAndMisSignedRequestsAreDeadLetteredAndNeverRun) {
  ServerOptions options;
  options.signing.key = kKey;
  auto server = start_server(options);
  std::string unsigned_id = new_uuid(), wrong_id = new_uuid(), tampered_id = new_uuid(),
              forged_id = new_uuid(), garbage_id = new_uuid();
  publish(raw_request(unsigned_id));
  std::string wrong = raw_request(wrong_id);
  publish(wrong, Flavour::kRaw, hmac_sha256_hex(kWrongKey, wrong), signing_key_id(kWrongKey));
  // Signed, then changed: the signature is of other bytes.
  std::string original = raw_request(tampered_id, "[1]");
  publish(raw_request(tampered_id, "[2]"), Flavour::kRaw, hmac_sha256_hex(kKey, original),
          signing_key_id(kKey));
  // The right key id with a wrong key's signature; and a signature that is not one.
  std::string forged = raw_request(forged_id);
  publish(forged, Flavour::kRaw, hmac_sha256_hex(kWrongKey, forged), signing_key_id(kKey));
  publish(raw_request(garbage_id), Flavour::kRaw, "not-a-signature");
  ASSERT_TRUE(wait_until([&] { return dead_letters().size() == 5; }, 5s));

  std::map<std::string, std::string> expected = {
      {unsigned_id, "unsigned request: signed messages are required"},
      {wrong_id,
       "the request is signed with an unknown key (key id '" + signing_key_id(kWrongKey) + "')"},
      {tampered_id, "the request's signature does not match its bytes under any accepted key"},
      {forged_id, "the request's signature does not match its bytes under any accepted key"},
      {garbage_id, "the request's signature is not 64 hex digits"}};
  for (const auto& [id, reason] : expected) {
    SCOPED_TRACE(reason);
    // Answered, so a caller without the key learns why, but not signed: the server signs
    // nothing a sender without the key chose.
    auto reply = stored_signed(id);
    ASSERT_TRUE(reply.has_value());
    EXPECT_NE(reply->payload.find("\"exception_info\": \"SignatureError: " + reason),
              std::string::npos)
        << reply->payload;
    EXPECT_EQ(reply->signature, "");
  }
  for (const DeadLetter& d : dead_letters()) {
    bool known = false;
    for (const auto& [id, reason] : expected) {
      known = known || (d.payload.find(id) != std::string::npos && d.reason.rfind(reason, 0) == 0);
    }
    EXPECT_TRUE(known) << d.reason;
  }
  EXPECT_TRUE(recorder_->ran().empty());
  // Still serving signed requests.
  auto ok = call("[\"after\"]", Flavour::kRaw, {kKey, {}, false});
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_FALSE(ok->failed());
  EXPECT_EQ(recorder_->ran(), std::vector<std::string>{"[\"after\"]"});
}

TEST_F(EngineSecurityTest, AClientWithAKeyRejectsUnsignedAndMisSignedReplies) {
  {
    auto server = start_server();  // no key: its replies are unsigned
    auto r = call("[1]", Flavour::kRaw, {kKey, {}, false});
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kDecode);
    EXPECT_EQ(r.status().message(),
              "rejected the reply: unsigned reply: signed messages are required (a signing key "
              "is configured)");
  }
  raw_client_.reset();
  // A server that accepts our key but signs with another.
  ServerOptions options;
  options.signing = {kWrongKey, {kKey}, false};
  auto server = start_server(options);
  auto r = call("[2]", Flavour::kRaw, {kKey, {}, false});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(),
            "rejected the reply: the reply is signed with an unknown key "
            "(key id '" +
                signing_key_id(kWrongKey) + "')");
}

TEST_F(EngineSecurityTest, KeysRotateWithoutAnUnansweredCall) {
  // Half-way through a rotation: this server signs with the new key and still accepts the
  // old one; the client signs with the old key and already accepts the new one.
  ServerOptions options;
  options.signing = {kKey, {kOldKey}, false};
  auto server = start_server(options);
  auto r = call("[\"rotating\"]", Flavour::kRaw, {kOldKey, {kKey}, false});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(r->failed());
  EXPECT_EQ(stored_signed(r->message_id)->key_id, signing_key_id(kKey));
  // A client that knows only the old key cannot trust the new signatures.
  raw_client_.reset();
  auto old_only = call("[\"stale\"]", Flavour::kRaw, {kOldKey, {}, false});
  ASSERT_FALSE(old_only.is_ok());
  EXPECT_NE(old_only.status().message().find("unknown key"), std::string::npos);
  EXPECT_EQ(recorder_->ran().size(), 2u);  // the server took both: it accepts the old key
}

TEST_F(EngineSecurityTest, UnsignedRequestsDuringARollout) {
  ServerOptions options;
  options.signing = {kKey, {}, true};  // accept_unsigned
  auto server = start_server(options);
  auto r = call("[\"plain\"]");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(r->failed());
  EXPECT_EQ(stored_signed(r->message_id)->signature,
            hmac_sha256_hex(kKey, stored_signed(r->message_id)->payload));
  // A wrong signature is still refused.
  std::string id = new_uuid();
  std::string wrong = raw_request(id);
  publish(wrong, Flavour::kRaw, hmac_sha256_hex(kWrongKey, wrong));
  ASSERT_TRUE(wait_until([&] { return dead_letters().size() == 1; }, 5s));
  EXPECT_EQ(recorder_->ran().size(), 1u);
}

TEST_F(EngineSecurityTest, BadKeysStopTheServerAndTheClientFromStarting) {
  ServerOptions options;
  options.queue = queue_;
  options.signing.key = "short";
  Server server(options, broker(), jsonpickle_, rawjson_, recorder_,
                ExecutorMap{{"inline", std::make_shared<InlineExecutor>(recorder_)}});
  Status s = server.start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().find("short"), std::string::npos);
  Client client(ClientOptions{queue_, Flavour::kRaw, {}, {"short", {}, false}}, broker(), rawjson_);
  EXPECT_EQ(client.start().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace prpc
