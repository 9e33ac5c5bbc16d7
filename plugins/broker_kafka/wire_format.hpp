// What the Kafka broker writes into records and commits and reads back from them: the commit
// metadata's delivery ledger, delivery tokens, reply addresses and record headers. Pure functions
// of their input (no handle, no connection), so they are unit tested and fuzzed on their own;
// every one takes any bytes and answers "not mine" instead of failing on garbage.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace prpc::kafka {

// ---- the delivery ledger in the commit metadata -----------------------------------------------

// offset -> deliveries already started
using DeliveryCounts = std::map<std::int64_t, std::uint32_t>;

// "prpc1 <base> <delta>:<count> ..." -> counts of offsets >= committed. Unknown text: empty.
DeliveryCounts parse_ledger(std::string_view metadata, std::int64_t committed);
// The counts of offsets >= base in that form, within `max_bytes` (later offsets are left out:
// they undercount on the next owner, which never fails a delivery).
std::string format_ledger(std::int64_t base, const DeliveryCounts& counts, std::size_t max_bytes);

// ---- delivery tokens --------------------------------------------------------------------------

// Names one hand-over: "<subscription>:<epoch of the partition's assignment>:<offset>".
struct DeliveryToken {
  std::uint64_t subscription = 0;
  std::uint64_t epoch = 0;
  std::int64_t offset = -1;
};
std::string format_token(const DeliveryToken& token);
std::optional<DeliveryToken> parse_token(std::string_view text);

// ---- reply addresses --------------------------------------------------------------------------

// reply_to: "<feedback topic>:<partition>".
std::string reply_address(std::string_view topic, std::int32_t partition);
// The partition of a reply_to on `topic`. A malformed or foreign address yields nullopt, and the
// reply falls back to the default (key-hash) partitioner.
std::optional<std::int32_t> reply_partition(std::string_view reply_to, std::string_view topic);

// ---- records ----------------------------------------------------------------------------------

// Header names on dead-lettered records.
inline constexpr const char* kHeaderReason = "prpc-reason";
inline constexpr const char* kHeaderFlavour = "prpc-flavour";
inline constexpr const char* kHeaderSource = "prpc-source";
inline constexpr const char* kHeaderCount = "prpc-delivery-count";
// A signed message's (requests, replies, dead letters): protocol::kSignatureHeader, kKeyIdHeader.
// A server announcement's time to live, in milliseconds (decimal).
inline constexpr const char* kHeaderTtl = "prpc-ttl-ms";

// The time to live of an announcement header: a positive decimal number of milliseconds.
std::optional<std::int64_t> parse_ttl_ms(std::string_view text);

// The last value of header `name` ("" when there is none).
std::string header_value(const rd_kafka_headers_t* headers, const char* name);
std::string header_value(const rd_kafka_message_t* m, const char* name);

inline std::string_view message_key(const rd_kafka_message_t* m) {
  if (m->key == nullptr) return {};
  return {static_cast<const char*>(m->key), m->key_len};
}
inline std::string_view message_value(const rd_kafka_message_t* m) {
  if (m->payload == nullptr) return {};
  return {static_cast<const char*>(m->payload), m->len};
}

}  // namespace prpc::kafka
