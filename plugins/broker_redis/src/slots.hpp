// Redis Cluster's key slots: which of the 16384 slots a key hashes to (CRC16 of the key, or of
// its hash tag: the text between the first '{' and the next '}', when not empty), and which
// argument of a command is its key.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace prpc::redis::details {

inline constexpr int kSlots = 16384;

// CRC16-CCITT (XMODEM), the checksum Redis Cluster uses.
std::uint16_t crc16(std::string_view data) noexcept;

int key_slot(std::string_view key) noexcept;
// The part of a key that is hashed: its hash tag, or the whole key.
std::string_view hashed_part(std::string_view key) noexcept;

// The first key a command names, for routing: empty when the command has none (MULTI, EXEC,
// CLIENT, SCRIPT, ...). Knows the commands this broker sends; any other takes argv[1].
std::string_view command_key(std::span<const std::string_view> args) noexcept;

// The name of shard `index` (0 <= index < count) of a request stream: shard 0 is the stream
// itself (the seed's name); shard k >= 1 is "<stream>:{<tag>}", the tag chosen so that the
// shards' slots lie in `count` equal parts of the slot range, one each (a cluster split evenly
// between masters then holds them on different masters). Deterministic: every client and server
// derives the same names.
std::string shard_stream(std::string_view stream, int index, int count);

}  // namespace prpc::redis::details
