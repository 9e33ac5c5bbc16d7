#include "dashboard_http.hpp"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <optional>
#include <set>

namespace prpc::dashboard {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

class Server;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::weak_ptr<Server> owner, const HttpLimits& limits)
      : stream_(std::move(socket)), owner_(std::move(owner)), limits_(limits) {}

  void read();
  void close() {
    boost::system::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void dispatch();
  void write(HttpResponse r);
  void done();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::weak_ptr<Server> owner_;
  HttpLimits limits_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
};

class Server : public HttpServer, public std::enable_shared_from_this<Server> {
 public:
  Server(asio::io_context& io, HttpLimits limits, HttpHandler handler)
      : acceptor_(io), limits_(limits), handler_(std::move(handler)) {}

  Status open(const tcp::endpoint& at) {
    boost::system::error_code ec;
    acceptor_.open(at.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(at, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status(StatusCode::kUnavailable, ec.message());
    bound_ = acceptor_.local_endpoint(ec);
    return Status::ok();
  }

  void accept() {
    acceptor_.async_accept(
        [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
          if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
          if (!ec) {
            if (self->connections_.size() >= self->limits_.max_connections) {
              boost::system::error_code ignored;
              socket.close(ignored);  // over the cap: refuse rather than queue without bound
            } else {
              auto c = std::make_shared<Connection>(std::move(socket), self, self->limits_);
              self->connections_.insert(c);
              c->read();
            }
          }
          self->accept();
        });
  }

  std::string address() const override {
    std::string host = bound_.address().to_string();
    if (bound_.address().is_v6()) host = "[" + host + "]";
    return host + ":" + std::to_string(bound_.port());
  }
  bool loopback() const override { return bound_.address().is_loopback(); }

  void close() override {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    auto all = std::move(connections_);
    connections_.clear();
    for (const auto& c : all) c->close();
  }

  void handle(const HttpRequest& request, Reply reply) { handler_(request, std::move(reply)); }
  void forget(const std::shared_ptr<Connection>& c) { connections_.erase(c); }

 private:
  tcp::acceptor acceptor_;
  HttpLimits limits_;
  HttpHandler handler_;
  tcp::endpoint bound_;
  std::set<std::shared_ptr<Connection>> connections_;
};

void Connection::read() {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
  parser_->body_limit(limits_.max_body_bytes);
  stream_.expires_after(std::chrono::seconds(limits_.idle_timeout_s));
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, std::size_t) {
                     if (ec == http::error::body_limit || ec == http::error::header_limit) {
                       self->keep_alive_ = false;
                       self->write({413, "text/plain; charset=utf-8", "request too large\n", {}});
                       return;
                     }
                     if (ec) {
                       self->close();
                       self->done();
                       return;
                     }
                     self->dispatch();
                   });
}

void Connection::dispatch() {
  auto owner = owner_.lock();
  if (!owner) return;
  http::request<http::string_body> req = parser_->release();
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  HttpRequest r;
  r.method = std::string(req.method_string());
  std::string_view target = req.target();
  std::size_t q = target.find('?');
  r.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
  r.host = std::string(req[http::field::host]);
  r.authorization = std::string(req[http::field::authorization]);
  r.cookie = std::string(req[http::field::cookie]);
  r.content_type = std::string(req[http::field::content_type]);
  r.body = std::move(req.body());
  // An answer may take a while (a call); the idle timer must not cut it.
  stream_.expires_never();
  auto once = std::make_shared<std::atomic<bool>>(false);
  owner->handle(r, [self = shared_from_this(), once](HttpResponse response) {
    if (once->exchange(true)) return;
    asio::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
      self->write(std::move(response));
    });
  });
}

void Connection::write(HttpResponse r) {
  response_ = {};
  response_.version(version_);
  response_.keep_alive(keep_alive_);
  response_.result(r.status);
  response_.set(http::field::server, "prpc-dashboard");
  response_.set(http::field::content_type, r.content_type);
  response_.set(http::field::cache_control, "no-store");
  response_.set("X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : r.headers) response_.set(name, value);
  response_.body() = std::move(r.body);
  response_.prepare_payload();
  stream_.expires_after(std::chrono::seconds(limits_.idle_timeout_s));
  http::async_write(stream_, response_,
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec || !self->keep_alive_) {
                        self->close();
                        self->done();
                        return;
                      }
                      self->read();
                    });
}

void Connection::done() {
  if (auto owner = owner_.lock()) owner->forget(shared_from_this());
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

std::string query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::string cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    std::size_t semi = header.find(';');
    std::string_view pair = trim(header.substr(0, semi));
    std::size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      return std::string(pair.substr(eq + 1));
    }
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return {};
}

Result<std::shared_ptr<HttpServer>> HttpServer::start(asio::io_context& io, std::string_view listen,
                                                      HttpLimits limits, HttpHandler handler) {
  std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return Status(StatusCode::kInvalidArgument,
                  "--listen: '" + std::string(listen) + "' is not host:port");
  }
  std::string host(listen.substr(0, colon));
  std::string port(listen.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  auto found =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || found.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  "--listen: cannot resolve '" + std::string(listen) +
                      "': " + (ec ? ec.message() : std::string("no address")));
  }
  auto server = std::make_shared<Server>(io, limits, std::move(handler));
  Status opened = server->open(found.begin()->endpoint());
  if (!opened.is_ok()) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen on '" + std::string(listen) + "': " + opened.message());
  }
  server->accept();
  return std::shared_ptr<HttpServer>(std::move(server));
}

}  // namespace prpc::dashboard
