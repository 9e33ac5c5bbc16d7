// The `url` option of the Redis broker: where Redis listens and how to log in.
//   redis://[[user]:password@]host[:port][/db]
//   unix://[[user]:password@]/path/to/redis.sock[?db=N][&user=U][&password=P]
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

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

  // The address without credentials, safe to log: "redis://localhost:6379/0".
  std::string redacted() const;
};

Result<RedisUrl> parse_redis_url(std::string_view text);

}  // namespace prpc::redis
