#include "redis_sentinel.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include "redis_info.hpp"

namespace prpc::testing {

struct RedisSentinel::Process {
  int port = 0;
  bool sentinel = false;
  int replica_of = 0;  // for a data node started as a replica
  std::filesystem::path dir;
  ChildProcess process;
};

namespace {

// A RESP2 array of alternating names and values (SENTINEL MASTER, one SENTINEL REPLICAS entry).
std::map<std::string, std::string> field_map(const redisReply* r) {
  std::map<std::string, std::string> out;
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return out;
  for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply* k = r->element[i];
    const redisReply* v = r->element[i + 1];
    if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING) {
      out[std::string(k->str, k->len)] = std::string(v->str, v->len);
    }
  }
  return out;
}

}  // namespace

RedisSentinel::RedisSentinel(RedisSentinelOptions options) : options_(std::move(options)) {
  std::set<int> taken;
  auto start = [&](bool sentinel, int replica_of, int index) {
    auto p = std::make_unique<Process>();
    p->sentinel = sentinel;
    p->replica_of = replica_of;
    p->dir = dir_.path() / ((sentinel ? "sentinel" : "node") + std::to_string(index));
    std::filesystem::create_directories(p->dir);
    // A free port may be taken again before Redis binds it: retry then.
    for (int attempt = 0; attempt < 20; ++attempt) {
      p->port = free_port();
      if (taken.count(p->port) != 0) continue;
      write_config(*p);
      if (launch(*p)) {
        taken.insert(p->port);
        return p;
      }
    }
    throw std::runtime_error("Redis Sentinel: no free port in 20 attempts");
  };
  data_.push_back(start(false, 0, 0));
  initial_master_port_ = data_.front()->port;
  for (int i = 1; i <= options_.replicas; ++i) {
    data_.push_back(start(false, initial_master_port_, i));
  }
  for (int i = 0; i < options_.sentinels; ++i) sentinels_.push_back(start(true, 0, i));
  if (!wait_until([this] { return readiness_problem().empty(); }, std::chrono::seconds(60),
                  std::chrono::milliseconds(50))) {
    throw std::runtime_error("Redis Sentinel is not ready: " + readiness_problem());
  }
}

RedisSentinel::~RedisSentinel() {
  for (auto& s : sentinels_) s->process.kill_now();
  for (auto& d : data_) d->process.kill_now();
}

void RedisSentinel::write_config(const Process& p) const {
  std::ofstream conf(p.dir / "redis.conf", std::ios::trunc);
  conf << "port " << p.port << "\n"
       << "bind 127.0.0.1\n"
       << "dir " << p.dir.string() << "\n"
       << "daemonize no\n"
       << "logfile \"\"\n";
  if (p.sentinel) {
    const std::string& name = options_.master_name;
    conf << "sentinel monitor " << name << " 127.0.0.1 " << initial_master_port_ << " "
         << options_.quorum << "\n"
         << "sentinel down-after-milliseconds " << name << " " << options_.down_after_ms << "\n"
         << "sentinel failover-timeout " << name << " " << options_.failover_timeout_ms << "\n"
         << "sentinel parallel-syncs " << name << " 1\n";
    return;
  }
  conf << "save \"\"\n"
       << "appendonly no\n"
       // Replicas sync at once rather than after the default 5 s wait for more replicas.
       << "repl-diskless-sync-delay 0\n";
  if (p.replica_of != 0) conf << "replicaof 127.0.0.1 " << p.replica_of << "\n";
  for (const std::string& line : options_.extra_config) conf << line << "\n";
}

bool RedisSentinel::launch(Process& p) {
  // The config is written once: the sentinels rewrite theirs, and CONFIG REWRITE a data node's
  // after making it a replica, and a restart must keep what they wrote.
  std::vector<std::string> argv{"redis-server", (p.dir / "redis.conf").string()};
  if (p.sentinel) argv.emplace_back("--sentinel");
  const auto log_file = p.dir / "redis.log";
  const auto log_size =
      std::filesystem::exists(log_file) ? std::filesystem::file_size(log_file) : 0;
  p.process = ChildProcess::start(argv, log_file);
  bool up = wait_until(
      [&] {
        if (!p.process.running()) return true;
        try {
          return client(p.port).text({"PING"}) == "PONG";
        } catch (const std::exception&) {
          return false;
        }
      },
      std::chrono::seconds(15));
  if (up && p.process.running()) return true;
  p.process.kill_now();
  std::string output = read_text_file(log_file).substr(static_cast<std::size_t>(log_size));
  if (output.find("Address already in use") != std::string::npos) return false;
  throw std::runtime_error("redis-server" + std::string(p.sentinel ? " --sentinel" : "") +
                           " did not start on port " + std::to_string(p.port) + ":\n" + output);
}

RedisSentinel::Process& RedisSentinel::find(int port) {
  for (auto* list : {&data_, &sentinels_}) {
    for (auto& p : *list) {
      if (p->port == port) return *p;
    }
  }
  throw std::invalid_argument("no Redis process on port " + std::to_string(port));
}

const RedisSentinel::Process& RedisSentinel::find(int port) const {
  for (const auto* list : {&data_, &sentinels_}) {
    for (const auto& p : *list) {
      if (p->port == port) return *p;
    }
  }
  throw std::invalid_argument("no Redis process on port " + std::to_string(port));
}

