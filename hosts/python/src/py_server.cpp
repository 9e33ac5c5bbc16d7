#include "py_server.hpp"

#include "prpc/runtime.hpp"
#include "py_runtime.hpp"

namespace prpc::python {

PyServer::PyServer(const std::map<std::string, std::string>& values,
                   std::shared_ptr<PythonFunctions> functions)
    : functions_(std::move(functions)) {
  Config config = make_config(values);
  PluginRegistry& reg = registry();
  if (Status s = configure_plugins(reg, config); !s.is_ok()) raise_status(s);
  auto options = configured_server_options(config);
  if (!options.is_ok()) raise_status(options.status());
  auto broker = make_configured_broker(reg, config);
  if (!broker.is_ok()) raise_status(broker.status());
  auto codecs = make_configured_codecs(reg, config);
  if (!codecs.is_ok()) raise_status(codecs.status());
  auto executors = make_configured_executors(reg, config, functions_);
  if (!executors.is_ok()) raise_status(executors.status());
  executors_ = std::move(*executors);
  server_ = std::make_unique<Server>(*options, *broker, codecs->python, codecs->raw, functions_,
                                     executors_);
}

PyServer::~PyServer() {
  pyb::gil_scoped_release nogil;
  server_.reset();
  for (auto& [name, e] : executors_) e->shutdown(std::chrono::milliseconds(0));
  executors_.clear();
}

void PyServer::start() {
  Status s;
  {
    pyb::gil_scoped_release nogil;
    s = server_->start();
  }
  if (!s.is_ok()) raise_status(s);
}

void PyServer::stop(double grace_s) {
  pyb::gil_scoped_release nogil;
  auto grace = std::chrono::milliseconds(static_cast<std::int64_t>(grace_s * 1000));
  server_->stop(grace);
  for (auto& [name, e] : executors_) e->shutdown(std::chrono::milliseconds(200));
}

pyb::dict PyServer::stats() const {
  ServerStats s = server_->stats();
  pyb::dict d;
  d["received"] = s.received;
  d["succeeded"] = s.succeeded;
  d["failed"] = s.failed;
  d["dead_lettered"] = s.dead_lettered;
  d["deduplicated"] = s.deduplicated;
  d["in_flight"] = s.in_flight;
  d["inlined"] = s.inlined;
  return d;
}

std::string PyServer::queue() const { return server_->options().queue; }

int PyServer::metrics_port() const { return server_->metrics_port(); }

std::string PyServer::metrics_text() const {
  pyb::gil_scoped_release nogil;  // asks the broker for the queue's view
  return server_->metrics_text();
}

}  // namespace prpc::python
