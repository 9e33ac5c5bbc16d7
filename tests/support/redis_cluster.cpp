#include "redis_cluster.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "redis_info.hpp"

namespace prpc::testing {

int redis_key_slot(std::string_view key) {
  auto open = key.find('{');
  if (open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  std::uint16_t crc = 0;  // CRC16/XMODEM: polynomial 0x1021, initial value 0
  for (char ch : key) {
    crc = static_cast<std::uint16_t>(crc ^ (static_cast<std::uint8_t>(ch) << 8));
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc % kRedisClusterSlots;
}

struct RedisCluster::Node {
  int port = 0;
  int bus_port = 0;
  std::filesystem::path dir;
  ChildProcess process;
  // What the node served when it was killed, for wait_for_failover().
  std::vector<std::pair<int, int>> slots_at_kill;
  std::vector<int> replicas_at_kill;
};

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::vector<RedisClusterNodeInfo> parse_cluster_nodes(const std::string& text) {
  std::vector<RedisClusterNodeInfo> out;
  std::stringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    auto f = split(line, ' ');
    if (f.size() < 8) continue;
    RedisClusterNodeInfo n;
    n.id = f[0];
    // ip:port@cport[,hostname]
    const std::string& addr = f[1];
    auto at = addr.find('@');
    auto colon = addr.rfind(':', at);
    if (colon == std::string::npos) continue;
    n.port = std::stoi(addr.substr(colon + 1, at - colon - 1));
    for (const std::string& flag : split(f[2], ',')) {
      if (flag == "master") n.master = true;
      if (flag == "fail" || flag == "fail?") n.failed = true;
    }
    if (f[3] != "-") n.master_id = f[3];
    for (std::size_t i = 8; i < f.size(); ++i) {
      if (f[i].front() == '[') continue;  // a slot being imported or migrated
      auto dash = f[i].find('-');
      int lo = std::stoi(f[i].substr(0, dash));
      int hi = dash == std::string::npos ? lo : std::stoi(f[i].substr(dash + 1));
      n.slots.emplace_back(lo, hi);
    }
    out.push_back(std::move(n));
  }
  return out;
}

bool owns(const RedisClusterNodeInfo& n, int slot) {
  return std::any_of(n.slots.begin(), n.slots.end(),
                     [slot](const auto& r) { return r.first <= slot && slot <= r.second; });
}

}  // namespace

// ---- life cycle -------------------------------------------------------------------------------

RedisCluster::RedisCluster(RedisClusterOptions options) : options_(std::move(options)) {
  if (options_.masters < 3) throw std::invalid_argument("a Redis Cluster needs 3 masters");
  const int count = options_.masters * (1 + options_.replicas_per_master);
  std::set<int> taken;
  auto fresh_port = [&taken] {
    int p = free_port();
    while (taken.count(p) != 0) p = free_port();
    taken.insert(p);
    return p;
  };
  for (int i = 0; i < count; ++i) {
    auto n = std::make_unique<Node>();
    n->dir = dir_.path() / ("node" + std::to_string(i));
    std::filesystem::create_directories(n->dir);
    bool started = false;
    // A free port may be taken again before Redis binds it (its bus port too): retry then.
    for (int attempt = 0; attempt < 20 && !started; ++attempt) {
      n->port = fresh_port();
      n->bus_port = fresh_port();
      started = launch(*n);
    }
    if (!started) throw std::runtime_error("Redis Cluster: no free ports in 20 attempts");
    nodes_.push_back(std::move(n));
  }
  std::vector<std::string> argv{"redis-cli"};
  for (const auto& a : cli_auth()) argv.push_back(a);
  argv.insert(argv.end(), {"--cluster", "create"});
  for (const auto& s : seeds()) argv.push_back(s);
  argv.insert(argv.end(), {"--cluster-replicas", std::to_string(options_.replicas_per_master),
                           "--cluster-yes"});
  auto created = run_program(argv, dir_.path() / "create.log", std::chrono::seconds(60));
  if (created.exit_code != 0) {
    throw std::runtime_error("redis-cli --cluster create failed (" +
                             std::to_string(created.exit_code) + "):\n" + created.output);
  }
  // redis-cli returns once the masters agree; the replicas' roles spread by gossip after that.
  auto topology_problem = [this]() -> std::string {
    std::string why = health_problem();
    if (!why.empty()) return why;
    std::size_t masters = 0;
    std::size_t replicas = 0;
    for (const auto& n : nodes()) {
      masters += n.master && !n.slots.empty() ? 1u : 0u;
      replicas += n.master ? 0u : 1u;
    }
    if (masters != static_cast<std::size_t>(options_.masters) ||
        replicas != static_cast<std::size_t>(options_.masters * options_.replicas_per_master)) {
      return std::to_string(masters) + " masters and " + std::to_string(replicas) + " replicas";
    }
    return {};
  };
  if (!wait_until([&] { return topology_problem().empty(); }, std::chrono::seconds(60),
                  std::chrono::milliseconds(50))) {
    throw std::runtime_error("the Redis Cluster did not form: " + topology_problem());
  }
}

RedisCluster::~RedisCluster() {
  for (auto& n : nodes_) n->process.kill_now();
}

void RedisCluster::write_config(const Node& n) const {
  std::ofstream conf(n.dir / "redis.conf", std::ios::trunc);
  conf << "port " << n.port << "\n"
       << "cluster-port " << n.bus_port << "\n"  // not port+10000, which may be taken or > 65535
       << "bind 127.0.0.1\n"
       << "dir " << n.dir.string() << "\n"
       << "save \"\"\n"
       << "appendonly no\n"
       << "daemonize no\n"
       << "logfile \"\"\n"
       << "cluster-enabled yes\n"
       << "cluster-config-file nodes.conf\n"
       << "cluster-node-timeout " << options_.node_timeout_ms
       << "\n"
       // A replica may always take over, however long its link to the master was down.
       << "cluster-replica-validity-factor 0\n"
       // Replicas sync at once rather than after the default 5 s wait for more replicas.
       << "repl-diskless-sync-delay 0\n";
  if (!options_.password.empty()) {
    conf << "requirepass " << options_.password << "\n"
         << "masterauth " << options_.password << "\n";
  }
  for (const std::string& line : options_.extra_config) conf << line << "\n";
}

bool RedisCluster::launch(Node& n) {
  write_config(n);
  const auto log_file = n.dir / "redis.log";
  const auto log_size =
      std::filesystem::exists(log_file) ? std::filesystem::file_size(log_file) : 0;
  n.process = ChildProcess::start({"redis-server", (n.dir / "redis.conf").string()}, log_file);
  bool up = wait_until(
      [&] {
        if (!n.process.running()) return true;
        try {
          return client(n.port).text({"PING"}) == "PONG";
        } catch (const std::exception&) {
          return false;
        }
      },
      std::chrono::seconds(15));
  if (up && n.process.running()) return true;
  n.process.kill_now();
  std::string output = read_text_file(log_file).substr(static_cast<std::size_t>(log_size));
  if (output.find("Address already in use") != std::string::npos) return false;
  throw std::runtime_error("redis-server (cluster node on port " + std::to_string(n.port) +
                           ") did not start:\n" + output);
}

std::vector<std::string> RedisCluster::cli_auth() const {
  if (options_.password.empty()) return {};
  return {"-a", options_.password, "--no-auth-warning"};
}

RedisCluster::Node& RedisCluster::node(int port) {
  for (auto& n : nodes_) {
    if (n->port == port) return *n;
  }
  throw std::invalid_argument("no cluster node on port " + std::to_string(port));
}

const RedisCluster::Node& RedisCluster::node(int port) const {
  for (const auto& n : nodes_) {
    if (n->port == port) return *n;
  }
  throw std::invalid_argument("no cluster node on port " + std::to_string(port));
}

// ---- addresses and topology -------------------------------------------------------------------

std::vector<int> RedisCluster::ports() const {
  std::vector<int> out;
  for (const auto& n : nodes_) out.push_back(n->port);
  return out;
}

std::vector<std::string> RedisCluster::seeds() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_) out.push_back("127.0.0.1:" + std::to_string(n->port));
  return out;
}

