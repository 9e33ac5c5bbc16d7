#include "slots.hpp"

#include <array>

namespace prpc::redis::details {

namespace {

constexpr std::array<std::uint16_t, 256> make_table() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i) {
    unsigned crc = i << 8U;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000U) != 0 ? (crc << 1U) ^ 0x1021U : crc << 1U;
    }
    table[i] = static_cast<std::uint16_t>(crc & 0xFFFFU);
  }
  return table;
}

constexpr std::array<std::uint16_t, 256> kTable = make_table();

bool equals_ci(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'a' && a[i] <= 'z' ? static_cast<char>(a[i] - 32) : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

}  // namespace

std::uint16_t crc16(std::string_view data) noexcept {
  unsigned crc = 0;
  for (char c : data) {
    unsigned byte = static_cast<unsigned char>(c);
    crc = ((crc << 8U) ^ kTable[((crc >> 8U) ^ byte) & 0xFFU]) & 0xFFFFU;
  }
  return static_cast<std::uint16_t>(crc);
}

std::string_view hashed_part(std::string_view key) noexcept {
  auto open = key.find('{');
  if (open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      return key.substr(open + 1, close - open - 1);
    }
  }
  return key;
}

int key_slot(std::string_view key) noexcept { return crc16(hashed_part(key)) % kSlots; }

std::string_view command_key(std::span<const std::string_view> args) noexcept {
  if (args.size() < 2) return {};
  std::string_view name = args[0];
  if (equals_ci(name, "XREADGROUP") || equals_ci(name, "XREAD")) {
    for (std::size_t i = 1; i + 1 < args.size(); ++i) {
      if (equals_ci(args[i], "STREAMS")) return args[i + 1];
    }
    return {};
  }
  if (equals_ci(name, "EVALSHA") || equals_ci(name, "EVAL")) {
    return args.size() > 3 && args[2] != "0" ? args[3] : std::string_view();
  }
  if (equals_ci(name, "XGROUP") || equals_ci(name, "XINFO")) {
    return args.size() > 2 ? args[2] : std::string_view();
  }
  for (std::string_view keyless :
       {"MULTI", "EXEC", "DISCARD", "CLIENT", "SCRIPT", "AUTH", "SELECT", "PING", "ROLE", "CLUSTER",
        "ASKING", "READONLY", "INFO", "SENTINEL", "HELLO", "FUNCTION", "TIME"}) {
    if (equals_ci(name, keyless)) return {};
  }
  return args[1];
}

std::string shard_stream(std::string_view stream, int index, int count) {
  std::string out(stream);
  if (index <= 0 || count <= 1) return out;
  // Shard 0 (the seed's name) lies where it hashes; the others take the remaining parts of the
  // range in order, each the first tag "s<index>.<n>" whose slot falls in its part.
  const int first = key_slot(stream) * count / kSlots;
  const int part = index <= first ? index - 1 : index;
  // Away from the part's edges by an eighth, so a split that is not exactly even (redis-cli
  // gives the first master one slot more) still puts each shard on its own master.
  const int margin = kSlots / count / 8;
  const int low = kSlots * part / count + margin;
  const int high = kSlots * (part + 1) / count - margin;
  for (int n = 0;; ++n) {  // ends: about one tag in `count` fits
    std::string tag = "s" + std::to_string(index) + "." + std::to_string(n);
    int slot = crc16(tag) % kSlots;
    if (slot >= low && slot < high) {
      out += ":{";
      out += tag;
      out += '}';
      return out;
    }
  }
}

}  // namespace prpc::redis::details
