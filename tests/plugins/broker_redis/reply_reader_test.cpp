// The reply-reading layer on replies parsed by hiredis from RESP bytes, as Redis would send them:
// well-formed answers of every command the broker reads, and malformed ones that must be skipped
// rather than crash or lose the rest.
#include "reply_reader.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <random>
#include <string>

namespace prpc::redis::details {
namespace {

// ---- RESP, by hand ----------------------------------------------------------------------------

std::string bulk(std::string_view s) {
  return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}
std::string integer(long long v) { return ":" + std::to_string(v) + "\r\n"; }
std::string error(std::string_view s) { return "-" + std::string(s) + "\r\n"; }
std::string status(std::string_view s) { return "+" + std::string(s) + "\r\n"; }
std::string nil() { return "$-1\r\n"; }
std::string nil_array() { return "*-1\r\n"; }
std::string array(std::initializer_list<std::string> items) {
  std::string out = "*" + std::to_string(items.size()) + "\r\n";
  for (const std::string& i : items) out += i;
  return out;
}
std::string fields(std::initializer_list<std::string_view> kv) {
  std::string out = "*" + std::to_string(kv.size()) + "\r\n";
  for (std::string_view s : kv) out += bulk(s);
  return out;
}
std::string entry(std::string_view id, const std::string& field_array) {
  return array({bulk(id), field_array});
}

// The reply hiredis makes of `resp`.
ReplyPtr parse(const std::string& resp) {
  struct Free {
    void operator()(redisReader* r) const { redisReaderFree(r); }
  };
  std::unique_ptr<redisReader, Free> reader(redisReaderCreate());
  EXPECT_EQ(redisReaderFeed(reader.get(), resp.data(), resp.size()), REDIS_OK);
  void* out = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader.get(), &out), REDIS_OK);
  EXPECT_NE(out, nullptr) << "incomplete RESP: " << resp;
  return ReplyPtr(static_cast<redisReply*>(out));
}

// ---- single replies ---------------------------------------------------------------------------

