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
    prpc::log::set_sink(
        [this](prpc::log::Level level, std::string_view component, std::string_view m) {
          std::lock_guard lock(mutex_);
          lines_.push_back(std::string(component) + ": " + std::string(m));
          levels_.push_back(level);
        });
  }
  ~LogCapture() { prpc::log::set_sink(nullptr); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  // The lines at `level` that contain `text`.
  std::size_t count(prpc::log::Level level, std::string_view text) {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (std::size_t i = 0; i < lines_.size(); ++i) {
      if (levels_[i] == level && lines_[i].find(text) != std::string::npos) ++n;
    }
    return n;
  }
  std::string joined() {
    std::string out;
    for (const auto& l : lines()) out += l + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
  std::vector<prpc::log::Level> levels_;
};

}  // namespace prpc::testing
