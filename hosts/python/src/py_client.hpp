// The client side of the extension: one prpc::Client (one broker connection set, one reply
// listener) per queue, and a CallHandle per call that Python waits on, synchronously (with the
// GIL released) or from asyncio (through a Waker, or a done callback).
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "prpc/client.hpp"

namespace prpc::python {

namespace pyb = pybind11;

class CallHandle;

// Hands completed calls to one asyncio event loop without the GIL: the thread that received a
// reply queues its handle and writes to an eventfd only when the queue was empty, and the loop,
// which watches the descriptor (loop.add_reader), takes every queued handle in one pass. Replies
// that arrive together cost the loop one wake-up and the receiving thread no GIL at all.
class Waker {
 public:
  Waker();
  ~Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  int fd() const { return fd_; }
  // Any thread, without the GIL.
  void push(std::shared_ptr<CallHandle> handle);
  // GIL held: the handles completed since the last drain, in the order they completed.
  std::vector<std::shared_ptr<CallHandle>> drain();

 private:
  int fd_ = -1;
  std::mutex mutex_;
  std::vector<std::shared_ptr<CallHandle>> ready_;
};

class CallHandle : public std::enable_shared_from_this<CallHandle> {
 public:
  CallHandle(std::string dialect, std::string func_name);
  ~CallHandle();

  // Any thread, without the GIL.
  void complete(Result<Message> result);

  bool done() const;
  // GIL held; released while waiting. True when done.
  bool wait(double timeout_s);
  // GIL held. Called (with the GIL, from whichever thread completes the call) once done;
  // immediately when already done.
  void add_done_callback(pyb::object callback);
  // Any thread. Queues this handle on `waker` once done (at once when it already is).
  void notify(const std::shared_ptr<Waker>& waker);
  // GIL held. (status, value): status "ok" -> the result; "remote" -> (type, message, traceback);
  // otherwise the local status name (e.g. "Timeout", "Unavailable") -> its message.
  pyb::tuple outcome();
  // GIL held. The reply's fields as a dict of Python values, for PRPCMessage.
  pyb::dict reply_fields();
  // Without decoding anything: "ok", "remote" (the function failed), a status code's name
  // (e.g. "Timeout"), or "" while pending.
  std::string kind() const;
  double elapsed() const;  // seconds from send to reply (or to now)
  std::string message_id;
  std::string func_name;

 private:
  std::string dialect_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::optional<Result<Message>> result_;
  std::vector<pyb::object> callbacks_;
  std::vector<std::shared_ptr<Waker>> wakers_;
  pyb::object cached_;
  std::chrono::steady_clock::time_point sent_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point finished_{};
};

class PyClient {
 public:
  PyClient(const std::map<std::string, std::string>& config, bool raw);
  ~PyClient();

  // GIL held: args (a list or tuple) and kwargs (a dict) are encoded in the queue's dialect.
  std::shared_ptr<CallHandle> call(const std::string& func_name, pyb::handle args,
                                   pyb::handle kwargs, double timeout_s,
                                   const std::string& deadline, const std::string& traceparent = {},
                                   const std::string& tracestate = {});
  void close();
  std::string queue() const { return queue_; }
  std::string dialect() const { return std::string(codec_->dialect()); }
  std::string reply_to() const { return client_ ? client_->reply_to() : std::string(); }
  std::size_t pending() const { return client_ ? client_->pending() : 0; }
  std::string diagnosis() const { return client_ ? client_->diagnosis() : std::string(); }

 private:
  std::string queue_;
  std::shared_ptr<Broker> broker_;
  std::shared_ptr<Codec> codec_;
  std::unique_ptr<Client> client_;
};

}  // namespace prpc::python
