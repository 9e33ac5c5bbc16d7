#include "prpc/jsonpickle/codec.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>
#include <vector>

#include "prpc/json.hpp"
#include "prpc/jsonpickle/references.hpp"
#include "prpc/uuid.hpp"

namespace prpc::jsonpickle {

namespace {

constexpr std::int64_t kMicrosPerSecond = 1'000'000;
constexpr std::int64_t kSecondsPerDay = 86'400;

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

// ".f" .. ".ffffff" (more digits are cut, as fromisoformat does from 3.11).
bool fraction(std::string_view s, std::size_t& pos, int& micros) {
  micros = 0;
  if (pos >= s.size() || (s[pos] != '.' && s[pos] != ',')) return true;
  ++pos;
  std::size_t n = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    if (n < 6) micros = micros * 10 + (s[pos] - '0');
    ++n;
    ++pos;
  }
  if (n == 0) return false;
  for (std::size_t i = n; i < 6; ++i) micros *= 10;
  return true;
}

bool valid_date(int y, int m, int d) {
  using namespace std::chrono;
  return y >= 1 && y <= 9999 &&
         year_month_day{year{y}, month{static_cast<unsigned>(m)}, day{static_cast<unsigned>(d)}}
             .ok();
}

// Zero-padded decimal of a non-negative value.
void append_uint(std::string& out, std::int64_t v, int width) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < 20);
  while (n < width) buf[n++] = '0';
  while (n > 0) out += buf[--n];
}

std::string describe(const Document& doc, std::uint32_t n) {
  if (n == kNoNode) return "nothing";
  switch (doc[n].kind) {
    case Kind::kNull: return "null";
    case Kind::kFalse:
    case Kind::kTrue: return "a bool";
    case Kind::kNumber: return "a number";
    case Kind::kString: return "a string";
    case Kind::kArray: return "a list";
    case Kind::kObject: break;
  }
  switch (tag_of(doc, n)) {
    case Tag::kDict: return "a dict";
    case Tag::kTuple: return "a tuple";
    case Tag::kSet: return "a set";
    case Tag::kB64:
    case Tag::kB85: return "bytes";
    case Tag::kId: return "a dangling py/id";
    case Tag::kObject: {
      std::uint32_t c = doc.member(n, "py/object");
      return "py/object " + (doc[c].kind == Kind::kString ? std::string(doc[c].text) : "?");
    }
    case Tag::kReduce: return "a py/reduce";
    default: return "a tagged object";
  }
}

Status field_error(std::string_view field, std::string_view what) {
  return make_error(StatusCode::kDecode,
                    "PRPCMessage." + std::string(field) + ": " + std::string(what));
}

bool read_int64(std::string_view text, std::int64_t& v) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && p == text.data() + text.size();
}

// (days, seconds, microseconds) of {"py/reduce": [{"py/type": "datetime.timedelta"},
// {"py/tuple": [d, s, us]}]}, as a count of microseconds.
std::optional<std::int64_t> timedelta_micros(const Document& doc, std::uint32_t n) {
  if (tag_of(doc, n) != Tag::kReduce) return std::nullopt;
  std::uint32_t r = doc.member(n, "py/reduce");
  if (doc[r].kind != Kind::kArray || doc[r].size < 2) return std::nullopt;
  std::uint32_t f = doc.member(doc.child(r, 0), "py/type");
  if (f == kNoNode || doc[f].text != "datetime.timedelta") return std::nullopt;
  std::uint32_t t = doc.member(doc.child(r, 1), "py/tuple");
  if (t == kNoNode || doc[t].kind != Kind::kArray || doc[t].size != 3) return std::nullopt;
  std::int64_t parts[3] = {0, 0, 0};
  for (std::uint32_t i = 0; i < 3; ++i) {
    const Node& x = doc[doc.child(t, i)];
    if (x.kind != Kind::kNumber || !x.integral || !read_int64(x.text, parts[i])) {
      return std::nullopt;
    }
  }
  // Offsets are within a day; anything larger is not a datetime.timezone offset.
  if (parts[0] < -2 || parts[0] > 2) return std::nullopt;
  return (parts[0] * kSecondsPerDay + parts[1]) * kMicrosPerSecond + parts[2];
}

