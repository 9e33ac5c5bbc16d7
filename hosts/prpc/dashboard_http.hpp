// The dashboard's HTTP/1.1 server: Boost.Beast on one Asio loop, no thread per connection, a cap
// on connections, on header and body sizes, and an idle timeout. A handler may answer later
// (from another thread) through its Reply, which hands the response back to the loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "prpc/status.hpp"

namespace prpc::dashboard {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query
  std::string query;   // after '?', undecoded
  std::string host;
  std::string authorization;
  std::string cookie;
  std::string content_type;
  std::string body;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra fields
};

// Call exactly once, from any thread.
using Reply = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(const HttpRequest&, Reply)>;

struct HttpLimits {
  std::size_t max_connections = 64;
  std::size_t max_header_bytes = std::size_t{8} << 10;
  std::size_t max_body_bytes = std::size_t{64} << 10;
  std::uint32_t idle_timeout_s = 30;
};

class HttpServer {
 public:
  // Binds `listen` ("host:port", "[v6]:port"; port 0 picks a free one) and starts accepting.
  static Result<std::shared_ptr<HttpServer>> start(boost::asio::io_context& io,
                                                   std::string_view listen, HttpLimits limits,
                                                   HttpHandler handler);
  virtual ~HttpServer() = default;
  // The bound address as "host:port" ("[v6]:port" for IPv6).
  virtual std::string address() const = 0;
  virtual bool loopback() const = 0;
  // Stops accepting and closes every connection; on the loop's thread.
  virtual void close() = 0;
};

// The value of `name` in a query string ("a=1&b=2"), percent-decoded; empty when absent.
std::string query_value(std::string_view query, std::string_view name);
// The value of cookie `name` in a Cookie header; empty when absent.
std::string cookie_value(std::string_view header, std::string_view name);

}  // namespace prpc::dashboard
