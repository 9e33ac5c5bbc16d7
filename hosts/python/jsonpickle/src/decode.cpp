// The jsonpickle decoder: reads what jsonpickle 3.x / 4.x write, restoring objects in the same
// order as jsonpickle's Unpickler (so py/id numbers mean the same objects), but every class and
// callable comes from an allow-list, looked up without importing anything the input names.
#include <unordered_map>
#include <vector>

#include "allow_list.hpp"
#include "common.hpp"
#include "prpc/jsonpickle/references.hpp"

namespace prpc::python {

namespace {

using details::Entry;
using details::fail_decode;
using details::find_loaded;
using details::Known;
using details::put;
using details::Ref;
using details::Registry;
using details::registry;
using details::Use;
using jsonpickle::Document;
using jsonpickle::Kind;
using jsonpickle::kNoNode;
using jsonpickle::Tag;
using jsonpickle::tag_of;

// Special callables jsonpickle writes for enum members and ZoneInfo, checked by shape.
enum class Special { kNone, kGetattr, kOr, kZoneInfo };

class Decoder {
 public:
  Decoder(const Document& doc, const Known* k) : doc_(doc), k_(k) {}
  ~Decoder() {
    for (PyObject* o : objs_) Py_XDECREF(o);
  }

  PyObject* restore(std::uint32_t n) {
    const jsonpickle::Node& x = doc_[n];
    switch (x.kind) {
      case Kind::kNull: Py_RETURN_NONE;
      case Kind::kTrue: Py_RETURN_TRUE;
      case Kind::kFalse: Py_RETURN_FALSE;
      case Kind::kNumber: return details::number_from_text(x.text, x.integral);
      case Kind::kString: return details::str_from_wtf8(x.text);
      case Kind::kArray: return list(n);
      case Kind::kObject: break;
    }
    switch (tag_of(doc_, n)) {
      case Tag::kDict: return dict(n);
      case Tag::kTuple: {
        Ref l(items_list(doc_.member(n, "py/tuple"), "py/tuple"));
        return l ? PyList_AsTuple(l.get()) : nullptr;
      }
      case Tag::kSet: {
        Ref l(items_list(doc_.member(n, "py/set"), "py/set"));
        return l ? PySet_New(l.get()) : nullptr;
      }
      case Tag::kB64: return bytes_b64(doc_.member(n, "py/b64"));
      case Tag::kB85: return bytes_b85(doc_.member(n, "py/b85"));
      case Tag::kId: return reference(n);
      case Tag::kIterator: {
        std::uint32_t v = doc_.member(n, "py/iterator");
        if (doc_[v].kind != Kind::kArray) return refuse("malformed py/iterator");
        Ref l(list(v));
        return l ? PyObject_GetIter(l.get()) : nullptr;
      }
      case Tag::kObject: return object(n);
      case Tag::kType: return type_ref(doc_.member(n, "py/type"));
      case Tag::kReduce: return reduce(n);
      case Tag::kFunction: {
        std::uint32_t v = doc_.member(n, "py/function");
        std::string name = text_of(v);
        const Entry* e = lookup(name);
        if (e == nullptr || !(e->uses & static_cast<unsigned>(Use::kFunction))) {
          return refuse("refusing py/function '" + name + "': not in the allow-list");
        }
        Py_INCREF(e->object);
        return e->object;
      }
      case Tag::kModule:
        return refuse("refusing py/mod '" + text_of(doc_.member(n, "py/mod")) +
                      "': modules are never loaded");
      case Tag::kRepr:
        return refuse("refusing py/repr '" + text_of(doc_.member(n, "py/repr")) +
                      "': repr payloads are never evaluated");
      default: return refuse("malformed tagged object");
    }
  }

 private:
  static PyObject* refuse(std::string_view message) {
    fail_decode(message);
    return nullptr;
  }

  std::string text_of(std::uint32_t n) const {
    if (n == kNoNode || doc_[n].kind != Kind::kString) return "?";
    return std::string(doc_[n].text.substr(0, 200));
  }

  std::size_t track(PyObject* o) {
    Py_XINCREF(o);
    objs_.push_back(o);
    return objs_.size() - 1;
  }
  void settle(std::size_t idx, PyObject* o) {
    Py_XINCREF(o);
    Py_XDECREF(objs_[idx]);
    objs_[idx] = o;
  }

