#include "prpc/envelope.hpp"

#include "prpc/uuid.hpp"

namespace prpc {
namespace {

constexpr std::size_t kNpos = std::string_view::npos;

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Past the string that starts at t[i] ('"'); kNpos when it does not end.
std::size_t skip_string(std::string_view t, std::size_t i) noexcept {
  for (std::size_t j = i + 1; j < t.size(); ++j) {
    if (t[j] == '\\') {
      ++j;
    } else if (t[j] == '"') {
      return j + 1;
    }
  }
  return kNpos;
}

// Past the value that starts at t[i]: a string, an array or object (brackets counted, not
// parsed), or a scalar. kNpos when it does not end.
std::size_t skip_value(std::string_view t, std::size_t i) noexcept {
  if (t[i] == '"') return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    std::size_t depth = 0;
    for (std::size_t j = i; j < t.size(); ++j) {
      char c = t[j];
      if (c == '"') {
        j = skip_string(t, j);
        if (j == kNpos) return kNpos;
        --j;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return j + 1;
      }
    }
    return kNpos;
  }
  std::size_t j = i;
  while (j < t.size() && t[j] != ',' && t[j] != '}' && t[j] != ']' && !is_space(t[j])) ++j;
  return j;
}

// Calls on_member(key, value text) for each top-level member of the object `t`, until it
// returns false or the text stops making sense. Keys with escapes are passed as written.
template <typename F>
void for_each_member(std::string_view t, F&& on_member) {
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < t.size() && is_space(t[i])) ++i;
  };
  skip_space();
  if (i >= t.size() || t[i] != '{') return;
  ++i;
  while (true) {
    skip_space();
    if (i >= t.size() || t[i] != '"') return;
    std::size_t key_end = skip_string(t, i);
    if (key_end == kNpos) return;
    std::string_view key = t.substr(i + 1, key_end - i - 2);
    i = key_end;
    skip_space();
    if (i >= t.size() || t[i] != ':') return;
    ++i;
    skip_space();
    if (i >= t.size()) return;
    std::size_t value_end = skip_value(t, i);
    if (value_end == kNpos) return;
    if (!on_member(key, t.substr(i, value_end - i))) return;
    i = value_end;
    skip_space();
    if (i >= t.size() || t[i] != ',') return;
    ++i;
  }
}

// A short string without escapes, as its text; empty for anything else.
std::string plain_string(std::string_view v) {
  if (v.size() < 2 || v.front() != '"' || v.back() != '"' || v.size() > 514) return {};
  std::string_view inner = v.substr(1, v.size() - 2);
  if (inner.find('\\') != kNpos) return {};
  return std::string(inner);
}

}  // namespace

std::size_t json_nesting_depth(std::string_view text, std::size_t limit) noexcept {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      i = skip_string(text, i);
      if (i == kNpos) break;
      --i;
    } else if (c == '{' || c == '[') {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return limit + 1;
      }
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Sender find_sender(std::string_view text, Flavour flavour) {
  Sender out;
  bool have_id = false;
  bool have_reply_to = false;
  for_each_member(text, [&](std::string_view key, std::string_view value) {
    if (key == "message_id" && !have_id) {
      have_id = true;
      if (!value.empty() && value.front() == '"') {
        out.message_id = plain_string(value);
      } else if (flavour == Flavour::kPython && !value.empty() && value.front() == '{') {
        for_each_member(value, [&](std::string_view k, std::string_view v) {
          if (k != "hex") return true;
          out.message_id = plain_string(v);
          return false;
        });
      }
      if (flavour == Flavour::kPython) {
        if (auto canonical = canonical_uuid(out.message_id)) out.message_id = *canonical;
      }
    } else if (key == "reply_to" && !have_reply_to) {
      have_reply_to = true;
      out.reply_to = plain_string(value);
    }
    return !(have_id && have_reply_to);
  });
  return out;
}

}  // namespace prpc
