// The conversions between the C ABI's structs and the C++ contract (abi_views.hpp), which the
// host adapter and the SDK wrapper share: every field survives C++ -> C -> C++, and a struct
// from an older peer reads as empty past the size it declares.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "prpc/abi_views.hpp"

namespace prpc {
namespace {

TEST(AbiViews, MessageRoundTripsEveryField) {
  Message m;
  m.func_name = "f";
  m.func_args = "[1]";
  m.func_kwargs = R"({"a": 2})";
  m.message_id = "id";
  m.result = "3";
  m.exception_info = "ValueError: x";
  m.date_create_message = "2024-01-01T00:00:00+00:00";
  m.date_done_message = "2024-01-01T00:00:01+00:00";
  m.reply_to = "r";
  m.deadline = "2024-01-01T00:01:00+00:00";
  m.attempt = 4;
  m.exception_type = "ValueError";
  m.traceback = "tb";
  m.traceparent = "00-abc";
  m.extensions = R"({"server": "host-42"})";
  prpc_message v = abi::message_view(m);
  EXPECT_EQ(v.struct_size, sizeof(prpc_message));
  Message back = abi::message_from(&v);
  EXPECT_EQ(back.func_name, m.func_name);
  EXPECT_EQ(back.func_args, m.func_args);
  EXPECT_EQ(back.func_kwargs, m.func_kwargs);
  EXPECT_EQ(back.message_id, m.message_id);
  EXPECT_EQ(back.result, m.result);
  EXPECT_EQ(back.exception_info, m.exception_info);
  EXPECT_EQ(back.date_create_message, m.date_create_message);
  EXPECT_EQ(back.date_done_message, m.date_done_message);
  EXPECT_EQ(back.reply_to, m.reply_to);
  EXPECT_EQ(back.deadline, m.deadline);
  EXPECT_EQ(back.attempt, m.attempt);
  EXPECT_EQ(back.exception_type, m.exception_type);
  EXPECT_EQ(back.traceback, m.traceback);
  EXPECT_EQ(back.traceparent, m.traceparent);
  EXPECT_EQ(back.extensions, m.extensions);
}

TEST(AbiViews, AMessageFromA1_1PeerHasNoExtensions) {
  Message m;
  m.func_name = "f";
  m.extensions = R"({"not": "visible"})";
  prpc_message v = abi::message_view(m);
  v.struct_size = static_cast<std::uint32_t>(offsetof(prpc_message, extensions));
  Message back = abi::message_from(&v);
  EXPECT_EQ(back.func_name, "f");
  EXPECT_EQ(back.extensions, "");
}

TEST(AbiViews, DeliveriesPublishesAndRepliesCarrySignatures) {
  DeliveryView d{Flavour::kRaw, "q", "1-0", "payload", 3, "5ig", "k1"};
  prpc_delivery dv = abi::delivery_view(d);
  DeliveryView d2 = abi::delivery_from(&dv);
  EXPECT_EQ(d2.flavour, Flavour::kRaw);
  EXPECT_EQ(d2.queue, "q");
  EXPECT_EQ(d2.token, "1-0");
  EXPECT_EQ(d2.payload, "payload");
  EXPECT_EQ(d2.delivery_count, 3u);
  EXPECT_EQ(d2.signature, "5ig");
  EXPECT_EQ(d2.key_id, "k1");
  Delivery owned(d2);
  EXPECT_EQ(owned.view().signature, "5ig");
  EXPECT_EQ(owned.view().key_id, "k1");
  // From a 1.1 peer: whatever lies past its size is not read.
  dv.struct_size = static_cast<std::uint32_t>(offsetof(prpc_delivery, signature));
  EXPECT_EQ(abi::delivery_from(&dv).signature, "");
  EXPECT_EQ(abi::delivery_from(&dv).key_id, "");
  EXPECT_EQ(abi::delivery_from(&dv).payload, "payload");

  PublishView p{Flavour::kPython, "q", "id", "request", "5ig", "k1"};
  prpc_publish pv = abi::publish_view(p);
  PublishView p2 = abi::publish_from(&pv);
  EXPECT_EQ(p2.message_id, "id");
  EXPECT_EQ(p2.payload, "request");
  EXPECT_EQ(p2.signature, "5ig");
  EXPECT_EQ(p2.key_id, "k1");
  pv.struct_size = static_cast<std::uint32_t>(offsetof(prpc_publish, signature));
  EXPECT_EQ(abi::publish_from(&pv).signature, "");

  ReplyView r{Flavour::kRaw, "q", "id", "to", "answer", true, "r5ig", "k2"};
  prpc_reply rv;
  prpc_finish fv = abi::finish_view(FinishRequest{&r, "reason"}, rv);
  ReplyView r2;
  FinishRequest f2 = abi::finish_from(&fv, r2);
  ASSERT_EQ(f2.reply, &r2);
  EXPECT_EQ(f2.dead_letter_reason, "reason");
  EXPECT_EQ(r2.flavour, Flavour::kRaw);
  EXPECT_EQ(r2.message_id, "id");
  EXPECT_EQ(r2.reply_to, "to");
  EXPECT_EQ(r2.payload, "answer");
  EXPECT_TRUE(r2.push_only);
  EXPECT_EQ(r2.signature, "r5ig");
  EXPECT_EQ(r2.key_id, "k2");
  rv.struct_size = static_cast<std::uint32_t>(offsetof(prpc_reply, signature));
  (void)abi::finish_from(&fv, r2);
  EXPECT_EQ(r2.signature, "");
  EXPECT_EQ(r2.payload, "answer");
}

TEST(AbiViews, PushedRepliesAndStoredResults) {
  PushedReplyView p{"id", "answer", "5ig", "k1"};
  prpc_pushed_reply pv = abi::pushed_reply_view(p);
  EXPECT_EQ(pv.struct_size, sizeof(prpc_pushed_reply));
  PushedReplyView p2 = abi::pushed_reply_from(&pv);
  EXPECT_EQ(p2.message_id, "id");
  EXPECT_EQ(p2.payload, "answer");
  EXPECT_EQ(p2.signature, "5ig");
  EXPECT_EQ(p2.key_id, "k1");

  StoredResult s{"answer", "5ig", "k1"};
  prpc_stored_result sv = abi::stored_result_view(s);
  StoredResult s2 = abi::stored_result_from(&sv);
  EXPECT_EQ(s2.payload, "answer");
  EXPECT_EQ(s2.signature, "5ig");
  EXPECT_EQ(s2.key_id, "k1");

  // Through the C completions: a result, none, an error.
  struct Got {
    Result<std::optional<StoredResult>> r = Status(StatusCode::kInternal, "not called");
  };
  auto thunk = [](void* ud, prpc_status code, const prpc_stored_result* result, prpc_str msg) {
    static_cast<Got*>(ud)->r = abi::stored_result_from_c(code, result, msg);
  };
  Got got;
  abi::stored_result_to_c(std::optional<StoredResult>(s), thunk, &got);
  ASSERT_TRUE(got.r.is_ok() && got.r->has_value());
  EXPECT_EQ((*got.r)->signature, "5ig");
  abi::stored_result_to_c(std::optional<StoredResult>(), thunk, &got);
  ASSERT_TRUE(got.r.is_ok());
  EXPECT_FALSE(got.r->has_value());
  abi::stored_result_to_c(Status(StatusCode::kUnavailable, "down"), thunk, &got);
  EXPECT_EQ(got.r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(got.r.status().message(), "down");

  struct GotPlain {
    Result<std::optional<std::string>> r = Status(StatusCode::kInternal, "not called");
  };
  auto plain = [](void* ud, prpc_status code, const prpc_bytes* payload, prpc_str msg) {
    static_cast<GotPlain*>(ud)->r = abi::lookup_from_c(code, payload, msg);
  };
  GotPlain g;
  abi::lookup_to_c(std::optional<std::string>("answer"), plain, &g);
  ASSERT_TRUE(g.r.is_ok());
  EXPECT_EQ(*g.r, "answer");
  abi::lookup_to_c(Status(StatusCode::kTimeout, "slow"), plain, &g);
  EXPECT_EQ(g.r.status().code(), StatusCode::kTimeout);
}

// Broker's defaults for brokers that predate ABI 1.2: the signed forms forward to the unsigned
// ones, servers are not kept.
class UnsignedBroker final : public Broker {
 public:
  Status connect() override { return Status::ok(); }
  Status subscribe(const SubscribeOptions&, DeliveryHandler) override { return Status::ok(); }
  void unsubscribe() override {}
  void finish(const DeliveryView&, const FinishRequest&, DoneCallback done) override {
    done(Status::ok());
  }
  void touch(const DeliveryView&) override {}
  void lookup_result(Flavour, std::string_view, std::string_view id, LookupCallback done) override {
    if (id == "known") {
      done(std::optional<std::string>("stored"));
    } else {
      done(std::optional<std::string>());
    }
  }
  void publish(const PublishView&, DoneCallback done) override { done(Status::ok()); }
  Result<std::string> open_replies(std::string_view, ReplyHandler on_reply) override {
    handler = std::move(on_reply);
    return std::string("replies");
  }
  Result<QueueStats> queue_stats(std::string_view) override { return QueueStats{}; }
  Result<std::vector<DeadLetter>> dead_letters(std::string_view, std::size_t) override {
    return std::vector<DeadLetter>{};
  }
  ReplyHandler handler;
};

TEST(BrokerDefaults, SignedFormsForwardAndServersAreUnimplemented) {
  UnsignedBroker b;
  std::string got;
  auto to = b.open_replies_signed("q", [&](const PushedReplyView& r) {
    got = std::string(r.message_id) + "/" + std::string(r.payload) + "/" +
          std::string(r.signature) + "/" + std::string(r.key_id);
  });
  ASSERT_TRUE(to.is_ok());
  EXPECT_EQ(*to, "replies");
  b.handler("id", "answer");
  EXPECT_EQ(got, "id/answer//");

  std::optional<StoredResult> found;
  b.lookup_result_signed(Flavour::kRaw, "q", "known",
                         [&](Result<std::optional<StoredResult>> r) { found = *r; });
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->payload, "stored");
  EXPECT_EQ(found->signature, "");
  bool none = false;
  b.lookup_result_signed(Flavour::kRaw, "q", "other",
                         [&](Result<std::optional<StoredResult>> r) { none = !r->has_value(); });
  EXPECT_TRUE(none);

  Status announced;
  b.announce_server("q", "s", "{}", std::chrono::seconds(1), [&](Status s) { announced = s; });
  EXPECT_EQ(announced.code(), StatusCode::kUnimplemented);
  EXPECT_EQ(b.list_servers("q").status().code(), StatusCode::kUnimplemented);
}

TEST(ServersJson, WritesTheListServersFormat) {
  std::vector<ServerRecord> servers{
      {"host-1", true, std::chrono::milliseconds(250), R"({"version": "0.1"})"},
      {"a \"b\"\\\n", false, std::chrono::milliseconds(-3), ""}};
  EXPECT_EQ(servers_json(servers),
            R"([{"id": "host-1", "alive": true, "age_ms": 250, "info": {"version": "0.1"}}, )"
            R"({"id": "a \"b\"\\\u000a", "alive": false, "age_ms": 0, "info": {}}])");
  EXPECT_EQ(servers_json({}), "[]");
}

}  // namespace
}  // namespace prpc
