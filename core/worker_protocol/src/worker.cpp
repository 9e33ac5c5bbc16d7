#include "prpc/worker.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>

#include "prpc/json.hpp"

namespace prpc::worker_protocol {
namespace {

json::Limits json_limits(const Limits& limits) {
  json::Limits out;
  out.max_bytes = limits.max_frame_bytes;
  out.max_depth = limits.max_depth;
  return out;
}

void append_header(std::string& out, std::size_t length) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xFF));
}

std::size_t read_header(const char* p) {
  std::size_t n = 0;
  for (int i = 3; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(p[i]);
  return n;
}

std::string frame_of(std::string_view body) {
  std::string out;
  out.reserve(kHeaderBytes + body.size());
  append_header(out, body.size());
  out.append(body);
  return out;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  std::size_t left = s.size() - i;
  auto cont = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;
    if (c == 0xF4 && b(1) >= 0x90) return 0;
    return 4;
  }
  return 0;
}

// Error texts come from functions and may hold any bytes; one bad byte would make the whole
// frame unreadable, so invalid sequences become U+FFFD.
void append_text(std::string& out, std::string_view text) {
  std::string repaired;
  bool bad = false;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = utf8_sequence(text, i);
    if (n == 0) {
      if (!bad) repaired.assign(text.substr(0, i));
      bad = true;
      repaired += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (bad) repaired.append(text.substr(i, n));
    i += n;
  }
  json::append_quoted(out, bad ? std::string_view(repaired) : text);
}

template <typename T>
bool parse_integer(std::string_view raw, T& out) {
  auto [p, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), out);
  return ec == std::errc() && p == raw.data() + raw.size();
}

Status refused(std::string what) {
  return Status(StatusCode::kDecode, "worker frame: " + std::move(what));
}

Status expect(const json::Member& m, json::Type type) {
  if (m.type == type) return Status::ok();
  return refused(std::string(m.key) + ": expected " + std::string(json::type_name(type)) +
                 ", got " + std::string(json::type_name(m.type)));
}

Status read_id(const json::Member& m, std::uint64_t& out) {
  PRPC_RETURN_IF_ERROR(expect(m, json::Type::kNumber));
  if (!parse_integer(m.raw, out)) {
    return refused("id: expected a non-negative integer, got " + std::string(m.raw));
  }
  return Status::ok();
}

Status read_int(const json::Member& m, std::int64_t& out) {
  PRPC_RETURN_IF_ERROR(expect(m, json::Type::kNumber));
  if (!parse_integer(m.raw, out)) {
    return refused(std::string(m.key) + ": expected an integer, got " + std::string(m.raw));
  }
  return Status::ok();
}

// ---- blocking I/O on the worker's descriptor ---------------------------------------------

// Waits until `fd` is ready when someone handed us a non-blocking descriptor.
bool wait_ready(int fd, short events) {
  pollfd p{fd, events, 0};
  while (true) {
    int r = ::poll(&p, 1, -1);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

Status write_all(int fd, std::string_view data) {
  bool use_send = true;
  while (!data.empty()) {
    ssize_t n = use_send ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL)
                         : ::write(fd, data.data(), data.size());
    if (n >= 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == ENOTSOCK && use_send) {
      use_send = false;  // a pipe: plain write
      continue;
    }
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_ready(fd, POLLOUT)) continue;
    return Status(StatusCode::kUnavailable,
                  std::string("writing to the parent failed: ") + std::strerror(errno));
  }
  return Status::ok();
}

// Reads exactly `size` bytes. The end of the stream before the first byte is a clean end
// (`*eof` set); in the middle of the bytes it is an error.
Status read_exact(int fd, char* out, std::size_t size, bool* eof) {
  std::size_t got = 0;
  *eof = false;
  while (got < size) {
    ssize_t n = ::read(fd, out + got, size - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {
      if (got == 0) {
        *eof = true;
        return Status::ok();
      }
      return Status(StatusCode::kUnavailable,
                    "the parent closed the socket in the middle of a "
                    "frame (" +
                        std::to_string(got) + " of " + std::to_string(size) + " bytes)");
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_ready(fd, POLLIN)) continue;
    return Status(StatusCode::kUnavailable,
                  std::string("reading from the parent failed: ") + std::strerror(errno));
  }
  return Status::ok();
}

// Runs one call and waits for its completion, which the invoker may deliver from any thread.
Outcome run_call(Invoker& invoker, const Invocation& call) {
  struct Slot {
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<Outcome> outcome;
  };
  auto slot = std::make_shared<Slot>();
  OutcomeCallback done = [slot](Outcome o) {
    std::lock_guard lock(slot->mutex);
    slot->outcome = std::move(o);
    slot->cv.notify_all();
  };
  run_guarded("the invoker", std::move(done),
              [&](OutcomeCallback once) { invoker.invoke(call, std::move(once)); });
  std::unique_lock lock(slot->mutex);
  slot->cv.wait(lock, [&] { return slot->outcome.has_value(); });
  return std::move(*slot->outcome);
}

}  // namespace

