#include "prpc/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

namespace prpc::json {
namespace {

constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseNanAndInfFlag;

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string parse_error_text(const rapidjson::Reader& reader) {
  std::string msg = "invalid JSON at offset ";
  msg += std::to_string(reader.GetErrorOffset());
  msg += ": ";
  msg += rapidjson::GetParseError_En(reader.GetParseErrorCode());
  return msg;
}

// SAX handler that enforces the depth limit and, when `scan` is set, reports the members of the
// top-level object (or the elements of the top-level array, when `top` says kArray). With
// kParseIterativeFlag RapidJSON calls Start*/End* before consuming the bracket, so a container
// ends at Tell() + 1.
class Handler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Handler> {
 public:
  Handler(std::string_view input, const rapidjson::MemoryStream& stream, const Limits& limits,
          const std::function<Status(const Member&)>* scan, Type top)
      : input_(input), stream_(stream), limits_(limits), scan_(scan), top_(top) {}

  bool Null() { return scalar(Type::kNull); }
  bool Bool(bool b) {
    member_.boolean = b;
    return scalar(Type::kBool);
  }
  bool Int(int) { return scalar(Type::kNumber); }
  bool Uint(unsigned) { return scalar(Type::kNumber); }
  bool Int64(std::int64_t) { return scalar(Type::kNumber); }
  bool Uint64(std::uint64_t) { return scalar(Type::kNumber); }
  bool Double(double) { return scalar(Type::kNumber); }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    member_.text = std::string_view(s, n);
    return scalar(Type::kString);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (depth_ == 1 && scan_ != nullptr) {
      key_.assign(s, n);
      key_end_ = stream_.Tell();
    }
    return true;
  }
  bool StartObject() { return open(Type::kObject); }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool StartArray() { return open(Type::kArray); }
  bool EndArray(rapidjson::SizeType) { return close(); }

  const Status& error() const { return error_; }

 private:
  // Where the value after the current key (in an object) or after the previous element (in an
  // array) begins.
  std::size_t value_start() const {
    std::size_t p = top_ == Type::kArray ? element_end_ : key_end_;
    while (p < input_.size() && (is_ws(input_[p]) || input_[p] == ':' || input_[p] == ',')) ++p;
    return p;
  }

  bool scalar(Type t) {
    if (depth_ == 0 && scan_ != nullptr) return fail_not_top(t);
    if (depth_ == 1 && scan_ != nullptr) {
      std::size_t start = value_start();
      member_.key = key_;
      member_.type = t;
      member_.raw = input_.substr(start, stream_.Tell() - start);
      element_end_ = stream_.Tell();
      return emit();
    }
    return true;
  }

  bool open(Type t) {
    if (depth_ == 0 && scan_ != nullptr) {
      if (t != top_) return fail_not_top(t);
      element_end_ = stream_.Tell() + 1;  // after the bracket
    }
    if (depth_ == 1 && scan_ != nullptr) {
      container_start_ = value_start();
      container_type_ = t;
    }
    ++depth_;
    if (depth_ > limits_.max_depth) {
      error_ = Status(StatusCode::kResourceExhausted,
                      "JSON nesting deeper than " + std::to_string(limits_.max_depth) +
                          " levels at offset " + std::to_string(stream_.Tell()));
      return false;
    }
    return true;
  }

  bool close() {
    --depth_;
    if (depth_ == 1 && scan_ != nullptr) {
      member_.key = key_;
      member_.type = container_type_;
      member_.raw = input_.substr(container_start_, stream_.Tell() + 1 - container_start_);
      element_end_ = stream_.Tell() + 1;
      return emit();
    }
    return true;
  }

  bool emit() {
    Status s = (*scan_)(member_);
    member_ = Member{};
    if (!s.is_ok()) {
      error_ = std::move(s);
      return false;
    }
    return true;
  }

  bool fail_not_top(Type t) {
    error_ = Status(StatusCode::kDecode, "expected a JSON " + std::string(type_name(top_)) +
                                             ", got " + std::string(type_name(t)));
    return false;
  }

  std::string_view input_;
  const rapidjson::MemoryStream& stream_;
  const Limits& limits_;
  const std::function<Status(const Member&)>* scan_;
  Type top_;
  std::size_t depth_ = 0;
  std::string key_;
  std::size_t key_end_ = 0;
  std::size_t element_end_ = 0;
  std::size_t container_start_ = 0;
  Type container_type_ = Type::kNull;
  Member member_;
  Status error_;
};

Status parse(std::string_view input, const Limits& limits,
             const std::function<Status(const Member&)>* scan, Type top = Type::kObject) {
  if (input.size() > limits.max_bytes) {
    return Status(StatusCode::kResourceExhausted, "JSON text of " + std::to_string(input.size()) +
                                                      " bytes exceeds the limit of " +
                                                      std::to_string(limits.max_bytes) + " bytes");
  }
  // The reader treats NUL as the end of input; a raw NUL byte is never valid JSON (inside strings
  // it must be escaped), so refuse it up front with its offset.
  if (std::size_t nul = input.find('\0'); nul != std::string_view::npos) {
    return Status(StatusCode::kDecode,
                  "invalid JSON at offset " + std::to_string(nul) + ": NUL byte");
  }
  rapidjson::MemoryStream stream(input.data(), input.size());
  Handler handler(input, stream, limits, scan, top);
  rapidjson::Reader reader;
  reader.Parse<kParseFlags>(stream, handler);
  if (!handler.error().is_ok()) return handler.error();
  if (reader.HasParseError()) return Status(StatusCode::kDecode, parse_error_text(reader));
  return Status::ok();
}

}  // namespace

