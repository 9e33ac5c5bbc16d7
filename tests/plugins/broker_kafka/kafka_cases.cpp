// The Kafka broker against a cluster (mock or real, see acquire_cluster()): the broker's own
// contract first, then the server and client engines end to end over it.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include <librdkafka/rdkafka.h>

#include "kafka_test_base.hpp"
#include "prpc/json.hpp"
#include "prpc/signing.hpp"

namespace prpc::kafka_tests {
namespace {

// Collects deliveries from a subscription and lets the test finish them.
struct Inbox {
  std::mutex mutex;
  std::vector<Delivery> items;
  std::atomic<int> unfinished{0};
  std::atomic<int> peak{0};

  DeliveryHandler handler() {
    return [this](std::span<const DeliveryView> batch) {
      std::lock_guard lock(mutex);
      for (const auto& d : batch) items.emplace_back(d);
      int now =
          unfinished.fetch_add(static_cast<int>(batch.size())) + static_cast<int>(batch.size());
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return items.size();
  }
  Delivery at(std::size_t i) {
    std::lock_guard lock(mutex);
    return items.at(i);
  }
};

Status finish_sync(Broker& b, const Delivery& d, const ReplyView* reply,
                   std::string_view reason = {}) {
  std::promise<Status> p;
  FinishRequest req;
  req.reply = reply;
  req.dead_letter_reason = reason;
  b.finish(d.view(), req, [&](const Status& s) { p.set_value(s); });
  return p.get_future().get();
}

Status publish_sync(Broker& b, Flavour f, const std::string& queue, const std::string& id,
                    const std::string& payload) {
  std::promise<Status> p;
  b.publish(PublishView{f, queue, id, payload}, [&](const Status& s) { p.set_value(s); });
  return p.get_future().get();
}

Result<std::optional<std::string>> lookup_sync(Broker& b, Flavour f, const std::string& queue,
                                               const std::string& id) {
  std::promise<Result<std::optional<std::string>>> p;
  b.lookup_result(f, queue, id,
                  [&](Result<std::optional<std::string>> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

std::string raw_request(const std::string& id, const std::string& func = "ping",
                        const std::string& args = "[]") {
  return R"({"func_name": ")" + func + R"(", "func_args": )" + args +
         R"(, "func_kwargs": {}, "message_id": ")" + id + R"("})";
}

// The example functions, counting the runs of every call by its message_id.
class CountingFunctions final : public FunctionTable {
 public:
  explicit CountingFunctions(std::shared_ptr<FunctionTable> inner) : inner_(std::move(inner)) {}
  std::vector<FunctionInfo> list() const override { return inner_->list(); }
  void invoke(const Invocation& call, OutcomeCallback done) override {
    {
      std::lock_guard lock(mutex_);
      runs_[std::string(call.message_id)] += 1;
    }
    inner_->invoke(call, std::move(done));
  }
  void cancel(std::uint64_t call_id) override { inner_->cancel(call_id); }
  int runs(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(id);
    return it == runs_.end() ? 0 : it->second;
  }

 private:
  std::shared_ptr<FunctionTable> inner_;
  std::mutex mutex_;
  std::map<std::string, int> runs_;
};

// One entry of list_servers(), parsed back.
struct Listed {
  std::string id;
  bool alive = false;
  std::int64_t age_ms = -1;
  std::string info;
};

std::vector<Listed> listed(Broker& b, const std::string& queue) {
  auto text = b.list_servers(queue);
  EXPECT_TRUE(text.is_ok()) << text.status().to_string();
  std::vector<Listed> out;
  if (!text.is_ok()) return out;
  Status s = json::scan_array(*text, {}, [&](const json::Member& e) {
    Listed l;
    l.id = json::get_string_member(e.raw, "id").value_or("?");
    l.alive = json::get_member(e.raw, "alive") == "true";
    l.age_ms = std::stoll(std::string(json::get_member(e.raw, "age_ms").value_or("-1")));
    l.info = std::string(json::get_member(e.raw, "info").value_or("?"));
    out.push_back(std::move(l));
    return Status::ok();
  });
  EXPECT_TRUE(s.is_ok()) << s.to_string() << " in " << *text;
  return out;
}

Status announce(Broker& b, const std::string& queue, const std::string& id, const std::string& info,
                std::chrono::milliseconds ttl) {
  auto p = std::make_shared<std::promise<Status>>();
  b.announce_server(queue, id, info, ttl, [p](const Status& s) { p->set_value(s); });
  auto f = p->get_future();
  if (f.wait_for(60s) != std::future_status::ready) {
    return Status(StatusCode::kTimeout, "no answer to announce_server");
  }
  return f.get();
}

// Writes one keyed record, with a prpc-ttl-ms header unless `ttl` is empty, as another program
// could: a plain librdkafka producer, not the broker.
void write_record(const std::string& bootstrap, const std::string& topic, const std::string& key,
                  const std::string& value, const std::string& ttl) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof(err)),
            RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT_NE(rk, nullptr) << err;
  std::vector<rd_kafka_vu_t> vus(5);
  vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
  vus[0].u.cstr = topic.c_str();
  vus[1].vtype = RD_KAFKA_VTYPE_KEY;
  vus[1].u.mem = {const_cast<char*>(key.data()), key.size()};
  vus[2].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[2].u.mem = {const_cast<char*>(value.data()), value.size()};
  vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vus[3].u.i = RD_KAFKA_MSG_F_COPY;
  vus[4].vtype = RD_KAFKA_VTYPE_HEADER;
  vus[4].u.header = {"prpc-ttl-ms", ttl.data(), static_cast<ssize_t>(ttl.size())};
  rd_kafka_error_t* error = rd_kafka_produceva(rk, vus.data(), ttl.empty() ? 4 : 5);
  EXPECT_EQ(error, nullptr) << rd_kafka_error_string(error);
  if (error != nullptr) rd_kafka_error_destroy(error);
  EXPECT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

}  // namespace

// ---- the broker's contract -------------------------------------------------------------------

TEST_F(KafkaTest, PublishSubscribeFinishRoutesTheReplyToTheCallersPartition) {
  prepare(4);
  auto server_side = broker();
  auto client_side = broker();
  ASSERT_TRUE(client_side->connect().is_ok());
  std::promise<std::pair<std::string, std::string>> got;
  auto reply_to = client_side->open_replies(queue_, [&](std::string_view id, std::string_view p) {
    got.set_value({std::string(id), std::string(p)});
  });
  ASSERT_TRUE(reply_to.is_ok()) << reply_to.status().to_string();
  EXPECT_EQ(reply_to->rfind("prpc_feedback_" + queue_ + ":", 0), 0u) << *reply_to;

  Inbox inbox;
  ASSERT_TRUE(server_side->connect().is_ok());
  SubscribeOptions sub;
  sub.queue = queue_;
  ASSERT_TRUE(server_side->subscribe(sub, inbox.handler()).is_ok());

  std::string id = new_uuid();
  ASSERT_TRUE(publish_sync(*client_side, Flavour::kPython, queue_, id, "request-bytes").is_ok());
  ASSERT_TRUE(wait_until([&] { return inbox.size() == 1; }, 30s));
  Delivery d = inbox.at(0);
  EXPECT_EQ(d.payload, "request-bytes");
  EXPECT_EQ(d.flavour, Flavour::kPython);
  EXPECT_EQ(d.delivery_count, 1u);

  ReplyView reply{Flavour::kPython, queue_, id, *reply_to, "reply-bytes", false};
  ASSERT_TRUE(finish_sync(*server_side, d, &reply).is_ok());
  auto future = got.get_future();
  ASSERT_EQ(future.wait_for(30s), std::future_status::ready);
  auto [rid, payload] = future.get();
  EXPECT_EQ(rid, id);
  EXPECT_EQ(payload, "reply-bytes");

  // The stored result is found by a broker that did not produce it (a feedback topic scan).
  auto found = lookup_sync(*client_side, Flavour::kPython, queue_, id);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, "reply-bytes");
  auto missing = lookup_sync(*client_side, Flavour::kPython, queue_, new_uuid());
  ASSERT_TRUE(missing.is_ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(KafkaTest, UnfinishedCallsAreRedeliveredWithTheirCountAndFinishedOnesAreFoundAgain) {
  prepare(1);
  auto producer = broker();
  std::string slow_id = new_uuid();
  std::string fast_id = new_uuid();
  ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, slow_id, "slow").is_ok());
  ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, fast_id, "fast").is_ok());
  SubscribeOptions sub;
  sub.queue = queue_;
  sub.python = false;