// ---- encoding ----------------------------------------------------------------------------

Result<std::string> encode_call(const Invocation& call, const Limits& limits) {
  json::Limits jl = json_limits(limits);
  auto check = [&](std::string_view name, std::string_view payload) {
    Status s = json::validate(payload, jl);
    if (s.is_ok()) return s;
    StatusCode code = s.code() == StatusCode::kDecode ? StatusCode::kInvalidArgument : s.code();
    return Status(code, std::string(name) + ": " + s.message());
  };
  PRPC_RETURN_IF_ERROR(check("args", call.args));
  PRPC_RETURN_IF_ERROR(check("kwargs", call.kwargs));
  std::string out;
  out.reserve(kHeaderBytes + 128 + call.func_name.size() + call.args.size() + call.kwargs.size() +
              call.message_id.size());
  append_header(out, 0);  // patched below
  out += "{\"id\": ";
  out += std::to_string(call.call_id);
  out += ", \"func\": ";
  append_text(out, call.func_name);
  out += ", \"args\": ";
  out += call.args;
  out += ", \"kwargs\": ";
  out += call.kwargs;
  out += ", \"dialect\": ";
  append_text(out, call.dialect);
  out += ", \"message_id\": ";
  append_text(out, call.message_id);
  out += ", \"timeout_ms\": ";
  out += std::to_string(call.timeout.count() > 0 ? call.timeout.count() : 0);
  if (!call.traceparent.empty()) {
    out += ", \"traceparent\": ";
    append_text(out, call.traceparent);
  }
  if (!call.tracestate.empty()) {
    out += ", \"tracestate\": ";
    append_text(out, call.tracestate);
  }
  out += "}";
  std::size_t body = out.size() - kHeaderBytes;
  if (body > limits.max_frame_bytes) {
    return Status(StatusCode::kResourceExhausted, "the call to '" + std::string(call.func_name) +
                                                      "' needs a frame of " + std::to_string(body) +
                                                      " bytes, over the limit of " +
                                                      std::to_string(limits.max_frame_bytes));
  }
  std::string header;
  append_header(header, body);
  out.replace(0, kHeaderBytes, header);
  return out;
}

std::string encode_hello(std::int64_t pid) {
  return frame_of("{\"hello\": {\"pid\": " + std::to_string(pid) +
                  ", \"protocol\": " + std::to_string(kProtocolVersion) + "}}");
}

std::string encode_result(std::uint64_t id, const Outcome& outcome, const Limits& limits) {
  std::string body = "{\"id\": " + std::to_string(id);
  if (outcome.ok()) {
    bool fits = body.size() + outcome.result.size() + 32 <= limits.max_frame_bytes;
    Status valid = fits ? json::validate(outcome.result, json_limits(limits)) : Status::ok();
    if (fits && valid.is_ok()) {
      body += ", \"ok\": true, \"result\": ";
      body += outcome.result;
      body += "}";
      return frame_of(body);
    }
    std::string why = !fits ? "the result of " + std::to_string(outcome.result.size()) +
                                  " bytes does not fit in a worker frame (limit " +
                                  std::to_string(limits.max_frame_bytes) + " bytes)"
                            : "the result is not valid JSON: " + valid.message();
    return encode_result(id, Outcome::failure(StatusCode::kEncode, error_types::kEncode, why),
                         limits);
  }
  auto code = static_cast<std::int32_t>(outcome.status.code());
  const std::string& message = outcome.status.message();
  // Error texts are cut rather than refused: the reply must reach the parent.
  std::size_t budget = limits.max_frame_bytes / 4;
  body += ", \"ok\": false, \"code\": " + std::to_string(code) + ", \"type\": ";
  append_text(body, outcome.error_type.substr(0, std::min<std::size_t>(budget, 1024)));
  body += ", \"message\": ";
  append_text(body, std::string_view(message).substr(0, budget));
  body += ", \"traceback\": ";
  append_text(body, std::string_view(outcome.traceback).substr(0, budget));
  body += "}";
  return frame_of(body);
}

