// The jsonpickle encoder's rules for class instances (Pickler._flatten_obj_instance): the
// built-in handlers, the reduce route, and the py/object route with its state.
#include "encoder.hpp"

#include <datetime.h>

namespace prpc::python::details {

bool import_datetime() {
  if (PyDateTimeAPI == nullptr) PyDateTime_IMPORT;
  return PyDateTimeAPI != nullptr;
}

// jsonpickle's built-in handlers (exact types only), and fast paths with the same output as the
// reduce route. nullopt: `o` is none of these.
std::optional<bool> Encoder::builtin(PyObject* o, PyObject* cls) {
  if (cls == k_->datetime_type) return datetime_handler(o, "datetime.datetime");
  if (cls == k_->date_type) return datetime_handler(o, "datetime.date");
  if (cls == k_->time_type) return datetime_handler(o, "datetime.time");
  if (cls == k_->uuid_type) {
    // UUID.hex is '%032x' % self.int; reading the int slot avoids the property call.
    Ref value(PyObject_GetAttrString(o, "int"));
    if (!value) return false;
    unsigned char raw[16];
    if (!PyLong_Check(value.get()) ||
        _PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(value.get()), raw, 16, 0, 0) < 0) {
      return false;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    out_ += "{\"py/object\": \"uuid.UUID\", \"hex\": \"";
    for (unsigned char b : raw) {
      out_ += kHex[b >> 4];
      out_ += kHex[b & 0xf];
    }
    out_ += "\"}";
    return true;
  }
  if (cls == k_->timezone_type) {
    // timezone.__reduce__() is (timezone, self.__getinitargs__()): (offset[, name]).
    Ref args(PyObject_CallMethod(o, "__getinitargs__", nullptr));
    if (!args || !PyTuple_Check(args.get())) return false;
    keep(Ref::borrow(args.get()).release());
    out_ += "{\"py/reduce\": [{\"py/type\": \"datetime.timezone\"}, {\"py/tuple\": [";
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args.get()); ++i) {
      if (i) out_ += ", ";
      if (!flatten(PyTuple_GET_ITEM(args.get(), i))) return false;
    }
    out_ += "]}]}";
    return true;
  }
  if (cls == k_->pattern_type) {
    Ref pattern(PyObject_GetAttrString(o, "pattern"));
    if (!pattern) return false;
    out_ += "{\"py/object\": \"re.Pattern\", \"pattern\": ";
    if (!flatten(pattern.get())) return false;
    out_ += '}';
    return true;
  }
  if (cls == k_->timedelta_type) {
    out_ += "{\"py/reduce\": [{\"py/type\": \"datetime.timedelta\"}, {\"py/tuple\": [";
    out_ += std::to_string(PyDateTime_DELTA_GET_DAYS(o)) + ", " +
            std::to_string(PyDateTime_DELTA_GET_SECONDS(o)) + ", " +
            std::to_string(PyDateTime_DELTA_GET_MICROSECONDS(o));
    out_ += "]}]}";
    return true;
  }
  if (cls == k_->decimal_type) {
    Ref s(PyObject_Str(o));
    if (!s) return false;
    out_ += "{\"py/reduce\": [{\"py/type\": \"decimal.Decimal\"}, {\"py/tuple\": [";
    append_str(out_, s.get());
    out_ += "]}]}";
    return true;
  }
  return std::nullopt;
}

