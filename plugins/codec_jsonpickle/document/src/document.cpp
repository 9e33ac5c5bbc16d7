#include "prpc/jsonpickle/document.hpp"

#include <array>
#include <cstring>

namespace prpc::jsonpickle {

namespace {

constexpr std::uint32_t kBadCodePoint = 0xffffffffu;

bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

// Strict UTF-8 for raw input bytes (what Python's bytes.decode("utf-8") accepts). Returns the
// length of the sequence at s[i] or 0 when it is malformed.
static std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = s.size();
  if (c >= 0xc2 && c <= 0xdf) {
    return (i + 1 < n && (b(i + 1) & 0xc0) == 0x80) ? 2 : 0;
  }
  if (c >= 0xe0 && c <= 0xef) {
    if (i + 2 >= n) return 0;
    unsigned char c1 = b(i + 1);
    if ((c1 & 0xc0) != 0x80 || (b(i + 2) & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && c1 < 0xa0) return 0;   // overlong
    if (c == 0xed && c1 >= 0xa0) return 0;  // encoded surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (i + 3 >= n) return 0;
    unsigned char c1 = b(i + 1);
    if ((c1 & 0xc0) != 0x80 || (b(i + 2) & 0xc0) != 0x80 || (b(i + 3) & 0xc0) != 0x80) return 0;
    if (c == 0xf0 && c1 < 0x90) return 0;
    if (c == 0xf4 && c1 >= 0x90) return 0;
    return 4;
  }
  return 0;
}

class Parser {
 public:
  Parser(std::string_view in, const Limits& limits, Document& doc)
      : in_(in), limits_(limits), doc_(doc) {}

  Status run() {
    if (in_.size() > limits_.max_bytes) {
      return make_error(StatusCode::kResourceExhausted,
                        "document of " + std::to_string(in_.size()) +
                            " bytes exceeds the limit of " + std::to_string(limits_.max_bytes));
    }
    doc_.nodes_.reserve(in_.size() / 6 + 4);
    doc_.source_ = in_;
    // The open containers, innermost last; each remembers its last child to link siblings.
    struct Open {
      std::uint32_t node;
      std::uint32_t last_child;
      bool is_object;
    };
    std::vector<Open> stack;
    stack.reserve(16);
    std::string_view pending_key;
    bool have_key = false;

    ws(0);
    while (true) {
      // Parse one value at pos_.
      if (pos_ >= in_.size()) return fail("unexpected end of input, a value was expected");
      std::uint32_t idx = static_cast<std::uint32_t>(doc_.nodes_.size());
      doc_.nodes_.emplace_back();
      doc_.nodes_[idx].begin = static_cast<std::uint32_t>(pos_);
      if (have_key) {
        doc_.nodes_[idx].key = pending_key;
        have_key = false;
        if (pending_key.size() > 3 && pending_key[0] == 'p' && pending_key[1] == 'y' &&
            pending_key[2] == '/') {
          doc_.nodes_[stack.back().node].py_keys |= py_key_bit(pending_key);
        }
      }
      if (!stack.empty()) {
        Open& top = stack.back();
        Node& parent = doc_.nodes_[top.node];
        if (top.last_child == kNoNode) {
          parent.first_child = idx;
        } else {
          doc_.nodes_[top.last_child].next_sibling = idx;
        }
        top.last_child = idx;
        ++parent.size;
      }
      char c = in_[pos_];
      bool opened = false;
      if (c == '{' || c == '[') {
        if (stack.size() >= limits_.max_depth) {
          return make_error(StatusCode::kResourceExhausted,
                            "nesting deeper than " + std::to_string(limits_.max_depth) +
                                " levels at offset " + std::to_string(pos_));
        }
        doc_.nodes_[idx].kind = c == '{' ? Kind::kObject : Kind::kArray;
        ++pos_;
        stack.push_back({idx, kNoNode, c == '{'});
        ws(0);
        char close = c == '{' ? '}' : ']';
        if (pos_ < in_.size() && in_[pos_] == close) {
          ++pos_;
          doc_.nodes_[idx].end = static_cast<std::uint32_t>(pos_);
          stack.pop_back();
        } else {
          opened = true;
        }
      } else if (c == '"') {
        std::string_view s;
        PRPC_RETURN_IF_ERROR(parse_string(s));
        doc_.nodes_[idx].kind = Kind::kString;
        doc_.nodes_[idx].text = s;
        doc_.nodes_[idx].end = static_cast<std::uint32_t>(pos_);
      } else {
        PRPC_RETURN_IF_ERROR(parse_scalar(doc_.nodes_[idx]));
        doc_.nodes_[idx].end = static_cast<std::uint32_t>(pos_);
      }

      if (opened) {
        // First member or element of a new container.
        if (stack.back().is_object) {
          PRPC_RETURN_IF_ERROR(parse_key(pending_key));
          have_key = true;
        }
        continue;
      }
      // After a complete value: close containers or move to the next item.
      while (true) {
        ws(0);
        if (stack.empty()) {
          if (pos_ != in_.size()) return fail("extra data after the document");
          return Status::ok();
        }
        bool is_object = stack.back().is_object;
        if (pos_ >= in_.size()) return fail("unexpected end of input inside a container");
        char d = in_[pos_];
        if (d == ',') {
          ++pos_;
          ws(1);
          if (is_object) {
            PRPC_RETURN_IF_ERROR(parse_key(pending_key));
            have_key = true;
          }
          break;
        }
        if (d == (is_object ? '}' : ']')) {
          ++pos_;
          doc_.nodes_[stack.back().node].end = static_cast<std::uint32_t>(pos_);
          stack.pop_back();
          continue;
        }
        return fail(is_object ? "expected ',' or '}' after an object member"
                              : "expected ',' or ']' after an array element");
      }
    }
  }

