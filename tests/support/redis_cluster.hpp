// Test support: a real Redis Cluster (Debian's redis-server with `cluster-enabled yes`, joined
// by `redis-cli --cluster create`) on free loopback ports, with the faults the failover tests
// need: SIGKILL a node and wait for its replica's promotion, restart a node, move slots.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "process.hpp"
#include "redis_server.hpp"

namespace prpc::testing {

// The cluster hash slot of a key: CRC16 (XMODEM) of the key, or of the part between the first
// '{' and the next '}' when that part is not empty, modulo 16384.
int redis_key_slot(std::string_view key);

constexpr int kRedisClusterSlots = 16384;

struct RedisClusterOptions {
  int masters = 3;
  int replicas_per_master = 1;
  // Small, so a killed master is declared failed and replaced within a few seconds.
  int node_timeout_ms = 1000;
  std::string password;                   // requirepass and masterauth on every node
  std::vector<std::string> extra_config;  // more redis.conf lines for every node
};

// One node as CLUSTER NODES describes it.
struct RedisClusterNodeInfo {
  std::string id;
  int port = 0;
  bool master = false;
  bool failed = false;                     // flagged fail (or pfail) by the node asked
  std::string master_id;                   // for a replica
  std::vector<std::pair<int, int>> slots;  // inclusive ranges, for a master
};

class RedisCluster {
 public:
  // Starts the nodes, creates the cluster and waits until it is healthy (see healthy()).
  explicit RedisCluster(RedisClusterOptions options = {});
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Every node's port, in start order (the first `masters` were created as masters).
  std::vector<int> ports() const;
  // "127.0.0.1:port" for every node.
  std::vector<std::string> seeds() const;
  // redis+cluster://[:password@]127.0.0.1:p1,127.0.0.1:p2,... (every node as a seed).
  std::string url() const;
  const std::string& password() const { return options_.password; }

  // A blocking connection to one node (logged in when the cluster has a password).
  RedisClient client(int port) const;
  // The topology as a live node sees it.
  std::vector<RedisClusterNodeInfo> nodes();
  std::string node_id(int port);
  // Ports of the live masters that serve slots.
  std::vector<int> masters();
  // Ports of the replicas of a master (as a live node sees them, failed ones included).
  std::vector<int> replicas_of(int master_port);
  // The port of the master that serves a slot / a key's slot now.
  int owner_of_slot(int slot);
  int owner_of_key(std::string_view key);

  bool running(int port);
  // SIGKILL: no goodbye, nothing saved.
  void kill(int port);
  // Waits until the slots `killed_port` served are served by one of its former replicas and the
  // cluster is healthy again; returns that replica's port. Throws on timeout.
  int wait_for_failover(int killed_port,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // kill() then wait_for_failover(): the port of the promoted replica.
  int kill_master(int port, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Starts a stopped node again with its own nodes.conf (a former master rejoins as a replica of
  // whoever took its slots) and waits until the cluster is healthy.
  void restart(int port, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Moves one slot, with its keys, to another master by hand (SETSLOT IMPORTING/MIGRATING,
  // MIGRATE ... REPLACE KEYS, SETSLOT NODE), the way redis-cli does it; clients see ASK while it
  // runs. Waits until every node agrees on the new owner.
  void migrate_slot(int slot, int to_port);
  // `redis-cli --cluster reshard`: moves `slots` slots (the source's lowest) from one master to
  // another. Waits until every node agrees.
  void reshard(int from_port, int to_port, int slots);

  // Every live node says cluster_state:ok with all 16384 slots ok and knows every node, sees no
  // running node as failed, sees the same slot owners and roles as the others, and every live
  // replica's link to its master is up.
  bool healthy();
  void wait_healthy(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  std::string log(int port) const;

 private:
  struct Node;
  Node& node(int port);
  const Node& node(int port) const;
  void write_config(const Node& n) const;
  bool launch(Node& n);
  int live_port();
  std::vector<std::string> cli_auth() const;
  // Why the cluster is not healthy (empty when it is).
  std::string health_problem();

  RedisClusterOptions options_;
  TempDir dir_{"prpc-redis-cluster"};
  std::vector<std::unique_ptr<Node>> nodes_;
};

}  // namespace prpc::testing
