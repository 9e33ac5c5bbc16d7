#include "prpc/config.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include <toml++/toml.h>

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not in a header

namespace prpc {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

struct Alias {
  std::string_view env;
  std::string_view key;
};
constexpr Alias kAliases[] = {
    {"PRPC_TYPE_BROKER", "broker.type"},
    {"PRPC_URL_BROKER", "broker.url"},
    {"PRPC_QUEUE_NAME", "queue.name"},
    {"PRPC_PLUGIN_PATH", "plugins.path"},
    {"PRPC_LOG_LEVEL", "log.level"},
    {"PRPC_SIGNING_KEY", "security.signing_key"},
    {"PRPC_SIGNING_PREVIOUS_KEYS", "security.previous_keys"},
    {"PRPC_METRICS_LISTEN", "metrics.listen"},
    {"PRPC_LOG_FORMAT", "log.format"},
};

std::string toml_scalar_text(const toml::node& node) {
  if (auto s = node.as_string()) return s->get();
  if (auto i = node.as_integer()) return std::to_string(i->get());
  if (auto b = node.as_boolean()) return b->get() ? "true" : "false";
  if (auto f = node.as_floating_point()) {
    std::ostringstream os;
    os.precision(17);
    os << f->get();
    return os.str();
  }
  std::ostringstream os;
  node.visit([&os](const auto& v) { os << v; });  // dates and times in TOML's own text form
  return os.str();
}

std::string json_string_list(const toml::array& arr) {
  std::string out = "[";
  bool first = true;
  for (const toml::node& item : arr) {
    if (!first) out += ",";
    first = false;
    std::string text = toml_scalar_text(item);
    out += '"';
    for (char c : text) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += "]";
  return out;
}

void flatten(const toml::table& table, const std::string& prefix,
             std::map<std::string, std::string, std::less<>>& out) {
  for (const auto& [k, node] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = node.as_table()) {
      flatten(*sub, key, out);
    } else if (const toml::array* arr = node.as_array()) {
      out[key] = json_string_list(*arr);
    } else {
      out[key] = toml_scalar_text(node);
    }
  }
}

}  // namespace

bool is_secret_key(std::string_view key) {
  std::string k = lower(key);
  for (std::string_view word :
       {"password", "secret", "key", "token", "jaas", "credential", "oauthbearer.config"}) {
    if (k.find(word) != std::string::npos) return true;
  }
  return false;
}

Result<std::int64_t> parse_int(std::string_view text) {
  text = trim(text);
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
    return Status(StatusCode::kInvalidArgument, "'" + std::string(text) + "' is not an integer");
  }
  return v;
}

Result<bool> parse_bool(std::string_view text) {
  std::string t = lower(trim(text));
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  return Status(StatusCode::kInvalidArgument,
                "'" + std::string(text) + "' is not a boolean (true/false)");
}

Result<double> parse_double(std::string_view text) {
  text = trim(text);
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || !std::isfinite(v)) {
    return Status(StatusCode::kInvalidArgument, "'" + std::string(text) + "' is not a number");
  }
  return v;
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::string_view t = trim(text);
  std::size_t unit_at = t.size();
  while (unit_at > 0 && ((t[unit_at - 1] >= 'a' && t[unit_at - 1] <= 'z'))) --unit_at;
  std::string_view number = t.substr(0, unit_at);
  std::string unit = lower(t.substr(unit_at));
  double scale = 0;
  if (unit.empty() || unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m" || unit == "min") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else if (unit == "d") {
    scale = 86'400'000;
  } else {
    return Status(StatusCode::kInvalidArgument,
                  "'" + std::string(text) + "' is not a duration (use ms, s, m, h or d)");
  }
  auto value = parse_double(number);
  if (!value.is_ok() || *value < 0) {
    return Status(StatusCode::kInvalidArgument,
                  "'" + std::string(text) + "' is not a duration (e.g. 250ms, 5s, 6h)");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(*value * scale)));
}

