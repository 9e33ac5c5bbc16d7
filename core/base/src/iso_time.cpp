#include "prpc/iso_time.hpp"

#include <charconv>
#include <cstdio>

namespace prpc {
namespace {

bool read_int(std::string_view text, std::size_t pos, std::size_t len, int& out) {
  if (pos + len > text.size()) return false;
  for (std::size_t i = pos; i < pos + len; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  auto [p, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, out);
  return ec == std::errc() && p == text.data() + pos + len;
}

}  // namespace

std::string format_iso8601(SysMicros t) {
  using namespace std::chrono;
  auto day = floor<days>(t);
  year_month_day ymd{day};
  auto tod = t - day;
  auto h = duration_cast<hours>(tod);
  auto m = duration_cast<minutes>(tod - h);
  auto s = duration_cast<seconds>(tod - h - m);
  auto us = duration_cast<microseconds>(tod - h - m - s);
  // Written digit by digit: this runs once per request and once per reply, and snprintf's
  // format parsing was a measurable share of a no-op call (docs/benchmarks.md).
  std::string out = "0000-00-00T00:00:00.000000+00:00";
  auto put = [&out](std::size_t end, long long value, int width) {
    for (int i = 0; i < width; ++i, value /= 10) {
      out[end - static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
    }
  };
  int year = static_cast<int>(ymd.year());
  if (year < 0 || year > 9999) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d.%06lld+00:00", year,
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(h.count()), static_cast<int>(m.count()),
                  static_cast<int>(s.count()), static_cast<long long>(us.count()));
    return buf;
  }
  put(3, year, 4);
  put(6, static_cast<unsigned>(ymd.month()), 2);
  put(9, static_cast<unsigned>(ymd.day()), 2);
  put(12, h.count(), 2);
  put(15, m.count(), 2);
  put(18, s.count(), 2);
  put(25, us.count(), 6);
  return out;
}

std::string now_iso8601() {
  return format_iso8601(
      std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()));
}

std::optional<SysMicros> parse_iso8601(std::string_view text) {
  using namespace std::chrono;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!read_int(text, 0, 4, y) || text.size() < 19 || text[4] != '-' || !read_int(text, 5, 2, mo) ||
      text[7] != '-' || !read_int(text, 8, 2, d) ||
      (text[10] != 'T' && text[10] != ' ' && text[10] != 't') || !read_int(text, 11, 2, h) ||
      text[13] != ':' || !read_int(text, 14, 2, mi) || text[16] != ':' ||
      !read_int(text, 17, 2, s)) {
    return std::nullopt;
  }
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return std::nullopt;
  std::size_t pos = 19;
  long long micros = 0;
  if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
    ++pos;
    std::size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 6) micros = micros * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (std::size_t i = digits; i < 6; ++i) micros *= 10;
  }
  int offset_minutes = 0;
  if (pos < text.size()) {
    char sign = text[pos];
    if (sign == 'Z' || sign == 'z') {
      ++pos;
    } else if (sign == '+' || sign == '-') {
      int oh = 0, om = 0;
      if (!read_int(text, pos + 1, 2, oh)) return std::nullopt;
      std::size_t after = pos + 3;
      if (after < text.size() && text[after] == ':') ++after;
      if (after < text.size()) {
        if (!read_int(text, after, 2, om)) return std::nullopt;
        after += 2;
      }
      if (oh > 23 || om > 59) return std::nullopt;
      offset_minutes = (oh * 60 + om) * (sign == '-' ? -1 : 1);
      pos = after;
    } else {
      return std::nullopt;
    }
  }
  if (pos != text.size()) return std::nullopt;
  SysMicros t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{s} + microseconds{micros};
  return t - minutes{offset_minutes};
}

}  // namespace prpc
