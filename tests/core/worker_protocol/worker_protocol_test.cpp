// The worker protocol: frame encoding and decoding, the incremental reader, and serve() over a
// real socketpair with in-process invokers.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "prpc/worker.hpp"

namespace prpc::worker_protocol {
namespace {

using namespace std::chrono_literals;

std::string body_of(const std::string& frame) {
  EXPECT_GE(frame.size(), kHeaderBytes);
  std::size_t n = 0;
  for (std::size_t i = 4; i-- > 0;) n = (n << 8) | static_cast<unsigned char>(frame[i]);
  EXPECT_EQ(n, frame.size() - kHeaderBytes);
  return frame.substr(kHeaderBytes);
}

std::string frame(std::string_view body) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((body.size() >> (8 * i)) & 0xFF));
  out.append(body);
  return out;
}

Reply reply_of(const std::string& frame_bytes) {
  auto decoded = decode_worker_frame(body_of(frame_bytes));
  EXPECT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  if (!decoded.is_ok() || !std::holds_alternative<Reply>(*decoded)) return {};
  return std::get<Reply>(*decoded);
}

TEST(WorkerFrames, CallRoundTripKeepsPayloadsByteForByte) {
  Invocation call;
  call.call_id = 18446744073709551615ull;
  call.func_name = "sümm \"quoted\"";
  call.args = R"([1, 2.50, {"py/tuple": [1e3, "x\u00e9"]}])";
  call.kwargs = R"({ "z" : -0.0 })";
  call.dialect = "jsonpickle";
  call.message_id = "0b7f6c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b";
  call.timeout = 1500ms;
  auto encoded = encode_call(call);
  ASSERT_TRUE(encoded.is_ok()) << encoded.status().to_string();
  std::optional<std::uint64_t> id;
  auto decoded = decode_call(body_of(*encoded), {}, &id);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(id, call.call_id);
  EXPECT_EQ(decoded->call_id, call.call_id);
  EXPECT_EQ(decoded->func_name, call.func_name);
  EXPECT_EQ(decoded->args, call.args);
  EXPECT_EQ(decoded->kwargs, call.kwargs);
  EXPECT_EQ(decoded->dialect, "jsonpickle");
  EXPECT_EQ(decoded->message_id, call.message_id);
  EXPECT_EQ(decoded->timeout, 1500ms);
}

TEST(WorkerFrames, CallDefaultsWhenOptionalMembersAreAbsent) {
  auto decoded = decode_call(R"({"id": 7, "func": "ping", "future_member": [1]})");
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(decoded->args, "[]");
  EXPECT_EQ(decoded->kwargs, "{}");
  EXPECT_EQ(decoded->dialect, "json");
  EXPECT_EQ(decoded->timeout, 0ms);
}

TEST(WorkerFrames, CallWithPayloadsThatAreNotJsonIsNotEncoded) {
  Invocation call;
  call.func_name = "f";
  call.args = "[1, 2";
  auto bad_args = encode_call(call);
  ASSERT_FALSE(bad_args.is_ok());
  EXPECT_EQ(bad_args.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_args.status().message().rfind("args: invalid JSON", 0), 0u)
      << bad_args.status().message();
  call.args = "[]";
  call.kwargs = "{} {}";
  EXPECT_FALSE(encode_call(call).is_ok());
  Limits small;
  small.max_frame_bytes = 64;
  call.kwargs = "{}";
  call.args = "[\"" + std::string(100, 'x') + "\"]";
  auto too_big = encode_call(call, small);
  ASSERT_FALSE(too_big.is_ok());
  EXPECT_EQ(too_big.status().code(), StatusCode::kResourceExhausted);
}

TEST(WorkerFrames, ResultRoundTrips) {
  Reply ok = reply_of(encode_result(42, Outcome::success(R"({"a": [1, 2.50]})")));
  EXPECT_EQ(ok.id, 42u);
  ASSERT_TRUE(ok.outcome.ok());
  EXPECT_EQ(ok.outcome.result, R"({"a": [1, 2.50]})");

  Reply failed = reply_of(encode_result(
      43, Outcome::failure(StatusCode::kFunction, "KeyError", "no 'k'\n", "Traceback\n  line")));
  EXPECT_EQ(failed.id, 43u);
  ASSERT_FALSE(failed.outcome.ok());
  EXPECT_EQ(failed.outcome.status.code(), StatusCode::kFunction);
  EXPECT_EQ(failed.outcome.error_type, "KeyError");
  EXPECT_EQ(failed.outcome.error_message(), "no 'k'\n");
  EXPECT_EQ(failed.outcome.traceback, "Traceback\n  line");

  Reply timeout = reply_of(encode_result(44, Outcome::failure(StatusCode::kTimeout, "", "")));
  EXPECT_EQ(timeout.outcome.status.code(), StatusCode::kTimeout);
  EXPECT_EQ(timeout.outcome.error_type, "Timeout");  // a failure always has a type
}

