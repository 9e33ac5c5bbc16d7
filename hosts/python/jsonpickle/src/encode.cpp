// The jsonpickle encoder: a port of jsonpickle 4.x's Pickler (default settings: unpicklable,
// make_refs, keys=False) that writes JSON text directly. Ids are given in the same order as
// jsonpickle's flatten calls, and output order equals flatten order, so one pass suffices.
#include "common.hpp"

#include <datetime.h>

#include <array>
#include <unordered_map>
#include <vector>

namespace prpc::python {

namespace {

using details::append_float;
using details::append_int;
using details::append_str;
using details::fail_encode;
using details::importable_name;
using details::Known;
using details::Ref;

constexpr std::array<std::string_view, 19> kReserved = {
    "py/bytes",  "py/function", "py/id",    "py/initargs", "py/iterator", "py/mod", "py/newargs",
    "py/newargsex", "py/newobj", "py/object", "py/property", "py/reduce", "py/ref",  "py/repr",
    "py/seq",    "py/set",      "py/state", "py/tuple",    "py/type"};

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

// util.is_module_function: a named function or builtin (not a lambda) with a __module__.
bool is_module_function(PyObject* o) {
  if (!PyFunction_Check(o) && !PyCFunction_Check(o)) return false;
  if (!PyObject_HasAttrString(o, "__module__")) return false;
  Ref name(PyObject_GetAttrString(o, "__name__"));
  if (!name) {
    PyErr_Clear();
    return false;
  }
  return PyUnicode_Check(name.get()) && PyUnicode_CompareWithASCIIString(name.get(), "<lambda>") != 0;
}

// util.is_picklable for a dict value: functions are dropped unless module-level.
bool picklable_value(PyObject* v) { return !is_function_type(v) || is_module_function(v); }

class Encoder {
 public:
  Encoder(std::string& out, const Limits& limits, const Known* k)
      : out_(out), limits_(limits), k_(k) {}
  ~Encoder() {
    for (PyObject* o : keep_) Py_DECREF(o);
  }

