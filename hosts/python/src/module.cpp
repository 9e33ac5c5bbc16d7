// prpc._core: the pybind11 extension the `prpc` package wraps. It drives the C++ core; Python
// functions are handlers the executors call with the GIL taken only around the call.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "prpc/log.hpp"
#include "prpc/python/jsonpickle.hpp"
#include "prpc/version.h"
#include "prpc/worker.hpp"
#include "py_client.hpp"
#include "py_functions.hpp"
#include "py_log.hpp"
#include "py_runtime.hpp"
#include "py_server.hpp"
#include "py_values.hpp"

namespace pyb = pybind11;
using namespace prpc::python;

PYBIND11_MODULE(_core, m) {
  m.doc() = "The C++ runtime of PRPC (internal; use the prpc package)";
  m.attr("__version__") = PRPC_VERSION_STRING;
  m.attr("ABI_VERSION") = pyb::make_tuple(PRPC_ABI_MAJOR, PRPC_ABI_MINOR);

  m.def("set_plugin_dirs", &set_plugin_dirs, "Directories searched for plugins first.");
  m.def(
      "set_error_types",
      [](pyb::object decode_error, pyb::object encode_error) {
        prpc::python::set_error_types(decode_error.ptr(), encode_error.ptr());
      },
      "The exception classes the value converters raise.");
  m.def("route_logs", &prpc::python::route_logs, pyb::arg("on"),
        "Sends PRPC's log lines to the queue take_log_lines reads (True) or to stderr (False).");
  m.def("take_log_lines", &prpc::python::take_log_lines, pyb::arg("timeout"),
        "Waits up to `timeout` seconds, then returns the queued lines as (level, component, "
        "message, time) tuples.");
  m.def(
      "set_log_level",
      [](const std::string& level) {
        auto l = prpc::log::parse_level(level);
        if (!l) throw pyb::value_error("unknown log level '" + level + "'");
        prpc::log::set_level(*l);
      },
      "trace, debug, info, warn, error or off.");
  m.def(
      "encode_value",
      [](pyb::handle value, const std::string& dialect) {
        return pyb::str(encode_value(value, dialect));
      },
      pyb::arg("value"), pyb::arg("dialect") = "jsonpickle",
      "Encodes a value as the codec of that dialect writes it.");
  m.def(
      "decode_value",
      [](const std::string& text, const std::string& dialect) {
        return decode_value(text, dialect);
      },
      pyb::arg("text"), pyb::arg("dialect") = "jsonpickle",
      "Decodes a value; classes resolve only from the allow-list.");
  m.def(
      "register_allowed",
      [](pyb::handle obj, const std::string& name) {
        if (!prpc::python::register_allowed(obj.ptr(), name)) throw pyb::error_already_set();
      },
      pyb::arg("obj"), pyb::arg("name") = "",
      "Lets the decoder build instances of a class (or call a function) by that name.");
  m.def(
      "unregister_allowed",
      [](pyb::handle obj, const std::string& name) {
        if (!prpc::python::unregister_allowed(obj.ptr(), name)) throw pyb::error_already_set();
      },
      pyb::arg("obj"), pyb::arg("name") = "");
  m.def("allowed_names", []() {
    PyObject* names = prpc::python::allowed_names();
    if (names == nullptr) throw pyb::error_already_set();
    return pyb::reinterpret_steal<pyb::object>(names);
  });

  pyb::class_<PythonFunctions, std::shared_ptr<PythonFunctions>>(m, "FunctionTable")
      .def(pyb::init<>())
      .def("add", &PythonFunctions::add, pyb::arg("name"), pyb::arg("fn"), pyb::arg("worker"),
           pyb::arg("coroutine"), pyb::arg("spec_json"), pyb::arg("doc"))
      .def("__contains__", &PythonFunctions::contains)
      .def("set_async_runner", &PythonFunctions::set_async_runner)
      .def("set_tracer", &PythonFunctions::set_tracer)
      .def("names", [](const PythonFunctions& t) {
        std::vector<std::string> out;
        for (const auto& f : t.list()) out.push_back(f.name);
        return out;
      });

  m.def(
      "serve_worker",
      [](int fd, std::shared_ptr<PythonFunctions> table) {
        prpc::Status s;
        {
          pyb::gil_scoped_release nogil;
          s = prpc::worker_protocol::serve(fd, *table);
        }
        if (!s.is_ok()) raise_status(s);
      },
      pyb::arg("fd"), pyb::arg("functions"),
      "Serves calls from the parent process over `fd` until it closes (process workers).");

  pyb::class_<PyServer>(m, "Server")
      .def(pyb::init<const std::map<std::string, std::string>&, std::shared_ptr<PythonFunctions>>(),
           pyb::arg("config"), pyb::arg("functions"))
      .def("start", &PyServer::start)
      .def("stop", &PyServer::stop, pyb::arg("grace"))
      .def("stats", &PyServer::stats)
      .def("metrics_text", &PyServer::metrics_text)
      .def_property_readonly("metrics_port", &PyServer::metrics_port)
      .def_property_readonly("queue", &PyServer::queue);

  pyb::class_<Waker, std::shared_ptr<Waker>>(m, "Waker")
      .def(pyb::init<>())
      .def_property_readonly("fd", &Waker::fd)
      .def("drain", &Waker::drain);

  pyb::class_<CallHandle, std::shared_ptr<CallHandle>>(m, "CallHandle")
      .def_readonly("message_id", &CallHandle::message_id)
      .def_readonly("func_name", &CallHandle::func_name)
      .def("done", &CallHandle::done)
      .def("wait", &CallHandle::wait, pyb::arg("timeout") = -1.0)
      .def("add_done_callback", &CallHandle::add_done_callback)
      .def("notify", &CallHandle::notify, pyb::arg("waker"))
      .def("outcome", &CallHandle::outcome)
      .def("kind", &CallHandle::kind)
      .def("reply_fields", &CallHandle::reply_fields)
      .def("elapsed", &CallHandle::elapsed);

  pyb::class_<PyClient>(m, "Client")
      .def(pyb::init<const std::map<std::string, std::string>&, bool>(), pyb::arg("config"),
           pyb::arg("raw") = false)
      .def("call", &PyClient::call, pyb::arg("func_name"), pyb::arg("args"), pyb::arg("kwargs"),
           pyb::arg("timeout") = 0.0, pyb::arg("deadline") = "", pyb::arg("traceparent") = "",
           pyb::arg("tracestate") = "")
      .def("close", &PyClient::close)
      .def_property_readonly("queue", &PyClient::queue)
      .def_property_readonly("dialect", &PyClient::dialect)
      .def_property_readonly("reply_to", &PyClient::reply_to)
      .def_property_readonly("pending", &PyClient::pending)
      .def_property_readonly("diagnosis", &PyClient::diagnosis);
}
