// A JSON document as Python's json module reads and writes it, kept as a flat node table.
//
// The jsonpickle codec and the Python converters both need three things the general JSON
// helpers do not give: a parser that never recurses (a million nested brackets must be refused,
// not overflow the stack), number text kept byte for byte (big integers, Python float repr), and
// a writer that produces exactly what json.dumps writes with its default settings (", " and ": "
// separators, ensure_ascii escapes). Strings are decoded to WTF-8 so that lone surrogates, which
// Python's json accepts in \u escapes, survive a round trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/status.hpp"

namespace prpc::jsonpickle {

struct Limits {
  std::size_t max_depth = 512;                    // nesting of arrays and objects
  std::size_t max_bytes = std::size_t{64} << 20;  // size of one document
  std::size_t max_int_digits = 4300;              // CPython's default int/str digit limit
};

enum class Kind : std::uint8_t { kNull, kFalse, kTrue, kNumber, kString, kArray, kObject };

inline constexpr std::uint32_t kNoNode = 0xffffffffu;

// Which "py/..." keys an object node has, noted while parsing so that telling jsonpickle tags
// apart needs no key comparisons.
enum PyKey : std::uint16_t {
  kPyTuple = 1u << 0,
  kPySet = 1u << 1,
  kPyB64 = 1u << 2,
  kPyB85 = 1u << 3,
  kPyId = 1u << 4,
  kPyIterator = 1u << 5,
  kPyObject = 1u << 6,
  kPyType = 1u << 7,
  kPyReduce = 1u << 8,
  kPyFunction = 1u << 9,
  kPyMod = 1u << 10,
  kPyRepr = 1u << 11,
  kPyOther = 1u << 12,  // any other key starting with "py/"
};
std::uint16_t py_key_bit(std::string_view key) noexcept;

struct Node {
  Kind kind = Kind::kNull;
  bool integral = false;      // a number written without fraction or exponent
  std::uint16_t py_keys = 0;  // PyKey bits of an object's member names
  std::uint32_t first_child = kNoNode;
  std::uint32_t next_sibling = kNoNode;
  std::uint32_t size = 0;   // children of an array or object
  std::uint32_t begin = 0;  // the value's byte range in the input
  std::uint32_t end = 0;
  std::string_view key;   // member name (decoded) when the parent is an object
  std::string_view text;  // decoded string, or the number's exact text
};

class Document {
 public:
  // Parses one JSON value (UTF-8, NaN/Infinity/-Infinity accepted as Python writes them).
  // `input` must outlive the document: undecorated strings point into it.
  static Result<Document> parse(std::string_view input, const Limits& limits);

  std::uint32_t root() const noexcept { return 0; }
  const Node& operator[](std::uint32_t i) const noexcept { return nodes_[i]; }
  std::size_t node_count() const noexcept { return nodes_.size(); }

  // The value of member `key` of object node `obj` (the last one when repeated, as Python's
  // json keeps it), or kNoNode.
  std::uint32_t member(std::uint32_t obj, std::string_view key) const noexcept;
  // The i-th child of an array or object, or kNoNode.
  std::uint32_t child(std::uint32_t node, std::uint32_t index) const noexcept;

  // The exact input text of a node.
  std::string_view source(std::uint32_t n) const noexcept {
    return source_.substr(nodes_[n].begin, nodes_[n].end - nodes_[n].begin);
  }
  // True when the input is already in json.dumps' default layout (separators, ensure_ascii
  // escapes), so any node's source equals what write_node would produce for it.
  bool canonical() const noexcept { return canonical_; }

 private:
  std::string_view source_;
  bool canonical_ = true;
  std::vector<Node> nodes_;
  // Stable storage for strings that had escapes (a deque would allocate even when unused).
  std::vector<std::unique_ptr<std::string>> unescaped_;
  friend class Parser;
};

// Appends `text` (WTF-8) as json.dumps(ensure_ascii=True) writes a str: short escapes for
// \" \\ \n \r \t \b \f, \u00xx for other controls and DEL, \uxxxx (lowercase) for the rest,
// surrogate pairs above the BMP.
void append_py_string(std::string& out, std::string_view text);

// Writes node `n` of `doc` in json.dumps' default layout (numbers keep their text).
void write_node(const Document& doc, std::uint32_t n, std::string& out);

// Appends a code point as WTF-8 (surrogates allowed).
void append_wtf8(std::string& out, std::uint32_t cp);

// Decodes one WTF-8 code point at text[i], advancing i; returns 0xFFFFFFFF on malformed input.
std::uint32_t next_code_point(std::string_view text, std::size_t& i) noexcept;

// Standard base64 (with padding), as Python's base64.b64encode / b64decode write and read it.
std::string base64_encode(std::string_view bytes);
// Decodes like base64.b64decode without validate=True: characters outside the alphabet are
// skipped; wrong padding is an error (nullopt-like: returns false).
bool base64_decode(std::string_view text, std::string& out);

}  // namespace prpc::jsonpickle
