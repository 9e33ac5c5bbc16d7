// The Redis broker's reply reading on any bytes: RESP parsed by hiredis's reader (as the
// connection does), then every reading function the broker applies to replies.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "reply_reader.hpp"

using namespace prpc::redis::details;

namespace {

// hiredis 0.14 allocates an array reply's elements as soon as it reads the count (no
// maxelements limit before hiredis 1.0): "*1170000005" is a 9 GB calloc inside hiredis, from the
// Redis server PRPC trusts. Such counts are hiredis's, not the broker's parsing: left out.
bool announces_a_huge_array(std::string_view bytes) {
  for (std::size_t i = bytes.find('*'); i != std::string_view::npos; i = bytes.find('*', i + 1)) {
    std::size_t digits = 0;
    while (i + 1 + digits < bytes.size() && bytes[i + 1 + digits] >= '0' &&
           bytes[i + 1 + digits] <= '9') {
      ++digits;
    }
    if (digits > 5) return true;  // 100000 elements and more
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (announces_a_huge_array(std::string_view(reinterpret_cast<const char*>(data), size))) {
    return 0;
  }
  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) return 0;
  redisReaderFeed(reader, reinterpret_cast<const char*>(data), size);
  void* out = nullptr;
  while (redisReaderGetReply(reader, &out) == REDIS_OK && out != nullptr) {
    const auto* r = static_cast<const redisReply*>(out);
    (void)read_streams(r);
    (void)read_claim(r);
    (void)read_group_info(r, "prpc_group_consumers");
    (void)read_dead_letters(r);
    (void)read_requeue_page(r);
    (void)read_touch(r);
    (void)error_status(r, "fuzz");
    (void)field_names(r);
    (void)entry_field(r, "message");
    freeReplyObject(out);
    out = nullptr;
  }
  redisReaderFree(reader);
  return 0;
}
