#include "common/duration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace taskpipe {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

milliseconds Ms(int64_t count) { return milliseconds(count); }
constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;

TEST(DurationTest, ParsesEachUnit) {
  struct Case {
    const char* text;
    int64_t ms;
  };
  const Case cases[] = {
      {"0s", 0},
      {"0ms", 0},
      {"500ms", 500},
      {"30s", 30 * kSecond},
      {"15m", 15 * kMinute},
      {"4h", 4 * kHour},
      {"4d", 4 * kDay},
      {"12h", 12 * kHour},
      {"1h30m", kHour + 30 * kMinute},
      {"1m30s500ms", kMinute + 30 * kSecond + 500},
      {"1d2h3m4s5ms", kDay + 2 * kHour + 3 * kMinute + 4 * kSecond + 5},
      {"90m", 90 * kMinute},
      {"007s", 7 * kSecond},
      {"1500ms", 1500},
  };
  for (const Case& c : cases) {
    StatusOr<milliseconds> parsed = ParseDuration(c.text);
    ASSERT_TRUE(parsed.ok()) << c.text << ": " << parsed.status().ToString();
    EXPECT_EQ(*parsed, Ms(c.ms)) << c.text;
  }
}

// Each bad input fails with kInvalidArgument and a message that quotes it.
TEST(DurationTest, RejectsMalformedText) {
  for (const char* text : {"", "s", "ms", "soon", "h1", "1h 30m", " 30s", "30s ", "+5s", "1..5h", "1.h",
                           ".5h", "1h-30m", "30s\n", "\xff"}) {
    StatusOr<milliseconds> parsed = ParseDuration(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << text;
  }
  EXPECT_EQ(ParseDuration("soon").status().message(), "expected a duration like \"30s\", got \"soon\"");
  EXPECT_EQ(ParseDuration("").status().message(), "expected a duration like \"30s\", got \"\"");
  EXPECT_EQ(ParseDuration("s").status().message(), "expected a duration like \"30s\", got \"s\"");
  // Control characters are escaped in the message.
  EXPECT_EQ(ParseDuration("30s\n").status().message(), "expected a duration like \"30s\", got \"30s\\x0a\"");
  EXPECT_EQ(ParseDuration("\xff").status().message(), "expected a duration like \"30s\", got \"\\xff\"");
}

TEST(DurationTest, BareNumberSaysHowToWriteIt) {
  EXPECT_EQ(ParseDuration("10").status().message(),
            "expected a duration like \"10s\" (a number needs a unit: ms, s, m, h or d), got \"10\"");
  EXPECT_EQ(ParseDuration("0").status().message(),
            "expected a duration like \"0s\" (a number needs a unit: ms, s, m, h or d), got \"0\"");
  EXPECT_THAT(ParseDuration("1h30").status().message(),
              HasSubstr("\"1h30\" ends in a number without a unit"));
}

TEST(DurationTest, RejectsNegative) {
  EXPECT_EQ(ParseDuration("-5s").status().message(), "a duration cannot be negative, got \"-5s\"");
  EXPECT_FALSE(ParseDuration("-").ok());
}

TEST(DurationTest, UnknownUnitListsUnitsOrSuggestsOne) {
  EXPECT_EQ(ParseDuration("5x").status().message(), "unknown unit \"x\" in \"5x\" (units: ms, s, m, h or d)");
  EXPECT_EQ(ParseDuration("5min").status().message(), "unknown unit \"min\" in \"5min\": write \"5m\"");
  EXPECT_EQ(ParseDuration("2hours").status().message(), "unknown unit \"hours\" in \"2hours\": write \"2h\"");
  EXPECT_EQ(ParseDuration("30S").status().message(), "unknown unit \"S\" in \"30S\": write \"30s\"");
  // "M" could be months: no guess.
  EXPECT_EQ(ParseDuration("5M").status().message(), "unknown unit \"M\" in \"5M\" (units: ms, s, m, h or d)");
  EXPECT_FALSE(ParseDuration("1us").ok());
  EXPECT_FALSE(ParseDuration("1w").ok());
}

// Decision: fractions are rejected, with the exact whole-unit spelling when there is one.
TEST(DurationTest, RejectsFractionsWithSuggestion) {
  EXPECT_EQ(ParseDuration("1.5h").status().message(),
            "fractions are not supported: write \"1h30m\" instead of \"1.5h\"");
  EXPECT_EQ(ParseDuration("0.5s").status().message(),
            "fractions are not supported: write \"500ms\" instead of \"0.5s\"");
  EXPECT_EQ(ParseDuration("2.50m").status().message(),
            "fractions are not supported: write \"2m30s\" instead of \"2.50m\"");
  // No exact spelling: no suggestion.
  EXPECT_EQ(ParseDuration("0.0001s").status().message(), "fractions are not supported, got \"0.0001s\"");
  EXPECT_EQ(ParseDuration("1.5ms").status().message(), "fractions are not supported, got \"1.5ms\"");
  // Inside a compound the suggestion would be partial: none.
  EXPECT_EQ(ParseDuration("1h0.5m").status().message(), "fractions are not supported, got \"1h0.5m\"");
}

TEST(DurationTest, CompoundUnitsGoFromLargestToSmallestOnce) {
  for (const char* text : {"30m1h", "1h1h", "1s1m", "1ms1s", "1m1m"}) {
    StatusOr<milliseconds> parsed = ParseDuration(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr("units must go from the largest to the smallest"))
        << text;
  }
  EXPECT_TRUE(ParseDuration("1d1ms").ok());
}

TEST(DurationTest, RejectsOverflowInsteadOfWrapping) {
  // int64 milliseconds hold about 292 million years.
  for (const char* text : {"9223372036854775808ms", "99999999999999999999999s", "106751991167301d",
                           "106751991167d7h12m55s808ms", "9223372036854775s808ms"}) {
    StatusOr<milliseconds> parsed = ParseDuration(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr("is too large")) << text;
  }
  // The largest value parses exactly.
  StatusOr<milliseconds> max = ParseDuration("9223372036854775807ms");
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(*max, milliseconds::max());
  StatusOr<milliseconds> days = ParseDuration("106751991167d");
  ASSERT_TRUE(days.ok());
  EXPECT_EQ(days->count(), 106751991167LL * kDay);
}

TEST(DurationTest, LongInputIsShortenedInMessages) {
  const std::string text(1000, 'x');
  EXPECT_LT(ParseDuration(text).status().message().size(), 120u);
}

TEST(DurationTest, Formats) {
  EXPECT_EQ(FormatDuration(Ms(0)), "0s");
  EXPECT_EQ(FormatDuration(Ms(500)), "500ms");
  EXPECT_EQ(FormatDuration(Ms(30 * kSecond)), "30s");
  EXPECT_EQ(FormatDuration(Ms(kHour + 30 * kMinute)), "1h30m");
  EXPECT_EQ(FormatDuration(Ms(12 * kHour)), "12h");
  EXPECT_EQ(FormatDuration(Ms(4 * kDay)), "4d");
  EXPECT_EQ(FormatDuration(Ms(36 * kHour)), "1d12h");
  EXPECT_EQ(FormatDuration(Ms(1500)), "1s500ms");
  EXPECT_EQ(FormatDuration(Ms(-90 * kSecond)), "-1m30s");
  EXPECT_EQ(FormatDuration(std::chrono::seconds(60)), "1m");
}

TEST(DurationTest, FormatsExtremesWithoutOverflow) {
  EXPECT_EQ(FormatDuration(milliseconds::max()), "106751991167d7h12m55s807ms");
  EXPECT_EQ(FormatDuration(milliseconds::min()), "-106751991167d7h12m55s808ms");
}

TEST(DurationTest, FormatThenParseRoundTrips) {
  for (int64_t ms : {int64_t{0}, int64_t{1}, int64_t{999}, kSecond, 61 * kSecond, kDay + 1,
                     7 * kDay + 3 * kHour, milliseconds::max().count()}) {
    StatusOr<milliseconds> parsed = ParseDuration(FormatDuration(Ms(ms)));
    ASSERT_TRUE(parsed.ok()) << ms;
    EXPECT_EQ(parsed->count(), ms);
  }
}

}  // namespace
}  // namespace taskpipe
