// Schedule: rejected expressions and their messages, the API, concurrency, bounded work.
// The table of fire times is in schedule_table_test.cc, the randomized checks in
// schedule_random_test.cc.
#include "producer/schedule.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace taskpipe {
namespace {

using std::chrono::system_clock;

system_clock::time_point Utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return system_clock::time_point{std::chrono::sys_days{std::chrono::year{y} / mo / d}} +
         std::chrono::hours{h} + std::chrono::minutes{mi} + std::chrono::seconds{s};
}

struct BadCase {
  const char* expression;
  const char* fragment;  // must appear in the error message
  const char* zone = "UTC";
};

const std::vector<BadCase>& BadCases() {
  static const auto* const kCases = new std::vector<BadCase>{
      // The expression as a whole.
      {"", "schedule expression is empty"},
      {"   ", "schedule expression is empty"},
      {"every 5 minutes",
       "schedule expression must be rate(...), cron(...) or at(...), got \"every 5 minutes\""},
      {"CRON(0 12 * * ? *)", "must be rate(...), cron(...) or at(...)"},
      {"cron (0 12 * * ? *)", "must be rate(...), cron(...) or at(...)"},
      {"cron", "cron: missing '('"},
      {"cron(0 12 * * ? *", "cron: missing ')'"},
      {"cron(0 12 * * ? *))", "cron: unexpected parenthesis"},
      // cron: shape.
      {"cron(0 12 * * ?)",
       "cron: expected 6 fields (minutes hours day-of-month month day-of-week year), got 5"},
      {"cron(0 12 * * ? * *)",
       "cron: expected 6 fields (minutes hours day-of-month month day-of-week year), got 7"},
      {"cron()", "got 0"},
      {"cron(0 12 * * * *)", "cron: exactly one of day-of-month and day-of-week must be '?'"},
      {"cron(0 12 ? * ? *)", "cron: exactly one of day-of-month and day-of-week must be '?'"},
      {"cron(0 12 1 * MON *)", "cron: exactly one of day-of-month and day-of-week must be '?'"},
      // cron: ranges of values.
      {"cron(60 12 * * ? *)", "cron minutes: 60 is out of range 0-59"},
      {"cron(0-60 12 * * ? *)", "cron minutes: 60 is out of range 0-59"},
      {"cron(0 24 * * ? *)", "cron hours: 24 is out of range 0-23"},
      {"cron(0 12 32 * ? *)", "cron day-of-month: 32 is out of range 1-31"},
      {"cron(0 12 0 * ? *)", "cron day-of-month: 0 is out of range 1-31"},
      {"cron(0 12 * 13 ? *)", "cron month: 13 is out of range 1-12 (or JAN-DEC)"},
      {"cron(0 12 ? * 8 *)", "cron day-of-week: 8 is out of range 1-7 (1 = SUN)"},
      {"cron(0 12 ? * 0 *)", "cron day-of-week: 0 is out of range 1-7 (1 = SUN)"},
      {"cron(0 12 * * ? 1969)", "cron year: 1969 is out of range 1970-2199"},
      {"cron(0 12 * * ? 2200)", "cron year: 2200 is out of range 1970-2199"},
      {"cron(99999999999 12 * * ? *)", "cron minutes: 99999999999 is out of range 0-59"},
      {"cron(0 12 * * ? 99999999999999999999)", "cron year: 99999999999999999999 is out of range 1970-2199"},
      // cron: names.
      {"cron(0 12 * FOO ? *)", "cron month: \"FOO\" is not a month (1-12 or JAN-DEC)"},
      {"cron(0 12 ? * FUN *)", "cron day-of-week: \"FUN\" is not a day of the week (1-7 or SUN-SAT)"},
      {"cron(0 12 ? * MONDAY *)", "cron day-of-week: \"MONDAY\" is not a day of the week"},
      {"cron(0 12 * JANUARY ? *)", "cron month: \"JANUARY\" is not a month"},
      {"cron(MON 12 * * ? *)", "cron minutes: unexpected \"MON\""},
      // cron: special characters where they do not belong.
      {"cron(? 12 * * ? *)", "cron minutes: '?' is only allowed in day-of-month and day-of-week"},
      {"cron(0 12 1,? * ? *)", "cron day-of-month: '?' must stand alone"},
      {"cron(0 L * * ? *)", "cron hours: 'L' is only allowed in day-of-month and day-of-week"},
      {"cron(0 12 * L ? *)", "cron month: 'L' is only allowed in day-of-month and day-of-week"},
      {"cron(0 12 ? * 5W *)", "cron day-of-week: 'W' is only allowed in day-of-month"},
      {"cron(0 12 3L * ? *)", "cron day-of-month: \"3L\" is not valid: L stands alone, as L, L-n or LW"},
      {"cron(0 12 1,L * ? *)", "cron day-of-month: \"L\" is not valid: L stands alone"},
      {"cron(0 12 ? * 1,L *)", "cron day-of-week: \"L\" is not valid: L stands alone, as L or nL"},
      {"cron(0 12 W * ? *)", "cron day-of-month: W needs a day number"},
      {"cron(0 12 1W,15 * ? *)", "cron day-of-month: \"1W\" is not valid: W stands alone"},
      {"cron(0 12 32W * ? *)", "cron day-of-month: 32 is out of range 1-31"},
      {"cron(0 12 0W * ? *)", "cron day-of-month: 0 is out of range 1-31"},
      {"cron(0 12 L-31 * ? *)", "cron day-of-month: \"L-31\": the offset from the last day must be 0-30"},
      {"cron(0 12 L-x * ? *)", "cron day-of-month: \"L-x\": expected L-n"},
      {"cron(0 12 ? * 2#6 *)", "cron day-of-week: \"2#6\": the occurrence after '#' must be 1-5"},
      {"cron(0 12 ? * 2#0 *)", "cron day-of-week: \"2#0\": the occurrence after '#' must be 1-5"},
      {"cron(0 12 ? * 2# *)", "cron day-of-week: \"2#\": expected a number 1-5 after '#'"},
      {"cron(0 12 ? * #2 *)", "cron day-of-week: \"#2\": missing the day before '#'"},
      {"cron(0 12 ? * 8#1 *)", "cron day-of-week: 8 is out of range 1-7 (1 = SUN)"},
      {"cron(0 12 ? * 3#1,6#3 *)", "only one n#k expression is allowed"},
      {"cron(0 12 1#2 * ? *)", "cron day-of-month: '#' is only allowed in day-of-week"},
      {"cron(0 12 ? * 8L *)", "cron day-of-week: 8 is out of range 1-7 (1 = SUN)"},
      // cron: lists, ranges, increments.
      {"cron(0/0 12 * * ? *)", "cron minutes: the increment 0 in \"0/0\" is out of range 1-60"},
      {"cron(0/61 12 * * ? *)", "cron minutes: the increment 61 in \"0/61\" is out of range 1-60"},
      {"cron(0/ 12 * * ? *)", "cron minutes: missing the increment after '/'"},
      {"cron(0/x 12 * * ? *)", "cron minutes: the increment in \"0/x\" must be a number"},
      {"cron(/5 12 * * ? *)", "cron minutes: missing a value before '/'"},
      {"cron(1/2/3 12 * * ? *)", "cron minutes: more than one '/'"},
      {"cron(-5 12 * * ? *)", "cron minutes: missing a value before '-'"},
      {"cron(5- 12 * * ? *)", "cron minutes: missing a value after '-'"},
      {"cron(1-2-3 12 * * ? *)", "cron minutes: more than one '-'"},
      {"cron(1,,2 12 * * ? *)", "cron minutes: empty item in the list \"1,,2\""},
      {"cron(1, 12 * * ? *)", "cron minutes: empty item"},
      {"cron(** 12 * * ? *)", "cron minutes: '*' must stand alone"},
      {"cron(5% 12 * * ? *)", "cron minutes: unexpected character \"%\" in \"5%\""},
      {"cron(0 12 * * ? 2030-2020)", "cron year: the range \"2030-2020\" runs backwards"},
      {"cron(0 12 * * ? 20x0)", "cron year: unexpected"},
      {"cron(0 12 * * \x01 *)", "\\x01"},  // control bytes are escaped in messages
      // rate.
      {"rate(5)", "rate: expected rate(value unit)"},
      {"rate()", "rate: expected rate(value unit)"},
      {"rate(5 minutes extra)", "rate: expected rate(value unit)"},
      {"rate(5 weeks)", "rate: unit must be minute(s), hour(s) or day(s), got \"weeks\""},
      {"rate(5 Minutes)", "rate: unit must be minute(s), hour(s) or day(s), got \"Minutes\""},
      {"rate(5 seconds)", "rate: unit must be minute(s), hour(s) or day(s)"},
      {"rate(0 minutes)", "rate: value must be at least 1, got \"0\""},
      {"rate(-5 minutes)", "rate: value must be a whole number of at least 1, got \"-5\""},
      {"rate(1.5 hours)", "rate: value must be a whole number of at least 1, got \"1.5\""},
      {"rate(five minutes)", "rate: value must be a whole number"},
      {"rate(5 minute)", "rate: the unit is plural for values other than 1: rate(5 minutes)"},
      {"rate(2 day)", "rate(2 days)"},
      {"rate(99999999999 minutes)", "rate: 99999999999 minutes is too long (at most 36500 days)"},
      {"rate(36501 days)", "rate: 36501 days is too long"},
      // at.
      {"at(2026-13-01T00:00:00)", "at: month 13 is out of range 01-12"},
      {"at(2026-02-30T00:00:00)", "at: day 30 is out of range for 2026-02 (01-28)"},
      {"at(2026-02-29T00:00:00)", "at: day 29 is out of range for 2026-02 (01-28)"},
      {"at(2026-04-31T00:00:00)", "at: day 31 is out of range for 2026-04 (01-30)"},
      {"at(2026-01-01T24:00:00)", "at: hour 24 is out of range 00-23"},
      {"at(2026-01-01T00:60:00)", "at: minute 60 is out of range 00-59"},
      {"at(2026-01-01T00:00:60)", "at: second 60 is out of range 00-59"},
      {"at(2026-01-01 00:00:00)", "at: expected at(yyyy-mm-ddThh:mm:ss)"},
      {"at(2026-01-01T00:00)", "at: expected at(yyyy-mm-ddThh:mm:ss)"},
      {"at(2026-01-01T00:00:00Z)", "at: expected at(yyyy-mm-ddThh:mm:ss)"},
      {"at(2300-01-01T00:00:00)", "at: year 2300 is out of range 1970-2199"},
      {"at(2026-03-08T02:30:00)",
       "at: 2026-03-08T02:30:00 does not exist in America/New_York: clocks jump from 02:00 to 03:00",
       "America/New_York"},
      {"at(2026-10-04T02:15:00)", "does not exist in Australia/Lord_Howe: clocks jump from 02:00 to 02:30",
       "Australia/Lord_Howe"},
      // Zones.
      {"cron(0 12 * * ? *)", "unknown time zone \"Mars/Base\"", "Mars/Base"},
      {"cron(0 12 * * ? *)", "unknown time zone \"\"", ""},
      {"cron(0 12 * * ? *)", "unknown time zone \"../../etc/passwd\"", "../../etc/passwd"},
      {"rate(5 minutes)", "unknown time zone \"utc\"", "utc"},
  };
  return *kCases;
}

