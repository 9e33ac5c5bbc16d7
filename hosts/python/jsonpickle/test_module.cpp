// _prpc_codec_test: the converters and the envelope codec exposed to pytest. The SDK's
// prpc._core links the same static library; this module only exists for the tests and bench.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "prpc/jsonpickle/codec.hpp"
#include "prpc/python/jsonpickle.hpp"

namespace py = pybind11;

namespace {

prpc::python::Limits limits_of(std::size_t max_depth, std::size_t max_bytes,
                               std::size_t max_int_digits) {
  prpc::python::Limits l;
  l.max_depth = max_depth;
  l.max_bytes = max_bytes;
  l.max_int_digits = max_int_digits;
  return l;
}

std::string text_of(py::handle h) {
  if (py::isinstance<py::bytes>(h)) return std::string(py::reinterpret_borrow<py::bytes>(h));
  return py::cast<std::string>(h);
}

prpc::Message message_from(const py::dict& d) {
  prpc::Message m;
  auto get = [&](const char* k, std::string& out) {
    if (d.contains(k) && !d[k].is_none()) out = py::cast<std::string>(d[k]);
  };
  get("func_name", m.func_name);
  get("func_args", m.func_args);
  get("func_kwargs", m.func_kwargs);
  get("message_id", m.message_id);
  get("result", m.result);
  if (d.contains("exception_info") && !d["exception_info"].is_none()) {
    m.exception_info = py::cast<std::string>(d["exception_info"]);
  }
  get("date_create_message", m.date_create_message);
  get("date_done_message", m.date_done_message);
  get("reply_to", m.reply_to);
  get("deadline", m.deadline);
  if (d.contains("attempt")) m.attempt = py::cast<std::uint32_t>(d["attempt"]);
  get("exception_type", m.exception_type);
  get("traceback", m.traceback);
  get("traceparent", m.traceparent);
  get("extensions", m.extensions);
  return m;
}

py::dict dict_from(const prpc::Message& m) {
  py::dict d;
  d["func_name"] = m.func_name;
  d["func_args"] = m.func_args;
  d["func_kwargs"] = m.func_kwargs;
  d["message_id"] = m.message_id;
  d["result"] = m.result;
  d["exception_info"] = m.exception_info ? py::object(py::str(*m.exception_info)) : py::none();
  d["date_create_message"] = m.date_create_message;
  d["date_done_message"] = m.date_done_message;
  d["reply_to"] = m.reply_to;
  d["deadline"] = m.deadline;
  d["attempt"] = m.attempt;
  d["exception_type"] = m.exception_type;
  d["traceback"] = m.traceback;
  d["traceparent"] = m.traceparent;
  d["extensions"] = m.extensions;
  return d;
}

}  // namespace

PYBIND11_MODULE(_prpc_codec_test, m) {
  m.doc() = "Test access to the PRPC jsonpickle / raw converters and the envelope codec";
  m.attr("DecodeError") = py::handle(prpc::python::decode_error_type());
  m.attr("EncodeError") = py::handle(prpc::python::encode_error_type());
  const prpc::python::Limits d;

  m.def(
      "encode",
      [](py::handle value, std::size_t max_depth, std::size_t max_bytes, std::size_t digits) {
        std::string out;
        if (!prpc::python::jsonpickle_encode(value.ptr(), out,
                                             limits_of(max_depth, max_bytes, digits))) {
          throw py::error_already_set();
        }
        return py::str(out);
      },
      py::arg("value"), py::arg("max_depth") = d.max_depth, py::arg("max_bytes") = d.max_bytes,
      py::arg("max_int_digits") = d.max_int_digits);
  m.def(
      "decode",
      [](py::handle text, std::size_t max_depth, std::size_t max_bytes, std::size_t digits) {
        std::string t = text_of(text);
        PyObject* r = prpc::python::jsonpickle_decode(t, limits_of(max_depth, max_bytes, digits));
        if (r == nullptr) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(r);
      },
      py::arg("text"), py::arg("max_depth") = d.max_depth, py::arg("max_bytes") = d.max_bytes,
      py::arg("max_int_digits") = d.max_int_digits);
  m.def(
      "raw_encode",
      [](py::handle value, std::size_t max_depth) {
        std::string out;
        prpc::python::Limits l;
        l.max_depth = max_depth;
        if (!prpc::python::raw_encode(value.ptr(), out, l)) throw py::error_already_set();
        return py::str(out);
      },
      py::arg("value"), py::arg("max_depth") = d.max_depth);
  m.def(
      "raw_decode",
      [](py::handle text, std::size_t max_depth) {
        prpc::python::Limits l;
        l.max_depth = max_depth;
        std::string t = text_of(text);
        PyObject* r = prpc::python::raw_decode(t, l);
        if (r == nullptr) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(r);
      },
      py::arg("text"), py::arg("max_depth") = d.max_depth);
  m.def(
      "register",
      [](py::handle obj, const std::string& name) {
        if (!prpc::python::register_allowed(obj.ptr(), name)) throw py::error_already_set();
      },
      py::arg("obj"), py::arg("name") = "");
  m.def(
      "unregister",
      [](py::handle obj, const std::string& name) {
        if (!prpc::python::unregister_allowed(obj.ptr(), name)) throw py::error_already_set();
      },
      py::arg("obj"), py::arg("name") = "");
  m.def("allowed", [] {
    PyObject* r = prpc::python::allowed_names();
    if (r == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(r);
  });

  // The envelope codec (C++, no Python inside), fed with fragment texts.
  m.def(
      "envelope_encode",
      [](const py::dict& fields) {
        prpc::Message msg = message_from(fields);
        prpc::Result<std::string> r("");
        {
          py::gil_scoped_release nogil;
          r = prpc::jsonpickle::JsonpickleCodec().encode(msg);
        }
        if (!r.is_ok()) throw py::value_error(r.status().to_string());
        return py::bytes(*r);
      },
      py::arg("fields"));
  m.def(
      "envelope_decode",
      [](py::handle data, std::size_t max_depth) {
        std::string bytes = text_of(data);
        prpc::jsonpickle::Limits l;
        l.max_depth = max_depth;
        prpc::Message salvaged;
        prpc::Result<prpc::Message> r{prpc::Message{}};
        {
          py::gil_scoped_release nogil;
          r = prpc::jsonpickle::JsonpickleCodec(l).decode(bytes, &salvaged);
        }
        if (!r.is_ok()) {
          py::object err = py::handle(prpc::python::decode_error_type())(r.status().to_string());
          err.attr("salvaged") = dict_from(salvaged);
          PyErr_SetObject(prpc::python::decode_error_type(), err.ptr());
          throw py::error_already_set();
        }
        return dict_from(*r);
      },
      py::arg("data"), py::arg("max_depth") = d.max_depth);
}
