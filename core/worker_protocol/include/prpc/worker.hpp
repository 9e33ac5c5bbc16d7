// The worker protocol: how a process executor and its worker processes talk over one socket.
//
// A frame is a 4-byte little-endian length, then that many bytes of one JSON object.
//   parent -> worker  {"id": N, "func": "...", "args": <JSON>, "kwargs": <JSON>,
//                      "dialect": "...", "message_id": "...", "timeout_ms": N,
//                      "traceparent": "...", "tracestate": "..."}   (the last two when set)
//   worker -> parent  {"hello": {"pid": N, "protocol": 1}}            once, when ready
//                     {"id": N, "ok": true, "result": <JSON>}          per call, or
//                     {"id": N, "ok": false, "code": <prpc_status>, "type": "...",
//                      "message": "...", "traceback": "..."}
// args, kwargs and result are embedded verbatim (they are JSON documents in the call's dialect),
// so numbers and jsonpickle tags cross byte for byte. Unknown members are ignored by readers.
//
// The worker side is serve(); the parent side (plugins/executor_process) uses the encoders, the
// decoders and FrameReader. Nothing here knows what runs the calls: the Python SDK serves its
// functions with the same loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "prpc/executor.hpp"
#include "prpc/status.hpp"

namespace prpc::worker_protocol {

// The environment variable that tells a worker which descriptor is its end of the socket.
inline constexpr const char* kFdVariable = "PRPC_WORKER_FD";
// The descriptor the process executor hands to every worker.
inline constexpr int kChildFd = 3;
inline constexpr int kProtocolVersion = 1;
inline constexpr std::size_t kHeaderBytes = 4;
// Larger than any message the server accepts (16 MiB by default) with room for big results.
inline constexpr std::size_t kDefaultMaxFrameBytes = std::size_t{64} << 20;

struct Limits {
  std::size_t max_frame_bytes = kDefaultMaxFrameBytes;
  std::size_t max_depth = 1024;  // one more level than the payloads, which the server bounds
};

// ---- encoding: each returns a whole frame, length prefix included ----------------------------

// Refuses args or kwargs that are not single JSON documents (they are embedded verbatim) and a
// frame beyond the limit.
Result<std::string> encode_call(const Invocation& call, const Limits& limits = {});
std::string encode_hello(std::int64_t pid);
// Never fails: a result that is not valid JSON or does not fit in a frame becomes an error
// reply (EncodeError), and error texts that are not UTF-8 are repaired, so the parent can always
// read what a worker writes.
std::string encode_result(std::uint64_t id, const Outcome& outcome, const Limits& limits = {});

// ---- decoding: `body` is one frame without its length prefix ---------------------------------

struct Hello {
  std::int64_t pid = 0;
  std::int64_t protocol = 0;
};
struct Reply {
  std::uint64_t id = 0;
  Outcome outcome;
};
using WorkerFrame = std::variant<Hello, Reply>;

// What a worker sent: a hello or the reply to a call.
Result<WorkerFrame> decode_worker_frame(std::string_view body, const Limits& limits = {});

// A call from the parent. When the frame is refused but its id could be read, `*id_out` holds it
// so the worker can still answer that call with the error.
Result<OwnedInvocation> decode_call(std::string_view body, const Limits& limits = {},
                                    std::optional<std::uint64_t>* id_out = nullptr);

// Cuts a byte stream into frame bodies. A bad length (zero, or beyond the limit) breaks the
// stream for good: there is no way to find the next frame after it.
class FrameReader {
 public:
  explicit FrameReader(std::size_t max_frame_bytes = kDefaultMaxFrameBytes)
      : max_frame_bytes_(max_frame_bytes) {}

  void append(std::string_view bytes);
  // The next complete frame body; nullopt when more bytes are needed.
  Result<std::optional<std::string>> next();
  // Bytes of an unfinished frame are buffered.
  bool partial() const noexcept { return pos_ < buffer_.size(); }

 private:
  std::size_t max_frame_bytes_;
  std::string buffer_;
  std::size_t pos_ = 0;
};

// ---- the worker's loop ---------------------------------------------------------------------

// Writes the hello frame, then reads one call at a time, runs it with `invoker` (waiting for its
// completion, which may come from another thread) and writes the reply, until the parent closes
// the socket. Returns OK on a clean end of stream, an error when the stream broke (a truncated
// or unreadable frame whose call cannot be answered, a write that failed).
// Call it once the application is ready to run calls: the hello tells the parent so.
Status serve(int fd, Invoker& invoker, const Limits& limits = {});

// The descriptor named by PRPC_WORKER_FD, or an error saying the program was not started by a
// process executor.
Result<int> fd_from_environment();

}  // namespace prpc::worker_protocol
