#include "prpc/jsonpickle/references.hpp"

#include <array>
#include <charconv>

namespace prpc::jsonpickle {

namespace {

constexpr std::array<std::string_view, 19> kReserved = {
    "py/bytes",    "py/function", "py/id",        "py/initargs", "py/iterator",
    "py/mod",      "py/newargs",  "py/newargsex", "py/newobj",   "py/object",
    "py/property", "py/reduce",   "py/ref",       "py/repr",     "py/seq",
    "py/set",      "py/state",    "py/tuple",     "py/type"};

bool is_datetime_handler(std::string_view cls) noexcept {
  return cls == "datetime.datetime" || cls == "datetime.date" || cls == "datetime.time";
}

// Python truthiness of a JSON value as json.loads returns it.
bool truthy(const Document& doc, std::uint32_t n) noexcept {
  if (n == kNoNode) return false;
  const Node& x = doc[n];
  switch (x.kind) {
    case Kind::kNull:
    case Kind::kFalse: return false;
    case Kind::kTrue: return true;
    case Kind::kString: return !x.text.empty();
    case Kind::kArray:
    case Kind::kObject: return x.size != 0;
    case Kind::kNumber:
      for (char c : x.text) {
        if (c == 'e' || c == 'E') break;
        if (c >= '1' && c <= '9') return true;
        if (c == 'N' || c == 'I') return true;  // NaN, Infinity
      }
      return false;
  }
  return false;
}

bool read_index(std::string_view text, std::int64_t& v) noexcept {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && p == text.data() + text.size();
}

bool is_string(const Document& doc, std::uint32_t n, std::string_view value) noexcept {
  return n != kNoNode && doc[n].kind == Kind::kString && doc[n].text == value;
}

// The children a non-handler py/object restores, in the decoder's order: default_factory, the
// constructor arguments, the attributes, py/seq items, py/state. `wrapper` children (the list of
// py/seq, the pair of py/newargsex) are not restored themselves, only their items.
template <typename F>
void object_children(const Document& doc, std::uint32_t n, F&& visit) {
  std::uint32_t factory = doc.member(n, "default_factory");
  if (factory != kNoNode) visit("default_factory", factory, false);
  if ((doc[n].py_keys & ~static_cast<unsigned>(kPyObject)) == 0) {
    // Only py/object among the tags (the common case): attributes only.
    for (std::uint32_t c = doc[n].first_child; c != kNoNode; c = doc[c].next_sibling) {
      std::string_view k = doc[c].key;
      if (k == "default_factory" || k == "py/object") continue;
      visit(k, c, false);
    }
    return;
  }
  std::uint32_t ex = doc.member(n, "py/newargsex");
  if (ex != kNoNode) {
    visit("py/newargsex", ex, true);
  } else {
    std::uint32_t na = doc.member(n, "py/newargs");
    if (na != kNoNode) {
      visit("py/newargs", na, false);
    } else {
      std::uint32_t ia = doc.member(n, "py/initargs");
      if (ia != kNoNode) visit("py/initargs", ia, false);
    }
  }
  for (std::uint32_t c = doc[n].first_child; c != kNoNode; c = doc[c].next_sibling) {
    std::string_view k = doc[c].key;
    if (is_reserved_key(k) || k == "default_factory") continue;
    visit(k, c, false);
  }
  std::uint32_t seq = doc.member(n, "py/seq");
  if (seq != kNoNode) visit("py/seq", seq, true);
  std::uint32_t state = doc.member(n, "py/state");
  if (state != kNoNode) visit("py/state", state, false);
}

class Counter {
 public:
  Counter(const Document& doc, Numbering& out) : doc_(doc), out_(out) {}