std::string RedisCluster::url() const {
  std::string out = "redis+cluster://";
  if (!options_.password.empty()) out += ":" + options_.password + "@";
  auto s = seeds();
  for (std::size_t i = 0; i < s.size(); ++i) out += (i == 0 ? "" : ",") + s[i];
  return out;
}

RedisClient RedisCluster::client(int port) const {
  return RedisClient::tcp("127.0.0.1", port, {}, options_.password);
}

int RedisCluster::live_port() {
  for (auto& n : nodes_) {
    if (n->process.running()) return n->port;
  }
  throw std::runtime_error("no cluster node is running");
}

std::vector<RedisClusterNodeInfo> RedisCluster::nodes() {
  return parse_cluster_nodes(client(live_port()).text({"CLUSTER", "NODES"}));
}

std::string RedisCluster::node_id(int port) { return client(port).text({"CLUSTER", "MYID"}); }

std::vector<int> RedisCluster::masters() {
  std::vector<int> out;
  for (const auto& n : nodes()) {
    if (n.master && !n.failed && !n.slots.empty() && node(n.port).process.running()) {
      out.push_back(n.port);
    }
  }
  return out;
}

std::vector<int> RedisCluster::replicas_of(int master_port) {
  auto all = nodes();
  std::string id;
  for (const auto& n : all) {
    if (n.port == master_port) id = n.id;
  }
  std::vector<int> out;
  for (const auto& n : all) {
    if (!id.empty() && n.master_id == id) out.push_back(n.port);
  }
  return out;
}