struct Salvage {
  std::string message_id;
  std::string reply_to;
  std::string func_name;
};

// Best effort for input that is not even JSON: find "key": "value" or the uuid's "hex".
std::string scan_text_field(std::string_view in, std::string_view key) {
  std::string needle = "\"" + std::string(key) + "\"";
  std::size_t p = in.find(needle);
  if (p == std::string_view::npos) return {};
  p += needle.size();
  while (p < in.size() && (in[p] == ' ' || in[p] == ':')) ++p;
  if (p < in.size() && in[p] == '{') {
    std::size_t h = in.find("\"hex\"", p);
    if (h == std::string_view::npos || h > p + 64) return {};
    p = h + 5;
    while (p < in.size() && (in[p] == ' ' || in[p] == ':')) ++p;
  }
  if (p >= in.size() || in[p] != '"') return {};
  std::size_t end = in.find('"', p + 1);
  if (end == std::string_view::npos || end - p > 512) return {};
  std::string_view v = in.substr(p + 1, end - p - 1);
  if (v.find('\\') != std::string_view::npos) return {};
  return std::string(v);
}

void fill_salvage(Message* salvaged, const Salvage& s) {
  if (salvaged == nullptr) return;
  if (auto c = canonical_uuid(s.message_id)) {
    salvaged->message_id = *c;
  } else {
    salvaged->message_id = s.message_id;
  }
  salvaged->reply_to = s.reply_to;
  salvaged->func_name = s.func_name;
}

// Whether the subtree at `node` holds no jsonpickle tag (no object with a "py/" key), so that
// Python reads it as plain JSON.
bool plain_json(const Document& doc, std::uint32_t node) {
  std::vector<std::uint32_t> todo{node};
  while (!todo.empty()) {
    std::uint32_t n = todo.back();
    todo.pop_back();
    if (doc[n].kind == Kind::kObject && doc[n].py_keys != 0) return false;
    for (std::uint32_t c = doc[n].first_child; c != kNoNode; c = doc[c].next_sibling) {
      todo.push_back(c);
    }
  }
  return true;
}

// The node as json.dumps writes it.
void append_canonical(const Document& doc, std::uint32_t node, std::string& out) {
  if (doc.canonical()) {
    out += doc.source(node);
  } else {
    write_node(doc, node, out);
  }
}

class EnvelopeWriter {
 public:
  EnvelopeWriter(const Limits& limits, std::string& out) : limits_(limits), out_(out) {}

  void key(std::string_view k) {
    out_ += ", ";
    append_py_string(out_, k);
    out_ += ": ";
  }

  Status fragment(std::string_view field, std::string_view text) {
    auto parsed = Document::parse(text, limits_);
    if (!parsed.is_ok()) return parsed.status().with_context("encoding " + std::string(field));
    const Document& doc = *parsed;
    Numbering num;
    PRPC_RETURN_IF_ERROR(number_nodes(doc, doc.root(), num));
    std::vector<std::int64_t> map(num.ids.size(), -1);
    std::vector<Replacement> replaced;
    std::size_t u = 0;
    for (std::size_t k = 0; k < num.ids.size(); ++k) {
      if (map[k] != -1) continue;
      bool is_utc = u < num.utc_ids.size() && num.utc_ids[u] == k;
      if (is_utc) ++u;
      if (is_utc && utc_id_ >= 0) {
        // Python holds one timezone.utc: a second one is a reference to the first, and the
        // timedelta inside it is never written.
        map[k] = utc_id_;
        replaced.push_back({num.ids[k], utc_id_});
        if (k + 1 < num.ids.size() && inside(doc, num.ids[k], num.ids[k + 1])) map[k + 1] = -2;
        continue;
      }
      if (is_utc) utc_id_ = next_;
      map[k] = next_++;
    }
    if (doc.canonical() && replaced.empty() && text.find("py/id") == std::string_view::npos) {
      out_ += text;  // nothing to renumber and already in json.dumps layout
    } else {
      write_mapped(doc, doc.root(), map, replaced, out_);
    }
    return Status::ok();
  }

