#include "py_log.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "prpc/log.hpp"

namespace prpc::python {
namespace {

// Beyond this many waiting lines the oldest go: a logging thread that cannot keep up must not
// grow the process without bound.
constexpr std::size_t kMaxLines = 10'000;

struct Line {
  log::Level level;
  std::string component;
  std::string message;
  double time;
};

std::mutex g_mutex;
std::condition_variable g_cv;
std::deque<Line> g_lines;
std::uint64_t g_dropped = 0;

int python_level(log::Level l) {
  switch (l) {
    case log::Level::kTrace: return 5;
    case log::Level::kDebug: return 10;
    case log::Level::kInfo: return 20;
    case log::Level::kWarn: return 30;
    case log::Level::kError: return 40;
    case log::Level::kOff: break;
  }
  return 50;
}

void enqueue(log::Level level, std::string_view component, std::string_view message) {
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  {
    std::lock_guard lock(g_mutex);
    if (g_lines.size() >= kMaxLines) {
      g_lines.pop_front();
      ++g_dropped;
    }
    g_lines.push_back(Line{level, std::string(component), std::string(message), now});
  }
  g_cv.notify_one();
}

}  // namespace

void route_logs(bool on) {
  if (on) {
    log::set_sink(&enqueue);
  } else {
    log::set_sink(nullptr);
  }
}

pyb::list take_log_lines(double timeout_s) {
  std::deque<Line> lines;
  std::uint64_t dropped = 0;
  {
    pyb::gil_scoped_release nogil;
    std::unique_lock lock(g_mutex);
    auto wait = std::chrono::duration<double>(timeout_s > 0 ? timeout_s : 0);
    g_cv.wait_for(lock, wait, [] { return !g_lines.empty(); });
    lines.swap(g_lines);
    dropped = g_dropped;
    g_dropped = 0;
  }
  pyb::list out;
  if (dropped > 0) {
    double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    out.append(pyb::make_tuple(
        python_level(log::Level::kWarn), "log",
        std::to_string(dropped) + " log lines were dropped: the logging thread fell behind", now));
  }
  for (Line& l : lines) {
    out.append(pyb::make_tuple(python_level(l.level), l.component, l.message, l.time));
  }
  return out;
}

}  // namespace prpc::python
