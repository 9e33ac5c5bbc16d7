// Reading a request's JSON text without decoding it: how deep it nests, and whom to answer. The
// server checks its limits with these before a codec sees the bytes, so a request over a limit
// costs one pass over its bytes and no allocation beyond the two ids.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "prpc/message.hpp"

namespace prpc {

// The deepest nesting of arrays and objects in JSON text, found by counting brackets outside
// strings, without parsing. Counting stops past `limit`: the answer is at most limit + 1.
// Malformed text is measured as far as it goes (the codec reports what is wrong with it).
std::size_t json_nesting_depth(std::string_view text, std::size_t limit) noexcept;

// Who sent a request that will not be decoded.
struct Sender {
  std::string message_id;
  std::string reply_to;
};

// The message_id and reply_to members of a JSON object's top level, read without decoding the
// rest (nested values are skipped by counting brackets), so a member of the same name inside
// func_args or func_kwargs is never taken for them. A Python-flavour message_id may be a
// jsonpickle uuid.UUID ({"py/object": "uuid.UUID", "hex": "..."}); it comes back canonical,
// as the codec would decode it. Empty what cannot be read (escapes, other types, bad JSON).
Sender find_sender(std::string_view text, Flavour flavour);

}  // namespace prpc
