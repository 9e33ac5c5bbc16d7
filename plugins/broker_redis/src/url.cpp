#include "prpc/broker_redis/url.hpp"

#include <charconv>

namespace prpc::redis {
namespace {

Status bad(std::string_view why) {
  return Status(StatusCode::kInvalidArgument, "invalid Redis URL: " + std::string(why));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Credentials may hold any byte once percent-encoded ("p%40ss" for "p@ss").
Result<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return bad("truncated %-escape");
    int hi = hex_digit(in[i + 1]);
    int lo = hex_digit(in[i + 2]);
    if (hi < 0 || lo < 0) return bad("malformed %-escape");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

Result<int> parse_db(std::string_view text) {
  int db = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), db);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || db < 0) {
    return bad("the database must be a non-negative integer");
  }
  return db;
}

Status apply_userinfo(std::string_view userinfo, RedisUrl* url) {
  auto colon = userinfo.find(':');
  auto user = percent_decode(userinfo.substr(0, colon));
  if (!user.is_ok()) return user.status();
  url->user = std::move(*user);
  if (colon != std::string_view::npos) {
    auto password = percent_decode(userinfo.substr(colon + 1));
    if (!password.is_ok()) return password.status();
    url->password = std::move(*password);
  }
  return Status::ok();
}

Status apply_query(std::string_view query, RedisUrl* url) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    auto value =
        percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!value.is_ok()) return value.status();
    if (key == "db") {
      auto db = parse_db(*value);
      if (!db.is_ok()) return db.status();
      url->db = *db;
    } else if (key == "user" || key == "username") {
      url->user = std::move(*value);
    } else if (key == "password") {
      url->password = std::move(*value);
    } else if (key == "shards") {
      int n = 0;
      auto [p, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
      if (value->empty() || ec != std::errc() || p != value->data() + value->size() || n < 1 ||
          n > 64) {
        return bad("shards must be a number from 1 to 64");
      }
      url->shards = n;
    } else {
      return bad("unknown parameter '" + std::string(key) + "'");
    }
  }
  return Status::ok();
}

Status parse_host_port(std::string_view hostport, RedisUrl* url) {
  std::string_view port_text;
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    url->host = std::string(hostport.substr(1, close - 1));
    std::string_view rest = hostport.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("unexpected text after the IPv6 address");
      port_text = rest.substr(1);
    }
  } else {
    auto colon = hostport.rfind(':');
    if (colon != std::string_view::npos) {
      url->host = std::string(hostport.substr(0, colon));
      port_text = hostport.substr(colon + 1);
    } else {
      url->host = std::string(hostport);
    }
  }
  if (url->host.empty()) url->host = "localhost";
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return bad("the port must be a number from 1 to 65535");
    }
    url->port = static_cast<std::uint16_t>(port);
  }
  return Status::ok();
}

}  // namespace

namespace {

std::string join_addresses(const std::vector<std::pair<std::string, std::uint16_t>>& list) {
  std::string out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& [h, p] = list[i];
    if (i > 0) out += ',';
    out += (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(p);
  }
  return out;
}

std::string address_of(const RedisUrl& url) {
  std::string out;
  if (url.sentinel()) {
    return "redis+sentinel://" + join_addresses(url.sentinels) + "/" + url.master_name + "/" +
           std::to_string(url.db);
  }
  if (url.cluster()) return "redis+cluster://" + join_addresses(url.seeds);
  if (url.unix_socket) {
    out = "unix://" + url.path;
    if (url.db != 0) out += "?db=" + std::to_string(url.db);
    return out;
  }
  bool v6 = url.host.find(':') != std::string::npos;
  out = "redis://" + (v6 ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port) + "/" +
        std::to_string(url.db);
  return out;
}

}  // namespace

std::string RedisUrl::redacted() const {
  std::string out = address_of(*this);
  if (shards > 1)
    out += (unix_socket && db != 0 ? "&shards=" : "?shards=") + std::to_string(shards);
  return out;
}

