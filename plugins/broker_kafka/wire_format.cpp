#include "wire_format.hpp"

#include <charconv>

namespace prpc::kafka {
namespace {

constexpr std::string_view kLedgerTag = "prpc1";

template <typename T>
bool parse_number(std::string_view text, T* out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && p == text.data() + text.size();
}

}  // namespace

DeliveryCounts parse_ledger(std::string_view metadata, std::int64_t committed) {
  DeliveryCounts out;
  auto next_word = [&metadata]() {
    while (!metadata.empty() && metadata.front() == ' ') metadata.remove_prefix(1);
    std::size_t end = metadata.find(' ');
    std::string_view word = metadata.substr(0, end);
    metadata.remove_prefix(end == std::string_view::npos ? metadata.size() : end);
    return word;
  };
  if (next_word() != kLedgerTag) return out;
  std::int64_t base = 0;
  if (!parse_number(next_word(), &base)) return out;
  for (std::string_view word = next_word(); !word.empty(); word = next_word()) {
    std::size_t colon = word.find(':');
    std::int64_t delta = 0;
    std::uint32_t count = 0;
    if (colon == std::string_view::npos || !parse_number(word.substr(0, colon), &delta) ||
        !parse_number(word.substr(colon + 1), &count) || delta < 0 || count == 0) {
      return {};
    }
    std::int64_t offset = base + delta;
    if (offset >= committed) out[offset] = count;
  }
  return out;
}

std::string format_ledger(std::int64_t base, const DeliveryCounts& counts, std::size_t max_bytes) {
  std::string out(kLedgerTag);
  out += ' ';
  out += std::to_string(base);
  for (const auto& [offset, count] : counts) {
    if (offset < base) continue;
    // Appended piecewise: GCC 12 at -O3 warns (-Wrestrict) on "literal" + std::string.
    std::string item(1, ' ');
    item += std::to_string(offset - base);
    item += ':';
    item += std::to_string(count);
    if (out.size() + item.size() > max_bytes) break;  // later records undercount; never fail
    out += item;
  }
  return out;
}

std::string format_token(const DeliveryToken& token) {
  std::string out = std::to_string(token.subscription);
  out += ':';
  out += std::to_string(token.epoch);
  out += ':';
  out += std::to_string(token.offset);
  return out;
}

std::optional<DeliveryToken> parse_token(std::string_view text) {
  DeliveryToken out;
  auto field = [&text](auto* value) {
    std::size_t colon = text.find(':');
    std::string_view part = text.substr(0, colon);
    text.remove_prefix(colon == std::string_view::npos ? text.size() : colon + 1);
    return parse_number(part, value);
  };
  if (!field(&out.subscription) || !field(&out.epoch) || !field(&out.offset)) return std::nullopt;
  return out;
}

std::string reply_address(std::string_view topic, std::int32_t partition) {
  std::string out(topic);
  out += ':';
  out += std::to_string(partition);
  return out;
}

std::optional<std::int32_t> reply_partition(std::string_view reply_to, std::string_view topic) {
  std::size_t colon = reply_to.rfind(':');
  if (colon == std::string_view::npos || reply_to.substr(0, colon) != topic) return std::nullopt;
  std::int32_t p = -1;
  if (!parse_number(reply_to.substr(colon + 1), &p) || p < 0) return std::nullopt;
  return p;
}

std::optional<std::int64_t> parse_ttl_ms(std::string_view text) {
  std::int64_t ms = 0;
  if (!parse_number(text, &ms) || ms <= 0) return std::nullopt;
  return ms;
}

std::string header_value(const rd_kafka_headers_t* headers, const char* name) {
  if (headers == nullptr) return {};
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr) {
    return {};
  }
  return std::string(static_cast<const char*>(value), size);
}

std::string header_value(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  // The headers belong to the message; do not free them.
  if (rd_kafka_message_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  return header_value(headers, name);
}

}  // namespace prpc::kafka
