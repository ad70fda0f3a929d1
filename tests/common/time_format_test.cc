#include "common/time_format.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>

namespace taskpipe {
namespace {

using std::chrono::system_clock;

system_clock::time_point Utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return system_clock::time_point{std::chrono::sys_days{std::chrono::year{y} / mo / d}} +
         std::chrono::hours{h} + std::chrono::minutes{mi} + std::chrono::seconds{s};
}

TEST(TimeFormat, FormatRfc3339Utc) {
  EXPECT_EQ(FormatRfc3339Utc(system_clock::time_point{}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339Utc(Utc(2026, 3, 8, 7)), "2026-03-08T07:00:00Z");
  // The fraction is dropped, toward the past, also before 1970.
  EXPECT_EQ(FormatRfc3339Utc(Utc(2026, 3, 8, 7) + std::chrono::milliseconds{999}), "2026-03-08T07:00:00Z");
  EXPECT_EQ(FormatRfc3339Utc(system_clock::time_point{} - std::chrono::milliseconds{500}),
            "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatRfc3339Utc(Utc(2199, 12, 31, 23, 59, 59)), "2199-12-31T23:59:59Z");
  EXPECT_EQ(FormatRfc3339Utc(Utc(2028, 2, 29, 12, 34, 56)), "2028-02-29T12:34:56Z");
}

TEST(TimeFormat, FormatRfc3339UtcMillis) {
  EXPECT_EQ(FormatRfc3339UtcMillis(Utc(2026, 3, 8, 7) + std::chrono::microseconds{250999}),
            "2026-03-08T07:00:00.250Z");
  EXPECT_EQ(FormatRfc3339UtcMillis(Utc(2026, 3, 8, 7)), "2026-03-08T07:00:00.000Z");
  EXPECT_EQ(FormatRfc3339UtcMillis(system_clock::time_point{} - std::chrono::milliseconds{1}),
            "1969-12-31T23:59:59.999Z");
}

TEST(TimeFormat, ParseRfc3339Accepts) {
  struct Case {
    const char* text;
    system_clock::time_point want;
  };
  const Case cases[] = {
      {"2026-03-08T07:00:00Z", Utc(2026, 3, 8, 7)},
      {"2026-03-08t07:00:00z", Utc(2026, 3, 8, 7)},
      {"2026-03-08T02:00:00-05:00", Utc(2026, 3, 8, 7)},
      {"2026-03-08T12:45:00+05:45", Utc(2026, 3, 8, 7)},
      {"2026-03-08T07:00:00+00:00", Utc(2026, 3, 8, 7)},
      {"2026-03-08T07:00:00-00:00", Utc(2026, 3, 8, 7)},
      {"2026-03-08T07:00:00", Utc(2026, 3, 8, 7)},  // no zone: UTC
      {"2026-03-08T07:00:00.5Z", Utc(2026, 3, 8, 7) + std::chrono::milliseconds{500}},
      {"2026-03-08T07:00:00.123456789Z", Utc(2026, 3, 8, 7) + std::chrono::nanoseconds{123456789}},
      {"2026-03-08T07:00:00.250+01:00", Utc(2026, 3, 8, 6) + std::chrono::milliseconds{250}},
      {"2028-02-29T00:00:00Z", Utc(2028, 2, 29)},
      {"1969-12-31T23:59:59Z", system_clock::time_point{} - std::chrono::seconds{1}},
      {"2026-01-01T00:30:00+14:00", Utc(2025, 12, 31, 10, 30)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    StatusOr<system_clock::time_point> parsed = ParseRfc3339(c.text);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, c.want);
  }
}

TEST(TimeFormat, ParseRfc3339Rejects) {
  struct Case {
    const char* text;
    const char* fragment;
  };
  const Case cases[] = {
      {"", "expected 4 digits for the year"},
      {"2026-03-08", "expected 'T' between the date and the time"},
      {"2026-3-8T07:00:00Z", "expected 2 digits for the month"},
      {"2026/03/08T07:00:00Z", "expected '-' after the year"},
      {"2026-13-08T07:00:00Z", "month 13 is out of range 01-12"},
      {"2026-00-08T07:00:00Z", "month 0 is out of range 01-12"},
      {"2026-02-30T00:00:00Z", "day 30 is out of range for 2026-02 (01-28)"},
      {"2100-02-29T00:00:00Z", "day 29 is out of range for 2100-02 (01-28)"},
      {"2026-03-00T00:00:00Z", "day 0 is out of range"},
      {"2026-03-08T24:00:00Z", "hour 24 is out of range 00-23"},
      {"2026-03-08T07:60:00Z", "minute 60 is out of range 00-59"},
      {"2026-03-08T07:00:60Z", "leap seconds (second 60) are not supported"},
      {"2026-03-08T07:00:61Z", "second 61 is out of range 00-59"},
      {"2026-03-08T07:00Z", "expected ':' after the minute"},
      {"2026-03-08T07:00:00+05", "expected ':' in the offset (+hh:mm)"},
      {"2026-03-08T07:00:00+24:00", "offset hours 24 is out of range 00-23"},
      {"2026-03-08T07:00:00+05:60", "offset minutes 60 is out of range 00-59"},
      {"2026-03-08T07:00:00Zjunk", "unexpected text after the time"},
      {"2026-03-08T07:00:00 Z", "expected 'Z', '+hh:mm', '-hh:mm' or the end after the seconds"},
      {"2026-03-08T07:00:00.Z", "expected digits after '.'"},
      {"2026-03-08T07:00:00.1234567891Z", "more than 9 fractional digits"},
      {"9999-01-01T00:00:00Z", "outside the range this system's clock can represent"},
      {" 2026-03-08T07:00:00Z", "expected 4 digits for the year"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    StatusOr<system_clock::time_point> parsed = ParseRfc3339(c.text);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(c.fragment), std::string::npos) << parsed.status().message();
    EXPECT_EQ(parsed.status().message().rfind("invalid time \"", 0), 0u) << parsed.status().message();
  }
}

TEST(TimeFormat, RoundTrip) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<long> secs(-2'000'000'000L, 7'000'000'000L);
  for (int i = 0; i < 2000; ++i) {
    const system_clock::time_point t{std::chrono::seconds{secs(rng)}};
    StatusOr<system_clock::time_point> back = ParseRfc3339(FormatRfc3339Utc(t));
    ASSERT_TRUE(back.ok()) << FormatRfc3339Utc(t);
    EXPECT_EQ(*back, t);
  }
}

TEST(TimeFormat, FormatInZone) {
  EXPECT_EQ(FormatInZone(Utc(2026, 3, 8, 7), "America/New_York").value(),
            "2026-03-08T03:00:00-04:00 (America/New_York)");
  EXPECT_EQ(FormatInZone(Utc(2026, 3, 8, 6, 59, 59), "America/New_York").value(),
            "2026-03-08T01:59:59-05:00 (America/New_York)");
  EXPECT_EQ(FormatInZone(Utc(2026, 3, 8, 7), "Asia/Kathmandu").value(),
            "2026-03-08T12:45:00+05:45 (Asia/Kathmandu)");
  EXPECT_EQ(FormatInZone(Utc(2026, 3, 8, 7), "UTC").value(), "2026-03-08T07:00:00+00:00 (UTC)");
  EXPECT_EQ(FormatInZone(Utc(2026, 1, 1), "America/St_Johns").value(),
            "2025-12-31T20:30:00-03:30 (America/St_Johns)");
  // Local mean time before standard zones: an offset with seconds.
  EXPECT_EQ(FormatInZone(Utc(1900, 1, 1), "Asia/Kathmandu").value(),
            "1900-01-01T05:41:16+05:41:16 (Asia/Kathmandu)");
  // After 2037, from the zone's POSIX rule.
  EXPECT_EQ(FormatInZone(Utc(2150, 7, 1, 12), "Europe/London").value(),
            "2150-07-01T13:00:00+01:00 (Europe/London)");

  StatusOr<std::string> bad = FormatInZone(Utc(2026, 1, 1), "Mars/Base");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "unknown time zone \"Mars/Base\"");
}

}  // namespace
}  // namespace taskpipe