  // The members of `extensions` as further attributes, after all the others: named fields, py/
  // tags and values holding a tag are skipped (only plain JSON crosses), a repeated key is
  // written once with its last value. Their containers would take the next reference ids, but
  // nothing after them refers to anything.
  Status extensions(std::string_view text) {
    auto members = json::object_members(text, json::Limits{limits_.max_depth, limits_.max_bytes});
    if (!members.is_ok()) {
      return make_error(StatusCode::kEncode, "extensions: " + members.status().message());
    }
    for (const auto& [k, raw] : *members) {
      if (!is_extension_key(k)) continue;
      auto parsed = Document::parse(raw, limits_);
      if (!parsed.is_ok()) {
        return make_error(StatusCode::kEncode,
                          "extensions." + k + ": " + parsed.status().message());
      }
      if (!plain_json(*parsed, parsed->root())) continue;
      key(k);
      append_canonical(*parsed, parsed->root(), out_);
    }
    return Status::ok();
  }

  void uuid(std::string_view id) {
    if (auto c = canonical_uuid(id)) {
      std::string hex;
      for (char ch : *c) {
        if (ch != '-') hex += ch;
      }
      out_ += "{\"py/object\": \"uuid.UUID\", \"hex\": \"";
      out_ += hex;
      out_ += "\"}";
      ++next_;
    } else {
      append_py_string(out_, id);
    }
  }

  Status date(std::string_view field, std::string_view iso) {
    if (iso.empty()) {
      out_ += "null";
      return Status::ok();
    }
    auto dt = datetime_from_iso(iso);
    if (!dt) {
      return make_error(StatusCode::kEncode,
                        std::string(field) + " is not an ISO 8601 datetime: " + std::string(iso));
    }
    out_ +=
        "{\"py/object\": \"datetime.datetime\", \"__reduce__\": [{\"py/type\": "
        "\"datetime.datetime\"}, [\"";
    out_ += base64_encode(dt->state);
    out_ += '"';
    ++next_;
    if (dt->has_offset) {
      out_ += ", ";
      if (dt->offset_us == 0 && utc_id_ >= 0) {
        out_ += "{\"py/id\": " + std::to_string(utc_id_) + "}";
      } else {
        if (dt->offset_us == 0) utc_id_ = next_;
        next_ += 2;  // the timezone and its timedelta
        std::int64_t total = dt->offset_us;
        std::int64_t us = ((total % kMicrosPerSecond) + kMicrosPerSecond) % kMicrosPerSecond;
        std::int64_t secs = (total - us) / kMicrosPerSecond;
        std::int64_t days =
            secs >= 0 ? secs / kSecondsPerDay : -((-secs + kSecondsPerDay - 1) / kSecondsPerDay);
        secs -= days * kSecondsPerDay;
        out_ +=
            "{\"py/reduce\": [{\"py/type\": \"datetime.timezone\"}, {\"py/tuple\": "
            "[{\"py/reduce\": [{\"py/type\": \"datetime.timedelta\"}, {\"py/tuple\": [";
        out_ += std::to_string(days) + ", " + std::to_string(secs) + ", " + std::to_string(us);
        out_ += "]}]}]}]}";
      }
    }
    out_ += "]]}";
    return Status::ok();
  }

 private:
  // Whether `inner` lies in the subtree of `outer` (node indexes are in document order).
  static bool inside(const Document& doc, std::uint32_t outer, std::uint32_t inner) {
    if (inner <= outer) return false;
    std::uint32_t end = outer;
    // The last node of a subtree: follow last children down.
    while (doc[end].first_child != kNoNode) {
      std::uint32_t c = doc[end].first_child;
      while (doc[c].next_sibling != kNoNode) c = doc[c].next_sibling;
      end = c;
    }
    return inner <= end;
  }

  const Limits& limits_;
  std::string& out_;
  std::int64_t next_ = 1;  // the message object itself is id 0
  std::int64_t utc_id_ = -1;
};

}  // namespace

