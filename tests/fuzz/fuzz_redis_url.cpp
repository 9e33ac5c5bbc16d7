// Redis URLs come from configuration and the environment.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "prpc/broker_redis/url.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)prpc::redis::parse_redis_url(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