// datetime, date and time: (cls, (state_bytes[, tzinfo])) of pickle protocol 2.
bool Encoder::datetime_handler(PyObject* o, const char* cls_name) {
  // (cls, (state_bytes[, tzinfo])) of protocol 2: no fold bit.
  unsigned char state[10];
  std::size_t n = 0;
  PyObject* tz = Py_None;
  PyTypeObject* t = Py_TYPE(o);
  if (t == PyDateTimeAPI->DateTimeType) {
    int y = PyDateTime_GET_YEAR(o);
    int us = PyDateTime_DATE_GET_MICROSECOND(o);
    unsigned char s[10] = {static_cast<unsigned char>(y >> 8),
                           static_cast<unsigned char>(y & 0xff),
                           static_cast<unsigned char>(PyDateTime_GET_MONTH(o)),
                           static_cast<unsigned char>(PyDateTime_GET_DAY(o)),
                           static_cast<unsigned char>(PyDateTime_DATE_GET_HOUR(o)),
                           static_cast<unsigned char>(PyDateTime_DATE_GET_MINUTE(o)),
                           static_cast<unsigned char>(PyDateTime_DATE_GET_SECOND(o)),
                           static_cast<unsigned char>((us >> 16) & 0xff),
                           static_cast<unsigned char>((us >> 8) & 0xff),
                           static_cast<unsigned char>(us & 0xff)};
    std::copy(s, s + 10, state);
    n = 10;
    tz = PyDateTime_DATE_GET_TZINFO(o);
  } else if (t == PyDateTimeAPI->DateType) {
    int y = PyDateTime_GET_YEAR(o);
    unsigned char s[4] = {static_cast<unsigned char>(y >> 8), static_cast<unsigned char>(y & 0xff),
                          static_cast<unsigned char>(PyDateTime_GET_MONTH(o)),
                          static_cast<unsigned char>(PyDateTime_GET_DAY(o))};
    std::copy(s, s + 4, state);
    n = 4;
  } else {
    int us = PyDateTime_TIME_GET_MICROSECOND(o);
    unsigned char s[6] = {static_cast<unsigned char>(PyDateTime_TIME_GET_HOUR(o)),
                          static_cast<unsigned char>(PyDateTime_TIME_GET_MINUTE(o)),
                          static_cast<unsigned char>(PyDateTime_TIME_GET_SECOND(o)),
                          static_cast<unsigned char>((us >> 16) & 0xff),
                          static_cast<unsigned char>((us >> 8) & 0xff),
                          static_cast<unsigned char>(us & 0xff)};
    std::copy(s, s + 6, state);
    n = 6;
    tz = PyDateTime_TIME_GET_TZINFO(o);
  }
  out_ += "{\"py/object\": \"";
  out_ += cls_name;
  out_ += "\", \"__reduce__\": [{\"py/type\": \"";
  out_ += cls_name;
  out_ += "\"}, [\"";
  out_ += jsonpickle::base64_encode(std::string_view(reinterpret_cast<const char*>(state), n));
  out_ += '"';
  if (tz != Py_None) {
    out_ += ", ";
    if (!flatten(tz)) return false;
  }
  out_ += "]]}";
  return true;
}

// Pickler._flatten_obj_instance for an object already numbered.
bool Encoder::instance(PyObject* o) {
  PyObject* cls = reinterpret_cast<PyObject*>(Py_TYPE(o));
  if (std::optional<bool> done = builtin(o, cls)) return *done;
  const std::string* class_name = importable_name(cls);
  if (class_name == nullptr) return false;
  if (*class_name == "array.array" || *class_name == "queue.Queue" ||
      *class_name == "_thread.lock" || *class_name == "_io.TextIOWrapper" || PyModule_Check(o)) {
    return fail_encode("cannot encode a " + *class_name);
  }

  // hasattr(obj, "__dict__") comes first in jsonpickle and creates an exception's __dict__,
  // which its __reduce__ then returns as the state.
  bool has_dict = PyObject_HasAttrString(o, "__dict__") != 0;
  (void)has_dict;
  bool reduce = false;
  bool reduce_ex = false;
  has_reduce(o, reduce, reduce_ex);
  bool own_getstate = false;
  {
    Ref gs(PyObject_GetAttrString(cls, "__getstate__"));
    PyErr_Clear();
    own_getstate = gs && gs.get() != k_->object_getstate;
  }
  if (std::optional<bool> done = reduced(o, *class_name, reduce, reduce_ex, own_getstate)) {
    return *done;
  }
  out_ += "{\"py/object\": ";
  append_name(*class_name);
  if (!constructor_args(o)) return false;
  if (own_getstate) {
    if (std::optional<bool> done = object_state(o, *class_name)) return *done;
  }
  if (PyDict_Check(o)) return dict_subclass(o, *class_name);
  if (PyList_Check(o) || PyTuple_Check(o) || PyAnySet_Check(o)) return sequence_subclass(o);
  if (PyIter_Check(o)) return fail_encode("cannot encode an iterator (" + *class_name + ")");
  PyObject** dictptr = _PyObject_GetDictPtr(o);
  if (dictptr != nullptr) {
    Ref d(PyObject_GetAttrString(o, "__dict__"));
    if (!d) return false;
    if (PyDict_Check(d.get()) && !dict_members(d.get(), false)) return false;
    out_ += '}';
    return true;
  }
  return slot_members(o, cls);
}