TEST(WorkerFrames, ResultThatIsNotJsonBecomesAnEncodeError) {
  Reply r = reply_of(encode_result(5, Outcome::success("{broken")));
  ASSERT_FALSE(r.outcome.ok());
  EXPECT_EQ(r.outcome.status.code(), StatusCode::kEncode);
  EXPECT_EQ(r.outcome.error_type, "EncodeError");
  EXPECT_NE(r.outcome.error_message().find("not valid JSON"), std::string::npos);

  Limits small;
  small.max_frame_bytes = 256;
  Reply big =
      reply_of(encode_result(6, Outcome::success("\"" + std::string(1000, 'x') + "\""), small));
  ASSERT_FALSE(big.outcome.ok());
  EXPECT_NE(big.outcome.error_message().find("does not fit"), std::string::npos);
}

TEST(WorkerFrames, ErrorTextThatIsNotUtf8IsRepaired) {
  Reply r = reply_of(encode_result(
      9, Outcome::failure(StatusCode::kFunction, "Value\xc3", "bad \xff\xfe bytes \xe2\x82\xac")));
  EXPECT_EQ(r.outcome.error_type, "Value\xEF\xBF\xBD");
  EXPECT_EQ(r.outcome.error_message(), "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes \xe2\x82\xac");
}

TEST(WorkerFrames, HelloRoundTrips) {
  auto decoded = decode_worker_frame(body_of(encode_hello(4321)));
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  ASSERT_TRUE(std::holds_alternative<Hello>(*decoded));
  EXPECT_EQ(std::get<Hello>(*decoded).pid, 4321);
  EXPECT_EQ(std::get<Hello>(*decoded).protocol, kProtocolVersion);
}

TEST(WorkerFrames, MalformedWorkerFramesAreRefused) {
  const char* cases[][2] = {
      {"not json", "invalid JSON"},
      {"[1, 2]", "expected a JSON object"},
      {R"({"ok": true, "result": 1})", "missing id"},
      {R"({"id": 1, "result": 1})", "missing ok"},
      {R"({"id": -1, "ok": true, "result": 1})", "non-negative integer"},
      {R"({"id": 1.5, "ok": true, "result": 1})", "non-negative integer"},
      {R"({"id": "1", "ok": true, "result": 1})", "id: expected number, got string"},
      {R"({"id": 1, "ok": "yes", "result": 1})", "ok: expected boolean"},
      {R"({"id": 1, "ok": true})", "without a result"},
      {R"({"id": 1, "ok": false, "code": "x"})", "code: expected number"},
      {R"({"id": 1, "ok": false, "message": 5})", "message: expected string"},
      {R"({"hello": {}})", "hello: missing or invalid pid"},
      {R"({"hello": 5})", "hello: expected object"},
      {"{\"id\": 1, \"ok\": true, \"result\": \"\xff\"}", "invalid JSON"},
  };
  for (const auto& c : cases) {
    auto r = decode_worker_frame(c[0]);
    ASSERT_FALSE(r.is_ok()) << c[0];
    EXPECT_EQ(r.status().code(), StatusCode::kDecode) << c[0];
    EXPECT_EQ(r.status().message().rfind("worker frame: ", 0), 0u) << r.status().message();
    EXPECT_NE(r.status().message().find(c[1]), std::string::npos)
        << c[0] << " -> " << r.status().message();
  }
  Limits shallow;
  shallow.max_depth = 4;
  EXPECT_FALSE(
      decode_worker_frame(R"({"id": 1, "ok": true, "result": [[[[[1]]]]]})", shallow).is_ok());
}