std::optional<PickledDatetime> datetime_from_iso(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, us = 0;
  if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || !valid_date(y, mo, d)) {
    return std::nullopt;
  }
  std::size_t pos = 10;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != ' ' && s[pos] != 't') return std::nullopt;
    if (!digits(s, pos + 1, 2, h) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, mi)) {
      return std::nullopt;
    }
    pos += 6;
    if (pos < s.size() && s[pos] == ':') {
      if (!digits(s, pos + 1, 2, sec)) return std::nullopt;
      pos += 3;
      if (!fraction(s, pos, us)) return std::nullopt;
    }
    if (h > 23 || mi > 59 || sec > 59) return std::nullopt;
  }
  PickledDatetime dt;
  if (pos < s.size()) {
    char sign = s[pos];
    if (sign == 'Z' || sign == 'z') {
      dt.has_offset = true;
      ++pos;
    } else if (sign == '+' || sign == '-') {
      int oh = 0, om = 0, os = 0, ous = 0;
      if (!digits(s, pos + 1, 2, oh)) return std::nullopt;
      pos += 3;
      bool colon = pos < s.size() && s[pos] == ':';
      if (colon) ++pos;
      if (pos < s.size()) {
        if (!digits(s, pos, 2, om)) return std::nullopt;
        pos += 2;
        if (pos < s.size() && (colon ? s[pos] == ':' : (s[pos] >= '0' && s[pos] <= '9'))) {
          if (colon) ++pos;
          if (!digits(s, pos, 2, os)) return std::nullopt;
          pos += 2;
          if (!fraction(s, pos, ous)) return std::nullopt;
        }
      }
      if (oh > 23 || om > 59 || os > 59) return std::nullopt;
      std::int64_t off =
          ((static_cast<std::int64_t>(oh) * 60 + om) * 60 + os) * kMicrosPerSecond + ous;
      dt.has_offset = true;
      dt.offset_us = sign == '-' ? -off : off;
    } else {
      return std::nullopt;
    }
  }
  if (pos != s.size()) return std::nullopt;
  dt.state.resize(10);
  dt.state[0] = static_cast<char>(y >> 8);
  dt.state[1] = static_cast<char>(y & 0xff);
  dt.state[2] = static_cast<char>(mo);
  dt.state[3] = static_cast<char>(d);
  dt.state[4] = static_cast<char>(h);
  dt.state[5] = static_cast<char>(mi);
  dt.state[6] = static_cast<char>(sec);
  dt.state[7] = static_cast<char>((us >> 16) & 0xff);
  dt.state[8] = static_cast<char>((us >> 8) & 0xff);
  dt.state[9] = static_cast<char>(us & 0xff);
  return dt;
}

std::string iso_from_datetime(const PickledDatetime& dt) {
  auto b = [&](std::size_t i) { return static_cast<int>(static_cast<unsigned char>(dt.state[i])); };
  std::string out;
  out.reserve(32);
  append_uint(out, b(0) * 256 + b(1), 4);
  out += '-';
  append_uint(out, b(2) & 0x7f, 2);  // the high bit is the fold flag of protocol 4 pickles
  out += '-';
  append_uint(out, b(3), 2);
  out += 'T';
  append_uint(out, b(4), 2);
  out += ':';
  append_uint(out, b(5), 2);
  out += ':';
  append_uint(out, b(6), 2);
  int us = (b(7) << 16) | (b(8) << 8) | b(9);
  if (us != 0) {
    out += '.';
    append_uint(out, us, 6);
  }
  if (dt.has_offset) {
    std::int64_t off = dt.offset_us;
    out += off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    std::int64_t ous = off % kMicrosPerSecond;
    std::int64_t secs = off / kMicrosPerSecond;
    append_uint(out, secs / 3600, 2);
    out += ':';
    append_uint(out, (secs / 60) % 60, 2);
    if (secs % 60 != 0 || ous != 0) {
      out += ':';
      append_uint(out, secs % 60, 2);
      if (ous != 0) {
        out += '.';
        append_uint(out, ous, 6);
      }
    }
  }
  return out;
}

