// What the reserved function get_function_server answers: the original PRPC's list of functions
// (its clients' create_server_func reads it), or our manifest when asked for it.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "prpc/json.hpp"
#include "prpc/server.hpp"

namespace prpc {
namespace {

// The original wrote str(annotation) without its "typing." and "builtins." prefixes.
std::string original_annotation(std::string text) {
  for (std::string_view prefix : {std::string_view("typing."), std::string_view("builtins.")}) {
    for (std::size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at)) {
      text.erase(at, prefix.size());
    }
  }
  return text;
}

void append_value(std::string& out, const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  out.append(buffer.GetString(), buffer.GetSize());
}

// A default given as source text (native functions, or a Python default that is not plain
// JSON) as the value the original sent: JSON text and Python's None, True, False and simple
// quoted strings are values; anything else stays its text.
void append_default_text(std::string& out, std::string_view text) {
  if (text == "None") {
    out += "null";
  } else if (text == "True" || text == "False") {
    out += text == "True" ? "true" : "false";
  } else if (json::validate(text, json::Limits{}).is_ok()) {
    out += text;
  } else if (text.size() >= 2 && (text.front() == '\'' || text.front() == '"') &&
             text.back() == text.front() && text.find('\\') == std::string_view::npos &&
             text.substr(1, text.size() - 2).find(text.front()) == std::string_view::npos) {
    json::append_quoted(out, text.substr(1, text.size() - 2));
  } else {
    json::append_quoted(out, text);
  }
}

// {"name": ..., "default": ..., "annotation": ...} in the original's key order.
void append_parameter(std::string& out, const rapidjson::Value& p) {
  out += "{\"name\": ";
  json::append_quoted(out, p["name"].GetString());
  if (p.HasMember("value")) {
    out += ", \"default\": ";
    append_value(out, p["value"]);
  } else if (p.HasMember("default") && p["default"].IsString()) {
    out += ", \"default\": ";
    append_default_text(out,
                        std::string_view(p["default"].GetString(), p["default"].GetStringLength()));
  }
  if (p.HasMember("annotation") && p["annotation"].IsString()) {
    out += ", \"annotation\": ";
    json::append_quoted(out, original_annotation(p["annotation"].GetString()));
  }
  out += '}';
}

}  // namespace

std::string original_function_list(const std::vector<FunctionInfo>& functions) {
  std::string out = R"([{"func_name": "ping", "func_args": [], "func_kwargs": []})";
  for (const FunctionInfo& f : functions) {
    if (f.name == "ping" || f.name == "get_function_server") continue;  // the engine's own
    std::string args, kwargs;
    rapidjson::Document spec;
    spec.Parse(f.spec_json.c_str(), f.spec_json.size());
    if (!spec.HasParseError() && spec.IsObject() && spec.HasMember("parameters") &&
        spec["parameters"].IsArray()) {
      for (const auto& p : spec["parameters"].GetArray()) {
        if (!p.IsObject() || !p.HasMember("name") || !p["name"].IsString()) continue;
        bool has_default = p.HasMember("default") || p.HasMember("value");
        std::string& into = has_default ? kwargs : args;
        if (!into.empty()) into += ", ";
        append_parameter(into, p);
      }
    }
    out += ", {\"func_name\": ";
    json::append_quoted(out, f.name);
    out += ", \"func_args\": [";
    out += args;
    out += "], \"func_kwargs\": [";
    out += kwargs;
    out += "]}";
  }
  out += ']';
  return out;
}

std::string function_signature(std::string_view spec_json) {
  rapidjson::Document spec;
  spec.Parse(spec_json.data(), spec_json.size());
  std::string out = "(";
  if (!spec.HasParseError() && spec.IsObject() && spec.HasMember("parameters") &&
      spec["parameters"].IsArray()) {
    bool first = true;
    bool star_done = false;  // a bare "*" or a *args already opened the keyword-only part
    for (const auto& p : spec["parameters"].GetArray()) {
      if (!p.IsObject() || !p.HasMember("name") || !p["name"].IsString()) continue;
      std::string_view kind =
          p.HasMember("kind") && p["kind"].IsString() ? p["kind"].GetString() : "";
      if (!first) out += ", ";
      first = false;
      if (kind == "KEYWORD_ONLY" && !star_done) {
        out += "*, ";
        star_done = true;
      }
      if (kind == "VAR_POSITIONAL") {
        out += '*';
        star_done = true;
      }
      if (kind == "VAR_KEYWORD") out += "**";
      out += p["name"].GetString();
      bool annotated = p.HasMember("annotation") && p["annotation"].IsString();
      if (annotated) {
        out += ": ";
        out += p["annotation"].GetString();
      }
      if (p.HasMember("default") && p["default"].IsString()) {
        out += annotated ? " = " : "=";
        out += p["default"].GetString();
      }
    }
  }
  out += ')';
  if (!spec.HasParseError() && spec.IsObject() && spec.HasMember("return_annotation") &&
      spec["return_annotation"].IsString()) {
    out += " -> ";
    out += spec["return_annotation"].GetString();
  }
  return out;
}

bool wants_manifest(std::string_view func_kwargs) {
  bool manifest = false;
  Status scanned = json::scan_object(func_kwargs, json::Limits{}, [&](const json::Member& m) {
    if (m.key == "format" && m.type == json::Type::kString && m.text == "manifest") {
      manifest = true;
    }
    return Status::ok();
  });
  return scanned.is_ok() && manifest;
}

}  // namespace prpc