  PyObject* list(std::uint32_t n) {
    Ref l(PyList_New(0));
    if (!l) return nullptr;
    track(l.get());
    for (std::uint32_t c = doc_[n].first_child; c != kNoNode; c = doc_[c].next_sibling) {
      Ref v(restore(c));
      if (!v || PyList_Append(l.get(), v.get()) < 0) return nullptr;
    }
    return l.release();
  }

  // The items of a py/tuple or py/set value, restored without numbering the wrapper list.
  PyObject* items_list(std::uint32_t v, std::string_view tag) {
    if (v == kNoNode || doc_[v].kind != Kind::kArray) {
      return refuse("malformed " + std::string(tag) + ": expected a list");
    }
    Ref l(PyList_New(0));
    if (!l) return nullptr;
    for (std::uint32_t c = doc_[v].first_child; c != kNoNode; c = doc_[c].next_sibling) {
      Ref item(restore(c));
      if (!item || PyList_Append(l.get(), item.get()) < 0) return nullptr;
    }
    return l.release();
  }

  PyObject* dict(std::uint32_t n) {
    Ref d(PyDict_New());
    if (!d) return nullptr;
    track(d.get());
    for (std::uint32_t c = doc_[n].first_child; c != kNoNode; c = doc_[c].next_sibling) {
      PyObject* key = key_object(doc_[c].key);
      if (key == nullptr) return nullptr;
      Ref v(restore(c));
      if (!v || PyDict_SetItem(d.get(), key, v.get()) < 0) return nullptr;
    }
    return d.release();
  }

  PyObject* bytes_b64(std::uint32_t v) {
    std::string raw;
    if (v != kNoNode && doc_[v].kind == Kind::kString &&
        jsonpickle::base64_decode(doc_[v].text, raw)) {
      return PyBytes_FromStringAndSize(raw.data(), static_cast<Py_ssize_t>(raw.size()));
    }
    return PyBytes_FromStringAndSize("", 0);  // jsonpickle gives b'' for bad base64
  }

  PyObject* bytes_b85(std::uint32_t v) {
    static constexpr std::string_view kAlphabet =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
    if (v == kNoNode || doc_[v].kind != Kind::kString) return PyBytes_FromStringAndSize("", 0);
    std::string_view text = doc_[v].text;
    std::size_t pad = (5 - text.size() % 5) % 5;
    std::string in(text);
    in.append(pad, '~');
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += 5) {
      std::uint64_t acc = 0;
      for (std::size_t j = 0; j < 5; ++j) {
        std::size_t d = kAlphabet.find(in[i + j]);
        if (d == std::string_view::npos) return PyBytes_FromStringAndSize("", 0);
        acc = acc * 85 + d;
      }
      if (acc > 0xffffffffULL) return PyBytes_FromStringAndSize("", 0);
      for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((acc >> s) & 0xff);
    }
    out.resize(out.size() - pad);
    return PyBytes_FromStringAndSize(out.data(), static_cast<Py_ssize_t>(out.size()));
  }

  PyObject* reference(std::uint32_t n) {
    std::uint32_t v = doc_.member(n, "py/id");
    long long idx = -1;
    if (v != kNoNode && doc_[v].kind == Kind::kNumber && doc_[v].integral) {
      Ref i(details::number_from_text(doc_[v].text, true));
      if (!i) return nullptr;
      idx = PyLong_AsLongLong(i.get());
      if (idx == -1 && PyErr_Occurred()) PyErr_Clear();
    }
    if (idx < 0 || static_cast<std::size_t>(idx) >= objs_.size()) {
      Py_RETURN_NONE;  // jsonpickle restores an unknown reference as None
    }
    PyObject* o = objs_[static_cast<std::size_t>(idx)];
    if (o == nullptr) {
      return refuse("py/id " + std::to_string(idx) +
                    " refers to an object that is still being constructed");
    }
    Py_INCREF(o);
    return o;
  }