Result<std::string> JsonpickleCodec::encode(const Message& m) const {
  std::string out;
  out.reserve(256 + m.func_args.size() + m.func_kwargs.size() + m.result.size());
  EnvelopeWriter w(limits_, out);
  out += "{\"py/object\": \"";
  out += kMessageClass;
  out += '"';
  w.key("func_name");
  append_py_string(out, m.func_name);
  w.key("func_args");
  PRPC_RETURN_IF_ERROR(w.fragment("func_args", m.func_args.empty() ? "[]" : m.func_args));
  w.key("func_kwargs");
  PRPC_RETURN_IF_ERROR(w.fragment("func_kwargs", m.func_kwargs.empty() ? "{}" : m.func_kwargs));
  w.key("message_id");
  w.uuid(m.message_id);
  // The original PRPC's attribute order: its constructor set the creation time before the
  // result fields.
  w.key("date_create_message");
  PRPC_RETURN_IF_ERROR(w.date("date_create_message", m.date_create_message));
  w.key("result");
  PRPC_RETURN_IF_ERROR(w.fragment("result", m.result.empty() ? "null" : m.result));
  w.key("exception_info");
  if (m.exception_info) {
    append_py_string(out, *m.exception_info);
  } else {
    out += "null";
  }
  w.key("date_done_message");
  PRPC_RETURN_IF_ERROR(w.date("date_done_message", m.date_done_message));
  // Extensions exist on the Python object only when they have a value, after the eight.
  auto text = [&](std::string_view k, const std::string& v) {
    if (v.empty()) return;
    w.key(k);
    append_py_string(out, v);
  };
  text("reply_to", m.reply_to);
  text("deadline", m.deadline);
  if (m.attempt != 0) {
    w.key("attempt");
    out += std::to_string(m.attempt);
  }
  text("exception_type", m.exception_type);
  text("traceback", m.traceback);
  text("traceparent", m.traceparent);
  PRPC_RETURN_IF_ERROR(w.extensions(m.extensions));
  out += '}';
  if (out.size() > limits_.max_bytes) {
    return make_error(StatusCode::kResourceExhausted,
                      "encoded message of " + std::to_string(out.size()) +
                          " bytes exceeds the limit of " + std::to_string(limits_.max_bytes));
  }
  return out;
}

namespace {

// Reads a parsed envelope into a Message one group of fields at a time, in the order the
// checks have always run, so the first error reported stays the same.
class EnvelopeReader {
 public:
  EnvelopeReader(const Document& doc, std::string_view bytes, const Limits& limits)
      : doc_(doc), bytes_(bytes), limits_(limits) {}

  // The numbering only serves py/id references; most messages have none, and numbering every
  // node of them was a visible share of a no-op call (docs/benchmarks.md). A document in
  // json.dumps layout spells the tag literally, so the text search is exact there.
  Status number() {
    if (doc_.canonical() && bytes_.find("py/id") == std::string_view::npos) return Status::ok();
    return number_nodes(doc_, root(), global_);
  }

  // What can be recovered, read before anything can fail, so every failure can be answered.
  Salvage salvage() const {
    Salvage out;
    out.func_name = string_or_empty(field("func_name"));
    out.reply_to = string_or_empty(field("reply_to"));
    out.message_id = message_id_text();
    return out;
  }

  Status read(Message& m) const {
    PRPC_RETURN_IF_ERROR(check_class());
    PRPC_RETURN_IF_ERROR(read_name_and_id(m));
    PRPC_RETURN_IF_ERROR(read_fragments(m));
    PRPC_RETURN_IF_ERROR(read_exception_info(m));
    PRPC_RETURN_IF_ERROR(date("date_create_message", m.date_create_message));
    PRPC_RETURN_IF_ERROR(date("date_done_message", m.date_done_message));
    PRPC_RETURN_IF_ERROR(read_optional_fields(m));
    read_extensions(m);
    return Status::ok();
  }