  void visit(std::uint32_t n) {
    const Node& x = doc_[n];
    if (x.kind == Kind::kArray) {
      track(n);
      items(n);
      return;
    }
    if (x.kind != Kind::kObject) return;
    switch (tag_of(doc_, n)) {
      case Tag::kDict:
        track(n);
        for (std::uint32_t c = x.first_child; c != kNoNode; c = doc_[c].next_sibling) visit(c);
        return;
      case Tag::kTuple: items(doc_.member(n, "py/tuple")); return;
      case Tag::kSet: items(doc_.member(n, "py/set")); return;
      case Tag::kIterator: {
        std::uint32_t v = doc_.member(n, "py/iterator");
        if (doc_[v].kind == Kind::kArray) {
          track(v);
          items(v);
        } else {
          track(n);
        }
        return;
      }
      case Tag::kObject: {
        track(n);
        std::uint32_t cls = doc_.member(n, "py/object");
        if (doc_[cls].kind == Kind::kString && is_datetime_handler(doc_[cls].text)) {
          std::uint32_t r = doc_.member(n, "__reduce__");
          if (r == kNoNode || doc_[r].kind != Kind::kArray || doc_[r].size < 2) return;
          visit(doc_.child(r, 0));
          std::uint32_t args = doc_.child(r, 1);
          if (doc_[args].kind != Kind::kArray) return;
          std::uint32_t a = doc_[args].first_child;
          if (a != kNoNode) a = doc_[a].next_sibling;
          for (; a != kNoNode; a = doc_[a].next_sibling) visit(a);
          return;
        }
        object_children(doc_, n, [&](std::string_view key, std::uint32_t c, bool wrapper) {
          if (!wrapper) {
            if (key == "py/newargs" || key == "py/initargs") {
              if (truthy(doc_, c)) visit(c);
            } else {
              visit(c);
            }
          } else if (key == "py/newargsex") {
            if (doc_[c].kind != Kind::kArray) return;
            for (std::uint32_t i = 0; i < 2; ++i) {
              std::uint32_t part = doc_.child(c, i);
              if (truthy(doc_, part)) visit(part);
            }
          } else {
            items(c);
          }
        });
        return;
      }
      case Tag::kReduce: {
        std::uint32_t id = static_cast<std::uint32_t>(out_.ids.size());
        track(n);
        items(doc_.member(n, "py/reduce"));
        if (is_utc(n)) out_.utc_ids.push_back(id);
        return;
      }
      case Tag::kModule:
      case Tag::kRepr: track(n); return;
      default: return;
    }
  }

 private:
  void track(std::uint32_t n) { out_.ids.push_back(n); }

  void items(std::uint32_t arr) {
    if (arr == kNoNode || doc_[arr].kind != Kind::kArray) return;
    for (std::uint32_t c = doc_[arr].first_child; c != kNoNode; c = doc_[c].next_sibling) visit(c);
  }

  // {"py/reduce": [{"py/type": "datetime.timezone"}, {"py/tuple": [<timedelta(0)>]}]}
  bool is_utc(std::uint32_t n) const {
    std::uint32_t r = doc_.member(n, "py/reduce");
    if (doc_[r].kind != Kind::kArray || doc_[r].size != 2) return false;
    std::uint32_t f = doc_.child(r, 0);
    if (!is_string(doc_, doc_.member(f, "py/type"), "datetime.timezone")) return false;
    std::uint32_t t = doc_.child(r, 1);
    if (tag_of(doc_, t) != Tag::kTuple) return false;
    std::uint32_t targs = doc_.member(t, "py/tuple");
    if (doc_[targs].kind != Kind::kArray || doc_[targs].size != 1) return false;
    std::uint32_t td = resolve(doc_, doc_.child(targs, 0), out_);
    if (td == kNoNode || tag_of(doc_, td) != Tag::kReduce) return false;
    std::uint32_t tr = doc_.member(td, "py/reduce");
    if (doc_[tr].kind != Kind::kArray || doc_[tr].size != 2) return false;
    if (!is_string(doc_, doc_.member(doc_.child(tr, 0), "py/type"), "datetime.timedelta")) {
      return false;
    }
    std::uint32_t tt = doc_.child(tr, 1);
    if (tag_of(doc_, tt) != Tag::kTuple) return false;
    std::uint32_t nums = doc_.member(tt, "py/tuple");
    if (doc_[nums].kind != Kind::kArray || doc_[nums].size != 3) return false;
    for (std::uint32_t c = doc_[nums].first_child; c != kNoNode; c = doc_[c].next_sibling) {
      if (doc_[c].kind != Kind::kNumber || doc_[c].text != "0") return false;
    }
    return true;
  }

