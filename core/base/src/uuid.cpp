#include "prpc/uuid.hpp"

#include <array>
#include <cstdint>
#include <random>

namespace prpc {
namespace {

constexpr std::array<char, 16> kHex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                       '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string format(const std::array<std::uint8_t, 16>& b) {
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0xF]);
  }
  return out;
}

}  // namespace

std::string new_uuid() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  std::array<std::uint8_t, 16> b{};
  std::uint64_t hi = rng();
  std::uint64_t lo = rng();
  for (std::size_t i = 0; i < 8; ++i) {
    b[i] = static_cast<std::uint8_t>(hi >> (56 - 8 * i));
    b[8 + i] = static_cast<std::uint8_t>(lo >> (56 - 8 * i));
  }
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return format(b);
}

std::optional<std::string> canonical_uuid(std::string_view text) {
  if (text.substr(0, 9) == "urn:uuid:") text.remove_prefix(9);
  if (text.size() >= 2 && text.front() == '{' && text.back() == '}') {
    text = text.substr(1, text.size() - 2);
  }
  std::array<std::uint8_t, 16> b{};
  std::size_t digits = 0;
  if (text.size() == 36) {
    if (text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') {
      return std::nullopt;
    }
  } else if (text.size() != 32) {
    return std::nullopt;
  }
  for (char c : text) {
    if (c == '-' && text.size() == 36) continue;
    int v = hex_value(c);
    if (v < 0) return std::nullopt;
    std::size_t i = digits / 2;
    b[i] = static_cast<std::uint8_t>((digits % 2 == 0) ? (v << 4) : (b[i] | v));
    ++digits;
  }
  if (digits != 32) return std::nullopt;
  return format(b);
}

}  // namespace prpc
