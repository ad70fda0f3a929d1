#include "producer/schedule.h"
#include "common/quote.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <limits>

#include "common/time_format.h"
#include "common/time_zone.h"

namespace taskpipe {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::local_days;
using std::chrono::local_seconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;
using std::chrono::system_clock;
using time_point = system_clock::time_point;

constexpr int kMinYear = 1970;
constexpr int kMaxYear = 2199;

// ---- text helpers ----

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool AllDigits(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit); }
bool AllAlpha(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsAlpha); }
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (Upper(a[i]) != Upper(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitSpace(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    const std::size_t begin = i;
    while (i < s.size() && !IsSpace(s[i])) ++i;
    if (i > begin) out.push_back(s.substr(begin, i - begin));
  }
  return out;
}

// The value of a string of at most 9 digits; -1 if longer (callers report it as out of range, so
// "99999999999" is an ordinary error, not an overflow).
long SmallNumber(std::string_view digits) {
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  if (digits.size() > 9) return -1;
  long value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  return value;
}

// ---- calendar helpers ----

int DaysInMonth(int y, unsigned m) {
  const std::chrono::year_month_day_last last{std::chrono::year{y} / std::chrono::month{m} /
                                              std::chrono::last};
  return static_cast<int>(static_cast<unsigned>(last.day()));
}

// 0 = Sunday.
int Weekday(int y, unsigned m, int d) {
  const sys_days day{std::chrono::year{y} / std::chrono::month{m} /
                     std::chrono::day{static_cast<unsigned>(d)}};
  return static_cast<int>(std::chrono::weekday{day}.c_encoding());
}

// The lowest set bit of `bits` at or above `from`, or -1.
int NextBit(std::uint64_t bits, int from) {
  if (from >= 64) return -1;
  const std::uint64_t rest = bits & (~std::uint64_t{0} << from);
  return rest == 0 ? -1 : std::countr_zero(rest);
}

// ---- cron fields ----

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

enum class FieldId { kMinutes, kHours, kDayOfMonth, kMonth, kDayOfWeek, kYear };

struct FieldDef {
  FieldId id;
  const char* name;
  int min;
  int max;
  const std::string_view* names;  // names[i] is the value min + i
  std::size_t name_count;
  const char* range;  // for messages
  bool wraps;         // whether a range may run past the maximum back to the minimum
};

constexpr FieldDef kMinutesField{FieldId::kMinutes, "minutes", 0, 59, nullptr, 0, "0-59", true};
constexpr FieldDef kHoursField{FieldId::kHours, "hours", 0, 23, nullptr, 0, "0-23", true};
constexpr FieldDef kDayOfMonthField{FieldId::kDayOfMonth, "day-of-month", 1, 31, nullptr, 0, "1-31", true};
constexpr FieldDef kMonthField{FieldId::kMonth,     "month", 1, 12, kMonthNames.data(), kMonthNames.size(),
                               "1-12 (or JAN-DEC)", true};
constexpr FieldDef kDayOfWeekField{FieldId::kDayOfWeek, "day-of-week",   1,   7, kDayNames.data(),
                                   kDayNames.size(),    "1-7 (1 = SUN)", true};
constexpr FieldDef kYearField{FieldId::kYear, "year", kMinYear, kMaxYear, nullptr, 0, "1970-2199", false};

// Values of one field, bit (value - min).
struct ValueSet {
  std::array<std::uint64_t, 4> words{};
  void Add(int index) { words[static_cast<std::size_t>(index) / 64] |= std::uint64_t{1} << (index % 64); }
};

Status FieldError(const FieldDef& field, std::string_view message) {
  return InvalidArgumentError("cron " + std::string(field.name) + ": " + std::string(message));
}

bool IsDayField(const FieldDef& field) {
  return field.id == FieldId::kDayOfMonth || field.id == FieldId::kDayOfWeek;
}

// The name's value, or -1.
int LookupName(const FieldDef& field, std::string_view word) {
  for (std::size_t i = 0; i < field.name_count; ++i) {
    if (EqualsIgnoreCase(word, field.names[i])) return field.min + static_cast<int>(i);
  }
  return -1;
}

// One value: a number or (month, day-of-week) a name.
StatusOr<int> ParseValue(const FieldDef& field, std::string_view token, std::string_view item) {
  if (token.empty()) return FieldError(field, "missing a value in " + QuoteForError(item));
  if (AllDigits(token)) {
    const long value = SmallNumber(token);
    if (value < field.min || value > field.max) {
      return FieldError(field, std::string(token) + " is out of range " + field.range);
    }
    return static_cast<int>(value);
  }
  if (AllAlpha(token)) {
    const int value = LookupName(field, token);
    if (value >= 0) return value;
    if (field.id == FieldId::kMonth)
      return FieldError(field, QuoteForError(token) + " is not a month (1-12 or JAN-DEC)");
    if (field.id == FieldId::kDayOfWeek) {
      return FieldError(field, QuoteForError(token) + " is not a day of the week (1-7 or SUN-SAT)");
    }
    return FieldError(field, "unexpected " + QuoteForError(token) + " (expected a number " + field.range + ")");
  }
  for (char c : token) {
    if (!IsDigit(c) && !IsAlpha(c)) {
      return FieldError(field,
                        "unexpected character " + QuoteForError(std::string_view(&c, 1)) + " in " + QuoteForError(item));
    }
  }
  return FieldError(field, "unexpected " + QuoteForError(token) + " in " + QuoteForError(item));
}

// Reports the special characters ? # L W where the field or position does not allow them.
Status CheckSpecials(const FieldDef& field, std::string_view item) {
  if (item.find('?') != std::string_view::npos) {
    if (IsDayField(field)) return FieldError(field, "'?' must stand alone (it means \"no specific value\")");
    return FieldError(field, "'?' is only allowed in day-of-month and day-of-week");
  }
  if (item.find('#') != std::string_view::npos) {
    if (field.id == FieldId::kDayOfWeek) {
      return FieldError(field, QuoteForError(item) + ": n#k must stand alone (only one n#k expression is allowed)");
    }
    return FieldError(field, "'#' is only allowed in day-of-week");
  }
  // L and W are letters, so look at each run of letters that is not a name of this field.
  for (std::size_t i = 0; i < item.size();) {
    if (!IsAlpha(item[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < item.size() && IsAlpha(item[j])) ++j;
    const std::string_view word = item.substr(i, j - i);
    i = j;
    if (LookupName(field, word) >= 0) continue;
    const char last = Upper(word.back());
    const std::string_view prefix = word.substr(0, word.size() - 1);
    const bool special = EqualsIgnoreCase(word, "L") || EqualsIgnoreCase(word, "W") ||
                         EqualsIgnoreCase(word, "LW") ||
                         ((last == 'L' || last == 'W') && LookupName(field, prefix) >= 0);
    if (!special) continue;  // ParseValue reports it
    const bool is_l = last == 'L' || EqualsIgnoreCase(word, "LW");
    switch (field.id) {
      case FieldId::kDayOfMonth:
        if (is_l && !EqualsIgnoreCase(word, "LW")) {
          return FieldError(
              field,
              QuoteForError(item) + " is not valid: L stands alone, as L, L-n or LW (nL belongs in day-of-week)");
        }
        return FieldError(field, QuoteForError(item) + " is not valid: W stands alone, as nW (n = 1-31) or LW");
      case FieldId::kDayOfWeek:
        if (is_l)
          return FieldError(field, QuoteForError(item) + " is not valid: L stands alone, as L or nL (e.g. 6L)");
        return FieldError(field, "'W' is only allowed in day-of-month");
      default:
        if (is_l) return FieldError(field, "'L' is only allowed in day-of-month and day-of-week");
        return FieldError(field, "'W' is only allowed in day-of-month");
    }
  }
  return Status::Ok();
}

// One comma-separated item: *, */s, v, v/s, a-b, a-b/s.
Status ParseItem(const FieldDef& field, std::string_view item, ValueSet* set) {
  TASKPIPE_RETURN_IF_ERROR(CheckSpecials(field, item));
  const int size = field.max - field.min + 1;
  std::string_view base = item;
  int step = 1;
  bool has_step = false;
  if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
    base = item.substr(0, slash);
    const std::string_view step_text = item.substr(slash + 1);
    if (step_text.find('/') != std::string_view::npos)
      return FieldError(field, "more than one '/' in " + QuoteForError(item));
    if (step_text.empty()) return FieldError(field, "missing the increment after '/' in " + QuoteForError(item));
    if (!AllDigits(step_text))
      return FieldError(field, "the increment in " + QuoteForError(item) + " must be a number");
    const long value = SmallNumber(step_text);
    if (value < 1 || value > size) {
      return FieldError(field, "the increment " + std::string(step_text) + " in " + QuoteForError(item) +
                                   " is out of range 1-" + std::to_string(size));
    }
    step = static_cast<int>(value);
    has_step = true;
  }
  if (base.empty()) return FieldError(field, "missing a value before '/' in " + QuoteForError(item));

  int lo = field.min;
  int hi = field.max;
  if (base != "*") {
    if (base.find('*') != std::string_view::npos)
      return FieldError(field, "'*' must stand alone or as */n in " + QuoteForError(item));
    const std::size_t dash = base.find('-');
    if (dash != std::string_view::npos) {
      if (dash == 0) return FieldError(field, "missing a value before '-' in " + QuoteForError(item));
      const std::string_view right = base.substr(dash + 1);
      if (right.empty()) return FieldError(field, "missing a value after '-' in " + QuoteForError(item));
      if (right.find('-') != std::string_view::npos)
        return FieldError(field, "more than one '-' in " + QuoteForError(item));
      StatusOr<int> a = ParseValue(field, base.substr(0, dash), item);
      if (!a.ok()) return a.status();
      StatusOr<int> b = ParseValue(field, right, item);
      if (!b.ok()) return b.status();
      lo = *a;
      hi = *b;
      if (lo > hi && !field.wraps) {
        return FieldError(
            field, "the range " + QuoteForError(base) + " runs backwards (" + field.name + " ranges cannot wrap)");
      }
    } else {
      StatusOr<int> a = ParseValue(field, base, item);
      if (!a.ok()) return a.status();
      lo = *a;
      hi = has_step ? field.max : *a;  // "v/s" runs from v to the maximum
    }
  }
  // Walk from lo to hi (past the maximum back to the minimum if hi < lo) in steps.
  const int distance = ((hi - lo) % size + size) % size;
  for (int k = 0; k <= distance; k += step) set->Add((lo - field.min + k) % size);
  return Status::Ok();
}

Status ParseList(const FieldDef& field, std::string_view text, ValueSet* set) {
  std::size_t begin = 0;
  while (true) {
    const std::size_t comma = text.find(',', begin);
    const std::string_view item =
        text.substr(begin, comma == std::string_view::npos ? text.npos : comma - begin);
    if (item.empty()) return FieldError(field, "empty item in the list " + QuoteForError(text));
    TASKPIPE_RETURN_IF_ERROR(ParseItem(field, item, set));
    if (comma == std::string_view::npos) return Status::Ok();
    begin = comma + 1;
  }
}

// How days are chosen: by day-of-month (day-of-week is '?') or by day-of-week (day-of-month is '?').
enum class DayRule {
  kDomSet,             // listed days of the month
  kDomLast,            // L, L-n: the last day of the month, minus arg
  kDomLastWeekday,     // LW
  kDomNearestWeekday,  // nW: the weekday nearest to day arg, within the month
  kDowSet,             // listed days of the week
  kDowLast,            // nL: the last weekday `weekday` of the month
  kDowNth,             // n#k: the arg-th weekday `weekday` of the month
};

struct CronSpec {
  std::uint64_t minute_bits = 0;             // bit m
  std::uint64_t hour_bits = 0;               // bit h
  std::uint32_t month_bits = 0;              // bit m, 1-12
  std::array<std::uint64_t, 4> year_bits{};  // bit (y - 1970)
  DayRule day_rule = DayRule::kDomSet;
  std::uint32_t dom_set = 0;                 // kDomSet: bit d, 1-31
  std::array<std::uint32_t, 7> dow_masks{};  // kDowSet: days of a month whose 1st is weekday i
  int arg = 0;
  int weekday = 0;  // 0 = Sunday

  int NextYear(int y) const {
    if (y < kMinYear) y = kMinYear;
    for (int index = y - kMinYear; index <= kMaxYear - kMinYear;) {
      const int bit = NextBit(year_bits[static_cast<std::size_t>(index / 64)], index % 64);
      if (bit >= 0) return kMinYear + index / 64 * 64 + bit;
      index = (index / 64 + 1) * 64;
    }
    return -1;
  }

  // The days (bit d) of month m of year y on which the schedule fires.
  std::uint32_t DayMask(int y, unsigned m) const {
    const int dim = DaysInMonth(y, m);
    const std::uint32_t full = dim == 31 ? 0xFFFFFFFEu : ((std::uint32_t{1} << (dim + 1)) - 2u);
    switch (day_rule) {
      case DayRule::kDomSet:
        return dom_set & full;
      case DayRule::kDomLast: {
        const int d = dim - arg;
        return d >= 1 ? std::uint32_t{1} << d : 0u;
      }
      case DayRule::kDomLastWeekday: {
        const int wd = Weekday(y, m, dim);
        const int d = dim - (wd == 6 ? 1 : wd == 0 ? 2 : 0);
        return std::uint32_t{1} << d;
      }
      case DayRule::kDomNearestWeekday: {
        const int n = arg;
        if (n > dim) return 0u;  // the month has no such day, as for a plain day number
        const int wd = Weekday(y, m, n);
        int d = n;
        if (wd == 6) d = n == 1 ? 3 : n - 1;        // Saturday: Friday before, or Monday 3rd
        if (wd == 0) d = n == dim ? n - 2 : n + 1;  // Sunday: Monday after, or Friday before
        return std::uint32_t{1} << d;
      }
      case DayRule::kDowSet:
        return dow_masks[static_cast<std::size_t>(Weekday(y, m, 1))] & full;
      case DayRule::kDowLast: {
        const int wd_last = (Weekday(y, m, 1) + dim - 1) % 7;
        return std::uint32_t{1} << (dim - (wd_last - weekday + 7) % 7);
      }
      case DayRule::kDowNth: {
        const int d = 1 + (weekday - Weekday(y, m, 1) + 7) % 7 + 7 * (arg - 1);
        return d <= dim ? std::uint32_t{1} << d : 0u;
      }
    }
    return 0u;
  }

  // The first wall-clock minute at or after `from` that the fields name, up to the end of 2199.
  // Skips whole years, months, days and hours that cannot match.
  std::optional<local_seconds> NextWall(local_seconds from) const {
    const auto start = std::chrono::ceil<minutes>(from);
    const local_days start_day = std::chrono::floor<days>(start);
    const std::chrono::year_month_day ymd{start_day};
    int y0 = static_cast<int>(ymd.year());
    unsigned m0 = static_cast<unsigned>(ymd.month());
    int d0 = static_cast<int>(static_cast<unsigned>(ymd.day()));
    const auto minute_of_day = std::chrono::duration_cast<minutes>(start - start_day).count();
    int h0 = static_cast<int>(minute_of_day / 60);
    int mi0 = static_cast<int>(minute_of_day % 60);
    if (y0 > kMaxYear) return std::nullopt;
    if (y0 < kMinYear) {
      y0 = kMinYear;
      m0 = 1;
      d0 = 1;
      h0 = 0;
      mi0 = 0;
    }
    for (int y = NextYear(y0); y >= 0; y = NextYear(y + 1)) {
      for (unsigned m = y == y0 ? m0 : 1; m <= 12; ++m) {
        if ((month_bits >> m & 1u) == 0) continue;
        const bool first_month = y == y0 && m == m0;
        std::uint32_t mask = DayMask(y, m);
        if (first_month) mask &= ~std::uint32_t{0} << d0;
        for (; mask != 0; mask &= mask - 1) {
          const int d = std::countr_zero(mask);
          const bool first_day = first_month && d == d0;
          int h = NextBit(hour_bits, first_day ? h0 : 0);
          if (h < 0) continue;
          int mi = NextBit(minute_bits, first_day && h == h0 ? mi0 : 0);
          if (mi < 0) {
            h = NextBit(hour_bits, h + 1);
            if (h < 0) continue;
            mi = NextBit(minute_bits, 0);
          }
          const local_days day{std::chrono::year{y} / std::chrono::month{m} /
                               std::chrono::day{static_cast<unsigned>(d)}};
          return local_seconds{day} + hours{h} + minutes{mi};
        }
      }
    }
    return std::nullopt;
  }
};

StatusOr<std::uint64_t> ParseBits(const FieldDef& field, std::string_view text) {
  ValueSet set;
  TASKPIPE_RETURN_IF_ERROR(ParseList(field, text, &set));
  return set.words[0] << field.min;  // minutes, hours, months: value v is bit v
}

// Day-of-month: '?', L, L-n, LW, nW or a list.
Status ParseDayOfMonth(std::string_view text, CronSpec* spec) {
  const FieldDef& field = kDayOfMonthField;
  if (EqualsIgnoreCase(text, "L")) {
    spec->day_rule = DayRule::kDomLast;
    spec->arg = 0;
    return Status::Ok();
  }
  if (EqualsIgnoreCase(text, "LW")) {
    spec->day_rule = DayRule::kDomLastWeekday;
    return Status::Ok();
  }
  if (text.size() >= 2 && Upper(text[0]) == 'L' && text[1] == '-') {
    const std::string_view n = text.substr(2);
    const long value = AllDigits(n) ? SmallNumber(n) : -2;
    if (value == -2)
      return FieldError(field, QuoteForError(text) + ": expected L-n, n a number of days before the last");
    if (value < 0 || value > 30)
      return FieldError(field, QuoteForError(text) + ": the offset from the last day must be 0-30");
    spec->day_rule = DayRule::kDomLast;
    spec->arg = static_cast<int>(value);
    return Status::Ok();
  }
  if (EqualsIgnoreCase(text, "W")) return FieldError(field, "W needs a day number, as in 15W (or LW)");
  if (text.size() >= 2 && Upper(text.back()) == 'W' && AllDigits(text.substr(0, text.size() - 1))) {
    StatusOr<int> day = ParseValue(field, text.substr(0, text.size() - 1), text);
    if (!day.ok()) return day.status();
    spec->day_rule = DayRule::kDomNearestWeekday;
    spec->arg = *day;
    return Status::Ok();
  }
  ValueSet set;
  TASKPIPE_RETURN_IF_ERROR(ParseList(field, text, &set));
  spec->day_rule = DayRule::kDomSet;
  spec->dom_set = static_cast<std::uint32_t>(set.words[0] << 1);
  return Status::Ok();
}

// Day-of-week: '?', L, nL, n#k or a list; 1 = SUN.
Status ParseDayOfWeek(std::string_view text, CronSpec* spec) {
  const FieldDef& field = kDayOfWeekField;
  if (EqualsIgnoreCase(text, "L")) text = "7";  // alone, L is the last day of the week: Saturday
  if (const std::size_t hash = text.find('#'); hash != std::string_view::npos) {
    if (text.find(',') != std::string_view::npos) {
      return FieldError(field, QuoteForError(text) + ": n#k must stand alone (only one n#k expression is allowed)");
    }
    const std::string_view day_text = text.substr(0, hash);
    const std::string_view nth_text = text.substr(hash + 1);
    if (day_text.empty()) return FieldError(field, QuoteForError(text) + ": missing the day before '#'");
    StatusOr<int> day = ParseValue(field, day_text, text);
    if (!day.ok()) return day.status();
    if (!AllDigits(nth_text)) return FieldError(field, QuoteForError(text) + ": expected a number 1-5 after '#'");
    const long nth = SmallNumber(nth_text);
    if (nth < 1 || nth > 5) return FieldError(field, QuoteForError(text) + ": the occurrence after '#' must be 1-5");
    spec->day_rule = DayRule::kDowNth;
    spec->weekday = *day - 1;
    spec->arg = static_cast<int>(nth);
    return Status::Ok();
  }
  if (text.size() >= 2 && Upper(text.back()) == 'L') {
    const std::string_view day_text = text.substr(0, text.size() - 1);
    if (AllDigits(day_text) || LookupName(field, day_text) >= 0) {
      StatusOr<int> day = ParseValue(field, day_text, text);
      if (!day.ok()) return day.status();
      spec->day_rule = DayRule::kDowLast;
      spec->weekday = *day - 1;
      return Status::Ok();
    }
  }
  ValueSet set;
  TASKPIPE_RETURN_IF_ERROR(ParseList(field, text, &set));
  const auto weekdays = static_cast<std::uint32_t>(set.words[0]);  // bit w, 0 = Sunday
  for (int first = 0; first < 7; ++first) {
    std::uint32_t mask = 0;
    for (int d = 1; d <= 31; ++d) {
      if (weekdays >> ((first + d - 1) % 7) & 1u) mask |= std::uint32_t{1} << d;
    }
    spec->dow_masks[static_cast<std::size_t>(first)] = mask;
  }
  spec->day_rule = DayRule::kDowSet;
  return Status::Ok();
}

StatusOr<CronSpec> ParseCron(std::string_view body) {
  const std::vector<std::string_view> fields = SplitSpace(body);
  if (fields.size() != 6) {
    return InvalidArgumentError(
        "cron: expected 6 fields (minutes hours day-of-month month day-of-week year), got " +
        std::to_string(fields.size()));
  }
  CronSpec spec;
  StatusOr<std::uint64_t> bits = ParseBits(kMinutesField, fields[0]);
  if (!bits.ok()) return bits.status();
  spec.minute_bits = *bits;
  bits = ParseBits(kHoursField, fields[1]);
  if (!bits.ok()) return bits.status();
  spec.hour_bits = *bits;

  const bool dom_any = fields[2] == "?";
  const bool dow_any = fields[4] == "?";
  if (!dom_any) TASKPIPE_RETURN_IF_ERROR(ParseDayOfMonth(fields[2], &spec));

  bits = ParseBits(kMonthField, fields[3]);
  if (!bits.ok()) return bits.status();
  spec.month_bits = static_cast<std::uint32_t>(*bits);

  CronSpec dow_spec;
  if (!dow_any) TASKPIPE_RETURN_IF_ERROR(ParseDayOfWeek(fields[4], &dow_spec));

  ValueSet years;
  TASKPIPE_RETURN_IF_ERROR(ParseList(kYearField, fields[5], &years));
  spec.year_bits = years.words;

  if (dom_any == dow_any) {
    return InvalidArgumentError("cron: exactly one of day-of-month and day-of-week must be '?'");
  }
  if (dom_any) {
    spec.day_rule = dow_spec.day_rule;
    spec.dow_masks = dow_spec.dow_masks;
    spec.weekday = dow_spec.weekday;
    spec.arg = dow_spec.arg;
  }
  return spec;
}

// ---- rate ----

struct RateSpec {
  system_clock::duration period;
};

StatusOr<RateSpec> ParseRate(std::string_view body) {
  const std::vector<std::string_view> parts = SplitSpace(body);
  if (parts.size() != 2) {
    return InvalidArgumentError("rate: expected rate(value unit), e.g. rate(5 minutes), got " +
                                QuoteForError("rate(" + std::string(body) + ")"));
  }
  const std::string_view value_text = parts[0];
  const std::string_view unit = parts[1];
  if (!AllDigits(value_text)) {
    return InvalidArgumentError("rate: value must be a whole number of at least 1, got " + QuoteForError(value_text));
  }
  const long value = SmallNumber(value_text);
  if (value == 0) return InvalidArgumentError("rate: value must be at least 1, got " + QuoteForError(value_text));

  struct Unit {
    std::string_view singular, plural;
    long seconds, max_value;
  };
  // At most 100 years (36,500 days) between fires, which keeps all arithmetic far from overflow.
  constexpr std::array<Unit, 3> kUnits = {Unit{"minute", "minutes", 60, 36500L * 1440},
                                          Unit{"hour", "hours", 3600, 36500L * 24},
                                          Unit{"day", "days", 86400, 36500L}};
  for (const Unit& u : kUnits) {
    if (unit != u.singular && unit != u.plural) continue;
    if (value < 0 || value > u.max_value) {
      return InvalidArgumentError("rate: " + std::string(value_text) + " " + std::string(unit) +
                                  " is too long (at most 36500 days)");
    }
    if (unit == u.singular && value != 1) {
      return InvalidArgumentError("rate: the unit is plural for values other than 1: rate(" +
                                  std::to_string(value) + " " + std::string(u.plural) + ")");
    }
    return RateSpec{std::chrono::duration_cast<system_clock::duration>(seconds{value * u.seconds})};
  }
  return InvalidArgumentError("rate: unit must be minute(s), hour(s) or day(s), got " + QuoteForError(unit));
}

// ---- at ----

StatusOr<local_seconds> ParseAtWall(std::string_view body) {
  const auto bad_format = [&] {
    return InvalidArgumentError("at: expected at(yyyy-mm-ddThh:mm:ss), got " +
                                QuoteForError("at(" + std::string(body) + ")"));
  };
  constexpr std::string_view kPattern = "dddd-dd-ddTdd:dd:dd";
  if (body.size() != kPattern.size()) return bad_format();
  for (std::size_t i = 0; i < kPattern.size(); ++i) {
    if (kPattern[i] == 'd' ? !IsDigit(body[i]) : body[i] != kPattern[i]) return bad_format();
  }
  const auto num = [&](std::size_t pos, std::size_t len) {
    return static_cast<int>(SmallNumber(body.substr(pos, len)));
  };
  const int y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), s = num(17, 2);
  if (y < kMinYear || y > kMaxYear) {
    return InvalidArgumentError("at: year " + std::to_string(y) + " is out of range 1970-2199");
  }
  if (mo < 1 || mo > 12)
    return InvalidArgumentError("at: month " + std::string(body.substr(5, 2)) + " is out of range 01-12");
  const int dim = DaysInMonth(y, static_cast<unsigned>(mo));
  if (d < 1 || d > dim) {
    return InvalidArgumentError("at: day " + std::string(body.substr(8, 2)) + " is out of range for " +
                                std::string(body.substr(0, 7)) + " (01-" + std::to_string(dim) + ")");
  }
  if (h > 23)
    return InvalidArgumentError("at: hour " + std::string(body.substr(11, 2)) + " is out of range 00-23");
  if (mi > 59)
    return InvalidArgumentError("at: minute " + std::string(body.substr(14, 2)) + " is out of range 00-59");
  if (s > 59)
    return InvalidArgumentError("at: second " + std::string(body.substr(17, 2)) + " is out of range 00-59");
  const local_days day{std::chrono::year{y} / std::chrono::month{static_cast<unsigned>(mo)} /
                       std::chrono::day{static_cast<unsigned>(d)}};
  return local_seconds{day} + hours{h} + minutes{mi} + seconds{s};
}

std::string FormatWallHm(local_seconds wall) {
  const auto minute_of_day =
      std::chrono::duration_cast<minutes>(wall - std::chrono::floor<days>(wall)).count();
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d:%02d", static_cast<int>(minute_of_day / 60),
                static_cast<int>(minute_of_day % 60));
  return buf;
}

