#include <gtest/gtest.h>

#include <chrono>

#include "prpc/iso_time.hpp"

namespace prpc {
namespace {

TEST(IsoTime, FormatsAsPythonIsoformat) {
  using namespace std::chrono;
  SysMicros t =
      sys_days{year{2024} / 11 / 6} + hours{9} + minutes{0} + seconds{5} + microseconds{123456};
  EXPECT_EQ(format_iso8601(t), "2024-11-06T09:00:05.123456+00:00");
  EXPECT_EQ(parse_iso8601(format_iso8601(t)), t);
}

TEST(IsoTime, FormatsEveryFieldWithItsLeadingZeros) {
  using namespace std::chrono;
  EXPECT_EQ(format_iso8601(SysMicros{}), "1970-01-01T00:00:00.000000+00:00");
  SysMicros last =
      sys_days{year{9999} / 12 / 31} + hours{23} + minutes{59} + seconds{59} + microseconds{999999};
  EXPECT_EQ(format_iso8601(last), "9999-12-31T23:59:59.999999+00:00");
  SysMicros early =
      sys_days{year{7} / 2 / 3} + hours{4} + minutes{5} + seconds{6} + microseconds{7};
  EXPECT_EQ(format_iso8601(early), "0007-02-03T04:05:06.000007+00:00");
  // Round trips over a century, stepping by an odd number of microseconds.
  SysMicros t = sys_days{year{1999} / 12 / 31};
  for (int i = 0; i < 5000; ++i, t += microseconds{631'152'000'123LL}) {
    ASSERT_EQ(parse_iso8601(format_iso8601(t)), t) << format_iso8601(t);
  }
}

TEST(IsoTime, ParsesOffsetsAndPrecisions) {
  using namespace std::chrono;
  SysMicros noon_utc = sys_days{year{2024} / 11 / 6} + hours{12};
  EXPECT_EQ(parse_iso8601("2024-11-06T12:00:00+00:00"), noon_utc);
  EXPECT_EQ(parse_iso8601("2024-11-06T12:00:00Z"), noon_utc);
  EXPECT_EQ(parse_iso8601("2024-11-06T15:00:00.0+03:00"), noon_utc);  // the seed's example
  EXPECT_EQ(parse_iso8601("2024-11-06T07:00:00-0500"), noon_utc);
  EXPECT_EQ(parse_iso8601("2024-11-06 12:00:00"), noon_utc);
  EXPECT_EQ(parse_iso8601("2024-11-06T12:00:00.5Z"), noon_utc + milliseconds{500});
  EXPECT_EQ(parse_iso8601("2024-11-06T12:00:00.1234567Z"), noon_utc + microseconds{123456});
}

TEST(IsoTime, RejectsWhatIsNotADate) {
  for (const char* bad :
       {"", "2024", "2024-13-01T00:00:00", "2024-02-30T00:00:00", "2024-11-06T25:00:00",
        "2024-11-06T12:00:00+", "2024-11-06T12:00:00.Z", "2024-11-06T12:00:00 junk", "yesterday"}) {
    EXPECT_FALSE(parse_iso8601(bad)) << bad;
  }
}

}  // namespace
}  // namespace prpc
