#include "py_values.hpp"

#include "prpc/python/jsonpickle.hpp"

namespace prpc::python {

bool is_jsonpickle(std::string_view dialect) { return dialect == "jsonpickle"; }

std::string encode_value(pyb::handle value, std::string_view dialect) {
  std::string out;
  bool ok = is_jsonpickle(dialect) ? python::jsonpickle_encode(value.ptr(), out)
                                   : python::raw_encode(value.ptr(), out);
  if (!ok) throw pyb::error_already_set();
  return out;
}

pyb::object decode_value(std::string_view text, std::string_view dialect) {
  PyObject* v = is_jsonpickle(dialect) ? python::jsonpickle_decode(text) : python::raw_decode(text);
  if (v == nullptr) throw pyb::error_already_set();
  return pyb::reinterpret_steal<pyb::object>(v);
}

namespace {

std::string type_name(pyb::handle type) {
  std::string module = pyb::str(pyb::getattr(type, "__module__", pyb::str("builtins")));
  std::string qualname = pyb::str(pyb::getattr(type, "__qualname__", pyb::str("Exception")));
  if (module == "builtins" || module == "__main__" || module == "__mp_main__") return qualname;
  return module + "." + qualname;
}

}  // namespace

namespace {

Outcome outcome_with_traceback(pyb::handle exc, pyb::handle tb) {
  pyb::handle type = pyb::type::handle_of(exc);
  std::string name = type_name(type);
  std::string message;
  try {
    message = pyb::str(exc);
  } catch (const pyb::error_already_set&) {
    message = "<str() of the exception failed>";
  }
  std::string text;
  try {
    pyb::object lines = pyb::module_::import("traceback")
                            .attr("format_exception")(type, exc, tb.is_none() ? pyb::none() : tb);
    text = pyb::str("").attr("join")(lines).cast<std::string>();
  } catch (const pyb::error_already_set&) {
  }
  StatusCode code = StatusCode::kFunction;
  if (PyObject_IsInstance(exc.ptr(), python::encode_error_type()) == 1) {
    code = StatusCode::kEncode;
    name = "EncodeError";
  }
  return Outcome::failure(code, name, std::move(message), std::move(text));
}

}  // namespace

Outcome outcome_from_exception(pyb::handle exc) {
  pyb::object tb = pyb::getattr(exc, "__traceback__", pyb::none());
  return outcome_with_traceback(exc, tb);
}

Outcome outcome_from_error() {
  pyb::error_already_set err;  // takes (and clears) the current exception
  pyb::object tb = err.trace() ? pyb::reinterpret_borrow<pyb::object>(err.trace()) : pyb::none();
  return outcome_with_traceback(err.value(), tb);
}

}  // namespace prpc::python
