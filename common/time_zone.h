// TimeZone: an IANA time zone, answering the two questions schedules ask — what is the UTC offset
// at an instant, and which instant(s) show a given wall-clock time.
//
// Zones come from the system tz database (/usr/share/zoneinfo) through Howard Hinnant's date/tz,
// which stays out of this header. date/tz (built with USE_OS_TZDB, as Debian ships it) only knows
// the transitions listed in each TZif file. Debian's files list them through 2037 and describe
// later years with the POSIX TZ rule in the file's footer ("EST5EDT,M3.2.0,M11.1.0"), which date/tz
// ignores: without help, America/New_York would have no daylight saving time after 2037. TimeZone
// applies the footer rule after the last listed transition, as glibc, Python's zoneinfo and Java
// do, so schedules with a year field up to 2199 see the same offsets AWS does.
//
// Immutable, cheap to copy (the representation is shared) and safe for concurrent use.
#ifndef TASKPIPE_COMMON_TIME_ZONE_H_
#define TASKPIPE_COMMON_TIME_ZONE_H_

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace taskpipe {

class TimeZone {
 public:
  // "UTC" always succeeds, even without a tz database. Any other name is looked up in the system
  // tz database; an unknown name (or a missing database) yields InvalidArgument
  // `unknown time zone "Mars/Base"`. Zones are loaded once per process and cached.
  static StatusOr<TimeZone> Locate(std::string_view name);

  // A zone defined by a POSIX TZ string alone (the footer format of TZif files), e.g.
  // "EST5EDT,M3.2.0,M11.1.0" or "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0". Its name() is the
  // string. InvalidArgument naming the fault if it is malformed.
  static StatusOr<TimeZone> FromPosixRule(std::string_view rule);

  static TimeZone Utc();

  const std::string& name() const;

  // A span [begin, end) of UTC during which local time = UTC + offset. Consecutive periods may
  // have the same offset (e.g. where the tz database changes a zone's abbreviation only).
  struct Period {
    std::chrono::sys_seconds begin;
    std::chrono::sys_seconds end;
    std::chrono::seconds offset;
  };
  Period PeriodAt(std::chrono::sys_seconds t) const;
  std::chrono::seconds OffsetAt(std::chrono::sys_seconds t) const { return PeriodAt(t).offset; }
  std::chrono::local_seconds ToLocal(std::chrono::sys_seconds t) const {
    return std::chrono::local_seconds{t.time_since_epoch() + OffsetAt(t)};
  }

  // The instant(s) at which wall clocks in this zone show `wall`.
  struct Resolution {
    enum class Kind {
      kUnique,    // shown once
      kRepeated,  // shown twice: clocks were turned back over it
      kSkipped,   // never shown: clocks were turned forward over it
    };
    Kind kind;
    // kUnique: the instant. kRepeated: the first occurrence. kSkipped: the instant the gap ends,
    // i.e. the first instant whose wall time is later than `wall`.
    std::chrono::sys_seconds first;
    // kRepeated: the second occurrence. Otherwise equal to `first`.
    std::chrono::sys_seconds second;
  };
  Resolution Resolve(std::chrono::local_seconds wall) const;

 private:
  struct Rep;
  explicit TimeZone(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}
  std::shared_ptr<const Rep> rep_;
};

}  // namespace taskpipe

#endif  // TASKPIPE_COMMON_TIME_ZONE_H_
