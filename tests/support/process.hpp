// Test support: child processes (redis-server, Kafka, prpc-host) started by fixtures, free
// loopback ports, temporary directories, and bounded polling instead of sleeps.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace prpc::testing {

// A child process with its stdout and stderr captured to a file. Killed (SIGKILL) on
// destruction if still running.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  // Starts argv[0] (looked up on PATH) with `env` added to the environment. Output goes to
  // `log_file` (appended). Throws std::runtime_error when the program cannot be started.
  static ChildProcess start(const std::vector<std::string>& argv,
                            const std::filesystem::path& log_file,
                            const std::map<std::string, std::string>& env = {});

  pid_t pid() const { return pid_; }
  bool running();
  // Sends a signal (SIGTERM by default).
  void signal(int signo);
  // Waits up to `timeout` for exit; returns the exit code (128+signal when killed), or -1 on
  // timeout.
  int wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  void kill_now();
  const std::filesystem::path& log_file() const { return log_file_; }
  std::string output() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::filesystem::path log_file_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
int free_port();

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "prpc-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Polls `condition` every `interval` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(10));

// True when a TCP connect to 127.0.0.1:port succeeds.
bool port_open(int port);

// What a short-lived helper program (redis-cli, openssl, keytool, ...) did.
struct ProgramResult {
  int exit_code = -1;  // -1: still running at the deadline, and then killed
  std::string output;  // stdout and stderr together
};

// Runs argv to completion with its output in `log_file` (overwritten), killing it after
// `timeout`. Throws only when the program cannot be started.
ProgramResult run_program(const std::vector<std::string>& argv,
                          const std::filesystem::path& log_file,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace prpc::testing
