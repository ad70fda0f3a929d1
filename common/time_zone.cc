#include "common/time_zone.h"
#include "common/quote.h"

#include <date/tz.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

namespace taskpipe {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::local_seconds;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;

// Stand-ins for "forever": far beyond any schedule, yet adding a few days of offsets to them
// cannot overflow.
constexpr sys_seconds kFarPast{seconds{-(std::int64_t{1} << 45)}};
constexpr sys_seconds kFarFuture{seconds{std::int64_t{1} << 45}};

// Where date/tz (USE_OS_TZDB) reads zones from on Debian; we read the TZif footers from the same
// files.
constexpr std::string_view kZoneInfoDir = "/usr/share/zoneinfo/";

// ---- POSIX TZ rules (the TZif footer), e.g. "EST5EDT,M3.2.0,M11.1.0" ----

struct PosixDate {
  enum class Kind { kJulian1, kJulian0, kMonthWeekDay };
  Kind kind = Kind::kMonthWeekDay;
  int n = 0;               // kJulian1: 1-365, Feb 29 never counted. kJulian0: 0-365, Feb 29 counted.
  int month = 0;           // kMonthWeekDay: 1-12
  int week = 0;            // 1-5; 5 = the last such weekday of the month
  int weekday = 0;         // 0 = Sunday
  seconds time{2 * 3600};  // wall time of the transition; may be negative or beyond 24 h
};

struct PosixRule {
  seconds std_offset{0};  // local = UTC + offset (POSIX writes the negation)
  bool has_dst = false;
  seconds dst_offset{0};
  PosixDate start;  // into daylight saving time, in standard wall time
  PosixDate end;    // out of it, in daylight saving wall time

  static sys_days Day(const PosixDate& date, int year);
  TimeZone::Period PeriodAt(sys_seconds t) const;
};

sys_days PosixRule::Day(const PosixDate& date, int y) {
  using namespace std::chrono;  // NOLINT(build/namespaces): calendar literals
  const year yr{y};
  const sys_days jan1{yr / January / 1};
  switch (date.kind) {
    case PosixDate::Kind::kJulian1:
      return jan1 + days{date.n - 1 + (yr.is_leap() && date.n >= 60 ? 1 : 0)};
    case PosixDate::Kind::kJulian0:
      return jan1 + days{date.n};
    case PosixDate::Kind::kMonthWeekDay:
      break;
  }
  const month mo{static_cast<unsigned>(date.month)};
  const sys_days first{yr / mo / 1};
  const int wd1 = static_cast<int>(weekday{first}.c_encoding());
  int day = 1 + (date.weekday - wd1 + 7) % 7 + 7 * (date.week - 1);
  const int dim = static_cast<int>(static_cast<unsigned>((yr / mo / last).day()));
  while (day > dim) day -= 7;
  return first + days{day - 1};
}

TimeZone::Period PosixRule::PeriodAt(sys_seconds t) const {
  if (!has_dst) return {kFarPast, kFarFuture, std_offset};
  const int y = static_cast<int>(std::chrono::year_month_day{std::chrono::floor<days>(t)}.year());
  // Transitions of the years around t's, which bracket t: a rule's transition lies within a week
  // (its time of day is at most ±167 h) of its date, and its two dates are months apart.
  std::array<std::pair<sys_seconds, seconds>, 6> transitions;
  for (int k = 0; k < 3; ++k) {
    const int yy = y - 1 + k;
    transitions[2 * k] = {sys_seconds{Day(start, yy)} + start.time - std_offset, dst_offset};
    transitions[2 * k + 1] = {sys_seconds{Day(end, yy)} + end.time - dst_offset, std_offset};
  }
  std::sort(transitions.begin(), transitions.end());
  auto after = std::upper_bound(transitions.begin(), transitions.end(), t,
                                [](sys_seconds v, const auto& tr) { return v < tr.first; });
  if (after == transitions.begin()) return {kFarPast, after->first, std_offset};  // unreachable
  const auto& current = *std::prev(after);
  return {current.first, after == transitions.end() ? kFarFuture : after->first, current.second};
}

class PosixParser {
 public:
  explicit PosixParser(std::string_view text) : s_(text) {}

  StatusOr<PosixRule> Parse() {
    PosixRule rule;
    TASKPIPE_RETURN_IF_ERROR(Name("standard time name"));
    seconds offset{0};
    TASKPIPE_RETURN_IF_ERROR(Hms(24, &offset, "standard time offset"));
    rule.std_offset = -offset;
    if (AtEnd()) return rule;
    TASKPIPE_RETURN_IF_ERROR(Name("daylight saving time name"));
    rule.has_dst = true;
    rule.dst_offset = rule.std_offset + hours{1};
    if (!AtEnd() && Peek() != ',') {
      TASKPIPE_RETURN_IF_ERROR(Hms(24, &offset, "daylight saving time offset"));
      rule.dst_offset = -offset;
    }
    if (AtEnd()) {
      // POSIX leaves the default rule to the implementation; tzcode uses the US rule.
      rule.start = {PosixDate::Kind::kMonthWeekDay, 0, 3, 2, 0, hours{2}};
      rule.end = {PosixDate::Kind::kMonthWeekDay, 0, 11, 1, 0, hours{2}};
      return rule;
    }
    if (Peek() != ',') return Fail("expected ',' before the start rule");
    ++i_;
    TASKPIPE_RETURN_IF_ERROR(Date(&rule.start));
    if (Peek() != ',') return Fail("expected ',' before the end rule");
    ++i_;
    TASKPIPE_RETURN_IF_ERROR(Date(&rule.end));
    if (!AtEnd()) return Fail("unexpected text after the end rule");
    return rule;
  }