  for (std::uint32_t round = 1; round <= 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto server = broker();
    Inbox inbox;
    ASSERT_TRUE(server->subscribe(sub, inbox.handler()).is_ok());
    ASSERT_TRUE(wait_until([&] { return inbox.size() == 2; }, 60s)) << inbox.size();
    Delivery slow = inbox.at(0);
    Delivery fast = inbox.at(1);
    ASSERT_EQ(slow.payload, "slow");
    ASSERT_EQ(fast.payload, "fast");
    // Both were handed over before and never committed past: each comes back counted.
    EXPECT_EQ(slow.delivery_count, round);
    EXPECT_EQ(fast.delivery_count, round);
    if (round == 1) {
      // The later call finishes, the earlier one never does: no commit may pass the earlier.
      ReplyView reply{Flavour::kRaw, queue_, fast_id, "", "fast-result", false};
      ASSERT_TRUE(finish_sync(*server, fast, &reply).is_ok());
    } else {
      auto stored = lookup_sync(*server, Flavour::kRaw, queue_, fast_id);
      ASSERT_TRUE(stored.is_ok()) << stored.status().to_string();
      ASSERT_TRUE(stored->has_value());
      EXPECT_EQ(**stored, "fast-result");
      auto none = lookup_sync(*server, Flavour::kRaw, queue_, slow_id);
      ASSERT_TRUE(none.is_ok());
      EXPECT_FALSE(none->has_value());
    }
    // Leaving the group without finishing "slow" is what a crash after the last commit is.
  }
}

TEST_F(KafkaTest, FinishedPrefixIsCommittedAndNotDeliveredAgain) {
  prepare(1);
  auto producer = broker();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, new_uuid(), "m" + std::to_string(i))
                    .is_ok());
  }
  SubscribeOptions sub;
  sub.queue = queue_;
  sub.python = false;
  {
    auto server = broker();
    Inbox inbox;
    ASSERT_TRUE(server->subscribe(sub, inbox.handler()).is_ok());
    ASSERT_TRUE(wait_until([&] { return inbox.size() == 5; }, 60s));
    // Finish 0, 1, 3: the contiguous prefix is 0..1, so 2, 3, 4 come back (3 finished: counted).
    for (int i : {3, 0, 1}) {
      ReplyView reply{Flavour::kRaw, queue_, "", "", "r", false};
      ASSERT_TRUE(finish_sync(*server, inbox.at(static_cast<std::size_t>(i)), &reply).is_ok());
    }
    server->unsubscribe();
  }
  auto server = broker();
  Inbox inbox;
  ASSERT_TRUE(server->subscribe(sub, inbox.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return inbox.size() == 3; }, 60s)) << inbox.size();
  EXPECT_EQ(inbox.at(0).payload, "m2");
  EXPECT_EQ(inbox.at(1).payload, "m3");
  EXPECT_EQ(inbox.at(2).payload, "m4");
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(inbox.at(i).delivery_count, 2u);
}

// Offsets with no record behind them (here an aborted transaction's records and its marker) are
// a hole the consumer checks once (it seeks back to the expected offset and sees the same next
// record) and then commits over: nothing after the hole runs twice.
TEST_F(KafkaTest, HolesInTheOffsetsAreCheckedAndCommittedOver) {
  if (cluster_->is_mock()) {
    GTEST_SKIP() << "librdkafka's mock cluster hands aborted transactional records to "
                    "read_committed consumers; the real broker runs this case";
  }
  prepare(1);
  auto producer = broker();
  SubscribeOptions sub;
  sub.queue = queue_;
  sub.python = false;
  ReplyView reply{Flavour::kRaw, queue_, "", "", "r", false};
  {
    auto server = broker();
    Inbox inbox;
    ASSERT_TRUE(server->subscribe(sub, inbox.handler()).is_ok());
    ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, new_uuid(), "m0").is_ok());
    ASSERT_TRUE(wait_until([&] { return inbox.size() == 1; }, 60s));
    ASSERT_TRUE(finish_sync(*server, inbox.at(0), &reply).is_ok());
    std::string failed = testing::produce_aborted_transaction(
        cluster_->bootstrap(), "prpc_raw_" + queue_, 0, {"aborted-1", "aborted-2", "aborted-3"});
    ASSERT_EQ(failed, "");
    ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, new_uuid(), "m1").is_ok());
    ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, new_uuid(), "m2").is_ok());
    ASSERT_TRUE(wait_until([&] { return inbox.size() == 3; }, 60s)) << inbox.size();
    EXPECT_EQ(inbox.at(1).payload, "m1");
    EXPECT_EQ(inbox.at(2).payload, "m2");
    ASSERT_TRUE(finish_sync(*server, inbox.at(1), &reply).is_ok());
    ASSERT_TRUE(finish_sync(*server, inbox.at(2), &reply).is_ok());
    server->unsubscribe();
  }
  // The commit went past the hole and m2: the next server gets only what came after.
  ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, new_uuid(), "m3").is_ok());
  auto server = broker();
  Inbox inbox;
  ASSERT_TRUE(server->subscribe(sub, inbox.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return inbox.size() >= 1; }, 60s));
  EXPECT_EQ(inbox.at(0).payload, "m3");
  EXPECT_EQ(inbox.at(0).delivery_count, 1u);
  std::this_thread::sleep_for(500ms);  // nothing else is coming
  EXPECT_EQ(inbox.size(), 1u);
}

