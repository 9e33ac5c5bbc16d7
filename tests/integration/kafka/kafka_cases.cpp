// The Kafka broker against a cluster (mock or real, see acquire_cluster()): the broker's own
// contract first, then the server and client engines end to end over it.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "kafka_test_base.hpp"

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
      int now = unfinished.fetch_add(static_cast<int>(batch.size())) + static_cast<int>(batch.size());
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
  b.lookup_result(f, queue, id, [&](Result<std::optional<std::string>> r) {
    p.set_value(std::move(r));
  });
  return p.get_future().get();
}

std::string raw_request(const std::string& id, const std::string& func = "ping",
                        const std::string& args = "[]") {
  return R"({"func_name": ")" + func + R"(", "func_args": )" + args +
         R"(, "func_kwargs": {}, "message_id": ")" + id + R"("})";
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
    ASSERT_TRUE(publish_sync(*producer, Flavour::kRaw, queue_, new_uuid(), "m" + std::to_string(i)).is_ok());
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
  for (int i = 0; i < kCalls; ++i) {
    if (i == kCalls / 3) start_server();  // a rebalance while calls are in flight
    c.call(request("slow", "[0.01]"), 120s, [&](Result<Message> r) {
      if (r.is_ok() && !r->failed()) ok.fetch_add(1);
      done.fetch_add(1);
    });
  }
  ASSERT_TRUE(wait_until([&] { return done.load() == kCalls; }, 180s)) << done.load();
  EXPECT_EQ(ok.load(), kCalls);
}

TEST_F(KafkaTest, AServerKilledMidCallLeavesTheCallToAnother) {
  prepare(2);
  auto first = spawn_server("first.log");
  Client& c = client();
  std::promise<Result<Message>> reply;
  std::string id = c.call(request("slow", "[3]"), 120s,
                          [&](Result<Message> r) { reply.set_value(std::move(r)); });
  ASSERT_TRUE(wait_until([&] { return first.output().find("START slow " + id) != std::string::npos; },
                         60s))
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
  std::string id = c.call(request("ping"), 120s, [&](Result<Message> r) { reply.set_value(std::move(r)); });
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
  ASSERT_TRUE(wait_until([&] { return done.load() == kCalls; }, 120s))
      << done.load() << "\n" << second.output();
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(second.stop(std::chrono::seconds(20)), 0) << second.output();
}

}  // namespace prpc::kafka_tests