namespace {

Status toml_error(const toml::parse_error& e, std::string_view source) {
  return Status(StatusCode::kInvalidArgument,
                std::string(source) + ":" + std::to_string(e.source().begin.line) + ":" +
                    std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
}

}  // namespace

Result<Config> Config::load_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status(StatusCode::kNotFound, path.string() + ": no such configuration file");
  }
  Config c;
  try {
    toml::table table = toml::parse_file(path.string());
    flatten(table, "", c.values_);
  } catch (const toml::parse_error& e) {
    return toml_error(e, path.string());
  }
  return c;
}

Result<Config> Config::parse_toml(std::string_view text, std::string_view source) {
  Config c;
  try {
    toml::table table = toml::parse(text, source);
    flatten(table, "", c.values_);
  } catch (const toml::parse_error& e) {
    return toml_error(e, source);
  }
  return c;
}

void Config::apply_environment(const char* const* envp) {
  if (envp == nullptr) envp = environ;
  for (const char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    std::string_view value = entry.substr(eq + 1);
    if (name.substr(0, 5) != "PRPC_") continue;
    bool aliased = false;
    for (const Alias& a : kAliases) {
      if (name == a.env) {
        values_[std::string(a.key)] = std::string(value);
        aliased = true;
      }
    }
    if (aliased) continue;
    std::string key = lower(name.substr(5));
    for (std::size_t pos = key.find("__"); pos != std::string::npos; pos = key.find("__", pos)) {
      key.replace(pos, 2, ".");
    }
    if (!key.empty()) values_[key] = std::string(value);
  }
}

std::string Config::env_name(std::string_view key) {
  for (const Alias& a : kAliases) {
    if (key == a.key) return std::string(a.env);
  }
  std::string name = "PRPC_";
  for (char c : upper(key)) {
    if (c == '.') {
      name += "__";
    } else {
      name += c;
    }
  }
  return name;
}

void Config::set(std::string key, std::string value) { values_[std::move(key)] = std::move(value); }

bool Config::has(std::string_view key) const { return values_.find(key) != values_.end(); }

std::optional<std::string> Config::get(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Config::get_or(std::string_view key, std::string_view fallback) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::string(fallback) : it->second;
}

Result<std::int64_t> Config::get_int(std::string_view key, std::int64_t fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  auto r = parse_int(it->second);
  if (!r.is_ok()) return r.status().with_context(std::string(key));
  return r;
}

Result<bool> Config::get_bool(std::string_view key, bool fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  auto r = parse_bool(it->second);
  if (!r.is_ok()) return r.status().with_context(std::string(key));
  return r;
}

Result<std::chrono::milliseconds> Config::get_duration(std::string_view key,
                                                       std::chrono::milliseconds fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  auto r = parse_duration(it->second);
  if (!r.is_ok()) return r.status().with_context(std::string(key));
  return r;
}

std::vector<std::string> Config::get_list(std::string_view key) const {
  std::vector<std::string> out;
  auto it = values_.find(key);
  if (it == values_.end()) return out;
  std::string_view text = trim(it->second);
  if (!text.empty() && text.front() == '[' && text.back() == ']') {
    // The form flatten() writes: ["a","b"] with \" and \\ escapes.
    std::string current;
    bool in_string = false;
    for (std::size_t i = 1; i + 1 < text.size(); ++i) {
      char c = text[i];
      if (in_string) {
        if (c == '\\' && i + 2 < text.size()) {
          current += text[++i];
        } else if (c == '"') {
          in_string = false;
          out.push_back(current);
          current.clear();
        } else {
          current += c;
        }
      } else if (c == '"') {
        in_string = true;
      }
    }
    return out;
  }
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    std::string_view item = trim(text.substr(start, comma - start));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::map<std::string, std::string> Config::subtree(std::string_view prefix) const {
  std::map<std::string, std::string> out;
  std::string p(prefix);
  p += '.';
  for (auto it = values_.lower_bound(p); it != values_.end(); ++it) {
    if (it->first.compare(0, p.size(), p) != 0) break;
    out[it->first.substr(p.size())] = it->second;
  }
  return out;
}

}  // namespace prpc