time_point ToTimePoint(sys_seconds t) {
  return time_point{std::chrono::duration_cast<system_clock::duration>(t.time_since_epoch())};
}

}  // namespace

struct Schedule::Rep {
  explicit Rep(TimeZone z) : zone(std::move(z)) {}

  Kind kind = Kind::kCron;
  std::string expression;
  TimeZone zone;
  std::optional<time_point> start;
  std::optional<time_point> end;
  // rate()
  system_clock::duration rate_period{};
  time_point anchor{};
  // at()
  time_point at{};
  // cron()
  CronSpec cron;

  std::optional<time_point> NextRate(time_point after) const;
  std::optional<time_point> NextCron(time_point after) const;
};

StatusOr<Schedule> Schedule::Parse(std::string_view expression, const ScheduleOptions& options) {
  const std::string_view text = Trim(expression);
  if (text.empty()) return InvalidArgumentError("schedule expression is empty");
  const std::size_t open = text.find('(');
  const std::string_view keyword = text.substr(0, open);
  Kind kind;
  if (keyword == "rate") {
    kind = Kind::kRate;
  } else if (keyword == "cron") {
    kind = Kind::kCron;
  } else if (keyword == "at") {
    kind = Kind::kAt;
  } else {
    return InvalidArgumentError("schedule expression must be rate(...), cron(...) or at(...), got " +
                                QuoteForError(text));
  }
  const std::string name(keyword);
  if (open == std::string_view::npos)
    return InvalidArgumentError(name + ": missing '(' after " + QuoteForError(keyword));
  if (text.back() != ')') return InvalidArgumentError(name + ": missing ')' at the end of " + QuoteForError(text));
  const std::string_view body = text.substr(open + 1, text.size() - open - 2);
  if (body.find_first_of("()") != std::string_view::npos) {
    return InvalidArgumentError(name + ": unexpected parenthesis inside " + QuoteForError(text));
  }

  std::optional<RateSpec> rate;
  std::optional<CronSpec> cron;
  std::optional<local_seconds> at_wall;
  if (kind == Kind::kRate) {
    StatusOr<RateSpec> parsed = ParseRate(body);
    if (!parsed.ok()) return parsed.status();
    rate = *parsed;
  } else if (kind == Kind::kCron) {
    StatusOr<CronSpec> parsed = ParseCron(body);
    if (!parsed.ok()) return parsed.status();
    cron = *parsed;
  } else {
    StatusOr<local_seconds> parsed = ParseAtWall(body);
    if (!parsed.ok()) return parsed.status();
    at_wall = *parsed;
  }

  StatusOr<TimeZone> zone = TimeZone::Locate(options.timezone);
  if (!zone.ok()) return zone.status();
  auto rep = std::make_shared<Rep>(*zone);
  rep->kind = kind;
  rep->expression = std::string(text);

  if (kind != Kind::kAt) {
    // at() ignores StartDate and EndDate, as in AWS.
    if (options.start && options.end && *options.start > *options.end) {
      return InvalidArgumentError("schedule start " + FormatRfc3339Utc(*options.start) + " is after end " +
                                  FormatRfc3339Utc(*options.end));
    }
    rep->start = options.start;
    rep->end = options.end;
  }
  if (rate) {
    rep->rate_period = rate->period;
    rep->anchor = options.start ? *options.start : options.created_at.value_or(time_point{});
  }
  if (cron) rep->cron = *cron;
  if (at_wall) {
    const TimeZone::Resolution r = rep->zone.Resolve(*at_wall);
    if (r.kind == TimeZone::Resolution::Kind::kSkipped) {
      const local_seconds gap_from{r.first.time_since_epoch() + rep->zone.OffsetAt(r.first - seconds{1})};
      const local_seconds gap_to = rep->zone.ToLocal(r.first);
      return InvalidArgumentError("at: " + std::string(Trim(body)) + " does not exist in " +
                                  rep->zone.name() + ": clocks jump from " + FormatWallHm(gap_from) + " to " +
                                  FormatWallHm(gap_to) + " that day (daylight saving time)");
    }
    rep->at = ToTimePoint(r.first);  // a repeated wall time fires at its first occurrence
  }
  return Schedule(std::move(rep));
}