 private:
  Status Fail(std::string_view what) const {
    return InvalidArgumentError("invalid POSIX TZ rule " + QuoteForError(s_) + ": " + std::string(what));
  }
  bool AtEnd() const { return i_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[i_]; }
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  static bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

  Status Name(std::string_view what) {
    if (Peek() == '<') {
      const std::size_t close = s_.find('>', i_);
      if (close == std::string_view::npos) return Fail("unterminated '<' in the " + std::string(what));
      for (std::size_t k = i_ + 1; k < close; ++k) {
        const char c = s_[k];
        if (!IsAlpha(c) && !IsDigit(c) && c != '+' && c != '-')
          return Fail("bad character in the " + std::string(what));
      }
      if (close - i_ - 1 < 1) return Fail("empty " + std::string(what));
      i_ = close + 1;
      return Status::Ok();
    }
    const std::size_t begin = i_;
    while (IsAlpha(Peek())) ++i_;
    if (i_ - begin < 3) return Fail("expected a " + std::string(what) + " of at least 3 letters");
    return Status::Ok();
  }

  Status Number(int max, int* out, std::string_view what) {
    if (!IsDigit(Peek())) return Fail("expected a number for the " + std::string(what));
    long value = 0;
    while (IsDigit(Peek())) {
      value = value * 10 + (s_[i_++] - '0');
      if (value > max) return Fail(std::string(what) + " is out of range");
    }
    *out = static_cast<int>(value);
    return Status::Ok();
  }

  // [+-]h[h][:mm[:ss]]
  Status Hms(int max_hours, seconds* out, std::string_view what) {
    int sign = 1;
    if (Peek() == '+' || Peek() == '-') sign = s_[i_++] == '-' ? -1 : 1;
    int h = 0, m = 0, sec = 0;
    TASKPIPE_RETURN_IF_ERROR(Number(max_hours, &h, what));
    if (Peek() == ':') {
      ++i_;
      TASKPIPE_RETURN_IF_ERROR(Number(59, &m, what));
      if (Peek() == ':') {
        ++i_;
        TASKPIPE_RETURN_IF_ERROR(Number(59, &sec, what));
      }
    }
    *out = seconds{sign * (h * 3600 + m * 60 + sec)};
    return Status::Ok();
  }

  Status Date(PosixDate* date) {
    if (Peek() == 'J') {
      ++i_;
      date->kind = PosixDate::Kind::kJulian1;
      TASKPIPE_RETURN_IF_ERROR(Number(365, &date->n, "Julian day"));
      if (date->n < 1) return Fail("Julian day Jn must be 1-365");
    } else if (Peek() == 'M') {
      ++i_;
      date->kind = PosixDate::Kind::kMonthWeekDay;
      TASKPIPE_RETURN_IF_ERROR(Number(12, &date->month, "month"));
      if (date->month < 1) return Fail("month must be 1-12");
      if (Peek() != '.') return Fail("expected '.' after the month");
      ++i_;
      TASKPIPE_RETURN_IF_ERROR(Number(5, &date->week, "week"));
      if (date->week < 1) return Fail("week must be 1-5");
      if (Peek() != '.') return Fail("expected '.' after the week");
      ++i_;
      TASKPIPE_RETURN_IF_ERROR(Number(6, &date->weekday, "weekday"));
    } else {
      date->kind = PosixDate::Kind::kJulian0;
      TASKPIPE_RETURN_IF_ERROR(Number(365, &date->n, "day of year"));
    }
    if (Peek() == '/') {
      ++i_;
      // RFC 8536 (TZif version 3) allows -167 to 167 hours here.
      TASKPIPE_RETURN_IF_ERROR(Hms(167, &date->time, "transition time"));
    }
    return Status::Ok();
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

// The POSIX TZ string at the end of a TZif (version 2 or later) file, if there is one.
std::optional<std::string> ReadTzifFooter(const std::string& zone_name) {
  std::ifstream in(std::string(kZoneInfoDir) + zone_name, std::ios::binary);
  if (!in) return std::nullopt;
  constexpr std::size_t kMaxSize = 1 << 20;
  std::string data;
  data.resize(kMaxSize);
  in.read(data.data(), static_cast<std::streamsize>(kMaxSize));
  data.resize(static_cast<std::size_t>(in.gcount()));
  if (data.size() < 46 || data.compare(0, 4, "TZif") != 0 || data[4] < '2') return std::nullopt;
  if (data.back() != '\n') return std::nullopt;
  const std::size_t newline = data.rfind('\n', data.size() - 2);
  if (newline == std::string::npos) return std::nullopt;
  std::string footer = data.substr(newline + 1, data.size() - newline - 2);
  if (footer.empty()) return std::nullopt;
  return footer;
}

}  // namespace

struct TimeZone::Rep {
  std::string name;
  const date::time_zone* zone = nullptr;  // null: the zone is `posix` alone, or UTC
  std::optional<PosixRule> posix;         // with `zone`: applies from `posix_from` on
  sys_seconds posix_from = kFarFuture;
};

TimeZone TimeZone::Utc() {
  static const auto* const kUtc = new std::shared_ptr<const Rep>(
      std::make_shared<const Rep>(Rep{"UTC", nullptr, std::nullopt, kFarFuture}));
  return TimeZone(*kUtc);
}

StatusOr<TimeZone> TimeZone::Locate(std::string_view name) {
  if (name == "UTC") return Utc();
  static std::mutex mu;
  static auto* const cache = new std::map<std::string, std::shared_ptr<const Rep>, std::less<>>();
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache->find(name); it != cache->end()) return TimeZone(it->second);

