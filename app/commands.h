// The taskpipe commands that load a config and run something: produce, send, consume, run. Parsing
// lives in app/cli.cc; this is wiring only. Each returns the process's exit status: 0 success,
// 2 bad usage or config (one clear line on stderr per fault), 1 runtime failure.
#ifndef TASKPIPE_APP_COMMANDS_H_
#define TASKPIPE_APP_COMMANDS_H_

#include <spdlog/spdlog.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/redact.h"
#include "config/config.h"
#include "config/config_json.h"
#include "consumer/handler.h"

namespace taskpipe {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct CommandContext {
  std::string command;  // "produce", for messages: "taskpipe produce: ..."
  std::shared_ptr<spdlog::logger> logger;
  // Makes a logger named `name` ("consumer", "task") with the command line's level and format.
  std::function<std::shared_ptr<spdlog::logger>(const std::string& name)> make_logger;
  std::shared_ptr<Redactor> redactor;  // the loggers' redactor; config secrets are added to it
  const HandlerRegistry* registry = nullptr;
};

// Prints "taskpipe COMMAND: message" on stderr, redacted.
void PrintCommandError(const CommandContext& context, const std::string& message);

// The config loader's options for this binary: schedules checked by the real parser, handler
// types from `registry`.
LoadOptions MakeLoadOptions(const HandlerRegistry& registry);

// Loads `path`; on problems prints them all (redacted) and returns nullopt. Adds the config's
// secrets to the redactor.
std::optional<Config> LoadConfigOrReport(const std::string& path, const CommandContext& context);

struct ProduceFlags {
  std::string config_path;
  bool once = false;
  std::string job;         // with --once: only this job
  std::string state_file;  // catch_up state; "" = none
};
int RunProduce(const ProduceFlags& flags, const CommandContext& context);

struct SendFlags {
  std::string config_path;
  std::string job;   // fire this job's tasks now, or
  std::string body;  // send this body as is ("-": read standard input)
  bool has_body = false;
};
int RunSend(const SendFlags& flags, const CommandContext& context);

struct NotifyTestFlags {
  std::string config_path;
  std::string target;              // a name from notify.targets
  std::string status = "failure";  // of the sample result: success | failure | timeout | invalid
  int timeout_seconds = 30;        // delivery deadline, retries included
};
// `taskpipe notify-test`: posts a sample result to one target and says whether it was delivered
// (exit 0) or not (exit 1, after the target's own log line saying why).
int RunNotifyTest(const NotifyTestFlags& flags, const CommandContext& context);

struct ConsumeFlags {
  std::string config_path;
  bool local = false;        // `run`: the producer too, in this process
  std::string state_file;    // `run`: catch_up state
  // --metrics-port / --metrics-address: override metrics.port / metrics.address.
  std::optional<int> metrics_port;
  std::optional<std::string> metrics_address;
};
// `taskpipe run` (local = true): producer, queue and consumer pool in one process; `taskpipe
// consume`: the consumer pool alone. Both until SIGINT/SIGTERM: the first drains (running handlers
// get consumer.shutdown_grace, unstarted messages are released, deletes flushed; exit 0), a
// second one exits at once (exit 1).
int RunConsumer(const ConsumeFlags& flags, const CommandContext& context);

}  // namespace taskpipe

#endif  // TASKPIPE_APP_COMMANDS_H_