  const Entry* lookup(const std::string& name) {
    Registry& r = registry();
    auto it = r.names.find(name);
    if (it != r.names.end()) return &it->second;
    // Classes that are safe to resolve from modules the application already imported.
    bool message_class = name == jsonpickle_message_class();
    Ref found(find_loaded(name));
    if (!found) return nullptr;
    if (message_class && PyType_Check(found.get())) {
      put(name, found.get(), Use::kTypeRef | Use::kConstruct, true);
      return &r.names.find(name)->second;
    }
    if (PyType_Check(found.get()) &&
        PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(found.get()),
                         reinterpret_cast<PyTypeObject*>(k_->enum_type))) {
      // Enum classes: members are looked up, never created from scratch.
      enums_.emplace(name, Ref::borrow(found.get()));
      scratch_ = Entry{enums_[name].get(), Use::kTypeRef | Use::kConstruct, true};
      return &scratch_;
    }
    return nullptr;
  }

  static const std::string& jsonpickle_message_class() {
    static const std::string name = "prpc.prpcmessage.PRPCMessage";
    return name;
  }

  PyObject* type_ref(std::uint32_t v) {
    std::string name = text_of(v);
    const Entry* e = lookup(name);
    if (e == nullptr || !(e->uses & static_cast<unsigned>(Use::kTypeRef))) {
      return refuse("refusing py/type '" + name + "': not in the allow-list");
    }
    Py_INCREF(e->object);
    return e->object;
  }

