#include "py_client.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include "prpc/json.hpp"
#include "prpc/runtime.hpp"
#include "py_runtime.hpp"
#include "py_values.hpp"

namespace prpc::python {

Waker::Waker() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

Waker::~Waker() { ::close(fd_); }

void Waker::push(std::shared_ptr<CallHandle> handle) {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    first = ready_.empty();
    ready_.push_back(std::move(handle));
  }
  if (!first) return;  // the loop has a wake-up coming and drains this one with it
  std::uint64_t one = 1;
  while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

std::vector<std::shared_ptr<CallHandle>> Waker::drain() {
  std::uint64_t count = 0;
  // Reset before taking the queue: a push after this point writes again.
  while (::read(fd_, &count, sizeof count) < 0 && errno == EINTR) {
  }
  std::vector<std::shared_ptr<CallHandle>> out;
  std::lock_guard lock(mutex_);
  out.swap(ready_);
  return out;
}

CallHandle::CallHandle(std::string dialect, std::string func)
    : func_name(std::move(func)), dialect_(std::move(dialect)) {}

CallHandle::~CallHandle() {
  // The last owner may be the broker's thread; Python objects are released under the GIL.
  if (!cached_ && callbacks_.empty()) return;
  if (Py_IsInitialized() == 0) {
    cached_.release();
    for (auto& cb : callbacks_) cb.release();
    return;
  }
  pyb::gil_scoped_acquire gil;
  cached_ = pyb::object();
  callbacks_.clear();
}

void CallHandle::complete(Result<Message> result) {
  std::vector<pyb::object> callbacks;
  std::vector<std::shared_ptr<Waker>> wakers;
  {
    std::lock_guard lock(mutex_);
    if (done_) return;
    result_ = std::move(result);
    done_ = true;
    finished_ = std::chrono::steady_clock::now();
    callbacks.swap(callbacks_);
    wakers.swap(wakers_);
  }
  cv_.notify_all();
  for (const auto& waker : wakers) waker->push(shared_from_this());
  if (callbacks.empty()) return;  // synchronous waiters need no GIL here
  pyb::gil_scoped_acquire gil;
  for (pyb::object& cb : callbacks) {
    try {
      cb();
    } catch (pyb::error_already_set& e) {
      e.discard_as_unraisable("prpc call completion callback");
    }
  }
  callbacks.clear();
}

bool CallHandle::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

bool CallHandle::wait(double timeout_s) {
  using namespace std::chrono;
  auto deadline = timeout_s < 0
                      ? steady_clock::time_point::max()
                      : steady_clock::now() +
                            duration_cast<steady_clock::duration>(duration<double>(timeout_s));
  while (true) {
    {
      pyb::gil_scoped_release nogil;
      std::unique_lock lock(mutex_);
      // Wake up now and then so Ctrl-C reaches the waiting Python thread.
      auto slice = std::min(deadline, steady_clock::now() + milliseconds(100));
      if (cv_.wait_until(lock, slice, [this] { return done_; })) return true;
    }
    if (PyErr_CheckSignals() != 0) throw pyb::error_already_set();
    if (steady_clock::now() >= deadline) return done();
  }
}

void CallHandle::add_done_callback(pyb::object callback) {
  {
    std::lock_guard lock(mutex_);
    if (!done_) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

void CallHandle::notify(const std::shared_ptr<Waker>& waker) {
  {
    std::lock_guard lock(mutex_);
    if (!done_) {
      wakers_.push_back(waker);
      return;
    }
  }
  waker->push(shared_from_this());
}

std::string CallHandle::kind() const {
  std::lock_guard lock(mutex_);
  if (!done_) return "";
  if (!result_->is_ok()) return std::string(status_code_name(result_->status().code()));
  return (*result_)->failed() ? "remote" : "ok";
}

pyb::tuple CallHandle::outcome() {
  if (cached_) return cached_;
  {
    std::lock_guard lock(mutex_);
    if (!done_) throw pyb::value_error("the call is not done yet");
  }
  const Result<Message>& r = *result_;
  pyb::tuple out;
  if (!r.is_ok()) {
    out = pyb::make_tuple(std::string(status_code_name(r.status().code())), r.status().message());
  } else if (r->failed()) {
    const Message& m = *r;
    std::string type = m.exception_type;
    std::string message = *m.exception_info;
    if (type.empty()) {
      // A reply from another implementation: "Type: message" is all there is.
      std::size_t colon = message.find(": ");
      if (colon != std::string::npos) {
        type = message.substr(0, colon);
        message = message.substr(colon + 2);
      }
    } else if (message.rfind(type + ": ", 0) == 0) {
      message = message.substr(type.size() + 2);
    }
    out = pyb::make_tuple("remote", pyb::make_tuple(type, message, m.traceback));
  } else {
    try {
      out = pyb::make_tuple("ok", decode_value(r->result, dialect_));
    } catch (pyb::error_already_set& e) {
      out = pyb::make_tuple("DecodeError", pyb::str(e.value()).cast<std::string>());
    }
  }
  cached_ = out;
  return out;
}

pyb::dict CallHandle::reply_fields() {
  pyb::dict d;
  std::lock_guard lock(mutex_);
  if (!done_ || !result_->is_ok()) return d;
  const Message& m = **result_;
  auto decoded = [&](const std::string& text) -> pyb::object {
    try {
      return decode_value(text, dialect_);
    } catch (pyb::error_already_set&) {
      return pyb::none();
    }
  };
  d["func_name"] = m.func_name;
  d["func_args"] = decoded(m.func_args);
  d["func_kwargs"] = decoded(m.func_kwargs);
  d["message_id"] = m.message_id;
  d["result"] = m.failed() ? pyb::none() : decoded(m.result);
  d["exception_info"] = m.exception_info ? pyb::cast(*m.exception_info) : pyb::none();
  d["date_create_message"] = m.date_create_message;
  d["date_done_message"] = m.date_done_message;
  d["exception_type"] = m.exception_type;
  d["traceback"] = m.traceback;
  d["extensions"] = m.extensions;
  return d;
}

double CallHandle::elapsed() const {
  std::lock_guard lock(mutex_);
  auto end = done_ ? finished_ : std::chrono::steady_clock::now();
  return std::chrono::duration<double>(end - sent_).count();
}

PyClient::PyClient(const std::map<std::string, std::string>& values, bool raw) {
  Config config = make_config(values);
  PluginRegistry& reg = registry();
  Status s = configure_plugins(reg, config);
  if (!s.is_ok()) raise_status(s);
  auto broker = make_configured_broker(reg, config);
  if (!broker.is_ok()) raise_status(broker.status());
  std::string codec_name =
      raw ? config.get_or("codec.raw", "rawjson") : config.get_or("codec.python", "jsonpickle");
  auto codec = reg.make_codec(codec_name, options_under(config, "codec.options." + codec_name));
  if (!codec.is_ok()) raise_status(codec.status());
  auto options = configured_client_options(config, raw ? Flavour::kRaw : Flavour::kPython);
  if (!options.is_ok()) raise_status(options.status());
  queue_ = options->queue;
  broker_ = *broker;
  codec_ = *codec;
  client_ = std::make_unique<Client>(std::move(*options), broker_, codec_);
  Status started;
  {
    pyb::gil_scoped_release nogil;
    started = client_->start();
  }
  if (!started.is_ok()) raise_status(started);
}

PyClient::~PyClient() {
  pyb::gil_scoped_release nogil;  // completions of pending calls may need the GIL
  client_.reset();
  broker_.reset();
}

void PyClient::close() {
  pyb::gil_scoped_release nogil;
  client_.reset();
}

std::shared_ptr<CallHandle> PyClient::call(const std::string& func_name, pyb::handle args,
                                           pyb::handle kwargs, double timeout_s,
                                           const std::string& deadline,
                                           const std::string& traceparent,
                                           const std::string& tracestate) {
  if (!client_) raise_status(Status(StatusCode::kFailedPrecondition, "the client is closed"));
  std::string dialect(codec_->dialect());
  Message m;
  m.func_name = func_name;
  // PRPCMessage carries the positional arguments as a list.
  pyb::object arg_list = pyb::reinterpret_borrow<pyb::object>(args);
  if (!PyList_Check(args.ptr())) arg_list = pyb::list(arg_list);
  m.func_args = encode_value(arg_list, dialect);
  m.func_kwargs = encode_value(kwargs, dialect);
  m.deadline = deadline;
  m.traceparent = traceparent;
  if (!tracestate.empty()) {
    m.extensions = "{\"tracestate\": ";
    json::append_quoted(m.extensions, tracestate);
    m.extensions += "}";
  }
  auto handle = std::make_shared<CallHandle>(dialect, func_name);
  auto timeout =
      std::chrono::milliseconds(timeout_s > 0 ? static_cast<std::int64_t>(timeout_s * 1000) : 0);
  {
    // Keeping the GIL here measured the same (A/B in docs/benchmarks.md), and a broker's send
    // path may block.
    pyb::gil_scoped_release nogil;
    handle->message_id = client_->call(
        std::move(m), timeout, [handle](Result<Message> r) { handle->complete(std::move(r)); });
  }
  return handle;
}

}  // namespace prpc::python
