#include "common/time_format.h"
#include "common/quote.h"

#include <cstdint>
#include <cstdio>
#include <limits>

namespace taskpipe {
namespace {

using std::chrono::days;
using std::chrono::floor;
using std::chrono::seconds;
using std::chrono::system_clock;

// Writes `value` as exactly `width` decimal digits (0 <= value < 10^width) at `out`.
void PutDigits(unsigned value, int width, char* out) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

// "yyyy-mm-ddThh:mm:ss" for a count of seconds since 1970-01-01T00:00:00 (UTC or wall time),
// appended to `out`. Written digit by digit: envelopes carry two of these per message, and
// snprintf's format parsing cost more than the rest of the encoding.
void AppendDateTime(seconds since_epoch, std::string& out) {
  const std::chrono::sys_seconds t{since_epoch};
  const auto day = floor<days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss<seconds> hms{t - day};
  const int year = static_cast<int>(ymd.year());
  if (year < 0 || year > 9999) {
    // Outside what system_clock holds with nanoseconds; kept for completeness.
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", year, static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                  static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
    out += buf;
    return;
  }
  char buf[19] = {'0', '0', '0', '0', '-', '0', '0', '-', '0', '0',
                  'T', '0', '0', ':', '0', '0', ':', '0', '0'};
  PutDigits(static_cast<unsigned>(year), 4, buf);
  PutDigits(static_cast<unsigned>(ymd.month()), 2, buf + 5);
  PutDigits(static_cast<unsigned>(ymd.day()), 2, buf + 8);
  PutDigits(static_cast<unsigned>(hms.hours().count()), 2, buf + 11);
  PutDigits(static_cast<unsigned>(hms.minutes().count()), 2, buf + 14);
  PutDigits(static_cast<unsigned>(hms.seconds().count()), 2, buf + 17);
  out.append(buf, sizeof buf);
}

class Rfc3339Parser {
 public:
  explicit Rfc3339Parser(std::string_view text) : s_(text) {}

  StatusOr<system_clock::time_point> Parse() {
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    TASKPIPE_RETURN_IF_ERROR(Digits(4, "year", &year));
    TASKPIPE_RETURN_IF_ERROR(Expect('-', "'-' after the year"));
    TASKPIPE_RETURN_IF_ERROR(Digits(2, "month", &month));
    TASKPIPE_RETURN_IF_ERROR(Expect('-', "'-' after the month"));
    TASKPIPE_RETURN_IF_ERROR(Digits(2, "day", &day));
    if (Peek() != 'T' && Peek() != 't') return Fail("expected 'T' between the date and the time");
    ++i_;
    TASKPIPE_RETURN_IF_ERROR(Digits(2, "hour", &hour));
    TASKPIPE_RETURN_IF_ERROR(Expect(':', "':' after the hour"));
    TASKPIPE_RETURN_IF_ERROR(Digits(2, "minute", &minute));
    TASKPIPE_RETURN_IF_ERROR(Expect(':', "':' after the minute"));
    TASKPIPE_RETURN_IF_ERROR(Digits(2, "second", &second));

    std::int64_t nanos = 0;
    if (Peek() == '.') {
      ++i_;
      if (!IsDigit(Peek())) return Fail("expected digits after '.'");
      int count = 0;
      while (IsDigit(Peek())) {
        if (++count > 9) return Fail("more than 9 fractional digits");
        nanos = nanos * 10 + (s_[i_++] - '0');
      }
      for (; count < 9; ++count) nanos *= 10;
    }

    int offset_seconds = 0;
    if (Peek() == 'Z' || Peek() == 'z') {
      ++i_;
    } else if (Peek() == '+' || Peek() == '-') {
      const int sign = s_[i_++] == '-' ? -1 : 1;
      int oh = 0, om = 0;
      TASKPIPE_RETURN_IF_ERROR(Digits(2, "offset hours", &oh));
      TASKPIPE_RETURN_IF_ERROR(Expect(':', "':' in the offset (+hh:mm)"));
      TASKPIPE_RETURN_IF_ERROR(Digits(2, "offset minutes", &om));
      if (oh > 23) return Fail("offset hours " + std::to_string(oh) + " is out of range 00-23");
      if (om > 59) return Fail("offset minutes " + std::to_string(om) + " is out of range 00-59");
      offset_seconds = sign * (oh * 3600 + om * 60);
    } else if (!AtEnd()) {
      return Fail("expected 'Z', '+hh:mm', '-hh:mm' or the end after the seconds");
    }
    if (!AtEnd()) return Fail("unexpected text after the time");

    if (month < 1 || month > 12) return Fail("month " + std::to_string(month) + " is out of range 01-12");
    const std::chrono::year_month_day_last last{
        std::chrono::year{year} / std::chrono::month{static_cast<unsigned>(month)} / std::chrono::last};
    const int days_in_month = static_cast<int>(static_cast<unsigned>(last.day()));
    if (day < 1 || day > days_in_month) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "day %d is out of range for %04d-%02d (01-%02d)", day, year, month,
                    days_in_month);
      return Fail(buf);
    }
    if (hour > 23) return Fail("hour " + std::to_string(hour) + " is out of range 00-23");
    if (minute > 59) return Fail("minute " + std::to_string(minute) + " is out of range 00-59");
    if (second == 60) return Fail("leap seconds (second 60) are not supported");
    if (second > 59) return Fail("second " + std::to_string(second) + " is out of range 00-59");

