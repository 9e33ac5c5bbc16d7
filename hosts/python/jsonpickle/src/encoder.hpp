// The jsonpickle encoder: a port of jsonpickle 4.x's Pickler (default settings: unpicklable,
// make_refs, keys=False) that writes JSON text directly. Ids are given in the same order as
// jsonpickle's flatten calls, and output order equals flatten order, so one pass suffices.
// encode.cpp writes values, containers and dicts; encode_object.cpp writes class instances.
#pragma once

#include "common.hpp"  // Python.h first, as CPython requires

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace prpc::python::details {

// util.is_picklable for a dict value: functions are dropped unless module-level.
bool picklable_value(PyObject* v);
// A str key that is one of jsonpickle's tags ("py/object", ...).
bool is_reserved_str(PyObject* k);
bool is_function_type(PyObject* o);
// Imports datetime's C API for encode_object.cpp (datetime.h keeps it in a static of each
// translation unit). False with an exception set when it cannot.
bool import_datetime();

class Encoder {
 public:
  Encoder(std::string& out, const Limits& limits, const Known* k)
      : out_(out), limits_(limits), k_(k) {}
  ~Encoder() {
    for (PyObject* o : keep_) Py_DECREF(o);
  }
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  bool flatten(PyObject* o);

 private:
  // Where an item's value went in out_, for items whose key jsonpickle later assigns again.
  struct Slot {
    const char* key = nullptr;  // nullptr: no slot wanted
    bool found = false;
    std::size_t start = 0;
    std::size_t end = 0;
  };

  // ---- encode.cpp ----
  // Returns true and writes a reference when `o` was seen; else numbers it.
  bool seen(PyObject* o);
  // Keeps a temporary alive until the end, as jsonpickle's _seen list does, so that ids (which
  // are addresses) are never reused within one encoding.
  PyObject* keep(PyObject* o);
  bool items(PyObject* seq);
  bool iterate(PyObject* it_source);
  bool flatten_container(PyObject* o, PyTypeObject* t);
  void append_name(const std::string& name);
  bool type_ref(PyObject* cls);
  static bool key_is(PyObject* k, const char* name);
  // Members of a dict as jsonpickle's _flatten_dict_obj writes them with keys=False: keys that
  // are reserved tags and non-module functions are dropped, None becomes "null", other non-str
  // keys their repr(). `braces` false continues an object already opened (py/object ...): each
  // member is then preceded by ", ".
  bool dict_members(PyObject* d, bool braces, Slot* slots = nullptr, std::size_t n_slots = 0);
  // util.is_reducible: types that other rules write never use their __reduce__.
  bool is_reducible(PyObject* o);
  // util.has_reduce, reduced to what decides its answer: an override of __reduce__ /
  // __reduce_ex__ on the instance or anywhere in the class's MRO (object's do not count).
  void has_reduce(PyObject* o, bool& reduce, bool& reduce_ex);
  // Writes {"py/reduce": [...]} for a reduce value, trimming trailing None items after the
  // second, as jsonpickle does. Returns false with an exception on failure.
  bool reduce_value(PyObject* rv);
  bool has_method(PyObject* o, const char* name);
  bool call_into(PyObject* o, const char* method, Ref& result);

  // ---- encode_object.cpp ----
  // Each returns false with a Python exception set on failure; an optional<bool> that is empty
  // says "not this rule", and the caller goes on to the next.
  bool instance(PyObject* o);
  std::optional<bool> builtin(PyObject* o, PyObject* cls);
  bool datetime_handler(PyObject* o, const char* cls_name);
  std::optional<bool> reduced(PyObject* o, const std::string& class_name, bool reduce,
                              bool reduce_ex, bool own_getstate);
  bool constructor_args(PyObject* o);
  std::optional<bool> object_state(PyObject* o, const std::string& class_name);
  bool dict_subclass(PyObject* o, const std::string& class_name);
  bool sequence_subclass(PyObject* o);
  bool slot_members(PyObject* o, PyObject* cls);

  std::string& out_;
  const Limits& limits_;
  const Known* k_;
  std::unordered_map<PyObject*, long> ids_;
  std::vector<PyObject*> keep_;
  std::size_t depth_ = 0;
};

}  // namespace prpc::python::details
