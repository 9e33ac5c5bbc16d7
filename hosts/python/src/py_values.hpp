// Python values <-> the JSON text of a message's func_args / func_kwargs / result, in the
// queue's dialect, and Python exceptions -> call outcomes. Every function needs the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <string_view>

#include "prpc/executor.hpp"
#include "prpc/status.hpp"

namespace prpc::python {

namespace pyb = pybind11;

// "jsonpickle" for prpc_{q}, "json" for prpc_raw_{q}.
bool is_jsonpickle(std::string_view dialect);

// Throws pybind11::error_already_set (EncodeError / DecodeError) when the value cannot pass.
std::string encode_value(pyb::handle value, std::string_view dialect);
pyb::object decode_value(std::string_view text, std::string_view dialect);

// The outcome of the Python exception currently set (and cleared): remote type name as
// traceback.format_exception_only writes it ("ValueError", "mymodule.MyError"), str(exc), and
// the formatted traceback. EncodeError from the converter becomes StatusCode::kEncode.
Outcome outcome_from_error();
Outcome outcome_from_exception(pyb::handle exc);

}  // namespace prpc::python
