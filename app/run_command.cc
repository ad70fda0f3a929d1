// `taskpipe run` and `taskpipe consume`: the consumer pool, with the producer in the same process
// for `run` (local mode).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "app/commands.h"
#include "app/metrics.h"
#include "app/queue_wiring.h"
#include "app/signals.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/task_result.h"
#include "consumer/consumer.h"
#include "consumer/handler.h"
#include "net/curl_http_client.h"
#include "net/http_server.h"
#include "notify/dispatcher.h"
#include "producer/scheduler.h"
#include "queue/in_memory_queue.h"

namespace taskpipe {
namespace {

// The one line logged per task result: info on success, warn otherwise (with the error and the
// last line of output, which is what a reader needs to tell what happened).
// `quiet_output`: the handler already printed its output (the log handler).
void LogResult(spdlog::logger& logger, const TaskResult& result, bool quiet_output) {
  std::string line = "job " + (result.job.empty() ? std::string("?") : result.job) + " task " + result.task + ": " +
                     TaskStatusName(result.status) + " in " + FormatDuration(result.duration) + " (message " +
                     result.message_id + ", receive " + std::to_string(result.receive_count) + ")";
  std::string last = result.output;
  while (!last.empty() && (last.back() == '\n' || last.back() == '\r')) last.pop_back();
  if (std::size_t nl = last.rfind('\n'); nl != std::string::npos) last = last.substr(nl + 1);
  if (last.size() > 300) last = last.substr(last.size() - 300);
  if (result.status == TaskStatus::kSuccess) {
    if (!last.empty() && !quiet_output) line += "; output ends: " + last;
    logger.info("{}", line);
    return;
  }
  line += ": " + result.error;
  if (!last.empty()) line += "; output ends: " + last;
  line += result.will_retry ? "; will retry" : "; no retries left (dead-letter queue)";
  logger.warn("{}", line);
}

// Waits for the first shutdown signal; a second one stops the consumer at once.
class StopRequest {
 public:
  void Request() {
    std::lock_guard<std::mutex> lock(mu_);
    requested_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return requested_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
};

const char* SignalName(int signal) { return signal == SIGINT ? "SIGINT" : "SIGTERM"; }

}  // namespace

int RunConsumer(const ConsumeFlags& flags, const CommandContext& context) {
  std::optional<Config> config = LoadConfigOrReport(flags.config_path, context);
  if (!config) return kExitUsage;
  if (!flags.local && config->queue.backend != "sqs") {
    PrintCommandError(context,
                      "queue.backend is \"" + config->queue.backend +
                          "\": a memory queue lives inside one process, and no producer runs in this one. Use "
                          "'taskpipe run --config " + flags.config_path +
                          "' for local mode (producer, queue and consumers in one process), or set queue.backend "
                          "to \"sqs\" with queue.url or queue.name.");
    return kExitUsage;
  }
  Clock& clock = RealClock();
  std::shared_ptr<spdlog::logger> logger = context.logger;

  StatusOr<OpenedQueue> opened = OpenQueue(config->queue, clock, *context.redactor);
  if (!opened.ok()) {
    PrintCommandError(context, "cannot open the queue: " + opened.status().message());
    return opened.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  logger->info("queue: {}", opened->description);

  // One handler per job, made before anything starts so that a bad handler config stops us here.
  StatusOr<std::unique_ptr<HttpClient>> http = NewCurlHttpClient();
  if (!http.ok()) {
    PrintCommandError(context, http.status().message());
    return kExitFailure;
  }
  std::shared_ptr<spdlog::logger> task_logger = context.make_logger("task");
  HandlerDeps deps{.clock = clock, .http = **http, .logger = task_logger};
  std::map<std::string, std::unique_ptr<Handler>> handlers;
  std::map<std::string, ConsumerJob, std::less<>> jobs;
  for (std::size_t i = 0; i < config->jobs.size(); ++i) {
    const JobConfig& job = config->jobs[i];
    StatusOr<std::unique_ptr<Handler>> handler = context.registry->Create(job.handler, deps);
    if (!handler.ok()) {
      PrintCommandError(context, "jobs[" + std::to_string(i) + "].handler (job " + job.name +
                                     "): " + handler.status().message());
      return kExitUsage;
    }
    jobs[job.name] = ConsumerJob{.handler = handler->get(), .timeout = job.handler.timeout};
    handlers[job.name] = std::move(*handler);
  }

  ConsumerOptions options = ConsumerOptionsFromConfig(*config);
  if (config->queue.backend == "sqs") {
    // The queue's redrive policy says which delivery is the last: results then say "no retries
    // left" and taskpipe_tasks_dead_lettered_total counts them. Not knowing it costs nothing else.
    StatusOr<QueueAttributes> attributes = opened->queue->GetAttributes();
    if (!attributes.ok()) {
      logger->warn("cannot read the queue's redrive policy ({}); every failure will be reported as retried",
                   attributes.status().ToString());
    } else if (attributes->max_receive_count > 0) {
      options.max_receive_count = attributes->max_receive_count;
      logger->info("queue redrive policy: a message goes to the dead-letter queue after {} receives",
                   attributes->max_receive_count);
    } else {
      logger->info("the queue has no redrive policy: failing messages come back until retention ends");
    }
  }
  std::set<std::string> log_jobs;  // jobs whose handler prints the task itself
  for (const JobConfig& job : config->jobs) {
    if (job.handler.type == "log") log_jobs.insert(job.name);
  }
  // Chat notifications: each target has its own outbox and thread; posting never blocks a worker.
  StatusOr<std::unique_ptr<NotifyDispatcher>> notifier =
      NewNotifyDispatcher(*config, **http, clock, context.make_logger("notify"));
  if (!notifier.ok()) {
    PrintCommandError(context, notifier.status().message());
    return kExitUsage;
  }
  NotifyDispatcher* dispatcher = notifier->get();
  std::shared_ptr<spdlog::logger> result_logger = task_logger;
  Consumer consumer(
      *opened->queue, clock, std::move(jobs),
      [result_logger, log_jobs, dispatcher](const TaskResult& result) {
        LogResult(*result_logger, result, log_jobs.count(result.job) > 0);
        dispatcher->OnResult(result);
      },
      context.make_logger("consumer"), options);

  // GET /healthz and GET /metrics, when asked for. Declared after the consumer, the dispatcher and
  // the queue it reads, so it stops before they go.
  MetricsConfig metrics = config->metrics;
  if (flags.metrics_port) metrics.port = *flags.metrics_port;
  if (flags.metrics_address) metrics.address = *flags.metrics_address;
  std::atomic<bool> draining{false};
  std::unique_ptr<HttpServer> metrics_server;
  // --metrics-port 0 asks for any free port (the log line says which); metrics.port 0 means none.
  if (metrics.port != 0 || flags.metrics_port.has_value()) {
    SqsRequestCounters* sqs_counters = opened->sqs_counters.get();
    const int workers = options.workers;
    auto snapshot = [&consumer, &draining, sqs_counters, dispatcher, workers] {
      MetricsSnapshot s;
      s.consumer = consumer.stats();
      s.workers = workers;
      s.draining = draining.load();
      if (sqs_counters != nullptr) s.sqs = sqs_counters->Snapshot();
      s.notify = dispatcher->Stats();
      s.version = TASKPIPE_VERSION;
      return s;
    };
    const std::chrono::seconds unhealthy_after = metrics.unhealthy_after;
    StatusOr<std::unique_ptr<HttpServer>> server = StartHttpServer(
        HttpServerOptions{.address = metrics.address, .port = metrics.port},
        [snapshot, &clock, unhealthy_after](const HttpServerRequest& request) {
          return ServeMetricsRequest(request, snapshot(), clock.Now(), unhealthy_after);
        });
    if (!server.ok()) {
      PrintCommandError(context, "metrics endpoint: " + server.status().message());
      return server.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
    }
    metrics_server = std::move(*server);
    const std::string base = MetricsBaseUrl(metrics.address, metrics_server->port());
    logger->info("metrics: {}/metrics, health: {}/healthz", base, base);
  }

  std::unique_ptr<Scheduler> scheduler;
  if (flags.local) {
    SchedulerOptions scheduler_options;
    scheduler_options.state_file = flags.state_file;
    scheduler_options.producer.fifo = opened->fifo;
    StatusOr<std::unique_ptr<Scheduler>> created =
        Scheduler::Create(config->jobs, *opened->queue, clock, context.make_logger("producer"), scheduler_options);
    if (!created.ok()) {
      PrintCommandError(context, created.status().message());
      return kExitUsage;
    }
    scheduler = std::move(*created);
  }

  StopRequest stop;
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::atomic<bool> second_signal{false};
  Scheduler* scheduler_ptr = scheduler.get();
  ShutdownSignals signals(
      [&stop, logger, &options](int signal) {
        logger->info("received {}: draining (running tasks get up to {} to finish; send it again to exit now)",
                     SignalName(signal), FormatDuration(options.shutdown_grace));
        stop.Request();
      },
      [&, logger](int signal) {
        logger->warn("received {} again: stopping running tasks and exiting now", SignalName(signal));
        second_signal = true;
        if (scheduler_ptr != nullptr) scheduler_ptr->Stop();
        consumer.StopNow();
        // Give the workers a moment to kill their children and release their messages, then go.
        std::unique_lock<std::mutex> lock(done_mu);
        if (!done_cv.wait_for(lock, std::chrono::seconds(2), [&] { return done; })) {
          logger->flush();
          std::_Exit(kExitFailure);
        }
      });

  consumer.Start();
  std::thread producer_thread;
  if (scheduler) producer_thread = std::thread([&] { scheduler->Run(); });
  logger->info("{} started: {} worker{}, {} job{}; stop with Ctrl-C or SIGTERM",
               flags.local ? "local mode" : "consumer", options.workers, options.workers == 1 ? "" : "s",
               config->jobs.size(), config->jobs.size() == 1 ? "" : "s");

  stop.Wait();
  draining = true;
  if (scheduler) {
    scheduler->Stop();
    producer_thread.join();
  }
  consumer.Stop();
  const ConsumerStats stats = consumer.stats();
  logger->info("stopped: {} received, {} succeeded, {} failed, {} timed out, {} invalid, {} released", stats.received,
               stats.succeeded, stats.failed, stats.timed_out, stats.invalid, stats.released);
  if (!dispatcher->empty()) {
    // Results still waiting for a chat webhook get notify.flush_timeout; what is left is dropped
    // and counted (each target logs its own line).
    dispatcher->Shutdown(clock.Now() + config->notify.flush_timeout);
  }
  if (opened->dead_letter) {
    StatusOr<std::vector<ReceivedMessage>> dead = PeekInMemoryQueue(*opened->dead_letter);
    if (dead.ok() && !dead->empty()) {
      logger->warn("{} message{} in the local dead-letter queue (lost when this process exits)", dead->size(),
                   dead->size() == 1 ? " is" : "s are");
    }
  }
  {
    std::lock_guard<std::mutex> lock(done_mu);
    done = true;
  }
  done_cv.notify_all();
  return second_signal ? kExitFailure : kExitOk;
}

}  // namespace taskpipe