TEST_F(KafkaTest, NeverHandsOverMoreThanMaxOutstanding) {
  prepare(2);
  auto producer = broker();
  constexpr int kCount = 12;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, new_uuid(), "x").is_ok());
  }
  auto server = broker();
  Inbox inbox;
  SubscribeOptions sub;
  sub.queue = queue_;
  sub.python = false;
  sub.max_outstanding = 3;
  ASSERT_TRUE(server->subscribe(sub, inbox.handler()).is_ok());
  // With nothing finished, the room fills up and stops there.
  ASSERT_TRUE(wait_until([&] { return inbox.size() == 3; }, 60s)) << inbox.size();
  std::size_t finished = 0;
  while (finished < kCount) {
    ASSERT_TRUE(wait_until([&] { return inbox.size() > finished; }, 60s)) << finished;
    Delivery d = inbox.at(finished);
    inbox.unfinished.fetch_sub(1);
    ReplyView reply{Flavour::kRaw, queue_, "", "", "r", false};
    ASSERT_TRUE(finish_sync(*server, d, &reply).is_ok());
    ++finished;
  }
  EXPECT_EQ(inbox.size(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(inbox.peak.load(), 3);
}

// A server at its limit gives partitions up in a rebalance and gets them back later, when it is
// idle: they must be fetched again from their committed offsets. (librdkafka keeps a partition's
// pause flag and fetch position across its revocation: a partition paused by its old owner stayed
// paused for good when it came back, and its calls were never answered.)
TEST_F(KafkaTest, PartitionsComingBackToAServerAfterARebalanceAreFetchedAgain) {
  prepare(4);
  auto producer = broker();
  constexpr int kRecords = 40;
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, new_uuid(), "r" + std::to_string(i))
                    .is_ok());
  }
  SubscribeOptions sub;
  sub.queue = queue_;
  sub.python = false;
  // One call at a time, with room to fetch nearly everything: the rest waits, fetched.
  SubscribeOptions narrow = sub;
  narrow.max_outstanding = 1;
  narrow.batch_size = kRecords - 2;

  // Quicker rebalances on the mock cluster (see ServersJoiningAndLeavingUnderLoadLoseNothing).
  OptionValues quick;
  if (cluster_->is_mock()) quick["consumer.session.timeout.ms"] = "3000";
  auto a = broker(quick);
  Inbox in_a;
  ASSERT_TRUE(a->subscribe(narrow, in_a.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return in_a.size() >= 1; }, 60s));

  std::mutex mutex;
  std::set<std::string> finished;  // payloads finished by A
  std::size_t next_a = 0;
  auto drain_a = [&] {
    while (next_a < in_a.size()) {
      Delivery d = in_a.at(next_a++);
      ReplyView reply{Flavour::kRaw, queue_, "", "", "done", false};
      if (!finish_sync(*a, d, &reply).is_ok()) return false;
      std::lock_guard lock(mutex);
      finished.insert(d.payload);
    }
    return true;
  };
  auto distinct = [&](Inbox& other) {
    std::set<std::string> all = finished;
    for (std::size_t i = 0; i < other.size(); ++i) all.insert(other.at(i).payload);
    return all.size();
  };

  {
    // B joins while A is backed up, takes some partitions and never finishes what it gets.
    auto b = broker(quick);
    Inbox in_b;
    ASSERT_TRUE(b->subscribe(sub, in_b.handler()).is_ok());
    ASSERT_TRUE(wait_until([&] { return in_b.size() >= 1; }, 60s));
    // A works through its own partitions until every record is with one of the two.
    ASSERT_TRUE(wait_until([&] { return drain_a() && distinct(in_b) == kRecords; }, 60s, 5ms))
        << "A finished " << finished.size() << ", B holds " << in_b.size();
    // B leaves (a crash after its last commit): its partitions go back to A, now idle.
  }
  ASSERT_TRUE(wait_until([&] { return drain_a() && finished.size() == kRecords; }, 60s, 5ms))
      << "finished " << finished.size() << " of " << kRecords;
}

// Two servers announce themselves through the queue's servers topic; a third broker lists both,
// with their info, and follows new announcements.
TEST_F(KafkaTest, AnnouncedServersAreListedWhileAlive) {
  prepare(2);
  auto one = broker();
  auto other = broker();
  auto lister = broker();
  ASSERT_TRUE(one->connect().is_ok());
  ASSERT_TRUE(other->connect().is_ok());
  ASSERT_TRUE(lister->connect().is_ok());
  ASSERT_TRUE(announce(*one, queue_, "server-b", R"({"version": "0.1", "pid": 42})", 30s).is_ok());
  ASSERT_TRUE(announce(*other, queue_, "server-a \"quoted\"", "", 30s).is_ok());
  cluster_->prepare_queue(queue_ + "x", 2);
  ASSERT_TRUE(announce(*other, queue_ + "x", "server-c", "{}", 30s).is_ok());
  auto servers = listed(*lister, queue_);
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[0].id, "server-a \"quoted\"");  // by id
  EXPECT_EQ(servers[0].info, "{}");
  EXPECT_EQ(servers[1].id, "server-b");
  EXPECT_EQ(servers[1].info, R"({"version": "0.1", "pid": 42})");
  for (const Listed& s : servers) {
    EXPECT_TRUE(s.alive) << s.id;
    EXPECT_GE(s.age_ms, 0);
    EXPECT_LT(s.age_ms, 30000);
  }
  // A newer announcement replaces the info; the same lister reads on from where it stopped.
  ASSERT_TRUE(announce(*one, queue_, "server-b", R"({"version": "0.2"})", 30s).is_ok());
  servers = listed(*lister, queue_);
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[1].info, R"({"version": "0.2"})");
  // A broker that never listed before reads the retained announcements from the start.
  auto fresh = listed(*broker(), queue_);
  ASSERT_EQ(fresh.size(), 2u);
  EXPECT_EQ(fresh[1].info, R"({"version": "0.2"})");
  auto elsewhere = listed(*lister, queue_ + "x");
  ASSERT_EQ(elsewhere.size(), 1u);
  EXPECT_EQ(elsewhere[0].id, "server-c");
}