// The reduce route: __reduce_ex__(2) or __reduce__ when the class overrides one, unless the
// state it returns would need an insane __getstate__. nullopt: take the py/object route.
std::optional<bool> Encoder::reduced(PyObject* o, const std::string& class_name, bool reduce,
                                     bool reduce_ex, bool own_getstate) {
  Ref rv;
  if (reduce && !reduce_ex) {
    rv = Ref(PyObject_CallMethod(o, "__reduce__", nullptr));
  } else if (reduce_ex) {
    rv = Ref(PyObject_CallMethod(o, "__reduce_ex__", "i", 2));
  }
  if (!rv && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) return false;
    PyErr_Clear();
  }
  if (rv && PyUnicode_Check(rv.get())) {
    return fail_encode("cannot encode a " + class_name + " whose __reduce__ returns a name");
  }
  if (rv && PyObject_IsTrue(rv.get()) == 1) {
    // The state is only used when __getstate__/__setstate__ are sane (jsonpickle's rule).
    Ref items(PySequence_Tuple(rv.get()));
    if (!items) return false;
    PyObject* state =
        PyTuple_GET_SIZE(items.get()) > 2 ? PyTuple_GET_ITEM(items.get(), 2) : Py_None;
    int state_true = PyObject_IsTrue(state);
    if (state_true < 0) return false;
    bool insane = state_true && own_getstate && !PyObject_HasAttrString(o, "__setstate__") &&
                  !PyDict_Check(o);
    if (!insane) {
      keep(rv.release());
      return reduce_value(keep_.back());
    }
  }

  return std::nullopt;
}

// py/newargsex, py/newargs and py/initargs, where the object has the methods.
bool Encoder::constructor_args(PyObject* o) {
  if (has_method(o, "__getnewargs_ex__")) {
    Ref args;
    if (!call_into(o, "__getnewargs_ex__", args)) return false;
    keep(Ref::borrow(args.get()).release());
    out_ += ", \"py/newargsex\": [";
    if (!items(args.get())) return false;
    out_ += ']';
  } else if (has_method(o, "__getnewargs__")) {
    Ref args;
    if (!call_into(o, "__getnewargs__", args)) return false;
    keep(Ref::borrow(args.get()).release());
    out_ += ", \"py/newargs\": ";
    if (!flatten(args.get())) return false;
  }
  if (has_method(o, "__getinitargs__")) {
    Ref args;
    if (!call_into(o, "__getinitargs__", args)) return false;
    keep(Ref::borrow(args.get()).release());
    out_ += ", \"py/initargs\": ";
    if (!flatten(args.get())) return false;
  }
  return true;
}

// A class's own __getstate__: py/state when it returns something true. nullopt: it returned
// nothing to write, and the object's members follow.
std::optional<bool> Encoder::object_state(PyObject* o, const std::string& class_name) {
  Ref state;
  if (!call_into(o, "__getstate__", state)) {
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) return false;
    PyErr_Clear();
    return fail_encode("cannot encode a " + class_name + ": __getstate__ failed");
  }
  int truth = PyObject_IsTrue(state.get());
  if (truth < 0) return false;
  if (truth) {
    keep(Ref::borrow(state.get()).release());
    out_ += ", \"py/state\": ";
    if (!flatten(state.get())) return false;
    out_ += '}';
    return true;
  }
  return std::nullopt;
}