 private:
  Status fail(std::string_view what) const {
    return make_error(StatusCode::kDecode,
                      "invalid JSON at offset " + std::to_string(pos_) + ": " + std::string(what));
  }

  void skip_ws() noexcept {
    while (pos_ < in_.size() && is_ws(in_[pos_])) ++pos_;
  }

  // Skips whitespace, noting whether it is exactly what json.dumps puts there: nothing, or one
  // space after a separator.
  void ws(std::size_t expected) noexcept {
    // Fast path: json.dumps layout.
    if (expected == 0) {
      if (pos_ >= in_.size() || !is_ws(in_[pos_])) return;
    } else if (pos_ + 1 < in_.size() && in_[pos_] == ' ' && !is_ws(in_[pos_ + 1])) {
      ++pos_;
      return;
    }
    std::size_t start = pos_;
    skip_ws();
    std::size_t n = pos_ - start;
    if (n != expected || (n == 1 && in_[start] != ' ')) doc_.canonical_ = false;
  }

  Status parse_key(std::string_view& key) {
    if (pos_ >= in_.size() || in_[pos_] != '"') return fail("expected a string key");
    PRPC_RETURN_IF_ERROR(parse_string(key));
    ws(0);
    if (pos_ >= in_.size() || in_[pos_] != ':') return fail("expected ':' after a key");
    ++pos_;
    ws(1);
    return Status::ok();
  }

