// The taskpipe command line: argument parsing, then the command (app/commands.h). Exit status:
// 0 success, 2 bad usage/config/expression (one clear line on stderr per fault), 1 runtime failure.
#include "app/cli.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "app/commands.h"
#include "app/metrics.h"
#include "app/signals.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/logging.h"
#include "common/redact.h"
#include "common/status.h"
#include "common/time_format.h"
#include "config/config.h"
#include "config/config_json.h"
#include "producer/schedule.h"

namespace taskpipe {
namespace {

constexpr char kDescription[] =
    "taskpipe: a scheduled fan-out task pipeline.\n"
    "A producer fires jobs on EventBridge Scheduler expressions (rate, cron, at) and sends their\n"
    "tasks to a queue (AWS SQS, or an in-process queue in local mode); a pool of consumers runs\n"
    "each task's handler and posts results to Slack or Discord.";

constexpr char kFooter[] =
    "\nExamples:\n"
    "  taskpipe check --config examples/local.json\n"
    "      validate a config and show each job's next fire times\n"
    "  taskpipe next 'cron(0 9 ? * MON-FRI *)' --tz Asia/Taipei --count 3\n"
    "      the next three weekday 09:00 fires in Taipei, in UTC\n"
    "  taskpipe next 'rate(15 minutes)' --start 2026-01-01T00:00:00Z --after 2026-03-08T10:07:00Z\n"
    "\nExit status: 0 success, 2 bad usage, config or expression, 1 runtime failure.\n"
    "Run 'taskpipe COMMAND --help' for a command's options.";

struct GlobalFlags {
  std::string log_level = "info";
  std::string log_format = "text";
};

// Prints `message` on stderr as "taskpipe COMMAND: message", each line passed through the
// redactor so that a secret quoted in an error never reaches the terminal or a log collector.
void PrintError(const std::string& command, const std::string& message, const Redactor& redactor) {
  std::cerr << "taskpipe " << command << ": " << redactor.Redact(message) << "\n";
}

StatusOr<std::shared_ptr<spdlog::logger>> MakeLogger(const GlobalFlags& flags,
                                                     std::shared_ptr<const Redactor> redactor,
                                                     const std::string& name = "taskpipe") {
  StatusOr<spdlog::level::level_enum> level = ParseLogLevel(flags.log_level);
  if (!level.ok()) return level.status().WithContext("--log-level");
  StatusOr<LogFormat> format = ParseLogFormat(flags.log_format);
  if (!format.ok()) return format.status().WithContext("--log-format");
  return NewLogger(name, {.level = *level, .format = *format}, std::move(redactor));
}

ScheduleOptions JobScheduleOptions(const JobConfig& job, std::chrono::system_clock::time_point created_at) {
  ScheduleOptions options;
  options.timezone = job.timezone;
  options.created_at = created_at;
  return options;
}

std::string Plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// taskpipe check --config F
int RunCheck(const std::string& config_path, int count, Redactor& redactor, const HandlerRegistry& registry) {
  Config config;
  std::vector<ConfigProblem> problems = LoadConfigFileProblems(config_path, MakeLoadOptions(registry), &config);
  if (!problems.empty()) {
    std::cerr << "taskpipe check: " << redactor.Redact("invalid config \"" + config_path + "\" (" +
                                                       Plural(problems.size(), "problem", "problems") + "):")
              << "\n";
    for (const ConfigProblem& problem : problems) std::cerr << "  " << redactor.Redact(problem.ToString()) << "\n";
    return kExitUsage;
  }
  for (const std::string& secret : config.secrets) redactor.AddSecret(secret);

  const auto now = RealClock().WallNow();
  std::string out;
  out += "config OK: " + config_path + "\n";
  const QueueConfig& q = config.queue;
  if (q.backend == "sqs") {
    out += "queue: sqs " + (q.url.empty() ? "name " + q.name : RedactUrl(q.url)) + " (" + q.protocol +
           " protocol, visibility " + FormatDuration(q.visibility_timeout) + ", wait " +
           FormatDuration(q.wait_time) + ")\n";
  } else {
    out += "queue: memory (visibility " + FormatDuration(q.visibility_timeout) + ", wait " +
           FormatDuration(q.wait_time) + ", retention " + FormatDuration(q.retention) + ", " +
           (q.max_receive_count > 0 ? "dead-letter after " + Plural(q.max_receive_count, "receive", "receives")
                                    : std::string("no dead-letter queue")) +
           ")\n";
  }
  const ConsumerConfig& c = config.consumer;
  out += "consumer: " + Plural(c.workers, "worker", "workers") +
         (q.backend == "sqs" ? ", " + Plural(c.pollers, "poller", "pollers") + " receiving up to " +
                                   std::to_string(c.batch_size) + " at a time"
                             : std::string(", each receiving for itself")) +
         ", shutdown grace " + FormatDuration(c.shutdown_grace) + ", retry " + FormatDuration(c.retry.base) +
         " doubling up to " + FormatDuration(c.retry.max) + "\n";
  if (config.metrics.port != 0) {
    out += "metrics: " + MetricsBaseUrl(config.metrics.address, config.metrics.port) +
           " (/healthz unhealthy after " + FormatDuration(config.metrics.unhealthy_after) + " of failed receives)\n";
  }
  if (!config.notify.targets.empty()) {
    out += "notify targets:";
    for (const auto& [name, target] : config.notify.targets) out += " " + name + " (" + target.type + ")";
    out += "\n";
  }
  out += "jobs (" + std::to_string(config.jobs.size()) + "):\n";
  for (const JobConfig& job : config.jobs) {
    out += "  " + job.name + ": " + (job.schedule.empty() ? "no schedule (send on demand)" : job.schedule);
    if (!job.schedule.empty()) out += " in " + job.timezone;
    out += "; " + Plural(job.tasks.size(), "task", "tasks") + "; handler " + job.handler.type;
    if (!job.notify.targets.empty()) {
      out += "; notify";
      for (const std::string& target : job.notify.targets) out += " " + target;
      out += " on " + job.notify.on;
    }
    out += "\n";
    if (job.schedule.empty()) continue;
    StatusOr<Schedule> schedule = Schedule::Parse(job.schedule, JobScheduleOptions(job, now));
    if (!schedule.ok()) {  // validated above; kept so that a parser change cannot crash check
      PrintError("check", "jobs " + job.name + ": " + schedule.status().message(), redactor);
      return kExitUsage;
    }
    std::vector<std::chrono::system_clock::time_point> fires = schedule->NextN(now, count);
    if (fires.empty()) out += "    no fire times after now\n";
    for (auto t : fires) {
      out += "    next " + FormatRfc3339Utc(t);
      if (job.timezone != "UTC") {
        StatusOr<std::string> local = FormatInZone(t, job.timezone);
        if (local.ok()) out += "  = " + *local;
      }
      out += "\n";
    }
  }
  std::cout << redactor.Redact(out);
  return kExitOk;
}

struct NextFlags {
  std::string expression;
  std::string tz = "UTC";
  std::string after;
  std::string start;
  std::string end;
  int count = 5;
};

// taskpipe next EXPR [--tz ZONE] [--after T] [--start T] [--end T] [--count N]
int RunNext(const NextFlags& flags, const Redactor& redactor) {
  auto parse_time = [&](const std::string& flag, const std::string& text,
                        std::optional<std::chrono::system_clock::time_point>* into) -> bool {
    if (text.empty()) return true;
    StatusOr<std::chrono::system_clock::time_point> t = ParseRfc3339(text);
    if (!t.ok()) {
      PrintError("next", flag + ": " + t.status().message(), redactor);
      return false;
    }
    *into = *t;
    return true;
  };
  std::optional<std::chrono::system_clock::time_point> after, start, end;
  if (!parse_time("--after", flags.after, &after) || !parse_time("--start", flags.start, &start) ||
      !parse_time("--end", flags.end, &end)) {
    return kExitUsage;
  }
  if (flags.count < 1 || flags.count > 100000) {
    PrintError("next", "--count: expected 1 to 100000, got " + std::to_string(flags.count), redactor);
    return kExitUsage;
  }
  const auto from = after.value_or(RealClock().WallNow());
  ScheduleOptions options;
  options.timezone = flags.tz;
  options.start = start;
  options.end = end;
  // Without --start, rate() is anchored where the listing starts: a schedule created at that
  // instant (AWS: a rate schedule without StartDate "starts invoking the target immediately").
  options.created_at = from;
  StatusOr<Schedule> schedule = Schedule::Parse(flags.expression, options);
  if (!schedule.ok()) {
    PrintError("next", schedule.status().message(), redactor);
    return kExitUsage;
  }
  std::vector<std::chrono::system_clock::time_point> fires = schedule->NextN(from, flags.count);
  std::string out;
  for (auto t : fires) out += FormatRfc3339Utc(t) + "\n";
  std::cout << out;
  if (fires.empty()) std::cerr << "taskpipe next: no fire times after " << FormatRfc3339Utc(from) << "\n";
  return kExitOk;
}

void AddMetricsOptions(CLI::App& command, ConsumeFlags& flags) {
  command.add_option("--metrics-port", flags.metrics_port,
                     "Serve GET /healthz and GET /metrics (Prometheus) on this port (overrides metrics.port; "
                     "0: any free port, logged)")
      ->check(CLI::Range(0, 65535));
  command.add_option("--metrics-address", flags.metrics_address,
                     "Address the metrics port listens on (overrides metrics.address; default 127.0.0.1, "
                     "this host only)");
}

}  // namespace

int RunTaskpipeCli(int argc, char** argv, const HandlerRegistry& registry) {
  auto redactor = std::make_shared<Redactor>();
  CLI::App app(kDescription, "taskpipe");
  app.footer(kFooter);
  app.set_version_flag("--version", std::string("taskpipe ") + TASKPIPE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global flags may come after the command too

  GlobalFlags global;
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  app.add_option("--log-format", global.log_format, "text, or json (one object per line)")->capture_default_str();

  std::string config_path;
  int check_count = 3;
  CLI::App* check = app.add_subcommand(
      "check", "Validate a config: report every problem with its path (exit 2), or list the queue, the "
               "consumer settings and each job with its next fire times");
  check->add_option("--config,-c", config_path, "Config file (JSON with comments)")->required();
  check->add_option("--count", check_count, "Fire times to list per job")->capture_default_str()
      ->check(CLI::Range(1, 1000));

  NextFlags next_flags;
  CLI::App* next = app.add_subcommand(
      "next", "Print a schedule expression's next fire instants, one per line in UTC RFC 3339");
  next->add_option("expression", next_flags.expression,
                   "rate(N minute|minutes|hour|hours|day|days), cron(min hour dom month dow year) or "
                   "at(yyyy-mm-ddThh:mm:ss), as in EventBridge Scheduler")
      ->required();
  next->add_option("--tz", next_flags.tz, "IANA time zone the expression is read in")->capture_default_str();
  next->add_option("--after", next_flags.after,
                   "List instants strictly after this one (RFC 3339; default: now)");
  next->add_option("--start", next_flags.start, "The schedule's StartDate (inclusive; anchors rate())");
  next->add_option("--end", next_flags.end, "The schedule's EndDate (inclusive)");
  next->add_option("--count,-n", next_flags.count, "How many instants to print")->capture_default_str();
  next->footer(
      "\nExamples:\n"
      "  taskpipe next 'cron(0 12 * * ? *)' --tz Asia/Taipei\n"
      "  taskpipe next 'cron(0 2 ? * SUN *)' --tz America/New_York --after 2026-03-01T00:00:00Z -n 3\n"
      "  taskpipe next 'rate(1 day)' --start 2026-01-01T06:00:00Z -n 2");

  ConsumeFlags run_flags;
  CLI::App* run = app.add_subcommand(
      "run", "Local mode: producer, in-memory queue and consumer pool in one process, until SIGINT/SIGTERM "
             "(first signal: drain and exit 0; second: exit at once)");
  run->add_option("--config,-c", run_flags.config_path, "Config file (JSON with comments)")->required();
  run->add_option("--state", run_flags.state_file,
                  "File that remembers each job's last fire, for jobs with \"catch_up\": true");
  AddMetricsOptions(*run, run_flags);
  run->footer(
      "\nEvery job with a schedule fires on it; each task runs its job's handler on one of\n"
      "consumer.workers threads. With queue.backend \"sqs\" the same process produces to and consumes\n"
      "from that queue.\n"
      "\nExample:\n"
      "  taskpipe run --config examples/local.json");

  ConsumeFlags consume_flags;
  CLI::App* consume = app.add_subcommand(
      "consume", "The worker service: long-poll the queue and run each task's handler, until SIGINT/SIGTERM "
                 "(first signal: drain and exit 0; second: exit at once)");
  consume->add_option("--config,-c", consume_flags.config_path, "Config file (JSON with comments)")->required();
  AddMetricsOptions(*consume, consume_flags);
  consume->footer(
      "\nOn success a message is deleted; on failure it comes back after a back-off that doubles with\n"
      "each receive (consumer.retry), and after the queue's maxReceiveCount it moves to the\n"
      "dead-letter queue. Visibility is extended while a handler runs.\n"
      "\nWith --metrics-port, GET /healthz answers 200 while receiving works and 503 once every\n"
      "receive for metrics.unhealthy_after (60 s) has failed; GET /metrics is Prometheus text.\n"
      "\nExamples:\n"
      "  AWS_REGION=us-east-1 taskpipe consume --config prod.json --log-format json\n"
      "  taskpipe consume --config prod.json --metrics-port 9464 &  curl -s 127.0.0.1:9464/healthz");

  ProduceFlags produce_flags;
  CLI::App* produce = app.add_subcommand(
      "produce", "The scheduler daemon: fire every job on its schedule and send its tasks to the queue, "
                 "until SIGINT/SIGTERM; or, with --once, fire now and exit");
  produce->add_option("--config,-c", produce_flags.config_path, "Config file (JSON with comments)")->required();
  CLI::Option* once = produce->add_flag(
      "--once", produce_flags.once, "Fire now (every job, or the one --job names) and exit: for an outside trigger");
  produce->add_option("--job", produce_flags.job, "With --once: fire only this job")->needs(once);
  produce->add_option("--state", produce_flags.state_file,
                      "File that remembers each job's last fire, for jobs with \"catch_up\": true "
                      "(created if missing)");
  produce->footer(
      "\nThe queue must be SQS (queue.backend \"sqs\"): a memory queue lives inside one process, so use\n"
      "'taskpipe run' for local mode. Fires missed while no producer ran are skipped, as EventBridge\n"
      "does, except for jobs with \"catch_up\": true given --state.\n"
      "\nExamples:\n"
      "  taskpipe produce --config prod.json --state /var/lib/taskpipe/state.json\n"
      "  taskpipe produce --config prod.json --once --job daily-report");

  SendFlags send_flags;
  CLI::App* send = app.add_subcommand(
      "send", "Enqueue ad hoc: one job's tasks now (--job), or one message body as is (--body TEXT, "
              "or --body - to read standard input)");
  send->add_option("--config,-c", send_flags.config_path, "Config file (JSON with comments)")->required();
  CLI::Option* send_job = send->add_option("--job", send_flags.job, "Send this job's tasks, as a fire would");
  CLI::Option* send_body =
      send->add_option("--body", send_flags.body, "Send this text as the message body; - reads standard input");
  send_job->excludes(send_body);
  send_body->excludes(send_job);
  send->footer(
      "\nA body that is not a taskpipe envelope goes to consumer.default_job, or fails and ends in the\n"
      "dead-letter queue.\n"
      "\nExamples:\n"
      "  taskpipe send --config prod.json --job daily-report\n"
      "  echo '{\"job\":\"daily-report\",\"task\":\"x\",...}' | taskpipe send --config prod.json --body -");

  NotifyTestFlags notify_flags;
  CLI::App* notify_test = app.add_subcommand(
      "notify-test", "Post a sample task result to one chat target (Slack or Discord webhook) and say whether "
                     "it was delivered: check a webhook before relying on it");
  notify_test->add_option("--config,-c", notify_flags.config_path, "Config file (JSON with comments)")->required();
  notify_test->add_option("--target,-t", notify_flags.target, "A target name from notify.targets")->required();
  notify_test->add_option("--status", notify_flags.status, "The sample's status: success, failure, timeout or invalid")
      ->capture_default_str();
  notify_test->add_option("--timeout", notify_flags.timeout_seconds, "Seconds to keep trying (retries included)")
      ->capture_default_str()
      ->check(CLI::Range(1, 600));
  notify_test->footer(
      "\nThe sample is formatted with the target's templates and mentions, like a real result of job\n"
      "\"notify-test\". Exit status: 0 delivered, 1 not delivered (the log says why), 2 bad usage or config.\n"
      "\nExample:\n"
      "  SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... taskpipe notify-test -c prod.json -t team-slack");

  // CLI11 reports an unknown command as "A subcommand is required"; name it instead.
  std::vector<CLI::App*> commands = app.get_subcommands([](CLI::App*) { return true; });
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--log-level" || arg == "--log-format") {
      ++i;
      continue;
    }
    if (arg.empty() || arg[0] == '-') continue;
    bool known = false;
    std::string names;
    for (CLI::App* command : commands) {
      known = known || command->get_name() == arg;
      names += (names.empty() ? "" : ", ") + command->get_name();
    }
    if (!known) {
      std::cerr << "taskpipe: unknown command \"" << RedactKnownSecrets(arg) << "\" (commands: " << names
                << ")\nRun 'taskpipe --help' for usage.\n";
      return kExitUsage;
    }
    break;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name() + " ";
    std::cerr << "taskpipe " << where << "error: " << e.what() << "\n"
              << "Run 'taskpipe " << where << "--help' for usage.\n";
    return kExitUsage;
  }

