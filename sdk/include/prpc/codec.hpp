// The codec interface: bytes on the wire <-> Message.
#pragma once

#include <string>
#include <string_view>

#include "prpc/message.hpp"
#include "prpc/status.hpp"

namespace prpc {

class Codec {
 public:
  virtual ~Codec() = default;
  // The dialect of Message::func_args, func_kwargs and result: "json" or "jsonpickle".
  virtual std::string_view dialect() const = 0;
  // On failure returns the error and, when `salvaged` is not null, fills in what could be
  // recovered from the input (message_id, reply_to, func_name) so the sender can be answered.
  virtual Result<Message> decode(std::string_view bytes, Message* salvaged = nullptr) const = 0;
  virtual Result<std::string> encode(const Message& message) const = 0;
};

}  // namespace prpc