  Status parse_string(std::string_view& out) {
    std::size_t start = ++pos_;
    // Fast path: no escapes.
    static constexpr auto kPlain = [] {
      std::array<bool, 256> t{};
      for (int ch = 0x20; ch < 0x7f; ++ch) t[static_cast<std::size_t>(ch)] = true;
      t['"'] = false;
      t['\\'] = false;
      return t;
    }();
    const std::size_t size = in_.size();
    const char* data = in_.data();
    while (pos_ < size) {
      while (pos_ < size && kPlain[static_cast<unsigned char>(data[pos_])]) ++pos_;
      if (pos_ >= size) break;
      unsigned char c = static_cast<unsigned char>(in_[pos_]);
      if (c == '"') {
        out = in_.substr(start, pos_ - start);
        ++pos_;
        return Status::ok();
      }
      if (c == '\\') break;
      if (c < 0x20) return fail("control character in a string");
      if (c < 0x7f) {
        ++pos_;
      } else if (c == 0x7f) {
        doc_.canonical_ = false;  // json.dumps writes \u007f
        ++pos_;
      } else {
        std::size_t n = utf8_sequence_length(in_, pos_);
        if (n == 0) return fail("invalid UTF-8");
        doc_.canonical_ = false;  // ensure_ascii escapes everything above ASCII
        pos_ += n;
      }
    }
    if (pos_ >= in_.size()) return fail("unterminated string");
    std::string& buf = *doc_.unescaped_.emplace_back(
        std::make_unique<std::string>(in_.substr(start, pos_ - start)));
    while (pos_ < in_.size()) {
      unsigned char c = static_cast<unsigned char>(in_[pos_]);
      if (c == '"') {
        ++pos_;
        out = buf;
        return Status::ok();
      }
      if (c == '\\') {
        if (pos_ + 1 >= in_.size()) return fail("unterminated string");
        char e = in_[pos_ + 1];
        pos_ += 2;
        switch (e) {
          case '"': buf += '"'; break;
          case '\\': buf += '\\'; break;
          case '/':
            buf += '/';
            doc_.canonical_ = false;
            break;
          case 'b': buf += '\b'; break;
          case 'f': buf += '\f'; break;
          case 'n': buf += '\n'; break;
          case 'r': buf += '\r'; break;
          case 't': buf += '\t'; break;
          case 'u': {
            std::uint32_t cp = 0;
            PRPC_RETURN_IF_ERROR(read_hex4(cp));
            // json.dumps uses \u only for controls without a short form, DEL and non-ASCII.
            if ((cp >= 0x20 && cp < 0x7f) || cp == '\b' || cp == '\f' || cp == '\n' || cp == '\r' ||
                cp == '\t') {
              doc_.canonical_ = false;
            }
            // A high surrogate followed by an escaped low one is one astral code point, as
            // Python's json joins them; anything else stays a lone surrogate.
            if (cp >= 0xd800 && cp <= 0xdbff && pos_ + 1 < in_.size() && in_[pos_] == '\\' &&
                in_[pos_ + 1] == 'u') {
              std::size_t save = pos_;
              pos_ += 2;
              std::uint32_t lo = 0;
              PRPC_RETURN_IF_ERROR(read_hex4(lo));
              if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
              } else {
                pos_ = save;
              }
            }
            append_wtf8(buf, cp);
            break;
          }
          default: pos_ -= 1; return fail("invalid escape in a string");
        }
        continue;
      }
      if (c < 0x20) return fail("control character in a string");
      if (c < 0x80) {
        if (c == 0x7f) doc_.canonical_ = false;
        buf += static_cast<char>(c);
        ++pos_;
      } else {
        std::size_t n = utf8_sequence_length(in_, pos_);
        if (n == 0) return fail("invalid UTF-8");
        doc_.canonical_ = false;
        buf.append(in_.substr(pos_, n));
        pos_ += n;
      }
    }
    return fail("unterminated string");
  }

  Status read_hex4(std::uint32_t& cp) {
    if (pos_ + 4 > in_.size()) return fail("truncated \\u escape");
    cp = 0;
    for (int k = 0; k < 4; ++k) {
      char ch = in_[pos_ + static_cast<std::size_t>(k)];
      int h = hex_value(ch);
      if (h < 0) return fail("invalid \\u escape");
      if (ch >= 'A' && ch <= 'F') doc_.canonical_ = false;
      cp = (cp << 4) | static_cast<std::uint32_t>(h);
    }
    pos_ += 4;
    return Status::ok();
  }

