// The jsonpickle encoder (encoder.hpp): values, containers and dicts, and the entry point.
#include "encoder.hpp"

#include <array>

namespace prpc::python {

namespace details {

namespace {

constexpr std::array<std::string_view, 19> kReserved = {
    "py/bytes",    "py/function", "py/id",        "py/initargs", "py/iterator",
    "py/mod",      "py/newargs",  "py/newargsex", "py/newobj",   "py/object",
    "py/property", "py/reduce",   "py/ref",       "py/repr",     "py/seq",
    "py/set",      "py/state",    "py/tuple",     "py/type"};

// util.is_module_function: a named function or builtin (not a lambda) with a __module__.
bool is_module_function(PyObject* o) {
  if (!PyFunction_Check(o) && !PyCFunction_Check(o)) return false;
  if (!PyObject_HasAttrString(o, "__module__")) return false;
  Ref name(PyObject_GetAttrString(o, "__name__"));
  if (!name) {
    PyErr_Clear();
    return false;
  }
  return PyUnicode_Check(name.get()) &&
         PyUnicode_CompareWithASCIIString(name.get(), "<lambda>") != 0;
}

}  // namespace

bool is_reserved_str(PyObject* k) {
  if (!PyUnicode_Check(k) || !PyUnicode_IS_ASCII(k)) return false;
  Py_ssize_t n = PyUnicode_GET_LENGTH(k);
  if (n < 5 || n > 12) return false;
  std::string_view v(reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(k)),
                     static_cast<std::size_t>(n));
  if (v.substr(0, 3) != "py/") return false;
  for (auto r : kReserved) {
    if (r == v) return true;
  }
  return false;
}

bool is_function_type(PyObject* o) {
  PyTypeObject* t = Py_TYPE(o);
  return t == &PyFunction_Type || t == &PyMethod_Type || t == &PyCFunction_Type;
}

bool picklable_value(PyObject* v) { return !is_function_type(v) || is_module_function(v); }

bool Encoder::flatten(PyObject* o) {
  PyTypeObject* t = Py_TYPE(o);
  if (t == &PyUnicode_Type) {
    append_str(out_, o);
    return true;
  }
  if (o == Py_None) {
    out_ += "null";
    return true;
  }
  if (t == &PyBool_Type) {
    out_ += o == Py_True ? "true" : "false";
    return true;
  }
  if (t == &PyLong_Type) return append_int(out_, o, limits_.max_int_digits);
  if (t == &PyFloat_Type) {
    append_float(out_, PyFloat_AS_DOUBLE(o));
    return true;
  }
  if (t == &PyBytes_Type) {
    out_ += "{\"py/b64\": \"";
    out_ += jsonpickle::base64_encode(
        std::string_view(PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o))));
    out_ += "\"}";
    return true;
  }
  if (depth_ >= limits_.max_depth) {
    return fail_encode("value nests deeper than " + std::to_string(limits_.max_depth) + " levels");
  }
  ++depth_;
  bool ok = flatten_container(o, t);
  --depth_;
  return ok;
}

bool Encoder::seen(PyObject* o) {
  auto [it, fresh] = ids_.emplace(o, static_cast<long>(ids_.size()));
  if (fresh) return false;
  out_ += "{\"py/id\": ";
  out_ += std::to_string(it->second);
  out_ += '}';
  return true;
}

PyObject* Encoder::keep(PyObject* o) {
  if (o != nullptr) keep_.push_back(o);
  return o;
}

bool Encoder::items(PyObject* seq) {
  Ref fast(PySequence_Fast(seq, "expected a sequence"));
  if (!fast) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast.get());
  PyObject** v = PySequence_Fast_ITEMS(fast.get());
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (i) out_ += ", ";
    if (!flatten(v[i])) return false;
  }
  return true;
}

bool Encoder::iterate(PyObject* it_source) {
  Ref it(PyObject_GetIter(it_source));
  if (!it) return false;
  bool first = true;
  while (PyObject* raw = PyIter_Next(it.get())) {
    keep(raw);  // an iterator may yield temporaries; ids are addresses
    if (!first) out_ += ", ";
    first = false;
    if (!flatten(raw)) return false;
  }
  return !PyErr_Occurred();
}

bool Encoder::flatten_container(PyObject* o, PyTypeObject* t) {
  if (t == &PyList_Type) {
    if (seen(o)) return true;
    out_ += '[';
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(o); ++i) {
      if (i) out_ += ", ";
      if (!flatten(PyList_GET_ITEM(o, i))) return false;
    }
    out_ += ']';
    return true;
  }
  if (t == &PyDict_Type) {
    if (seen(o)) return true;
    return dict_members(o, /*braces=*/true);
  }
  if (t == &PyTuple_Type) {
    out_ += "{\"py/tuple\": [";
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); ++i) {
      if (i) out_ += ", ";
      if (!flatten(PyTuple_GET_ITEM(o, i))) return false;
    }
    out_ += "]}";
    return true;
  }
  if (t == &PySet_Type) {
    out_ += "{\"py/set\": [";
    if (!iterate(o)) return false;
    out_ += "]}";
    return true;
  }
  if (is_module_function(o)) {
    const std::string* name = importable_name(o);
    if (name == nullptr) return false;
    out_ += "{\"py/function\": ";
    append_name(*name);
    out_ += '}';
    return true;
  }
  if (PyType_Check(o)) {
    return type_ref(o);
  }
  if (PyFunction_Check(o) || PyCFunction_Check(o)) {
    out_ += "null";  // lambdas: jsonpickle cannot pickle them and writes None
    return true;
  }
  if (seen(o)) return true;
  return instance(o);
}