// A server that stops announcing is listed "alive": false once its ttl passed, and is forgotten
// after the lister's server_history; announcing again brings it back.
TEST_F(KafkaTest, AServerThatStopsAnnouncingIsListedDeadThenForgotten) {
  prepare(2);
  auto server = broker();
  auto lister = broker({{"server_history", "3000"}});
  ASSERT_TRUE(announce(*server, queue_, "steady", "{}", 1h).is_ok());
  ASSERT_TRUE(announce(*server, queue_, "stopped", R"({"n": 1})", 1s).is_ok());
  auto servers = listed(*lister, queue_);
  ASSERT_EQ(servers.size(), 2u);
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = listed(*lister, queue_);
        return s.size() == 2 && !s[1].alive;
      },
      20s, 50ms));
  servers = listed(*lister, queue_);
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[0].id, "steady");
  EXPECT_TRUE(servers[0].alive);
  EXPECT_EQ(servers[1].id, "stopped");
  EXPECT_FALSE(servers[1].alive);
  EXPECT_GE(servers[1].age_ms, 1000);
  EXPECT_EQ(servers[1].info, R"({"n": 1})");
  // Announcing again brings it back.
  ASSERT_TRUE(announce(*server, queue_, "stopped", "{}", 1s).is_ok());
  EXPECT_TRUE(listed(*lister, queue_).at(1).alive);
  // Silent for its ttl plus the history: no longer listed.
  ASSERT_TRUE(wait_until([&] { return listed(*lister, queue_).size() == 1; }, 30s, 50ms));
  servers = listed(*lister, queue_);
  EXPECT_EQ(servers.at(0).id, "steady");
  EXPECT_TRUE(servers.at(0).alive);
}

TEST_F(KafkaTest, AnnouncementsAreCheckedAndAnUnknownQueueHasNoServers) {
  prepare(2);
  auto b = broker();
  ASSERT_TRUE(b->connect().is_ok());
  EXPECT_EQ(listed(*b, "unknown" + queue_).size(), 0u);
  EXPECT_EQ(*b->list_servers("unknown" + queue_), "[]");
  Status s = announce(*b, queue_, "s", "[1]", 1s);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "announce_server: info: expected a JSON object, got array");
  EXPECT_EQ(announce(*b, queue_, "s", "{broken", 1s).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(announce(*b, queue_, "", "{}", 1s).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(announce(*b, "", "s", "{}", 1s).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(announce(*b, queue_, "s", "{}", 0ms).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*b->list_servers(queue_), "[]");
  // Records in the servers topic that are not announcements (another program wrote them) are
  // skipped: no ttl header, a ttl that is not a number, an info that is not a JSON object.
  ASSERT_TRUE(announce(*b, queue_, "real", "{}", 30s).is_ok());
  write_record(cluster_->bootstrap(), "prpc-servers-" + queue_, "no-ttl", "{}", {});
  write_record(cluster_->bootstrap(), "prpc-servers-" + queue_, "bad-ttl", "{}", "soon");
  write_record(cluster_->bootstrap(), "prpc-servers-" + queue_, "array", "[1]", "30000");
  write_record(cluster_->bootstrap(), "prpc-servers-" + queue_, "broken", R"({"a": )", "30000");
  write_record(cluster_->bootstrap(), "prpc-servers-" + queue_, "valid", R"({"from": "another"})",
               "30000");
  std::vector<Listed> servers;
  ASSERT_TRUE(wait_until(
      [&] {
        servers = listed(*b, queue_);
        return servers.size() >= 2;
      },
      30s, 50ms));
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[0].id, "real");
  EXPECT_EQ(servers[1].id, "valid");
  EXPECT_EQ(servers[1].info, R"({"from": "another"})");
  // The first announcement on a queue without topics creates its servers topic (CreateTopics;
  // on the mock cluster, which answers none, automatic creation once that times out).
  std::string fresh = queue_ + "new";
  auto creator = broker({{"admin_timeout", "3000"}});
  ASSERT_TRUE(announce(*creator, fresh, "first", "{}", 30s).is_ok());
  servers = listed(*b, fresh);
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_EQ(servers[0].id, "first");
}

TEST_F(KafkaTest, DeadLettersKeepTheRecordAndTheReason) {
  prepare(1);
  auto producer = broker();
  std::string id = new_uuid();
  ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, id, "poison").is_ok());
  auto server = broker();
  Inbox inbox;
  SubscribeOptions sub;
  sub.queue = queue_;
  sub.python = false;
  ASSERT_TRUE(server->subscribe(sub, inbox.handler()).is_ok());
  ASSERT_TRUE(wait_until([&] { return inbox.size() == 1; }, 60s));
  ASSERT_TRUE(finish_sync(*server, inbox.at(0), nullptr, "not JSON").is_ok());
  auto dead = server->dead_letters(queue_, 10);
  ASSERT_TRUE(dead.is_ok()) << dead.status().to_string();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].payload, "poison");
  EXPECT_EQ((*dead)[0].reason, "not JSON");
  EXPECT_EQ((*dead)[0].flavour, Flavour::kRaw);
  auto stats = server->queue_stats(queue_);
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
  EXPECT_EQ(stats->dead_letters, 1);
}

// ---- the engines over Kafka -------------------------------------------------------------------

TEST_F(KafkaTest, CallsEndToEndInBothFlavours) {
  prepare(4);
  start_server();
  for (Flavour f : {Flavour::kRaw, Flavour::kPython}) {
    SCOPED_TRACE(std::string(flavour_name(f)));
    Client& c = client(f);
    auto r = c.call_sync(request("summ", "[1, 2.5]"), 30s);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_FALSE(r->failed()) << r->exception_info.value_or("");
    EXPECT_EQ(r->result, "4.0");
    auto ping = c.call_sync(request("ping"), 30s);
    ASSERT_TRUE(ping.is_ok());
    EXPECT_EQ(ping->result, "\"pong\"");
    auto unknown = c.call_sync(request("no_such_function"), 30s);
    ASSERT_TRUE(unknown.is_ok());
    ASSERT_TRUE(unknown->failed());
    EXPECT_NE(unknown->exception_info->find("UnknownFunctionError"), std::string::npos);
    auto fail = c.call_sync(request("fail", R"(["", "ValueError"])"), 30s);
    ASSERT_TRUE(fail.is_ok());
    EXPECT_TRUE(fail->failed());
  }
}