// ---- decoding ----------------------------------------------------------------------------

Result<WorkerFrame> decode_worker_frame(std::string_view body, const Limits& limits) {
  json::Limits jl = json_limits(limits);
  bool hello_seen = false;
  Hello hello;
  std::optional<std::uint64_t> id;
  std::optional<bool> ok;
  bool has_result = false;
  Outcome outcome;
  std::string message;  // a failure's, until the outcome is made
  std::int32_t code = PRPC_ERR_FUNCTION;
  Status scanned = json::scan_object(body, jl, [&](const json::Member& m) -> Status {
    if (m.key == "hello") {
      PRPC_RETURN_IF_ERROR(expect(m, json::Type::kObject));
      hello_seen = true;
      return json::scan_object(m.raw, jl, [&](const json::Member& h) -> Status {
        if (h.key == "pid") return read_int(h, hello.pid);
        if (h.key == "protocol") return read_int(h, hello.protocol);
        return Status::ok();
      });
    }
    if (m.key == "id") {
      std::uint64_t v = 0;
      PRPC_RETURN_IF_ERROR(read_id(m, v));
      id = v;
    } else if (m.key == "ok") {
      PRPC_RETURN_IF_ERROR(expect(m, json::Type::kBool));
      ok = m.boolean;
    } else if (m.key == "result") {
      outcome.result.assign(m.raw);
      has_result = true;
    } else if (m.key == "code") {
      std::int64_t v = 0;
      PRPC_RETURN_IF_ERROR(read_int(m, v));
      code =
          (v < PRPC_OK || v > PRPC_ERR_FUNCTION) ? PRPC_ERR_INTERNAL : static_cast<std::int32_t>(v);
    } else if (m.key == "type" || m.key == "message" || m.key == "traceback") {
      if (m.type == json::Type::kNull) return Status::ok();
      PRPC_RETURN_IF_ERROR(expect(m, json::Type::kString));
      std::string& field = m.key == "type"      ? outcome.error_type
                           : m.key == "message" ? message
                                                : outcome.traceback;
      field.assign(m.text);
    }
    return Status::ok();
  });
  if (!scanned.is_ok()) {
    return scanned.code() == StatusCode::kDecode && scanned.message().rfind("worker frame", 0) == 0
               ? scanned
               : refused(scanned.message());
  }
  if (hello_seen) {
    if (hello.pid <= 0) return refused("hello: missing or invalid pid");
    return WorkerFrame(hello);
  }
  if (!id) return refused("missing id");
  if (!ok) return refused("missing ok");
  Reply reply;
  reply.id = *id;
  if (*ok) {
    if (!has_result) return refused("a successful reply without a result");
    reply.outcome = Outcome::success(std::move(outcome.result));
  } else {
    // A failure always names a failure, even when the worker sent code 0.
    StatusCode sc = code == PRPC_OK ? StatusCode::kFunction : status_code_from_abi(code);
    std::string type = outcome.error_type.empty() ? std::string(status_code_name(sc))
                                                  : std::move(outcome.error_type);
    reply.outcome = Outcome::failure(sc, type, std::move(message), std::move(outcome.traceback));
  }
  return WorkerFrame(std::move(reply));
}

Result<OwnedInvocation> decode_call(std::string_view body, const Limits& limits,
                                    std::optional<std::uint64_t>* id_out) {
  json::Limits jl = json_limits(limits);
  OwnedInvocation call;
  call.args = "[]";
  call.kwargs = "{}";
  call.dialect = "json";
  bool has_id = false;
  bool has_func = false;
  Status scanned = json::scan_object(body, jl, [&](const json::Member& m) -> Status {
    if (m.key == "id") {
      PRPC_RETURN_IF_ERROR(read_id(m, call.call_id));
      has_id = true;
      if (id_out != nullptr) *id_out = call.call_id;
    } else if (m.key == "func") {
      PRPC_RETURN_IF_ERROR(expect(m, json::Type::kString));
      call.func_name.assign(m.text);
      has_func = true;
    } else if (m.key == "args") {
      call.args.assign(m.raw);
    } else if (m.key == "kwargs") {
      call.kwargs.assign(m.raw);
    } else if (m.key == "dialect") {
      PRPC_RETURN_IF_ERROR(expect(m, json::Type::kString));
      call.dialect.assign(m.text);
    } else if (m.key == "message_id") {
      PRPC_RETURN_IF_ERROR(expect(m, json::Type::kString));
      call.message_id.assign(m.text);
    } else if (m.key == "timeout_ms") {
      std::int64_t v = 0;
      PRPC_RETURN_IF_ERROR(read_int(m, v));
      if (v < 0) return refused("timeout_ms: must not be negative");
      call.timeout = std::chrono::milliseconds(v);
    } else if (m.key == "traceparent") {
      PRPC_RETURN_IF_ERROR(expect(m, json::Type::kString));
      call.traceparent.assign(m.text);
    } else if (m.key == "tracestate") {
      PRPC_RETURN_IF_ERROR(expect(m, json::Type::kString));
      call.tracestate.assign(m.text);
    }
    return Status::ok();
  });
  if (!scanned.is_ok()) {
    return scanned.code() == StatusCode::kDecode && scanned.message().rfind("worker frame", 0) == 0
               ? scanned
               : refused(scanned.message());
  }
  if (!has_id) return refused("missing id");
  if (!has_func) return refused("missing func");
  return call;
}

