#include "common.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>

namespace prpc::python {

namespace {

PyObject* g_decode_error = nullptr;
PyObject* g_encode_error = nullptr;

void ensure_default_errors() {
  if (g_decode_error == nullptr) {
    g_decode_error = PyErr_NewExceptionWithDoc("prpc_codec.DecodeError",
                                               "Input refused or malformed while decoding.",
                                               PyExc_ValueError, nullptr);
  }
  if (g_encode_error == nullptr) {
    g_encode_error = PyErr_NewExceptionWithDoc(
        "prpc_codec.EncodeError", "A value that cannot be encoded.", PyExc_TypeError, nullptr);
  }
}

}  // namespace

void set_error_types(PyObject* decode_error, PyObject* encode_error) {
  Py_XINCREF(decode_error);
  Py_XINCREF(encode_error);
  Py_XDECREF(g_decode_error);
  Py_XDECREF(g_encode_error);
  g_decode_error = decode_error;
  g_encode_error = encode_error;
}

PyObject* decode_error_type() {
  ensure_default_errors();
  return g_decode_error;
}

PyObject* encode_error_type() {
  ensure_default_errors();
  return g_encode_error;
}

namespace details {

bool fail_decode(std::string_view message) {
  PyObject* msg =
      PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace");
  if (msg != nullptr) {
    PyErr_SetObject(decode_error_type(), msg);
    Py_DECREF(msg);
  }
  return false;
}

bool fail_encode(std::string_view message) {
  PyObject* msg =
      PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace");
  if (msg != nullptr) {
    PyErr_SetObject(encode_error_type(), msg);
    Py_DECREF(msg);
  }
  return false;
}

namespace {

PyObject* attr_of_module(const char* module, const char* name) {
  Ref m(PyImport_ImportModule(module));
  if (!m) return nullptr;
  return PyObject_GetAttrString(m.get(), name);
}

}  // namespace

const Known* known() {
  static Known k{};
  static bool ready = false;
  if (ready) return &k;
  struct Item {
    PyObject** slot;
    const char* module;
    const char* name;
  };
  const Item items[] = {
      {&k.datetime_type, "datetime", "datetime"},
      {&k.date_type, "datetime", "date"},
      {&k.time_type, "datetime", "time"},
      {&k.timedelta_type, "datetime", "timedelta"},
      {&k.timezone_type, "datetime", "timezone"},
      {&k.tzinfo_type, "datetime", "tzinfo"},
      {&k.decimal_type, "decimal", "Decimal"},
      {&k.uuid_type, "uuid", "UUID"},
      {&k.enum_type, "enum", "Enum"},
      {&k.flag_type, "enum", "Flag"},
      {&k.pattern_type, "re", "Pattern"},
  };
  for (const Item& it : items) {
    if (*it.slot == nullptr) {
      *it.slot = attr_of_module(it.module, it.name);
      if (*it.slot == nullptr) return nullptr;
    }
  }
  PyObject* object = reinterpret_cast<PyObject*>(&PyBaseObject_Type);
  k.object_reduce = PyObject_GetAttrString(object, "__reduce__");
  k.object_reduce_ex = PyObject_GetAttrString(object, "__reduce_ex__");
  k.object_getstate = PyObject_GetAttrString(object, "__getstate__");
  k.utc = PyObject_GetAttrString(k.timezone_type, "utc");
  if (k.object_reduce == nullptr || k.object_reduce_ex == nullptr || k.utc == nullptr) {
    return nullptr;
  }
  if (k.object_getstate == nullptr) PyErr_Clear();  // before Python 3.11
  ready = true;
  return &k;
}

const std::string* importable_name(PyObject* cls) {
  // Classes and functions named here live as long as the process in practice; the cache keeps
  // a reference so an address is never reused for another object while cached.
  static std::unordered_map<PyObject*, std::string> cache;
  auto it = cache.find(cls);
  if (it != cache.end()) return &it->second;
  Ref qual(PyObject_GetAttrString(cls, "__qualname__"));
  if (!qual) {
    PyErr_Clear();
    qual = Ref(PyObject_GetAttrString(cls, "__name__"));
    if (!qual) return nullptr;
  }
  Ref module(PyObject_GetAttrString(cls, "__module__"));
  if (!module) PyErr_Clear();
  std::string mod;
  std::string_view v;
  if (module && PyUnicode_Check(module.get()) && str_utf8(module.get(), v)) mod = std::string(v);
  if (mod == "__builtin__" || mod == "exceptions") mod = "builtins";
  if (mod.empty()) {
    Ref self(PyObject_GetAttrString(cls, "__self__"));
    if (!self) {
      PyErr_Clear();
    } else {
      Ref m2(PyObject_GetAttrString(self.get(), "__module__"));
      if (!m2) {
        PyErr_Clear();
        m2 = Ref(
            PyObject_GetAttrString(reinterpret_cast<PyObject*>(Py_TYPE(self.get())), "__module__"));
      }
      if (m2 && PyUnicode_Check(m2.get()) && str_utf8(m2.get(), v)) mod = std::string(v);
      PyErr_Clear();
    }
    if (mod.empty()) mod = "None";
  }
  if (!PyUnicode_Check(qual.get()) || !str_utf8(qual.get(), v)) return nullptr;
  Py_INCREF(cls);
  auto [pos, ok] = cache.emplace(cls, mod + "." + std::string(v));
  return &pos->second;
}

bool str_utf8(PyObject* s, std::string_view& out) {
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s, &n);
  if (p == nullptr) {
    // Lone surrogates: fall back to WTF-8 through surrogatepass (kept alive on the str).
    PyErr_Clear();
    return false;
  }
  out = std::string_view(p, static_cast<std::size_t>(n));
  return true;
}

void append_str(std::string& out, PyObject* s) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto u4 = [&](Py_UCS4 v) {
    char buf[6] = {
        '\\',         'u', kHex[(v >> 12) & 0xf], kHex[(v >> 8) & 0xf], kHex[(v >> 4) & 0xf],
        kHex[v & 0xf]};
    out.append(buf, 6);
  };
  auto escape_ascii = [&](Py_UCS4 c) {
    switch (c) {
      case '"': out += "\\\""; return;
      case '\\': out += "\\\\"; return;
      case '\n': out += "\\n"; return;
      case '\r': out += "\\r"; return;
      case '\t': out += "\\t"; return;
      case '\b': out += "\\b"; return;
      case '\f': out += "\\f"; return;
      default: u4(c); return;
    }
  };
  out += '"';
  Py_ssize_t n = PyUnicode_GET_LENGTH(s);
  if (PyUnicode_IS_ASCII(s)) {
    const char* p = reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(s));
    Py_ssize_t i = 0;
    while (i < n) {
      Py_ssize_t run = i;
      while (run < n) {
        unsigned char c = static_cast<unsigned char>(p[run]);
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') break;
        ++run;
      }
      out.append(p + i, static_cast<std::size_t>(run - i));
      if (run >= n) break;
      escape_ascii(static_cast<unsigned char>(p[run]));
      i = run + 1;
    }
  } else {
    int kind = PyUnicode_KIND(s);
    const void* data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; ++i) {
      Py_UCS4 c = PyUnicode_READ(kind, data, i);
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
        out += static_cast<char>(c);
      } else if (c < 0x80) {
        escape_ascii(c);
      } else if (c >= 0x10000) {
        Py_UCS4 v = c - 0x10000;
        u4(0xd800 + (v >> 10));
        u4(0xdc00 + (v & 0x3ff));
      } else {
        u4(c);
      }
    }
  }
  out += '"';
}