  static bool is_enum_class(PyObject* o, PyObject* base) {
    return PyType_Check(o) && PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(o),
                                               reinterpret_cast<PyTypeObject*>(base));
  }

  // f(*args) for the callables jsonpickle writes, each checked by shape.
  PyObject* call(const std::string& name, PyObject* f, Special special, PyObject* args) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    switch (special) {
      case Special::kGetattr: {
        // Enum members on Python < 3.11.7: getattr(EnumClass, "NAME").
        if (n != 2 || !is_enum_class(PyTuple_GET_ITEM(args, 0), k_->enum_type) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(args, 1))) {
          return refuse("refusing builtins.getattr: only enum members may be looked up");
        }
        Ref members(PyObject_GetAttrString(PyTuple_GET_ITEM(args, 0), "__members__"));
        if (!members) return nullptr;
        PyObject* m = PyObject_GetItem(members.get(), PyTuple_GET_ITEM(args, 1));
        if (m == nullptr) {
          PyErr_Clear();
          return refuse("refusing builtins.getattr: not an enum member name");
        }
        return m;
      }
      case Special::kOr: {
        if (n != 2 || !PyObject_IsInstance(PyTuple_GET_ITEM(args, 0), k_->flag_type) ||
            Py_TYPE(PyTuple_GET_ITEM(args, 0)) != Py_TYPE(PyTuple_GET_ITEM(args, 1))) {
          return refuse("refusing " + name + ": only members of one Flag may be combined");
        }
        return PyNumber_Or(PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1));
      }
      case Special::kZoneInfo: {
        if (n != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(args, 0)) ||
            !PyLong_Check(PyTuple_GET_ITEM(args, 1))) {
          return refuse("refusing zoneinfo.ZoneInfo._unpickle: bad arguments");
        }
        return PyObject_Call(f, args, nullptr);
      }
      case Special::kNone: break;
    }
    return PyObject_Call(f, args, nullptr);
  }

  // Applies a reduce/py/object state the way pickle and jsonpickle do.
  bool apply_state(PyObject* obj, PyObject* state) {
    Ref setstate(PyObject_GetAttrString(obj, "__setstate__"));
    if (setstate) {
      Ref r(PyObject_CallOneArg(setstate.get(), state));
      return static_cast<bool>(r);
    }
    PyErr_Clear();
    PyObject* dict_state = state;
    PyObject* slots_state = nullptr;
    if (PyTuple_Check(state) && PyTuple_GET_SIZE(state) == 2) {
      dict_state = PyTuple_GET_ITEM(state, 0);
      slots_state = PyTuple_GET_ITEM(state, 1);
    }
    for (PyObject* part : {dict_state, slots_state}) {
      if (part == nullptr || part == Py_None) continue;
      if (!PyDict_Check(part)) {
        fail_decode("malformed state: expected a dict");
        return false;
      }
      Py_ssize_t pos = 0;
      PyObject* k = nullptr;
      PyObject* v = nullptr;
      while (PyDict_Next(part, &pos, &k, &v)) {
        if (!set_attribute(obj, k, v)) return false;
      }
    }
    return true;
  }

  bool set_attribute(PyObject* obj, PyObject* key, PyObject* value) {
    if (!PyUnicode_Check(key)) {
      fail_decode("malformed state: attribute names must be strings");
      return false;
    }
    if (PyObject_SetAttr(obj, key, value) == 0) return true;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return false;
    // Frozen dataclasses refuse setattr; pickle-like restoring bypasses it.
    PyErr_Clear();
    return PyObject_GenericSetAttr(obj, key, value) == 0;
  }

  PyObject* reduce(std::uint32_t n) {
    std::uint32_t r = doc_.member(n, "py/reduce");
    if (doc_[r].kind != Kind::kArray || doc_[r].size < 2) return refuse("malformed py/reduce");
    // The callable must be named directly and be on the allow-list: nothing else is restored
    // (let alone imported or called) before that check.
    std::uint32_t f_node = doc_.child(r, 0);
    std::string name;
    PyObject* f = nullptr;
    Special special = Special::kNone;
    bool newobj = false;
    Tag ft = tag_of(doc_, f_node);
    if (doc_[f_node].kind == Kind::kString && doc_[f_node].text == "py/newobj") {
      newobj = true;
    } else if (ft == Tag::kType) {
      name = text_of(doc_.member(f_node, "py/type"));
      const Entry* e = lookup(name);
      if (e == nullptr || !(e->uses & static_cast<unsigned>(Use::kConstruct))) {
        return refuse("refusing py/reduce of '" + name + "': not in the allow-list");
      }
      f = e->object;
    } else if (ft == Tag::kFunction) {
      name = text_of(doc_.member(f_node, "py/function"));
      if (name == "builtins.getattr") {
        special = Special::kGetattr;
      } else if (name == "_operator.or_" || name == "operator.or_") {
        special = Special::kOr;
      } else if (name == "zoneinfo.ZoneInfo._unpickle") {
        special = Special::kZoneInfo;
        Ref zi(PyImport_ImportModule("zoneinfo"));  // stdlib, on the allow-list
        if (!zi) return nullptr;
        zoneinfo_ = Ref(PyObject_GetAttrString(zi.get(), "ZoneInfo"));
        if (!zoneinfo_) return nullptr;
        zoneinfo_unpickle_ = Ref(PyObject_GetAttrString(zoneinfo_.get(), "_unpickle"));
        if (!zoneinfo_unpickle_) return nullptr;
        f = zoneinfo_unpickle_.get();
      } else {
        const Entry* e = lookup(name);
        if (e == nullptr || !(e->uses & static_cast<unsigned>(Use::kFunction))) {
          return refuse("refusing py/reduce of '" + name + "': not in the allow-list");
        }
        f = e->object;
      }
    } else {
      return refuse("refusing py/reduce whose callable is " +
                    std::string(doc_[f_node].kind == Kind::kObject ? "a computed value"
                                                                   : "not a named class"));
    }
    Ref keep_f = Ref::borrow(f);

    std::size_t idx = track(nullptr);
    Ref args_raw(restore(doc_.child(r, 1)));
    if (!args_raw) return nullptr;
    Ref args(PySequence_Tuple(args_raw.get()));
    if (!args) {
      PyErr_Clear();
      return refuse("malformed py/reduce arguments of '" + name + "'");
    }
    Ref made;
    if (newobj) {
      if (PyTuple_GET_SIZE(args.get()) < 1) return refuse("malformed py/newobj");
      PyObject* cls = PyTuple_GET_ITEM(args.get(), 0);
      // The class was restored from a py/type, so it passed the allow-list; it must also be
      // constructible.
      const std::string* cname = PyType_Check(cls) ? details::importable_name(cls) : nullptr;
      const Entry* e = cname ? lookup(*cname) : nullptr;
      if (e == nullptr || e->object != cls || !(e->uses & static_cast<unsigned>(Use::kConstruct))) {
        return refuse("refusing py/newobj of a class outside the allow-list");
      }
      Ref new_fn(PyObject_GetAttrString(cls, "__new__"));
      if (!new_fn) return nullptr;
      made = Ref(PyObject_Call(new_fn.get(), args.get(), nullptr));
    } else {
      made = Ref(call(name, f, special, args.get()));
    }
    if (!made) return wrap_error(name);
    settle(idx, made.get());

    auto item = [&](std::uint32_t i) { return doc_.child(r, i); };
    if (doc_[r].size > 2) {
      Ref state(restore(item(2)));
      if (!state) return nullptr;
      int truth = PyObject_IsTrue(state.get());
      if (truth < 0) return nullptr;
      if (truth && !apply_state(made.get(), state.get())) return wrap_error(name);
    }
    if (doc_[r].size > 3) {
      Ref listitems(restore(item(3)));
      if (!listitems) return nullptr;
      if (listitems.get() != Py_None) {
        Ref ext(PyObject_CallMethod(made.get(), "extend", "(O)", listitems.get()));
        if (!ext) return wrap_error(name);
      }
    }
    if (doc_[r].size > 4) {
      Ref dictitems(restore(item(4)));
      if (!dictitems) return nullptr;
      if (dictitems.get() != Py_None) {
        Ref it(PyObject_GetIter(dictitems.get()));
        if (!it) return wrap_error(name);
        while (PyObject* raw = PyIter_Next(it.get())) {
          Ref pair(raw);
          if (!PyTuple_Check(pair.get()) || PyTuple_GET_SIZE(pair.get()) != 2) {
            return refuse("malformed py/reduce dict items");
          }
          if (PyObject_SetItem(made.get(), PyTuple_GET_ITEM(pair.get(), 0),
                               PyTuple_GET_ITEM(pair.get(), 1)) < 0) {
            return wrap_error(name);
          }
        }
        if (PyErr_Occurred()) return nullptr;
      }
    }
    return made.release();
  }

  // Errors raised by allowed constructors on bad arguments become decode errors that say so.
  PyObject* wrap_error(const std::string& name) {
    if (!PyErr_Occurred()) return refuse("could not restore " + name);
    if (PyErr_ExceptionMatches(decode_error_type())) return nullptr;
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    Ref t(type), v(value), b(tb);
    Ref text(v ? PyObject_Str(v.get()) : nullptr);
    std::string_view msg;
    if (!text || !details::str_utf8(text.get(), msg)) {
      PyErr_Clear();
      msg = "?";
    }
    Ref tname(PyObject_GetAttrString(t.get(), "__name__"));
    std::string_view tn = "Error";
    if (!tname || !details::str_utf8(tname.get(), tn)) PyErr_Clear();
    return refuse("could not restore " + name + ": " + std::string(tn) + ": " + std::string(msg));
  }

  PyObject* datetime_handler(std::uint32_t n, PyObject* expected_cls, const std::string& name) {
    std::size_t idx = track(nullptr);
    std::uint32_t red = doc_.member(n, "__reduce__");
    std::uint32_t args = doc_.child(red, 1);
    if (red == kNoNode || doc_[red].kind != Kind::kArray || doc_[red].size != 2 ||
        args == kNoNode || doc_[args].kind != Kind::kArray || doc_[args].size < 1 ||
        doc_[args].size > 2) {
      return refuse("malformed " + name);
    }
    Ref cls(restore(doc_.child(red, 0)));
    if (!cls) return nullptr;
    if (cls.get() != expected_cls) return refuse("malformed " + name + ": class mismatch");
    std::uint32_t st = doc_.child(args, 0);
    std::string raw;
    if (doc_[st].kind != Kind::kString || !jsonpickle::base64_decode(doc_[st].text, raw)) {
      return refuse("malformed " + name + " state");
    }
    Ref state(PyBytes_FromStringAndSize(raw.data(), static_cast<Py_ssize_t>(raw.size())));
    if (!state) return nullptr;
    Ref tz = Ref::borrow(Py_None);
    if (doc_[args].size == 2) {
      tz = Ref(restore(doc_.child(args, 1)));
      if (!tz) return nullptr;
      if (tz.get() != Py_None && !PyObject_IsInstance(tz.get(), k_->tzinfo_type)) {
        return refuse("malformed " + name + ": tzinfo is not a datetime.tzinfo");
      }
    }
    Ref call_args(doc_[args].size == 2 ? PyTuple_Pack(2, state.get(), tz.get())
                                       : PyTuple_Pack(1, state.get()));
    if (!call_args) return nullptr;
    // The pickle constructors validate the state bytes.
    Ref made(PyObject_Call(expected_cls, call_args.get(), nullptr));
    if (!made) return wrap_error(name);
    settle(idx, made.get());
    return made.release();
  }

  PyObject* object(std::uint32_t n) {
    std::uint32_t cls_node = doc_.member(n, "py/object");
    if (doc_[cls_node].kind != Kind::kString) return refuse("malformed py/object");
    std::string name(doc_[cls_node].text);
    if (name == "datetime.datetime") return datetime_handler(n, k_->datetime_type, name);
    if (name == "datetime.date") return datetime_handler(n, k_->date_type, name);
    if (name == "datetime.time") return datetime_handler(n, k_->time_type, name);
    if (name == "uuid.UUID") {
      std::size_t idx = track(nullptr);
      std::uint32_t hex = doc_.member(n, "hex");
      if (hex == kNoNode || doc_[hex].kind != Kind::kString) return refuse("malformed uuid.UUID");
      Ref text(details::str_from_wtf8(doc_[hex].text));
      if (!text) return nullptr;
      Ref kwargs(Py_BuildValue("{s:O}", "hex", text.get()));
      Ref empty(PyTuple_New(0));
      if (!kwargs || !empty) return nullptr;
      Ref made(PyObject_Call(k_->uuid_type, empty.get(), kwargs.get()));
      if (!made) return wrap_error(name);
      settle(idx, made.get());
      return made.release();
    }
    const Entry* e = lookup(name);
    if (e == nullptr || !(e->uses & static_cast<unsigned>(Use::kConstruct)) ||
        !PyType_Check(e->object)) {
      return refuse("refusing py/object '" + name + "': not in the allow-list");
    }
    Ref cls = Ref::borrow(e->object);
    if (is_enum_class(cls.get(), k_->enum_type)) {
      return refuse("refusing py/object '" + name + "': enum members are restored by value");
    }
    std::size_t idx = track(nullptr);
    // jsonpickle restores a defaultdict's factory before anything else.
    Ref factory;
    std::uint32_t factory_node = doc_.member(n, "default_factory");
    if (factory_node != kNoNode) {
      factory = Ref(restore(factory_node));
      if (!factory) return nullptr;
      if (factory.get() == Py_None) factory = Ref();
    }

    // Constructor arguments, as jsonpickle's getargs picks them.
    Ref args(PyTuple_New(0));
    Ref kwargs;
    std::uint32_t ex = doc_.member(n, "py/newargsex");
    std::uint32_t na = doc_.member(n, "py/newargs");
    std::uint32_t ia = doc_.member(n, "py/initargs");
    std::uint32_t seq = doc_.member(n, "py/seq");
    auto to_tuple = [&](std::uint32_t node) -> bool {
      Ref v(restore(node));
      if (!v) return false;
      args = Ref(PySequence_Tuple(v.get()));
      if (!args) {
        PyErr_Clear();
        fail_decode("malformed constructor arguments of " + name);
        return false;
      }
      return true;
    };
    if (ex != kNoNode) {
      if (doc_[ex].kind != Kind::kArray || doc_[ex].size != 2) {
        return refuse("malformed py/newargsex of " + name);
      }
      if (!to_tuple(doc_.child(ex, 0))) return nullptr;
      kwargs = Ref(restore(doc_.child(ex, 1)));
      if (!kwargs) return nullptr;
      if (!PyDict_Check(kwargs.get())) return refuse("malformed py/newargsex of " + name);
    } else if (na != kNoNode) {
      if (!to_tuple(na)) return nullptr;
    } else if (ia != kNoNode) {
      if (!to_tuple(ia)) return nullptr;
    } else if (seq != kNoNode && doc_[seq].kind == Kind::kArray) {
      Ref fields(PyObject_GetAttrString(cls.get(), "_fields"));
      if (!fields) {
        PyErr_Clear();
      } else if (PyObject_Length(fields.get()) == static_cast<Py_ssize_t>(doc_[seq].size)) {
        if (!to_tuple(seq)) return nullptr;
      }
    }
    Ref new_fn(PyObject_GetAttrString(cls.get(), "__new__"));
    if (!new_fn) return nullptr;
    Ref new_args(PyTuple_New(PyTuple_GET_SIZE(args.get()) + 1));
    if (!new_args) return nullptr;
    Py_INCREF(cls.get());
    PyTuple_SET_ITEM(new_args.get(), 0, cls.get());
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args.get()); ++i) {
      PyObject* a = PyTuple_GET_ITEM(args.get(), i);
      Py_INCREF(a);
      PyTuple_SET_ITEM(new_args.get(), i + 1, a);
    }
    Ref instance(PyObject_Call(new_fn.get(), new_args.get(),
                               kwargs && PyDict_Size(kwargs.get()) ? kwargs.get() : nullptr));
    if (!instance) return wrap_error(name);
    settle(idx, instance.get());
    if (PyTuple_Check(instance.get())) return instance.release();

    if (factory && PyObject_SetAttrString(instance.get(), "default_factory", factory.get()) < 0) {
      return wrap_error(name);
    }
    // Attributes (reserved tags skipped), then py/seq items, then py/state.
    bool dict_like = PyDict_Check(instance.get());
    for (std::uint32_t c = doc_[n].first_child; c != kNoNode; c = doc_[c].next_sibling) {
      std::string_view k = doc_[c].key;
      if (jsonpickle::is_reserved_key(k) || (factory && k == "default_factory")) continue;
      Ref key(details::str_from_wtf8(k));
      if (!key) return nullptr;
      Ref value(restore(c));
      if (!value) return nullptr;
      if (dict_like && k != "__dict__") {
        if (PyObject_SetItem(instance.get(), key.get(), value.get()) < 0) return wrap_error(name);
        continue;
      }
      if (k.size() >= 2 && k[0] == '_' && k[1] == '_' && k != "__dict__") {
        // jsonpickle stores dunder-prefixed attributes under their mangled name.
        Ref simple(PyObject_GetAttrString(cls.get(), "__name__"));
        if (!simple) return nullptr;
        key = Ref(PyUnicode_FromFormat("_%U%U", simple.get(), key.get()));
        if (!key) return nullptr;
      }
      if (!set_attribute(instance.get(), key.get(), value.get())) return wrap_error(name);
    }
    if (seq != kNoNode && doc_[seq].kind == Kind::kArray) {
      const char* method = PyObject_HasAttrString(instance.get(), "append") ? "append"
                           : PyObject_HasAttrString(instance.get(), "add")  ? "add"
                                                                            : nullptr;
      if (method != nullptr) {
        for (std::uint32_t c = doc_[seq].first_child; c != kNoNode; c = doc_[c].next_sibling) {
          Ref v(restore(c));
          if (!v) return nullptr;
          Ref r(PyObject_CallMethod(instance.get(), method, "(O)", v.get()));
          if (!r) return wrap_error(name);
        }
      }
    }
    std::uint32_t st = doc_.member(n, "py/state");
    if (st != kNoNode) {
      Ref state(restore(st));
      if (!state) return nullptr;
      if (!apply_state(instance.get(), state.get())) return wrap_error(name);
    }
    return instance.release();
  }

  // Keys repeat (lists of records): one str per distinct key, as json's own decoder memoizes.
  PyObject* key_object(std::string_view key) {
    // A short linear memo: documents have few distinct keys, and hashing costs more.
    for (auto& [text, obj] : keys_) {
      if (text == key) return obj.get();
    }
    PyObject* k = details::str_from_wtf8(key);
    if (k == nullptr) return nullptr;
    if (keys_.size() >= 64) {
      spare_keys_.emplace_back(k);
      return k;
    }
    keys_.emplace_back(key, Ref(k));
    return k;
  }

  const Document& doc_;
  const Known* k_;
  std::vector<std::pair<std::string_view, Ref>> keys_;
  std::vector<Ref> spare_keys_;
  std::vector<PyObject*> objs_;
  std::unordered_map<std::string, Ref> enums_;
  Entry scratch_;
  Ref zoneinfo_;
  Ref zoneinfo_unpickle_;
};

}  // namespace

PyObject* jsonpickle_decode(std::string_view text, const Limits& limits) {
  const Known* k = details::known();
  if (k == nullptr || !details::load_defaults(k)) return nullptr;
  const Limits safe = details::stack_safe(limits);
  auto doc = Document::parse(text, safe);
  if (!doc.is_ok()) {
    fail_decode(doc.status().message());
    return nullptr;
  }
  Decoder d(*doc, k);
  return d.restore(doc->root());
}

}  // namespace prpc::python