  auto rep = std::make_shared<Rep>();
  rep->name = std::string(name);
  try {
    rep->zone = date::locate_zone(name);
    // Loads the zone's data now, so that later lookups cannot fail.
    const sys_seconds far{sys_days{std::chrono::year{2400} / 1 / 1}};
    const date::sys_info last = rep->zone->get_info(far);
    if (last.end > far) {
      // The last listed transition is behind us at `last.begin`; the footer rule says what the
      // zone does afterwards. Used only if it agrees with the listed data where they meet.
      if (std::optional<std::string> footer = ReadTzifFooter(rep->zone->name())) {
        StatusOr<PosixRule> rule = PosixParser(*footer).Parse();
        if (rule.ok() && rule->has_dst && rule->PeriodAt(last.begin).offset == last.offset) {
          rep->posix = *rule;
          rep->posix_from = last.begin;
        }
      }
    }
  } catch (const std::exception&) {
    return InvalidArgumentError("unknown time zone " + QuoteForError(name));
  }
  cache->emplace(rep->name, rep);
  return TimeZone(std::move(rep));
}

StatusOr<TimeZone> TimeZone::FromPosixRule(std::string_view rule) {
  StatusOr<PosixRule> parsed = PosixParser(rule).Parse();
  if (!parsed.ok()) return parsed.status();
  auto rep = std::make_shared<Rep>();
  rep->name = std::string(rule);
  rep->posix = *parsed;
  return TimeZone(std::move(rep));
}

const std::string& TimeZone::name() const { return rep_->name; }

TimeZone::Period TimeZone::PeriodAt(sys_seconds t) const {
  const Rep& rep = *rep_;
  if (rep.zone == nullptr) {
    if (rep.posix) return rep.posix->PeriodAt(t);
    return {kFarPast, kFarFuture, seconds{0}};
  }
  if (rep.posix && t >= rep.posix_from) {
    Period period = rep.posix->PeriodAt(t);
    period.begin = std::max(period.begin, rep.posix_from);
    return period;
  }
  const date::sys_info info = rep.zone->get_info(t);
  return {std::max(info.begin, kFarPast), std::min(info.end, kFarFuture), info.offset};
}

TimeZone::Resolution TimeZone::Resolve(local_seconds wall) const {
  // Every solution t of wall = t + offset(t) lies within a day and a bit of `wall` read as UTC,
  // since offsets stay within ±26 h. Walk the periods that overlap that window.
  const seconds l = wall.time_since_epoch();
  const sys_seconds hi{l + hours{27}};
  std::optional<sys_seconds> first, second, gap_end;
  sys_seconds t{l - hours{27}};
  for (int guard = 0; guard < 64; ++guard) {
    const Period period = PeriodAt(t);
    const sys_seconds candidate{l - period.offset};
    if (period.begin <= candidate && candidate < period.end) {
      if (!first) {
        first = candidate;
      } else if (candidate != *first && !second) {
        second = candidate;
      }
    } else if (!first && !gap_end && period.begin.time_since_epoch() + period.offset > l) {
      gap_end = period.begin;  // the first period whose wall clock starts after `wall`
    }
    if (period.end > hi) break;
    t = std::max(period.end, t + seconds{1});
  }
  if (first && second) return {Resolution::Kind::kRepeated, *first, *second};
  if (first) return {Resolution::Kind::kUnique, *first, *first};
  const sys_seconds end = gap_end.value_or(hi);
  return {Resolution::Kind::kSkipped, end, end};
}

}  // namespace taskpipe
