// taskpipe's configuration: plain option structs with documented defaults (leveldb options.h).
// The JSON loader is config/config_json.h; DESIGN.md lists the keys. Plain values; not synchronised.
#ifndef TASKPIPE_CONFIG_CONFIG_H_
#define TASKPIPE_CONFIG_CONFIG_H_

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace taskpipe {

struct QueueConfig {
  std::string backend = "memory";  // "memory" | "sqs"
  std::string url{};                 // SQS queue URL, or
  std::string name{};                // queue name, resolved with GetQueueUrl
  std::string region{};              // else AWS_REGION / AWS_DEFAULT_REGION / profile
  std::string endpoint{};            // else AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL
  std::string protocol = "json";   // "json" | "query"
  std::chrono::seconds visibility_timeout{30};  // 0..12h
  std::chrono::seconds wait_time{20};           // long poll, 0..20s
  std::chrono::seconds retention{4 * 24 * 3600};  // memory backend, 60s..14d
  int max_receive_count = 5;       // memory backend: receives before the dead-letter queue; 0 = never
};

struct RetryConfig {
  std::chrono::seconds base{5};
  std::chrono::seconds max{15 * 60};
};

struct ConsumerConfig {
  int workers = 8;        // 1..1024
  int batch_size = 10;    // 1..10
  int pollers = 1;        // 1..16: threads receiving for the workers (SQS backend)
  std::chrono::seconds shutdown_grace{30};
  RetryConfig retry{};
  std::string default_job{};  // job for bodies that are not a taskpipe envelope; "" = fail them
};

struct NotifyTargetConfig {
  std::string type{};  // "slack" | "discord"
  std::string url{};   // a secret: never logged
  // Message templates with {job}, {status}, {output}, ... placeholders (notify/webhook_format.h);
  // "" = the platform's default.
  std::string title{};
  std::string body{};
  // Who is mentioned when a task fails, times out or cannot be handled. Slack: user ids "U…"/"W…",
  // user group ids "S…", "here", "channel", "everyone". Discord: user ids ("123…" or "user:123…")
  // and role ids ("role:456…").
  std::vector<std::string> mention_on_failure{};
  std::string username{};  // Discord: overrides the webhook's name
  int outbox = 1000;       // results waiting for delivery before new ones are dropped (counted)
};

struct NotifyConfig {
  std::map<std::string, NotifyTargetConfig> targets{};
  // At shutdown, how long the targets may keep delivering what is queued.
  std::chrono::seconds flush_timeout{10};
};

struct HandlerConfig {
  std::string type = "log";               // "exec" | "http" | "log" | a name registered from C++
  std::vector<std::string> command{};       // exec: argv, no shell
  std::string cwd{};                        // exec
  std::map<std::string, std::string> env{}; // exec: extra environment
  std::string url{};                        // http
  std::string method = "POST";            // http
  std::map<std::string, std::string> headers{};  // http (values may hold secrets)
  std::chrono::seconds timeout{10 * 60};
  // Handlers registered from C++ only: the handler's "options" object as written, after ${VAR}
  // expansion (null when absent). Such handlers may also use the keys above.
  nlohmann::json options{};
};

struct JobNotifyConfig {
  std::vector<std::string> targets{};  // names from notify.targets
  std::string on = "failure";        // "success" | "failure" | "always" | "recovered"
};

struct JobConfig {
  std::string name{};
  std::string schedule{};              // rate(...) | cron(...) | at(...); "" = only on demand
  std::string timezone = "UTC";      // IANA zone
  // Each a string or an object. The loader fills this from "tasks" or from the tasks file; a job
  // with neither sends one empty-object task: the loader then sets tasks to {json::object()}.
  // It is never empty after a successful load.
  std::vector<nlohmann::json> tasks{};
  std::string tasks_file{};            // resolved relative to the config file's folder; "" = none
  HandlerConfig handler{};
  JobNotifyConfig notify{};
  // After a producer outage, replay the most recent missed fire once (the scheduler's state file
  // remembers the last fire). false: missed fires are skipped, as EventBridge does.
  bool catch_up = false;
  // FIFO queues: the MessageGroupId (1-128 printable ASCII characters, as SQS allows); "" = the
  // job's name.
  std::string message_group_id{};
};

// The HTTP endpoint of `consume` and `run` (GET /healthz, GET /metrics; app/metrics.h).
struct MetricsConfig {
  int port = 0;                       // 0: no endpoint (--metrics-port overrides)
  std::string address = "127.0.0.1";  // an IP literal; "0.0.0.0" or "::" to listen on every interface
  // /healthz answers 503 once every receive for this long has failed.
  std::chrono::seconds unhealthy_after{60};
};

struct Config {
  QueueConfig queue{};
  ConsumerConfig consumer{};
  NotifyConfig notify{};
  MetricsConfig metrics{};
  std::vector<JobConfig> jobs{};
  std::string source_path{};  // the file it was loaded from ("" when loaded from text)
  // Every secret the config holds after ${VAR} expansion (webhook URLs, header values such as
  // bearer tokens, env values of exec handlers, and the value of any ${VAR} whose name contains
  // TOKEN, SECRET, PASSW, KEY, WEBHOOK, CREDENTIAL or AUTH), for the log redactor. Values shorter
  // than 4 characters are left out. No duplicates.
  std::vector<std::string> secrets{};
};

}  // namespace taskpipe

#endif  // TASKPIPE_CONFIG_CONFIG_H_
