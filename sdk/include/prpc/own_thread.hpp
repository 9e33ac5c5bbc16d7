// An object whose threads call back into its owner may be released from inside one of those
// callbacks, on one of its own threads, and a thread cannot join itself. These two helpers are
// the one way the runtime and the plugins end such an object.
#pragma once

#include <thread>
#include <utility>

namespace prpc {

// Joins `thread`, or detaches it when the caller is that very thread (the owner is being
// released from one of its callbacks); the thread must then hold, through shared state,
// whatever it still touches. Returns true when it detached.
inline bool join_or_detach(std::thread& thread) {
  if (!thread.joinable()) return false;
  if (thread.get_id() == std::this_thread::get_id()) {
    thread.detach();
    return true;
  }
  thread.join();
  return false;
}

// Runs `teardown` now, or, when `on_own_thread` (the caller is a thread that the teardown
// joins or waits for), on a thread of its own, so that the callback returns first.
template <typename Teardown>
void tear_down(bool on_own_thread, Teardown&& teardown) {
  if (on_own_thread) {
    std::thread(std::forward<Teardown>(teardown)).detach();
  } else {
    std::forward<Teardown>(teardown)();
  }
}

}  // namespace prpc