  StatusOr<std::shared_ptr<spdlog::logger>> logger = MakeLogger(global, redactor);
  if (!logger.ok()) {
    PrintError(app.get_subcommands().front()->get_name(), logger.status().message(), *redactor);
    return kExitUsage;
  }
  CommandContext context{.command = app.get_subcommands().front()->get_name(),
                         .logger = *logger,
                         .make_logger =
                             [&global, redactor](const std::string& name) {
                               StatusOr<std::shared_ptr<spdlog::logger>> made = MakeLogger(global, redactor, name);
                               return made.ok() ? *made : NullLogger();
                             },
                         .redactor = redactor,
                         .registry = &registry};
  try {
    if (check->parsed()) return RunCheck(config_path, check_count, *redactor, registry);
    if (next->parsed()) return RunNext(next_flags, *redactor);
    if (produce->parsed()) return RunProduce(produce_flags, context);
    if (run->parsed()) {
      run_flags.local = true;
      return RunConsumer(run_flags, context);
    }
    if (consume->parsed()) return RunConsumer(consume_flags, context);
    if (notify_test->parsed()) return RunNotifyTest(notify_flags, context);
    if (send->parsed()) {
      send_flags.has_body = send->count("--body") > 0;
      if (!send_flags.has_body && send->count("--job") == 0) {
        PrintCommandError(context, "say what to send: --job NAME (that job's tasks) or --body TEXT (- reads "
                                   "standard input)\nRun 'taskpipe send --help' for usage.");
        return kExitUsage;
      }
      return RunSend(send_flags, context);
    }
  } catch (const spdlog::spdlog_ex& e) {
    std::cerr << "taskpipe: logging failed: " << e.what() << "\n";
    return kExitFailure;
  }
  return kExitUsage;
}

}  // namespace taskpipe
