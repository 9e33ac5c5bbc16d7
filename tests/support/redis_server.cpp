#include "redis_server.hpp"

#include <fstream>
#include <random>
#include <stdexcept>

namespace prpc::testing {
namespace {

constexpr const char* kAdminUser = "prpc-test-admin";

std::string random_token() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 16; ++i) out += "0123456789abcdef"[rd() % 16];
  return out;
}

timeval to_timeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

}  // namespace

// ---- RedisClient ---------------------------------------------------------------------------

RedisClient RedisClient::tcp(const std::string& host, int port, const std::string& user,
                             const std::string& password) {
  redisContext* c =
      redisConnectWithTimeout(host.c_str(), port, to_timeval(std::chrono::seconds(5)));
  if (c == nullptr || c->err != 0) {
    std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    throw std::runtime_error("cannot connect to Redis on port " + std::to_string(port) + ": " +
                             why);
  }
  RedisClient client(c);
  // Long enough for a 64 MB payload on a loaded machine, short enough to fail a stuck test.
  redisSetTimeout(c, to_timeval(std::chrono::seconds(60)));
  client.login(user, password);
  return client;
}

RedisClient RedisClient::unix_socket(const std::filesystem::path& path, const std::string& user,
                                     const std::string& password) {
  redisContext* c = redisConnectUnixWithTimeout(path.c_str(), to_timeval(std::chrono::seconds(5)));
  if (c == nullptr || c->err != 0) {
    std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    throw std::runtime_error("cannot connect to Redis at " + path.string() + ": " + why);
  }
  RedisClient client(c);
  redisSetTimeout(c, to_timeval(std::chrono::seconds(60)));
  client.login(user, password);
  return client;
}

RedisClient::~RedisClient() = default;

void RedisClient::login(const std::string& user, const std::string& password) {
  if (password.empty()) return;
  std::vector<std::string> args{"AUTH"};
  if (!user.empty()) args.push_back(user);
  args.push_back(password);
  auto r = command(args);
  if (r->type == REDIS_REPLY_ERROR) {
    throw std::runtime_error("AUTH failed: " + std::string(r->str, r->len));
  }
}

RedisReplyPtr RedisClient::command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  void* r = redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data());
  if (r == nullptr) {
    throw std::runtime_error("Redis command " + (args.empty() ? std::string() : args[0]) +
                             " failed: " + ctx_->errstr);
  }
  return RedisReplyPtr(static_cast<redisReply*>(r));
}

RedisReplyPtr RedisClient::next_reply() {
  void* r = nullptr;
  if (redisGetReply(ctx_.get(), &r) != REDIS_OK || r == nullptr) {
    throw std::runtime_error(std::string("no reply from Redis: ") + ctx_->errstr);
  }
  return RedisReplyPtr(static_cast<redisReply*>(r));
}

std::string RedisClient::text(const std::vector<std::string>& args) {
  auto r = command(args);
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR: return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER: return std::to_string(r->integer);
    case REDIS_REPLY_NIL: return "(nil)";
    default: return "(array of " + std::to_string(r->elements) + ")";
  }
}

long long RedisClient::integer(const std::vector<std::string>& args) {
  auto r = command(args);
  if (r->type != REDIS_REPLY_INTEGER) {
    throw std::runtime_error("expected an integer reply to " + args.at(0) + ", got type " +
                             std::to_string(r->type) +
                             (r->str != nullptr ? ": " + std::string(r->str, r->len) : ""));
  }
  return r->integer;
}

std::optional<std::string> RedisClient::get(const std::string& key) {
  auto r = command({"GET", key});
  if (r->type == REDIS_REPLY_NIL) return std::nullopt;
  if (r->type != REDIS_REPLY_STRING) {
    throw std::runtime_error("GET " + key + " did not return a string");
  }
  return std::string(r->str, r->len);
}

// ---- RedisServer ---------------------------------------------------------------------------