    const std::chrono::sys_days date{std::chrono::year{year} /
                                     std::chrono::month{static_cast<unsigned>(month)} /
                                     std::chrono::day{static_cast<unsigned>(day)}};
    const std::int64_t secs = static_cast<std::int64_t>(date.time_since_epoch().count()) * 86400 +
                              hour * 3600 + minute * 60 + second - offset_seconds;
    // system_clock counts nanoseconds on Linux: about ±292 years around 1970.
    using Rep = system_clock::duration::rep;
    constexpr std::int64_t kMaxSeconds =
        static_cast<std::int64_t>(std::numeric_limits<Rep>::max() / system_clock::duration::period::den *
                                  system_clock::duration::period::num) -
        1;
    if (secs > kMaxSeconds || secs < -kMaxSeconds) {
      return Fail("the instant is outside the range this system's clock can represent");
    }
    return system_clock::time_point{
        std::chrono::duration_cast<system_clock::duration>(seconds{secs}) +
        std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds{nanos})};
  }

 private:
  Status Fail(std::string_view what) const {
    return InvalidArgumentError("invalid time " + QuoteForError(s_) + ": " + std::string(what));
  }
  bool AtEnd() const { return i_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[i_]; }
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  Status Expect(char c, std::string_view what) {
    if (Peek() != c) return Fail("expected " + std::string(what));
    ++i_;
    return Status::Ok();
  }
  Status Digits(int count, std::string_view what, int* out) {
    int value = 0;
    for (int k = 0; k < count; ++k) {
      if (!IsDigit(Peek())) {
        return Fail("expected " + std::to_string(count) + " digits for the " + std::string(what));
      }
      value = value * 10 + (s_[i_++] - '0');
    }
    *out = value;
    return Status::Ok();
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::string FormatRfc3339Utc(system_clock::time_point t) {
  std::string out;
  out.reserve(24);
  AppendDateTime(floor<seconds>(t).time_since_epoch(), out);
  out += 'Z';
  return out;
}

std::string FormatRfc3339UtcMillis(system_clock::time_point t) {
  const auto ms = floor<std::chrono::milliseconds>(t);
  const auto whole = floor<seconds>(ms);
  std::string out;
  out.reserve(28);
  AppendDateTime(whole.time_since_epoch(), out);
  char millis[5] = {'.', '0', '0', '0', 'Z'};
  PutDigits(static_cast<unsigned>((ms - whole).count()), 3, millis + 1);
  out.append(millis, sizeof millis);
  return out;
}

StatusOr<system_clock::time_point> ParseRfc3339(std::string_view text) { return Rfc3339Parser(text).Parse(); }

std::string FormatInZone(system_clock::time_point t, const TimeZone& zone) {
  const std::chrono::sys_seconds utc = floor<seconds>(t);
  const seconds offset = zone.OffsetAt(utc);
  const std::int64_t abs = offset.count() < 0 ? -offset.count() : offset.count();
  char buf[24];
  if (abs % 60 == 0) {
    std::snprintf(buf, sizeof buf, "%c%02d:%02d", offset.count() < 0 ? '-' : '+',
                  static_cast<int>(abs / 3600), static_cast<int>(abs / 60 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%c%02d:%02d:%02d", offset.count() < 0 ? '-' : '+',
                  static_cast<int>(abs / 3600), static_cast<int>(abs / 60 % 60), static_cast<int>(abs % 60));
  }
  std::string out;
  AppendDateTime(utc.time_since_epoch() + offset, out);
  return out + buf + " (" + zone.name() + ")";
}

StatusOr<std::string> FormatInZone(system_clock::time_point t, std::string_view zone) {
  StatusOr<TimeZone> located = TimeZone::Locate(zone);
  if (!located.ok()) return located.status();
  return FormatInZone(t, *located);
}

}  // namespace taskpipe