void append_float(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "Infinity" : "-Infinity";
    return;
  }
  char* text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, nullptr);
  if (text == nullptr) {
    PyErr_Clear();
    out += "NaN";
    return;
  }
  out += text;
  PyMem_Free(text);
}

bool append_int(std::string& out, PyObject* v, std::size_t max_digits) {
  int overflow = 0;
  long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (overflow == 0) {
    if (x == -1 && PyErr_Occurred()) return false;
    char buf[24];
    auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), x);
    out.append(buf, static_cast<std::size_t>(p - buf));
    return true;
  }
  // Refuse before the quadratic conversion: bits * log10(2) bounds the digit count.
  std::size_t bits = _PyLong_NumBits(v);
  if (static_cast<double>(bits) * 0.30102999566398120 > static_cast<double>(max_digits) + 1) {
    return fail_encode(
        "int of about " +
        std::to_string(static_cast<std::size_t>(static_cast<double>(bits) * 0.30103)) +
        " digits exceeds the limit of " + std::to_string(max_digits) + " digits");
  }
  Ref s(PyObject_Str(v));
  if (!s) return false;
  std::string_view t;
  if (!str_utf8(s.get(), t)) return false;
  std::size_t digits = t.size() - (t[0] == '-' ? 1 : 0);
  if (digits > max_digits) {
    return fail_encode("int of " + std::to_string(digits) + " digits exceeds the limit of " +
                       std::to_string(max_digits) + " digits");
  }
  out += t;
  return true;
}

PyObject* str_from_wtf8(std::string_view text) {
  return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "surrogatepass");
}

PyObject* number_from_text(std::string_view text, bool integral) {
  if (integral) {
    long long v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc() && p == text.data() + text.size()) return PyLong_FromLongLong(v);
    std::string z(text);
    return PyLong_FromString(z.c_str(), nullptr, 10);
  }
  if (text == "NaN") return PyFloat_FromDouble(std::nan(""));
  if (text == "Infinity") return PyFloat_FromDouble(HUGE_VAL);
  if (text == "-Infinity") return PyFloat_FromDouble(-HUGE_VAL);
  // A NUL-terminated copy; short literals (nearly all) stay on the stack.
  char small[64];
  std::string big;
  const char* z = small;
  if (text.size() < sizeof(small)) {
    std::copy(text.begin(), text.end(), small);
    small[text.size()] = '\0';
  } else {
    big.assign(text);
    z = big.c_str();
  }
  double d = PyOS_string_to_double(z, nullptr, nullptr);
  if (d == -1.0 && PyErr_Occurred()) return nullptr;
  return PyFloat_FromDouble(d);
}

}  // namespace details
}  // namespace prpc::python
