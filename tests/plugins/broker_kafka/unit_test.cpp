// The Kafka broker's logic that needs no cluster: the commit prefix and delivery ledger, and the
// option handling.
#include <gtest/gtest.h>

#include "kafka_broker.hpp"
#include "kafka_settings.hpp"
#include "offset_ledger.hpp"

namespace prpc::kafka {
namespace {

TEST(OffsetLedger, CommitsOnlyTheContiguousFinishedPrefix) {
  OffsetLedger l(10, {}, 0);
  for (std::int64_t o = 10; o < 15; ++o) EXPECT_EQ(l.start(o), 1u);
  EXPECT_EQ(l.finish(12), std::nullopt);
  EXPECT_EQ(l.finish(11), std::nullopt);
  EXPECT_EQ(l.commit_offset(), 10);
  EXPECT_EQ(l.finish(10), std::optional<std::int64_t>(13));
  EXPECT_EQ(l.finish(14), std::nullopt);
  EXPECT_EQ(l.finish(13), std::optional<std::int64_t>(15));
  EXPECT_EQ(l.unfinished(), 0u);
}

TEST(OffsetLedger, AHoleNobodyAccountedForStopsTheCommit) {
  OffsetLedger l(100, {}, 0);
  l.start(100);
  l.start(105);  // 101..104 never handed over: the consumer skipped them, or they are no records
  EXPECT_EQ(l.finish(100), std::optional<std::int64_t>(101));
  EXPECT_EQ(l.finish(105), std::nullopt);
  EXPECT_EQ(l.commit_offset(), 101);
  // The consumer confirmed that 101..104 hold no records: the prefix goes on over them.
  EXPECT_EQ(l.skip(101, 105), std::optional<std::int64_t>(106));
  EXPECT_EQ(l.unfinished(), 0u);
}

TEST(OffsetLedger, ConfirmedHolesAheadAreCrossedWhenReached) {
  OffsetLedger l(-1, {}, 0);  // no committed offset yet: the first hand-over is the start
  l.start(10);
  l.start(11);
  EXPECT_EQ(l.skip(12, 20), std::nullopt);  // not reached yet
  l.start(20);
  EXPECT_EQ(l.finish(20), std::nullopt);
  EXPECT_EQ(l.finish(11), std::nullopt);
  EXPECT_EQ(l.finish(10), std::optional<std::int64_t>(21));
}

TEST(FetchCursor, TakesRecordsInOrderAndDropsRepeats) {
  FetchCursor c(50);
  EXPECT_EQ(c.offer(50), FetchCursor::Verdict::kTake);
  EXPECT_EQ(c.offer(51), FetchCursor::Verdict::kTake);
  EXPECT_EQ(c.offer(50), FetchCursor::Verdict::kRepeat);  // a rewind
  EXPECT_EQ(c.offer(51), FetchCursor::Verdict::kRepeat);
  EXPECT_EQ(c.offer(52), FetchCursor::Verdict::kTake);
  EXPECT_EQ(c.expected(), 53);
}

TEST(FetchCursor, AnUnknownStartTakesTheFirstRecord) {
  FetchCursor c(-1);
  EXPECT_EQ(c.offer(7), FetchCursor::Verdict::kTake);
  EXPECT_EQ(c.offer(8), FetchCursor::Verdict::kTake);
}

TEST(FetchCursor, AHoleIsSoughtBackOnceThenAcceptedWhenItIsReal) {
  FetchCursor c(100);
  // The first record of the assignment is past its start: seek back to 100.
  EXPECT_EQ(c.offer(103), FetchCursor::Verdict::kSeekBack);
  EXPECT_EQ(c.expected(), 100);
  // From 100 the records came: the skip was the consumer's, not the log's.
  EXPECT_EQ(c.offer(100), FetchCursor::Verdict::kRecovered);
  EXPECT_EQ(c.offer(101), FetchCursor::Verdict::kTake);
  // A later hole, real this time: fetched again from 102, 110 is still the next record.
  EXPECT_EQ(c.offer(110), FetchCursor::Verdict::kSeekBack);
  EXPECT_EQ(c.offer(110), FetchCursor::Verdict::kTakeAfterGap);
  EXPECT_EQ(c.gap_from(), 102);
  EXPECT_EQ(c.offer(111), FetchCursor::Verdict::kTake);
  // Each hole gets its own seek.
  EXPECT_EQ(c.offer(120), FetchCursor::Verdict::kSeekBack);
}

TEST(FetchCursor, AFailedSeekTakesTheRecordAndLeavesTheHoleUnaccounted) {
  FetchCursor c(0);
  EXPECT_EQ(c.offer(5), FetchCursor::Verdict::kSeekBack);
  c.seek_failed(5);
  EXPECT_EQ(c.expected(), 6);
  EXPECT_EQ(c.offer(6), FetchCursor::Verdict::kTake);
}

TEST(OffsetLedger, CountsSurviveThroughCommitMetadata) {
  OffsetLedger first(50, {}, 0);
  first.start(50);
  first.start(51);
  first.start(52);
  first.finish(51);  // finished but past the unfinished 50: must be counted on redelivery
  std::string md = first.metadata(3000);
  DeliveryCounts counts = parse_ledger(md, first.commit_offset());
  EXPECT_EQ(counts, (DeliveryCounts{{50, 1}, {51, 1}, {52, 1}}));

  OffsetLedger second(50, counts, 53);
  EXPECT_TRUE(second.suspect(52));
  EXPECT_FALSE(second.suspect(53));
  EXPECT_EQ(second.start(50), 2u);
  EXPECT_EQ(second.restart(50), 3u);
  // Records not yet reached keep their inherited counts in the next commit.
  EXPECT_EQ(parse_ledger(second.metadata(3000), 50), (DeliveryCounts{{50, 3}, {51, 1}, {52, 1}}));
  EXPECT_EQ(second.finish(50), std::optional<std::int64_t>(51));
  EXPECT_EQ(parse_ledger(second.metadata(3000), 51), (DeliveryCounts{{51, 1}, {52, 1}}));
}

TEST(OffsetLedger, MetadataStaysWithinItsBudget) {
  OffsetLedger l(0, {}, 0);
  for (std::int64_t o = 0; o < 2000; ++o) l.start(o);
  std::string md = l.metadata(200);
  EXPECT_LE(md.size(), 200u);
  DeliveryCounts counts = parse_ledger(md, 0);
  EXPECT_FALSE(counts.empty());
  EXPECT_EQ(counts.begin()->first, 0);  // the oldest records are the ones kept
}

TEST(OffsetLedger, ForeignOrCorruptMetadataIsIgnored) {
  EXPECT_TRUE(parse_ledger("", 0).empty());
  EXPECT_TRUE(parse_ledger("written by another tool", 0).empty());
  EXPECT_TRUE(parse_ledger("prpc1 x 1:1", 0).empty());
  EXPECT_TRUE(parse_ledger("prpc1 10 1:0", 0).empty());
  EXPECT_TRUE(parse_ledger("prpc1 10 -1:2", 0).empty());
  EXPECT_EQ(parse_ledger("prpc1 10 0:2 5:1", 12), (DeliveryCounts{{15, 1}}));
}

sdk::Options options(std::map<std::string, std::string, std::less<>> v) {
  return sdk::Options(std::move(v));
}

TEST(Settings, PassesUnknownKeysToLibrdkafka) {
  auto s = read_settings(options({{"url", "kafka://h1:9092,h2:9092"},
                                  {"partitions", "8"},
                                  {"security.protocol", "SASL_SSL"},
                                  {"sasl.password", "hunter2"},
                                  {"producer.compression.type", "lz4"},
                                  {"consumer.fetch.wait.max.ms", "10"}}));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->bootstrap, "h1:9092,h2:9092");
  EXPECT_EQ(s->partitions, 8);
  EXPECT_EQ(s->common.at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(s->common.at("sasl.password"), "hunter2");
  EXPECT_EQ(s->producer.at("compression.type"), "lz4");
  EXPECT_EQ(s->consumer.at("fetch.wait.max.ms"), "10");
  EXPECT_EQ(s->common.count("partitions"), 0u);
}

TEST(Settings, EagerProduceIsOnByDefaultAndStaysOutOfLibrdkafka) {
  auto s = read_settings(options({}));
  ASSERT_TRUE(s.is_ok());
  EXPECT_TRUE(s->eager_produce);
  EXPECT_EQ(s->linger_ms, "0.5");
  s = read_settings(options({{"eager_produce", "false"}}));
  ASSERT_TRUE(s.is_ok());
  EXPECT_FALSE(s->eager_produce);
  EXPECT_EQ(s->common.count("eager_produce"), 0u);
}

TEST(Settings, RefusesImpossibleValues) {
  EXPECT_FALSE(read_settings(options({{"partitions", "0"}})).is_ok());
  EXPECT_FALSE(read_settings(options({{"replication_factor", "0"}})).is_ok());
  EXPECT_FALSE(read_settings(options({{"url", ""}})).is_ok());
  EXPECT_FALSE(read_settings(options({{"server_history", "-1"}})).is_ok());
}

TEST(Settings, SecretsAreNeverRendered) {
  std::string text = describe_properties({{"sasl.password", "hunter2"},
                                          {"ssl.key.password", "k3y"},
                                          {"sasl.oauthbearer.config", "x"},
                                          {"security.protocol", "SASL_SSL"}});
  EXPECT_EQ(text.find("hunter2"), std::string::npos);
  EXPECT_EQ(text.find("k3y"), std::string::npos);
  EXPECT_NE(text.find("security.protocol=SASL_SSL"), std::string::npos);
}

TEST(KafkaBroker, RejectedSecretValuesStayOutOfTheError) {
  Settings s;
  s.bootstrap = "127.0.0.1:1";
  s.common["ssl.key.password"] = "hunter2";
  s.common["sasl.mechanisms"] = "NOT-A-MECHANISM-hunter2";
  s.connect_timeout = std::chrono::milliseconds(300);
  KafkaBroker b(s, sdk::Logger());
  Status st = b.connect();
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.to_string().find("hunter2"), std::string::npos) << st.to_string();
}

TEST(KafkaBroker, TopicNamesFollowTheProtocol) {
  EXPECT_EQ(request_topic("task_prpc", Flavour::kPython), "prpc_task_prpc");
  EXPECT_EQ(request_topic("task_prpc", Flavour::kRaw), "prpc_raw_task_prpc");
  EXPECT_EQ(reply_topic("task_prpc", Flavour::kPython), "prpc_feedback_task_prpc");
  EXPECT_EQ(reply_topic("task_prpc", Flavour::kRaw), "prpc_feedback_raw_task_prpc");
  EXPECT_EQ(dead_topic("task_prpc"), "prpc_dead_task_prpc");
  // Announcements: a '-' where every other topic has a '_', so no queue name reaches it.
  EXPECT_EQ(servers_topic("task_prpc"), "prpc-servers-task_prpc");
  EXPECT_NE(servers_topic("x"), request_topic("-servers-x", Flavour::kPython));
}

}  // namespace
}  // namespace prpc::kafka