  const Document& doc_;
  Numbering& out_;
};

class Rebaser {
 public:
  Rebaser(const Document& doc, const Numbering& global, std::size_t max_depth, std::string& out)
      : doc_(doc),
        global_(global),
        max_depth_(max_depth),
        out_(out),
        local_(doc.node_count(), -1) {}

  Status write_root(std::uint32_t n, bool as_list) {
    if (as_list && tag_of(doc_, n) == Tag::kTuple) {
      std::uint32_t arr = doc_.member(n, "py/tuple");
      local_[n] = next_++;
      out_ += '[';
      if (doc_[arr].kind == Kind::kArray) PRPC_RETURN_IF_ERROR(items(arr, 1));
      out_ += ']';
      return Status::ok();
    }
    return write(n, 0);
  }

 private:
  Status write(std::uint32_t n, std::size_t depth) {
    if (depth > max_depth_) {
      return make_error(StatusCode::kResourceExhausted,
                        "references nest deeper than " + std::to_string(max_depth_) + " levels");
    }
    const Node& x = doc_[n];
    if (x.kind == Kind::kArray) {
      if (written(n)) return Status::ok();
      out_ += '[';
      PRPC_RETURN_IF_ERROR(items(n, depth + 1));
      out_ += ']';
      return Status::ok();
    }
    if (x.kind != Kind::kObject) {
      write_node(doc_, n, out_);
      return Status::ok();
    }
    switch (tag_of(doc_, n)) {
      case Tag::kDict: {
        if (written(n)) return Status::ok();
        out_ += '{';
        bool first = true;
        for (std::uint32_t c = x.first_child; c != kNoNode; c = doc_[c].next_sibling) {
          if (!first) out_ += ", ";
          first = false;
          append_py_string(out_, doc_[c].key);
          out_ += ": ";
          PRPC_RETURN_IF_ERROR(write(c, depth + 1));
        }
        out_ += '}';
        return Status::ok();
      }
      case Tag::kTuple: return wrapped(n, "py/tuple", depth);
      case Tag::kSet: return wrapped(n, "py/set", depth);
      case Tag::kId: {
        std::uint32_t target = resolve(doc_, n, global_);
        if (target == kNoNode) {
          out_ += "null";  // jsonpickle restores a dangling reference as None
          return Status::ok();
        }
        if (local_[target] >= 0) {
          ref(static_cast<std::uint32_t>(local_[target]));
          return Status::ok();
        }
        return write(target, depth + 1);  // first use in this fragment: an inline copy
      }
      case Tag::kIterator: {
        std::uint32_t v = doc_.member(n, "py/iterator");
        if (doc_[v].kind != Kind::kArray) {
          if (written(n)) return Status::ok();
          out_ += "{\"py/iterator\": []}";
          return Status::ok();
        }
        out_ += "{\"py/iterator\": ";
        PRPC_RETURN_IF_ERROR(write(v, depth + 1));
        out_ += '}';
        return Status::ok();
      }
      case Tag::kObject: return object(n, depth);
      case Tag::kReduce: {
        if (written(n)) return Status::ok();
        std::uint32_t v = doc_.member(n, "py/reduce");
        out_ += "{\"py/reduce\": ";
        if (doc_[v].kind == Kind::kArray) {
          out_ += '[';
          PRPC_RETURN_IF_ERROR(items(v, depth + 1));
          out_ += ']';
        } else {
          write_node(doc_, v, out_);
        }
        out_ += '}';
        return Status::ok();
      }
      case Tag::kModule:
      case Tag::kRepr:
        if (written(n)) return Status::ok();
        write_node(doc_, n, out_);
        return Status::ok();
      default: write_node(doc_, n, out_); return Status::ok();
    }
  }

  // For a tracked node: emits a reference when it is already in this fragment (then returns
  // true), else gives it the next local id.
  bool written(std::uint32_t n) {
    if (local_[n] >= 0) {
      ref(static_cast<std::uint32_t>(local_[n]));
      return true;
    }
    local_[n] = next_++;
    return false;
  }