TEST(ScheduleErrors, AtLeastFortyBadExpressions) { EXPECT_GE(BadCases().size(), 40u); }

TEST(ScheduleErrors, EachIsRejectedWithAMessageNamingTheFault) {
  for (const BadCase& c : BadCases()) {
    SCOPED_TRACE(std::string(c.expression) + " in \"" + c.zone + "\"");
    ScheduleOptions options;
    options.timezone = c.zone;
    StatusOr<Schedule> schedule = Schedule::Parse(c.expression, options);
    ASSERT_FALSE(schedule.ok());
    EXPECT_EQ(schedule.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(schedule.status().message().find(c.fragment), std::string::npos)
        << "message: " << schedule.status().message() << "\nwanted: " << c.fragment;
  }
}

TEST(ScheduleErrors, StartAfterEnd) {
  ScheduleOptions options;
  options.start = Utc(2026, 2, 1);
  options.end = Utc(2026, 1, 1);
  StatusOr<Schedule> schedule = Schedule::Parse("cron(0 12 * * ? *)", options);
  ASSERT_FALSE(schedule.ok());
  EXPECT_EQ(schedule.status().message(),
            "schedule start 2026-02-01T00:00:00Z is after end 2026-01-01T00:00:00Z");
  // at() ignores start and end, so they cannot be wrong for it.
  EXPECT_TRUE(Schedule::Parse("at(2026-06-01T00:00:00)", options).ok());
}

TEST(Schedule, Accessors) {
  ScheduleOptions options;
  options.timezone = "Asia/Taipei";
  options.start = Utc(2026, 1, 1);
  options.end = Utc(2027, 1, 1);
  StatusOr<Schedule> cron = Schedule::Parse("  cron(0 12 * * ? *) ", options);
  ASSERT_TRUE(cron.ok()) << cron.status().ToString();
  EXPECT_EQ(cron->kind(), Schedule::Kind::kCron);
  EXPECT_EQ(cron->expression(), "cron(0 12 * * ? *)");
  EXPECT_EQ(cron->timezone(), "Asia/Taipei");
  EXPECT_EQ(cron->start(), Utc(2026, 1, 1));
  EXPECT_EQ(cron->end(), Utc(2027, 1, 1));

  StatusOr<Schedule> rate = Schedule::Parse("rate(1 hour)");
  ASSERT_TRUE(rate.ok());
  EXPECT_EQ(rate->kind(), Schedule::Kind::kRate);
  EXPECT_EQ(rate->timezone(), "UTC");
  EXPECT_FALSE(rate->start().has_value());

  StatusOr<Schedule> at = Schedule::Parse("at(2026-01-01T00:00:00)", options);
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(at->kind(), Schedule::Kind::kAt);
  EXPECT_FALSE(at->start().has_value());  // ignored for at()
}

TEST(Schedule, SingularUnitOnlyWithOne) {
  EXPECT_TRUE(Schedule::Parse("rate(1 minute)").ok());
  EXPECT_TRUE(Schedule::Parse("rate(1 hour)").ok());
  EXPECT_TRUE(Schedule::Parse("rate(1 day)").ok());
  EXPECT_TRUE(Schedule::Parse("rate(1 minutes)").ok());  // the Scheduler guide lists only plurals
  EXPECT_TRUE(Schedule::Parse("rate(5 minutes)").ok());
  EXPECT_FALSE(Schedule::Parse("rate(5 minute)").ok());
}

TEST(Schedule, NextNStopsWhenTheScheduleEnds) {
  StatusOr<Schedule> schedule = Schedule::Parse("cron(0 0 1 1 ? 2027-2028)");
  ASSERT_TRUE(schedule.ok());
  EXPECT_EQ(schedule->NextN(Utc(2026, 1, 1), 5),
            (std::vector<system_clock::time_point>{Utc(2027, 1, 1), Utc(2028, 1, 1)}));
  EXPECT_TRUE(schedule->NextN(Utc(2026, 1, 1), 0).empty());
  EXPECT_TRUE(schedule->NextN(Utc(2026, 1, 1), -3).empty());
}

TEST(Schedule, ExtremeInstantsAreHandled) {
  for (const char* expression : {"cron(* * * * ? *)", "rate(1 minute)", "at(2026-01-01T00:00:00)"}) {
    SCOPED_TRACE(expression);
    StatusOr<Schedule> schedule = Schedule::Parse(expression);
    ASSERT_TRUE(schedule.ok());
    EXPECT_FALSE(schedule->Next(system_clock::time_point::max()).has_value());
    const std::optional<system_clock::time_point> first = schedule->Next(system_clock::time_point::min());
    ASSERT_TRUE(first.has_value());
  }
  ScheduleOptions options;
  options.start = Utc(2026, 1, 1);
  StatusOr<Schedule> rate = Schedule::Parse("rate(36500 days)", options);
  ASSERT_TRUE(rate.ok());
  // The third fire, 2026 + 3 * 36500 days, is beyond what system_clock can hold (2262): no fire
  // rather than an overflow.
  EXPECT_EQ(rate->Next(Utc(2200, 1, 1)), Utc(2225, 11, 14));
  EXPECT_FALSE(rate->Next(Utc(2230, 1, 1)).has_value());
}

TEST(Schedule, NeverFiringExpressionsEndQuickly) {
  // Each must return nullopt after bounded work, not loop forever.
  for (const char* zone : {"UTC", "America/New_York", "Australia/Lord_Howe"}) {
    for (const char* expression : {"cron(0 0 30 2 ? *)", "cron(0 0 31 4,6,9,11 ? *)", "cron(0 0 29 2 ? 2100)",
                                   "cron(0 0 ? 2 1#5 2033-2059)", "cron(0 0 L-30 2,4,6,9,11 ? *)"}) {
      SCOPED_TRACE(std::string(expression) + " " + zone);
      ScheduleOptions options;
      options.timezone = zone;
      StatusOr<Schedule> schedule = Schedule::Parse(expression, options);
      ASSERT_TRUE(schedule.ok()) << schedule.status().ToString();
      EXPECT_FALSE(schedule->Next(Utc(2026, 1, 1)).has_value());
    }
  }
  // A wall time that daylight saving time skips every year never fires: 02:30 on the second
  // Sunday of March in New York, through 2199.
  ScheduleOptions options;
  options.timezone = "America/New_York";
  StatusOr<Schedule> skipped = Schedule::Parse("cron(30 2 ? 3 1#2 *)", options);
  ASSERT_TRUE(skipped.ok());
  EXPECT_FALSE(skipped->Next(Utc(2026, 1, 1)).has_value());
}

TEST(Schedule, ConcurrentNextAgreesWithSequential) {
  ScheduleOptions options;
  options.timezone = "Europe/London";
  StatusOr<Schedule> schedule = Schedule::Parse("cron(0/7 0-3 ? * MON-FRI *)", options);
  ASSERT_TRUE(schedule.ok());
  const std::vector<system_clock::time_point> want = schedule->NextN(Utc(2026, 3, 20), 500);
  std::vector<std::vector<system_clock::time_point>> got(4);
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < got.size(); ++i) {
      threads.emplace_back([&, i] {
        const Schedule copy = *schedule;  // copies share the representation
        got[i] = copy.NextN(Utc(2026, 3, 20), 500);
      });
    }
  }
  for (const auto& g : got) EXPECT_EQ(g, want);
}

}  // namespace
}  // namespace taskpipe