  bool literal(std::string_view word) noexcept {
    if (in_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  Status parse_scalar(Node& node) {
    std::size_t start = pos_;
    char first = in_[pos_];
    if (first == 'n' && literal("null")) {
      node.kind = Kind::kNull;
      return Status::ok();
    }
    if (first == 't' && literal("true")) {
      node.kind = Kind::kTrue;
      return Status::ok();
    }
    if (first == 'f' && literal("false")) {
      node.kind = Kind::kFalse;
      return Status::ok();
    }
    if ((first == 'N' || first == 'I' || first == '-') &&
        (literal("NaN") || literal("Infinity") || literal("-Infinity"))) {
      node.kind = Kind::kNumber;
      node.text = in_.substr(start, pos_ - start);
      return Status::ok();
    }
    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    if (pos_ < in_.size() && in_[pos_] == '-') ++pos_;
    if (pos_ >= in_.size() || !is_digit(in_[pos_])) {
      pos_ = start;
      return fail("expected a value");
    }
    std::size_t int_start = pos_;
    if (in_[pos_] == '0') {
      ++pos_;
    } else {
      while (pos_ < in_.size() && is_digit(in_[pos_])) ++pos_;
    }
    std::size_t int_digits = pos_ - int_start;
    bool integral = true;
    if (pos_ < in_.size() && in_[pos_] == '.') {
      ++pos_;
      if (pos_ >= in_.size() || !is_digit(in_[pos_])) return fail("digit expected after '.'");
      while (pos_ < in_.size() && is_digit(in_[pos_])) ++pos_;
      integral = false;
    }
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-')) ++pos_;
      if (pos_ >= in_.size() || !is_digit(in_[pos_])) return fail("digit expected in exponent");
      while (pos_ < in_.size() && is_digit(in_[pos_])) ++pos_;
      integral = false;
    }
    if (integral && int_digits > limits_.max_int_digits) {
      return make_error(StatusCode::kResourceExhausted,
                        "integer of " + std::to_string(int_digits) + " digits at offset " +
                            std::to_string(start) + " exceeds the limit of " +
                            std::to_string(limits_.max_int_digits) + " digits");
    }
    node.kind = Kind::kNumber;
    node.integral = integral;
    node.text = in_.substr(start, pos_ - start);
    return Status::ok();
  }

  std::string_view in_;
  const Limits& limits_;
  Document& doc_;
  std::size_t pos_ = 0;
};

std::uint16_t py_key_bit(std::string_view key) noexcept {
  if (key.size() < 4 || key.substr(0, 3) != "py/") return 0;
  std::string_view t = key.substr(3);
  switch (t[0]) {
    case 't':
      if (t == "tuple") return kPyTuple;
      if (t == "type") return kPyType;
      break;
    case 's':
      if (t == "set") return kPySet;
      break;
    case 'b':
      if (t == "b64") return kPyB64;
      if (t == "b85") return kPyB85;
      break;
    case 'i':
      if (t == "id") return kPyId;
      if (t == "iterator") return kPyIterator;
      break;
    case 'o':
      if (t == "object") return kPyObject;
      break;
    case 'r':
      if (t == "reduce") return kPyReduce;
      if (t == "repr") return kPyRepr;
      break;
    case 'f':
      if (t == "function") return kPyFunction;
      break;
    case 'm':
      if (t == "mod") return kPyMod;
      break;
    default: break;
  }
  return kPyOther;
}

Result<Document> Document::parse(std::string_view input, const Limits& limits) {
  Document doc;
  Parser p(input, limits, doc);
  Status s = p.run();
  if (!s.is_ok()) return s;
  return doc;
}

std::uint32_t Document::member(std::uint32_t obj, std::string_view key) const noexcept {
  if (obj == kNoNode || nodes_[obj].kind != Kind::kObject) return kNoNode;
  std::uint32_t found = kNoNode;
  for (std::uint32_t c = nodes_[obj].first_child; c != kNoNode; c = nodes_[c].next_sibling) {
    if (nodes_[c].key == key) found = c;
  }
  return found;
}

std::uint32_t Document::child(std::uint32_t node, std::uint32_t index) const noexcept {
  if (node == kNoNode) return kNoNode;
  std::uint32_t c = nodes_[node].first_child;
  for (std::uint32_t i = 0; c != kNoNode && i < index; ++i) c = nodes_[c].next_sibling;
  return c;
}

void append_wtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

std::uint32_t next_code_point(std::string_view s, std::size_t& i) noexcept {
  auto b = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(s[k]));
  };
  std::uint32_t c = b(i);
  if (c < 0x80) {
    ++i;
    return c;
  }
  std::size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) {
    ++i;
    return kBadCodePoint;
  }
  std::uint32_t cp = c & (0xff >> (n + 1));
  for (std::size_t k = 1; k < n; ++k) {
    std::uint32_t cc = b(i + k);
    if ((cc & 0xc0) != 0x80) {
      ++i;
      return kBadCodePoint;
    }
    cp = (cp << 6) | (cc & 0x3f);
  }
  i += n;
  return cp;
}