std::string RedisSentinel::readiness_problem() {
  for (auto& s : sentinels_) {
    const std::string who = "sentinel " + std::to_string(s->port) + ": ";
    try {
      auto c = sentinel_client(s->port);
      auto master = field_map(c.command({"SENTINEL", "MASTER", options_.master_name}).get());
      if (master["flags"] != "master") return who + "master flags are '" + master["flags"] + "'";
      if (master["num-other-sentinels"] != std::to_string(options_.sentinels - 1)) {
        return who + "knows " + master["num-other-sentinels"] + " other sentinels";
      }
      auto replicas = c.command({"SENTINEL", "REPLICAS", options_.master_name});
      int healthy = 0;
      for (std::size_t i = 0; replicas->type == REDIS_REPLY_ARRAY && i < replicas->elements; ++i) {
        auto r = field_map(replicas->element[i]);
        if (r["flags"] == "slave" && r["master-link-status"] == "ok") ++healthy;
      }
      if (healthy < options_.replicas) {
        return who + "sees " + std::to_string(healthy) + " healthy replicas";
      }
    } catch (const std::exception& e) {
      return who + e.what();
    }
  }
  return {};
}

// ---- addresses --------------------------------------------------------------------------------

std::vector<int> RedisSentinel::sentinel_ports() const {
  std::vector<int> out;
  for (const auto& s : sentinels_) out.push_back(s->port);
  return out;
}

std::vector<std::string> RedisSentinel::sentinel_addresses() const {
  std::vector<std::string> out;
  for (const auto& s : sentinels_) out.push_back("127.0.0.1:" + std::to_string(s->port));
  return out;
}

std::string RedisSentinel::url(int db) const {
  std::string out = "redis+sentinel://";
  auto a = sentinel_addresses();
  for (std::size_t i = 0; i < a.size(); ++i) out += (i == 0 ? "" : ",") + a[i];
  return out + "/" + options_.master_name + "/" + std::to_string(db);
}

std::vector<int> RedisSentinel::data_ports() const {
  std::vector<int> out;
  for (const auto& d : data_) out.push_back(d->port);
  return out;
}

RedisClient RedisSentinel::client(int port) const { return RedisClient::tcp("127.0.0.1", port); }

RedisClient RedisSentinel::sentinel_client(int sentinel_port) const {
  return RedisClient::tcp("127.0.0.1", sentinel_port);
}

std::vector<int> RedisSentinel::master_port_per_sentinel() {
  std::vector<int> out;
  for (auto& s : sentinels_) {
    int port = -1;
    try {
      if (s->process.running()) {
        auto r = sentinel_client(s->port).command(
            {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", options_.master_name});
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
          port = std::stoi(std::string(r->element[1]->str, r->element[1]->len));
        }
      }
    } catch (const std::exception&) {
      port = -1;
    }
    out.push_back(port);
  }
  return out;
}

int RedisSentinel::master_port() {
  for (int p : master_port_per_sentinel()) {
    if (p != -1) return p;
  }
  throw std::runtime_error("no sentinel names a master for " + options_.master_name);
}

// ---- faults -----------------------------------------------------------------------------------

bool RedisSentinel::running(int port) { return find(port).process.running(); }

void RedisSentinel::kill(int port) { find(port).process.kill_now(); }

int RedisSentinel::kill_master(std::chrono::milliseconds timeout) {
  const int old_master = master_port();
  kill(old_master);
  int promoted = -1;
  bool done = wait_until(
      [&] {
        auto named = master_port_per_sentinel();
        promoted = -1;
        for (std::size_t i = 0; i < named.size(); ++i) {
          if (!sentinels_[i]->process.running()) continue;
          if (named[i] == -1 || named[i] == old_master) return false;
          if (promoted != -1 && named[i] != promoted) return false;
          promoted = named[i];
        }
        if (promoted == -1) return false;
        try {
          return info_field(client(promoted).text({"INFO", "replication"}), "role") == "master";
        } catch (const std::exception&) {
          return false;
        }
      },
      timeout, std::chrono::milliseconds(50));
  if (!done) {
    throw std::runtime_error("the sentinels did not replace the master on port " +
                             std::to_string(old_master) + ": " + readiness_problem());
  }
  return promoted;
}

void RedisSentinel::restart(int port, std::chrono::milliseconds timeout) {
  Process& p = find(port);
  if (p.process.running()) return;
  if (!launch(p)) throw std::runtime_error("port " + std::to_string(port) + " is taken now");
  if (p.sentinel) return;
  bool rejoined = wait_until(
      [&] {
        try {
          int master = master_port();
          if (master == port) return true;  // it was never replaced
          std::string repl = client(port).text({"INFO", "replication"});
          if (info_field(repl, "role") != "slave" ||
              info_field(repl, "master_port") != std::to_string(master) ||
              info_field(repl, "master_link_status") != "up") {
            return false;
          }
          for (auto& s : sentinels_) {
            auto list =
                sentinel_client(s->port).command({"SENTINEL", "REPLICAS", options_.master_name});
            bool listed = false;
            for (std::size_t i = 0; list->type == REDIS_REPLY_ARRAY && i < list->elements; ++i) {
              auto r = field_map(list->element[i]);
              listed = listed || (r["port"] == std::to_string(port) && r["flags"] == "slave");
            }
            if (!listed) return false;
          }
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      timeout, std::chrono::milliseconds(50));
  if (!rejoined) {
    throw std::runtime_error("the node on port " + std::to_string(port) +
                             " did not rejoin as a replica:\n" + log(port));
  }
}

std::string RedisSentinel::log(int port) const {
  return read_text_file(find(port).dir / "redis.log");
}

}  // namespace prpc::testing
