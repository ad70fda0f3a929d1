// Logging on spdlog: text or JSON lines on stderr, every line passed through a Redactor so that no
// secret reaches a log, whatever the caller formatted into it.
//
// Loggers are passed to the components that log (producer loop, consumer loop, main); tests pass
// NullLogger() or a logger over a test sink. spdlog loggers are thread-safe.
#ifndef TASKPIPE_COMMON_LOGGING_H_
#define TASKPIPE_COMMON_LOGGING_H_

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/redact.h"
#include "common/status.h"

namespace taskpipe {

enum class LogFormat { kText, kJson };

struct LogOptions {
  spdlog::level::level_enum level = spdlog::level::info;
  LogFormat format = LogFormat::kText;
};

// "trace", "debug", "info", "warn" (or "warning"), "error", "critical", "off".
StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view text);
// "text" or "json".
StatusOr<LogFormat> ParseLogFormat(std::string_view text);

// A logger named `name` writing to `sink` (stderr when null) in the chosen format:
//   text: 2026-03-08T07:00:00.123Z info  [consumer] message
//   json: {"time":"2026-03-08T07:00:00.123Z","level":"info","logger":"consumer","msg":"message"}
// Every message is passed through `redactor` (when null, through RedactKnownSecrets()) before it
// is formatted. Times are UTC.
std::shared_ptr<spdlog::logger> NewLogger(const std::string& name, const LogOptions& options,
                                          std::shared_ptr<const Redactor> redactor,
                                          spdlog::sink_ptr sink = nullptr);

// A logger that drops everything.
std::shared_ptr<spdlog::logger> NullLogger();

}  // namespace taskpipe

#endif  // TASKPIPE_COMMON_LOGGING_H_
