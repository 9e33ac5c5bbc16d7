// Test support: a redis-server with an ACL user restricted to PRPC's keys and commands
// (docs/brokers/redis.md, "ACL permissions"), and the default user switched off or behind a
// password, so a client that does not log in as that user can do nothing.
#pragma once

#include <string>
#include <vector>

#include "redis_server.hpp"

namespace prpc::testing {

// The commands docs/brokers/redis.md lists for a dedicated PRPC user, as ACL rules.
const std::vector<std::string>& prpc_redis_acl_commands();

struct RedisAclOptions {
  std::string user = "prpc";
  std::string password;  // random (hex) when empty
  std::vector<std::string> key_patterns = {"~prpc_*", "~prcp_*"};
  std::vector<std::string> commands = prpc_redis_acl_commands();
  // Empty: the default user is off. Otherwise it keeps all rights behind this password.
  std::string default_password;
  std::vector<std::string> extra_config;
};

class RedisAclServer {
 public:
  explicit RedisAclServer(RedisAclOptions options = {});

  const std::string& user() const { return options_.user; }
  const std::string& password() const { return options_.password; }
  int port() const { return server_.port(); }
  // redis://user:password@127.0.0.1:port/db
  std::string url(int db = 0) const;
  // The ACL rules the user was given (after "on >password").
  std::vector<std::string> rules() const;

  // A connection logged in as the restricted user.
  RedisClient user_client() const;
  // The fixture's own unrestricted login (RedisServer::client()).
  RedisClient admin_client() const { return server_.client(); }
  RedisServer& server() { return server_; }

 private:
  static RedisServerOptions server_options(RedisAclOptions& options);
  RedisAclOptions options_;
  RedisServer server_;
};

}  // namespace prpc::testing
