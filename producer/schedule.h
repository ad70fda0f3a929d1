// Schedule: an AWS EventBridge Scheduler schedule expression with its time zone and start/end
// dates, and the pure function that says when it fires next.
//
// Expressions (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html):
//   rate(value unit)   value >= 1; unit minute(s) | hour(s) | day(s). The plural is always
//                      accepted (the Scheduler guide lists minutes|hours|days); the singular only
//                      with the value 1 (the API reference lists minute|hour|day too, and the
//                      EventBridge rate reference forbids "rate(5 hour)").
//   cron(minutes hours day-of-month month day-of-week year)
//                      * , - / everywhere; ? L W LW L-n in day-of-month; ? L nL n#k in
//                      day-of-week; JAN-DEC, SUN-SAT (any case); day-of-week 1-7 with 1 = SUN;
//                      exactly one of day-of-month and day-of-week is '?'; ranges may wrap
//                      (FRI-MON, 22-2, NOV-FEB; not years); years 1970-2199.
//                      L: last day of the month (day-of-month) or SAT (day-of-week alone);
//                      L-n: n days before the last; LW: the last weekday (Mon-Fri); nW: the
//                      weekday nearest day n without leaving the month (1W on a Saturday is
//                      Monday the 3rd), nothing in months without day n; nL: the last weekday n
//                      of the month (6L = last Friday); n#k: the k-th weekday n, nothing in months
//                      without one. L, L-n, LW, nW, nL and n#k stand alone in their field.
//   at(yyyy-mm-ddThh:mm:ss)
//                      once, at that wall time in the schedule's zone.
//
// Fire times (see Next()):
// - cron() and at() are read as wall-clock time in the zone. Daylight saving time as the
//   Scheduler user guide states (schedule-types.html#daylist-savings-time): a wall time that
//   spring-forward skips does not fire (no shifted run); one that fall-back repeats fires once,
//   at its first occurrence. An at() whose wall time is skipped is rejected by Parse() (it could
//   never fire; the guide says nothing more specific); a repeated one fires at the first
//   occurrence.
// - rate() counts elapsed time, so zones and daylight saving time do not affect it: it fires at
//   anchor, anchor + N, anchor + 2N, ... where the anchor is the start date if given, else
//   ScheduleOptions::created_at (AWS: "If you do not provide a StartDate for a rate-based
//   schedule, your schedule starts invoking the target immediately").
// - start and end are inclusive bounds on fire times for rate() and cron(). at() ignores them,
//   as AWS does ("EventBridge Scheduler ignores the StartDate and EndDate you specify").
//
// Schedule is immutable after Parse(), cheap to copy, and safe for concurrent use.
#ifndef TASKPIPE_PRODUCER_SCHEDULE_H_
#define TASKPIPE_PRODUCER_SCHEDULE_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace taskpipe {

struct ScheduleOptions {
  // IANA zone name (the system tz database), as ScheduleExpressionTimezone.
  std::string timezone = "UTC";
  // StartDate and EndDate: inclusive bounds on fire times (rate and cron only).
  std::optional<std::chrono::system_clock::time_point> start;
  std::optional<std::chrono::system_clock::time_point> end;
  // rate() only, when `start` is unset: the instant the schedule was created, which AWS treats as
  // the first fire. Unset means the Unix epoch, so rate(5 minutes) fires at UTC multiples of five
  // minutes; a long-running producer should pass its start-up time or a fixed instant from config
  // so that replicas agree.
  std::optional<std::chrono::system_clock::time_point> created_at;
};

class Schedule {
 public:
  using time_point = std::chrono::system_clock::time_point;
  enum class Kind { kRate, kCron, kAt };

  // Parses `expression` for `options`. Errors are InvalidArgument with a message that names the
  // field and the fault, e.g. `cron day-of-week: 8 is out of range 1-7 (1 = SUN)`,
  // `rate: unit must be minute(s), hour(s) or day(s), got "weeks"`, `unknown time zone "Mars/Base"`,
  // or `schedule start 2026-02-01T00:00:00Z is after end 2026-01-01T00:00:00Z`. Never throws.
  static StatusOr<Schedule> Parse(std::string_view expression, const ScheduleOptions& options = {});

  // The first fire instant strictly after `after`, or nullopt if there is none: an at() not after
  // `after`, an end date passed, a cron() that cannot fire again before the end of 2199 (such as
  // cron(0 0 30 2 ? *)). Bounded work (well under a millisecond) for every expression.
  std::optional<time_point> Next(time_point after) const;

  // Up to `n` consecutive fire instants after `after` (fewer if the schedule ends).
  std::vector<time_point> NextN(time_point after, int n) const;

  Kind kind() const;
  const std::string& expression() const;  // as given, without surrounding white space
  const std::string& timezone() const;
  std::optional<time_point> start() const;
  std::optional<time_point> end() const;

 private:
  struct Rep;
  explicit Schedule(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}
  std::shared_ptr<const Rep> rep_;
};

}  // namespace taskpipe

#endif  // TASKPIPE_PRODUCER_SCHEDULE_H_
