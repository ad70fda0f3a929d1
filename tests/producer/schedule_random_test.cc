// Randomized checks of Schedule::Next against a deliberately naive evaluator written here: it
// walks UTC minute by minute, converts each to wall time with date/tz directly (not through
// taskpipe's TimeZone), tests every field from a truth table built alongside the random
// expression text (not by the parser under test), and applies the daylight saving rules from
// their definitions. Plus a garbage loop: random bytes and mutated expressions must give a Status,
// never a crash or a hang.
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "producer/schedule.h"

namespace taskpipe {
namespace {

namespace ch = std::chrono;
using Clock = ch::system_clock;
using ch::minutes;
using ch::seconds;
using ch::sys_seconds;

// Years 2000-2036: inside the transitions listed in the tz files, where date/tz alone is right.
constexpr int kFirstYear = 2000;
constexpr int kLastYear = 2036;

const std::array<const char*, 20> kZones = {"UTC",
                                            "America/New_York",
                                            "Europe/London",
                                            "Australia/Lord_Howe",
                                            "Asia/Kathmandu",
                                            "America/Los_Angeles",
                                            "Australia/Sydney",
                                            "Asia/Taipei",
                                            "America/St_Johns",
                                            "Europe/Berlin",
                                            "Pacific/Chatham",
                                            "America/Santiago",
                                            "Asia/Tehran",
                                            "Africa/Casablanca",
                                            "America/Havana",
                                            "Europe/Moscow",
                                            "Pacific/Apia",
                                            "Antarctica/Troll",
                                            "Australia/Eucla",
                                            "America/Sao_Paulo"};

const std::array<const char*, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                 "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
const std::array<const char*, 7> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

// What a random cron expression means, recorded while its text is generated.
struct Truth {
  std::vector<bool> minute = std::vector<bool>(60);
  std::vector<bool> hour = std::vector<bool>(24);
  std::vector<bool> month = std::vector<bool>(13);
  std::vector<bool> year = std::vector<bool>(2200);
  enum class Day { kDomSet, kDomLast, kDomLastWeekday, kDomNearestWeekday, kDowSet, kDowLast, kDowNth };
  Day day = Day::kDomSet;
  std::vector<bool> dom = std::vector<bool>(32);
  std::vector<bool> dow = std::vector<bool>(8);  // 1 = Sunday
  int arg = 0;
  int weekday = 1;  // 1 = Sunday
};

class Generator {
 public:
  explicit Generator(std::uint64_t seed) : rng_(seed) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  std::mt19937_64& rng() { return rng_; }

