// Handler: the business logic run for one task. Built-in types are "exec" (a child process),
// "http" (a request to a URL) and "log" (prints the task); programs linking taskpipe_lib register
// more by name in a HandlerRegistry (see examples/custom_handler.cc).
//
// Handlers are created once per job at start-up and then run concurrently from many worker
// threads: Run() must be thread-safe.
#ifndef TASKPIPE_CONSUMER_HANDLER_H_
#define TASKPIPE_CONSUMER_HANDLER_H_

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"

namespace taskpipe {

class HttpClient;

// At most this much of a handler's output is kept for the result (the tail).
inline constexpr std::size_t kMaxHandlerOutputBytes = 64 * 1024;

// What a handler is given for one run.
struct HandlerTask {
  std::string job{};
  nlohmann::json task{};        // a string or an object
  std::string task_json{};      // `task` as compact JSON (what `exec` writes to stdin)
  std::string message_id{};
  int receive_count = 0;
  std::chrono::system_clock::time_point scheduled_at{};
  // When the run must be over: the handler's timeout from the start of the run. Handlers stop
  // their work by then (an exec child is killed, an HTTP request times out).
  Clock::time_point deadline{};
};

struct HandlerOutcome {
  // OK = success. kDeadlineExceeded = stopped at the deadline. Anything else is a failure whose
  // message says what happened ("exit status 3", "killed by signal 9", "HTTP 503").
  Status status{};
  // The tail of what the handler produced (stdout and stderr interleaved for exec; the response
  // body for http), at most kMaxHandlerOutputBytes.
  std::string output{};
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Runs `task`. Returns by task.deadline (plus a short grace to stop a child), or promptly after
  // `stop` is requested (the consumer's immediate shutdown), with kDeadlineExceeded/kCancelled.
  virtual HandlerOutcome Run(const HandlerTask& task, std::stop_token stop) = 0;
};

// What a factory may use. References outlive every handler made from them.
struct HandlerDeps {
  Clock& clock;
  HttpClient& http;                        // for the http handler
  std::shared_ptr<spdlog::logger> logger;  // may be null
};

using HandlerFactory =
    std::function<StatusOr<std::unique_ptr<Handler>>(const HandlerConfig& config, const HandlerDeps& deps)>;

// Handler types by name. Not synchronised: fill it before the consumer starts.
class HandlerRegistry {
 public:
  // A registry holding the built-in types "exec", "http" and "log".
  static HandlerRegistry WithBuiltins();

  // Adds or replaces type `name`.
  void Register(std::string name, HandlerFactory factory);
  // Every registered name (for config validation: LoadOptions::handler_types).
  std::vector<std::string> Names() const;
  // Makes a handler for `config.type`. kInvalidArgument for an unknown type (naming the known
  // ones) or whatever the factory reports for a bad config.
  StatusOr<std::unique_ptr<Handler>> Create(const HandlerConfig& config, const HandlerDeps& deps) const;

 private:
  std::map<std::string, HandlerFactory, std::less<>> factories_;
};

}  // namespace taskpipe

#endif  // TASKPIPE_CONSUMER_HANDLER_H_
