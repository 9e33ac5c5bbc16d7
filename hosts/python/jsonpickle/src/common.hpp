// Shared pieces of the Python converters: owned references, errors, the standard types they
// know, and the JSON writers for Python scalars.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "prpc/python/jsonpickle.hpp"

namespace prpc::python::details {

// An owned reference.
class Ref {
 public:
  Ref() = default;
  explicit Ref(PyObject* p) noexcept : p_(p) {}  // steals
  static Ref borrow(PyObject* p) noexcept {
    Py_XINCREF(p);
    return Ref(p);
  }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Ref& operator=(Ref&& o) noexcept {
    if (this != &o) {
      Py_XDECREF(p_);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  ~Ref() { Py_XDECREF(p_); }
  PyObject* get() const noexcept { return p_; }
  PyObject* release() noexcept { return std::exchange(p_, nullptr); }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  PyObject* p_ = nullptr;
};

// Raises the configured error with a message; returns false / nullptr for one-line returns.
bool fail_decode(std::string_view message);
bool fail_encode(std::string_view message);

// Standard types and objects, imported once (these modules are on the allow-list; nothing the
// input names is ever imported). Returns false with an exception set when imports fail.
struct Known {
  PyObject* datetime_type;
  PyObject* date_type;
  PyObject* time_type;
  PyObject* timedelta_type;
  PyObject* timezone_type;
  PyObject* tzinfo_type;
  PyObject* decimal_type;
  PyObject* uuid_type;
  PyObject* enum_type;
  PyObject* flag_type;
  PyObject* pattern_type;
  PyObject* object_reduce;
  PyObject* object_reduce_ex;
  PyObject* object_getstate;
  PyObject* utc;
};
const Known* known();

// "module.qualname" as jsonpickle's util.importable_name writes it (borrowed cache entry).
const std::string* importable_name(PyObject* cls);

// UTF-8 (surrogates passed through as WTF-8) of a str.
bool str_utf8(PyObject* s, std::string_view& out);

// json.dumps(ensure_ascii=True) of a str.
void append_str(std::string& out, PyObject* s);
// repr() of a float as json.dumps writes it (NaN, Infinity, -Infinity for the others).
void append_float(std::string& out, double v);
// An int in decimal, refusing more than max_digits digits.
bool append_int(std::string& out, PyObject* v, std::size_t max_digits);

// The limits with max_depth capped: converting recurses once per level on the calling thread's
// stack (any Python thread), so the cap keeps a generous configuration from overflowing it.
inline constexpr std::size_t kMaxSafeDepth = 2000;
inline Limits stack_safe(Limits l) {
  if (l.max_depth > kMaxSafeDepth) l.max_depth = kMaxSafeDepth;
  return l;
}

// A str from WTF-8 JSON text (new reference).
PyObject* str_from_wtf8(std::string_view text);
// A number node's text as int or float (new reference).
PyObject* number_from_text(std::string_view text, bool integral);

}  // namespace prpc::python::details
