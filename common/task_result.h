// TaskResult: the outcome of one handler run, as the consumer reports it and the notifiers post it.
// Plain value; not synchronised.
#ifndef TASKPIPE_COMMON_TASK_RESULT_H_
#define TASKPIPE_COMMON_TASK_RESULT_H_

#include <chrono>
#include <string>

namespace taskpipe {

enum class TaskStatus {
  kSuccess,  // the handler reported success; the message is deleted
  kFailure,  // the handler reported failure (exit status != 0, HTTP non-2xx, an error)
  kTimeout,  // the handler ran past its timeout and was stopped
  kInvalid,  // the message could not be handled at all (not an envelope, unknown job)
};

// "success", "failure", "timeout", "invalid".
const char* TaskStatusName(TaskStatus status);

struct TaskResult {
  std::string job{};           // "" when the body named no job we know
  std::string task{};          // the task as compact JSON (a string task is a JSON string)
  std::string message_id{};
  int receive_count = 0;       // ApproximateReceiveCount of this delivery (the attempt number)
  TaskStatus status = TaskStatus::kFailure;
  std::chrono::milliseconds duration{0};  // handler run time
  std::string output{};        // the tail of the handler's output (at most 64 KiB), UTF-8 as produced
  std::string error{};         // "" on success; else one line saying what went wrong
  std::chrono::system_clock::time_point scheduled_at{};  // from the envelope; epoch when unknown
  std::chrono::system_clock::time_point finished_at{};
  bool will_retry = false;     // a failure that the queue will deliver again
};

}  // namespace taskpipe

#endif  // TASKPIPE_COMMON_TASK_RESULT_H_
