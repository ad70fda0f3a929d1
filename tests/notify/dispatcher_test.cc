#include "notify/dispatcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "config/config_json.h"
#include "net/curl_http_client.h"
#include "tests/testing/http_test_server.h"

namespace taskpipe {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::AllOf;
using ::testing::UnorderedElementsAre;
using testing::HttpTestReply;
using testing::HttpTestRequest;
using testing::HttpTestServer;
using json = nlohmann::json;

// A target that records what it is given.
class RecordingTarget final : public NotifyTarget {
 public:
  explicit RecordingTarget(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  bool Enqueue(const TaskResult& result) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return false;
    results_.push_back(result);
    return true;
  }
  void Shutdown(Clock::time_point deadline) override {
    std::lock_guard<std::mutex> lock(mu_);
    shut_down_ = true;
    deadline_ = deadline;
  }
  NotifyStats Stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    NotifyStats stats;
    stats.enqueued = results_.size();
    stats.delivered = results_.size();
    return stats;
  }
  std::vector<std::string> Seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const TaskResult& r : results_) out.push_back(r.job + ":" + TaskStatusName(r.status));
    return out;
  }
  bool shut_down() const {
    std::lock_guard<std::mutex> lock(mu_);
    return shut_down_;
  }

 private:
  const std::string name_;
  mutable std::mutex mu_;
  std::vector<TaskResult> results_;
  bool shut_down_ = false;
  Clock::time_point deadline_{};
};

TaskResult Result(const std::string& job, TaskStatus status) {
  TaskResult r;
  r.job = job;
  r.status = status;
  r.task = "\"t\"";
  r.message_id = "m-" + job;
  return r;
}

TEST(ShouldNotifyTest, EveryRuleAndStatus) {
  struct Case {
    const char* on;
    TaskStatus status;
    bool previous_failed;
    bool want;
  };
  const Case cases[] = {
      {"always", TaskStatus::kSuccess, false, true},   {"always", TaskStatus::kFailure, false, true},
      {"success", TaskStatus::kSuccess, false, true},  {"success", TaskStatus::kFailure, true, false},
      {"failure", TaskStatus::kFailure, false, true},  {"failure", TaskStatus::kTimeout, false, true},
      {"failure", TaskStatus::kInvalid, false, true},  {"failure", TaskStatus::kSuccess, true, false},
      {"recovered", TaskStatus::kSuccess, true, true}, {"recovered", TaskStatus::kSuccess, false, false},
      {"recovered", TaskStatus::kFailure, true, false}, {"sometimes", TaskStatus::kSuccess, true, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ShouldNotify(c.on, c.status, c.previous_failed), c.want)
        << c.on << " " << TaskStatusName(c.status) << " previous_failed=" << c.previous_failed;
  }
}

struct Fixture {
  RecordingTarget* slack = nullptr;
  RecordingTarget* discord = nullptr;
  std::unique_ptr<NotifyDispatcher> dispatcher;
};

Fixture MakeDispatcher(std::map<std::string, JobNotifyConfig, std::less<>> rules) {
  Fixture f;
  auto slack = std::make_unique<RecordingTarget>("slack");
  auto discord = std::make_unique<RecordingTarget>("discord");
  f.slack = slack.get();
  f.discord = discord.get();
  std::map<std::string, std::unique_ptr<NotifyTarget>, std::less<>> targets;
  targets.emplace("slack", std::move(slack));
  targets.emplace("discord", std::move(discord));
  f.dispatcher = std::make_unique<NotifyDispatcher>(std::move(targets), std::move(rules));
  return f;
}