TEST(WorkerFrames, MalformedCallsAreRefusedAndKeepTheirIdWhenKnown) {
  std::optional<std::uint64_t> id;
  auto no_id = decode_call(R"({"func": "f"})", {}, &id);
  ASSERT_FALSE(no_id.is_ok());
  EXPECT_NE(no_id.status().message().find("missing id"), std::string::npos);
  EXPECT_FALSE(id.has_value());

  auto no_func = decode_call(R"({"id": 12, "args": []})", {}, &id);
  ASSERT_FALSE(no_func.is_ok());
  EXPECT_NE(no_func.status().message().find("missing func"), std::string::npos);
  EXPECT_EQ(id, 12u);

  id.reset();
  EXPECT_FALSE(decode_call(R"({"id": 13, "func": 5})", {}, &id).is_ok());
  EXPECT_EQ(id, 13u);
  EXPECT_FALSE(decode_call(R"({"id": 14, "func": "f", "timeout_ms": -5})").is_ok());
  EXPECT_FALSE(decode_call("garbage").is_ok());
}

TEST(FrameReader, ReassemblesFramesFromAnyChunking) {
  std::string stream = encode_hello(1) + encode_result(1, Outcome::success("[1, 2, 3]")) +
                       encode_result(2, Outcome::failure(StatusCode::kFunction, "E", "m"));
  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{7}, stream.size()}) {
    FrameReader reader;
    std::vector<std::string> bodies;
    for (std::size_t i = 0; i < stream.size(); i += chunk) {
      reader.append(std::string_view(stream).substr(i, chunk));
      while (true) {
        auto next = reader.next();
        ASSERT_TRUE(next.is_ok()) << next.status().to_string();
        if (!next->has_value()) break;
        bodies.push_back(**next);
      }
    }
    ASSERT_EQ(bodies.size(), 3u) << "chunk " << chunk;
    EXPECT_FALSE(reader.partial());
    EXPECT_TRUE(std::holds_alternative<Hello>(*decode_worker_frame(bodies[0])));
    EXPECT_EQ(std::get<Reply>(*decode_worker_frame(bodies[1])).outcome.result, "[1, 2, 3]");
    EXPECT_EQ(std::get<Reply>(*decode_worker_frame(bodies[2])).outcome.error_type, "E");
  }
}

TEST(FrameReader, RefusesBadLengthsBeforeTheBodyArrives) {
  FrameReader zero;
  zero.append(std::string("\0\0\0\0", 4));
  auto z = zero.next();
  ASSERT_FALSE(z.is_ok());
  EXPECT_NE(z.status().message().find("length 0"), std::string::npos);

  FrameReader absurd;
  absurd.append("\xff\xff\xff\xff{");  // 4 GiB announced, one byte sent
  auto a = absurd.next();
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(a.status().message().find("4294967295"), std::string::npos);

  FrameReader limited(16);
  limited.append(frame(std::string(17, ' ')));
  EXPECT_FALSE(limited.next().is_ok());

  FrameReader waiting;
  waiting.append(frame("{\"id\": 1}").substr(0, 6));
  auto w = waiting.next();
  ASSERT_TRUE(w.is_ok());
  EXPECT_FALSE(w->has_value());
  EXPECT_TRUE(waiting.partial());
}

// ---- serve() over a socketpair ---------------------------------------------------------------