int RedisCluster::owner_of_slot(int slot) {
  for (const auto& n : nodes()) {
    if (n.master && !n.failed && owns(n, slot)) return n.port;
  }
  throw std::runtime_error("no live master serves slot " + std::to_string(slot));
}

int RedisCluster::owner_of_key(std::string_view key) { return owner_of_slot(redis_key_slot(key)); }

// ---- faults -----------------------------------------------------------------------------------

bool RedisCluster::running(int port) { return node(port).process.running(); }

void RedisCluster::kill(int port) {
  Node& n = node(port);
  n.slots_at_kill.clear();
  n.replicas_at_kill.clear();
  for (const auto& info : nodes()) {
    if (info.port == port && info.master) n.slots_at_kill = info.slots;
  }
  if (!n.slots_at_kill.empty()) n.replicas_at_kill = replicas_of(port);
  n.process.kill_now();
}

int RedisCluster::wait_for_failover(int killed_port, std::chrono::milliseconds timeout) {
  Node& killed = node(killed_port);
  if (killed.slots_at_kill.empty()) {
    throw std::logic_error("the node on port " + std::to_string(killed_port) +
                           " served no slots when it was killed");
  }
  const int slot = killed.slots_at_kill.front().first;
  int promoted = -1;
  bool done = wait_until(
      [&] {
        try {
          for (int p : killed.replicas_at_kill) {
            if (!node(p).process.running()) continue;
            auto view = parse_cluster_nodes(client(p).text({"CLUSTER", "NODES"}));
            for (const auto& n : view) {
              if (n.port == p && n.master && owns(n, slot)) promoted = p;
            }
          }
          return promoted != -1 && health_problem().empty();
        } catch (const std::exception&) {
          return false;
        }
      },
      timeout, std::chrono::milliseconds(50));
  if (!done) {
    throw std::runtime_error("no replica of the node on port " + std::to_string(killed_port) +
                             " took over slot " + std::to_string(slot) + ": " + health_problem());
  }
  return promoted;
}

int RedisCluster::kill_master(int port, std::chrono::milliseconds timeout) {
  kill(port);
  return wait_for_failover(port, timeout);
}

void RedisCluster::restart(int port, std::chrono::milliseconds timeout) {
  Node& n = node(port);
  if (n.process.running()) return;
  if (!launch(n)) {
    throw std::runtime_error("cluster node port " + std::to_string(port) + " is taken now");
  }
  wait_healthy(timeout);
}

// ---- slots ------------------------------------------------------------------------------------

