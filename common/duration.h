// Durations as people write them in taskpipe's configuration: "500ms", "30s", "15m", "4h", "4d",
// and compounds from the largest unit to the smallest such as "1h30m" or "1m30s500ms".
// Pure functions; thread-safe.
#ifndef TASKPIPE_COMMON_DURATION_H_
#define TASKPIPE_COMMON_DURATION_H_

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace taskpipe {

// Parses `text`: one or more <whole number><unit> parts, unit one of ms, s, m, h, d (a day is
// 24h), units from largest to smallest, each at most once ("1h30m", not "30m1h"). No sign, no
// spaces, no fractions ("1.5h" is rejected with a suggestion to write "1h30m").
// On failure returns kInvalidArgument with a message that quotes `text` and says how to write it,
// e.g. `expected a duration like "10s" (a number needs a unit: ms, s, m, h or d), got "10"`.
// Values that do not fit in std::chrono::milliseconds are rejected ("too large"), never wrapped.
StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The shortest form ParseDuration reads back to `duration`: "0s", "500ms", "30s", "1h30m", "4d",
// "1d12h", "1s500ms". Negative durations get a leading "-" (which ParseDuration rejects).
std::string FormatDuration(std::chrono::milliseconds duration);

}  // namespace taskpipe

#endif  // TASKPIPE_COMMON_DURATION_H_
