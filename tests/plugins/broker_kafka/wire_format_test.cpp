// What the Kafka broker writes into records and commits and reads back: every parser takes any
// bytes and answers "not mine" instead of failing, and what is written reads back the same.
#include "wire_format.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <random>

namespace prpc::kafka {
namespace {

// ---- the ledger -------------------------------------------------------------------------------

TEST(WireFormat, TheLedgerReadsBackWhatWasWritten) {
  DeliveryCounts counts{{100, 1}, {101, 3}, {140, 2}};
  std::string md = format_ledger(100, counts, 1000);
  EXPECT_EQ(md, "prpc1 100 0:1 1:3 40:2");
  EXPECT_EQ(parse_ledger(md, 100), counts);
  // Offsets below the committed one are finished: their counts are dropped when read.
  EXPECT_EQ(parse_ledger(md, 101), (DeliveryCounts{{101, 3}, {140, 2}}));
}

TEST(WireFormat, TheLedgerLeavesOutOffsetsBelowItsBaseAndPastItsBudget) {
  DeliveryCounts counts{{5, 9}, {10, 1}, {11, 1}, {12, 1}};
  EXPECT_EQ(format_ledger(10, counts, 1000), "prpc1 10 0:1 1:1 2:1");
  std::string cut = format_ledger(10, counts, 16);
  EXPECT_LE(cut.size(), 16U);
  EXPECT_EQ(parse_ledger(cut, 10), (DeliveryCounts{{10, 1}, {11, 1}}));
  EXPECT_EQ(format_ledger(10, {}, 1000), "prpc1 10");
  EXPECT_TRUE(parse_ledger("prpc1 10", 10).empty());
}

TEST(WireFormat, ForeignOrDamagedLedgersReadAsEmpty) {
  for (const char* md : {"", "prpc1", "prpc2 1 0:1", "prpc1 1 0:1 x", "prpc1 1 0:", "prpc1 1 :1",
                         "prpc1 1 0:99999999999", "prpc1 99999999999999999999 0:1", "prpc1 1 0:1:2",
                         "prpc1\t1 0:1"}) {
    EXPECT_TRUE(parse_ledger(md, 0).empty()) << md;
  }
  // Extra spaces are only separators.
  EXPECT_EQ(parse_ledger("  prpc1   7  0:2 ", 0), (DeliveryCounts{{7, 2}}));
}

// ---- delivery tokens --------------------------------------------------------------------------

TEST(WireFormat, TokensRoundTrip) {
  DeliveryToken t{3, 42, 1234567890123};
  std::string text = format_token(t);
  EXPECT_EQ(text, "3:42:1234567890123");
  auto back = parse_token(text);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->subscription, 3U);
  EXPECT_EQ(back->epoch, 42U);
  EXPECT_EQ(back->offset, 1234567890123);
}

TEST(WireFormat, MalformedTokensAreRefused) {
  for (const char* t : {"", "1", "1:2", "1:2:", ":2:3", "a:2:3", "1:b:3", "1:2:c", "1:2:3x",
                        "-1:2:3", "1:-2:3", "1 :2:3", "18446744073709551616:1:1"}) {
    EXPECT_FALSE(parse_token(t).has_value()) << t;
  }
  // A negative offset is not a record, but it is a well-formed token.
  EXPECT_TRUE(parse_token("1:2:-1").has_value());
}

// ---- reply addresses --------------------------------------------------------------------------

TEST(WireFormat, ReplyAddressesNameAPartitionOfTheTopic) {
  EXPECT_EQ(reply_address("prpc_feedback_q", 7), "prpc_feedback_q:7");
  EXPECT_EQ(reply_partition("prpc_feedback_q:7", "prpc_feedback_q"), 7);
  // A topic name may itself hold a colon; the partition is after the last one.
  EXPECT_EQ(reply_partition("prpc_feedback_a:b:3", "prpc_feedback_a:b"), 3);
}

TEST(WireFormat, ForeignOrMalformedReplyAddressesAreNotUsed) {
  const std::string_view topic = "prpc_feedback_q";
  for (const char* a : {"", "prpc_feedback_q", "prpc_feedback_q:", "prpc_feedback_q:-1",
                        "prpc_feedback_q:1x", "prpc_feedback_q: 1", "prpc_feedback_other:1",
                        "prpc_feedback_q:99999999999", "redis-stream-key", "prpc_feedback_q_c1"}) {
    EXPECT_FALSE(reply_partition(a, topic).has_value()) << a;
  }
}

// ---- records ----------------------------------------------------------------------------------

TEST(WireFormat, HeadersReadTheirLastValue) {
  struct Free {
    void operator()(rd_kafka_headers_t* h) const { rd_kafka_headers_destroy(h); }
  };
  std::unique_ptr<rd_kafka_headers_t, Free> h(rd_kafka_headers_new(4));
  rd_kafka_header_add(h.get(), kHeaderReason, -1, "first", -1);
  rd_kafka_header_add(h.get(), kHeaderReason, -1, "second", -1);
  rd_kafka_header_add(h.get(), kHeaderFlavour, -1, "raw", -1);
  rd_kafka_header_add(h.get(), kHeaderSource, -1, nullptr, 0);  // a null value
  EXPECT_EQ(header_value(h.get(), kHeaderReason), "second");
  EXPECT_EQ(header_value(h.get(), kHeaderFlavour), "raw");
  EXPECT_EQ(header_value(h.get(), kHeaderSource), "");
  EXPECT_EQ(header_value(h.get(), kHeaderCount), "");
  EXPECT_EQ(header_value(static_cast<const rd_kafka_headers_t*>(nullptr), kHeaderCount), "");
}

TEST(WireFormat, KeysAndValuesOfARecord) {
  rd_kafka_message_t m{};
  EXPECT_EQ(message_key(&m), "");
  EXPECT_EQ(message_value(&m), "");
  char key[] = "id-1";
  char value[] = {'a', '\0', 'b'};
  m.key = key;
  m.key_len = 4;
  m.payload = value;
  m.len = sizeof(value);
  EXPECT_EQ(message_key(&m), "id-1");
  EXPECT_EQ(message_value(&m), std::string_view(value, 3));  // binary-safe
}

TEST(WireFormat, AnnouncementTtlsArePositiveMilliseconds) {
  EXPECT_EQ(parse_ttl_ms("5000"), 5000);
  EXPECT_EQ(parse_ttl_ms("0"), std::nullopt);
  EXPECT_EQ(parse_ttl_ms("-5"), std::nullopt);
  EXPECT_EQ(parse_ttl_ms("5s"), std::nullopt);
  EXPECT_EQ(parse_ttl_ms(""), std::nullopt);
  EXPECT_EQ(parse_ttl_ms("99999999999999999999"), std::nullopt);
}

// ---- any bytes at all -------------------------------------------------------------------------

TEST(WireFormat, NoInputCrashesAParser) {
  std::mt19937 rng(20261203);
  const std::string alphabet = "prpc1 0123456789:-x\t";
  std::size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 24, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    accepted += parse_ledger(s, 0).size();
    accepted += parse_token(s).has_value() ? 1U : 0U;
    accepted += reply_partition(s, "prpc").has_value() ? 1U : 0U;
    accepted += parse_ttl_ms(s).has_value() ? 1U : 0U;
  }
  EXPECT_GT(accepted, 0U);  // the generator does reach the accepting paths
}

}  // namespace
}  // namespace prpc::kafka
