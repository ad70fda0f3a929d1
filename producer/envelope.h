// The message body taskpipe's producer sends and its consumer reads (DESIGN.md): a JSON object
//   {"job": "daily-report", "task": {"report": "sales"}, "scheduled_at": "2026-03-08T04:00:00Z",
//    "fired_at": "2026-03-08T04:00:00.012Z"}
// `task` is one of the job's tasks (a string or an object); `scheduled_at` is the schedule's instant
// and `fired_at` when the producer built the message. Times are UTC RFC 3339, with milliseconds
// when they are not whole seconds. Pure functions; thread-safe.
#ifndef TASKPIPE_PRODUCER_ENVELOPE_H_
#define TASKPIPE_PRODUCER_ENVELOPE_H_

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace taskpipe {

// Objects and arrays in a body nested deeper than this are rejected by DecodeEnvelope():
// nlohmann::json copies and serialises recursively, so a hostile body must not reach them.
inline constexpr int kMaxEnvelopeDepth = 64;

struct Envelope {
  std::string job;
  nlohmann::json task;  // a string or an object
  std::chrono::system_clock::time_point scheduled_at;
  std::chrono::system_clock::time_point fired_at;

  friend bool operator==(const Envelope&, const Envelope&) = default;
};

// The body for `envelope`, compact JSON. UTF-8 is kept as is unless the text would hold a
// character SQS refuses in a body (such as U+FFFE); then every non-ASCII character is written as
// a \u escape. Invalid UTF-8 inside `task` is replaced by U+FFFD. Times keep millisecond precision.
// Never throws.
std::string EncodeEnvelope(const Envelope& envelope);

// Reads a body written by EncodeEnvelope (keys in any order; unknown keys are ignored so that
// later versions may add some). Fails with kInvalidArgument whose message starts with
// "not a taskpipe envelope: " and names the fault: the body is not JSON, not an object, nested
// more than kMaxEnvelopeDepth levels; "job" is missing, not a string or empty; "task" is missing or
// neither a string nor an object; "scheduled_at" or "fired_at" is missing, not a string or not an
// RFC 3339 time. Never throws.
// Bodies of the common shape (the four keys once each, plain ASCII job and times, as
// EncodeEnvelope writes them) take a fast path; every other body goes to the general parser.
StatusOr<Envelope> DecodeEnvelope(std::string_view body);

namespace internal {
// DecodeEnvelope() without its fast path: the reference that the tests and the envelope fuzz
// target hold the fast path to (same result, same error, for every body).
StatusOr<Envelope> DecodeEnvelopeGeneral(std::string_view body);
}  // namespace internal

}  // namespace taskpipe

#endif  // TASKPIPE_PRODUCER_ENVELOPE_H_