// ---- FrameReader ---------------------------------------------------------------------------

void FrameReader::append(std::string_view bytes) {
  // Drop what was consumed before growing, so the buffer holds at most one frame and a bit.
  if (pos_ > 0 && (pos_ == buffer_.size() || pos_ >= (std::size_t{1} << 16))) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  buffer_.append(bytes);
}

Result<std::optional<std::string>> FrameReader::next() {
  std::size_t available = buffer_.size() - pos_;
  if (available < kHeaderBytes) return std::optional<std::string>();
  std::size_t length = read_header(buffer_.data() + pos_);
  if (length == 0) return Status(StatusCode::kDecode, "worker frame: length 0");
  if (length > max_frame_bytes_) {
    return Status(StatusCode::kResourceExhausted, "worker frame: length " + std::to_string(length) +
                                                      " exceeds the limit of " +
                                                      std::to_string(max_frame_bytes_) + " bytes");
  }
  if (available < kHeaderBytes + length) return std::optional<std::string>();
  std::string body = buffer_.substr(pos_ + kHeaderBytes, length);
  pos_ += kHeaderBytes + length;
  if (pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  }
  return std::optional<std::string>(std::move(body));
}

// ---- serve ---------------------------------------------------------------------------------

Status serve(int fd, Invoker& invoker, const Limits& limits) {
  PRPC_RETURN_IF_ERROR(write_all(fd, encode_hello(static_cast<std::int64_t>(::getpid()))));
  std::string body;
  while (true) {
    char header[kHeaderBytes];
    bool eof = false;
    PRPC_RETURN_IF_ERROR(read_exact(fd, header, kHeaderBytes, &eof));
    if (eof) return Status::ok();
    std::size_t length = read_header(header);
    if (length == 0 || length > limits.max_frame_bytes) {
      return Status(StatusCode::kDecode, "worker frame: refused length " + std::to_string(length) +
                                             " (limit " + std::to_string(limits.max_frame_bytes) +
                                             " bytes)");
    }
    body.resize(length);
    PRPC_RETURN_IF_ERROR(read_exact(fd, body.data(), length, &eof));
    if (eof) return Status(StatusCode::kUnavailable, "the parent closed the socket after a header");

    std::optional<std::uint64_t> id;
    auto call = decode_call(body, limits, &id);
    Outcome outcome;
    if (call.is_ok()) {
      outcome = run_call(invoker, call->view());
      id = call->call_id;
    } else if (id) {
      outcome =
          Outcome::failure(StatusCode::kDecode, error_types::kDecode, call.status().message());
    } else {
      return call.status();  // nobody to answer: the stream cannot be trusted any more
    }
    PRPC_RETURN_IF_ERROR(write_all(fd, encode_result(*id, outcome, limits)));
  }
}

Result<int> fd_from_environment() {
  const char* text = std::getenv(kFdVariable);
  if (text == nullptr || *text == '\0') {
    return Status(StatusCode::kFailedPrecondition,
                  std::string(kFdVariable) +
                      " is not set: a worker is started by the process executor, which passes "
                      "it the descriptor of its socket");
  }
  int fd = -1;
  std::string_view v(text);
  if (!parse_integer(v, fd) || fd < 0) {
    return Status(StatusCode::kInvalidArgument,
                  std::string(kFdVariable) + "=" + text + " is not a file descriptor number");
  }
  return fd;
}

}  // namespace prpc::worker_protocol
