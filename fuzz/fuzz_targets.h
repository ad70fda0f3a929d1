// Fuzz targets: one entry function per parser family of taskpipe_lib, each taking an arbitrary byte
// string, as libFuzzer's LLVMFuzzerTestOneInput does. fuzz/fuzz_main.cc wraps one of them into a
// libFuzzer binary (fuzz/CMakeLists.txt, scripts/fuzz.sh); tests/fuzz/fuzz_regression_test.cc replays
// the saved inputs of fuzz/corpus/<name>/ and fuzz/regressions/<name>/ through all of them.
//
// Each function returns 0 (libFuzzer's "keep going"). A broken documented invariant is a hard
// failure (__builtin_trap()), so that libFuzzer records a crash and a gtest run dies; a memory
// error or undefined behaviour is caught by the sanitizers the fuzz binaries are built with.
//
// Inputs start with a few control bytes that choose the parser, the HTTP status, options and so
// on (each read modulo the number of choices, 0 when the input is too short); the remaining bytes
// are the text handed to the parser:
//   schedule   [zone][flags][start][end][created_at] expression
//              flags bit 0/1/2: set ScheduleOptions start/end/created_at from the next bytes
//              (indices into a fixed table of instants); bits 3-7: nothing (reserved).
//   config     [flags] config text [NUL tasks-file text]
//              flags bit 0: the schedule check of taskpipe's own loader; bit 1: its notify-target
//              check; bit 2: a fixed environment (else every variable is unset). A tasks_file the
//              config names reads as the text after the NUL (not found when there is none).
//              ParseTasksText also gets that text (or the config text when there is no NUL).
//   sqs_json,  [parser][status][headers] body
//   sqs_xml    parser: ReceiveMessage, SendMessage, SendMessageBatch, DeleteMessage (empty),
//              DeleteMessageBatch, GetQueueAttributes, GetQueueUrl; status: an index into a table
//              of HTTP statuses (mostly 200); headers bit 0: Content-Type text/html; bit 1: the
//              protocol's own Content-Type; bit 2: x-amzn-query-error, valued with the body's
//              first line (which is then removed from the body).
//   envelope   body
//   webhook    [status][headers][options] lines... : the lines (split at '\n') fill, in order,
//              the header values that `headers` selects (bit 0 Retry-After, 1 X-RateLimit-Remaining,
//              2 X-RateLimit-Reset-After, 3 X-RateLimit-Global, 4 X-RateLimit-Scope), then a
//              template, then the TaskResult's job, task, error and output; the rest of the input
//              after the template is also the reply body. options: bits 0-1 TaskStatus, bit 2
//              will_retry, bit 3 keep_tail, bit 4 a webhook URL planted in the body (checked not
//              to leak into the verdict), bits 5-7 the truncation limit.
//
// Pure: no state survives a call except the caches of the library itself (time zones).
#ifndef TASKPIPE_FUZZ_FUZZ_TARGETS_H_
#define TASKPIPE_FUZZ_FUZZ_TARGETS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace taskpipe::fuzz {

int FuzzSchedule(const std::uint8_t* data, std::size_t size);
int FuzzConfig(const std::uint8_t* data, std::size_t size);
int FuzzSqsJson(const std::uint8_t* data, std::size_t size);
int FuzzSqsXml(const std::uint8_t* data, std::size_t size);
int FuzzEnvelope(const std::uint8_t* data, std::size_t size);
int FuzzWebhook(const std::uint8_t* data, std::size_t size);

struct FuzzTarget {
  const char* name;  // "schedule": also the folder of its inputs under fuzz/corpus/, fuzz/regressions/
  int (*fn)(const std::uint8_t* data, std::size_t size);
};

// Every target above, in the order listed.
const std::vector<FuzzTarget>& AllFuzzTargets();

}  // namespace taskpipe::fuzz

#endif  // TASKPIPE_FUZZ_FUZZ_TARGETS_H_