void Encoder::append_name(const std::string& name) {
  out_ += '"';
  out_ += name;  // importable names are identifiers and dots
  out_ += '"';
}

bool Encoder::type_ref(PyObject* cls) {
  const std::string* name = importable_name(cls);
  if (name == nullptr) return false;
  out_ += "{\"py/type\": ";
  append_name(*name);
  out_ += '}';
  return true;
}

bool Encoder::key_is(PyObject* k, const char* name) {
  return PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, name) == 0;
}

bool Encoder::dict_members(PyObject* d, bool braces, Slot* slots, std::size_t n_slots) {
  auto slot_for = [&](PyObject* k) -> Slot* {
    for (std::size_t i = 0; i < n_slots; ++i) {
      if (slots[i].key != nullptr && key_is(k, slots[i].key)) return &slots[i];
    }
    return nullptr;
  };
  if (braces) out_ += '{';
  bool first = braces;
  Py_ssize_t pos = 0;
  PyObject* k = nullptr;
  PyObject* v = nullptr;
  // Non-str keys may collide after repr(); then the later value replaces the earlier one in
  // place, as in the dict jsonpickle builds. Rare, so only that case buffers.
  bool all_str = true;
  while (PyDict_Next(d, &pos, &k, &v)) {
    if (!PyUnicode_CheckExact(k)) {
      all_str = false;
      break;
    }
  }
  if (all_str) {
    // Flattening a value can run code (__reduce__, __getstate__) that mutates the dict:
    // hold the pair while it is used and stop, as Python does, when the size changes.
    Py_ssize_t size = PyDict_GET_SIZE(d);
    pos = 0;
    while (PyDict_Next(d, &pos, &k, &v)) {
      if (is_reserved_str(k) || !picklable_value(v)) continue;
      Ref hold_k = Ref::borrow(k);
      Ref hold_v = Ref::borrow(v);
      if (!first) out_ += ", ";
      first = false;
      append_str(out_, k);
      out_ += ": ";
      Slot* slot = slot_for(k);
      std::size_t start = out_.size();
      if (!flatten(v)) return false;
      if (slot != nullptr) *slot = Slot{slot->key, true, start, out_.size()};
      if (PyDict_GET_SIZE(d) != size) {
        PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during encoding");
        return false;
      }
    }
  } else {
    Ref snapshot(PyDict_Items(d));
    if (!snapshot) return false;
    std::vector<std::pair<std::string, std::string>> members;
    std::vector<Slot*> member_slots;
    std::unordered_map<std::string, std::size_t> index;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(snapshot.get()); ++i) {
      PyObject* pair = PyList_GET_ITEM(snapshot.get(), i);
      k = PyTuple_GET_ITEM(pair, 0);
      v = PyTuple_GET_ITEM(pair, 1);
      if (!picklable_value(v)) continue;
      int reserved = 0;
      if (PyUnicode_Check(k)) reserved = is_reserved_str(k);
      if (reserved) continue;
      std::string key;
      if (k == Py_None) {
        append_str(key, Ref(PyUnicode_FromString("null")).get());
      } else if (PyUnicode_Check(k)) {
        append_str(key, k);
      } else {
        Ref r(PyObject_Repr(k));
        if (!r) return false;
        append_str(key, r.get());
      }
      std::string value;
      std::swap(value, out_);
      bool ok = flatten(v);
      std::swap(value, out_);
      if (!ok) return false;
      auto [it, fresh] = index.emplace(key, members.size());
      if (fresh) {
        members.emplace_back(std::move(key), std::move(value));
        member_slots.push_back(slot_for(k));
      } else {
        members[it->second].second = std::move(value);
      }
    }
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (!first) out_ += ", ";
      first = false;
      out_ += members[i].first;
      out_ += ": ";
      std::size_t start = out_.size();
      out_ += members[i].second;
      if (Slot* slot = member_slots[i]; slot != nullptr) {
        *slot = Slot{slot->key, true, start, out_.size()};
      }
    }
  }
  if (braces) out_ += '}';
  return true;
}

