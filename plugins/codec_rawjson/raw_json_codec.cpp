#include "raw_json_codec.hpp"

#include <charconv>
#include <set>

#include "prpc/iso_time.hpp"
#include "prpc/uuid.hpp"

namespace prpc::rawjson {
namespace {

constexpr std::size_t kMaxSalvagedId = 200;

Status field_error(std::string_view field, std::string_view what) {
  std::string msg(field);
  msg += ": ";
  msg += what;
  return Status(StatusCode::kDecode, std::move(msg));
}

Status wrong_type(std::string_view field, std::string_view expected, json::Type got) {
  return field_error(
      field, "expected " + std::string(expected) + ", got " + std::string(json::type_name(got)));
}

// A string field that may also be null (absent).
Status optional_string(const json::Member& m, std::string& out) {
  if (m.type == json::Type::kNull) {
    out.clear();
    return Status::ok();
  }
  if (m.type != json::Type::kString) return wrong_type(m.key, "string or null", m.type);
  out.assign(m.text);
  return Status::ok();
}

Status date_field(const json::Member& m, std::string& out) {
  PRPC_RETURN_IF_ERROR(optional_string(m, out));
  if (!out.empty() && !parse_iso8601(out)) {
    return field_error(m.key, "'" + out + "' is not an ISO 8601 date-time");
  }
  return Status::ok();
}

bool printable_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxSalvagedId) return false;
  for (char c : id) {
    if (static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

void append_field(std::string& out, std::string_view name) {
  out += ", ";
  json::append_quoted(out, name);
  out += ": ";
}

void append_nullable(std::string& out, std::string_view name, std::string_view value) {
  append_field(out, name);
  if (value.empty()) {
    out += "null";
  } else {
    json::append_quoted(out, value);
  }
}

// The original PRPC's servers wrote a raw reply's message_id as {"hex": "<32 hex digits>"}
// (jsonpickle's unpicklable form of a UUID); read it as the UUID it is.
Status original_message_id(const json::Member& f, Message& m, bool& have_id) {
  std::string hex;
  Status s = json::scan_object(f.raw, json::Limits{}, [&](const json::Member& inner) {
    if (inner.key == "hex" && inner.type == json::Type::kString) hex.assign(inner.text);
    return Status::ok();
  });
  auto id = s.is_ok() && !hex.empty() ? canonical_uuid(hex) : std::nullopt;
  if (!id) return wrong_type(f.key, "string", f.type);
  m.message_id = *id;
  have_id = true;
  return Status::ok();
}

// The members of `extensions` after the named fields: never a named field or a "py/" tag, and
// a repeated key once (a reader would refuse the message), with its last value.
Status append_extensions(std::string& out, std::string_view extensions,
                         const json::Limits& limits) {
  auto members = json::object_members(extensions, limits);
  if (!members.is_ok()) {
    return Status(StatusCode::kEncode, "extensions: " + members.status().message());
  }
  for (const auto& [key, raw] : *members) {
    if (!is_extension_key(key)) continue;
    append_field(out, key);
    out += raw;
  }
  return Status::ok();
}

}  // namespace

std::vector<sdk::OptionSpec> RawJsonCodec::options() {
  return {
      {"max_depth", PRPC_OPT_INT, "512", "deepest nesting of arrays and objects accepted"},
      {"max_bytes", PRPC_OPT_INT, "16777216", "largest message accepted, in bytes"},
      {"require_uuid", PRPC_OPT_BOOL, "true", "message_id must be a UUID"},
  };
}

RawJsonCodec::RawJsonCodec(Settings settings) : settings_(settings) {}

RawJsonCodec::RawJsonCodec(const sdk::Context& ctx) {
  settings_.limits.max_depth = static_cast<std::size_t>(ctx.options.get_int("max_depth", 512));
  settings_.limits.max_bytes =
      static_cast<std::size_t>(ctx.options.get_int("max_bytes", std::int64_t{16} << 20));
  settings_.require_uuid = ctx.options.get_bool("require_uuid", true);
}

Result<Message> RawJsonCodec::decode(std::string_view bytes, Message* salvaged) const {
  Message m;
  bool have_name = false;
  bool have_id = false;
  std::set<std::string, std::less<>> seen;
  std::string extensions;
  // A wrong field does not stop the scan: later fields (message_id above all) are still read, so
  // the sender can be answered. The first such error is the one reported.
  Status field_status;
  auto check = [&](const json::Member& f) -> Status {
    if (!seen.emplace(f.key).second) return field_error(f.key, "appears twice");
    if (f.key == "func_name") {
      if (f.type != json::Type::kString) return wrong_type(f.key, "string", f.type);
      m.func_name.assign(f.text);
      have_name = true;
    } else if (f.key == "func_args") {
      if (f.type != json::Type::kArray) return wrong_type(f.key, "array", f.type);
      m.func_args.assign(f.raw);
    } else if (f.key == "func_kwargs") {
      if (f.type != json::Type::kObject) return wrong_type(f.key, "object", f.type);
      m.func_kwargs.assign(f.raw);
    } else if (f.key == "message_id") {
      if (f.type == json::Type::kObject) return original_message_id(f, m, have_id);
      if (f.type != json::Type::kString) return wrong_type(f.key, "string", f.type);
      m.message_id.assign(f.text);
      have_id = true;
    } else if (f.key == "result") {
      m.result.assign(f.raw);
    } else if (f.key == "exception_info") {
      if (f.type == json::Type::kNull) {
        m.exception_info.reset();
      } else if (f.type == json::Type::kString) {
        m.exception_info = std::string(f.text);
      } else {
        return wrong_type(f.key, "string or null", f.type);
      }
    } else if (f.key == "date_create_message") {
      return date_field(f, m.date_create_message);
    } else if (f.key == "date_done_message") {
      return date_field(f, m.date_done_message);
    } else if (f.key == "deadline") {
      return date_field(f, m.deadline);
    } else if (f.key == "reply_to") {
      return optional_string(f, m.reply_to);
    } else if (f.key == "exception_type") {
      return optional_string(f, m.exception_type);
    } else if (f.key == "traceback") {
      return optional_string(f, m.traceback);
    } else if (f.key == "traceparent") {
      return optional_string(f, m.traceparent);
    } else if (f.key == "attempt") {
      std::uint32_t v = 0;
      auto [p, ec] = std::from_chars(f.raw.data(), f.raw.data() + f.raw.size(), v);
      if (f.type != json::Type::kNumber || ec != std::errc() || p != f.raw.data() + f.raw.size()) {
        return field_error(f.key, "expected a non-negative integer, got " + std::string(f.raw));
      }
      m.attempt = v;
    } else if (is_extension_key(f.key)) {
      // Other fields are allowed (PROTOCOL.md section 2) and kept, in order.
      extensions += extensions.empty() ? "{" : ", ";
      json::append_quoted(extensions, f.key);
      extensions += ": ";
      extensions += f.raw;
    }
    return Status::ok();
  };
  auto record = [&](const json::Member& f) {
    Status s = check(f);
    if (!s.is_ok() && field_status.is_ok()) field_status = std::move(s);
    return Status::ok();
  };
  Status scanned = json::scan_object(bytes, settings_.limits, record);
  if (scanned.code() == StatusCode::kResourceExhausted && salvaged != nullptr &&
      bytes.size() > settings_.limits.max_bytes) {
    // Too big to accept, but worth reading once to learn whom to answer.
    json::Limits relaxed = settings_.limits;
    relaxed.max_bytes = bytes.size();
    (void)json::scan_object(bytes, relaxed, record);
  }

  auto fail = [&](Status s) -> Result<Message> {
    if (salvaged != nullptr) {
      salvaged->func_name = m.func_name;
      salvaged->reply_to = m.reply_to;
      salvaged->func_args = m.func_args;
      salvaged->func_kwargs = m.func_kwargs;
      if (printable_id(m.message_id)) salvaged->message_id = m.message_id;
    }
    return s;
  };
  if (!scanned.is_ok()) return fail(scanned);
  if (!field_status.is_ok()) return fail(field_status);
  if (!have_name) return fail(field_error("func_name", "missing (required)"));
  if (!have_id) return fail(field_error("message_id", "missing (required)"));
  if (settings_.require_uuid && !canonical_uuid(m.message_id)) {
    return fail(field_error("message_id",
                            "'" + m.message_id.substr(0, kMaxSalvagedId) + "' is not a UUID"));
  }
  if (!extensions.empty()) m.extensions = std::move(extensions) + "}";
  return m;
}

Result<std::string> RawJsonCodec::encode(const Message& m) const {
  std::string out;
  out.reserve(128 + m.func_name.size() + m.func_args.size() + m.func_kwargs.size() +
              m.result.size());
  out += "{\"func_name\": ";
  json::append_quoted(out, m.func_name);
  append_field(out, "func_args");
  out += m.func_args.empty() ? std::string_view("[]") : std::string_view(m.func_args);
  append_field(out, "func_kwargs");
  out += m.func_kwargs.empty() ? std::string_view("{}") : std::string_view(m.func_kwargs);
  append_field(out, "message_id");
  json::append_quoted(out, m.message_id);
  append_field(out, "result");
  out += m.result.empty() ? std::string_view("null") : std::string_view(m.result);
  append_field(out, "exception_info");
  if (m.exception_info) {
    json::append_quoted(out, *m.exception_info);
  } else {
    out += "null";
  }
  append_nullable(out, "date_create_message", m.date_create_message);
  append_nullable(out, "date_done_message", m.date_done_message);
  if (!m.reply_to.empty()) append_nullable(out, "reply_to", m.reply_to);
  if (!m.deadline.empty()) append_nullable(out, "deadline", m.deadline);
  if (m.attempt != 0) {
    append_field(out, "attempt");
    out += std::to_string(m.attempt);
  }
  if (!m.exception_type.empty()) append_nullable(out, "exception_type", m.exception_type);
  if (!m.traceback.empty()) append_nullable(out, "traceback", m.traceback);
  if (!m.traceparent.empty()) append_nullable(out, "traceparent", m.traceparent);
  PRPC_RETURN_IF_ERROR(append_extensions(out, m.extensions, settings_.limits));
  out += '}';
  if (out.size() > settings_.limits.max_bytes) {
    return Status(StatusCode::kResourceExhausted,
                  "the encoded message of " + std::to_string(out.size()) +
                      " bytes exceeds the limit of " + std::to_string(settings_.limits.max_bytes) +
                      " bytes");
  }
  return out;
}

}  // namespace prpc::rawjson