// A record goes through the producer without linger when nothing else awaits delivery, and
// through the batching one otherwise; with eager_produce off, always the batching one. Either
// way every call is answered, one at a time and many at once.
TEST_F(KafkaTest, CallsAreAnsweredThroughEitherProducer) {
  prepare(2);
  start_server({}, 4, {{"eager_produce", "false"}});
  for (const char* eager : {"true", "false"}) {
    SCOPED_TRACE(std::string("client eager_produce=") + eager);
    auto c = std::make_unique<Client>(ClientOptions{queue_, Flavour::kRaw},
                                      broker({{"eager_produce", eager}}), codec_);
    ASSERT_TRUE(c->start().is_ok());
    for (int i = 0; i < 5; ++i) {
      auto r = c->call_sync(request("summ", "[" + std::to_string(i) + ", 1, 0]"), 30s);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      EXPECT_EQ(r->result, std::to_string(i + 1));
    }
    constexpr int kCalls = 200;
    std::atomic<int> right{0};
    std::atomic<int> finished{0};
    for (int i = 0; i < kCalls; ++i) {
      c->call(request("summ", "[" + std::to_string(i) + ", 2, 0]"), 60s,
              [&, i](const Result<Message>& r) {
                if (r.is_ok() && r->result == std::to_string(i + 2)) right.fetch_add(1);
                finished.fetch_add(1);
              });
    }
    ASSERT_TRUE(wait_until([&] { return finished.load() == kCalls; }, 90s)) << finished.load();
    EXPECT_EQ(right.load(), kCalls);
    clients_.push_back(std::move(c));
  }
}

TEST_F(KafkaTest, TwoServersInOneGroupServeEveryRequestExactlyOnce) {
  prepare(4);
  Server& a = start_server();
  Server& b = start_server();
  Client& c = client();
  // Both servers hold partitions before the counted load (a rebalance mid-load may legitimately
  // run a call twice; this test counts the steady state).
  int warm = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = c.call_sync(request("echo", "[" + std::to_string(warm++) + "]"), 30s);
        return r.is_ok() && a.stats().succeeded > 0 && b.stats().succeeded > 0;
      },
      60s, 1ms));
  std::uint64_t before = a.stats().succeeded + b.stats().succeeded;

  constexpr int kCalls = 400;
  std::mutex mutex;
  std::map<std::string, int> replies;
  std::atomic<int> done{0};
  std::atomic<int> failures{0};
  for (int i = 0; i < kCalls; ++i) {
    c.call(request("echo", "[" + std::to_string(i) + "]"), 60s, [&, i](Result<Message> r) {
      if (!r.is_ok() || r->failed() || r->result != std::to_string(i)) {
        failures.fetch_add(1);
      } else {
        std::lock_guard lock(mutex);
        replies[r->message_id] += 1;
      }
      done.fetch_add(1);
    });
  }
  ASSERT_TRUE(wait_until([&] { return done.load() == kCalls; }, 120s)) << done.load();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(replies.size(), static_cast<std::size_t>(kCalls));
  for (const auto& [id, n] : replies) EXPECT_EQ(n, 1) << id;
  std::uint64_t ran = a.stats().succeeded + b.stats().succeeded - before;
  EXPECT_EQ(ran, static_cast<std::uint64_t>(kCalls));
  EXPECT_GT(a.stats().succeeded, 0u);
  EXPECT_GT(b.stats().succeeded, 0u);
}

TEST_F(KafkaTest, ASecondServerJoiningUnderLoadLosesNothing) {
  prepare(4);
  start_server();
  Client& c = client();
  constexpr int kCalls = 300;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  std::mutex mutex;
  std::vector<std::string> failures;  // "#index id: what", to find a lost call in a trace log
  for (int i = 0; i < kCalls; ++i) {
    if (i == kCalls / 3) start_server();  // a rebalance while calls are in flight
    auto id = std::make_shared<std::string>();
    std::string sent = c.call(request("slow", "[0.01]"), 120s, [&, i, id](Result<Message> r) {
      if (r.is_ok() && !r->failed()) {
        ok.fetch_add(1);
      } else {
        std::lock_guard lock(mutex);
        failures.push_back(
            "#" + std::to_string(i) + " " + *id + ": " +
            (r.is_ok() ? r->exception_info.value_or("failed") : r.status().to_string()));
      }
      done.fetch_add(1);
    });
    std::lock_guard lock(mutex);
    *id = sent;
  }
  ASSERT_TRUE(wait_until([&] { return done.load() == kCalls; }, 180s)) << done.load();
  std::lock_guard lock(mutex);
  std::string where;
  if (ok.load() != kCalls) {
    // Are the unanswered requests in the request topic (then no server took them), or not?
    std::string out = (dir_.path() / "requests.txt").string();
    std::string dump = "kcat -C -b " + cluster_->bootstrap() + " -t prpc_raw_" + queue_ +
                       " -e -q -f '%p %o %k\\n' > " + out;
    int records = 0;
    if (std::system(dump.c_str()) == 0) {
      std::ifstream f(out);
      for (std::string line; std::getline(f, line); ++records) {
        for (const std::string& what : failures) {
          std::string id = what.substr(what.find(' ') + 1, 36);
          if (line.find(id) != std::string::npos) where += " [" + line + "]";
        }
      }
    }
    where = "; " + std::to_string(records) + " records in the request topic; unanswered ones" +
            (where.empty() ? std::string(" not among them") : " at" + where);
  }
  EXPECT_EQ(ok.load(), kCalls) << ::testing::PrintToString(failures) << where;
}

