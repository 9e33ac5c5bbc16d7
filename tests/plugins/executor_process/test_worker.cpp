// A worker program for the process executor's tests: serves a few functions that misbehave on
// demand (die, hang, print, answer garbage), or misbehaves before its hello, per argv[1].
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "prpc/worker.hpp"

namespace {

using prpc::Invocation;
using prpc::Outcome;
using prpc::OutcomeCallback;
using prpc::StatusCode;

long number_in(std::string_view args) {
  // args is "[N]" in these tests
  return std::strtol(std::string(args.substr(1)).c_str(), nullptr, 10);
}

int descriptors_above(int fd) {
  int count = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      int n = std::atoi(e->d_name);
      if (n > fd && n != ::dirfd(d)) ++count;
    }
    ::closedir(d);
  }
  return count;
}

class TestFunctions final : public prpc::Invoker {
 public:
  void invoke(const Invocation& call, OutcomeCallback done) override {
    std::string_view f = call.func_name;
    if (f == "pid") {
      done(Outcome::success(std::to_string(::getpid())));
    } else if (f == "sleep") {
      std::this_thread::sleep_for(std::chrono::milliseconds(number_in(call.args)));
      done(Outcome::success(std::to_string(::getpid())));
    } else if (f == "echo") {
      done(Outcome::success("{\"args\": " + std::string(call.args) +
                            ", \"kwargs\": " + std::string(call.kwargs) + ", \"dialect\": \"" +
                            std::string(call.dialect) +
                            "\", \"timeout_ms\": " + std::to_string(call.timeout.count()) + "}"));
    } else if (f == "print") {
      // User output on the inherited stdout and stderr, not on the protocol socket.
      for (int i = 0; i < 20; ++i) {
        std::printf("{\"id\": 1, \"ok\": true, \"result\": \"stdout noise %d\"}\n", i);
        std::fprintf(stderr, "stderr noise %d\n", i);
      }
      std::fflush(stdout);
      done(Outcome::success("\"printed\""));
    } else if (f == "exit") {
      std::_Exit(static_cast<int>(number_in(call.args)));
    } else if (f == "abort") {
      ::signal(SIGABRT, SIG_DFL);
      std::abort();
    } else if (f == "fail") {
      done(Outcome::failure(StatusCode::kFunction, "KeyError", "no such key",
                            "Traceback (most recent call last):\n  ...\nKeyError: no such key"));
    } else if (f == "bad_utf8") {
      done(Outcome::failure(StatusCode::kFunction, "ValueError", "bad \xff\xfe bytes"));
    } else if (f == "bad_result") {
      done(Outcome::success("{not json"));
    } else if (f == "big") {
      done(Outcome::success(
          "\"" + std::string(static_cast<std::size_t>(number_in(call.args)), 'x') + "\""));
    } else if (f == "later") {
      // Completes from another thread, as an asynchronous invoker would.
      std::thread([done = std::move(done)] { done(Outcome::success("\"later\"")); }).detach();
    } else if (f == "environment") {
      const char* fd = std::getenv(prpc::worker_protocol::kFdVariable);
      done(Outcome::success("{\"fd\": \"" + std::string(fd ? fd : "") + "\", \"own_group\": " +
                            (::getpgid(0) == ::getpid() ? "true" : "false") +
                            ", \"extra_fds\": " + std::to_string(descriptors_above(3)) + "}"));
    } else {
      done(Outcome::failure(StatusCode::kNotFound, "UnknownFunctionError",
                            "no function '" + std::string(f) + "'"));
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "serve";
  auto fd = prpc::worker_protocol::fd_from_environment();
  if (!fd.is_ok()) {
    std::fprintf(stderr, "%s\n", fd.status().message().c_str());
    return 2;
  }
  if (mode == "exit-before-hello") return argc > 2 ? std::atoi(argv[2]) : 3;
  if (mode == "silent") {
    while (true) ::pause();
  }
  if (mode == "garbage") {
    const char junk[] = "\x05\x00\x00\x00hello";
    if (::write(*fd, junk, sizeof(junk) - 1) < 0) return 1;
    while (true) ::pause();
  }
  if (mode == "slow-hello") {
    std::this_thread::sleep_for(std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 200));
  }
  TestFunctions functions;
  prpc::Status s = prpc::worker_protocol::serve(*fd, functions);
  if (!s.is_ok()) {
    std::fprintf(stderr, "test worker: %s\n", s.to_string().c_str());
    return 1;
  }
  return 0;
}
