#include "redis_acl.hpp"

#include <cctype>
#include <random>

namespace prpc::testing {
namespace {

std::string random_hex() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 24; ++i) out += "0123456789abcdef"[rd() % 16];
  return out;
}

// Percent-encodes what a URL's user-info part cannot hold as it is.
std::string url_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += "0123456789ABCDEF"[c >> 4];
      out += "0123456789ABCDEF"[c & 0xf];
    }
  }
  return out;
}

}  // namespace

const std::vector<std::string>& prpc_redis_acl_commands() {
  static const std::vector<std::string> kCommands = {
      "+@stream", "+get",     "+set",         "+pexpire",   "+exists",         "+multi",
      "+exec",    "+evalsha", "+script|load", "+client|id", "+client|setname", "+client|unblock",
      "+select",  "+del",     "+hset",        "+hgetall",   "+hdel",           "+time"};
  return kCommands;
}

RedisServerOptions RedisAclServer::server_options(RedisAclOptions& options) {
  if (options.password.empty()) options.password = random_hex();
  RedisServerOptions out;
  // The fixture's admin user (RedisServer) stays: it inspects and stops the server.
  out.extra_config.push_back(options.default_password.empty()
                                 ? "user default off"
                                 : "user default on >" + options.default_password + " ~* &* +@all");
  std::string line = "user " + options.user + " on >" + options.password + " resetchannels";
  for (const auto& k : options.key_patterns) line += " " + k;
  for (const auto& c : options.commands) line += " " + c;
  out.extra_config.push_back(line);
  for (const auto& l : options.extra_config) out.extra_config.push_back(l);
  return out;
}

RedisAclServer::RedisAclServer(RedisAclOptions options)
    : options_(std::move(options)), server_(server_options(options_)) {}

std::string RedisAclServer::url(int db) const {
  return "redis://" + url_escape(options_.user) + ":" + url_escape(options_.password) +
         "@127.0.0.1:" + std::to_string(server_.port()) + "/" + std::to_string(db);
}

std::vector<std::string> RedisAclServer::rules() const {
  std::vector<std::string> out{"resetchannels"};
  out.insert(out.end(), options_.key_patterns.begin(), options_.key_patterns.end());
  out.insert(out.end(), options_.commands.begin(), options_.commands.end());
  return out;
}

RedisClient RedisAclServer::user_client() const {
  return RedisClient::tcp("127.0.0.1", server_.port(), options_.user, options_.password);
}

}  // namespace prpc::testing
