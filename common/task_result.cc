#include "common/task_result.h"

namespace taskpipe {

const char* TaskStatusName(TaskStatus status) {
  switch (status) {
    case TaskStatus::kSuccess:
      return "success";
    case TaskStatus::kFailure:
      return "failure";
    case TaskStatus::kTimeout:
      return "timeout";
    case TaskStatus::kInvalid:
      return "invalid";
  }
  return "unknown";
}

}  // namespace taskpipe
