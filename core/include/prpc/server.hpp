// The server engine: consume -> decode -> run on the function's executor -> encode -> reply ->
// ack, with a bounded number of calls in flight and a graceful drain on stop.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "prpc/broker.hpp"
#include "prpc/codec.hpp"
#include "prpc/executor.hpp"
#include "prpc/functions.hpp"
#include "prpc/signing.hpp"
#include "prpc/status.hpp"

namespace prpc {

struct ServerOptions {
  std::string queue = "task_prpc";
  std::string group = "prpc_group_consumers";
  std::string consumer;  // unique per server; default: host-pid-random
  std::uint32_t max_in_flight = 64;
  std::uint32_t batch_size = 64;
  std::uint32_t max_deliveries = 3;  // a request delivered more often is dead-lettered
  std::chrono::milliseconds visibility_timeout{30'000};
  std::chrono::milliseconds call_timeout{0};  // server-side limit of one call; 0: none
  std::chrono::milliseconds drain_grace{30'000};
  std::size_t max_message_bytes = std::size_t{16} << 20;
  std::size_t max_json_depth = 512;
  std::string default_worker = "thread";
  // A function of the "thread" worker whose runs take less than this on average
  // (FunctionTable::quick) runs on the thread that received its request, the requests that
  // arrived together in one batch, without an executor hand-off (server.inline_max_us).
  // 0: every call goes to its executor.
  std::chrono::microseconds inline_max{200};
  // With a key: requests must be signed with an accepted key (others are dead-lettered, never
  // run), and replies are signed.
  SigningOptions signing{};
  // host:port of the Prometheus /metrics listener (metrics.listen); empty: none. Port 0 picks
  // a free one (Server::metrics_port).
  std::string metrics_listen;
  // How often the server announces itself and its numbers through the broker
  // (server.announce_interval; prpc.stats and `prpc stats --servers` read them). 0: never.
  // Listed as alive until five intervals pass without an announcement.
  std::chrono::milliseconds announce_interval{1'000};
};

struct ServerStats {
  std::uint64_t received = 0;
  std::uint64_t succeeded = 0;  // replied with a result
  std::uint64_t failed = 0;     // replied with an error
  std::uint64_t dead_lettered = 0;
  std::uint64_t deduplicated = 0;  // redeliveries answered from the stored result or the run
                                   // of the same request already under way here
  std::uint64_t in_flight = 0;     // delivered, not yet finished (at most max_in_flight)
  std::uint64_t inlined = 0;       // calls run on the receiving thread (ServerOptions::inline_max)
};

using ExecutorMap = std::map<std::string, std::shared_ptr<Executor>, std::less<>>;

class Server {
 public:
  // A codec may be null: that flavour's stream is then not consumed.
  Server(ServerOptions options, std::shared_ptr<Broker> broker, std::shared_ptr<Codec> python_codec,
         std::shared_ptr<Codec> raw_codec, std::shared_ptr<FunctionTable> functions,
         ExecutorMap executors);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Connects and starts consuming.
  Status start();
  // Stops consuming and waits up to `grace` for calls in flight. Calls still running after that
  // are left unacknowledged, for another server to claim; their late results are dropped.
  void stop(std::chrono::milliseconds grace);
  // start(), then serve until SIGINT/SIGTERM or request_stop(), then stop(drain_grace).
  Status run();
  // Makes run() return (after draining). Safe from any thread.
  void request_stop() noexcept;

  ServerStats stats() const;
  const ServerOptions& options() const;
  // The port /metrics is served on while the server runs; 0 without a listener.
  std::uint16_t metrics_port() const;
  // The Prometheus text format of the server's metrics (what /metrics answers).
  std::string metrics_text() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

// The JSON manifest get_function_server(format="manifest") answers with.
std::string function_manifest(const std::string& queue, const std::vector<FunctionInfo>& functions,
                              const std::string& default_worker);
// What a plain get_function_server() answers, as the original PRPC did: a list of
// {"func_name", "func_args": [parameters without defaults], "func_kwargs": [with defaults]},
// "ping" first. An original client's create_server_func reads it.
std::string original_function_list(const std::vector<FunctionInfo>& functions);
// A function's signature as Python would print it, "(a: int, *, b: str = 'x') -> int", from its
// spec (FunctionInfo::spec_json); "()" for a spec without parameters.
std::string function_signature(std::string_view spec_json);
// Whether a get_function_server request's kwargs (JSON) ask for format="manifest".
bool wants_manifest(std::string_view func_kwargs);

}  // namespace prpc