  void ref(std::uint32_t id) {
    out_ += "{\"py/id\": ";
    out_ += std::to_string(id);
    out_ += '}';
  }

  Status items(std::uint32_t arr, std::size_t depth) {
    bool first = true;
    for (std::uint32_t c = doc_[arr].first_child; c != kNoNode; c = doc_[c].next_sibling) {
      if (!first) out_ += ", ";
      first = false;
      PRPC_RETURN_IF_ERROR(write(c, depth));
    }
    return Status::ok();
  }

  Status wrapped(std::uint32_t n, std::string_view tag, std::size_t depth) {
    std::uint32_t v = doc_.member(n, tag);
    out_ += "{";
    append_py_string(out_, tag);
    out_ += ": ";
    if (doc_[v].kind == Kind::kArray) {
      out_ += '[';
      PRPC_RETURN_IF_ERROR(items(v, depth + 1));
      out_ += ']';
    } else {
      write_node(doc_, v, out_);
    }
    out_ += '}';
    return Status::ok();
  }

  Status object(std::uint32_t n, std::size_t depth) {
    if (written(n)) return Status::ok();
    std::uint32_t cls = doc_.member(n, "py/object");
    out_ += "{\"py/object\": ";
    write_node(doc_, cls, out_);
    if (doc_[cls].kind == Kind::kString && is_datetime_handler(doc_[cls].text)) {
      std::uint32_t r = doc_.member(n, "__reduce__");
      if (r == kNoNode) {
        out_ += '}';
        return Status::ok();
      }
      out_ += ", \"__reduce__\": ";
      std::uint32_t args = doc_.child(r, 1);
      if (doc_[r].kind != Kind::kArray || doc_[r].size < 2 || doc_[args].kind != Kind::kArray) {
        write_node(doc_, r, out_);
        out_ += '}';
        return Status::ok();
      }
      out_ += '[';
      PRPC_RETURN_IF_ERROR(write(doc_.child(r, 0), depth + 1));
      out_ += ", [";
      bool first = true;
      for (std::uint32_t a = doc_[args].first_child; a != kNoNode; a = doc_[a].next_sibling) {
        if (!first) out_ += ", ";
        if (first) {
          write_node(doc_, a, out_);  // the pickled state: a string, not restored
        } else {
          PRPC_RETURN_IF_ERROR(write(a, depth + 1));
        }
        first = false;
      }
      out_ += "]]}";
      return Status::ok();
    }
    Status st;
    object_children(doc_, n, [&](std::string_view key, std::uint32_t c, bool wrapper) {
      if (!st.is_ok()) return;
      out_ += ", ";
      append_py_string(out_, key);
      out_ += ": ";
      if (!wrapper) {
        if ((key == "py/newargs" || key == "py/initargs") && !truthy(doc_, c)) {
          write_node(doc_, c, out_);
        } else {
          st = write(c, depth + 1);
        }
        return;
      }
      if (doc_[c].kind != Kind::kArray) {
        write_node(doc_, c, out_);
        return;
      }
      out_ += '[';
      std::uint32_t i = 0;
      for (std::uint32_t part = doc_[c].first_child; part != kNoNode && st.is_ok();
           part = doc_[part].next_sibling, ++i) {
        if (i != 0) out_ += ", ";
        if (key == "py/newargsex" && (i >= 2 || !truthy(doc_, part))) {
          write_node(doc_, part, out_);
        } else {
          st = write(part, depth + 1);
        }
      }
      out_ += ']';
    });
    PRPC_RETURN_IF_ERROR(st);
    out_ += '}';
    return Status::ok();
  }