std::string_view type_name(Type t) noexcept {
  switch (t) {
    case Type::kNull: return "null";
    case Type::kBool: return "boolean";
    case Type::kNumber: return "number";
    case Type::kString: return "string";
    case Type::kArray: return "array";
    case Type::kObject: return "object";
  }
  return "value";
}

void append_quoted(std::string& out, std::string_view text) {
  static constexpr std::array<char, 16> kHex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 0xF]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

std::string quote(std::string_view text) {
  std::string out;
  append_quoted(out, text);
  return out;
}

Status scan_object(std::string_view input, const Limits& limits,
                   const std::function<Status(const Member&)>& on_member) {
  return parse(input, limits, &on_member);
}

Status scan_array(std::string_view input, const Limits& limits,
                  const std::function<Status(const Member&)>& on_element) {
  return parse(input, limits, &on_element, Type::kArray);
}

Status validate(std::string_view input, const Limits& limits) {
  return parse(input, limits, nullptr);
}

namespace {

bool blank(std::string_view text) {
  for (char c : text) {
    if (!is_ws(c)) return false;
  }
  return true;
}

std::string write_members(const std::vector<std::pair<std::string, std::string_view>>& members) {
  if (members.empty()) return {};
  std::string out = "{";
  for (const auto& [key, raw] : members) {
    if (out.size() > 1) out += ", ";
    append_quoted(out, key);
    out += ": ";
    out += raw;
  }
  out += '}';
  return out;
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string_view>>> object_members(
    std::string_view object_text, const Limits& limits) {
  std::vector<std::pair<std::string, std::string_view>> out;
  if (blank(object_text)) return out;
  PRPC_RETURN_IF_ERROR(scan_object(object_text, limits, [&](const Member& m) {
    // Objects here are small (a message's extensions): a linear search beats a map.
    for (auto& [key, raw] : out) {
      if (key == m.key) {
        raw = m.raw;
        return Status::ok();
      }
    }
    out.emplace_back(std::string(m.key), m.raw);
    return Status::ok();
  }));
  return out;
}

std::optional<std::string_view> get_member(std::string_view object_text, std::string_view key,
                                           const Limits& limits) {
  std::optional<std::string_view> found;
  if (blank(object_text)) return found;
  Status s = scan_object(object_text, limits, [&](const Member& m) {
    if (m.key == key) found = m.raw;
    return Status::ok();
  });
  if (!s.is_ok()) return std::nullopt;
  return found;
}

std::optional<std::string> get_string_member(std::string_view object_text, std::string_view key,
                                             const Limits& limits) {
  std::optional<std::string> found;
  if (blank(object_text)) return found;
  Status s = scan_object(object_text, limits, [&](const Member& m) {
    if (m.key != key) return Status::ok();
    // The decoded text lives only during this call.
    if (m.type == Type::kString) {
      found = std::string(m.text);
    } else {
      found.reset();
    }
    return Status::ok();
  });
  if (!s.is_ok()) return std::nullopt;
  return found;
}

Result<std::string> set_member(std::string_view object_text, std::string_view key,
                               std::string_view raw_value, const Limits& limits) {
  while (!raw_value.empty() && is_ws(raw_value.front())) raw_value.remove_prefix(1);
  while (!raw_value.empty() && is_ws(raw_value.back())) raw_value.remove_suffix(1);
  Status valid = validate(raw_value, limits);
  if (!valid.is_ok()) return valid.with_context("the value of '" + std::string(key) + "'");
  auto members = object_members(object_text, limits);
  if (!members.is_ok()) return members.status();
  bool placed = false;
  for (auto& [k, raw] : *members) {
    if (k == key) {
      raw = raw_value;
      placed = true;
    }
  }
  if (!placed) members->emplace_back(std::string(key), raw_value);
  return write_members(*members);
}

Result<std::string> erase_member(std::string_view object_text, std::string_view key,
                                 const Limits& limits) {
  auto members = object_members(object_text, limits);
  if (!members.is_ok()) return members.status();
  std::erase_if(*members, [&](const auto& m) { return m.first == key; });
  return write_members(*members);
}

Type peek_type(std::string_view input) noexcept {
  std::size_t i = 0;
  while (i < input.size() && is_ws(input[i])) ++i;
  if (i == input.size()) return Type::kNull;
  switch (input[i]) {
    case '{': return Type::kObject;
    case '[': return Type::kArray;
    case '"': return Type::kString;
    case 't':
    case 'f': return Type::kBool;
    case 'n': return Type::kNull;
    default: return Type::kNumber;
  }
}

Result<std::string> announced_info(std::string_view info_json) {
  if (info_json.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::string("{}");
  Status valid = scan_object(info_json, Limits{}, [](const Member&) { return Status::ok(); });
  if (!valid.is_ok()) {
    return Status(StatusCode::kInvalidArgument, "announce_server: info: " + valid.message());
  }
  return std::string(info_json);
}

Result<std::string> checked_announcement(std::string_view queue, std::string_view server_id,
                                         std::string_view info_json, std::int64_t ttl_ms) {
  if (queue.empty() || server_id.empty()) {
    return Status(StatusCode::kInvalidArgument, "announce_server: no queue or no server id");
  }
  if (ttl_ms <= 0) {
    return Status(StatusCode::kInvalidArgument, "announce_server: the ttl must be positive");
  }
  return announced_info(info_json);
}

}  // namespace prpc::json