TEST(RedisReplyReader, ErrorRepliesMapToRetriableOrNotCodes) {
  EXPECT_EQ(error_status(parse(error("NOGROUP no such group")).get(), "x").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(error_status(parse(error("NOPERM no")).get(), "x").code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(error_status(parse(error("OOM full")).get(), "x").code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(error_status(parse(error("READONLY replica")).get(), "x").code(),
            StatusCode::kUnavailable);
  Status s = error_status(parse(error("ERR odd")).get(), "doing it");
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(), "doing it: ERR odd");
}

TEST(RedisReplyReader, ExpectOkPassesAnythingButAnError) {
  EXPECT_TRUE(expect_ok(Status::ok(), parse(status("OK")).get(), "x").is_ok());
  EXPECT_TRUE(expect_ok(Status::ok(), parse(integer(3)).get(), "x").is_ok());
  EXPECT_FALSE(expect_ok(Status::ok(), parse(error("ERR no")).get(), "x").is_ok());
  Status lost(StatusCode::kUnavailable, "connection lost");
  EXPECT_EQ(expect_ok(lost, nullptr, "x").code(), StatusCode::kUnavailable);
}

TEST(RedisReplyReader, FieldsAreFoundByNameAndListedForNotes) {
  ReplyPtr r = parse(fields({"a", "1", "message", "m", "b", "2"}));
  EXPECT_EQ(text(entry_field(r.get(), "message")), "m");
  EXPECT_EQ(entry_field(r.get(), "zzz"), nullptr);
  EXPECT_EQ(field_names(r.get()), "a, message, b");
  EXPECT_EQ(field_names(parse(fields({})).get()), "none");
  // An odd count: the last name has no value and is not a field.
  ReplyPtr odd = parse(fields({"a", "1", "message"}));
  EXPECT_EQ(entry_field(odd.get(), "message"), nullptr);
  // Long lists are cut.
  std::string many = "*600\r\n";
  for (int i = 0; i < 300; ++i) many += bulk("field" + std::to_string(i)) + bulk("v");
  std::string names = field_names(parse(many).get());
  EXPECT_LT(names.size(), 210U);
  EXPECT_EQ(names.substr(names.size() - 3), "...");
}

// ---- streams ----------------------------------------------------------------------------------

TEST(RedisReplyReader, ReadsEveryStreamOfAnXreadgroupAnswer) {
  ReplyPtr r = parse(array({
      array({bulk("prpc_q"), array({entry("1-0", fields({"message", "{\"a\":1}"})),
                                    entry("2-0", fields({"message", ""}))})}),
      array({bulk("prpc_raw_q"), array({entry("3-0", fields({"message", "raw"}))})}),
  }));
  auto batches = read_streams(r.get());
  ASSERT_EQ(batches.size(), 2U);
  EXPECT_EQ(batches[0].stream, "prpc_q");
  ASSERT_EQ(batches[0].entries.size(), 2U);
  EXPECT_EQ(batches[0].entries[0].id, "1-0");
  ASSERT_TRUE(batches[0].entries[0].message.has_value());
  EXPECT_EQ(*batches[0].entries[0].message, "{\"a\":1}");
  EXPECT_EQ(batches[0].entries[0].delivery_count, 1U);
  ASSERT_TRUE(batches[0].entries[1].message.has_value());  // present, though empty
  EXPECT_EQ(*batches[0].entries[1].message, "");
  EXPECT_EQ(batches[1].stream, "prpc_raw_q");
  EXPECT_EQ(*batches[1].entries[0].message, "raw");
}

TEST(RedisReplyReader, AnEntryWithoutAMessageSaysWhichFieldsItHas) {
  ReplyPtr r = parse(
      array({array({bulk("prpc_q"), array({entry("1-0", fields({"msg", "x", "other", "y"}))})})}));
  auto batches = read_streams(r.get());
  ASSERT_EQ(batches.size(), 1U);
  ASSERT_EQ(batches[0].entries.size(), 1U);
  EXPECT_FALSE(batches[0].entries[0].message.has_value());
  EXPECT_FALSE(batches[0].entries[0].deleted);
  EXPECT_EQ(batches[0].entries[0].other_fields, "msg, other");
}

TEST(RedisReplyReader, AnEntryDeletedWhilePendingIsMarked) {
  // XREADGROUP of the pending history answers [id, nil] for an entry deleted with XDEL.
  ReplyPtr r = parse(array(
      {array({bulk("prpc_q"), array({array({bulk("1-0"), nil_array()}), array({bulk("2-0")})})})}));
  auto batches = read_streams(r.get());
  ASSERT_EQ(batches[0].entries.size(), 2U);
  EXPECT_TRUE(batches[0].entries[0].deleted);
  EXPECT_EQ(batches[0].entries[0].id, "1-0");
  EXPECT_TRUE(batches[0].entries[1].deleted);  // no fields at all
}

TEST(RedisReplyReader, ReplyStreamEntriesCarryTheirMessageId) {
  ReplyPtr r = parse(
      array({array({bulk("prpc_feedback_q_c1"),
                    array({entry("5-1", fields({"message_id", "abc", "message", "result"}))})})}));
  auto batches = read_streams(r.get());
  ASSERT_EQ(batches[0].entries.size(), 1U);
  EXPECT_EQ(batches[0].entries[0].message_id, "abc");
  EXPECT_EQ(*batches[0].entries[0].message, "result");
}

TEST(RedisReplyReader, MalformedStreamAnswersAreSkippedNotFatal) {
  EXPECT_TRUE(read_streams(nullptr).empty());
  EXPECT_TRUE(read_streams(parse(nil_array()).get()).empty());  // BLOCK timed out
  EXPECT_TRUE(read_streams(parse(bulk("x")).get()).empty());
  EXPECT_TRUE(read_streams(parse(error("ERR x")).get()).empty());
  // A good stream survives its malformed neighbours.
  ReplyPtr r = parse(array({
      bulk("junk"),
      array({bulk("only-a-name")}),
      array({bulk("s"), bulk("not-an-array")}),
      array({bulk("good"), array({integer(7), entry("9-0", fields({"message", "p"}))})}),
  }));
  auto batches = read_streams(r.get());
  ASSERT_EQ(batches.size(), 1U);
  EXPECT_EQ(batches[0].stream, "good");
  ASSERT_EQ(batches[0].entries.size(), 1U);
  EXPECT_EQ(batches[0].entries[0].id, "9-0");
}

TEST(RedisReplyReader, AClaimPageGivesTheCursorEntriesAndTheirCounts) {
  ReplyPtr r = parse(array({
      bulk("17-0"),
      array({entry("3-0", fields({"message", "a"})), array({bulk("4-0"), nil_array()}),
             entry("5-0", fields({"message", "c"}))}),
      array({integer(2), integer(5), integer(0)}),
  }));
  auto page = read_claim(r.get());
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->cursor, "17-0");
  ASSERT_EQ(page->entries.size(), 3U);
  EXPECT_EQ(page->entries[0].delivery_count, 2U);
  EXPECT_TRUE(page->entries[1].deleted);
  EXPECT_EQ(page->entries[2].delivery_count, 1U);  // a count below 1 reads as a first delivery
}

TEST(RedisReplyReader, AClaimPageWithoutCursorIsComplete) {
  auto page = read_claim(parse(array({bulk(""), array({}), array({})})).get());
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->cursor, "-");
  EXPECT_TRUE(page->entries.empty());
  // Fewer counts than entries: the rest are first deliveries.
  auto short_counts = read_claim(
      parse(array({bulk("-"), array({entry("1-0", fields({"message", "a"}))}), array({})})).get());
  ASSERT_TRUE(short_counts.has_value());
  EXPECT_EQ(short_counts->entries[0].delivery_count, 1U);
  EXPECT_FALSE(read_claim(parse(array({bulk("-"), array({})})).get()).has_value());
  EXPECT_FALSE(read_claim(parse(error("NOSCRIPT")).get()).has_value());
  EXPECT_FALSE(read_claim(nullptr).has_value());
}