  bool flatten(PyObject* o) {
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
      out_ += jsonpickle::base64_encode(std::string_view(
          PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o))));
      out_ += "\"}";
      return true;
    }
    if (depth_ >= limits_.max_depth) {
      return fail_encode("value nests deeper than " + std::to_string(limits_.max_depth) +
                         " levels");
    }
    ++depth_;
    bool ok = flatten_container(o, t);
    --depth_;
    return ok;
  }

 private:
  // Returns true and writes a reference when `o` was seen; else numbers it.
  bool seen(PyObject* o) {
    auto [it, fresh] = ids_.emplace(o, static_cast<long>(ids_.size()));
    if (fresh) return false;
    out_ += "{\"py/id\": ";
    out_ += std::to_string(it->second);
    out_ += '}';
    return true;
  }

  // Keeps a temporary alive until the end, as jsonpickle's _seen list does, so that ids (which
  // are addresses) are never reused within one encoding.
  PyObject* keep(PyObject* o) {
    if (o != nullptr) keep_.push_back(o);
    return o;
  }

  bool items(PyObject* seq) {
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

  bool iterate(PyObject* it_source) {
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

  bool flatten_container(PyObject* o, PyTypeObject* t) {
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

  void append_name(const std::string& name) {
    out_ += '"';
    out_ += name;  // importable names are identifiers and dots
    out_ += '"';
  }

  bool type_ref(PyObject* cls) {
    const std::string* name = importable_name(cls);
    if (name == nullptr) return false;
    out_ += "{\"py/type\": ";
    append_name(*name);
    out_ += '}';
    return true;
  }

  // Members of a dict as jsonpickle's _flatten_dict_obj writes them with keys=False: keys that
  // are reserved tags and non-module functions are dropped, None becomes "null", other non-str
  // keys their repr(). `braces` false continues an object already opened (py/object ...): each
  // member is then preceded by ", ".
  // Where an item's value went in out_, for items whose key jsonpickle later assigns again.
  struct Slot {
    const char* key = nullptr;  // nullptr: no slot wanted
    bool found = false;
    std::size_t start = 0;
    std::size_t end = 0;
  };

  static bool key_is(PyObject* k, const char* name) {
    return PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, name) == 0;
  }

  // `slots`: keys whose value jsonpickle's dict later overwrites in place (a dict subclass's
  // "default_factory" and "__dict__"); their value is still encoded (it numbers py/ids) and its
  // span recorded, for the caller to replace.
  bool dict_members(PyObject* d, bool braces, Slot* slots = nullptr, std::size_t n_slots = 0) {
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

  bool datetime_handler(PyObject* o, const char* cls_name) {
    // (cls, (state_bytes[, tzinfo])) of protocol 2: no fold bit.
    unsigned char state[10];
    std::size_t n = 0;
    PyObject* tz = Py_None;
    PyTypeObject* t = Py_TYPE(o);
    if (t == PyDateTimeAPI->DateTimeType) {
      int y = PyDateTime_GET_YEAR(o);
      int us = PyDateTime_DATE_GET_MICROSECOND(o);
      unsigned char s[10] = {
          static_cast<unsigned char>(y >> 8), static_cast<unsigned char>(y & 0xff),
          static_cast<unsigned char>(PyDateTime_GET_MONTH(o)),
          static_cast<unsigned char>(PyDateTime_GET_DAY(o)),
          static_cast<unsigned char>(PyDateTime_DATE_GET_HOUR(o)),
          static_cast<unsigned char>(PyDateTime_DATE_GET_MINUTE(o)),
          static_cast<unsigned char>(PyDateTime_DATE_GET_SECOND(o)),
          static_cast<unsigned char>((us >> 16) & 0xff), static_cast<unsigned char>((us >> 8) & 0xff),
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
    out_ += jsonpickle::base64_encode(
        std::string_view(reinterpret_cast<const char*>(state), n));
    out_ += '"';
    if (tz != Py_None) {
      out_ += ", ";
      if (!flatten(tz)) return false;
    }
    out_ += "]]}";
    return true;
  }

  // util.is_reducible: types that other rules write never use their __reduce__.
  bool is_reducible(PyObject* o) {
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
        t == &PyBaseObject_Type || t == &PyBytes_Type || t == &PyUnicode_Type ||
        t == &PyBool_Type || t == &PyLong_Type || t == &PyFloat_Type || o == Py_None ||
        is_function_type(o)) {
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

  // util.has_reduce, reduced to what decides its answer: an override of __reduce__ /
  // __reduce_ex__ on the instance or anywhere in the class's MRO (object's do not count).
  void has_reduce(PyObject* o, bool& reduce, bool& reduce_ex) {
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

  // Writes {"py/reduce": [...]} for a reduce value, trimming trailing None items after the
  // second, as jsonpickle does. Returns false with an exception on failure.
  bool reduce_value(PyObject* rv) {
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

  bool has_method(PyObject* o, const char* name) {
    Ref m(PyObject_GetAttrString(o, name));
    if (!m) {
      PyErr_Clear();
      return false;
    }
    return PyCallable_Check(m.get()) != 0;
  }

  bool call_into(PyObject* o, const char* method, Ref& result) {
    result = Ref(PyObject_CallMethod(o, method, nullptr));
    return static_cast<bool>(result);
  }

  // Pickler._flatten_obj_instance for an object already numbered.
  bool instance(PyObject* o) {
    PyTypeObject* t = Py_TYPE(o);
    PyObject* cls = reinterpret_cast<PyObject*>(t);
    // jsonpickle's built-in handlers (exact types only).
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
    // Fast paths with the same output as the reduce route below.
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
    const std::string* class_name = importable_name(cls);
    if (class_name == nullptr) return false;
    if (*class_name == "array.array" || *class_name == "queue.Queue" ||
        *class_name == "_thread.lock" || *class_name == "_io.TextIOWrapper" ||
        PyModule_Check(o)) {
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
      return fail_encode("cannot encode a " + *class_name + " whose __reduce__ returns a name");
    }
    if (rv && PyObject_IsTrue(rv.get()) == 1) {
      // The state is only used when __getstate__/__setstate__ are sane (jsonpickle's rule).
      Ref items(PySequence_Tuple(rv.get()));
      if (!items) return false;
      PyObject* state = PyTuple_GET_SIZE(items.get()) > 2 ? PyTuple_GET_ITEM(items.get(), 2) : Py_None;
      int state_true = PyObject_IsTrue(state);
      if (state_true < 0) return false;
      bool insane = state_true && own_getstate && !PyObject_HasAttrString(o, "__setstate__") &&
                    !PyDict_Check(o);
      if (!insane) {
        keep(rv.release());
        return reduce_value(keep_.back());
      }
    }

    out_ += "{\"py/object\": ";
    append_name(*class_name);
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
    if (own_getstate) {
      Ref state;
      if (!call_into(o, "__getstate__", state)) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return false;
        PyErr_Clear();
        return fail_encode("cannot encode a " + *class_name + ": __getstate__ failed");
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
    }
    if (PyDict_Check(o)) {
      // A dict subclass: its items, then "default_factory" (a defaultdict's) and its __dict__
      // (a tracked dict of its own). jsonpickle assigns these two into the dict that already
      // holds the items: an item with the same key keeps its place and takes the new value.
      Ref factory(PyObject_GetAttrString(o, "default_factory"));
      if (!factory) PyErr_Clear();
      bool has_factory = factory && PyCallable_Check(factory.get());
      if (has_factory && !PyType_Check(factory.get())) {
        return fail_encode("cannot encode a " + *class_name + " whose default_factory is not a type");
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
    bool seq_subclass = PyList_Check(o) || PyTuple_Check(o) || PyAnySet_Check(o);
    if (seq_subclass) {
      PyObject** dictptr = _PyObject_GetDictPtr(o);
      if (dictptr != nullptr && *dictptr != nullptr) {
        if (!dict_members(*dictptr, false)) return false;
      }
      out_ += ", \"py/seq\": [";
      if (!iterate(o)) return false;
      out_ += "]}";
      return true;
    }
    if (PyIter_Check(o)) return fail_encode("cannot encode an iterator (" + *class_name + ")");
    PyObject** dictptr = _PyObject_GetDictPtr(o);
    if (dictptr != nullptr) {
      Ref d(PyObject_GetAttrString(o, "__dict__"));
      if (!d) return false;
      if (PyDict_Check(d.get()) && !dict_members(d.get(), false)) return false;
      out_ += '}';
      return true;
    }
    // __slots__ along the MRO.
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

  std::string& out_;
  const Limits& limits_;
  const Known* k_;
  std::unordered_map<PyObject*, long> ids_;
  std::vector<PyObject*> keep_;
  std::size_t depth_ = 0;
};

}  // namespace

bool jsonpickle_encode(PyObject* value, std::string& out, const Limits& limits) {
  const Known* k = details::known();
  if (k == nullptr) return false;
  if (PyDateTimeAPI == nullptr) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == nullptr) return false;
  }
  out.clear();
  const Limits safe = details::stack_safe(limits);
  Encoder e(out, safe, k);
  if (!e.flatten(value)) return false;
  if (out.size() > limits.max_bytes) {
    return details::fail_encode("encoded value of " + std::to_string(out.size()) +
                                " bytes exceeds the limit of " + std::to_string(limits.max_bytes));
  }
  return true;
}

}  // namespace prpc::python