void append_py_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto u4 = [&](std::uint32_t v) {
    char buf[6] = {
        '\\',         'u', kHex[(v >> 12) & 0xf], kHex[(v >> 8) & 0xf], kHex[(v >> 4) & 0xf],
        kHex[v & 0xf]};
    out.append(buf, 6);
  };
  out += '"';
  std::size_t i = 0;
  while (i < text.size()) {
    // Copy the longest run that needs no escaping in one append.
    std::size_t run = i;
    while (run < text.size()) {
      unsigned char c = static_cast<unsigned char>(text[run]);
      if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') break;
      ++run;
    }
    if (run > i) {
      out.append(text.substr(i, run - i));
      i = run;
      if (i >= text.size()) break;
    }
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default: u4(c); break;
      }
      continue;
    }
    std::uint32_t cp = next_code_point(text, i);
    if (cp == kBadCodePoint) cp = 0xfffd;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      u4(0xd800 + (cp >> 10));
      u4(0xdc00 + (cp & 0x3ff));
    } else {
      u4(cp);
    }
  }
  out += '"';
}

void write_node(const Document& doc, std::uint32_t n, std::string& out) {
  // Iterative so that writing is as stack-safe as parsing.
  struct Frame {
    std::uint32_t node;
    std::uint32_t next_child;
    bool first;
  };
  std::vector<Frame> stack;
  auto emit_scalar = [&](const Node& x) {
    switch (x.kind) {
      case Kind::kNull: out += "null"; break;
      case Kind::kFalse: out += "false"; break;
      case Kind::kTrue: out += "true"; break;
      case Kind::kNumber: out += x.text; break;
      case Kind::kString: append_py_string(out, x.text); break;
      default: break;
    }
  };
  auto open = [&](std::uint32_t idx) {
    const Node& x = doc[idx];
    if (x.kind == Kind::kArray || x.kind == Kind::kObject) {
      out += x.kind == Kind::kArray ? '[' : '{';
      stack.push_back({idx, x.first_child, true});
    } else {
      emit_scalar(x);
    }
  };
  open(n);
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next_child == kNoNode) {
      out += doc[f.node].kind == Kind::kArray ? ']' : '}';
      stack.pop_back();
      continue;
    }
    std::uint32_t c = f.next_child;
    f.next_child = doc[c].next_sibling;
    if (!f.first) out += ", ";
    f.first = false;
    if (doc[f.node].kind == Kind::kObject) {
      append_py_string(out, doc[c].key);
      out += ": ";
    }
    open(c);
  }
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto b = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    std::uint32_t v = b(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    std::uint32_t v = (b(i) << 16) | (b(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  static const std::array<std::int8_t, 256> kTable = [] {
    std::array<std::int8_t, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int k = 0; k < 64; ++k) t[static_cast<unsigned char>(a[k])] = static_cast<std::int8_t>(k);
    return t;
  }();
  out.clear();
  out.reserve(text.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t quad = 0;
  std::size_t pads = 0;
  for (char ch : text) {
    if (ch == '=') {
      // Padding ends the data; binascii accepts it only where a quad is incomplete.
      ++pads;
      continue;
    }
    std::int8_t v = kTable[static_cast<unsigned char>(ch)];
    if (v < 0) continue;  // non-alphabet characters are skipped, as in non-strict mode
    if (pads != 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    ++quad;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  std::size_t rem = quad % 4;
  if (rem == 1) return false;
  if (rem != 0 && pads < 4 - rem) return false;
  return true;
}

}  // namespace prpc::jsonpickle