class Echo final : public Invoker {
 public:
  void invoke(const Invocation& call, OutcomeCallback done) override {
    if (call.func_name == "throw") throw std::runtime_error("invoker exploded");
    if (call.func_name == "fail") {
      done(Outcome::failure(StatusCode::kFunction, "ValueError", "bad value", "tb"));
      return;
    }
    if (call.func_name == "later") {
      std::thread([done = std::move(done), args = std::string(call.args)] {
        std::this_thread::sleep_for(10ms);
        done(Outcome::success(args));
      }).detach();
      return;
    }
    std::string result(call.args);
    done(Outcome::success(result));
    done(Outcome::success("\"a second completion is ignored\""));
  }
};

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    parent_ = sv[0];
    child_ = sv[1];
    served_ = std::async(std::launch::async, [this] { return serve(child_, invoker_); });
  }
  void TearDown() override {
    if (parent_ >= 0) ::close(parent_);
    if (served_.valid()) (void)served_.get();
    ::close(child_);
  }

  void send(const std::string& bytes) {
    ASSERT_EQ(::write(parent_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void send_call(std::uint64_t id, std::string func, std::string args = "[]") {
    Invocation c;
    c.call_id = id;
    c.func_name = func;
    c.args = args;
    send(*encode_call(c));
  }
  WorkerFrame receive() {
    while (true) {
      auto next = reader_.next();
      EXPECT_TRUE(next.is_ok());
      if (next.is_ok() && next->has_value()) {
        auto decoded = decode_worker_frame(**next);
        EXPECT_TRUE(decoded.is_ok()) << decoded.status().to_string();
        return *decoded;
      }
      char buf[4096];
      ssize_t n = ::read(parent_, buf, sizeof(buf));
      if (n <= 0) {
        ADD_FAILURE() << "the worker closed the socket";
        return Hello{};
      }
      reader_.append(std::string_view(buf, static_cast<std::size_t>(n)));
    }
  }
  Reply receive_reply() {
    WorkerFrame f = receive();
    EXPECT_TRUE(std::holds_alternative<Reply>(f));
    return std::holds_alternative<Reply>(f) ? std::get<Reply>(f) : Reply{};
  }
  Status finish() {
    ::close(parent_);
    parent_ = -1;
    return served_.get();
  }

  Echo invoker_;
  int parent_ = -1;
  int child_ = -1;
  FrameReader reader_;
  std::future<Status> served_;
};

TEST_F(ServeTest, SaysHelloThenAnswersCallsInOrderUntilEndOfStream) {
  WorkerFrame hello = receive();
  ASSERT_TRUE(std::holds_alternative<Hello>(hello));
  EXPECT_EQ(std::get<Hello>(hello).pid, ::getpid());

  send_call(1, "echo", "[1, 2.50]");
  send_call(2, "later", R"(["async"])");
  send_call(3, "fail");
  Reply r1 = receive_reply();
  EXPECT_EQ(r1.id, 1u);
  EXPECT_EQ(r1.outcome.result, "[1, 2.50]");
  Reply r2 = receive_reply();
  EXPECT_EQ(r2.id, 2u);
  EXPECT_EQ(r2.outcome.result, R"(["async"])");
  Reply r3 = receive_reply();
  EXPECT_EQ(r3.id, 3u);
  EXPECT_EQ(r3.outcome.error_type, "ValueError");
  EXPECT_EQ(r3.outcome.traceback, "tb");
  Status s = finish();
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST_F(ServeTest, AnInvokerThatThrowsIsAnsweredAndServingContinues) {
  receive();
  send_call(4, "throw");
  Reply r = receive_reply();
  EXPECT_EQ(r.id, 4u);
  EXPECT_EQ(r.outcome.status.code(), StatusCode::kInternal);
  EXPECT_NE(r.outcome.error_message().find("invoker exploded"), std::string::npos);
  send_call(5, "echo", "[5]");
  EXPECT_EQ(receive_reply().outcome.result, "[5]");
}

TEST_F(ServeTest, AMalformedCallWithAnIdIsAnsweredAndServingContinues) {
  receive();
  send(frame(R"({"id": 9, "func": 12})"));
  Reply r = receive_reply();
  EXPECT_EQ(r.id, 9u);
  EXPECT_EQ(r.outcome.status.code(), StatusCode::kDecode);
  EXPECT_NE(r.outcome.error_message().find("func: expected string"), std::string::npos);
  send_call(10, "echo", "[10]");
  EXPECT_EQ(receive_reply().outcome.result, "[10]");
}

TEST_F(ServeTest, AFrameWithoutAnIdEndsServing) {
  receive();
  send(frame("not json at all"));
  Status s = served_.get();
  EXPECT_EQ(s.code(), StatusCode::kDecode);
  EXPECT_NE(s.message().find("invalid JSON"), std::string::npos) << s.message();
}

TEST_F(ServeTest, AnAbsurdLengthEndsServing) {
  receive();
  send("\xff\xff\xff\x7f");
  Status s = served_.get();
  EXPECT_EQ(s.code(), StatusCode::kDecode);
  EXPECT_NE(s.message().find("refused length"), std::string::npos) << s.message();
}

TEST_F(ServeTest, ATruncatedFrameIsAnError) {
  receive();
  send(frame(R"({"id": 1, "func": "echo"})").substr(0, 10));
  Status s = finish();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("in the middle of a frame"), std::string::npos) << s.message();
}

TEST(WorkerEnvironment, FdComesFromTheVariable) {
  ::unsetenv(kFdVariable);
  auto missing = fd_from_environment();
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("PRPC_WORKER_FD is not set"), std::string::npos);
  ::setenv(kFdVariable, "3", 1);
  auto three = fd_from_environment();
  ASSERT_TRUE(three.is_ok());
  EXPECT_EQ(*three, 3);
  ::setenv(kFdVariable, "three", 1);
  EXPECT_FALSE(fd_from_environment().is_ok());
  ::unsetenv(kFdVariable);
}

}  // namespace
}  // namespace prpc::worker_protocol