 private:
  std::uint32_t root() const { return doc_.root(); }
  std::uint32_t field(std::string_view name) const { return doc_.member(root(), name); }
  std::string string_or_empty(std::uint32_t n) const {
    return (n != kNoNode && doc_[n].kind == Kind::kString) ? std::string(doc_[n].text)
                                                           : std::string();
  }
  std::uint32_t message_id_node() const { return resolve(doc_, field("message_id"), global_); }
  // The id as sent: a string, or a uuid.UUID's hex.
  std::string message_id_text() const {
    std::uint32_t n = message_id_node();
    if (n != kNoNode && doc_[n].kind == Kind::kString) return std::string(doc_[n].text);
    if (tag_of(doc_, n) == Tag::kObject) return string_or_empty(doc_.member(n, "hex"));
    return {};
  }

  Status check_class() const {
    if (tag_of(doc_, root()) != Tag::kObject) {
      return make_error(StatusCode::kDecode,
                        "not a PRPCMessage: the document is " + describe(doc_, root()));
    }
    std::uint32_t cls = doc_.member(root(), "py/object");
    if (doc_[cls].kind != Kind::kString || doc_[cls].text != kMessageClass) {
      return make_error(StatusCode::kDecode,
                        "not a PRPCMessage: refusing " + describe(doc_, root()));
    }
    return Status::ok();
  }

  Status read_name_and_id(Message& m) const {
    std::uint32_t n = field("func_name");
    if (n == kNoNode || doc_[n].kind != Kind::kString) {
      return field_error("func_name", "expected a string, got " + describe(doc_, n));
    }
    m.func_name = std::string(doc_[n].text);
    // message_id: a uuid.UUID (jsonpickle's handler form) or a string.
    std::uint32_t id = message_id_node();
    if (id != kNoNode && doc_[id].kind == Kind::kString) {
      auto c = canonical_uuid(doc_[id].text);
      m.message_id = c ? *c : std::string(doc_[id].text);
    } else if (tag_of(doc_, id) == Tag::kObject &&
               doc_[doc_.member(id, "py/object")].text == "uuid.UUID") {
      auto c = canonical_uuid(message_id_text());
      if (!c) return field_error("message_id", "uuid.UUID with an invalid hex");
      m.message_id = *c;
    } else {
      return field_error("message_id",
                         "expected a uuid.UUID or a string, got " + describe(doc_, id));
    }
    if (m.message_id.empty()) return field_error("message_id", "empty");
    return Status::ok();
  }

  // A fragment without references is its own source text; the others are renumbered to stand
  // alone.
  Result<std::string> fragment(std::uint32_t node, bool as_list) const {
    std::string_view src = doc_.source(node);
    if (doc_.canonical() && src.find("py/id") == std::string_view::npos &&
        !(as_list && tag_of(doc_, node) == Tag::kTuple)) {
      return std::string(src);
    }
    return write_rebased(doc_, node, global_, limits_.max_depth, as_list);
  }

  Status read_fragments(Message& m) const {
    std::uint32_t n = field("func_args");
    if (n != kNoNode) {
      std::uint32_t r = resolve(doc_, n, global_);
      if (r == kNoNode || (doc_[r].kind != Kind::kArray && tag_of(doc_, r) != Tag::kTuple)) {
        return field_error("func_args", "expected a list or a tuple, got " + describe(doc_, r));
      }
      auto text = fragment(n, true);
      if (!text.is_ok()) return text.status().with_context("PRPCMessage.func_args");
      m.func_args = std::move(*text);
    }
    n = field("func_kwargs");
    if (n != kNoNode && doc_[n].kind != Kind::kNull) {
      std::uint32_t r = resolve(doc_, n, global_);
      if (tag_of(doc_, r) != Tag::kDict) {
        return field_error("func_kwargs", "expected a dict, got " + describe(doc_, r));
      }
      auto text = fragment(n, false);
      if (!text.is_ok()) return text.status().with_context("PRPCMessage.func_kwargs");
      m.func_kwargs = std::move(*text);
    }
    n = field("result");
    if (n != kNoNode) {
      auto text = fragment(n, false);
      if (!text.is_ok()) return text.status().with_context("PRPCMessage.result");
      m.result = std::move(*text);
    }
    return Status::ok();
  }

