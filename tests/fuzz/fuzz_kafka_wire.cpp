// What the Kafka broker reads back from records and commits: ledgers in commit metadata,
// delivery tokens, reply addresses, and record headers (built from the input, then read).
#include <librdkafka/rdkafka.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "wire_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::int64_t committed = size > 0 ? static_cast<std::int64_t>(data[0]) - 8 : 0;
  auto counts = prpc::kafka::parse_ledger(text, committed);
  (void)prpc::kafka::format_ledger(committed, counts, 512);
  (void)prpc::kafka::parse_token(text);
  (void)prpc::kafka::reply_partition(text, "prpc_feedback_q");
  // Headers: the input split at NUL bytes into name, value, name, value...
  rd_kafka_headers_t* headers = rd_kafka_headers_new(8);
  std::size_t start = 0;
  std::string name;
  bool want_name = true;
  for (std::size_t i = 0; i <= size; ++i) {
    if (i < size && data[i] != 0) continue;
    std::string_view piece = text.substr(start, i - start);
    if (want_name) {
      name = std::string(piece);
    } else {
      rd_kafka_header_add(headers, name.c_str(), -1, piece.data(),
                          static_cast<ssize_t>(piece.size()));
    }
    want_name = !want_name;
    start = i + 1;
  }
  for (const char* h : {prpc::kafka::kHeaderReason, prpc::kafka::kHeaderFlavour,
                        prpc::kafka::kHeaderSource, prpc::kafka::kHeaderCount}) {
    (void)prpc::kafka::header_value(headers, h);
  }
  rd_kafka_headers_destroy(headers);
  return 0;
}