// Servers join and leave (gracefully, and abruptly with calls running) while calls keep coming,
// each server backed up at its limit: every call is answered exactly once, and ran at least once.
TEST_F(KafkaTest, ServersJoiningAndLeavingUnderLoadLoseNothing) {
  prepare(4);
  auto counting = std::make_shared<CountingFunctions>(functions_);
  functions_ = counting;
  ServerOptions narrow;
  narrow.max_in_flight = 8;
  narrow.batch_size = 8;
  // The mock cluster gives members session.timeout.ms - 1 s to rejoin in every rebalance; a
  // shorter session keeps its five membership changes quick (a real broker refuses below 6 s).
  OptionValues quick;
  if (cluster_->is_mock()) quick["consumer.session.timeout.ms"] = "3000";
  auto join = [&] { start_server(narrow, 2, quick); };
  auto leave = [&](std::size_t index, std::chrono::milliseconds grace) {
    servers_.at(index)->stop(grace);
    servers_.at(index).reset();  // leaves the group; calls it abandoned go to the others
  };
  join();
  Client& c = client();

  constexpr std::size_t kWaves = 6;
  constexpr std::size_t kPerWave = 60;
  constexpr std::size_t kCalls = kWaves * kPerWave;
  std::mutex mutex;
  std::vector<std::string> ids(kCalls);
  std::vector<int> answers(kCalls, 0);
  std::vector<std::string> errors;
  std::atomic<std::size_t> done{0};
  auto wave = [&](std::size_t w) {
    for (std::size_t i = w * kPerWave; i < (w + 1) * kPerWave; ++i) {
      std::string id = c.call(request("slow", "[0.002]"), 90s, [&, i](Result<Message> r) {
        std::lock_guard lock(mutex);
        answers[i] += 1;
        if (!r.is_ok()) {
          errors.push_back(r.status().to_string());
        } else if (r->failed()) {
          errors.push_back(r->exception_info.value_or("failed"));
        }
        done.fetch_add(1);
      });
      std::lock_guard lock(mutex);
      ids[i] = id;
    }
  };
  // Each change of membership happens while half of the last wave is still unanswered.
  auto half_way = [&](std::size_t w) {
    ASSERT_TRUE(wait_until([&] { return done.load() >= w * kPerWave + kPerWave / 2; }, 60s))
        << done.load();
  };
  wave(0);
  half_way(0);
  join();  // 2 servers
  wave(1);
  half_way(1);
  join();  // 3
  wave(2);
  half_way(2);
  leave(0, 0ms);  // abruptly: its running calls are abandoned
  wave(3);
  half_way(3);
  leave(1, 5s);  // gracefully: one server left, with every partition
  wave(4);
  half_way(4);
  join();  // it gives some back
  wave(5);

  ASSERT_TRUE(wait_until([&] { return done.load() >= kCalls; }, 120s)) << done.load();
  std::lock_guard lock(mutex);
  EXPECT_TRUE(errors.empty()) << errors.size() << " failed, first: " << errors.front();
  for (std::size_t i = 0; i < kCalls; ++i) {
    EXPECT_EQ(answers[i], 1) << "call " << i;
    EXPECT_GE(counting->runs(ids[i]), 1) << "call " << i << " (" << ids[i] << ")";
  }
}

TEST_F(KafkaTest, AServerKilledMidCallLeavesTheCallToAnother) {
  prepare(2);
  auto first = spawn_server("first.log");
  Client& c = client();
  std::promise<Result<Message>> reply;
  std::string id = c.call(request("slow", "[3]"), 120s,
                          [&](Result<Message> r) { reply.set_value(std::move(r)); });
  ASSERT_TRUE(
      wait_until([&] { return first.output().find("START slow " + id) != std::string::npos; }, 60s))
      << first.output();
  Server& second = start_server();
  first.kill_now();  // SIGKILL in the middle of the call
  auto future = reply.get_future();
  ASSERT_EQ(future.wait_for(120s), std::future_status::ready);
  auto r = future.get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(r->failed()) << r->exception_info.value_or("");
  EXPECT_GE(second.stats().received, 1u);
}

TEST_F(KafkaTest, AfterTooManyDeliveriesTheCallerGetsADeadLetterError) {
  prepare(1);
  Client& c = client();
  std::promise<Result<Message>> reply;
  std::string id =
      c.call(request("ping"), 120s, [&](Result<Message> r) { reply.set_value(std::move(r)); });
  SubscribeOptions sub;
  sub.queue = queue_;
  sub.python = false;
  // Three servers take the request and vanish without finishing it.
  for (int i = 0; i < 3; ++i) {
    auto crashing = broker();
    Inbox inbox;
    ASSERT_TRUE(crashing->subscribe(sub, inbox.handler()).is_ok());
    ASSERT_TRUE(wait_until([&] { return inbox.size() == 1; }, 60s));
    EXPECT_EQ(inbox.at(0).delivery_count, static_cast<std::uint32_t>(i + 1));
  }
  ServerOptions options;
  options.max_deliveries = 3;
  Server& server = start_server(options);
  auto future = reply.get_future();
  ASSERT_EQ(future.wait_for(60s), std::future_status::ready);
  auto r = future.get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE(r->failed());
  EXPECT_NE(r->exception_info->find("DeadLetterError"), std::string::npos) << *r->exception_info;
  EXPECT_EQ(server.stats().dead_lettered, 1u);
  auto dead = broker()->dead_letters(queue_, 10);
  ASSERT_TRUE(dead.is_ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_NE((*dead)[0].payload.find(id), std::string::npos);
  EXPECT_NE((*dead)[0].reason.find("delivered 4 times"), std::string::npos) << (*dead)[0].reason;
}

TEST_F(KafkaTest, MalformedRecordsAreDeadLetteredAndTheServerKeepsServing) {
  prepare(2);
  Server& server = start_server();
  auto producer = broker();
  std::string recoverable = new_uuid();
  ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, "", "this is not JSON").is_ok());
  ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, "", "").is_ok());
  ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, recoverable,
                           R"({"func_args": 5, "message_id": ")" + recoverable + R"("})")
                  .is_ok());
  ASSERT_TRUE(publish_sync(*producer, Flavour::kPython, queue_, "", "[1, 2").is_ok());
  ASSERT_TRUE(wait_until([&] { return server.stats().dead_lettered == 4; }, 60s))
      << server.stats().dead_lettered;
  // The one whose id could be read is answered with the reason.
  std::optional<std::string> answer;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = lookup_sync(*producer, Flavour::kRaw, queue_, recoverable);
        if (r.is_ok() && r->has_value()) answer = **r;
        return answer.has_value();
      },
      30s, 100ms));
  EXPECT_NE(answer->find("DecodeError"), std::string::npos) << *answer;
  auto r = client().call_sync(request("summ", "[2, 3]"), 30s);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->result, "5.5");
  auto dead = producer->dead_letters(queue_, 10);
  ASSERT_TRUE(dead.is_ok());
  EXPECT_EQ(dead->size(), 4u);
  for (const auto& d : *dead) EXPECT_FALSE(d.reason.empty());
}