  Status read_exception_info(Message& m) const {
    std::uint32_t n = field("exception_info");
    if (n == kNoNode || doc_[n].kind == Kind::kNull) return Status::ok();
    if (doc_[n].kind != Kind::kString) {
      return field_error("exception_info", "expected a string, got " + describe(doc_, n));
    }
    m.exception_info = std::string(doc_[n].text);
    return Status::ok();
  }

  // A plain text field: a string, or null / absent.
  Status optional_text(std::string_view name, std::string& out) const {
    std::uint32_t x = field(name);
    if (x == kNoNode || doc_[x].kind == Kind::kNull) return Status::ok();
    if (doc_[x].kind != Kind::kString) {
      return field_error(name, "expected a string, got " + describe(doc_, x));
    }
    out = std::string(doc_[x].text);
    return Status::ok();
  }

  // reply_to, deadline (a datetime or ISO text), exception_type, traceback, traceparent,
  // attempt.
  Status read_optional_fields(Message& m) const {
    PRPC_RETURN_IF_ERROR(optional_text("reply_to", m.reply_to));
    std::uint32_t x = field("deadline");
    if (x != kNoNode && doc_[x].kind != Kind::kString && doc_[x].kind != Kind::kNull) {
      PRPC_RETURN_IF_ERROR(date("deadline", m.deadline));
    } else {
      PRPC_RETURN_IF_ERROR(optional_text("deadline", m.deadline));
    }
    PRPC_RETURN_IF_ERROR(optional_text("exception_type", m.exception_type));
    PRPC_RETURN_IF_ERROR(optional_text("traceback", m.traceback));
    PRPC_RETURN_IF_ERROR(optional_text("traceparent", m.traceparent));
    std::uint32_t n = field("attempt");
    if (n != kNoNode && doc_[n].kind != Kind::kNull) {
      std::int64_t a = 0;
      if (doc_[n].kind != Kind::kNumber || !doc_[n].integral || !read_int64(doc_[n].text, a) ||
          a < 0 || a > 0xffffffffLL) {
        return field_error("attempt", "expected a non-negative integer");
      }
      m.attempt = static_cast<std::uint32_t>(a);
    }
    return Status::ok();
  }

  // The attributes the codec does not name whose values are plain JSON, in order (a repeated
  // key once, with its last value, as Python's json keeps it); tagged values are dropped.
  void read_extensions(Message& m) const {
    std::vector<std::pair<std::string_view, std::uint32_t>> found;
    for (std::uint32_t c = doc_[root()].first_child; c != kNoNode; c = doc_[c].next_sibling) {
      std::string_view key = doc_[c].key;
      if (!is_extension_key(key)) continue;
      auto same =
          std::find_if(found.begin(), found.end(), [&](const auto& f) { return f.first == key; });
      if (same != found.end()) {
        same->second = c;
      } else {
        found.emplace_back(key, c);
      }
    }
    std::string out;
    for (const auto& [key, node] : found) {
      if (!plain_json(doc_, node)) continue;
      out += out.empty() ? "{" : ", ";
      append_py_string(out, key);
      out += ": ";
      append_canonical(doc_, node, out);
    }
    if (!out.empty()) m.extensions = std::move(out) + "}";
  }

