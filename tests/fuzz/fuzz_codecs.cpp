// The two codecs on any bytes: a request or reply read from the broker is outside input. The
// first byte picks the codec; whatever decodes is encoded again (the server's reply path).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "prpc/jsonpickle/codec.hpp"
#include "raw_json_codec.hpp"

namespace {

void decode_and_encode(const prpc::Codec& codec, std::string_view bytes) {
  prpc::Message salvaged;
  auto decoded = codec.decode(bytes, &salvaged);
  if (decoded.is_ok()) (void)codec.encode(*decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const prpc::rawjson::RawJsonCodec raw;
  static const prpc::jsonpickle::JsonpickleCodec pickle;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  decode_and_encode((data[0] & 1) != 0 ? static_cast<const prpc::Codec&>(raw)
                                       : static_cast<const prpc::Codec&>(pickle),
                    bytes);
  return 0;
}
