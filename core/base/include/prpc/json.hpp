// JSON helpers shared by the core, the codecs and native function plugins: escaping, bounded
// validation, and a scanner that reads the members of a top-level object and hands back the
// exact text of each value (so numbers and nested documents pass through byte for byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "prpc/status.hpp"

namespace prpc::json {

struct Limits {
  std::size_t max_depth = 512;
  std::size_t max_bytes = std::size_t{16} << 20;
};

enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

std::string_view type_name(Type t) noexcept;

// Appends `text` (valid UTF-8) as a JSON string literal, quotes included. Non-ASCII stays UTF-8.
void append_quoted(std::string& out, std::string_view text);
std::string quote(std::string_view text);

// One member of a top-level object. `raw` is the member value's exact text; `text` is the
// decoded value when it is a string.
struct Member {
  std::string_view key;
  Type type = Type::kNull;
  std::string_view raw;
  std::string_view text;
  bool boolean = false;
};

// Parses `input` as one JSON object (UTF-8 validated; NaN/Infinity accepted as Python writes
// them) within `limits`, calling on_member for each top-level member in order. Errors name the
// byte offset: "invalid JSON at offset 17: Missing a comma or '}' after an object member."
// An error returned by on_member stops the scan and is returned as is.
Status scan_object(std::string_view input, const Limits& limits,
                   const std::function<Status(const Member&)>& on_member);

// The info a server announces (Broker::announce_server): empty or blank is {}, anything else must
// be one JSON object. Errors are kInvalidArgument, "announce_server: info: ...".
Result<std::string> announced_info(std::string_view info_json);
// Every check of an announce_server call, the brokers' shared front door: a queue, a server id,
// a positive ttl (ms) and announced_info(info_json), whose result it returns.
Result<std::string> checked_announcement(std::string_view queue, std::string_view server_id,
                                         std::string_view info_json, std::int64_t ttl_ms);

// The same for one JSON array: on_element is called for each top-level element in order, with
// an empty key.
Status scan_array(std::string_view input, const Limits& limits,
                  const std::function<Status(const Member&)>& on_element);

// One member of a JSON object such as Message::extensions. Empty text (or only whitespace)
// reads as {}. A repeated key reads as its last value, as Python's json keeps it.

// The members of a JSON object as Python's json.loads puts them in a dict: (key, exact value
// text) in the order keys first appear, a repeated key with its last value.
Result<std::vector<std::pair<std::string, std::string_view>>> object_members(
    std::string_view object_text, const Limits& limits = {});

// The exact text of member `key`'s value, or nullopt when it is absent or `object_text` is not
// a JSON object within `limits`.
std::optional<std::string_view> get_member(std::string_view object_text, std::string_view key,
                                           const Limits& limits = {});
// The member's value decoded, when it is a JSON string; nullopt otherwise.
std::optional<std::string> get_string_member(std::string_view object_text, std::string_view key,
                                             const Limits& limits = {});
// `object_text` with member `key` set to `raw_value` (the text of one JSON value, checked):
// in place of an existing member (repeats of it merged), else appended. The object is
// rewritten in json.dumps' layout ({"a": 1, "b": [2]}); values keep their exact text.
Result<std::string> set_member(std::string_view object_text, std::string_view key,
                               std::string_view raw_value, const Limits& limits = {});
// `object_text` without member `key`; "" when no member is left, so that a Message's
// extensions stay empty when there are none.
Result<std::string> erase_member(std::string_view object_text, std::string_view key,
                                 const Limits& limits = {});

// Checks that `input` is exactly one JSON value within `limits`.
Status validate(std::string_view input, const Limits& limits);

// Type of the JSON value whose text starts at input (after leading whitespace).
Type peek_type(std::string_view input) noexcept;

}  // namespace prpc::json
