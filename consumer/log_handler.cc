#include "consumer/log_handler.h"

#include <string>
#include <utility>

#include "common/duration.h"

namespace taskpipe {
namespace {

// A JSON string literal for `text` (quotes and escapes as JSON writes them).
std::string JsonQuoted(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class LogHandler final : public Handler {
 public:
  explicit LogHandler(std::shared_ptr<spdlog::logger> logger) : logger_(std::move(logger)) {}

  HandlerOutcome Run(const HandlerTask& task, std::stop_token /*stop*/) override {
    std::string line = LogHandlerLine(task);
    if (logger_ != nullptr) logger_->info("{}", line);
    return {Status::Ok(), std::move(line)};
  }

 private:
  const std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace

std::string LogHandlerLine(const HandlerTask& task) {
  // task_json may carry invalid UTF-8 only if the caller built it by hand; `task` is re-dumped
  // with replacement when task_json is absent.
  const std::string task_text =
      !task.task_json.empty() ? task.task_json
                              : task.task.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return "job " + JsonQuoted(task.job) + " task " + task_text + " (message " + task.message_id +
         ", receive " + std::to_string(task.receive_count) + ")";
}

StatusOr<std::unique_ptr<Handler>> NewLogHandler(const HandlerConfig& config, const HandlerDeps& deps) {
  if (config.timeout <= std::chrono::seconds(0)) {
    return InvalidArgumentError(
        "log handler: timeout must be positive, got " +
        FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(config.timeout)));
  }
  return std::unique_ptr<Handler>(std::make_unique<LogHandler>(deps.logger));
}

}  // namespace taskpipe