namespace {

// [credentials@]h:p[,h:p...]: the credentials go to `url`, the addresses to `out`.
Status parse_address_list(std::string_view hosts, std::uint16_t default_port, RedisUrl* url,
                          std::vector<std::pair<std::string, std::uint16_t>>* out) {
  if (auto at = hosts.rfind('@'); at != std::string_view::npos) {
    PRPC_RETURN_IF_ERROR(apply_userinfo(hosts.substr(0, at), url));
    hosts = hosts.substr(at + 1);
  }
  while (true) {
    auto comma = hosts.find(',');
    RedisUrl one;
    one.port = default_port;
    PRPC_RETURN_IF_ERROR(parse_host_port(hosts.substr(0, comma), &one));
    out->emplace_back(one.host, one.port);
    if (comma == std::string_view::npos) break;
    hosts = hosts.substr(comma + 1);
  }
  return Status::ok();
}

// redis+sentinel://[credentials@]h:p[,h:p...]/master_name[/db][?query]
Result<RedisUrl> parse_sentinel_url(std::string_view rest) {
  RedisUrl url;
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  auto slash = rest.find('/');
  if (slash == std::string_view::npos)
    return bad("a Sentinel URL needs /master_name after the sentinels");
  std::string_view hosts = rest.substr(0, slash);
  std::string_view path = rest.substr(slash + 1);
  // 26379: Sentinel's usual port.
  PRPC_RETURN_IF_ERROR(parse_address_list(hosts, 26379, &url, &url.sentinels));
  auto db_slash = path.find('/');
  auto name = percent_decode(path.substr(0, db_slash));
  if (!name.is_ok()) return name.status();
  if (name->empty()) return bad("a Sentinel URL needs the master's name");
  url.master_name = std::move(*name);
  if (db_slash != std::string_view::npos && db_slash + 1 < path.size()) {
    auto parsed = parse_db(path.substr(db_slash + 1));
    if (!parsed.is_ok()) return parsed.status();
    url.db = *parsed;
  }
  PRPC_RETURN_IF_ERROR(apply_query(query, &url));
  // Filled in from the sentinels' answer on every connection.
  url.host.clear();
  url.port = 0;
  return url;
}

// redis+cluster://[credentials@]h:p[,h:p...][/][?query]
Result<RedisUrl> parse_cluster_url(std::string_view rest) {
  RedisUrl url;
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash + 1);
    if (!path.empty() && path != "0") return bad("a Redis Cluster has database 0 only");
    rest = rest.substr(0, slash);
  }
  if (rest.empty()) return bad("a cluster URL needs at least one host:port");
  PRPC_RETURN_IF_ERROR(parse_address_list(rest, 6379, &url, &url.seeds));
  PRPC_RETURN_IF_ERROR(apply_query(query, &url));
  if (url.db != 0) return bad("a Redis Cluster has database 0 only");
  // Each node's address comes from the slot map.
  url.host.clear();
  url.port = 0;
  return url;
}

}  // namespace

Result<RedisUrl> parse_redis_url(std::string_view text) {
  constexpr std::string_view kSentinel = "redis+sentinel://";
  if (text.substr(0, kSentinel.size()) == kSentinel) {
    return parse_sentinel_url(text.substr(kSentinel.size()));
  }
  constexpr std::string_view kCluster = "redis+cluster://";
  if (text.substr(0, kCluster.size()) == kCluster) {
    return parse_cluster_url(text.substr(kCluster.size()));
  }
  RedisUrl url;
  constexpr std::string_view kTcp = "redis://";
  constexpr std::string_view kUnix = "unix://";
  std::string_view rest;
  if (text.substr(0, kTcp.size()) == kTcp) {
    rest = text.substr(kTcp.size());
  } else if (text.substr(0, kUnix.size()) == kUnix) {
    rest = text.substr(kUnix.size());
    url.unix_socket = true;
  } else if (text.substr(0, 9) == "rediss://") {
    return bad(
        "rediss:// (TLS) is not supported: this broker speaks plain TCP; reach a TLS Redis through "
        "a local TLS tunnel such as stunnel and give its redis:// address (docs/security.md)");
  } else {
    return bad("the scheme must be redis://, unix://, redis+sentinel:// or redis+cluster://");
  }

  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  // The last '@' ends the credentials: an unescaped '@' in a password still parses.
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    if (url.unix_socket && rest.substr(0, at).find('/') != std::string_view::npos) {
      return bad("credentials must come before the socket path");
    }
    PRPC_RETURN_IF_ERROR(apply_userinfo(rest.substr(0, at), &url));
    rest = rest.substr(at + 1);
  }

  if (url.unix_socket) {
    if (rest.empty() || rest.front() != '/') return bad("a unix socket path must be absolute");
    auto path = percent_decode(rest);
    if (!path.is_ok()) return path.status();
    url.path = std::move(*path);
  } else {
    auto slash = rest.find('/');
    PRPC_RETURN_IF_ERROR(parse_host_port(rest.substr(0, slash), &url));
    if (slash != std::string_view::npos) {
      std::string_view db = rest.substr(slash + 1);
      if (!db.empty()) {
        auto parsed = parse_db(db);
        if (!parsed.is_ok()) return parsed.status();
        url.db = *parsed;
      }
    }
  }
  PRPC_RETURN_IF_ERROR(apply_query(query, &url));
  return url;
}

}  // namespace prpc::redis
