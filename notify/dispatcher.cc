#include "notify/dispatcher.h"

#include <algorithm>
#include <thread>

#include "common/quote.h"
#include "notify/webhook_format.h"

namespace taskpipe {
namespace {

constexpr std::string_view kUserPrefix = "user:";
constexpr std::string_view kRolePrefix = "role:";

struct DiscordMentions {
  std::vector<std::string> users;
  std::vector<std::string> roles;
  std::vector<std::string> bad;  // entries that are neither
};

DiscordMentions SplitDiscordMentions(const std::vector<std::string>& entries) {
  DiscordMentions out;
  for (const std::string& entry : entries) {
    std::string_view id = entry;
    std::vector<std::string>* list = &out.users;
    if (id.starts_with(kRolePrefix)) {
      id.remove_prefix(kRolePrefix.size());
      list = &out.roles;
    } else if (id.starts_with(kUserPrefix)) {
      id.remove_prefix(kUserPrefix.size());
    }
    if (IsDiscordSnowflake(id)) {
      list->emplace_back(id);
    } else {
      out.bad.push_back(entry);
    }
  }
  return out;
}

MessageTemplates TemplatesOf(const NotifyTargetConfig& target) {
  return MessageTemplates{.title = target.title, .body = target.body};
}

}  // namespace

std::vector<std::pair<std::string, std::string>> CheckNotifyTarget(const NotifyTargetConfig& target) {
  std::vector<std::pair<std::string, std::string>> problems;
  if (target.type == "discord") {
    if (StatusOr<std::string> url = DiscordRequestUrl(target.url); !url.ok()) {
      problems.emplace_back("url", url.status().message());
    }
  }
  if (Status s = ValidateTemplate(target.title); !s.ok()) problems.emplace_back("title", s.message());
  if (Status s = ValidateTemplate(target.body); !s.ok()) problems.emplace_back("body", s.message());
  for (std::size_t i = 0; i < target.mention_on_failure.size(); ++i) {
    const std::string& id = target.mention_on_failure[i];
    const std::string key = "mention_on_failure[" + std::to_string(i) + "]";
    if (target.type == "slack" && !IsSlackMentionId(id)) {
      problems.emplace_back(key, "expected a Slack user id (U… or W…), a user group id (S…), \"here\", "
                                 "\"channel\" or \"everyone\", got " + QuoteForError(id));
    } else if (target.type == "discord" && !SplitDiscordMentions({id}).bad.empty()) {
      problems.emplace_back(key, "expected a Discord user id (\"123…\" or \"user:123…\") or role id "
                                 "(\"role:456…\"), got " + QuoteForError(id));
    }
  }
  if (target.type == "discord" && !target.username.empty()) {
    std::string lower = target.username;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
    // Discord's Execute Webhook refuses these (Discord API reference, "Webhook Usernames").
    if (lower.find("clyde") != std::string::npos || lower.find("discord") != std::string::npos) {
      problems.emplace_back("username", "Discord refuses webhook usernames containing \"clyde\" or \"discord\"");
    } else if (Utf8Length(SanitizeUtf8(target.username)) > kDiscordUsernameMaxChars) {
      problems.emplace_back("username", "at most " + std::to_string(kDiscordUsernameMaxChars) + " characters");
    }
  }
  return problems;
}

WebhookTargetOptions DefaultWebhookOptions(std::string_view type, int outbox) {
  WebhookTargetOptions options;
  options.outbox_capacity = static_cast<std::size_t>(std::max(1, outbox));
  if (type == "discord") {
    options.rate_per_sec = 0.5;
    options.burst = 5;
  } else {
    // Slack: "1 per second per webhook, short bursts allowed" (api.slack.com rate limits,
    // incoming webhooks).
    options.rate_per_sec = 1.0;
    options.burst = 3;
  }
  return options;
}

StatusOr<std::unique_ptr<NotifyTarget>> NewNotifyTarget(const std::string& name, const NotifyTargetConfig& target,
                                                         const WebhookTargetOptions& options, HttpClient& http,
                                                         Clock& clock, std::shared_ptr<spdlog::logger> logger,
                                                         std::shared_ptr<RateLimitGate> discord_gate) {
  const std::vector<std::pair<std::string, std::string>> problems = CheckNotifyTarget(target);
  if (!problems.empty()) {
    return InvalidArgumentError("notify target " + QuoteForError(name) + ": " + problems[0].first + ": " +
                                problems[0].second);
  }
  WebhookPlatform platform;
  platform.kind = target.type;
  if (target.type == "slack") {
    platform.request_url = target.url;
    SlackOptions slack{.templates = TemplatesOf(target), .mention_on_failure = target.mention_on_failure};
    platform.build_payload = [slack](const TaskResult& r) { return BuildSlackPayload(r, slack); };
    platform.classify = ClassifySlackResponse;
    discord_gate = nullptr;
  } else if (target.type == "discord") {
    StatusOr<std::string> url = DiscordRequestUrl(target.url);
    if (!url.ok()) return url.status();
    platform.request_url = std::move(*url);
    DiscordMentions mentions = SplitDiscordMentions(target.mention_on_failure);
    DiscordOptions discord{.templates = TemplatesOf(target),
                           .mention_users = std::move(mentions.users),
                           .mention_roles = std::move(mentions.roles),
                           .username = target.username};
    platform.build_payload = [discord](const TaskResult& r) { return BuildDiscordPayload(r, discord); };
    platform.classify = ClassifyDiscordResponse;
  } else {
    return InvalidArgumentError("notify target " + QuoteForError(name) + ": unknown type " + QuoteForError(target.type) +
                                " (expected \"slack\" or \"discord\")");
  }
  return NewWebhookTarget(name, std::move(platform), options, http, clock, std::move(logger), std::move(discord_gate));
}

bool ShouldNotify(std::string_view on, TaskStatus status, bool previous_failed) {
  const bool success = status == TaskStatus::kSuccess;
  if (on == "always") return true;
  if (on == "success") return success;
  if (on == "failure") return !success;
  if (on == "recovered") return success && previous_failed;
  return false;
}

NotifyDispatcher::NotifyDispatcher(std::map<std::string, std::unique_ptr<NotifyTarget>, std::less<>> targets,
                                   std::map<std::string, JobNotifyConfig, std::less<>> rules)
    : targets_(std::move(targets)), rules_(std::move(rules)) {}

NotifyDispatcher::~NotifyDispatcher() {
  bool done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done = shut_down_;
  }
  if (!done) Shutdown(Clock::time_point::min());
}

