// The process executor's frames: a worker process is a separate program, so its bytes are
// outside input to the host, and the host's are to the worker.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "prpc/worker.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)prpc::worker_protocol::decode_worker_frame(body);
  (void)prpc::worker_protocol::decode_call(body);
  return 0;
}