// A dict subclass: its items, then "default_factory" (a defaultdict's) and its __dict__ (a
// tracked dict of its own). jsonpickle assigns these two into the dict that already holds the
// items: an item with the same key keeps its place and takes the new value.
bool Encoder::dict_subclass(PyObject* o, const std::string& class_name) {
  Ref factory(PyObject_GetAttrString(o, "default_factory"));
  if (!factory) PyErr_Clear();
  bool has_factory = factory && PyCallable_Check(factory.get());
  if (has_factory && !PyType_Check(factory.get())) {
    return fail_encode("cannot encode a " + class_name + " whose default_factory is not a type");
  }
  PyObject* d = nullptr;
  PyObject** dictptr = _PyObject_GetDictPtr(o);
  if (dictptr != nullptr) {
    if (*dictptr == nullptr) {
      Ref made(PyObject_GetAttrString(o, "__dict__"));
      if (!made) return false;
    }
    d = *dictptr;
  }
  Slot slots[2] = {{has_factory ? "default_factory" : nullptr},
                   {d != nullptr ? "__dict__" : nullptr}};
  if (!dict_members(o, false, slots, 2)) return false;
  // Encoded in jsonpickle's order (the factory, then __dict__: py/id numbering), each into
  // its item's place or appended.
  std::string texts[2];
  bool present[2] = {false, false};
  if (has_factory) {
    std::swap(texts[0], out_);
    bool ok = type_ref(factory.get());
    std::swap(texts[0], out_);
    if (!ok) return false;
    present[0] = true;
  }
  if (d != nullptr && PyObject_RichCompareBool(o, d, Py_NE) == 1) {
    std::swap(texts[1], out_);
    bool ok = seen(d) || dict_members(d, true);
    std::swap(texts[1], out_);
    if (!ok) return false;
    present[1] = true;
  }
  // Replace from the later place back, so the earlier place's offsets stay right.
  int order[2] = {0, 1};
  if (slots[0].found && slots[1].found && slots[0].start < slots[1].start) {
    order[0] = 1;
    order[1] = 0;
  }
  for (int i : order) {
    if (present[i] && slots[i].found) {
      out_.replace(slots[i].start, slots[i].end - slots[i].start, texts[i]);
    }
  }
  for (int i = 0; i < 2; ++i) {
    if (present[i] && !slots[i].found) {
      out_ += i == 0 ? ", \"default_factory\": " : ", \"__dict__\": ";
      out_ += texts[i];
    }
  }
  out_ += '}';
  return true;
}

// A list, tuple or set subclass: its __dict__ members, then py/seq.
bool Encoder::sequence_subclass(PyObject* o) {
  PyObject** dictptr = _PyObject_GetDictPtr(o);
  if (dictptr != nullptr && *dictptr != nullptr) {
    if (!dict_members(*dictptr, false)) return false;
  }
  out_ += ", \"py/seq\": [";
  if (!iterate(o)) return false;
  out_ += "]}";
  return true;
}

// __slots__ along the MRO.
bool Encoder::slot_members(PyObject* o, PyObject* cls) {
  Ref mro(PyObject_GetAttrString(cls, "__mro__"));
  if (!mro) return false;
  bool any = false;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro.get()); ++i) {
    Ref slots(PyObject_GetAttrString(PyTuple_GET_ITEM(mro.get(), i), "__slots__"));
    if (!slots) {
      PyErr_Clear();
      continue;
    }
    if (PyUnicode_Check(slots.get())) {
      slots = Ref(PyTuple_Pack(1, slots.get()));
      if (!slots) return false;
    }
    Ref names(PySequence_Fast(slots.get(), "__slots__"));
    if (!names) return false;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(names.get()); ++j) {
      PyObject* name = PySequence_Fast_ITEMS(names.get())[j];
      if (!PyUnicode_Check(name)) continue;
      Ref attr_name = Ref::borrow(name);
      if (PyUnicode_GET_LENGTH(name) >= 2 && PyUnicode_READ_CHAR(name, 0) == '_' &&
          PyUnicode_READ_CHAR(name, 1) == '_') {
        Ref simple(PyObject_GetAttrString(cls, "__name__"));
        if (!simple) return false;
        attr_name = Ref(PyUnicode_FromFormat("_%U%U", simple.get(), name));
        if (!attr_name) return false;
      }
      Ref value(PyObject_GetAttr(o, attr_name.get()));
      if (!value) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return false;
        PyErr_Clear();
        continue;
      }
      if (is_reserved_str(name) || !picklable_value(value.get())) {
        any = true;
        continue;
      }
      out_ += ", ";
      append_str(out_, name);
      out_ += ": ";
      keep(Ref::borrow(value.get()).release());
      if (!flatten(value.get())) return false;
      any = true;
    }
  }
  (void)any;
  out_ += '}';
  return true;
}

}  // namespace prpc::python::details