TEST_F(KafkaTest, TheRawProtocolWorksFromKcatAsTheSeedShows) {
  prepare(2);
  start_server();
  std::string id = new_uuid();
  std::string in = (dir_.path() / "request.json").string();
  {
    std::ofstream f(in);
    f << raw_request(id, "hello_world") << "\n";
  }
  // producer.send(f"prpc_raw_{queue_name}", json.dumps(message)): no key, plain JSON.
  std::string produce = "kcat -P -b " + cluster_->bootstrap() + " -t prpc_raw_" + queue_ + " " + in;
  ASSERT_EQ(std::system(produce.c_str()), 0);
  // Then read prpc_feedback_raw_{queue_name} from the beginning until the message_id shows up.
  std::string out = (dir_.path() / "feedback.txt").string();
  std::string consume = "kcat -C -b " + cluster_->bootstrap() + " -t prpc_feedback_raw_" + queue_ +
                        " -o beginning -e -q > " + out;
  std::string found;
  ASSERT_TRUE(wait_until(
      [&] {
        if (std::system(consume.c_str()) != 0) return false;
        std::ifstream f(out);
        for (std::string line; std::getline(f, line);) {
          if (line.find(id) != std::string::npos) found = line;
        }
        return !found.empty();
      },
      60s, 200ms));
  EXPECT_NE(found.find(R"("message_id": ")" + id + "\""), std::string::npos) << found;
  EXPECT_NE(found.find(R"("result": "hello_world")"), std::string::npos) << found;
  EXPECT_NE(found.find(R"("exception_info": null)"), std::string::npos) << found;
}

// ---- signed messages (docs/security.md): the prpc-signature and prpc-key-id headers ---------

namespace {

const std::string kKey = "k1-0123456789abcdef0123456789abcdef";
const std::string kWrongKey = "kx-not-the-key-of-this-deployment!";

// Produces one record with kcat, as a program without PRPC would; `headers` are name=value.
void kcat_produce(const std::string& bootstrap, const std::string& topic,
                  const std::filesystem::path& file, const std::string& payload,
                  const std::vector<std::string>& headers) {
  {
    std::ofstream f(file);
    f << payload;  // kcat sends a file as one record, every byte of it
  }
  std::string cmd = "kcat -P -b " + bootstrap + " -t " + topic;
  for (const std::string& h : headers) cmd += " -H " + h;
  cmd += " " + file.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// Every record of `topic` as kcat prints it: "<headers> <value>" (headers name=value,...).
std::vector<std::string> kcat_records(const std::string& bootstrap, const std::string& topic,
                                      const std::filesystem::path& file) {
  std::string cmd = "kcat -C -b " + bootstrap + " -t " + topic +
                    " -o beginning -e -q -f '%h %s\\n' > " + file.string();
  std::vector<std::string> out;
  if (std::system(cmd.c_str()) != 0) return out;
  std::ifstream f(file);
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_F(KafkaTest, ASignedCallWorksAndItsRecordsCarryTheSignatureHeaders) {
  prepare(2);
  ServerOptions options;
  options.signing.key = kKey;
  start_server(options);
  Client c(ClientOptions{queue_, Flavour::kRaw, {}, {kKey, {}, false}}, broker(), codec_);
  ASSERT_TRUE(c.start().is_ok());
  auto r = c.call_sync(request("echo", R"(["signed"])"), 30s);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_FALSE(r->failed()) << *r->exception_info;
  EXPECT_EQ(r->result, R"("signed")");
  std::string headers = "prpc-key-id=" + signing_key_id(kKey);
  // The request record, as a raw reader sees it.
  auto requests = kcat_records(cluster_->bootstrap(), "prpc_raw_" + queue_, dir_.path() / "req");
  ASSERT_EQ(requests.size(), 1u);
  std::string value = requests[0].substr(requests[0].find(' ') + 1);
  EXPECT_EQ(requests[0].substr(0, requests[0].find(' ')),
            "prpc-signature=" + hmac_sha256_hex(kKey, value) + "," + headers);
  // The stored result (the feedback record) is signed, and found so by another broker.
  auto finder = broker();
  std::promise<Result<std::optional<StoredResult>>> found;
  finder->lookup_result_signed(Flavour::kRaw, queue_, r->message_id,
                               [&](Result<std::optional<StoredResult>> x) { found.set_value(x); });
  auto stored = found.get_future().get();
  ASSERT_TRUE(stored.is_ok()) << stored.status().to_string();
  ASSERT_TRUE(stored->has_value());
  EXPECT_EQ((*stored)->signature, hmac_sha256_hex(kKey, (*stored)->payload));
  EXPECT_EQ((*stored)->key_id, signing_key_id(kKey));
}

TEST_F(KafkaTest, UnsignedAndMisSignedRequestsAreDeadLetteredAndNotRun) {
  prepare(2);
  auto counting = std::make_shared<CountingFunctions>(functions_);
  functions_ = counting;
  ServerOptions options;
  options.signing.key = kKey;
  Server& server = start_server(options);
  std::string unsigned_id = new_uuid(), wrong_id = new_uuid(), signed_id = new_uuid();
  std::string plain = raw_request(unsigned_id, "echo", R"(["unsigned"])");
  std::string wrong = raw_request(wrong_id, "echo", R"(["mis-signed"])");
  std::string topic = "prpc_raw_" + queue_;
  kcat_produce(cluster_->bootstrap(), topic, dir_.path() / "plain", plain, {});
  kcat_produce(cluster_->bootstrap(), topic, dir_.path() / "wrong", wrong,
               {"prpc-signature=" + hmac_sha256_hex(kWrongKey, wrong),
                "prpc-key-id=" + signing_key_id(kKey)});
  ASSERT_TRUE(wait_until([&] { return server.stats().dead_lettered == 2; }, 60s))
      << server.stats().dead_lettered;
  auto ops = broker();
  auto dead = ops->dead_letters(queue_, 10);
  ASSERT_TRUE(dead.is_ok()) << dead.status().to_string();
  std::map<std::string, std::string> reasons;
  for (const DeadLetter& d : *dead) reasons[d.payload] = d.reason;
  EXPECT_EQ(reasons[plain],
            "unsigned request: signed messages are required (a signing key is configured)");
  EXPECT_EQ(reasons[wrong],
            "the request's signature does not match its bytes under any accepted key");
  EXPECT_EQ(counting->runs(unsigned_id), 0);
  EXPECT_EQ(counting->runs(wrong_id), 0);
  // The same record signed with the key is run.
  std::string good = raw_request(signed_id, "echo", R"(["by hand"])");
  kcat_produce(
      cluster_->bootstrap(), topic, dir_.path() / "good", good,
      {"prpc-signature=" + hmac_sha256_hex(kKey, good), "prpc-key-id=" + signing_key_id(kKey)});
  ASSERT_TRUE(wait_until([&] { return counting->runs(signed_id) == 1; }, 60s));
  EXPECT_EQ(server.stats().dead_lettered, 2u);
}

TEST_F(KafkaTest, AClientWithAKeyRejectsAnUnsignedReply) {
  prepare(2);
  start_server();  // no key: its replies are unsigned
  Client c(ClientOptions{queue_, Flavour::kRaw, {}, {kKey, {}, false}}, broker(), codec_);
  ASSERT_TRUE(c.start().is_ok());
  auto r = c.call_sync(request("echo", "[1]"), 30s);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDecode);
  EXPECT_EQ(r.status().message(),
            "rejected the reply: unsigned reply: signed messages are required (a signing key "
            "is configured)");
}

TEST_F(KafkaTest, CallsSentWhileTheBrokerIsDownCompleteAfterItReturns) {
  prepare(2);
  start_server();
  Client& c = client();
  auto warm = c.call_sync(request("ping"), 30s);
  ASSERT_TRUE(warm.is_ok()) << warm.status().to_string();

  if (cluster_->is_mock()) {
    cluster_->mock()->broker_down(-1);
  } else {
    cluster_->server()->stop();
  }
  constexpr int kCalls = 20;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kCalls; ++i) {
    c.call(request("echo", "[" + std::to_string(i) + "]"), 180s, [&, i](Result<Message> r) {
      if (r.is_ok() && !r->failed() && r->result == std::to_string(i)) ok.fetch_add(1);
      done.fetch_add(1);
    });
  }
  if (cluster_->is_mock()) {
    cluster_->mock()->broker_up(-1);
  } else {
    cluster_->server()->start();
  }
  ASSERT_TRUE(wait_until([&] { return done.load() == kCalls; }, 200s)) << done.load();
  EXPECT_EQ(ok.load(), kCalls);
}

}  // namespace prpc::kafka_tests

