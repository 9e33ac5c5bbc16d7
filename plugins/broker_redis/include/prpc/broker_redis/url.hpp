// The `url` option of the Redis broker: where Redis listens and how to log in.
//   redis://[[user]:password@]host[:port][/db]
//   unix://[[user]:password@]/path/to/redis.sock[?db=N][&user=U][&password=P]
//   redis+sentinel://[[user]:password@]host:port[,host:port...]/master_name[/db]
//     the sentinels to ask for the current master of `master_name`; the credentials and the
//     database are the master's (sentinels are asked without credentials)
//   redis+cluster://[[user]:password@]host:port[,host:port...]
//     seed nodes of a Redis Cluster: the broker learns the slot map from any of them and talks
//     to every master that owns a slot it needs (a cluster has database 0 only)
// Every scheme takes ?shards=N (1 to 64, default 1): one queue's requests spread over N streams
// (docs/brokers/redis.md, "Spreading one queue"); servers and clients must use the same N.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "prpc/status.hpp"

namespace prpc::redis {

struct RedisUrl {
  bool unix_socket = false;
  std::string host = "localhost";  // TCP only
  std::uint16_t port = 6379;       // TCP only
  std::string path;                // unix socket only
  std::string user;                // empty: the default user (AUTH <password>)
  std::string password;            // empty: no AUTH
  int db = 0;
  // Sentinel mode when not empty: host and port are filled in from the sentinels' answer.
  std::string master_name;
  std::vector<std::pair<std::string, std::uint16_t>> sentinels;

  // Cluster mode when not empty: the seed nodes.
  std::vector<std::pair<std::string, std::uint16_t>> seeds;
  int shards = 1;

  bool sentinel() const { return !master_name.empty(); }
  bool cluster() const { return !seeds.empty(); }
  // The address without credentials, safe to log: "redis://localhost:6379/0",
  // "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0",
  // "redis+cluster://10.0.0.1:7000,10.0.0.2:7000".
  std::string redacted() const;
};

Result<RedisUrl> parse_redis_url(std::string_view text);

}  // namespace prpc::redis