TEST(NotifyDispatcherTest, RoutesByJobRule) {
  Fixture f = MakeDispatcher({{"report", JobNotifyConfig{.targets = {"slack", "discord"}, .on = "failure"}},
                              {"backup", JobNotifyConfig{.targets = {"discord"}, .on = "always"}}});
  f.dispatcher->OnResult(Result("report", TaskStatus::kSuccess));  // not a failure: nothing
  f.dispatcher->OnResult(Result("report", TaskStatus::kTimeout));
  f.dispatcher->OnResult(Result("backup", TaskStatus::kSuccess));
  f.dispatcher->OnResult(Result("quiet", TaskStatus::kFailure));  // no rule
  f.dispatcher->OnResult(Result("", TaskStatus::kInvalid));       // no job
  EXPECT_THAT(f.slack->Seen(), ElementsAre("report:timeout"));
  EXPECT_THAT(f.discord->Seen(), ElementsAre("report:timeout", "backup:success"));
}

TEST(NotifyDispatcherTest, RecoveredIsTheFirstSuccessAfterFailuresOfTheSameJob) {
  Fixture f = MakeDispatcher({{"a", JobNotifyConfig{.targets = {"slack"}, .on = "recovered"}},
                              {"b", JobNotifyConfig{.targets = {"slack"}, .on = "recovered"}}});
  f.dispatcher->OnResult(Result("a", TaskStatus::kSuccess));  // nothing failed before
  f.dispatcher->OnResult(Result("a", TaskStatus::kFailure));
  f.dispatcher->OnResult(Result("b", TaskStatus::kSuccess));  // b never failed
  f.dispatcher->OnResult(Result("a", TaskStatus::kTimeout));
  f.dispatcher->OnResult(Result("a", TaskStatus::kSuccess));  // recovered
  f.dispatcher->OnResult(Result("a", TaskStatus::kSuccess));  // still fine: nothing
  EXPECT_THAT(f.slack->Seen(), ElementsAre("a:success"));
}

TEST(NotifyDispatcherTest, ShutdownReachesEveryTarget) {
  Fixture f = MakeDispatcher({});
  f.dispatcher->Shutdown(RealClock().Now());
  EXPECT_TRUE(f.slack->shut_down());
  EXPECT_TRUE(f.discord->shut_down());
}

TEST(CheckNotifyTargetTest, ReportsEachBadField) {
  NotifyTargetConfig slack{.type = "slack", .url = "https://hooks.slack.com/services/T0/B0/XYZ"};
  EXPECT_THAT(CheckNotifyTarget(slack), IsEmpty());
  slack.title = "{jb} failed";
  slack.mention_on_failure = {"U012AB3CD", "here", "bob"};
  const auto problems = CheckNotifyTarget(slack);
  ASSERT_THAT(problems, SizeIs(2));
  EXPECT_EQ(problems[0].first, "title");
  EXPECT_THAT(problems[0].second, HasSubstr("{jb}"));
  EXPECT_EQ(problems[1].first, "mention_on_failure[2]");
  EXPECT_THAT(problems[1].second, HasSubstr("\"bob\""));

  NotifyTargetConfig discord{.type = "discord", .url = "https://discord.com/api/webhooks/123/SECRETTOKEN"};
  discord.mention_on_failure = {"80351110224678912", "user:1", "role:42"};
  EXPECT_THAT(CheckNotifyTarget(discord), IsEmpty());
  discord.mention_on_failure = {"role:abc"};
  discord.username = "Discord Bot";
  discord.body = "{output";
  const auto bad = CheckNotifyTarget(discord);
  ASSERT_THAT(bad, SizeIs(3));
  EXPECT_EQ(bad[0].first, "body");
  EXPECT_EQ(bad[1].first, "mention_on_failure[0]");
  EXPECT_EQ(bad[2].first, "username");

  NotifyTargetConfig wrong_shape{.type = "discord", .url = "https://discord.com/hooks/SECRETTOKEN"};
  const auto shape = CheckNotifyTarget(wrong_shape);
  ASSERT_THAT(shape, SizeIs(1));
  EXPECT_EQ(shape[0].first, "url");
  EXPECT_THAT(shape[0].second, Not(HasSubstr("SECRETTOKEN")));
}

