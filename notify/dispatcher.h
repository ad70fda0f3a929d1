// From the config to delivered chat messages: builds the Slack and Discord targets that
// `notify.targets` describes, and routes each TaskResult to the targets its job's `notify` rule
// names, when the rule's `on` says so.
//
//   "notify": {"targets": {"team-slack": {"type": "slack", "url": "${SLACK_WEBHOOK_URL}"}}},
//   "jobs": [{"name": "report", ..., "notify": {"targets": ["team-slack"], "on": "failure"}}]
//
// `on`: "success" (a success), "failure" (every failed, timed-out or unhandleable delivery, retried
// or not), "always" (both), "recovered" (the first success after a failure of the same job, as this
// process has seen them). Results that name no known job are not notified (they are logged).
#ifndef TASKPIPE_NOTIFY_DISPATCHER_H_
#define TASKPIPE_NOTIFY_DISPATCHER_H_

#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/task_result.h"
#include "config/config.h"
#include "net/http_client.h"
#include "notify/notify.h"
#include "notify/webhook_target.h"

namespace taskpipe {

// The config loader's deep check of one target (LoadOptions::validate_notify_target): the Discord
// URL's shape, the templates' placeholders, the mention ids and the username. Returns (key,
// message) pairs; empty when the target is fine. Messages never contain the URL.
std::vector<std::pair<std::string, std::string>> CheckNotifyTarget(const NotifyTargetConfig& target);

// The delivery options for a target of `type`. "slack": 1 message/s with bursts of 3, as Slack's
// incoming-webhook rate limit documents. "discord": 30 a minute with bursts of 5 as a prior (the
// commonly reported per-channel webhook limit; Discord documents its limits only through the
// X-RateLimit-* headers, which the target obeys on every reply). Both: outbox `outbox`.
WebhookTargetOptions DefaultWebhookOptions(std::string_view type, int outbox = 1000);

// A target as `target` describes it. `discord_gate` is shared by all Discord targets of a process
// (may be null for a lone target). kInvalidArgument when the config is not valid (see
// CheckNotifyTarget), never naming the URL.
StatusOr<std::unique_ptr<NotifyTarget>> NewNotifyTarget(const std::string& name, const NotifyTargetConfig& target,
                                                         const WebhookTargetOptions& options, HttpClient& http,
                                                         Clock& clock, std::shared_ptr<spdlog::logger> logger,
                                                         std::shared_ptr<RateLimitGate> discord_gate);

// Whether a result with `status` is posted under rule `on`, given whether the job's previous
// result (in this process) was a failure.
bool ShouldNotify(std::string_view on, TaskStatus status, bool previous_failed);

// Routes results to targets. Thread-safe: OnResult() may be called from every worker at once; it
// never blocks on the network (targets queue and return).
class NotifyDispatcher {
 public:
  // `targets` by name; `rules` by job name (rules naming unknown targets are skipped: the config
  // loader rejects them).
  NotifyDispatcher(std::map<std::string, std::unique_ptr<NotifyTarget>, std::less<>> targets,
                   std::map<std::string, JobNotifyConfig, std::less<>> rules);
  ~NotifyDispatcher();  // Shutdown(now) unless it ran
  NotifyDispatcher(const NotifyDispatcher&) = delete;
  NotifyDispatcher& operator=(const NotifyDispatcher&) = delete;

  // Hands `result` to the targets its job's rule names, if the rule says so.
  void OnResult(const TaskResult& result);

  // Every target stops accepting and delivers what it holds until `deadline` (all at once: the
  // targets drain in parallel), then drops the rest (counted, logged by each target).
  void Shutdown(Clock::time_point deadline);

  std::map<std::string, NotifyStats> Stats() const;
  bool empty() const { return targets_.empty(); }

 private:
  const std::map<std::string, std::unique_ptr<NotifyTarget>, std::less<>> targets_;
  const std::map<std::string, JobNotifyConfig, std::less<>> rules_;
  mutable std::mutex mu_;
  std::map<std::string, bool, std::less<>> last_failed_;  // GUARDED_BY(mu_): by job
  bool shut_down_ = false;                                // GUARDED_BY(mu_)
};

// The dispatcher for `config`: every target in notify.targets, the rules of every job (Discord
// targets share one RateLimitGate). kInvalidArgument when a target cannot be built.
StatusOr<std::unique_ptr<NotifyDispatcher>> NewNotifyDispatcher(const Config& config, HttpClient& http, Clock& clock,
                                                                std::shared_ptr<spdlog::logger> logger);

// A sample result for `taskpipe notify-test`: job "notify-test", a short output, `status`.
TaskResult SampleTaskResult(TaskStatus status, std::chrono::system_clock::time_point now);

}  // namespace taskpipe

#endif  // TASKPIPE_NOTIFY_DISPATCHER_H_
