// ABI 1.2 across the plugin boundary, as a host sees it through its adapter (plugin_objects.cpp):
//  - C brokers built for ABI 1.0, 1.1 and 1.2 (fixtures/c_broker.c) load and work with this host;
//    what an older one cannot do reads as "not supported" or as an empty signature, never as
//    bytes past the end of what it declared;
//  - plugins built with the C++ SDK (the bundled memory broker and codecs) carry every new field
//    both ways through the SDK wrapper.
#include <gtest/gtest.h>

#include <future>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "prpc/plugin_loader.hpp"

namespace prpc {
namespace {

using namespace std::chrono_literals;

Status published(Broker& b, const PublishView& p) {
  std::promise<Status> done;
  b.publish(p, [&](const Status& s) { done.set_value(s); });
  return done.get_future().get();
}

Status finished(Broker& b, const Delivery& d, const ReplyView& reply) {
  std::promise<Status> done;
  b.finish(d.view(), FinishRequest{&reply, {}}, [&](const Status& s) { done.set_value(s); });
  return done.get_future().get();
}

Result<std::optional<StoredResult>> stored(Broker& b, std::string_view id) {
  std::promise<Result<std::optional<StoredResult>>> done;
  b.lookup_result_signed(Flavour::kRaw, "q", id, [&](Result<std::optional<StoredResult>> r) {
    done.set_value(std::move(r));
  });
  return done.get_future().get();
}

Status announced(Broker& b, std::string_view id, std::string_view info) {
  std::promise<Status> done;
  b.announce_server("q", id, info, 30s, [&](const Status& s) { done.set_value(s); });
  return done.get_future().get();
}

struct Pushed {
  std::string message_id, payload, signature, key_id;
  bool operator==(const Pushed&) const = default;
};

struct CBroker {
  const char* name;
  std::uint16_t minor;
};

class CBrokerOfEveryMinor : public ::testing::TestWithParam<CBroker> {
 protected:
  PluginRegistry registry_{{PRPC_FIXTURE_DIR}};
};

TEST_P(CBrokerOfEveryMinor, LoadsAndWorksWithThisHost) {
  const CBroker& c = GetParam();
  const bool v1_2 = c.minor >= 2;
  auto made = registry_.make_broker(c.name, {});
  ASSERT_TRUE(made.is_ok()) << made.status().to_string();
  Broker& b = **made;
  ASSERT_EQ(registry_.loaded().size(), 1u);
  EXPECT_EQ(registry_.loaded()[0].abi_minor, c.minor);
  ASSERT_TRUE(b.connect().is_ok());

  // A request, signed by its sender; the broker delivers it at once.
  std::vector<Delivery> got;
  SubscribeOptions sub;
  sub.queue = "q";
  sub.consumer = "server-1";
  ASSERT_TRUE(b.subscribe(sub, [&](std::span<const DeliveryView> items) {
                 for (const DeliveryView& d : items) got.emplace_back(d);
               }).is_ok());
  ASSERT_TRUE(
      published(b, PublishView{Flavour::kRaw, "q", "id-1", "request", "5ig", "k1"}).is_ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "request");
  EXPECT_EQ(got[0].queue, "q");
  EXPECT_EQ(got[0].flavour, Flavour::kRaw);
  EXPECT_EQ(got[0].delivery_count, 1u);
  EXPECT_EQ(got[0].signature, v1_2 ? "5ig" : "");
  EXPECT_EQ(got[0].key_id, v1_2 ? "k1" : "");

  // Its reply, pushed to the signed listener (the host falls back to open_replies) and stored.
  std::vector<Pushed> pushed;
  auto reply_to = b.open_replies_signed("q", [&](const PushedReplyView& r) {
    pushed.push_back(Pushed{std::string(r.message_id), std::string(r.payload),
                            std::string(r.signature), std::string(r.key_id)});
  });
  ASSERT_TRUE(reply_to.is_ok()) << reply_to.status().to_string();
  EXPECT_EQ(*reply_to, "c_broker_replies");
  ReplyView reply{Flavour::kRaw, "q", "id-1", *reply_to, "answer", false, "r5ig", "k2"};
  ASSERT_TRUE(finished(b, got[0], reply).is_ok());
  ASSERT_EQ(pushed.size(), 1u);
  EXPECT_EQ(pushed[0], (Pushed{"id-1", "answer", v1_2 ? "r5ig" : "", v1_2 ? "k2" : ""}));

  auto result = stored(b, "id-1");
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  ASSERT_TRUE(result->has_value());
  EXPECT_EQ((*result)->payload, "answer");
  EXPECT_EQ((*result)->signature, v1_2 ? "r5ig" : "");
  EXPECT_EQ((*result)->key_id, v1_2 ? "k2" : "");
  auto none = stored(b, "id-2");
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
  std::promise<std::optional<std::string>> unsigned_lookup;
  b.lookup_result(Flavour::kRaw, "q", "id-1", [&](Result<std::optional<std::string>> r) {
    unsigned_lookup.set_value(r.is_ok() ? *r : std::nullopt);
  });
  EXPECT_EQ(unsigned_lookup.get_future().get(), "answer");

  // The unsigned listener, opened last, now gets the replies.
  std::vector<std::string> unsigned_ids;
  ASSERT_TRUE(b.open_replies("q", [&](std::string_view id, std::string_view) {
                 unsigned_ids.emplace_back(id);
               }).is_ok());
  ReplyView second{Flavour::kRaw, "q", "id-3", *reply_to, "again"};
  ASSERT_TRUE(finished(b, got[0], second).is_ok());
  EXPECT_EQ(unsigned_ids, std::vector<std::string>{"id-3"});
  EXPECT_EQ(pushed.size(), 1u);

  // Servers: only a 1.2 broker keeps the list.
  Status a = announced(b, "server-1", R"({"version": "1"})");
  auto list = b.list_servers("q");
  if (v1_2) {
    ASSERT_TRUE(a.is_ok()) << a.to_string();
    ASSERT_TRUE(list.is_ok()) << list.status().to_string();
    EXPECT_EQ(list->rfind(R"([{"id": "server-1", "alive": true, "age_ms": )", 0), 0u) << *list;
    EXPECT_NE(list->find(R"(, "info": {"version": "1"}}])"), std::string::npos) << *list;
  } else {
    EXPECT_EQ(a.code(), StatusCode::kUnimplemented);
    EXPECT_EQ(a.message(), "this broker does not keep a list of servers");
    ASSERT_FALSE(list.is_ok());
    EXPECT_EQ(list.status().code(), StatusCode::kUnimplemented);
  }

  // Requeueing dead letters appeared in 1.1.
  auto requeued = b.requeue_dead_letters("q", {});
  if (c.minor >= 1) {
    ASSERT_TRUE(requeued.is_ok()) << requeued.status().to_string();
    EXPECT_EQ(*requeued, 0u);
  } else {
    EXPECT_EQ(requeued.status().code(), StatusCode::kUnimplemented);
  }
  auto stats = b.queue_stats("q");
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->consumers, 1);
  b.unsubscribe();
}

INSTANTIATE_TEST_SUITE_P(Abi, CBrokerOfEveryMinor,
                         ::testing::Values(CBroker{"old_broker", 0}, CBroker{"c_broker_1_1", 1},
                                           CBroker{"c_broker_1_2", 2}),
                         [](const auto& p) { return "minor_" + std::to_string(p.param.minor); });

// The memory broker is built with the SDK: every 1.2 field crosses its wrapper and the host's
// adapter, both ways.
class SdkWrapper : public ::testing::Test {
 protected:
  std::shared_ptr<Broker> broker() {
    auto b = registry_.make_broker("memory", {{"url", "memory://abi-compat"}});
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    return b.is_ok() ? *b : nullptr;
  }
  PluginRegistry registry_{{PRPC_TEST_PLUGIN_DIR}};
};

TEST_F(SdkWrapper, BrokerCarriesSignaturesAndServers) {
  auto server = broker();
  auto client = broker();
  ASSERT_TRUE(server && client);
  std::promise<Pushed> pushed;
  auto reply_to = client->open_replies_signed("q", [&](const PushedReplyView& r) {
    pushed.set_value(Pushed{std::string(r.message_id), std::string(r.payload),
                            std::string(r.signature), std::string(r.key_id)});
  });
  ASSERT_TRUE(reply_to.is_ok()) << reply_to.status().to_string();
  ASSERT_TRUE(
      published(*client, PublishView{Flavour::kRaw, "q", "id-1", "request", "5ig", "k1"}).is_ok());

  std::promise<Delivery> delivered;
  SubscribeOptions sub;
  sub.queue = "q";
  sub.consumer = "server-1";
  ASSERT_TRUE(server
                  ->subscribe(sub,
                              [&](std::span<const DeliveryView> items) {
                                delivered.set_value(Delivery(items[0]));
                              })
                  .is_ok());
  auto d = delivered.get_future();
  ASSERT_EQ(d.wait_for(10s), std::future_status::ready);
  Delivery request = d.get();
  EXPECT_EQ(request.payload, "request");
  EXPECT_EQ(request.signature, "5ig");
  EXPECT_EQ(request.key_id, "k1");

  ReplyView reply{Flavour::kRaw, "q", "id-1", *reply_to, "answer", false, "r5ig", "k2"};
  ASSERT_TRUE(finished(*server, request, reply).is_ok());
  auto p = pushed.get_future();
  ASSERT_EQ(p.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(p.get(), (Pushed{"id-1", "answer", "r5ig", "k2"}));
  auto result = stored(*client, "id-1");
  ASSERT_TRUE(result.is_ok() && result->has_value());
  EXPECT_EQ((*result)->payload, "answer");
  EXPECT_EQ((*result)->signature, "r5ig");
  EXPECT_EQ((*result)->key_id, "k2");
  EXPECT_FALSE(stored(*client, "id-2")->has_value());

  ASSERT_TRUE(announced(*server, "server-1", R"({"version": "1"})").is_ok());
  auto list = client->list_servers("q");
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  EXPECT_EQ(list->rfind(R"([{"id": "server-1", "alive": true, "age_ms": )", 0), 0u) << *list;
  EXPECT_NE(list->find(R"(, "info": {"version": "1"}}])"), std::string::npos) << *list;
  // Errors cross too, with their code and message.
  Status bad = announced(*server, "server-2", "[1]");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "announce_server: info: expected a JSON object, got array");
  server->unsubscribe();
}

TEST_F(SdkWrapper, CodecsCarryExtensions) {
  for (const char* name : {"rawjson", "jsonpickle"}) {
    SCOPED_TRACE(name);
    auto codec = registry_.make_codec(name, {});
    ASSERT_TRUE(codec.is_ok()) << codec.status().to_string();
    Message m;
    m.func_name = "f";
    m.message_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
    m.date_create_message = "2024-11-06T09:00:05+00:00";
    m.extensions = R"({"server": "host-42", "time_queued": 0.0012, "tracestate": "k=v"})";
    auto bytes = (*codec)->encode(m);
    ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
    EXPECT_NE(bytes->find(R"("server": "host-42", "time_queued": 0.0012, "tracestate": "k=v"})"),
              std::string::npos)
        << *bytes;
    auto back = (*codec)->decode(*bytes);
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    EXPECT_EQ(back->extensions, m.extensions);
    EXPECT_EQ(back->func_name, "f");
  }
}

}  // namespace
}  // namespace prpc
