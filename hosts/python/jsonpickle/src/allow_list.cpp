#include "allow_list.hpp"

namespace prpc::python {

namespace details {

Registry& registry() {
  static Registry r;
  return r;
}

void put(const std::string& name, PyObject* obj, unsigned uses, bool builtin) {
  Registry& r = registry();
  auto it = r.names.find(name);
  Py_INCREF(obj);
  if (it != r.names.end()) {
    Py_DECREF(it->second.object);
    it->second = Entry{obj, uses, builtin};
  } else {
    r.names.emplace(name, Entry{obj, uses, builtin});
  }
}

bool load_defaults(const Known* k) {
  Registry& r = registry();
  if (r.defaults_loaded) return true;
  PyObject* builtins = PyEval_GetBuiltins();  // borrowed dict
  if (builtins == nullptr) return false;
  const unsigned type_only = static_cast<unsigned>(Use::kTypeRef);
  const unsigned construct = Use::kTypeRef | Use::kConstruct;
  for (const char* n : {"int", "float", "str", "bytes", "bytearray", "bool", "list", "dict",
                        "tuple", "object", "type"}) {
    PyObject* o = PyDict_GetItemString(builtins, n);
    if (o != nullptr) put(std::string("builtins.") + n, o, type_only, true);
  }
  put("builtins.NoneType", reinterpret_cast<PyObject*>(Py_TYPE(Py_None)), type_only, true);
  // Constructors that are safe on any arguments jsonpickle can express.
  for (const char* n : {"frozenset", "set", "complex", "range", "slice"}) {
    PyObject* o = PyDict_GetItemString(builtins, n);
    if (o != nullptr) put(std::string("builtins.") + n, o, construct, true);
  }
  // Builtin exception classes: constructing one runs no code beyond storing its arguments.
  PyObject* key = nullptr;
  PyObject* value = nullptr;
  Py_ssize_t pos = 0;
  while (PyDict_Next(builtins, &pos, &key, &value)) {
    if (PyType_Check(value) &&
        PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(value),
                         reinterpret_cast<PyTypeObject*>(PyExc_BaseException)) &&
        PyUnicode_Check(key)) {
      put(std::string("builtins.") + PyUnicode_AsUTF8(key), value, construct, true);
    }
  }
  put("datetime.datetime", k->datetime_type, construct, true);
  put("datetime.date", k->date_type, construct, true);
  put("datetime.time", k->time_type, construct, true);
  put("datetime.timedelta", k->timedelta_type, construct, true);
  put("datetime.timezone", k->timezone_type, construct, true);
  put("decimal.Decimal", k->decimal_type, construct, true);
  put("uuid.UUID", k->uuid_type, construct, true);
  r.defaults_loaded = true;
  return true;
}

PyObject* find_loaded(std::string_view name) {
  PyObject* modules = PyImport_GetModuleDict();  // borrowed
  std::size_t dot = name.size();
  while (true) {
    dot = name.rfind('.', dot == 0 ? 0 : dot - 1);
    if (dot == std::string_view::npos || dot == 0) return nullptr;
    std::string mod(name.substr(0, dot));
    PyObject* m = PyDict_GetItemString(modules, mod.c_str());  // borrowed
    if (m == nullptr) continue;
    Ref cur = Ref::borrow(m);
    std::string_view rest = name.substr(dot + 1);
    while (!rest.empty()) {
      std::size_t d = rest.find('.');
      std::string part(rest.substr(0, d));
      cur = Ref(PyObject_GetAttrString(cur.get(), part.c_str()));
      if (!cur) {
        PyErr_Clear();
        return nullptr;
      }
      rest = d == std::string_view::npos ? std::string_view() : rest.substr(d + 1);
    }
    return cur.release();
  }
}

}  // namespace details

using details::Known;
using details::put;
using details::Ref;
using details::Registry;
using details::registry;
using details::Use;

bool register_allowed(PyObject* obj, std::string_view name) {
  const Known* k = details::known();
  if (k == nullptr || !details::load_defaults(k)) return false;
  std::string key(name);
  if (key.empty()) {
    const std::string* n = details::importable_name(obj);
    if (n == nullptr) return false;
    key = *n;
  }
  unsigned uses =
      PyType_Check(obj) ? (Use::kTypeRef | Use::kConstruct) : static_cast<unsigned>(Use::kFunction);
  if (!PyType_Check(obj) && !PyCallable_Check(obj)) {
    PyErr_SetString(PyExc_TypeError, "only classes and functions can be allowed");
    return false;
  }
  put(key, obj, uses, false);
  return true;
}

bool unregister_allowed(PyObject* obj, std::string_view name) {
  Registry& r = registry();
  std::string key(name);
  if (key.empty()) {
    const std::string* n = details::importable_name(obj);
    if (n == nullptr) return false;
    key = *n;
  }
  auto it = r.names.find(key);
  if (it != r.names.end() && !it->second.builtin) {
    Py_DECREF(it->second.object);
    r.names.erase(it);
  }
  return true;
}

PyObject* allowed_names() {
  Registry& r = registry();
  Ref out(PyList_New(0));
  if (!out) return nullptr;
  for (const auto& [name, entry] : r.names) {
    if (entry.builtin) continue;
    Ref s(PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size())));
    if (!s || PyList_Append(out.get(), s.get()) < 0) return nullptr;
  }
  if (PyList_Sort(out.get()) < 0) return nullptr;
  return out.release();
}

}  // namespace prpc::python
