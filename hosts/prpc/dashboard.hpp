// `prpc dashboard`: a live web page of queues, servers, functions, rates, latency and dead
// letters, with a call form and the requeue action (docs/dashboard.md).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "prpc/config.hpp"

namespace prpc::dashboard {

struct Options {
  std::string listen = "127.0.0.1:8787";
  std::vector<std::string> queues;  // empty: the configured queue.name
  std::string token;                // empty: no token asked
  bool allow_actions = false;       // call and requeue without a token
  std::chrono::milliseconds poll{1000};
};

// Serves until SIGINT or SIGTERM; returns the process's exit code. Prints the address it serves
// on stdout once it listens.
int run(const Options& options, const std::string& config_file,
        const std::vector<std::string>& sets);

}  // namespace prpc::dashboard