bool Encoder::is_reducible(PyObject* o) {
  PyTypeObject* t = Py_TYPE(o);
  PyObject* cls = reinterpret_cast<PyObject*>(t);
  Ref mod(PyObject_GetAttrString(cls, "__module__"));
  PyErr_Clear();
  bool collections = mod && PyUnicode_Check(mod.get()) &&
                     PyUnicode_CompareWithASCIIString(mod.get(), "collections") == 0;
  if (collections && !PyDict_Check(o)) return true;
  if (collections && PyDict_Check(o)) {
    // OrderedDict and Counter reduce; defaultdict does not.
    if (!PyObject_HasAttrString(o, "default_factory")) return true;
  }
  if (t == &PyList_Type || t == &PyDict_Type || t == &PySet_Type || t == &PyTuple_Type ||
      t == &PyBaseObject_Type || t == &PyBytes_Type || t == &PyUnicode_Type || t == &PyBool_Type ||
      t == &PyLong_Type || t == &PyFloat_Type || o == Py_None || is_function_type(o)) {
    return false;
  }
  if (PyDict_Check(o) || PyModule_Check(o) || PyList_Check(o) || PyTuple_Check(o) ||
      (PyAnySet_Check(o) && !PyFrozenSet_CheckExact(o) && t != &PySet_Type)) {
    return false;
  }
  if (PyFrozenSet_CheckExact(o)) return true;
  if (PyObject_HasAttrString(o, "__getitem__") && PyObject_HasAttrString(o, "append")) {
    return false;
  }
  return true;
}

void Encoder::has_reduce(PyObject* o, bool& reduce, bool& reduce_ex) {
  reduce = reduce_ex = false;
  if (!is_reducible(o)) return;
  PyObject** dictptr = _PyObject_GetDictPtr(o);
  if (dictptr != nullptr && *dictptr != nullptr) {
    reduce = PyDict_GetItemString(*dictptr, "__reduce__") != nullptr;
    reduce_ex = PyDict_GetItemString(*dictptr, "__reduce_ex__") != nullptr;
  }
  PyObject* cls = reinterpret_cast<PyObject*>(Py_TYPE(o));
  if (!reduce) {
    Ref r(PyObject_GetAttrString(cls, "__reduce__"));
    PyErr_Clear();
    reduce = r && r.get() != k_->object_reduce;
  }
  if (!reduce_ex) {
    Ref r(PyObject_GetAttrString(cls, "__reduce_ex__"));
    PyErr_Clear();
    reduce_ex = r && r.get() != k_->object_reduce_ex;
  }
}

bool Encoder::reduce_value(PyObject* rv) {
  Ref items(PySequence_List(rv));
  if (!items) return false;
  while (PyList_GET_SIZE(items.get()) < 5) {
    if (PyList_Append(items.get(), Py_None) < 0) return false;
  }
  PyObject* f = PyList_GET_ITEM(items.get(), 0);
  Ref fname(PyObject_GetAttrString(f, "__name__"));
  PyErr_Clear();
  if (fname && PyUnicode_Check(fname.get()) &&
      PyUnicode_CompareWithASCIIString(fname.get(), "__newobj__") == 0) {
    PyObject* tag = PyUnicode_FromString("py/newobj");
    if (tag == nullptr) return false;
    PyList_SetItem(items.get(), 0, tag);
  }
  for (Py_ssize_t i = 3; i < 5; ++i) {
    PyObject* it = PyList_GET_ITEM(items.get(), i);
    int truth = PyObject_IsTrue(it);
    if (truth < 0) return false;
    if (truth) {
      PyObject* tup = PySequence_Tuple(it);
      if (tup == nullptr) return false;
      PyList_SetItem(items.get(), i, tup);
    }
  }
  keep(items.release());
  PyObject* list = keep_.back();
  out_ += "{\"py/reduce\": [";
  std::size_t ends[5];
  bool nulls[5];
  for (Py_ssize_t i = 0; i < 5; ++i) {
    if (i) out_ += ", ";
    std::size_t start = out_.size();
    if (!flatten(PyList_GET_ITEM(list, i))) return false;
    ends[i] = out_.size();
    nulls[i] = std::string_view(out_).substr(start) == "null";
  }
  int last = 4;
  while (last >= 2 && nulls[last]) --last;
  out_.resize(ends[last]);
  out_ += "]}";
  return true;
}

bool Encoder::has_method(PyObject* o, const char* name) {
  Ref m(PyObject_GetAttrString(o, name));
  if (!m) {
    PyErr_Clear();
    return false;
  }
  return PyCallable_Check(m.get()) != 0;
}

bool Encoder::call_into(PyObject* o, const char* method, Ref& result) {
  result = Ref(PyObject_CallMethod(o, method, nullptr));
  return static_cast<bool>(result);
}

}  // namespace details

bool jsonpickle_encode(PyObject* value, std::string& out, const Limits& limits) {
  const details::Known* k = details::known();
  if (k == nullptr) return false;
  if (!details::import_datetime()) return false;
  out.clear();
  const Limits safe = details::stack_safe(limits);
  details::Encoder e(out, safe, k);
  if (!e.flatten(value)) return false;
  if (out.size() > limits.max_bytes) {
    return details::fail_encode("encoded value of " + std::to_string(out.size()) +
                                " bytes exceeds the limit of " + std::to_string(limits.max_bytes));
  }
  return true;
}

}  // namespace prpc::python