namespace prpc::kafka_tests {

// prpc-host, configured as an operator would, serving the example functions over Kafka; two of
// them in one group, one SIGKILLed while calls are in flight.
TEST_F(KafkaTest, PrpcHostProcessesServeAndSurviveASigkill) {
  prepare(4);
  std::ofstream(dir_.path() / "prpc.toml")
      << "[broker]\ntype = \"kafka\"\nurl = \"" << cluster_->bootstrap() << "\"\n"
      << "[broker.options]\npartitions = \"4\"\nreplication_factor = \"1\"\n"
      << "lookup_by_timestamp = \"" << (cluster_->is_mock() ? "false" : "true") << "\"\n"
      << "\"consumer.session.timeout.ms\" = \"6000\"\n"
      << "\"consumer.heartbeat.interval.ms\" = \"500\"\n"
      << "[codec]\npython = \"rawjson\"\nraw = \"rawjson\"\n"
      << "[queue]\nname = \"" << queue_ << "\"\n"
      << "[functions]\nplugins = [\"example\"]\n"
      << "[executors.thread]\nworkers = 4\n";
  auto host = [&](const std::string& log) {
    return testing::ChildProcess::start(
        {PRPC_HOST_BIN, "--config", (dir_.path() / "prpc.toml").string()}, dir_.path() / log,
        {{"PRPC_PLUGIN_PATH", PRPC_TEST_PLUGIN_DIR}});
  };
  auto first = host("host1.log");
  auto second = host("host2.log");
  Client& c = client();
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = c.call_sync(request("ping"), 2s);
        return r.is_ok() && !r->failed();
      },
      60s, 10ms))
      << first.output() << second.output();
  auto summ = c.call_sync(request("summ", "[1, 2]"), 30s);
  ASSERT_TRUE(summ.is_ok()) << summ.status().to_string();
  EXPECT_EQ(summ->result, "3.5");

  constexpr int kCalls = 40;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kCalls; ++i) {
    c.call(request("slow", "[0.2]"), 120s, [&](Result<Message> r) {
      if (r.is_ok() && !r->failed()) ok.fetch_add(1);
      done.fetch_add(1);
    });
  }
  ASSERT_TRUE(wait_until([&] { return done.load() >= 4; }, 60s));  // both hosts are busy now
  first.kill_now();
  ASSERT_TRUE(wait_until([&] { return done.load() == kCalls; }, 120s)) << done.load() << "\n"
                                                                       << second.output();
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(second.stop(std::chrono::seconds(20)), 0) << second.output();
}

// Servers on Kafka announce themselves, and `prpc stats --servers` lists them as an operator runs
// it; a server that stops is listed as stopped at once.
TEST_F(KafkaTest, PrpcStatsServersListsTheServersOfAQueue) {
  prepare(2);
  ServerOptions first;
  first.consumer = "first-" + queue_;
  ServerOptions second;
  second.consumer = "second-" + queue_;
  start_server(first);
  start_server(second);
  std::ofstream(dir_.path() / "cli.toml")
      << "[broker]\ntype = \"kafka\"\nurl = \"" << cluster_->bootstrap() << "\"\n"
      << "[queue]\nname = \"" << queue_ << "\"\n";
  struct State {
    int alive = 0;
    int stopped = 0;
    std::string text;
  };
  auto stats = [&] {
    auto r = testing::run_program({PRPC_CLI_BIN, "--config", (dir_.path() / "cli.toml").string(),
                                   "--json", "stats", "--servers"},
                                  dir_.path() / "cli.log");
    State st;
    st.text = r.output;
    // The JSON document is the line that starts with {"queue"; log lines go around it.
    std::size_t at = r.output.find("{\"queue\"");
    if (r.exit_code != 0 || at == std::string::npos) return st;
    std::string doc = r.output.substr(at, r.output.find('\n', at) - at);
    std::string servers(json::get_member(doc, "servers").value_or("[]"));
    (void)json::scan_array(servers, {}, [&](const json::Member& e) {
      std::string id = json::get_string_member(e.raw, "id").value_or("");
      bool alive = json::get_member(e.raw, "alive") == "true";
      if (id != first.consumer && id != second.consumer) return Status::ok();
      (alive ? st.alive : st.stopped) += 1;
      return Status::ok();
    });
    return st;
  };
  State st;
  ASSERT_TRUE(wait_until(
      [&] {
        st = stats();
        return st.alive == 2;
      },
      60s, 200ms))
      << st.text;
  EXPECT_NE(st.text.find(R"("name": "echo")"), std::string::npos) << st.text;
  servers_.at(0)->stop(5s);
  ASSERT_TRUE(wait_until(
      [&] {
        st = stats();
        return st.alive == 1 && st.stopped == 1;
      },
      30s, 200ms))
      << st.text;
}
}  // namespace prpc::kafka_tests