// The loader runs the check through LoadOptions::validate_notify_target and reports at the key.
TEST(CheckNotifyTargetTest, ConfigLoaderReportsAtTheTargetsKeys) {
  LoadOptions options;
  options.getenv = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  options.validate_notify_target = CheckNotifyTarget;
  Config config;
  std::vector<std::string> problems;
  for (const ConfigProblem& p : ParseConfigProblems(R"({"notify": {"targets": {
      "s": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/SECRETPATH", "title": "{nope}"},
      "u": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/SECRETPATH", "title": "{nope}",
            "username": "bot"},
      "d": {"type": "discord", "url": "https://discord.com/api/webhooks/1/SECRETTOKEN",
            "mention_on_failure": ["@everyone"], "outbox": 0}}}})",
                                                     options, "", &config)) {
    problems.push_back(p.ToString());
  }
  EXPECT_THAT(problems,
              UnorderedElementsAre("notify.targets.d.outbox: must be between 1 and 1000000, got 0",
                                   AllOf(HasSubstr("notify.targets.s.title: "), HasSubstr("{nope}")),
                                   "notify.targets.u.username: only Discord webhooks take a username"));
  // The deep check (the template) runs only for a target whose keys parsed: "u" reports its
  // username alone, "d" its outbox alone.
  for (const std::string& p : problems) {
    EXPECT_THAT(p, Not(HasSubstr("SECRET")));
  }
  // With the outbox fixed, the mention is checked (the deep check runs once the keys parse).
  problems.clear();
  for (const ConfigProblem& p : ParseConfigProblems(R"({"notify": {"flush_timeout": "3s", "targets": {
      "d": {"type": "discord", "url": "https://discord.com/api/webhooks/1/SECRETTOKEN",
            "mention_on_failure": ["@everyone"], "outbox": 5, "username": "ops"}}}})",
                                                     options, "", &config)) {
    problems.push_back(p.ToString());
  }
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr("notify.targets.d.mention_on_failure[0]: expected a Discord user id"));
  EXPECT_EQ(config.notify.flush_timeout, 3s);
  EXPECT_EQ(config.notify.targets["d"].outbox, 5);
  EXPECT_EQ(config.notify.targets["d"].username, "ops");
}

