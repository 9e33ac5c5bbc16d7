// An Asio io_context with one thread of its own. Destroying the loop from its own thread (the
// last owner of a server may be a handler) is safe: the thread keeps the context alive until it
// returns.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>

#include "prpc/own_thread.hpp"

namespace prpc::details {

class EventLoop {
 public:
  EventLoop() : state_(std::make_shared<State>()) {
    thread_ = std::thread([state = state_] { state->io.run(); });
  }
  ~EventLoop() {
    state_->work.reset();
    state_->io.stop();
    join_or_detach(thread_);
  }
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::io_context& io() { return state_->io; }
  bool in_loop_thread() const { return thread_.get_id() == std::this_thread::get_id(); }

 private:
  struct State {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        boost::asio::make_work_guard(io)};
  };
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace prpc::details