  const Document& doc_;
  const Numbering& global_;
  std::size_t max_depth_;
  std::string& out_;
  std::vector<std::int32_t> local_;
  std::int32_t next_ = 0;
};

}  // namespace

bool is_reserved_key(std::string_view key) noexcept {
  if (key.size() < 5 || key[0] != 'p' || key[1] != 'y' || key[2] != '/') return false;
  for (std::string_view r : kReserved) {
    if (r == key) return true;
  }
  return false;
}

Tag tag_of(const Document& doc, std::uint32_t node) noexcept {
  if (node == kNoNode || doc[node].kind != Kind::kObject) return Tag::kNone;
  std::uint16_t flags = doc[node].py_keys & static_cast<std::uint16_t>(~kPyOther);
  if (flags == 0) return Tag::kDict;
  if (flags & kPyTuple) return Tag::kTuple;
  if (flags & kPySet) return Tag::kSet;
  if (flags & kPyB64) return Tag::kB64;
  if (flags & kPyB85) return Tag::kB85;
  if (flags & kPyId) return Tag::kId;
  if (flags & kPyIterator) return Tag::kIterator;
  if (flags & kPyObject) return Tag::kObject;
  if (flags & kPyType) return Tag::kType;
  if (flags & kPyReduce) return Tag::kReduce;
  if (flags & kPyFunction) return Tag::kFunction;
  if (flags & kPyMod) return Tag::kModule;
  return Tag::kRepr;
}

Status number_nodes(const Document& doc, std::uint32_t node, Numbering& out) {
  Counter(doc, out).visit(node);
  return Status::ok();
}

std::uint32_t resolve(const Document& doc, std::uint32_t node, const Numbering& global) noexcept {
  if (node == kNoNode || tag_of(doc, node) != Tag::kId) return node;
  std::uint32_t v = doc.member(node, "py/id");
  std::int64_t idx = -1;
  if (doc[v].kind != Kind::kNumber || !doc[v].integral || !read_index(doc[v].text, idx) ||
      idx < 0 || static_cast<std::uint64_t>(idx) >= global.ids.size()) {
    return kNoNode;
  }
  // Ids are only given to non-reference nodes, so one hop is enough.
  return global.ids[static_cast<std::size_t>(idx)];
}

void write_mapped(const Document& doc, std::uint32_t n,
                  const std::vector<std::int64_t>& local_to_global,
                  const std::vector<Replacement>& replaced, std::string& out) {
  const Node& x = doc[n];
  if (x.kind == Kind::kArray) {
    out += '[';
    bool first = true;
    for (std::uint32_t c = x.first_child; c != kNoNode; c = doc[c].next_sibling) {
      if (!first) out += ", ";
      first = false;
      write_mapped(doc, c, local_to_global, replaced, out);
    }
    out += ']';
    return;
  }
  if (x.kind != Kind::kObject) {
    write_node(doc, n, out);
    return;
  }
  for (const Replacement& r : replaced) {
    if (r.node == n) {
      out += "{\"py/id\": ";
      out += std::to_string(r.id);
      out += '}';
      return;
    }
  }
  if (tag_of(doc, n) == Tag::kId) {
    std::uint32_t v = doc.member(n, "py/id");
    std::int64_t idx = 0;
    if (doc[v].kind == Kind::kNumber && doc[v].integral && read_index(doc[v].text, idx)) {
      // A dangling local reference stays dangling, past the end of the envelope's ids.
      std::int64_t mapped = idx >= 0 && static_cast<std::uint64_t>(idx) < local_to_global.size()
                                ? local_to_global[static_cast<std::size_t>(idx)]
                                : idx + (local_to_global.empty() ? 0 : local_to_global.back() + 1);
      out += "{\"py/id\": ";
      out += std::to_string(mapped);
      out += '}';
      return;
    }
  }
  out += '{';
  bool first = true;
  for (std::uint32_t c = x.first_child; c != kNoNode; c = doc[c].next_sibling) {
    if (!first) out += ", ";
    first = false;
    append_py_string(out, doc[c].key);
    out += ": ";
    write_mapped(doc, c, local_to_global, replaced, out);
  }
  out += '}';
}

Result<std::string> write_rebased(const Document& doc, std::uint32_t node, const Numbering& global,
                                  std::size_t max_depth, bool as_list) {
  std::string out;
  Rebaser r(doc, global, max_depth, out);
  Status s = r.write_root(node, as_list);
  if (!s.is_ok()) return s;
  return out;
}

}  // namespace prpc::jsonpickle