RedisServer::RedisServer(RedisServerOptions options)
    : options_(std::move(options)), admin_password_(random_token()) {
  if (options_.unix_socket) unix_path_ = dir_.path() / "redis.sock";
  // Port 0 is not allowed; a free port may be taken again before Redis binds it: retry then.
  for (int attempt = 0; attempt < 20; ++attempt) {
    port_ = free_port();
    write_config();
    launch();
    if (wait_ready(std::chrono::seconds(15))) return;
    bool clash = log().find("Address already in use") != std::string::npos;
    process_.kill_now();
    if (!clash) throw std::runtime_error("redis-server did not start:\n" + log());
  }
  throw std::runtime_error("redis-server found no free port in 20 attempts");
}

RedisServer::~RedisServer() {
  if (process_.running()) process_.kill_now();
}

void RedisServer::write_config() {
  std::ofstream conf(dir_.path() / "redis.conf", std::ios::trunc);
  conf << "port " << port_ << "\n"
       << "bind 127.0.0.1\n"
       << "dir " << dir_.path().string() << "\n"
       << "save \"\"\n"
       << "appendonly no\n"
       << "daemonize no\n"
       << "logfile \"\"\n"
       << "databases 16\n"
       // The fixture's own login: tests may lock the default user out.
       << "user " << kAdminUser << " on >" << admin_password_ << " ~* &* +@all\n";
  if (!unix_path_.empty()) {
    conf << "unixsocket " << unix_path_.string() << "\n"
         << "unixsocketperm 700\n";
  }
  for (const std::string& line : options_.extra_config) conf << line << "\n";
}

void RedisServer::launch() {
  std::error_code ignored;
  std::filesystem::remove(dir_.path() / "redis.log", ignored);  // judge each start by its own log
  process_ = ChildProcess::start({"redis-server", (dir_.path() / "redis.conf").string()},
                                 dir_.path() / "redis.log");
}

bool RedisServer::wait_ready(std::chrono::milliseconds timeout) {
  return wait_until(
             [&] {
               if (!process_.running()) return true;  // exited: the caller looks at the log
               try {
                 auto c = client();
                 return c.text({"PING"}) == "PONG";
               } catch (const std::exception&) {
                 return false;
               }
             },
             timeout) &&
         process_.running();
}

std::string RedisServer::url(int db) const {
  return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
}

std::string RedisServer::unix_url(int db) const {
  if (unix_path_.empty()) throw std::logic_error("the server was started without a unix socket");
  return "unix://" + unix_path_.string() + "?db=" + std::to_string(db);
}

RedisClient RedisServer::client() const {
  return RedisClient::tcp("127.0.0.1", port_, kAdminUser, admin_password_);
}

bool RedisServer::running() { return process_.running(); }

void RedisServer::stop(bool keep_data) {
  if (!process_.running()) return;
  try {
    auto c = client();
    c.command({"SHUTDOWN", keep_data ? "SAVE" : "NOSAVE"});  // the connection just closes
  } catch (const std::exception&) {
    // Expected: SHUTDOWN answers by closing the connection.
  }
  if (process_.wait(std::chrono::seconds(20)) == -1) {
    process_.kill_now();
    throw std::runtime_error("redis-server did not shut down");
  }
}

void RedisServer::start() {
  if (process_.running()) return;
  write_config();
  launch();
  if (!wait_ready(std::chrono::seconds(15))) {
    throw std::runtime_error("redis-server did not restart on port " + std::to_string(port_) +
                             ":\n" + log());
  }
}

void RedisServer::restart(bool keep_data) {
  stop(keep_data);
  if (!keep_data) std::filesystem::remove(dir_.path() / "dump.rdb");
  start();
}

void RedisServer::kill() { process_.kill_now(); }

void RedisServer::set_acl_user(const std::string& name, const std::string& password,
                               const std::vector<std::string>& rules) {
  std::vector<std::string> args{"ACL", "SETUSER", name, "reset", "on", ">" + password};
  args.insert(args.end(), rules.begin(), rules.end());
  auto c = client();
  std::string r = c.text(args);
  if (r != "OK") throw std::runtime_error("ACL SETUSER failed: " + r);
}

void RedisServer::require_password(const std::string& password) {
  auto c = client();
  std::string r = c.text({"CONFIG", "SET", "requirepass", password});
  if (r != "OK") throw std::runtime_error("CONFIG SET requirepass failed: " + r);
}

std::string RedisServer::log() const {
  std::ifstream in(dir_.path() / "redis.log");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace prpc::testing