// ---- operations -------------------------------------------------------------------------------

TEST(RedisReplyReader, GroupInfoOfTheNamedGroup) {
  ReplyPtr r = parse(array({
      array({bulk("name"), bulk("other"), bulk("consumers"), integer(9), bulk("pending"),
             integer(90), bulk("lag"), integer(900)}),
      array({bulk("name"), bulk("servers"), bulk("consumers"), integer(2), bulk("pending"),
             integer(3), bulk("last-delivered-id"), bulk("5-0"), bulk("lag"), integer(4)}),
  }));
  GroupInfo g = read_group_info(r.get(), "servers");
  EXPECT_EQ(g.consumers, 2);
  EXPECT_EQ(g.pending, 3);
  ASSERT_TRUE(g.lag.has_value());
  EXPECT_EQ(*g.lag, 4);
}

TEST(RedisReplyReader, GroupInfoWithoutLagOrGroup) {
  // Redis 6 has no lag field; Redis 7 answers nil when it cannot tell.
  ReplyPtr r = parse(array({array({bulk("name"), bulk("g"), bulk("consumers"), integer(1),
                                   bulk("pending"), integer(0), bulk("lag"), nil()})}));
  GroupInfo g = read_group_info(r.get(), "g");
  EXPECT_EQ(g.consumers, 1);
  EXPECT_FALSE(g.lag.has_value());
  GroupInfo none = read_group_info(r.get(), "missing");
  EXPECT_EQ(none.consumers, 0);
  EXPECT_EQ(none.pending, 0);
  EXPECT_FALSE(read_group_info(parse(error("ERR no such key")).get(), "g").lag.has_value());
}

TEST(RedisReplyReader, DeadLettersFromXrange) {
  ReplyPtr r = parse(array({
      entry("1-0", fields({"reason", "boom", "flavour", "raw", "payload", "{}"})),
      entry("2-0", fields({"reason", "bad", "flavour", "python", "payload", "x"})),
      array({bulk("3-0")}),  // malformed: skipped
  }));
  auto letters = read_dead_letters(r.get());
  ASSERT_EQ(letters.size(), 2U);
  EXPECT_EQ(letters[0].id, "1-0");
  EXPECT_EQ(letters[0].flavour, Flavour::kRaw);
  EXPECT_EQ(letters[0].reason, "boom");
  EXPECT_EQ(letters[0].payload, "{}");
  EXPECT_EQ(letters[1].flavour, Flavour::kPython);
  EXPECT_TRUE(read_dead_letters(parse(array({})).get()).empty());
}

TEST(RedisReplyReader, RequeuePages) {
  auto page = read_requeue_page(parse(array({integer(3), bulk("9-0"), integer(1)})).get());
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->requeued, 3);
  EXPECT_EQ(page->next, "9-0");
  EXPECT_EQ(page->skipped, 1);
  EXPECT_FALSE(read_requeue_page(parse(array({integer(3)})).get()).has_value());
  EXPECT_FALSE(read_requeue_page(parse(integer(3)).get()).has_value());
}

// ---- finishing --------------------------------------------------------------------------------

TEST(RedisReplyReader, TouchSaysOwnedLostOrNothing) {
  EXPECT_EQ(read_touch(parse(integer(1)).get()), std::optional<bool>(true));
  EXPECT_EQ(read_touch(parse(integer(-1)).get()), std::optional<bool>(false));
  EXPECT_FALSE(read_touch(parse(integer(0)).get()).has_value());  // acknowledged meanwhile
  EXPECT_FALSE(read_touch(parse(error("NOSCRIPT")).get()).has_value());
  EXPECT_FALSE(read_touch(nullptr).has_value());
}

