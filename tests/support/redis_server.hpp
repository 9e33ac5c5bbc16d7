// Test support: a real redis-server started on a free port (and optionally a unix socket) in a
// temporary directory, and a small synchronous hiredis client to inspect and drive it.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "process.hpp"

namespace prpc::testing {

struct RedisReplyFree {
  void operator()(redisReply* r) const noexcept {
    if (r != nullptr) freeReplyObject(r);
  }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyFree>;

// A blocking connection for assertions. Every method throws std::runtime_error when the
// connection fails; Redis error replies come back as replies (type REDIS_REPLY_ERROR).
class RedisClient {
 public:
  // Logs in as `user` (empty: the default user) when `password` is not empty.
  static RedisClient tcp(const std::string& host, int port, const std::string& user = {},
                         const std::string& password = {});
  static RedisClient unix_socket(const std::filesystem::path& path, const std::string& user = {},
                                 const std::string& password = {});
  RedisClient(RedisClient&&) noexcept = default;
  RedisClient& operator=(RedisClient&&) noexcept = default;
  ~RedisClient();

  RedisReplyPtr command(const std::vector<std::string>& args);
  // The reply as text: a string, status or error reply's text, an integer in decimal, "(nil)".
  std::string text(const std::vector<std::string>& args);
  long long integer(const std::vector<std::string>& args);
  // A string reply, or nullopt for nil.
  std::optional<std::string> get(const std::string& key);
  // The next reply pushed without a command (MONITOR lines); throws on timeout (60 s).
  RedisReplyPtr next_reply();

 private:
  struct Free {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
  };
  explicit RedisClient(redisContext* c) : ctx_(c) {}
  void login(const std::string& user, const std::string& password);
  std::unique_ptr<redisContext, Free> ctx_;
};

struct RedisServerOptions {
  bool unix_socket = false;               // also listen on <dir>/redis.sock
  std::vector<std::string> extra_config;  // more redis.conf lines
};

class RedisServer {
 public:
  // Starts redis-server and waits until it answers PING. Throws when it cannot.
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  const std::filesystem::path& unix_path() const { return unix_path_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string url(int db = 0) const;
  std::string unix_url(int db = 0) const;

  // A client logged in as the fixture's own admin user, which keeps working after a test sets
  // requirepass or changes the default user.
  RedisClient client() const;

  bool running();
  // SHUTDOWN NOSAVE (or SAVE when keep_data): Redis is down until start().
  void stop(bool keep_data = false);
  // Starts again on the same port and socket, loading the dump a stop(true) left.
  void start();
  void restart(bool keep_data = true);
  // SIGKILL: no goodbye to the clients and nothing saved.
  void kill();

  // ACL SETUSER name on >password <rules...> (all keys, channels and commands by default).
  void set_acl_user(const std::string& name, const std::string& password,
                    const std::vector<std::string>& rules = {"~*", "&*", "+@all"});
  // CONFIG SET requirepass: the default user then needs AUTH <password>.
  void require_password(const std::string& password);

  std::string log() const;

 private:
  void launch();
  void write_config();
  bool wait_ready(std::chrono::milliseconds timeout);

  RedisServerOptions options_;
  TempDir dir_{"prpc-redis"};
  std::filesystem::path unix_path_;
  std::string admin_password_;
  int port_ = 0;
  ChildProcess process_;
};

}  // namespace prpc::testing
