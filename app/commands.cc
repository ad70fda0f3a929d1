#include "app/commands.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <sstream>
#include <utility>
#include <vector>

#include "app/queue_wiring.h"
#include "app/signals.h"
#include "net/curl_http_client.h"
#include "common/clock.h"
#include "common/quote.h"
#include "common/task_result.h"
#include "notify/dispatcher.h"
#include "producer/producer.h"
#include "producer/schedule.h"
#include "producer/scheduler.h"

namespace taskpipe {
namespace {

std::string Plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The exit status for a failure: 2 when the user must change a setting, 1 otherwise.
int ExitFor(const Status& status) {
  return status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kUnauthenticated
             ? kExitUsage
             : kExitFailure;
}

// produce and send put messages on a queue that outlives the process; a memory queue does not.
bool RequireSqs(const Config& config, const CommandContext& context) {
  if (config.queue.backend == "sqs") return true;
  PrintCommandError(context,
                    "queue.backend is \"" + config.queue.backend +
                        "\": a memory queue lives inside one process, so messages sent by 'taskpipe " +
                        context.command +
                        "' would be lost when it exits. Use 'taskpipe run --config " +
                        (config.source_path.empty() ? std::string("FILE") : config.source_path) +
                        "' for local mode (producer, queue and consumers in one process), or set "
                        "queue.backend to \"sqs\" with queue.url or queue.name.");
  return false;
}

std::optional<OpenedQueue> OpenQueueOrReport(const Config& config, const CommandContext& context, int* exit_code) {
  StatusOr<OpenedQueue> opened = OpenQueue(config.queue, RealClock(), *context.redactor);
  if (!opened.ok()) {
    PrintCommandError(context, "cannot open the queue: " + opened.status().message());
    *exit_code = ExitFor(opened.status());
    return std::nullopt;
  }
  context.logger->info("queue: {}", opened->description);
  return std::move(*opened);
}

}  // namespace

void PrintCommandError(const CommandContext& context, const std::string& message) {
  std::cerr << "taskpipe " << context.command << ": " << context.redactor->Redact(message) << "\n";
}

LoadOptions MakeLoadOptions(const HandlerRegistry& registry) {
  LoadOptions options;
  options.validate_schedule = [](const JobConfig& job) -> std::optional<std::string> {
    ScheduleOptions schedule_options;
    schedule_options.timezone = job.timezone;
    StatusOr<Schedule> schedule = Schedule::Parse(job.schedule, schedule_options);
    if (schedule.ok()) return std::nullopt;
    return schedule.status().message();
  };
  options.validate_notify_target = CheckNotifyTarget;
  options.handler_types.clear();
  for (const std::string& name : registry.Names()) options.handler_types.insert(name);
  return options;
}

std::optional<Config> LoadConfigOrReport(const std::string& path, const CommandContext& context) {
  Config config;
  std::vector<ConfigProblem> problems = LoadConfigFileProblems(path, MakeLoadOptions(*context.registry), &config);
  if (!problems.empty()) {
    PrintCommandError(context, "invalid config \"" + path + "\" (" +
                                   Plural(problems.size(), "problem", "problems") + "):");
    for (const ConfigProblem& problem : problems) std::cerr << "  " << context.redactor->Redact(problem.ToString()) << "\n";
    return std::nullopt;
  }
  for (const std::string& secret : config.secrets) context.redactor->AddSecret(secret);
  return config;
}

int RunProduce(const ProduceFlags& flags, const CommandContext& context) {
  std::optional<Config> config = LoadConfigOrReport(flags.config_path, context);
  if (!config) return kExitUsage;
  if (!RequireSqs(*config, context)) return kExitUsage;
  int exit_code = kExitOk;
  std::optional<OpenedQueue> queue = OpenQueueOrReport(*config, context, &exit_code);
  if (!queue) return exit_code;

  SchedulerOptions options;
  options.state_file = flags.state_file;
  options.producer.fifo = queue->fifo;
  StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create(config->jobs, *queue->queue, RealClock(), context.logger, options);
  if (!scheduler.ok()) {
    PrintCommandError(context, scheduler.status().message());
    return ExitFor(scheduler.status());
  }

  if (flags.once) {
    std::optional<std::string> job;
    if (!flags.job.empty()) job = flags.job;
    Status status = (*scheduler)->RunOnce(job);
    if (status.code() == StatusCode::kNotFound) {
      PrintCommandError(context, "--job: " + status.message());
      return kExitUsage;
    }
    if (!status.ok()) {
      PrintCommandError(context, status.message());
      return kExitFailure;
    }
    return kExitOk;
  }

  Scheduler* running = scheduler->get();
  std::shared_ptr<spdlog::logger> logger = context.logger;
  ShutdownSignals signals(
      [running, logger](int signal) {
        logger->info("received {}: stopping the producer", signal == SIGINT ? "SIGINT" : "SIGTERM");
        running->Stop();
      },
      [logger](int) {
        logger->warn("second signal: exiting now");
        logger->flush();
        std::_Exit(kExitFailure);
      });
  std::size_t scheduled = 0;
  for (const JobConfig& job : config->jobs) scheduled += job.schedule.empty() ? 0 : 1;
  logger->info("producer started: {} ({} with a schedule){}", Plural(config->jobs.size(), "job", "jobs"), scheduled,
               flags.state_file.empty() ? "" : ", state file " + flags.state_file);
  running->Run();
  logger->info("producer stopped");
  return kExitOk;
}

int RunSend(const SendFlags& flags, const CommandContext& context) {
  std::optional<Config> config = LoadConfigOrReport(flags.config_path, context);
  if (!config) return kExitUsage;
  if (!RequireSqs(*config, context)) return kExitUsage;

  const JobConfig* job = nullptr;
  std::string body;
  if (flags.has_body) {
    if (flags.body == "-") {
      std::ostringstream in;
      in << std::cin.rdbuf();
      body = in.str();
    } else {
      body = flags.body;
    }
    if (body.empty()) {
      PrintCommandError(context, "--body: the message body is empty (SQS requires at least one character)");
      return kExitUsage;
    }
  } else {
    std::string known;
    for (const JobConfig& candidate : config->jobs) {
      if (candidate.name == flags.job) job = &candidate;
      known += (known.empty() ? "" : ", ") + candidate.name;
    }
    if (job == nullptr) {
      PrintCommandError(context, "--job: unknown job " + QuoteForError(flags.job) +
                                     (known.empty() ? " (the config defines no jobs)" : " (known: " + known + ")"));
      return kExitUsage;
    }
  }

  int exit_code = kExitOk;
  std::optional<OpenedQueue> queue = OpenQueueOrReport(*config, context, &exit_code);
  if (!queue) return exit_code;
  ProducerOptions options;
  options.fifo = queue->fifo;
  Producer producer(*queue->queue, RealClock(), context.logger, options);

  if (job == nullptr) {
    Status status = producer.SendBody(std::move(body));
    if (!status.ok()) {
      PrintCommandError(context, "the message was not sent: " + status.message());
      return ExitFor(status);
    }
    std::cout << "sent 1 message\n";
    return kExitOk;
  }
  const auto scheduled_at = std::chrono::floor<std::chrono::seconds>(RealClock().WallNow());
  FireResult result = producer.Fire(*job, scheduled_at);
  for (const std::string& error : result.errors) PrintCommandError(context, error);
  std::cout << "sent " << Plural(static_cast<std::size_t>(result.sent), "message", "messages") << " for job "
            << job->name;
  if (result.failed > 0) std::cout << "; " << result.failed << " failed";
  std::cout << "\n";
  return result.failed > 0 ? kExitFailure : kExitOk;
}

int RunNotifyTest(const NotifyTestFlags& flags, const CommandContext& context) {
  std::optional<Config> config = LoadConfigOrReport(flags.config_path, context);
  if (!config) return kExitUsage;
  std::vector<std::string> names;
  for (const auto& [name, target] : config->notify.targets) names.push_back(name);
  const auto found = config->notify.targets.find(flags.target);
  if (found == config->notify.targets.end()) {
    std::string known;
    for (const std::string& name : names) known += (known.empty() ? "" : ", ") + name;
    PrintCommandError(context, "unknown notify target " + QuoteForError(flags.target) +
                                   (names.empty() ? std::string(": the config defines no notify.targets")
                                                  : " (known: " + known + ")"));
    return kExitUsage;
  }
  std::optional<TaskStatus> status;
  for (TaskStatus s : {TaskStatus::kSuccess, TaskStatus::kFailure, TaskStatus::kTimeout, TaskStatus::kInvalid}) {
    if (flags.status == TaskStatusName(s)) status = s;
  }
  if (!status) {
    PrintCommandError(context, "--status: expected success, failure, timeout or invalid, got " +
                                   QuoteForError(flags.status));
    return kExitUsage;
  }
  StatusOr<std::unique_ptr<HttpClient>> http = NewCurlHttpClient();
  if (!http.ok()) {
    PrintCommandError(context, http.status().message());
    return kExitFailure;
  }
  Clock& clock = RealClock();
  WebhookTargetOptions options = DefaultWebhookOptions(found->second.type, 1);
  options.max_attempts = 3;
  StatusOr<std::unique_ptr<NotifyTarget>> target =
      NewNotifyTarget(found->first, found->second, options, **http, clock, context.make_logger("notify"), nullptr);
  if (!target.ok()) {
    PrintCommandError(context, target.status().message());
    return kExitUsage;
  }
  (*target)->Enqueue(SampleTaskResult(*status, clock.WallNow()));
  (*target)->Shutdown(clock.Now() + std::chrono::seconds(flags.timeout_seconds));
  const NotifyStats stats = (*target)->Stats();
  const std::string what = "a sample " + flags.status + " result to " + QuoteForError(found->first) + " (" +
                           found->second.type + ")";
  if (stats.delivered == 1) {
    std::cout << "taskpipe notify-test: delivered " << what << "\n";
    return kExitOk;
  }
  std::string why = "it was not delivered";
  if (stats.dropped_dead > 0) {
    why = "the webhook is gone or refused us (check its URL)";
  } else if (stats.dropped_rejected > 0) {
    why = "the platform rejected the message";
  } else if (stats.dropped_failed > 0) {
    why = "every attempt failed";
  } else if (stats.dropped_deadline > 0) {
    why = "no answer within " + std::to_string(flags.timeout_seconds) + " s";
  }
  PrintCommandError(context, "could not deliver " + what + ": " + why + "; the log line above says more");
  return kExitFailure;
}

}  // namespace taskpipe
