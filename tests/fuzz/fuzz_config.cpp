// The TOML configuration and the values --set and the environment give: any text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "prpc/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = prpc::Config::parse_toml(text, "fuzz");
  if (config.is_ok()) {
    for (const auto& [key, value] : config->all()) {
      (void)prpc::parse_duration(value);
      (void)prpc::parse_bool(value);
      (void)prpc::parse_double(value);
      (void)config->get_list(key);
    }
  }
  (void)prpc::parse_duration(text);
  (void)prpc::parse_bool(text);
  (void)prpc::parse_double(text);
  return 0;
}