void NotifyDispatcher::OnResult(const TaskResult& result) {
  const auto rule = rules_.find(result.job);
  if (rule == rules_.end() || rule->second.targets.empty()) return;
  bool previous_failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    bool& last = last_failed_[result.job];
    previous_failed = last;
    last = result.status != TaskStatus::kSuccess;
  }
  if (!ShouldNotify(rule->second.on, result.status, previous_failed)) return;
  for (const std::string& name : rule->second.targets) {
    if (const auto target = targets_.find(name); target != targets_.end()) target->second->Enqueue(result);
  }
}

void NotifyDispatcher::Shutdown(Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shut_down_ = true;
  }
  // In parallel: each target's Shutdown() blocks until it is drained or the deadline passes.
  std::vector<std::jthread> threads;
  threads.reserve(targets_.size());
  for (const auto& [name, target] : targets_) {
    NotifyTarget* t = target.get();
    threads.emplace_back([t, deadline] { t->Shutdown(deadline); });
  }
}

std::map<std::string, NotifyStats> NotifyDispatcher::Stats() const {
  std::map<std::string, NotifyStats> stats;
  for (const auto& [name, target] : targets_) stats[name] = target->Stats();
  return stats;
}

StatusOr<std::unique_ptr<NotifyDispatcher>> NewNotifyDispatcher(const Config& config, HttpClient& http, Clock& clock,
                                                                std::shared_ptr<spdlog::logger> logger) {
  auto discord_gate = std::make_shared<RateLimitGate>();
  std::map<std::string, std::unique_ptr<NotifyTarget>, std::less<>> targets;
  for (const auto& [name, target] : config.notify.targets) {
    StatusOr<std::unique_ptr<NotifyTarget>> built =
        NewNotifyTarget(name, target, DefaultWebhookOptions(target.type, target.outbox), http, clock, logger,
                        discord_gate);
    if (!built.ok()) return built.status();
    targets.emplace(name, std::move(*built));
  }
  std::map<std::string, JobNotifyConfig, std::less<>> rules;
  for (const JobConfig& job : config.jobs) {
    if (!job.notify.targets.empty()) rules.emplace(job.name, job.notify);
  }
  return std::make_unique<NotifyDispatcher>(std::move(targets), std::move(rules));
}

TaskResult SampleTaskResult(TaskStatus status, std::chrono::system_clock::time_point now) {
  TaskResult r;
  r.job = "notify-test";
  r.task = R"({"check":"webhook"})";
  r.message_id = "00000000-0000-4000-8000-000000000000";
  r.receive_count = status == TaskStatus::kSuccess ? 1 : 2;
  r.status = status;
  r.duration = std::chrono::milliseconds(1234);
  r.scheduled_at = std::chrono::time_point_cast<std::chrono::seconds>(now);
  r.finished_at = now;
  if (status == TaskStatus::kSuccess) {
    r.output = "taskpipe notify-test: if you can read this, the webhook works.\n";
  } else {
    r.output = "taskpipe notify-test: a sample failure (nothing actually failed).\n";
    r.error = "exit status 1 (sample)";
    r.will_retry = true;
  }
  return r;
}

}  // namespace taskpipe