// End to end over real HTTP: a config whose two targets point at a loopback server that answers
// like Slack ("ok") and like Discord (200 with the message JSON, ?wait=true).
TEST(NotifyDispatcherTest, ConfigToDeliveredPayloadsOverHttp) {
  HttpTestServer server([](const HttpTestRequest& r) {
    if (r.path().starts_with("/services/")) return HttpTestReply::Text(200, "ok");
    return HttpTestReply::Json(200, R"({"id": "1", "type": 0})");
  });
  const std::string slack_url = server.url() + "/services/T000/B000/SLACKSECRET";
  const std::string discord_url = server.url() + "/api/webhooks/42/DISCORDSECRET";
  LoadOptions options;
  options.getenv = [&](std::string_view name) -> std::optional<std::string> {
    if (name == "SLACK_WEBHOOK_URL") return slack_url;
    if (name == "DISCORD_WEBHOOK_URL") return discord_url;
    return std::nullopt;
  };
  options.validate_notify_target = CheckNotifyTarget;
  Config config;
  const std::vector<ConfigProblem> problems = ParseConfigProblems(R"({
    "notify": {"targets": {
      "team-slack": {"type": "slack", "url": "${SLACK_WEBHOOK_URL}", "mention_on_failure": ["U0ABC"]},
      "ops-discord": {"type": "discord", "url": "${DISCORD_WEBHOOK_URL}", "mention_on_failure": ["role:77"],
                      "title": "{job} is {status}"}}},
    "jobs": [{"name": "report", "notify": {"targets": ["team-slack", "ops-discord"], "on": "failure"}}]})",
                                                                  options, "", &config);
  ASSERT_THAT(problems, IsEmpty()) << problems[0].ToString();

  StatusOr<std::unique_ptr<HttpClient>> http = NewCurlHttpClient();
  ASSERT_TRUE(http.ok());
  std::ostringstream log;
  auto logger = std::make_shared<spdlog::logger>("notify", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  logger->set_level(spdlog::level::trace);
  StatusOr<std::unique_ptr<NotifyDispatcher>> dispatcher = NewNotifyDispatcher(config, **http, RealClock(), logger);
  ASSERT_TRUE(dispatcher.ok()) << dispatcher.status().ToString();

  TaskResult failed = Result("report", TaskStatus::kFailure);
  failed.output = "@everyone <!channel> disk full";
  failed.error = "exit status 1";
  (*dispatcher)->OnResult(Result("report", TaskStatus::kSuccess));  // on failure only: not posted
  (*dispatcher)->OnResult(failed);
  (*dispatcher)->Shutdown(RealClock().Now() + 10s);

  const std::vector<HttpTestRequest> requests = server.requests();
  ASSERT_THAT(requests, SizeIs(2));
  const HttpTestRequest* slack = nullptr;
  const HttpTestRequest* discord = nullptr;
  for (const HttpTestRequest& r : requests) (r.path().starts_with("/services/") ? slack : discord) = &r;
  ASSERT_NE(slack, nullptr);
  ASSERT_NE(discord, nullptr);

  EXPECT_EQ(slack->method, "POST");
  EXPECT_EQ(slack->path(), "/services/T000/B000/SLACKSECRET");
  const json slack_body = json::parse(slack->body);
  EXPECT_THAT(slack_body["text"].get<std::string>(), HasSubstr("<@U0ABC>"));
  EXPECT_THAT(slack->body, Not(HasSubstr("<!channel>")));  // escaped: &lt;!channel&gt;
  EXPECT_THAT(slack->body, HasSubstr("&lt;!channel&gt;"));

  EXPECT_EQ(discord->path(), "/api/v10/webhooks/42/DISCORDSECRET");
  EXPECT_EQ(discord->query(), "wait=true");
  const json discord_body = json::parse(discord->body);
  EXPECT_EQ(discord_body["allowed_mentions"]["parse"], json::array());
  EXPECT_EQ(discord_body["allowed_mentions"]["roles"], json::array({"77"}));
  EXPECT_EQ(discord_body["content"], "<@&77>");
  EXPECT_EQ(discord_body["embeds"][0]["title"], "report is failure");

  const std::map<std::string, NotifyStats> stats = (*dispatcher)->Stats();
  EXPECT_EQ(stats.at("team-slack").delivered, 1u);
  EXPECT_EQ(stats.at("ops-discord").delivered, 1u);
  EXPECT_THAT(log.str(), Not(HasSubstr("SLACKSECRET")));
  EXPECT_THAT(log.str(), Not(HasSubstr("DISCORDSECRET")));
}

TEST(SampleTaskResultTest, LooksLikeARealResult) {
  const auto now = std::chrono::system_clock::now();
  const TaskResult failure = SampleTaskResult(TaskStatus::kFailure, now);
  EXPECT_EQ(failure.job, "notify-test");
  EXPECT_EQ(failure.status, TaskStatus::kFailure);
  EXPECT_FALSE(failure.error.empty());
  EXPECT_TRUE(json::accept(failure.task));
  const TaskResult success = SampleTaskResult(TaskStatus::kSuccess, now);
  EXPECT_TRUE(success.error.empty());
  EXPECT_EQ(success.finished_at, now);
}

// ---------------------------------------------------------------------------------------------
// The real Slack and Discord targets (their payloads and reply readers, the delivery machinery,
// libcurl) against a loopback server that answers as each platform does.

class PlatformLoopbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<HttpClient>> http = NewCurlHttpClient();
    ASSERT_TRUE(http.ok());
    http_ = std::move(*http);
    logger_ = std::make_shared<spdlog::logger>("notify", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
    logger_->set_level(spdlog::level::trace);
  }
  std::unique_ptr<NotifyTarget> Target(const std::string& type, const std::string& path,
                                       std::shared_ptr<RateLimitGate> gate = nullptr) {
    WebhookTargetOptions options = DefaultWebhookOptions(type);
    options.rate_per_sec = 1000;  // the platforms' pacing is tested with a fake clock elsewhere
    options.burst = 10;
    options.retry_base = 50ms;
    options.retry_max = 100ms;
    options.request_timeout = 2s;
    StatusOr<std::unique_ptr<NotifyTarget>> target =
        NewNotifyTarget(type + "-target", NotifyTargetConfig{.type = type, .url = server_.url() + path}, options,
                        *http_, RealClock(), logger_, std::move(gate));
    EXPECT_TRUE(target.ok()) << target.status().ToString();
    return target.ok() ? std::move(*target) : nullptr;
  }
  static TaskResult Numbered(int i) {
    TaskResult r = Result("job", TaskStatus::kFailure);
    r.task = "\"task-number-" + std::to_string(i) + "\"";
    return r;
  }
  void ExpectNoSecretLogged() { EXPECT_THAT(log_.str(), Not(HasSubstr("SECRET"))); }

  HttpTestServer server_;
  std::unique_ptr<HttpClient> http_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> logger_;
};

constexpr char kSlackPath[] = "/services/T000/B000/SECRETslack";
constexpr char kDiscordPath[] = "/api/webhooks/42/SECRETdiscord";

TEST_F(PlatformLoopbackTest, Slack429WithRetryAfterThen5xxThenOk) {
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> at;
  server_.SetHandler([&](const HttpTestRequest&) {
    std::lock_guard<std::mutex> lock(mu);
    at.push_back(std::chrono::steady_clock::now());
    if (at.size() == 1) {
      HttpTestReply reply = HttpTestReply::Text(429, "rate_limited");
      reply.headers = {{"Retry-After", "1"}};
      return reply;
    }
    if (at.size() == 2) return HttpTestReply::Text(500, "rollup_error");
    return HttpTestReply::Text(200, "ok");
  });
  auto target = Target("slack", kSlackPath);
  ASSERT_TRUE(target->Enqueue(Numbered(1)));
  target->Shutdown(RealClock().Now() + 10s);
  const NotifyStats stats = target->Stats();
  EXPECT_EQ(stats.delivered, 1u);
  EXPECT_EQ(stats.rate_limited, 1u);
  EXPECT_EQ(stats.retries, 1u);
  ASSERT_THAT(at, SizeIs(3));
  EXPECT_GE(at[1] - at[0], 950ms);  // Slack's Retry-After: 1 (second) honoured
  ExpectNoSecretLogged();
}

TEST_F(PlatformLoopbackTest, SlackInvalidPayloadDropsThatMessageOnly) {
  server_.SetHandler([](const HttpTestRequest& r) {
    if (r.body.find("task-number-1") != std::string::npos) {
      return HttpTestReply::Text(400, "invalid_payload");
    }
    return HttpTestReply::Text(200, "ok");
  });
  auto target = Target("slack", kSlackPath);
  ASSERT_TRUE(target->Enqueue(Numbered(1)));
  ASSERT_TRUE(target->Enqueue(Numbered(2)));
  target->Shutdown(RealClock().Now() + 10s);
  const NotifyStats stats = target->Stats();
  EXPECT_EQ(stats.dropped_rejected, 1u);
  EXPECT_EQ(stats.delivered, 1u);  // the next one still goes
  EXPECT_EQ(server_.request_count(), 2);  // and the rejected one is not retried
  EXPECT_THAT(log_.str(), HasSubstr("invalid_payload"));
  ExpectNoSecretLogged();
}