void RedisCluster::migrate_slot(int slot, int to_port) {
  const int from_port = owner_of_slot(slot);
  if (from_port == to_port) return;
  const std::string from_id = node_id(from_port);
  const std::string to_id = node_id(to_port);
  const std::string s = std::to_string(slot);
  auto from = client(from_port);
  auto to = client(to_port);
  auto expect_ok = [](const std::string& what, const std::string& reply) {
    if (reply != "OK") throw std::runtime_error(what + ": " + reply);
  };
  expect_ok("SETSLOT IMPORTING", to.text({"CLUSTER", "SETSLOT", s, "IMPORTING", from_id}));
  expect_ok("SETSLOT MIGRATING", from.text({"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}));
  while (true) {
    auto keys = from.command({"CLUSTER", "GETKEYSINSLOT", s, "100"});
    if (keys->type != REDIS_REPLY_ARRAY) throw std::runtime_error("GETKEYSINSLOT failed");
    if (keys->elements == 0) break;
    // REPLACE: a key that still exists here is the current one, whatever the target has.
    std::vector<std::string> argv{"MIGRATE", "127.0.0.1", std::to_string(to_port), "", "0",
                                  "10000",   "REPLACE"};
    if (!options_.password.empty()) argv.insert(argv.end(), {"AUTH", options_.password});
    argv.emplace_back("KEYS");
    for (std::size_t i = 0; i < keys->elements; ++i) {
      argv.emplace_back(keys->element[i]->str, keys->element[i]->len);
    }
    std::string reply = from.text(argv);
    if (reply != "OK" && reply != "NOKEY") throw std::runtime_error("MIGRATE: " + reply);
  }
  // The target first, so the slot is never without an owner that accepts it.
  expect_ok("SETSLOT NODE (target)", to.text({"CLUSTER", "SETSLOT", s, "NODE", to_id}));
  expect_ok("SETSLOT NODE (source)", from.text({"CLUSTER", "SETSLOT", s, "NODE", to_id}));
  for (int p : masters()) {
    if (p != from_port && p != to_port) client(p).text({"CLUSTER", "SETSLOT", s, "NODE", to_id});
  }
  wait_healthy();
}

void RedisCluster::reshard(int from_port, int to_port, int slots) {
  std::vector<std::string> argv{"redis-cli"};
  for (const auto& a : cli_auth()) argv.push_back(a);
  argv.insert(argv.end(), {"--cluster", "reshard", "127.0.0.1:" + std::to_string(from_port),
                           "--cluster-from", node_id(from_port), "--cluster-to", node_id(to_port),
                           "--cluster-slots", std::to_string(slots), "--cluster-yes"});
  auto r = run_program(argv, dir_.path() / "reshard.log", std::chrono::seconds(120));
  if (r.exit_code != 0) {
    throw std::runtime_error("redis-cli --cluster reshard failed (" + std::to_string(r.exit_code) +
                             "):\n" + r.output);
  }
  wait_healthy();
}

// ---- health -----------------------------------------------------------------------------------

std::string RedisCluster::health_problem() {
  std::string agreed;
  bool first = true;
  for (auto& n : nodes_) {
    if (!n->process.running()) continue;
    const std::string who = "node " + std::to_string(n->port) + ": ";
    try {
      auto c = client(n->port);
      std::string info = c.text({"CLUSTER", "INFO"});
      if (info_field(info, "cluster_state") != "ok") return who + "cluster_state is not ok";
      if (info_field(info, "cluster_slots_ok") != std::to_string(kRedisClusterSlots)) {
        return who + "cluster_slots_ok is " + info_field(info, "cluster_slots_ok");
      }
      if (info_field(info, "cluster_known_nodes") != std::to_string(nodes_.size())) {
        return who + "knows " + info_field(info, "cluster_known_nodes") + " nodes";
      }
      // Who serves which slots and who replicates whom, as this node sees it.
      std::vector<std::string> owners;
      for (const auto& v : parse_cluster_nodes(c.text({"CLUSTER", "NODES"}))) {
        if (v.failed && node(v.port).process.running()) {
          return who + "still sees the running node " + std::to_string(v.port) + " as failed";
        }
        if (v.failed) continue;
        std::string entry = v.id + (v.master ? " master" : " replica of " + v.master_id);
        for (const auto& [lo, hi] : v.slots) {
          entry += " " + std::to_string(lo) + "-" + std::to_string(hi);
        }
        owners.push_back(entry);
      }
      std::sort(owners.begin(), owners.end());
      std::string digest;
      for (const auto& o : owners) digest += o + ";";
      if (first) {
        agreed = digest;
        first = false;
      } else if (digest != agreed) {
        return who + "sees other slot owners or roles than the first node";
      }
      std::string repl = c.text({"INFO", "replication"});
      if (info_field(repl, "role") == "slave" && info_field(repl, "master_link_status") != "up") {
        return who + "replica whose link to its master is down";
      }
    } catch (const std::exception& e) {
      return who + e.what();
    }
  }
  return first ? "no node is running" : "";
}

bool RedisCluster::healthy() { return health_problem().empty(); }

void RedisCluster::wait_healthy(std::chrono::milliseconds timeout) {
  if (!wait_until([this] { return healthy(); }, timeout, std::chrono::milliseconds(50))) {
    throw std::runtime_error("the Redis Cluster is not healthy: " + health_problem());
  }
}

std::string RedisCluster::log(int port) const {
  return read_text_file(node(port).dir / "redis.log");
}

}  // namespace prpc::testing
