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

// {"name": ..., "default": ..., "annotation": ...} in the original's key order.
void append_parameter(std::string& out, const rapidjson::Value& p) {
  out += "{\"name\": ";
  json::append_quoted(out, p["name"].GetString());
  if (p.HasMember("value")) {
    out += ", \"default\": ";
    append_value(out, p["value"]);
  } else if (p.HasMember("default") && p["default"].IsString()) {
    // A default that is not plain JSON: its source text, as the original's str() showed it.
    out += ", \"default\": ";
    json::append_quoted(out, p["default"].GetString());
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
    out += ", \"func_args\": [" + args + "], \"func_kwargs\": [" + kwargs + "]}";
  }
  out += ']';
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