  std::string Value(int v, int lo, const std::array<const char*, 12>* months,
                    const std::array<const char*, 7>* days) {
    const char* name = nullptr;
    if (months != nullptr && Chance(0.4)) name = (*months)[static_cast<std::size_t>(v - lo)];
    if (days != nullptr && Chance(0.4)) name = (*days)[static_cast<std::size_t>(v - lo)];
    if (name == nullptr) return (Chance(0.1) ? "0" : "") + std::to_string(v);
    std::string out = name;
    for (char& c : out) {
      if (Chance(0.3)) c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
  }

  // A random item for a field of values lo..hi, marking its values in `set`. `sparse` favours
  // small sets (minutes), so that fields do not all fire every minute.
  std::string Item(int lo, int hi, bool wraps, std::vector<bool>* set,
                   const std::array<const char*, 12>* months, const std::array<const char*, 7>* days) {
    const int size = hi - lo + 1;
    // The values from a to b inclusive, going past hi back to lo if b < a.
    auto walk = [&](int a, int b) {
      std::vector<int> seq{a};
      for (int v = a; v != b;) {
        v = v == hi ? lo : v + 1;
        seq.push_back(v);
      }
      return seq;
    };
    auto mark_every = [&](const std::vector<int>& seq, int step) {
      for (std::size_t k = 0; k < seq.size(); k += static_cast<std::size_t>(step))
        (*set)[static_cast<std::size_t>(seq[k])] = true;
    };
    switch (Uniform(0, 5)) {
      case 0: {  // single value
        const int v = Uniform(lo, hi);
        (*set)[static_cast<std::size_t>(v)] = true;
        return Value(v, lo, months, days);
      }
      case 1: {  // range, maybe wrapping
        int a = Uniform(lo, hi), b = Uniform(lo, hi);
        if (!wraps && a > b) std::swap(a, b);
        mark_every(walk(a, b), 1);
        return Value(a, lo, months, days) + "-" + Value(b, lo, months, days);
      }
      case 2: {  // v/s
        const int a = Uniform(lo, hi), s = Uniform(1, std::max(1, size / 2));
        mark_every(walk(a, hi), s);
        return Value(a, lo, months, days) + "/" + std::to_string(s);
      }
      case 3: {  // */s
        const int s = Uniform(1, std::max(1, size / 3));
        mark_every(walk(lo, hi), s);
        return "*/" + std::to_string(s);
      }
      case 4: {  // a-b/s
        int a = Uniform(lo, hi), b = Uniform(lo, hi);
        if (!wraps && a > b) std::swap(a, b);
        const int s = Uniform(1, 4);
        mark_every(walk(a, b), s);
        return Value(a, lo, months, days) + "-" + Value(b, lo, months, days) + "/" + std::to_string(s);
      }
      default: {  // list of singles
        std::string out;
        const int n = Uniform(2, 4);
        for (int i = 0; i < n; ++i) {
          const int v = Uniform(lo, hi);
          (*set)[static_cast<std::size_t>(v)] = true;
          out += (i > 0 ? "," : "") + Value(v, lo, months, days);
        }
        return out;
      }
    }
  }

  std::string Field(int lo, int hi, bool wraps, double star, std::vector<bool>* set,
                    const std::array<const char*, 12>* months = nullptr,
                    const std::array<const char*, 7>* days = nullptr) {
    if (Chance(star)) {
      for (int v = lo; v <= hi; ++v) (*set)[static_cast<std::size_t>(v)] = true;
      return "*";
    }
    std::string out = Item(lo, hi, wraps, set, months, days);
    if (Chance(0.25)) out += "," + Item(lo, hi, wraps, set, months, days);
    return out;
  }

  // A random valid cron expression, and its meaning.
  std::string Cron(Truth* truth, int around_year) {
    const std::string minute = Field(0, 59, true, 0.15, &truth->minute);
    const std::string hour = Field(0, 23, true, 0.35, &truth->hour);
    std::string dom = "?", dow = "?";
    if (Chance(0.5)) {
      switch (Uniform(0, 5)) {
        case 0:
          truth->day = Truth::Day::kDomLast;
          truth->arg = Chance(0.5) ? 0 : Uniform(0, 30);
          dom = truth->arg == 0 && Chance(0.5) ? "L" : "L-" + std::to_string(truth->arg);
          break;
        case 1:
          truth->day = Truth::Day::kDomLastWeekday;
          dom = "LW";
          break;
        case 2:
          truth->day = Truth::Day::kDomNearestWeekday;
          truth->arg = Chance(0.5) ? Uniform(1, 3) : Uniform(27, 31);
          dom = std::to_string(truth->arg) + "W";
          break;
        default:
          truth->day = Truth::Day::kDomSet;
          dom = Field(1, 31, true, 0.4, &truth->dom);
      }
    } else {
      switch (Uniform(0, 4)) {
        case 0:
          truth->day = Truth::Day::kDowLast;
          truth->weekday = Uniform(1, 7);
          dow = Value(truth->weekday, 1, nullptr, &kDayNames) + "L";
          break;
        case 1:
          truth->day = Truth::Day::kDowNth;
          truth->weekday = Uniform(1, 7);
          truth->arg = Uniform(1, 5);
          dow = Value(truth->weekday, 1, nullptr, &kDayNames) + "#" + std::to_string(truth->arg);
          break;
        default:
          truth->day = Truth::Day::kDowSet;
          dow = Field(1, 7, true, 0.3, &truth->dow, nullptr, &kDayNames);
      }
    }
    const std::string month = Field(1, 12, true, 0.6, &truth->month, &kMonthNames);
    std::string year = "*";
    if (Chance(0.8)) {
      for (int y = 1970; y <= 2199; ++y) truth->year[static_cast<std::size_t>(y)] = true;
    } else if (Chance(0.5)) {
      const int a = around_year - Uniform(0, 1), b = around_year + Uniform(0, 2);
      for (int y = a; y <= b; ++y) truth->year[static_cast<std::size_t>(y)] = true;
      year = std::to_string(a) + "-" + std::to_string(b);
    } else {
      year = std::to_string(around_year + 1) + "," + std::to_string(around_year);
      truth->year[static_cast<std::size_t>(around_year)] =
          truth->year[static_cast<std::size_t>(around_year + 1)] = true;
    }
    return "cron(" + minute + " " + hour + " " + dom + " " + month + " " + dow + " " + year + ")";
  }

 private:
  std::mt19937_64 rng_;
};

// ---- the naive evaluator ----

int DaysIn(int y, int m) {
  return static_cast<int>(
      static_cast<unsigned>((date::year{y} / date::month{static_cast<unsigned>(m)} / date::last).day()));
}
int WeekdayOf(int y, int m, int d) {  // 1 = Sunday
  return static_cast<int>(date::weekday{date::sys_days{date::year{y} / date::month{static_cast<unsigned>(m)} /
                                                       date::day{static_cast<unsigned>(d)}}}
                              .c_encoding()) +
         1;
}
bool IsWorkday(int y, int m, int d) {
  const int w = WeekdayOf(y, m, d);
  return w >= 2 && w <= 6;
}

bool DayMatches(const Truth& t, int y, int m, int d) {
  const int dim = DaysIn(y, m);
  switch (t.day) {
    case Truth::Day::kDomSet:
      return t.dom[static_cast<std::size_t>(d)];
    case Truth::Day::kDomLast:
      return d == dim - t.arg;
    case Truth::Day::kDomLastWeekday: {  // the last workday of the month
      if (!IsWorkday(y, m, d)) return false;
      for (int later = d + 1; later <= dim; ++later) {
        if (IsWorkday(y, m, later)) return false;
      }
      return true;
    }
    case Truth::Day::kDomNearestWeekday: {  // the workday of the month closest to day arg
      if (t.arg > dim || !IsWorkday(y, m, d)) return false;
      for (int other = 1; other <= dim; ++other) {
        if (IsWorkday(y, m, other) && std::abs(other - t.arg) < std::abs(d - t.arg)) return false;
      }
      return true;
    }
    case Truth::Day::kDowSet:
      return t.dow[static_cast<std::size_t>(WeekdayOf(y, m, d))];
    case Truth::Day::kDowLast:
      return WeekdayOf(y, m, d) == t.weekday && d + 7 > dim;
    case Truth::Day::kDowNth:
      return WeekdayOf(y, m, d) == t.weekday && (d - 1) / 7 + 1 == t.arg;
  }
  return false;
}

struct NaiveResult {
  std::vector<sys_seconds> fires;
  sys_seconds walked_to;  // every minute up to here was examined
};

NaiveResult Naive(const Truth& truth, const date::time_zone* zone, sys_seconds after,
                  std::optional<sys_seconds> start, std::optional<sys_seconds> end, int count,
                  int horizon_minutes) {
  NaiveResult result;
  sys_seconds t = ch::floor<minutes>(after) + minutes{1};
  date::sys_info info = zone->get_info(t);
  date::sys_info previous = zone->get_info(info.begin - seconds{1});
  for (int i = 0; i < horizon_minutes && static_cast<int>(result.fires.size()) < count;
       ++i, t += minutes{1}) {
    result.walked_to = t;
    if (t >= info.end) {
      previous = info;
      info = zone->get_info(t);
    }
    const sys_seconds wall{t.time_since_epoch() + info.offset};  // wall time, read as a calendar
    const auto day = ch::floor<ch::days>(wall);
    const ch::year_month_day ymd{day};
    const int y = static_cast<int>(ymd.year());
    const int m = static_cast<int>(static_cast<unsigned>(ymd.month()));
    const int d = static_cast<int>(static_cast<unsigned>(ymd.day()));
    const auto minute_of_day = ch::duration_cast<minutes>(wall - day).count();
    const auto h = static_cast<std::size_t>(minute_of_day / 60),
               mi = static_cast<std::size_t>(minute_of_day % 60);
    if (y < 1970 || y > 2199 || !truth.year[static_cast<std::size_t>(y)] ||
        !truth.month[static_cast<std::size_t>(m)] || !truth.hour[h] || !truth.minute[mi] ||
        !DayMatches(truth, y, m, d)) {
      continue;
    }
    // Fall-back: this wall time was already shown during the previous period if the previous
    // offset was larger and the wall time lies below the previous period's last wall time.
    if (previous.offset > info.offset &&
        wall.time_since_epoch() < info.begin.time_since_epoch() + previous.offset) {
      continue;
    }
    if (start && t < *start) continue;
    if (end && t > *end) break;
    result.fires.push_back(t);
  }
  return result;
}

Clock::time_point ToClock(sys_seconds t) {
  return Clock::time_point{ch::duration_cast<Clock::duration>(t.time_since_epoch())};
}

TEST(ScheduleRandom, CronMatchesNaiveMinuteWalk) {
  Generator gen(20260308);
  constexpr int kCases = 3000;
  constexpr int kHorizonMinutes = 20 * 24 * 60;
  int compared = 0;
  for (int c = 0; c < kCases; ++c) {
    const char* zone_name =
        kZones[static_cast<std::size_t>(gen.Uniform(0, static_cast<int>(kZones.size()) - 1))];
    const date::time_zone* zone = date::locate_zone(zone_name);
    // A random instant, half the time within a couple of days of one of the zone's transitions.
    sys_seconds after{
        seconds{static_cast<std::int64_t>(gen.Uniform(0, (kLastYear - kFirstYear) * 365)) * 86400 +
                gen.Uniform(0, 86399) + 946684800}};
    if (gen.Chance(0.5)) {
      const date::sys_info info = zone->get_info(after);
      if (info.end < sys_seconds{ch::sys_days{ch::year{kLastYear} / 1 / 1}}) {
        after = info.end + seconds{gen.Uniform(-2 * 86400, 86400)};
      }
    }
    if (gen.Chance(0.3)) after = ch::floor<minutes>(after);
    const int around_year = static_cast<int>(ch::year_month_day{ch::floor<ch::days>(after)}.year());

    Truth truth;
    const std::string expression = gen.Cron(&truth, around_year);
    ScheduleOptions options;
    options.timezone = zone_name;
    std::optional<sys_seconds> start, end;
    if (gen.Chance(0.15)) start = after + seconds{gen.Uniform(-2 * 86400, 5 * 86400)};
    if (gen.Chance(0.15)) end = after + seconds{gen.Uniform(0, 10 * 86400)};
    if (start && end && *start > *end) std::swap(start, end);
    if (start) options.start = ToClock(*start);
    if (end) options.end = ToClock(*end);

    SCOPED_TRACE(expression + " in " + zone_name + " after " +
                 std::to_string(after.time_since_epoch().count()) +
                 (start ? " start " + std::to_string(start->time_since_epoch().count()) : "") +
                 (end ? " end " + std::to_string(end->time_since_epoch().count()) : ""));
    StatusOr<Schedule> schedule = Schedule::Parse(expression, options);
    ASSERT_TRUE(schedule.ok()) << schedule.status().ToString();

    const NaiveResult naive = Naive(truth, zone, after, start, end, 3, kHorizonMinutes);
    const std::vector<Clock::time_point> fast = schedule->NextN(ToClock(after), 3);
    for (std::size_t i = 0; i < 3; ++i) {
      if (i < naive.fires.size()) {
        ASSERT_LT(i, fast.size()) << "fire " << i << " missing";
        EXPECT_EQ(fast[i], ToClock(naive.fires[i])) << "fire " << i;
        ++compared;
      } else {
        // The naive walk saw nothing more up to its horizon: neither may the fast one.
        if (i < fast.size()) {
          EXPECT_GT(fast[i], ToClock(naive.walked_to)) << "fire " << i;
        }
        break;
      }
    }
  }
  EXPECT_GT(compared, kCases);  // most cases fire within the horizon
}

TEST(ScheduleRandom, RateMatchesStepping) {
  Generator gen(42);
  for (int c = 0; c < 2000; ++c) {
    const int unit_index = gen.Uniform(0, 2);
    const int value = gen.Uniform(1, unit_index == 0 ? 300 : 40);
    const char* unit = unit_index == 0 ? "minutes" : unit_index == 1 ? "hours" : "days";
    const seconds period{static_cast<std::int64_t>(value) * (unit_index == 0   ? 60
                                                             : unit_index == 1 ? 3600
                                                                               : 86400)};
    const std::string expression = "rate(" + std::to_string(value) + " " + unit + ")";
    const sys_seconds anchor{seconds{1767225600 + gen.Uniform(0, 86400 * 365)}};
    const sys_seconds after = anchor + seconds{gen.Uniform(-86400 * 3, 86400 * 60)};
    ScheduleOptions options;
    options.timezone = kZones[static_cast<std::size_t>(gen.Uniform(0, static_cast<int>(kZones.size()) - 1))];
    options.start = ToClock(anchor);
    std::optional<sys_seconds> end;
    if (gen.Chance(0.3)) {
      end = std::max(after, anchor) + seconds{gen.Uniform(0, 86400 * 5)};
      options.end = ToClock(*end);
    }
    SCOPED_TRACE(expression);
    StatusOr<Schedule> schedule = Schedule::Parse(expression, options);
    ASSERT_TRUE(schedule.ok()) << schedule.status().ToString();
    // Step from the anchor.
    sys_seconds t = anchor;
    while (t <= after) t += period;
    std::optional<Clock::time_point> want;
    if (!end || t <= *end) want = ToClock(t);
    EXPECT_EQ(schedule->Next(ToClock(after)), want);
  }
}

TEST(ScheduleRandom, GarbageNeverCrashes) {
  Generator gen(7);
  const std::vector<std::string> seeds = {"cron(0 10 * * ? *)",
                                          "cron(0/5 8-17 ? * MON-FRI *)",
                                          "cron(0 9 ? * 2#1 *)",
                                          "cron(15 10 ? * 6L 2022-2023)",
                                          "cron(0 0 LW * ? *)",
                                          "cron(0 0 15W * ? *)",
                                          "cron(0 0 L-3 * ? *)",
                                          "rate(5 minutes)",
                                          "rate(1 day)",
                                          "at(2026-03-08T02:30:00)",
                                          "cron(0 22-2/2 ? * FRI-MON 2026-2030)"};
  const std::string alphabet = "0123456789*/,-?LW#() abcdefghijklmnopqrstuvwxyzJANFEBMONSUNSATTHU\t\x01\xff";
  const std::array<const char*, 4> zones = {"UTC", "America/New_York", "Australia/Lord_Howe",
                                            "Asia/Kathmandu"};
  int parsed = 0;
  for (int i = 0; i < 6000; ++i) {
    std::string text;
    if (i % 3 == 0) {
      const int n = gen.Uniform(0, 40);
      for (int k = 0; k < n; ++k) text += static_cast<char>(gen.Uniform(0, 255));
    } else {
      text = seeds[static_cast<std::size_t>(gen.Uniform(0, static_cast<int>(seeds.size()) - 1))];
      const int edits = gen.Uniform(1, 4);
      for (int e = 0; e < edits; ++e) {
        const auto pos = static_cast<std::size_t>(gen.Uniform(0, static_cast<int>(text.size())));
        const char c =
            alphabet[static_cast<std::size_t>(gen.Uniform(0, static_cast<int>(alphabet.size()) - 1))];
        switch (gen.Uniform(0, 2)) {
          case 0:
            text.insert(pos, 1, c);
            break;
          case 1:
            if (pos < text.size()) text.erase(pos, 1);
            break;
          default:
            if (pos < text.size()) text[pos] = c;
        }
      }
    }
    ScheduleOptions options;
    options.timezone = zones[static_cast<std::size_t>(i) % zones.size()];
    StatusOr<Schedule> schedule = Schedule::Parse(text, options);
    if (!schedule.ok()) {
      EXPECT_EQ(schedule.status().code(), StatusCode::kInvalidArgument) << text;
      EXPECT_FALSE(schedule.status().message().empty());
      for (char c : schedule.status().message()) {
        ASSERT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte in the message for " << text;
      }
      continue;
    }
    ++parsed;
    Clock::time_point after =
        ToClock(sys_seconds{seconds{946684800 + static_cast<std::int64_t>(gen.Uniform(0, 1 << 30))}});
    for (int k = 0; k < 3; ++k) {
      const std::optional<Clock::time_point> next = schedule->Next(after);
      if (!next) break;
      ASSERT_GT(*next, after) << text;
      after = *next;
    }
  }
  EXPECT_GT(parsed, 50);  // the mutations keep some expressions valid
}

}  // namespace
}  // namespace taskpipe
