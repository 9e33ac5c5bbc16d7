// Redis Cluster's key slots, command keys and the shard names (plugins/broker_redis/src/slots.hpp).
#include "slots.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace prpc::redis::details {
namespace {

TEST(RedisSlots, Crc16MatchesTheClusterSpecification) {
  // The check value of CRC16-CCITT (XMODEM), given by the Redis Cluster specification.
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(crc16(""), 0);
}

TEST(RedisSlots, KeySlotsAgreeWithRedis) {
  // Values CLUSTER KEYSLOT gives on Redis 7.
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  // An empty tag does not count: the whole key is hashed.
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") % kSlots);
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
}

std::string key_of(std::vector<std::string_view> args) { return std::string(command_key(args)); }

TEST(RedisSlots, CommandKeys) {
  EXPECT_EQ(key_of({"XADD", "prpc_raw_q", "*", "message", "{}"}), "prpc_raw_q");
  EXPECT_EQ(key_of({"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "BLOCK", "5", "STREAMS",
                    "prpc_q", ">"}),
            "prpc_q");
  EXPECT_EQ(key_of({"XREAD", "COUNT", "5", "STREAMS", "a", "b", "0", "0"}), "a");
  EXPECT_EQ(key_of({"EVALSHA", "abc", "2", "prpc_q", "prpc_alive:{prpc_q}", "x"}), "prpc_q");
  EXPECT_EQ(key_of({"EVALSHA", "abc", "0", "x"}), "");
  EXPECT_EQ(key_of({"XGROUP", "CREATE", "prpc_q", "g", "0", "MKSTREAM"}), "prpc_q");
  EXPECT_EQ(key_of({"XINFO", "GROUPS", "prpc_q"}), "prpc_q");
  EXPECT_EQ(key_of({"MULTI"}), "");
  EXPECT_EQ(key_of({"CLIENT", "UNBLOCK", "7"}), "");
  EXPECT_EQ(key_of({"cluster", "slots"}), "");
  EXPECT_EQ(key_of({"GET", "prpc_feedback_raw_q_1"}), "prpc_feedback_raw_q_1");
}

TEST(RedisSlots, ShardZeroKeepsTheSeedsNameAndTheOthersSpreadOverTheRange) {
  EXPECT_EQ(shard_stream("prpc_q", 0, 3), "prpc_q");
  EXPECT_EQ(shard_stream("prpc_q", 0, 1), "prpc_q");
  for (int count : {2, 3, 4, 7}) {
    std::set<int> parts;
    for (int i = 0; i < count; ++i) {
      std::string name = shard_stream("prpc_raw_orders", i, count);
      EXPECT_EQ(shard_stream("prpc_raw_orders", i, count), name) << "deterministic";
      if (i > 0) {
        EXPECT_EQ(name.rfind("prpc_raw_orders:{s", 0), 0u) << name;
      }
      parts.insert(key_slot(name) * count / kSlots);
      // The liveness hash of a stream lives in the stream's slot.
      EXPECT_EQ(key_slot("prpc_alive:{" + std::string(hashed_part(name)) + "}"), key_slot(name));
    }
    // One shard in each equal part of the slot range.
    EXPECT_EQ(parts.size(), static_cast<std::size_t>(count)) << count;
  }
}

}  // namespace
}  // namespace prpc::redis::details