TEST_F(PlatformLoopbackTest, DiscordGlobalRateLimitPausesEveryDiscordTarget) {
  std::mutex mu;
  std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> seen;
  server_.SetHandler([&](const HttpTestRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(r.path(), std::chrono::steady_clock::now());
    if (seen.size() == 1) {
      HttpTestReply reply = HttpTestReply::Json(
          429, R"({"message": "You are being rate limited.", "retry_after": 0.6, "global": true})");
      reply.headers = {{"X-RateLimit-Global", "true"}, {"X-RateLimit-Scope", "global"}, {"Retry-After", "1"}};
      return reply;
    }
    return HttpTestReply::Json(200, R"({"id": "1"})");
  });
  auto gate = std::make_shared<RateLimitGate>();
  auto first = Target("discord", kDiscordPath, gate);
  ASSERT_TRUE(first->Enqueue(Numbered(1)));
  // Once the first target has read the 429, a second one sharing the gate must wait it out too.
  for (int i = 0; i < 10000 && first->Stats().rate_limited == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(first->Stats().rate_limited, 1u);
  auto second = Target("discord", "/api/webhooks/43/SECRETother", gate);
  ASSERT_TRUE(second->Enqueue(Numbered(2)));
  first->Shutdown(RealClock().Now() + 10s);
  second->Shutdown(RealClock().Now() + 10s);
  EXPECT_EQ(first->Stats().delivered, 1u);
  EXPECT_EQ(second->Stats().delivered, 1u);
  ASSERT_THAT(seen, SizeIs(3));
  for (std::size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GE(seen[i].second - seen[0].second, 590ms) << seen[i].first << " went during the global pause";
  }
  ExpectNoSecretLogged();
}

TEST_F(PlatformLoopbackTest, DiscordValidationErrorAndUnknownWebhook) {
  server_.SetHandler([](const HttpTestRequest& r) {
    if (r.path() == "/api/v10/webhooks/42/SECRETdiscord") {
      return HttpTestReply::Json(400, R"({"code": 50035, "message": "Invalid Form Body", "errors": {}})");
    }
    return HttpTestReply::Json(404, R"({"message": "Unknown Webhook", "code": 10015})");
  });
  auto rejecting = Target("discord", kDiscordPath);
  auto gone = Target("discord", "/api/webhooks/44/SECRETgone");
  ASSERT_TRUE(rejecting->Enqueue(Numbered(1)));
  ASSERT_TRUE(gone->Enqueue(Numbered(1)));
  rejecting->Shutdown(RealClock().Now() + 10s);
  gone->Shutdown(RealClock().Now() + 10s);
  EXPECT_EQ(rejecting->Stats().dropped_rejected, 1u);
  EXPECT_EQ(gone->Stats().dropped_dead, 1u);
  EXPECT_FALSE(gone->Enqueue(Numbered(2)));  // disabled (and shut down)
  EXPECT_THAT(log_.str(), HasSubstr("50035"));
  EXPECT_THAT(log_.str(), HasSubstr("is disabled"));
  EXPECT_EQ(server_.request_count(), 2);  // neither was retried
  ExpectNoSecretLogged();
}

TEST_F(PlatformLoopbackTest, HangingWebhookIsBoundedByTheShutdownDeadline) {
  server_.SetHandler([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  auto target = Target("slack", kSlackPath);
  ASSERT_TRUE(target->Enqueue(Numbered(1)));
  ASSERT_TRUE(target->Enqueue(Numbered(2)));
  const auto start = std::chrono::steady_clock::now();
  target->Shutdown(RealClock().Now() + 3s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6s);  // deadline + at most one request timeout
  const NotifyStats stats = target->Stats();
  EXPECT_EQ(stats.delivered, 0u);
  EXPECT_EQ(stats.dropped(), 2u);  // counted, never silent
  EXPECT_EQ(stats.pending, 0u);
  ExpectNoSecretLogged();
}

}  // namespace
}  // namespace taskpipe
