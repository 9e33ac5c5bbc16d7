// The jsonpickle codec: a Message <-> the bytes Python's jsonpickle writes for
// prpc.prpcmessage.PRPCMessage (PROTOCOL.md section 2, Python flavour).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "prpc/codec.hpp"
#include "prpc/jsonpickle/document.hpp"

namespace prpc::jsonpickle {

inline constexpr std::string_view kMessageClass = "prpc.prpcmessage.PRPCMessage";

class JsonpickleCodec : public Codec {
 public:
  explicit JsonpickleCodec(Limits limits = {}) : limits_(limits) {}

  std::string_view dialect() const override { return "jsonpickle"; }
  Result<Message> decode(std::string_view bytes, Message* salvaged = nullptr) const override;
  Result<std::string> encode(const Message& message) const override;

  const Limits& limits() const noexcept { return limits_; }

 private:
  Limits limits_;
};

// A datetime as the envelope's dates carry it, converted to and from the text the core keeps.
// The text is what Python's datetime.isoformat() writes.
struct PickledDatetime {
  std::string state;        // the 10-byte pickle state of datetime.datetime
  bool has_offset = false;  // aware (a datetime.timezone) or naive
  std::int64_t offset_us = 0;
};
std::optional<PickledDatetime> datetime_from_iso(std::string_view text);
std::string iso_from_datetime(const PickledDatetime& dt);

}  // namespace prpc::jsonpickle
