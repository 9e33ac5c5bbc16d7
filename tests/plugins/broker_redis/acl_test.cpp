// The Redis broker as an ACL user restricted to PRPC's keys and the commands
// docs/brokers/redis.md lists: every operation of a server and a client works; and, for each
// permission taken away in turn, which operations fail and what they say. The table in
// docs/brokers/redis.md ("ACL permissions") is this test's expectations.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "redis_acl.hpp"
#include "redis_test_util.hpp"

namespace prpc::redis::testing {
namespace {

using prpc::testing::prpc_redis_acl_commands;
using prpc::testing::RedisAclOptions;
using prpc::testing::RedisAclServer;

// What each operation did: "ok", or why not.
using Outcomes = std::map<std::string, std::string>;

constexpr const char* kOps[] = {"connect",      "publish", "subscribe",   "finish",
                                "push",         "lookup",  "dead-letter", "dead-letter-unanswered",
                                "touch",        "claim",   "trim",        "stats",
                                "dead-letters", "requeue", "unsubscribe"};

// The first refusal logged about `what` (e.g. "trimming"): Redis says NOPERM for a command, and
// "can't run this command" for one a script runs.
std::string first_refusal(LogCapture& logs, std::string_view what) {
  for (const std::string& line : logs.lines()) {
    if (line.find(what) == std::string::npos) continue;
    if (line.find("NOPERM") != std::string::npos || line.find("can't run") != std::string::npos) {
      return line.substr(line.find(": ") + 2);
    }
  }
  return "(nothing done, nothing logged)";
}

// Idle time (ms) of a pending entry, -1 when it is not pending.
long long idle_ms(RedisClient& admin, const std::string& stream, const std::string& id) {
  auto r = admin.command({"XPENDING", stream, "prpc_group_consumers", id, id, "1"});
  if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) return -1;
  return r->element[0]->element[2]->integer;
}

// Runs every operation of a server and a client once, in order, as `url`'s user, and says how
// each went. Later operations that need an earlier one's result are skipped when it failed.
Outcomes run_operations(const std::string& url, int db, RedisClient& admin) {
  Outcomes out;
  for (const char* op : kOps) out[op] = "skipped";
  LogCapture logs;
  admin.text({"SELECT", std::to_string(db)});
  const std::string q = unique_queue("acl");
  const std::string stream = protocol::request_stream(Flavour::kRaw, q);
  // Reads block up to the next claim: claims are rare here, so unsubscribe() must wake the read.
  // (Durations in ms: the options reach the broker without the loader's unit parsing.)
  OptionMap options{{"block", "10000"},
                    {"trim_interval", "50"},
                    {"claim_interval", "10000"},
                    {"connect_timeout", "3000"},
                    {"reconnect_hold", "1000"}};
  auto server = make_broker(url, options);
  auto client = make_broker(url, options);
  Status connected = server->connect();
  if (connected.is_ok()) connected = client->connect();
  out["connect"] = connected.is_ok() ? "ok" : connected.message();
  if (!connected.is_ok()) return out;

  ReplyLog replies;
  auto reply_to = client->open_replies(q, replies.handler());
  if (!reply_to.is_ok()) {
    out["push"] = reply_to.status().message();
    return out;
  }
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(new_uuid());
  for (const std::string& id : ids) {
    Status s = publish_sync(*client, Flavour::kRaw, q, id, id);
    if (!s.is_ok()) {
      out["publish"] = s.message();
      return out;
    }
  }
  out["publish"] = "ok";

  Collector col;
  Status sub = server->subscribe(sub_options(q, "s1", 300ms), col.handler());
  auto got = col.wait_for(4, 5s);
  if (!sub.is_ok() || got.size() < 4) {
    out["subscribe"] = sub.is_ok() ? first_refusal(logs, "") : sub.message();
    server->unsubscribe();
    return out;
  }
  out["subscribe"] = "ok";
  std::map<std::string, Delivery> by_id;
  for (const Delivery& d : got) by_id[d.payload] = d;

  // A reply: stored, pushed, acknowledged.
  ReplyView reply{Flavour::kRaw, q, ids[0], *reply_to, "result-0", false};
  Status finished = finish_sync(*server, by_id[ids[0]], &reply);
  out["finish"] = finished.is_ok() ? "ok" : finished.message();
  if (finished.is_ok()) {
    out["push"] = replies.wait_for_ids({ids[0]}, 5s) ? "ok" : "(no reply pushed)";
    auto found = lookup_sync(*client, Flavour::kRaw, q, ids[0]);
    out["lookup"] = !found.is_ok()                      ? found.status().message()
                    : found->value_or("") == "result-0" ? "ok"
                                                        : "(result not found)";
  }

  // A dead letter, then listing and requeueing it.
  ReplyView error_reply{Flavour::kRaw, q, ids[1], *reply_to, "error-1", false};
  Status dead = finish_sync(*server, by_id[ids[1]], &error_reply, "refused by the test");
  out["dead-letter"] = dead.is_ok() ? "ok" : dead.message();
  // And one nobody can be answered for (its message_id could not be read): no result key and
  // no reply stream to name.
  Status unanswered = finish_sync(*server, by_id[ids[3]], nullptr, "unreadable");
  out["dead-letter-unanswered"] = unanswered.is_ok() ? "ok" : unanswered.message();
  auto stats = client->queue_stats(q);
  out["stats"] = !stats.is_ok()          ? stats.status().message()
                 : stats->consumers == 1 ? "ok"
                                         : "(wrong numbers)";
  if (dead.is_ok()) {
    auto letters = client->dead_letters(q, 10);
    out["dead-letters"] = !letters.is_ok() ? letters.status().message()
                          : !letters->empty() && (*letters)[0].payload == ids[1] ? "ok"
                                                                                 : "(not listed)";
    auto requeued = client->requeue_dead_letters(q, {});
    out["requeue"] = !requeued.is_ok() ? requeued.status().message()
                     : *requeued >= 1  ? "ok"
                                       : "(nothing requeued)";
  }

  // A long call keeps its request (touch): its idle time starts over.
  const Delivery& long_call = by_id[ids[2]];
  wait_until([&] { return idle_ms(admin, stream, long_call.token) >= 200; }, 5s);
  server->touch(long_call.view());
  bool touched = wait_until([&] { return idle_ms(admin, stream, long_call.token) < 200; }, 2s);
  out["touch"] = touched ? "ok" : "(idle time not reset)";

  // Served requests are trimmed from the stream (the finished one and the dead letter).
  if (finished.is_ok()) {  // the oldest request is served: it can go
    const std::string& first = by_id[ids[0]].token;
    bool trimmed = wait_until(
        [&] {
          return admin.command({"XRANGE", stream, first, first})->elements == 0;
        },
        2s);
    out["trim"] = trimmed ? "ok" : first_refusal(logs, "trimming");
  }

  // Another server claims the request the first one no longer works on.
  OptionMap quick = options;
  quick["block"] = "100";  // claims run between blocking reads
  quick["claim_interval"] = "20";
  auto second = make_broker(url, quick);
  Collector col2;
  Status sub2 = second->subscribe(sub_options(q, "s2", 300ms), col2.handler());
  // (It also gets the requeued dead letter, as a new request.)
  bool ok = sub2.is_ok() && wait_until(
                                [&] {
                                  for (const Delivery& d : col2.snapshot()) {
                                    if (d.payload == ids[2] && d.delivery_count == 2) return true;
                                  }
                                  return false;
                                },
                                5s);
  out["claim"] = ok ? "ok" : first_refusal(logs, "claiming");
  second->unsubscribe();

  // unsubscribe wakes the blocked read (block is 10 s) with CLIENT UNBLOCK.
  wait_until(
      [&] {
        return admin.text({"CLIENT", "LIST"}).find("cmd=xreadgroup") != std::string::npos;
      },
      5s);
  auto stopped = std::async(std::launch::async, [&] { server->unsubscribe(); });
  out["unsubscribe"] = stopped.wait_for(3s) == std::future_status::ready
                           ? "ok"
                           : "(waits for the blocking read to time out)";
  stopped.wait();
  return out;
}

// One entry per stream node: trimming with MINID ~ (whole nodes only) then shows on a short
// stream.
RedisAclOptions acl_options() {
  RedisAclOptions o;
  o.extra_config.push_back("stream-node-max-entries 1");
  return o;
}

// The rules for a user allowed everything PRPC needs except `without`.
RedisAclOptions without(const std::string& rule) {
  RedisAclOptions o = acl_options();
  o.commands.erase(std::remove(o.commands.begin(), o.commands.end(), rule), o.commands.end());
  return o;
}

std::string table(const Outcomes& o) {
  std::string out;
  for (const auto& [op, what] : o) out += "  " + op + ": " + what + "\n";
  return out;
}

// Runs every operation as a user with all of PRPC's permissions but `rule`, and checks that the
// operations in `failing` fail saying what it maps them to, every one in `skipped` could not run
// (an earlier one failed), and every other one works.
void expect_only_these_fail(const std::string& rule,
                            const std::map<std::string, std::string>& failing,
                            const std::set<std::string>& skipped = {}) {
  SCOPED_TRACE("without " + rule);
  RedisAclServer acl(without(rule));
  auto admin = acl.admin_client();
  Outcomes o = run_operations(acl.url(1), 1, admin);
  for (const auto& [op, what] : o) {
    if (auto expected = failing.find(op); expected != failing.end()) {
      EXPECT_NE(what.find(expected->second), std::string::npos)
          << op << ": expected '" << expected->second << "'\n"
          << table(o);
    } else {
      EXPECT_EQ(what, skipped.count(op) != 0 ? "skipped" : "ok") << op << "\n" << table(o);
    }
  }
}

// Every operation after `op` in kOps.
std::set<std::string> after(std::string_view op) {
  std::set<std::string> out;
  bool seen = false;
  for (const char* o : kOps) {
    if (seen) out.insert(o);
    seen = seen || op == o;
  }
  return out;
}

constexpr const char* kScriptRefused =
    "ERR The user executing the script can't run this command or subcommand";

TEST(RedisAcl, EveryOperationWorksWithTheDocumentedPermissions) {
  RedisAclServer acl(acl_options());
  auto admin = acl.admin_client();
  Outcomes o = run_operations(acl.url(1), 1, admin);
  for (const auto& [op, what] : o) EXPECT_EQ(what, "ok") << op << "\n" << table(o);
}

TEST(RedisAcl, TheNarrowerKeyPatternsOfTheDocsAreEnough) {
  RedisAclOptions options = acl_options();
  options.key_patterns = {"~prpc_*", "~prcp_message_feedback_*"};
  RedisAclServer acl(options);
  auto admin = acl.admin_client();
  Outcomes o = run_operations(acl.url(1), 1, admin);
  for (const auto& [op, what] : o) EXPECT_EQ(what, "ok") << op << "\n" << table(o);
}

TEST(RedisAcl, PythonResultKeysNeedTheirPattern) {
  RedisAclOptions options;
  options.key_patterns = {"~prpc_*"};
  RedisAclServer acl(options);
  auto broker = make_broker(acl.url());
  ASSERT_TRUE(broker->connect().is_ok());
  auto found = lookup_sync(*broker, Flavour::kPython, "q", new_uuid());
  ASSERT_FALSE(found.is_ok());
  EXPECT_NE(found.status().message().find("NOPERM"), std::string::npos) << found.status().message();
}

TEST(RedisAcl, WithoutStreamCommandsNothingIsServed) {
  expect_only_these_fail(
      "+@stream",
      {{"publish",
        "Redis refused the request: NOPERM this user has no permissions to run the 'xadd' "
        "command"}},
      after("publish"));
}

TEST(RedisAcl, WithoutGetResultsCannotBeLookedUp) {
  expect_only_these_fail(
      "+get", {{"lookup",
                "reading the stored result: NOPERM this user has no permissions to run the 'get' "
                "command"}});
}

TEST(RedisAcl, WithoutSetOrPexpireNothingIsFinished) {
  // Unfinished requests are not served, so there is nothing to trim.
  expect_only_these_fail(
      "+set",
      {{"finish",
        "finishing the request: NOPERM this user has no permissions to run the 'set' "
        "command"},
       {"dead-letter", std::string("finishing the request: ") + kScriptRefused}},
      {"push", "lookup", "dead-letters", "requeue", "trim"});
  expect_only_these_fail("+pexpire",
                         {{"finish",
                           "finishing the request: NOPERM this user has no permissions to run the "
                           "'pexpire' command"},
                          {"dead-letter", std::string("finishing the request: ") + kScriptRefused}},
                         {"push", "lookup", "dead-letters", "requeue", "trim"});
}

TEST(RedisAcl, WithoutMultiOrExecNothingIsFinished) {
  expect_only_these_fail("+multi",
                         {{"finish",
                           "finishing the request: NOPERM this user has no permissions to run the "
                           "'multi' command"}},
                         {"push", "lookup", "trim"});
  expect_only_these_fail(
      "+exec",
      {{"finish",
        "finishing the request: EXECABORT Transaction discarded because of: NOPERM "
        "this user has no permissions to run the 'exec' command"}},
      {"push", "lookup", "trim"});
}

TEST(RedisAcl, WithoutExistsNothingIsTrimmed) {
  expect_only_these_fail("+exists", {{"trim", kScriptRefused}});
}

TEST(RedisAcl, WithoutEvalshaNoScriptRuns) {
  // A dead letter, a claim, a touch, a trim and a requeue are scripts. The touch fails
  // silently: a long call's request may then be claimed by another server.
  expect_only_these_fail(
      "+evalsha",
      {{"dead-letter",
        "finishing the request: NOPERM this user has no permissions to run the 'evalsha' "
        "command"},
       {"dead-letter-unanswered",
        "finishing the request: NOPERM this user has no permissions to run the 'evalsha' "
        "command"},
       {"touch", "(idle time not reset)"},
       {"trim", "NOPERM this user has no permissions to run the 'evalsha' command"},
       {"claim", "claiming idle requests on prpc_acl_"}},
      {"dead-letters", "requeue"});
}

TEST(RedisAcl, WithoutScriptLoadOrSelectNobodyConnects) {
  expect_only_these_fail(
      "+script|load",
      {{"connect",
        "SCRIPT LOAD was refused: NOPERM this user has no permissions to run the "
        "'script|load' command"}},
      after("connect"));
  // SELECT is sent only for a database other than 0 (the cases here use /1).
  expect_only_these_fail(
      "+select",
      {{"connect",
        "SELECT was refused: NOPERM this user has no permissions to run the 'select' "
        "command"}},
      after("connect"));
}

TEST(RedisAcl, WithoutClientIdOrUnblockStoppingWaitsForTheRead) {
  expect_only_these_fail("+client|id",
                         {{"unsubscribe", "(waits for the blocking read to time out)"}});
  expect_only_these_fail("+client|unblock",
                         {{"unsubscribe", "(waits for the blocking read to time out)"}});
}

TEST(RedisAcl, WithoutClientSetnameEverythingWorks) {
  expect_only_these_fail("+client|setname", {});
}

TEST(RedisAcl, WithoutDelDeadLettersCannotBeRequeued) {
  expect_only_these_fail("+del",
                         {{"requeue", std::string("requeueing dead letters: ") + kScriptRefused}});
}

TEST(RedisAcl, WithoutTheLivenessCommandsEverythingStillWorks) {
  // Liveness turns itself off with one warning; a dead server's requests are then recovered by
  // idle time alone (tests/plugins/broker_redis/connection_test.cpp shows the warning).
  for (const char* rule : {"+hset", "+hgetall", "+hdel", "+time"}) expect_only_these_fail(rule, {});
}

TEST(RedisAcl, EveryListedPermissionIsCovered) {
  // A permission added to the list needs a case above.
  std::set<std::string> covered = {
      "+@stream",        "+get",     "+set",         "+pexpire", "+exists",    "+multi",
      "+exec",           "+evalsha", "+script|load", "+select",  "+client|id", "+client|unblock",
      "+client|setname", "+del",     "+hset",        "+hgetall", "+hdel",      "+time"};
  for (const std::string& rule : prpc_redis_acl_commands())
    EXPECT_EQ(covered.count(rule), 1u) << rule;
  EXPECT_EQ(covered.size(), prpc_redis_acl_commands().size());
}

}  // namespace
}  // namespace prpc::redis::testing
