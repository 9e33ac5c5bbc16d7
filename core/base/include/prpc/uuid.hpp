// UUIDs as PROTOCOL.md uses them: message ids, canonical lowercase and hyphenated.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace prpc {

// A random (version 4) UUID: "1b4e28ba-2fa1-41d2-883f-0016d3cca427".
std::string new_uuid();

// The canonical form of a UUID written as 8-4-4-4-12 or 32 hex digits (any case, optionally in
// braces or with a "urn:uuid:" prefix), or nullopt when `text` is not a UUID.
std::optional<std::string> canonical_uuid(std::string_view text);

}  // namespace prpc
