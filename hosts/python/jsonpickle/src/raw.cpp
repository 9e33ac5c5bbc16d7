// The raw dialect: plain JSON for clients in any language. Python values map to JSON types as
// json.dumps maps them (int/float/str subclasses as their base values, tuples as lists);
// datetimes, dates and times become their ISO 8601 text; anything else is an EncodeError.
#include <unordered_set>

#include "common.hpp"

namespace prpc::python {

namespace {

using details::fail_encode;
using details::Known;
using details::Ref;
using jsonpickle::Document;
using jsonpickle::Kind;
using jsonpickle::kNoNode;

class RawEncoder {
 public:
  RawEncoder(std::string& out, const Limits& limits, const Known* k)
      : out_(out), limits_(limits), k_(k) {}

  bool value(PyObject* o) {
    if (o == Py_None) {
      out_ += "null";
      return true;
    }
    if (o == Py_True || o == Py_False) {
      out_ += o == Py_True ? "true" : "false";
      return true;
    }
    if (PyUnicode_Check(o)) {
      details::append_str(out_, o);
      return true;
    }
    if (PyLong_Check(o)) {
      if (PyLong_CheckExact(o)) return details::append_int(out_, o, limits_.max_int_digits);
      Ref base(PyNumber_Long(o));  // int subclasses (IntEnum, ...) as json.dumps writes them
      return base && details::append_int(out_, base.get(), limits_.max_int_digits);
    }
    if (PyFloat_Check(o)) {
      details::append_float(out_, PyFloat_AS_DOUBLE(o));
      return true;
    }
    if (PyObject_IsInstance(o, k_->datetime_type) == 1 ||
        PyObject_IsInstance(o, k_->date_type) == 1 || PyObject_IsInstance(o, k_->time_type) == 1) {
      Ref iso(PyObject_CallMethod(o, "isoformat", nullptr));
      if (!iso) return false;
      details::append_str(out_, iso.get());
      return true;
    }
    bool is_list = PyList_Check(o) || PyTuple_Check(o);
    bool is_dict = PyDict_Check(o);
    if (!is_list && !is_dict) {
      return fail_encode(std::string("Object of type ") + Py_TYPE(o)->tp_name +
                         " is not JSON serializable");
    }
    if (depth_ >= limits_.max_depth) {
      return fail_encode("value nests deeper than " + std::to_string(limits_.max_depth) +
                         " levels");
    }
    if (!active_.insert(o).second) {
      PyErr_SetString(PyExc_ValueError, "Circular reference detected");
      return false;
    }
    ++depth_;
    bool ok = is_list ? list(o) : dict(o);
    --depth_;
    active_.erase(o);
    return ok;
  }

 private:
  bool list(PyObject* o) {
    Ref fast(PySequence_Fast(o, "expected a sequence"));
    if (!fast) return false;
    out_ += '[';
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast.get()); ++i) {
      if (i) out_ += ", ";
      if (!value(PySequence_Fast_ITEMS(fast.get())[i])) return false;
    }
    out_ += ']';
    return true;
  }

  bool dict(PyObject* o) {
    Ref items(PyDict_Items(o));
    if (!items) return false;
    out_ += '{';
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items.get()); ++i) {
      PyObject* pair = PyList_GET_ITEM(items.get(), i);
      PyObject* k = PyTuple_GET_ITEM(pair, 0);
      if (i) out_ += ", ";
      if (PyUnicode_Check(k)) {
        details::append_str(out_, k);
      } else if (k == Py_True || k == Py_False || k == Py_None) {
        out_ += k == Py_True ? "\"true\"" : k == Py_False ? "\"false\"" : "\"null\"";
      } else if (PyLong_Check(k) || PyFloat_Check(k)) {
        std::string text;
        std::swap(text, out_);
        bool ok = value(k);
        std::swap(text, out_);
        if (!ok) return false;
        out_ += '"';
        out_ += text;
        out_ += '"';
      } else {
        return fail_encode(std::string("keys must be str, int, float, bool or None, not ") +
                           Py_TYPE(k)->tp_name);
      }
      out_ += ": ";
      if (!value(PyTuple_GET_ITEM(pair, 1))) return false;
    }
    out_ += '}';
    return true;
  }

  std::string& out_;
  const Limits& limits_;
  const Known* k_;
  std::unordered_set<PyObject*> active_;
  std::size_t depth_ = 0;
};

PyObject* build(const Document& doc, std::uint32_t n) {
  const jsonpickle::Node& x = doc[n];
  switch (x.kind) {
    case Kind::kNull: Py_RETURN_NONE;
    case Kind::kTrue: Py_RETURN_TRUE;
    case Kind::kFalse: Py_RETURN_FALSE;
    case Kind::kNumber: return details::number_from_text(x.text, x.integral);
    case Kind::kString: return details::str_from_wtf8(x.text);
    case Kind::kArray: {
      Ref l(PyList_New(static_cast<Py_ssize_t>(x.size)));
      if (!l) return nullptr;
      Py_ssize_t i = 0;
      for (std::uint32_t c = x.first_child; c != kNoNode; c = doc[c].next_sibling, ++i) {
        PyObject* v = build(doc, c);
        if (v == nullptr) return nullptr;
        PyList_SET_ITEM(l.get(), i, v);
      }
      return l.release();
    }
    case Kind::kObject: {
      Ref d(PyDict_New());
      if (!d) return nullptr;
      for (std::uint32_t c = x.first_child; c != kNoNode; c = doc[c].next_sibling) {
        Ref key(details::str_from_wtf8(doc[c].key));
        Ref v(key ? build(doc, c) : nullptr);
        if (!v || PyDict_SetItem(d.get(), key.get(), v.get()) < 0) return nullptr;
      }
      return d.release();
    }
  }
  Py_RETURN_NONE;
}

}  // namespace

bool raw_encode(PyObject* value, std::string& out, const Limits& limits) {
  const Known* k = details::known();
  if (k == nullptr) return false;
  out.clear();
  const Limits safe = details::stack_safe(limits);
  RawEncoder e(out, safe, k);
  if (!e.value(value)) return false;
  if (out.size() > limits.max_bytes) {
    return fail_encode("encoded value of " + std::to_string(out.size()) +
                       " bytes exceeds the limit of " + std::to_string(limits.max_bytes));
  }
  return true;
}

PyObject* raw_decode(std::string_view text, const Limits& limits) {
  auto doc = Document::parse(text, details::stack_safe(limits));
  if (!doc.is_ok()) {
    details::fail_decode(doc.status().message());
    return nullptr;
  }
  return build(*doc, doc->root());
}

}  // namespace prpc::python
