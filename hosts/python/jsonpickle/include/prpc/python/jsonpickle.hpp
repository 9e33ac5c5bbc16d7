// Python values <-> the JSON text of the two message dialects, with the Python C API.
//
// This is the only part of the jsonpickle codec that touches Python. The Python SDK
// (prpc._core) links it to turn func_args / func_kwargs / result into Python objects and back;
// the codec plugin then splices those fragments into the envelope without Python.
//
//   jsonpickle dialect: encode() writes exactly what jsonpickle.encode(value) writes (4.x,
//   default settings); decode() reads what jsonpickle 3.x and 4.x write, but resolves classes
//   and callables only from an allow-list and never imports a module named by the input.
//   raw dialect: plain JSON; datetimes become ISO 8601 text; anything else is an EncodeError.
//
// Every function needs the GIL. Failures return false / nullptr with a Python exception set:
// the decode error type for refused or malformed input, the encode error type for values that
// cannot be written (both configurable, so the SDK can raise prpc.DecodeError / EncodeError).
#pragma once

#ifndef PY_SSIZE_T_CLEAN
#define PY_SSIZE_T_CLEAN
#endif
#include <Python.h>

#include <string>
#include <string_view>

#include "prpc/jsonpickle/document.hpp"

namespace prpc::python {

using Limits = prpc::jsonpickle::Limits;

// The exception classes raised for refused input and for unencodable values. Until set, the
// library creates its own: DecodeError(ValueError) and EncodeError(TypeError), both in a module
// named "prpc_codec". Borrowed references; the library keeps its own.
void set_error_types(PyObject* decode_error, PyObject* encode_error);
PyObject* decode_error_type();  // borrowed
PyObject* encode_error_type();  // borrowed

bool jsonpickle_encode(PyObject* value, std::string& out, const Limits& limits = {});
PyObject* jsonpickle_decode(std::string_view text, const Limits& limits = {});

bool raw_encode(PyObject* value, std::string& out, const Limits& limits = {});
PyObject* raw_decode(std::string_view text, const Limits& limits = {});

// The decoder's allow-list beyond its defaults (builtins' safe constructors and exceptions,
// datetime, decimal.Decimal, uuid.UUID, enum classes already imported by the application, and
// prpc.prpcmessage.PRPCMessage once imported). A registered class may be instantiated
// (py/object, py/reduce, py/newobj) and referenced (py/type); a registered function may be
// called by py/reduce and referenced by py/function. `name` defaults to the object's
// "module.qualname", the name jsonpickle writes.
bool register_allowed(PyObject* cls_or_function, std::string_view name = {});
bool unregister_allowed(PyObject* cls_or_function, std::string_view name = {});
// A list of the registered names (new reference).
PyObject* allowed_names();

}  // namespace prpc::python
