#include "worker_process.hpp"

#include <fcntl.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "process_executor.hpp"
#include "prpc/worker.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace prpc::process {

namespace {

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#else
  (void)pid;
#endif
  return -1;
}

}  // namespace

std::string errno_text(int err) { return std::strerror(err); }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    std::string out = "was killed by signal " + std::to_string(sig);
    if (const char* abbrev = sigabbrev_np(sig)) out += std::string(" (SIG") + abbrev + ")";
    if (WCOREDUMP(status)) out += ", core dumped";
    return out;
  }
  return "ended with status " + std::to_string(status);
}

std::string describe_command(const std::vector<std::string>& command) {
  std::string out;
  for (const std::string& a : command) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

Result<Spawned> spawn_worker(const std::vector<std::string>& command) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status(StatusCode::kUnavailable, "socketpair: " + errno_text(errno));
  }
  int parent = sv[0];
  int child = sv[1];
  if (child == worker_protocol::kChildFd) {
    // dup2 onto itself would leave close-on-exec set.
    int moved = ::fcntl(child, F_DUPFD_CLOEXEC, 10);
    ::close(child);
    if (moved < 0) {
      ::close(parent);
      return Status(StatusCode::kUnavailable, "fcntl: " + errno_text(errno));
    }
    child = moved;
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&actions, child, worker_protocol::kChildFd);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Descriptors the application opened without close-on-exec stay out of the worker.
  posix_spawn_file_actions_addclosefrom_np(&actions, worker_protocol::kChildFd + 1);
#endif
  // Its own process group: a terminal's Ctrl-C reaches the host, which drains, not the workers;
  // and a timeout kills the worker together with any process it started.
  short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  posix_spawnattr_setflags(&attr, flags);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<std::string> env_strings;
  const std::string fd_prefix = std::string(worker_protocol::kFdVariable) + "=";
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, fd_prefix.c_str(), fd_prefix.size()) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back(fd_prefix + std::to_string(worker_protocol::kChildFd));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = command;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(child);
  if (rc != 0) {
    ::close(parent);
    return Status(StatusCode::kUnavailable, "cannot start the worker command '" +
                                                describe_command(command) + "': " + errno_text(rc));
  }
  ::fcntl(parent, F_SETFL, ::fcntl(parent, F_GETFL) | O_NONBLOCK);
  Spawned out;
  out.pid = pid;
  out.fd.reset(parent);
  out.pidfd.reset(open_pidfd(pid));
  return out;
}

Result<std::vector<std::string>> parse_worker_command(std::string_view text) {
  auto invalid = [&](const std::string& why) {
    return Status(StatusCode::kInvalidArgument,
                  "worker_command: " + why +
                      "; expected a JSON array of strings, e.g. [\"prpc-worker\", \"--config\", "
                      "\"app.toml\"]");
  };
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsArray()) {
    return invalid(text.empty() ? "not set" : "'" + std::string(text) + "' is not a JSON array");
  }
  std::vector<std::string> out;
  for (const auto& v : doc.GetArray()) {
    if (!v.IsString()) return invalid("every element must be a string");
    std::string s(v.GetString(), v.GetStringLength());
    if (s.find('\0') != std::string::npos) return invalid("an element holds a NUL byte");
    out.push_back(std::move(s));
  }
  if (out.empty()) return invalid("the array is empty");
  if (out.front().empty()) return invalid("the program name is empty");
  return out;
}

std::vector<sdk::OptionSpec> ProcessExecutor::options() {
  return {
      {"workers", PRPC_OPT_INT, "4", "number of worker processes (calls running at once)"},
      {"worker_command", PRPC_OPT_STRING, nullptr,
       "the command that starts one worker, as a JSON array of strings; it gets its socket as "
       "descriptor 3 (PRPC_WORKER_FD=3) and says hello when ready",
       PRPC_OPT_FLAG_REQUIRED},
      {"start_timeout", PRPC_OPT_DURATION_MS, "30s",
       "how long a worker may take to say hello; calls waiting for a worker fail after it"},
      {"max_calls_per_worker", PRPC_OPT_INT, "0",
       "replace a worker after this many calls (0: never)"},
  };
}

ProcessOptions options_from(const sdk::Context& ctx) {
  ProcessOptions o;
  std::int64_t workers = ctx.options.get_int("workers", 4);
  if (workers < 1 || workers > 1024)
    throw std::invalid_argument("workers: must be between 1 and 1024");
  o.workers = static_cast<std::uint32_t>(workers);
  auto command = parse_worker_command(ctx.options.get("worker_command"));
  if (!command.is_ok()) throw std::invalid_argument(command.status().message());
  o.command = std::move(*command);
  o.start_timeout = ctx.options.get_duration("start_timeout", o.start_timeout);
  std::int64_t max_calls = ctx.options.get_int("max_calls_per_worker", 0);
  if (max_calls < 0) throw std::invalid_argument("max_calls_per_worker: must not be negative");
  o.max_calls_per_worker = static_cast<std::uint64_t>(max_calls);
  return o;
}

}  // namespace prpc::process
