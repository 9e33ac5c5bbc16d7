// The server side of the extension: the core's Server over the Python function table, with the
// executors the configuration names (thread, process, async), built from plugins.
#pragma once

#include <pybind11/pybind11.h>

#include <map>
#include <memory>
#include <string>

#include "prpc/server.hpp"
#include "py_functions.hpp"

namespace prpc::python {

namespace pyb = pybind11;

class PyServer {
 public:
  PyServer(const std::map<std::string, std::string>& config,
           std::shared_ptr<PythonFunctions> functions);
  ~PyServer();

  void start();               // connects and starts consuming; GIL released meanwhile
  void stop(double grace_s);  // drains, then shuts the executors down; GIL released
  pyb::dict stats() const;
  std::string queue() const;
  int metrics_port() const;
  std::string metrics_text() const;

 private:
  std::shared_ptr<PythonFunctions> functions_;
  ExecutorMap executors_;
  std::unique_ptr<Server> server_;
};

}  // namespace prpc::python
