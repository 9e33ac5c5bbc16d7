// The allow-list of the jsonpickle decoder: the classes and callables a document may name, each
// with what it may be used for. Defaults (builtins, datetime, decimal, uuid) are loaded on first
// use; the application adds its own through register_allowed (prpc.allow in Python).
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

#include "common.hpp"

namespace prpc::python::details {

// What an allow-listed name may be used for.
enum class Use : unsigned {
  kTypeRef = 1,    // {"py/type": name} as a value
  kConstruct = 2,  // called by py/reduce / py/newobj, instantiated by py/object
  kFunction = 4,   // called by py/reduce, referenced by py/function
};
constexpr unsigned operator|(Use a, Use b) {
  return static_cast<unsigned>(a) | static_cast<unsigned>(b);
}

struct Entry {
  PyObject* object = nullptr;  // strong reference
  unsigned uses = 0;
  bool builtin = false;  // a default, not registered by the application
};

struct Registry {
  std::unordered_map<std::string, Entry> names;
  bool defaults_loaded = false;
};

Registry& registry();
// Allows `obj` under `name` for `uses` (replacing what the name allowed before).
void put(const std::string& name, PyObject* obj, unsigned uses, bool builtin);
bool load_defaults(const Known* k);
// An attribute path resolved inside modules already imported; never imports. A new reference.
PyObject* find_loaded(std::string_view name);

}  // namespace prpc::python::details
