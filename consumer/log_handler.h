// The "log" handler, taskpipe's hello world: logs one info line per task through
// HandlerDeps::logger and returns it as the output; always succeeds.
//   job "hello" task "Hello from taskpipe #1" (message 1f3c9a2e-..., receive 1)
// The task is printed as compact JSON (a string task in quotes), invalid UTF-8 replaced.
//
// Run() is thread-safe (spdlog loggers are).
#ifndef TASKPIPE_CONSUMER_LOG_HANDLER_H_
#define TASKPIPE_CONSUMER_LOG_HANDLER_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "config/config.h"
#include "consumer/handler.h"

namespace taskpipe {

// The line the log handler logs for `task`.
std::string LogHandlerLine(const HandlerTask& task);

// Never fails for the built-in keys (the log handler uses none of them besides `timeout`, which
// must be positive as for every handler). A null `deps.logger` logs nothing.
StatusOr<std::unique_ptr<Handler>> NewLogHandler(const HandlerConfig& config, const HandlerDeps& deps);

}  // namespace taskpipe

#endif  // TASKPIPE_CONSUMER_LOG_HANDLER_H_