std::optional<time_point> Schedule::Rep::NextRate(time_point after) const {
  if (end && after >= *end) return std::nullopt;
  time_point t = anchor;
  if (after >= anchor) {
    // anchor + k * period for the least k with a result > after, in unsigned arithmetic so that
    // no intermediate value overflows.
    using U = std::uint64_t;
    using R = system_clock::duration::rep;
    const U diff =
        static_cast<U>(after.time_since_epoch().count()) - static_cast<U>(anchor.time_since_epoch().count());
    const U step = static_cast<U>(rate_period.count());
    const U k = diff / step + 1;
    if (k > std::numeric_limits<U>::max() / step) return std::nullopt;
    const U offset = k * step;
    const U room =
        static_cast<U>(std::numeric_limits<R>::max()) - static_cast<U>(anchor.time_since_epoch().count());
    if (offset > room) return std::nullopt;
    t = time_point{
        system_clock::duration{static_cast<R>(static_cast<U>(anchor.time_since_epoch().count()) + offset)}};
  }
  if (end && t > *end) return std::nullopt;
  return t;
}

std::optional<time_point> Schedule::Rep::NextCron(time_point after) const {
  if (end && after >= *end) return std::nullopt;
  // The first fire t with t > after and t >= start. Fire times are whole seconds, so t > from
  // exactly when t > floor(from).
  time_point from = after;
  if (start && *start > after) from = *start - system_clock::duration{1};
  sys_seconds from_s = std::chrono::floor<seconds>(from);
  // Wall times run from 1970-01-01 to 2199-12-31; offsets stay within a day of UTC.
  const sys_seconds kLowest{sys_days{std::chrono::year{1969} / 12 / 30}};
  const sys_seconds kHighest{sys_days{std::chrono::year{2200} / 1 / 3}};
  if (from_s >= kHighest) return std::nullopt;
  from_s = std::max(from_s, kLowest);

  // Daylight saving time, per the Scheduler user guide
  // (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#daylist-savings-time):
  // "if a cron expression falls on a non-existent date and time, your schedule invocation is
  // skipped"; in the fall "your schedule runs only once and does not repeat its invocation".
  //
  // Candidates are wall-clock minutes in increasing order. Reading each at its first occurrence
  // keeps instants in increasing order too, so the first accepted candidate is the answer.
  TimeZone::Period period = zone.PeriodAt(from_s);
  local_seconds search =
      std::chrono::floor<minutes>(local_seconds{from_s.time_since_epoch() + period.offset}) + minutes{1};
  // Each rejected candidate is in a spring-forward gap (at most a couple a year) or is the first
  // occurrence of a wall time repeated after `from` (at most one overlap's worth of minutes), so
  // this bound is never reached; it only guarantees termination.
  for (int guard = 0; guard < 100000; ++guard) {
    const std::optional<local_seconds> wall = cron.NextWall(search);
    if (!wall) return std::nullopt;
    sys_seconds t{wall->time_since_epoch() - period.offset};
    // Fast path: well inside the period we already know, the wall time occurs exactly once.
    if (!(t >= period.begin + days{2} && t < period.end - days{2})) {
      const TimeZone::Resolution r = zone.Resolve(*wall);
      if (r.kind == TimeZone::Resolution::Kind::kSkipped) {
        // Skipped by spring-forward: no run, no shifted run. Go on after the gap.
        search = std::max(zone.ToLocal(r.first), *wall + minutes{1});
        continue;
      }
      t = r.first;  // repeated by fall-back: only the first occurrence fires
      period = zone.PeriodAt(t);
    }
    if (t <= from_s) {
      search = *wall + minutes{1};
      continue;
    }
    const time_point fire = ToTimePoint(t);
    if (end && fire > *end) return std::nullopt;
    return fire;
  }
  return std::nullopt;
}

std::optional<time_point> Schedule::Next(time_point after) const {
  const Rep& rep = *rep_;
  switch (rep.kind) {
    case Kind::kRate:
      return rep.NextRate(after);
    case Kind::kCron:
      return rep.NextCron(after);
    case Kind::kAt:
      if (rep.at > after) return rep.at;
      return std::nullopt;
  }
  return std::nullopt;
}

std::vector<time_point> Schedule::NextN(time_point after, int n) const {
  std::vector<time_point> out;
  if (n <= 0) return out;
  out.reserve(static_cast<std::size_t>(std::min(n, 1024)));
  for (int i = 0; i < n; ++i) {
    const std::optional<time_point> next = Next(after);
    if (!next) break;
    out.push_back(*next);
    after = *next;
  }
  return out;
}

Schedule::Kind Schedule::kind() const { return rep_->kind; }
const std::string& Schedule::expression() const { return rep_->expression; }
const std::string& Schedule::timezone() const { return rep_->zone.name(); }
std::optional<time_point> Schedule::start() const { return rep_->start; }
std::optional<time_point> Schedule::end() const { return rep_->end; }

}  // namespace taskpipe
