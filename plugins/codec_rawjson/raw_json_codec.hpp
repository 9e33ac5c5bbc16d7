// The raw flavour of PROTOCOL.md: a message is a plain JSON object, exactly the seed's example,
// readable and writable from any language. Decoding validates strictly and says precisely what
// is wrong; func_args, func_kwargs and result pass through byte for byte.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "prpc/codec.hpp"
#include "prpc/json.hpp"
#include "prpc/sdk/plugin.hpp"

namespace prpc::rawjson {

struct Settings {
  json::Limits limits;
  bool require_uuid = true;  // message_id must be a UUID (any case, with or without hyphens)
};

class RawJsonCodec final : public Codec {
 public:
  static constexpr const char* kName = "rawjson";
  static constexpr const char* kDescription =
      "Plain JSON messages (the raw protocol for any language), strictly validated";
  static std::vector<sdk::OptionSpec> options();

  explicit RawJsonCodec(Settings settings = {});
  explicit RawJsonCodec(const sdk::Context& ctx);

  std::string_view dialect() const override { return "json"; }
  Result<Message> decode(std::string_view bytes, Message* salvaged = nullptr) const override;
  Result<std::string> encode(const Message& message) const override;

 private:
  Settings settings_;
};

}  // namespace prpc::rawjson
