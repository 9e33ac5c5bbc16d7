// Captures every log line written through the host's logger (prpc::log) while it lives.
// Header-only: the suites that include it link prpc::core already.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/log.hpp"

namespace prpc::testing {

class LogCapture {
 public:
  LogCapture() {
    prpc::log::set_sink([this](prpc::log::Level, std::string_view component, std::string_view m) {
      std::lock_guard lock(mutex_);
      lines_.push_back(std::string(component) + ": " + std::string(m));
    });
  }
  ~LogCapture() { prpc::log::set_sink(nullptr); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  std::string joined() {
    std::string out;
    for (const auto& l : lines()) out += l + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

}  // namespace prpc::testing