  // Dates: a datetime object (jsonpickle's __reduce__ form), ISO text, or null.
  Status date(std::string_view name, std::string& out) const {
    std::uint32_t x = field(name);
    if (x == kNoNode || doc_[x].kind == Kind::kNull) return Status::ok();
    if (doc_[x].kind == Kind::kString) {
      if (!datetime_from_iso(doc_[x].text)) {
        return field_error(name, "not an ISO 8601 datetime: " + std::string(doc_[x].text));
      }
      out = std::string(doc_[x].text);
      return Status::ok();
    }
    std::uint32_t r = resolve(doc_, x, global_);
    std::uint32_t cls_node = doc_.member(r, "py/object");
    if (tag_of(doc_, r) != Tag::kObject || doc_[cls_node].text != "datetime.datetime") {
      return field_error(name, "expected a datetime, got " + describe(doc_, r));
    }
    std::uint32_t red = doc_.member(r, "__reduce__");
    std::uint32_t args = doc_.child(red, 1);
    if (red == kNoNode || doc_[red].kind != Kind::kArray || args == kNoNode ||
        doc_[args].kind != Kind::kArray || doc_[args].size < 1 || doc_[args].size > 2) {
      return field_error(name, "malformed datetime.datetime");
    }
    PickledDatetime dt;
    PRPC_RETURN_IF_ERROR(datetime_state(name, doc_.child(args, 0), dt));
    if (doc_[args].size == 2) PRPC_RETURN_IF_ERROR(timezone(name, doc_.child(args, 1), dt));
    out = iso_from_datetime(dt);
    return Status::ok();
  }

  // The 10-byte pickle state of a datetime, checked field by field.
  Status datetime_state(std::string_view name, std::uint32_t st, PickledDatetime& dt) const {
    if (doc_[st].kind != Kind::kString || !base64_decode(doc_[st].text, dt.state) ||
        dt.state.size() != 10) {
      return field_error(name, "malformed datetime state");
    }
    auto b = [&](std::size_t i) {
      return static_cast<int>(static_cast<unsigned char>(dt.state[i]));
    };
    if (!valid_date(b(0) * 256 + b(1), b(2) & 0x7f, b(3)) || b(4) > 23 || b(5) > 59 || b(6) > 59 ||
        ((b(7) << 16) | (b(8) << 8) | b(9)) > 999999) {
      return field_error(name, "datetime state out of range");
    }
    return Status::ok();
  }

  // A datetime's tzinfo: null, or a datetime.timezone with an offset within a day.
  Status timezone(std::string_view name, std::uint32_t node, PickledDatetime& dt) const {
    std::uint32_t tz = resolve(doc_, node, global_);
    if (tz == kNoNode || doc_[tz].kind == Kind::kNull) return Status::ok();
    std::uint32_t tr = doc_.member(tz, "py/reduce");
    std::uint32_t tf = doc_.member(doc_.child(tr, 0), "py/type");
    std::uint32_t ta = doc_.member(doc_.child(tr, 1), "py/tuple");
    if (tag_of(doc_, tz) != Tag::kReduce || doc_[tr].kind != Kind::kArray || tf == kNoNode ||
        doc_[tf].text != "datetime.timezone" || ta == kNoNode || doc_[ta].kind != Kind::kArray ||
        doc_[ta].size < 1) {
      return field_error(name,
                         "unsupported tzinfo (only datetime.timezone): " + describe(doc_, tz));
    }
    auto off = timedelta_micros(doc_, resolve(doc_, doc_.child(ta, 0), global_));
    if (!off || *off <= -kSecondsPerDay * kMicrosPerSecond ||
        *off >= kSecondsPerDay * kMicrosPerSecond) {
      return field_error(name, "malformed timezone offset");
    }
    dt.has_offset = true;
    dt.offset_us = *off;
    return Status::ok();
  }

  const Document& doc_;
  std::string_view bytes_;
  const Limits& limits_;
  Numbering global_;
};

}  // namespace

Result<Message> JsonpickleCodec::decode(std::string_view bytes, Message* salvaged) const {
  auto parsed = Document::parse(bytes, limits_);
  if (!parsed.is_ok()) {
    fill_salvage(salvaged,
                 Salvage{scan_text_field(bytes, "message_id"), scan_text_field(bytes, "reply_to"),
                         scan_text_field(bytes, "func_name")});
    return parsed.status().with_context("decoding a jsonpickle message");
  }
  EnvelopeReader reader(*parsed, bytes, limits_);
  PRPC_RETURN_IF_ERROR(reader.number());
  Message m;
  Status s = reader.read(m);
  if (!s.is_ok()) {
    fill_salvage(salvaged, reader.salvage());
    return s;
  }
  return m;
}

}  // namespace prpc::jsonpickle
