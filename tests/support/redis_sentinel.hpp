// Test support: Redis Sentinel on free loopback ports: a master, its replicas and three
// sentinels (`redis-server --sentinel`) watching it under one master name, with a failover
// (SIGKILL the master, wait until the sentinels name the promoted replica).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "process.hpp"
#include "redis_server.hpp"

namespace prpc::testing {

struct RedisSentinelOptions {
  std::string master_name = "mymaster";
  int replicas = 1;
  int sentinels = 3;
  int quorum = 2;
  // Small, so a killed master is replaced within a few seconds.
  int down_after_ms = 1000;
  int failover_timeout_ms = 2000;
  std::vector<std::string> extra_config;  // more redis.conf lines for the data nodes
};

class RedisSentinel {
 public:
  // Starts the data nodes and the sentinels, and waits until every sentinel knows the master,
  // its replicas and the other sentinels (what a failover needs).
  explicit RedisSentinel(RedisSentinelOptions options = {});
  ~RedisSentinel();
  RedisSentinel(const RedisSentinel&) = delete;
  RedisSentinel& operator=(const RedisSentinel&) = delete;

  const std::string& master_name() const { return options_.master_name; }
  // "127.0.0.1:port" of every sentinel.
  std::vector<std::string> sentinel_addresses() const;
  std::vector<int> sentinel_ports() const;
  // redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/<master_name>/<db>
  std::string url(int db = 0) const;
  // Ports of the data nodes (the first one started as the master).
  std::vector<int> data_ports() const;

  // The master's port as the first answering sentinel names it.
  int master_port();
  // The master's port per sentinel (-1 where a sentinel does not answer).
  std::vector<int> master_port_per_sentinel();
  RedisClient client(int port) const;
  RedisClient sentinel_client(int sentinel_port) const;

  bool running(int port);
  // SIGKILL one data node.
  void kill(int port);
  // SIGKILLs the current master and waits until every sentinel names another data node as the
  // master and that node says role:master; returns its port. Throws on timeout.
  int kill_master(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Starts a killed data node again; the sentinels turn it into a replica of the current master.
  // Waits until its replication link is up and the sentinels list it as a replica.
  void restart(int port, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  std::string log(int port) const;

 private:
  struct Process;
  Process& find(int port);
  const Process& find(int port) const;
  bool launch(Process& p);
  void write_config(const Process& p) const;
  // Why the set-up is not ready for a failover (empty when it is).
  std::string readiness_problem();

  RedisSentinelOptions options_;
  TempDir dir_{"prpc-redis-sentinel"};
  int initial_master_port_ = 0;
  std::vector<std::unique_ptr<Process>> data_;
  std::vector<std::unique_ptr<Process>> sentinels_;
};

}  // namespace prpc::testing
