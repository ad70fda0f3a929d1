// Formatting and parsing of instants as RFC 3339 text, the one textual time format taskpipe uses
// (CLI output and flags, message envelopes, logs). Pure functions; safe for concurrent use.
#ifndef TASKPIPE_COMMON_TIME_FORMAT_H_
#define TASKPIPE_COMMON_TIME_FORMAT_H_

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/time_zone.h"

namespace taskpipe {

// "2026-03-08T07:00:00Z": UTC, whole seconds (the fraction is dropped, rounding toward the past).
std::string FormatRfc3339Utc(std::chrono::system_clock::time_point t);

// "2026-03-08T07:00:00.250Z": as FormatRfc3339Utc with milliseconds.
std::string FormatRfc3339UtcMillis(std::chrono::system_clock::time_point t);

// Parses "yyyy-mm-ddThh:mm:ss" followed by an optional fraction (".5", up to 9 digits) and an
// optional zone: "Z", "+hh:mm" or "-hh:mm". Without a zone the time is taken as UTC (a
// convenience for command lines; RFC 3339 itself requires the zone). 'T'/'Z' may be lower case.
// Leap seconds (ss = 60) are not accepted. The instant must be representable by system_clock
// (years 1678-2261 with nanosecond clocks).
// Malformed input yields InvalidArgument naming the fault, e.g.
// `invalid time "2026-02-30T00:00:00Z": day 30 is out of range for 2026-02 (1-28)`.
StatusOr<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text);

// "2026-03-08T02:00:00-05:00 (America/New_York)": the wall time in `zone` (whole seconds) with
// its UTC offset, then the zone's name. An offset with seconds (old local mean times) is written
// "+05:41:16".
std::string FormatInZone(std::chrono::system_clock::time_point t, const TimeZone& zone);

// As above, looking the zone up by IANA name: InvalidArgument `unknown time zone "Mars/Base"`.
StatusOr<std::string> FormatInZone(std::chrono::system_clock::time_point t, std::string_view zone);

}  // namespace taskpipe

#endif  // TASKPIPE_COMMON_TIME_FORMAT_H_