TEST(RedisReplyReader, ATransactionThatRanStoresAndMayFailItsPush) {
  // MULTI; SET; XADD; PEXPIRE; XACK; EXEC -> [OK, push error, 1, 1]
  ReplyPtr r =
      parse(array({status("OK"), error("WRONGTYPE not a stream"), integer(1), integer(1)}));
  FinishOutcome out = read_transaction(Status::ok(), r.get(), Status::ok(), 0, 1);
  EXPECT_TRUE(out.status.is_ok());
  ASSERT_TRUE(out.push_error.has_value());
  EXPECT_EQ(*out.push_error, "WRONGTYPE not a stream");
  FinishOutcome clean = read_transaction(
      Status::ok(), parse(array({status("OK"), integer(1)})).get(), Status::ok(), 0, -1);
  EXPECT_TRUE(clean.status.is_ok());
  EXPECT_FALSE(clean.push_error.has_value());
}

TEST(RedisReplyReader, ATransactionThatDidNotStoreFails) {
  ReplyPtr r = parse(array({error("OOM no memory"), integer(1)}));
  FinishOutcome out = read_transaction(Status::ok(), r.get(), Status::ok(), 0, -1);
  EXPECT_EQ(out.status.code(), StatusCode::kResourceExhausted);
  // EXECABORT: the refusal of the queued command says why.
  Status refused(StatusCode::kFailedPrecondition, "finishing the request: NOPERM");
  FinishOutcome aborted = read_transaction(
      Status::ok(), parse(error("EXECABORT Transaction discarded")).get(), refused, 0, -1);
  EXPECT_EQ(aborted.status.message(), refused.message());
  // EXEC answered nil (WATCH) or something else: it did not run.
  FinishOutcome nil_exec =
      read_transaction(Status::ok(), parse(nil_array()).get(), Status::ok(), 0, -1);
  EXPECT_EQ(nil_exec.status.code(), StatusCode::kInternal);
  // Indexes past the end are ignored.
  FinishOutcome short_exec =
      read_transaction(Status::ok(), parse(array({})).get(), Status::ok(), 3, 4);
  EXPECT_TRUE(short_exec.status.is_ok());
}

TEST(RedisReplyReader, TheFinishScriptReportsItsPush) {
  FinishOutcome pushed =
      read_finish_script(Status::ok(), parse(array({integer(1), integer(1)})).get());
  EXPECT_TRUE(pushed.status.is_ok());
  EXPECT_FALSE(pushed.push_error.has_value());
  FinishOutcome failed = read_finish_script(
      Status::ok(), parse(array({integer(1), bulk("WRONGTYPE Operation against a key")})).get());
  EXPECT_TRUE(failed.status.is_ok());
  EXPECT_EQ(failed.push_error, std::optional<std::string>("WRONGTYPE Operation against a key"));
  FinishOutcome refused = read_finish_script(Status::ok(), parse(error("ERR script failed")).get());
  EXPECT_FALSE(refused.status.is_ok());
}

// ---- any tree at all ---------------------------------------------------------------------------

// A random reply of every type, nested a few levels, with the field names the readers look for.
std::string random_reply(std::mt19937& rng, int depth) {
  static const char* const kWords[] = {"message",   "message_id", "name",    "lag",     "pending",
                                       "consumers", "reason",     "flavour", "payload", "raw",
                                       "",          "1-0",        "x"};
  switch (rng() % (depth > 3 ? 5 : 7)) {
    case 0: return bulk(kWords[rng() % std::size(kWords)]);
    case 1: return integer(static_cast<long long>(rng() % 5) - 2);
    case 2: return nil();
    case 3: return error("ERR x");
    case 4: return nil_array();
    default: {
      std::size_t n = rng() % 5;
      std::string out = "*" + std::to_string(n) + "\r\n";
      for (std::size_t i = 0; i < n; ++i) out += random_reply(rng, depth + 1);
      return out;
    }
  }
}

TEST(RedisReplyReader, NoReplyTreeCrashesAnyReader) {
  std::mt19937 rng(20261203);
  std::size_t entries = 0;
  for (int i = 0; i < 5000; ++i) {
    ReplyPtr r = parse(random_reply(rng, 0));
    for (const StreamBatch& b : read_streams(r.get())) entries += b.entries.size();
    if (auto page = read_claim(r.get())) entries += page->entries.size();
    (void)read_group_info(r.get(), "name");
    entries += read_dead_letters(r.get()).size();
    (void)read_requeue_page(r.get());
    (void)read_touch(r.get());
    (void)read_transaction(Status::ok(), r.get(), Status::ok(), 0, 1);
    (void)read_finish_script(Status::ok(), r.get());
    (void)field_names(r.get());
  }
  EXPECT_GT(entries, 0U);  // the trees did reach the entry readers
}

}  // namespace
}  // namespace prpc::redis::details
