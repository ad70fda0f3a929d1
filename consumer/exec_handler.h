// The "exec" handler: runs a command (an argv array, never through a shell) once per task.
//
//  - The child gets the task JSON on stdin (then EOF), and in its environment taskpipe's own
//    environment plus TASKPIPE_JOB, TASKPIPE_TASK (the task JSON), TASKPIPE_MESSAGE_ID and
//    TASKPIPE_RECEIVE_COUNT, plus HandlerConfig::env (which wins over all of these).
//  - `command[0]` is looked up in taskpipe's PATH when it has no '/'; a relative path with a '/'
//    ("./report.sh") is relative to `cwd` (taskpipe's working directory when `cwd` is empty).
//  - The child leads its own process group. Signals are reset to their defaults and unblocked in
//    it; no file descriptor other than 0, 1 and 2 is inherited.
//  - stdout and stderr share one pipe, so the output interleaves as a terminal shows it. The last
//    kMaxHandlerOutputBytes are kept (memory stays bounded whatever the child prints; the child is
//    never slowed down waiting for us to make room).
//  - Exit status 0 is success; otherwise the outcome says "exit status 3" or "killed by signal 9
//    (SIGKILL)" (code kUnknown). A command that cannot be started fails with "command not found:
//    X", "cwd does not exist: D", ... (kNotFound, kPermissionDenied, kInternal).
//  - At task.deadline, or when `stop` is requested, the whole process group gets SIGTERM, and
//    SIGKILL after ExecHandlerOptions::kill_grace if the child has not exited by then. The outcome is
//    kDeadlineExceeded ("timed out after 10m; stopped with SIGTERM", or "...; killed with SIGKILL
//    after 5s grace") or kCancelled ("cancelled; stopped with SIGTERM", ...).
//  - When the child exits, whatever it left running in its process group (background jobs) gets
//    SIGKILL: no work outlives the task. Processes that left the group (setsid, daemons) are not
//    tracked.
//  - The child is always reaped: Run() never leaves a zombie.
//  - A child that exits or closes stdin without reading the task is not an error: SIGPIPE cannot
//    kill taskpipe (see exec_handler.cc) and the write never blocks.
//
// Run() is thread-safe: every run has its own pipes and child. The handler reads `environ` on each
// run: do not call setenv() while handlers run.
#ifndef TASKPIPE_CONSUMER_EXEC_HANDLER_H_
#define TASKPIPE_CONSUMER_EXEC_HANDLER_H_

#include <chrono>
#include <memory>

#include "common/status.h"
#include "config/config.h"
#include "consumer/handler.h"

namespace taskpipe {

struct ExecHandlerOptions {
  // Between SIGTERM and SIGKILL when a child must be stopped.
  std::chrono::milliseconds kill_grace{5000};
};

// Fails with kInvalidArgument when `config` cannot describe a command: empty `command`, an empty
// or NUL-holding argument, a bad env name, a timeout <= 0. `deps.clock` must outlive the handler;
// Run() uses it for every deadline (the OS's own waits are computed from it).
StatusOr<std::unique_ptr<Handler>> NewExecHandler(const HandlerConfig& config, const HandlerDeps& deps,
                                                  const ExecHandlerOptions& options = {});

}  // namespace taskpipe

#endif  // TASKPIPE_CONSUMER_EXEC_HANDLER_H_
