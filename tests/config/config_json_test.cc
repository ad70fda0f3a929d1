#include "config/config_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace taskpipe {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

// Options whose environment is exactly `vars`.
LoadOptions WithEnv(std::map<std::string, std::string> vars) {
  LoadOptions options;
  options.getenv = [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    const auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  return options;
}

// Every problem of `text`, as "path: message" strings.
std::vector<std::string> Problems(std::string_view text, const LoadOptions& options = WithEnv({})) {
  Config config;
  std::vector<std::string> out;
  for (const ConfigProblem& problem : ParseConfigProblems(text, options, "", &config)) {
    out.push_back(problem.ToString());
  }
  return out;
}

Config Load(std::string_view text, const LoadOptions& options = WithEnv({})) {
  StatusOr<Config> config = ParseConfig(text, options);
  EXPECT_TRUE(config.ok()) << config.status().message();
  return config.ok() ? *config : Config{};
}

// A job that is valid on its own, to embed in tests about other parts.
constexpr std::string_view kOkJob = R"({"name": "j", "handler": {"type": "log"}})";

// DESIGN.md's example, verbatim.
constexpr std::string_view kDesignExample = R"jsonc(
{
  "queue": {
    "backend": "sqs",                       // "memory" (default) | "sqs"
    "url": "https://sqs.us-east-1.amazonaws.com/123456789012/tasks",   // or "name": "tasks"
    "region": "us-east-1",
    "endpoint": "http://127.0.0.1:4566",    // optional; else AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL
    "protocol": "json",                     // "json" (default) | "query"
    "visibility_timeout": "60s",
    "wait_time": "20s",
    "retention": "4d",                      // memory backend (SQS keeps its own queue settings)
    "max_receive_count": 5                  // memory backend: then the message moves to its dead-letter queue
  },
  "consumer": { "workers": 8, "batch_size": 10, "shutdown_grace": "30s",
                "retry": { "base": "5s", "max": "15m" } },
  "notify": {
    "targets": {
      "team-slack":  { "type": "slack",   "url": "${SLACK_WEBHOOK_URL}" },
      "ops-discord": { "type": "discord", "url": "${DISCORD_WEBHOOK_URL}" }
    }
  },
  "jobs": [
    {
      "name": "daily-report",
      "schedule": "cron(0 12 * * ? *)",
      "timezone": "Asia/Taipei",
      "tasks": ["Hello from taskpipe #1", { "report": "sales", "day": "yesterday" }],  // or "tasks_file"
      "handler": { "type": "exec", "command": ["./examples/report.sh"], "timeout": "10m" },
      "notify": { "targets": ["team-slack"], "on": "failure" }          // "success" | "failure" | "always"
    }
  ]
}
)jsonc";

constexpr char kSlackUrl[] = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
constexpr char kDiscordUrl[] = "https://discord.com/api/webhooks/123/DISCORDSECRET";

LoadOptions DesignEnv() {
  return WithEnv({{"SLACK_WEBHOOK_URL", kSlackUrl}, {"DISCORD_WEBHOOK_URL", kDiscordUrl}});
}

// ---------------------------------------------------------------------------------------------
// Whole configs

TEST(ConfigJsonTest, DesignExampleLoads) {
  const Config config = Load(kDesignExample, DesignEnv());
  EXPECT_EQ(config.queue.backend, "sqs");
  EXPECT_EQ(config.queue.url, "https://sqs.us-east-1.amazonaws.com/123456789012/tasks");
  EXPECT_EQ(config.queue.name, "");
  EXPECT_EQ(config.queue.region, "us-east-1");
  EXPECT_EQ(config.queue.endpoint, "http://127.0.0.1:4566");
  EXPECT_EQ(config.queue.protocol, "json");
  EXPECT_EQ(config.queue.visibility_timeout, seconds(60));
  EXPECT_EQ(config.queue.wait_time, seconds(20));
  EXPECT_EQ(config.queue.retention, seconds(4 * 24 * 3600));
  EXPECT_EQ(config.queue.max_receive_count, 5);

  EXPECT_EQ(config.consumer.workers, 8);
  EXPECT_EQ(config.consumer.batch_size, 10);
  EXPECT_EQ(config.consumer.pollers, 1);
  EXPECT_EQ(config.consumer.shutdown_grace, seconds(30));
  EXPECT_EQ(config.consumer.retry.base, seconds(5));
  EXPECT_EQ(config.consumer.retry.max, seconds(15 * 60));
  EXPECT_EQ(config.consumer.default_job, "");

  ASSERT_EQ(config.notify.targets.size(), 2u);
  EXPECT_EQ(config.notify.targets.at("team-slack").type, "slack");
  EXPECT_EQ(config.notify.targets.at("team-slack").url, kSlackUrl);
  EXPECT_EQ(config.notify.targets.at("ops-discord").type, "discord");
  EXPECT_EQ(config.notify.targets.at("ops-discord").url, kDiscordUrl);

  ASSERT_EQ(config.jobs.size(), 1u);
  const JobConfig& job = config.jobs[0];
  EXPECT_EQ(job.name, "daily-report");
  EXPECT_EQ(job.schedule, "cron(0 12 * * ? *)");
  EXPECT_EQ(job.timezone, "Asia/Taipei");
  EXPECT_THAT(job.tasks,
              ElementsAre(json("Hello from taskpipe #1"), json({{"report", "sales"}, {"day", "yesterday"}})));
  EXPECT_EQ(job.tasks_file, "");
  EXPECT_EQ(job.handler.type, "exec");
  EXPECT_THAT(job.handler.command, ElementsAre("./examples/report.sh"));
  EXPECT_EQ(job.handler.timeout, seconds(600));
  EXPECT_THAT(job.notify.targets, ElementsAre("team-slack"));
  EXPECT_EQ(job.notify.on, "failure");

  EXPECT_THAT(config.secrets, UnorderedElementsAre(kSlackUrl, kDiscordUrl));
  EXPECT_EQ(config.source_path, "");
}

TEST(ConfigJsonTest, EmptyObjectGivesDefaults) {
  const Config config = Load("{}");
  const Config defaults;
  EXPECT_EQ(config.queue.backend, "memory");
  EXPECT_EQ(config.queue.protocol, "json");
  EXPECT_EQ(config.queue.visibility_timeout, seconds(30));
  EXPECT_EQ(config.queue.wait_time, seconds(20));
  EXPECT_EQ(config.queue.retention, seconds(4 * 24 * 3600));
  EXPECT_EQ(config.queue.max_receive_count, 5);
  EXPECT_EQ(config.consumer.workers, defaults.consumer.workers);
  EXPECT_EQ(config.consumer.batch_size, 10);
  EXPECT_EQ(config.consumer.shutdown_grace, seconds(30));
  EXPECT_EQ(config.consumer.retry.base, seconds(5));
  EXPECT_EQ(config.consumer.retry.max, seconds(900));
  EXPECT_TRUE(config.notify.targets.empty());
  EXPECT_TRUE(config.jobs.empty());
  EXPECT_TRUE(config.secrets.empty());
}

TEST(ConfigJsonTest, JobDefaults) {
  const Config config = Load(R"({"jobs": [{"name": "only-a-name"}]})");
  ASSERT_EQ(config.jobs.size(), 1u);
  const JobConfig& job = config.jobs[0];
  EXPECT_EQ(job.schedule, "");
  EXPECT_EQ(job.timezone, "UTC");
  // Decision: no tasks and no tasks_file = one empty-object task.
  EXPECT_THAT(job.tasks, ElementsAre(json::object()));
  EXPECT_EQ(job.handler.type, "log");
  EXPECT_EQ(job.handler.method, "POST");
  EXPECT_EQ(job.handler.timeout, seconds(600));
  EXPECT_TRUE(job.handler.options.is_null());
  EXPECT_TRUE(job.notify.targets.empty());
  EXPECT_EQ(job.notify.on, "failure");
}

TEST(ConfigJsonTest, EmptySectionsAreFine) {
  EXPECT_THAT(Problems(R"({"queue": {}, "consumer": {"retry": {}}, "notify": {"targets": {}}, "jobs": []})"),
              IsEmpty());
  EXPECT_THAT(Problems(R"({"notify": {}})"), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Syntax

TEST(ConfigJsonTest, CommentsAreAllowed) {
  EXPECT_THAT(Problems("// top\n{ /* a */ \"consumer\": {\"workers\": 2} // b\n}\n/* end */"), IsEmpty());
}

TEST(ConfigJsonTest, SyntaxErrorHasLineAndColumn) {
  Config config;
  const std::vector<ConfigProblem> problems =
      ParseConfigProblems("{\n  \"queue\": {\n    \"backend\": \"sqs\",\n  }\n}", WithEnv({}), "", &config);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].path, "");
  EXPECT_EQ(problems[0].line, 4);
  EXPECT_EQ(problems[0].column, 3);
  EXPECT_EQ(
      problems[0].ToString(),
      "line 4, column 3: syntax error while parsing object key - unexpected '}'; expected string literal");
}

TEST(ConfigJsonTest, SyntaxErrorPositions) {
  struct Case {
    std::string text;
    int line;
    int column;
  };
  const Case cases[] = {
      {"", 1, 1},
      {"   ", 1, 4},
      {"{\"a\": tru}", 1, 10},
      {"{}\n{}", 2, 1},
      {"{\n\"a\": 1 /* unterminated", 2, 23},  // just past the end,
      {"{\"é\": x}", 1, 7},                    // columns count characters, not bytes
      {"{\"a\": \"x\ny\"}", 1, 9},  // a raw newline inside a string: at the newline, not "line 2, column 0"
      {"{\r\n\"a\" 1}", 2, 5},
      {std::string(200000, '['), 1, 200001},
  };
  for (const Case& c : cases) {
    Config config;
    const std::vector<ConfigProblem> problems = ParseConfigProblems(c.text, WithEnv({}), "", &config);
    ASSERT_EQ(problems.size(), 1u) << c.text.substr(0, 40);
    EXPECT_EQ(problems[0].line, c.line) << c.text.substr(0, 40) << " " << problems[0].ToString();
    EXPECT_EQ(problems[0].column, c.column) << c.text.substr(0, 40) << " " << problems[0].ToString();
    EXPECT_THAT(problems[0].message, StartsWith("syntax error"));
  }
}

TEST(ConfigJsonTest, SyntaxErrorMessageStaysValidUtf8) {
  const std::vector<std::string> problems = Problems("{\"a\": \"\xff\"}");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], HasSubstr("\\xff"));
  EXPECT_NO_THROW((void)json(problems[0]).dump());
}

TEST(ConfigJsonTest, TopLevelMustBeAnObject) {
  EXPECT_THAT(Problems("[]"), ElementsAre("expected a JSON object at the top level, got an array"));
  EXPECT_THAT(Problems("\"x\""), ElementsAre("expected a JSON object at the top level, got \"x\""));
  EXPECT_THAT(Problems("null"), ElementsAre("expected a JSON object at the top level, got null"));
}

TEST(ConfigJsonTest, DuplicateKeysAreReported) {
  EXPECT_THAT(Problems(R"({"queue": {"backend": "memory", "backend": "sqs", "name": "q"},
                          "jobs": [{"name": "a"}, {"name": "b", "handler": {"type": "exec", "type": "log"}}],
                          "queue": {}})"),
              ElementsAre("queue.backend: duplicate key (JSON would keep only the last)",
                          "jobs[1].handler.type: duplicate key (JSON would keep only the last)",
                          "queue: duplicate key (JSON would keep only the last)"));
}

TEST(ConfigJsonTest, DeepNestingIsRejectedNotACrash) {
  const std::string deep = R"({"jobs": [{"name": "a", "tasks": [{"x": )" + std::string(100000, '[') +
                           std::string(100000, ']') + "}]}]}";
  const std::vector<std::string> problems = Problems(deep);
  ASSERT_FALSE(problems.empty());
  std::string path = "jobs[0].tasks[0].x";
  for (int depth = 5; depth < 64; ++depth) path += "[0]";
  EXPECT_EQ(problems[0], path + ": nested more than 64 levels deep");
}

// ---------------------------------------------------------------------------------------------
// Unknown keys and wrong types

TEST(ConfigJsonTest, UnknownKeysAtEveryLevelWithSuggestions) {
  EXPECT_THAT(Problems(R"js({
        "queues": {},
        "queue": {"visiblity_timeout": "60s"},
        "consumer": {"worker": 2, "retry": {"bsae": "1s"}},
        "notify": {"target": {}, "targets": {"t": {"type": "slack", "url": "https://x", "channel": "#c"}}},
        "jobs": [{"name": "j", "shedule": "rate(1 day)", "handler": {"type": "exec", "command": ["x"], "timeuot": "1s"},
                  "notify": {"targets": ["t"], "onn": "always"}}],
        "zzz": 1
      })js"),
              ElementsAre("queues: unknown key (did you mean \"queue\"?)",
                          "zzz: unknown key (known: queue, consumer, notify, metrics, jobs)",
                          "queue.visiblity_timeout: unknown key (did you mean \"visibility_timeout\"?)",
                          "consumer.worker: unknown key (did you mean \"workers\"?)",
                          "consumer.retry.bsae: unknown key (did you mean \"base\"?)",
                          "notify.target: unknown key (did you mean \"targets\"?)",
                          "notify.targets.t.channel: unknown key (known: type, url, title, body, mention_on_failure, username, outbox)",
                          "jobs[0].shedule: unknown key (did you mean \"schedule\"?)",
                          "jobs[0].handler.timeuot: unknown key (did you mean \"timeout\"?)",
                          "jobs[0].notify.onn: unknown key (did you mean \"on\"?)"));
}

TEST(ConfigJsonTest, OddKeysAreQuotedInPaths) {
  EXPECT_THAT(
      Problems(R"({"queue": {"my key": 1, "": 2}})"),
      ElementsAre("queue[\"\"]: unknown key (known: backend, url, name, region, endpoint, protocol, "
                  "visibility_timeout, wait_time, retention, max_receive_count)",
                  "queue[\"my key\"]: unknown key (known: backend, url, name, region, endpoint, protocol, "
                  "visibility_timeout, wait_time, retention, max_receive_count)"));
}

TEST(ConfigJsonTest, WrongTypesAtEachKey) {
  struct Case {
    std::string text;
    std::string problem;
  };
  const Case cases[] = {
      {R"({"queue": []})", "queue: expected an object, got an array"},
      {R"({"queue": {"backend": 1}})", "queue.backend: expected a string, got 1"},
      {R"({"queue": {"url": true}})", "queue.url: expected a string, got true"},
      {R"({"queue": {"name": null}})", "queue.name: expected a string, got null"},
      {R"({"queue": {"region": {}}})", "queue.region: expected a string, got an object"},
      {R"({"queue": {"endpoint": 4566}})", "queue.endpoint: expected a string, got 4566"},
      {R"({"queue": {"protocol": ["json"]}})", "queue.protocol: expected a string, got an array"},
      {R"({"queue": {"visibility_timeout": true}})", "queue.visibility_timeout: expected a string, got true"},
      {R"({"queue": {"wait_time": null}})", "queue.wait_time: expected a string, got null"},
      {R"({"queue": {"retention": {}}})", "queue.retention: expected a string, got an object"},
      {R"({"queue": {"max_receive_count": "5"}})", "queue.max_receive_count: expected an integer, got \"5\""},
      {R"({"consumer": 8})", "consumer: expected an object, got 8"},
      {R"({"consumer": {"workers": "eight"}})", "consumer.workers: expected an integer, got \"eight\""},
      {R"({"consumer": {"workers": 8.5}})", "consumer.workers: expected an integer, got 8.5"},
      {R"({"consumer": {"workers": 8.0}})", "consumer.workers: expected an integer, got 8.0"},
      {R"({"consumer": {"batch_size": [10]}})", "consumer.batch_size: expected an integer, got an array"},
      {R"({"consumer": {"shutdown_grace": false}})", "consumer.shutdown_grace: expected a string, got false"},
      {R"({"consumer": {"retry": "5s"}})", "consumer.retry: expected an object, got \"5s\""},
      {R"({"consumer": {"retry": {"base": []}}})", "consumer.retry.base: expected a string, got an array"},
      {R"({"consumer": {"default_job": 1}})", "consumer.default_job: expected a string, got 1"},
      {R"({"notify": []})", "notify: expected an object, got an array"},
      {R"({"notify": {"targets": []}})", "notify.targets: expected an object of named targets, got an array"},
      {R"({"notify": {"targets": {"t": "https://x"}}})",
       "notify.targets.t: expected an object, got \"https://x\""},
      {R"({"notify": {"targets": {"t": {"type": 1, "url": "https://x"}}}})",
       "notify.targets.t.type: expected a string, got 1"},
      {R"({"notify": {"targets": {"t": {"type": "slack", "url": 1}}}})",
       "notify.targets.t.url: expected a string, got 1"},
      {R"({"jobs": {}})", "jobs: expected an array of jobs, got an object"},
      {R"({"jobs": ["j"]})", "jobs[0]: expected an object, got \"j\""},
      {R"({"jobs": [{"name": 1}]})", "jobs[0].name: expected a string, got 1"},
      {R"({"jobs": [{"name": "j", "schedule": 5}]})", "jobs[0].schedule: expected a string, got 5"},
      {R"({"jobs": [{"name": "j", "timezone": 8}]})", "jobs[0].timezone: expected a string, got 8"},
      {R"({"jobs": [{"name": "j", "tasks": "one"}]})",
       "jobs[0].tasks: expected an array of tasks (strings or objects), got \"one\""},
      {R"({"jobs": [{"name": "j", "tasks": ["a", 5]}]})",
       "jobs[0].tasks[1]: a task must be a string or an object, got 5"},
      {R"({"jobs": [{"name": "j", "tasks_file": ["a"]}]})",
       "jobs[0].tasks_file: expected a string, got an array"},
      {R"({"jobs": [{"name": "j", "handler": "log"}]})", "jobs[0].handler: expected an object, got \"log\""},
      {R"({"jobs": [{"name": "j", "handler": {"type": 1}}]})",
       "jobs[0].handler.type: expected a string, got 1"},
      {R"({"jobs": [{"name": "j", "handler": {"type": "exec", "command": "ls -l"}}]})",
       "jobs[0].handler.command: expected an array of strings, got \"ls -l\""},
      {R"({"jobs": [{"name": "j", "handler": {"type": "exec", "command": ["ls", 1]}}]})",
       "jobs[0].handler.command[1]: expected a string, got 1"},
      {R"({"jobs": [{"name": "j", "handler": {"type": "exec", "command": ["ls"], "cwd": 1}}]})",
       "jobs[0].handler.cwd: expected a string, got 1"},
      {R"({"jobs": [{"name": "j", "handler": {"type": "exec", "command": ["ls"], "env": ["A=1"]}}]})",
       "jobs[0].handler.env: expected an object of strings, got an array"},
      {R"({"jobs": [{"name": "j", "handler": {"type": "exec", "command": ["ls"], "env": {"A": 1}}}]})",
       "jobs[0].handler.env.A: expected a string, got 1"},
      {R"({"jobs": [{"name": "j", "handler": {"type": "http", "url": 1}}]})",
       "jobs[0].handler.url: expected a string, got 1"},
      {R"({"jobs": [{"name": "j", "handler": {"type": "http", "url": "http://h", "method": 1}}]})",
       "jobs[0].handler.method: expected a string, got 1"},
      {R"({"jobs": [{"name": "j", "handler": {"type": "http", "url": "http://h", "headers": "x"}}]})",
       "jobs[0].handler.headers: expected an object of strings, got \"x\""},
      {R"({"jobs": [{"name": "j", "handler": {"type": "log", "timeout": 10}}]})",
       "jobs[0].handler.timeout: expected a duration like \"10s\" (a number needs a unit: ms, s, m, h or d), "
       "got 10"},
      {R"({"jobs": [{"name": "j", "notify": []}]})", "jobs[0].notify: expected an object, got an array"},
      {R"({"jobs": [{"name": "j", "notify": {"targets": "t"}}]})",
       "jobs[0].notify.targets: expected an array of strings, got \"t\""},
      {R"({"jobs": [{"name": "j", "notify": {"on": true}}]})",
       "jobs[0].notify.on: expected a string, got true"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Problems(c.text), ElementsAre(c.problem)) << c.text;
  }
}

// ---------------------------------------------------------------------------------------------
// Values

TEST(ConfigJsonTest, OutOfRangeValues) {
  struct Case {
    std::string text;
    std::string problem;
  };
  const Case cases[] = {
      {R"({"queue": {"visibility_timeout": "13h"}})",
       "queue.visibility_timeout: 13h is over SQS's maximum of 12h"},
      {R"({"queue": {"visibility_timeout": "12h1s"}})",
       "queue.visibility_timeout: 12h1s is over SQS's maximum of 12h"},
      {R"({"queue": {"wait_time": "21s"}})", "queue.wait_time: 21s is over SQS's maximum of 20s"},
      {R"({"queue": {"retention": "59s"}})", "queue.retention: 59s is under SQS's minimum of 1m"},
      {R"({"queue": {"retention": "15d"}})", "queue.retention: 15d is over SQS's maximum of 14d"},
      {R"({"queue": {"max_receive_count": -1}})", "queue.max_receive_count: must be at least 0, got -1"},
      {R"({"queue": {"max_receive_count": 4294967296}})",
       "queue.max_receive_count: must be at least 0, got 4294967296"},
      {R"({"consumer": {"workers": 0}})", "consumer.workers: must be between 1 and 1024, got 0"},
      {R"({"consumer": {"workers": 1025}})", "consumer.workers: must be between 1 and 1024, got 1025"},
      {R"({"consumer": {"workers": 18446744073709551615}})",
       "consumer.workers: must be between 1 and 1024, got 18446744073709551615"},
      {R"({"consumer": {"workers": -9223372036854775808}})",
       "consumer.workers: must be between 1 and 1024, got -9223372036854775808"},
      {R"({"consumer": {"workers": 1e30}})", "consumer.workers: expected an integer, got 1e+30"},
      {R"({"consumer": {"batch_size": 11}})", "consumer.batch_size: must be between 1 and 10, got 11"},
      {R"({"consumer": {"batch_size": 0}})", "consumer.batch_size: must be between 1 and 10, got 0"},
      {R"({"consumer": {"pollers": 0}})", "consumer.pollers: must be between 1 and 16, got 0"},
      {R"({"consumer": {"pollers": 17}})", "consumer.pollers: must be between 1 and 16, got 17"},
      {R"({"consumer": {"retry": {"max": "13h"}}})", "consumer.retry.max: 13h is over SQS's maximum of 12h"},
      {R"({"consumer": {"retry": {"base": "1m", "max": "30s"}}})",
       "consumer.retry.max: 30s is less than retry.base (1m)"},
      {R"({"consumer": {"retry": {"max": "1s"}}})", "consumer.retry.max: 1s is less than retry.base (5s)"},
      {R"({"jobs": [{"name": "j", "handler": {"timeout": "0s"}}]})",
       "jobs[0].handler.timeout: 0s is under the minimum of 1s"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Problems(c.text), ElementsAre(c.problem)) << c.text;
  }
  // Edges that are fine.
  EXPECT_THAT(Problems(R"({"queue": {"visibility_timeout": "12h", "wait_time": "0s", "retention": "1m",
                                     "max_receive_count": 0},
                           "consumer": {"workers": 1024, "batch_size": 1, "pollers": 16, "shutdown_grace": "0s",
                                        "retry": {"base": "0s", "max": "0s"}}})"),
              IsEmpty());
  // A rejected base is not compared with max.
  EXPECT_THAT(Problems(R"({"consumer": {"retry": {"base": "soon", "max": "1s"}}})"),
              ElementsAre("consumer.retry.base: expected a duration like \"30s\", got \"soon\""));
}

TEST(ConfigJsonTest, MetricsSection) {
  const Config defaults = Load(R"({})");
  EXPECT_EQ(defaults.metrics.port, 0);
  EXPECT_EQ(defaults.metrics.address, "127.0.0.1");
  EXPECT_EQ(defaults.metrics.unhealthy_after, seconds(60));
  const Config set = Load(R"({"metrics": {"port": 9464, "address": "::", "unhealthy_after": "5m"}})");
  EXPECT_EQ(set.metrics.port, 9464);
  EXPECT_EQ(set.metrics.address, "::");
  EXPECT_EQ(set.metrics.unhealthy_after, seconds(300));

  EXPECT_THAT(Problems(R"({"metrics": {"port": 65536}})"),
              ElementsAre("metrics.port: must be between 0 and 65535, got 65536"));
  EXPECT_THAT(Problems(R"({"metrics": {"address": "localhost"}})"),
              ElementsAre("metrics.address: expected an IP address such as \"127.0.0.1\" (this host only), "
                          "\"0.0.0.0\" or \"::\" (every interface), got \"localhost\""));
  EXPECT_THAT(Problems(R"({"metrics": {"address": "127.0.0.1:9464"}})"), SizeIs(1));
  EXPECT_THAT(Problems(R"({"metrics": {"unhealthy_after": "0s"}})"),
              ElementsAre("metrics.unhealthy_after: 0s is under the minimum of 1s"));
  EXPECT_THAT(Problems(R"({"metrics": {"prot": 1}})"), ElementsAre(HasSubstr("metrics.prot")));
  EXPECT_THAT(Problems(R"({"metrics": 9464})"), ElementsAre(HasSubstr("metrics")));
}

TEST(ConfigJsonTest, DurationProblems) {
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "a"}, {"name": "b", "handler": {"timeout": "soon"}}]})"),
              ElementsAre("jobs[1].handler.timeout: expected a duration like \"30s\", got \"soon\""));
  EXPECT_THAT(
      Problems(R"({"queue": {"visibility_timeout": 30}})"),
      ElementsAre("queue.visibility_timeout: expected a duration like \"30s\" (a number needs a unit: ms, "
                  "s, m, h or d), got 30"));
  EXPECT_THAT(
      Problems(R"({"queue": {"visibility_timeout": "30"}})"),
      ElementsAre("queue.visibility_timeout: expected a duration like \"30s\" (a number needs a unit: ms, "
                  "s, m, h or d), got \"30\""));
  EXPECT_THAT(Problems(R"({"queue": {"visibility_timeout": -30}})"),
              ElementsAre("queue.visibility_timeout: expected a duration like \"30s\", got -30"));
  EXPECT_THAT(Problems(R"({"queue": {"visibility_timeout": 1.5}})"),
              ElementsAre("queue.visibility_timeout: expected a duration like \"30s\", got 1.5"));
  EXPECT_THAT(
      Problems(R"({"queue": {"wait_time": "1.5s"}})"),
      ElementsAre("queue.wait_time: fractions are not supported: write \"1s500ms\" instead of \"1.5s\""));
  EXPECT_THAT(Problems(R"({"queue": {"wait_time": "1500ms"}})"),
              ElementsAre("queue.wait_time: must be a whole number of seconds, got \"1500ms\""));
  EXPECT_THAT(Problems(R"({"consumer": {"shutdown_grace": "99999999999999999999d"}})"),
              ElementsAre("consumer.shutdown_grace: duration \"99999999999999999999d\" is too large"));
  const Config config = Load(R"({"queue": {"visibility_timeout": "1h30m", "wait_time": "2000ms"},
                                 "consumer": {"shutdown_grace": "1d"}})");
  EXPECT_EQ(config.queue.visibility_timeout, seconds(5400));
  EXPECT_EQ(config.queue.wait_time, seconds(2));
  EXPECT_EQ(config.consumer.shutdown_grace, seconds(86400));
}

TEST(ConfigJsonTest, EnumsSuggestTheClosestValue) {
  EXPECT_THAT(
      Problems(R"({"queue": {"backend": "sq", "name": "q"}})"),
      ElementsAre("queue.backend: expected \"memory\" or \"sqs\", got \"sq\" (did you mean \"sqs\"?)"));
  EXPECT_THAT(Problems(R"({"queue": {"protocol": "xml"}})"),
              ElementsAre("queue.protocol: expected \"json\" or \"query\", got \"xml\""));
  EXPECT_THAT(
      Problems(
          R"({"jobs": [{"name": "j", "handler": {"type": "http", "url": "http://h", "method": "post"}}]})"),
      ElementsAre("jobs[0].handler.method: expected \"GET\", \"POST\", \"PUT\", \"PATCH\" or \"DELETE\", got "
                  "\"post\" (did you mean \"POST\"?)"));
  EXPECT_THAT(
      Problems(R"({"jobs": [{"name": "j", "notify": {"on": "failures"}}]})"),
      ElementsAre("jobs[0].notify.on: expected \"success\", \"failure\", \"always\" or \"recovered\", got "
                  "\"failures\" (did you mean \"failure\"?)"));
  EXPECT_THAT(Problems(R"({"notify": {"targets": {"t": {"type": "teams", "url": "https://x"}}}})"),
              ElementsAre("notify.targets.t.type: expected \"slack\" or \"discord\", got \"teams\""));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "notify": {"on": "recovered"}}]})"), IsEmpty());
}

TEST(ConfigJsonTest, QueueRules) {
  EXPECT_THAT(
      Problems(R"({"queue": {"backend": "sqs"}})"),
      ElementsAre("queue: backend \"sqs\" needs \"url\" (the queue URL) or \"name\" (the queue name)"));
  EXPECT_THAT(Problems(R"({"queue": {"backend": "sqs", "url": "https://sqs.x/1/q", "name": "q"}})"),
              ElementsAre("queue.name: \"url\" and \"name\" are mutually exclusive: give one"));
  EXPECT_THAT(
      Problems(R"({"queue": {"backend": "sqs", "name": "my queue"}})"),
      ElementsAre("queue.name: expected an SQS queue name (1 to 80 characters from A-Z a-z 0-9 _ -, ending "
                  "in \".fifo\" for a FIFO queue), got \"my queue\""));
  EXPECT_THAT(
      Problems(R"({"queue": {"backend": "sqs", "url": "sqs.us-east-1.amazonaws.com/1/q"}})"),
      ElementsAre("queue.url: expected an http:// or https:// URL, got \"sqs.us-east-1.amazonaws.com/1/q\""));
  EXPECT_THAT(Problems(R"({"queue": {"endpoint": "http://"}})"),
              ElementsAre("queue.endpoint: expected an http:// or https:// URL, got \"http://\""));
  EXPECT_THAT(Problems(R"({"queue": {"backend": "sqs", "name": ")" + std::string(81, 'q') + R"("}})"),
              ElementsAre(StartsWith("queue.name: expected an SQS queue name")));
  EXPECT_THAT(Problems(R"({"queue": {"backend": "sqs", "name": "tasks.fifo"}})"), IsEmpty());
  EXPECT_THAT(Problems(R"({"queue": {"backend": "sqs", "name": ".fifo"}})"),
              ElementsAre(StartsWith("queue.name: expected an SQS queue name")));
  EXPECT_THAT(Problems(R"({"queue": {"backend": "sqs", "name": "a-b_C9.fifo"}})"), IsEmpty());
  EXPECT_THAT(Problems(R"({"queue": {"backend": "sqs", "url": "HTTPS://sqs.x/1/q"}})"), IsEmpty());
  // The memory backend ignores url/name but still rejects both at once.
  EXPECT_THAT(Problems(R"({"queue": {"backend": "memory", "name": "q"}})"), IsEmpty());
}

TEST(ConfigJsonTest, NotifyTargetRules) {
  EXPECT_THAT(Problems(R"({"notify": {"targets": {"t": {}}}})"),
              ElementsAre("notify.targets.t.type: required key is missing",
                          "notify.targets.t.url: required key is missing"));
  // A webhook URL is a credential: the message does not show it.
  const std::vector<std::string> problems = Problems(
      R"({"notify": {"targets": {"t": {"type": "slack", "url": "hooks.slack.com/services/SECRET"}}}})");
  EXPECT_THAT(problems,
              ElementsAre("notify.targets.t.url: expected an http:// or https:// URL (the value is not "
                          "shown: it is a secret)"));
  EXPECT_THAT(
      Problems(R"({"notify": {"targets": {"bad name!": {"type": "slack", "url": "https://x"}}}})"),
      ElementsAre("notify.targets[\"bad name!\"]: a target name must be 1 to 80 characters from A-Z a-z 0-9 "
                  "_ . -, got \"bad name!\""));
}

TEST(ConfigJsonTest, JobRules) {
  EXPECT_THAT(Problems(R"({"jobs": [{}]})"), ElementsAre("jobs[0].name: required key is missing"));
  EXPECT_THAT(
      Problems(R"({"jobs": [{"name": ""}, {"name": "has space"}, {"name": ")" + std::string(81, 'n') +
               R"("}]})"),
      ElementsAre("jobs[0].name: a job name must be 1 to 80 characters from A-Z a-z 0-9 _ . -, got \"\"",
                  "jobs[1].name: a job name must be 1 to 80 characters from A-Z a-z 0-9 _ . -, got \"has "
                  "space\"",
                  StartsWith("jobs[2].name: a job name must be")));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "a"}, {"name": "b"}, {"name": "a"}, {"name": "a"}]})"),
              ElementsAre("jobs[2].name: duplicate job name \"a\" (also at jobs[0].name)",
                          "jobs[3].name: duplicate job name \"a\" (also at jobs[0].name)"));
  EXPECT_THAT(
      Problems(R"({"jobs": [{"name": "j", "timezone": ""}]})"),
      ElementsAre(
          "jobs[0].timezone: expected an IANA time zone such as \"UTC\" or \"Asia/Taipei\", got \"\""));
  EXPECT_THAT(
      Problems(R"({"jobs": [{"name": "j", "tasks": ["a"], "tasks_file": "t.txt"}]})"),
      ElementsAre("jobs[0].tasks_file: \"tasks\" and \"tasks_file\" are mutually exclusive: give one"));
  EXPECT_THAT(
      Problems(R"({"jobs": [{"name": "j", "tasks": []}]})"),
      ElementsAre("jobs[0].tasks: the list is empty: the job would send nothing (leave \"tasks\" out to send "
                  "one empty task {})"));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "tasks_file": ""}]})"),
              ElementsAre("jobs[0].tasks_file: expected a file name, got \"\""));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "schedule": ""}]})"), IsEmpty());  // "" = on demand only
}

TEST(ConfigJsonTest, HandlerRules) {
  const auto job = [](const std::string& handler) {
    return R"({"jobs": [{"name": "j", "handler": )" + handler + "}]}";
  };
  EXPECT_THAT(Problems(job(R"({"type": "exec"})")),
              ElementsAre("jobs[0].handler.command: required key is missing"));
  EXPECT_THAT(
      Problems(job(R"({"type": "exec", "command": []})")),
      ElementsAre("jobs[0].handler.command: expected the program and its arguments, got an empty array"));
  EXPECT_THAT(Problems(job(R"({"type": "exec", "command": ["", "x"]})")),
              ElementsAre("jobs[0].handler.command[0]: the program name is empty"));
  EXPECT_THAT(Problems(job(R"({"type": "exec", "command": ["a", "b\u0000c"]})")),
              ElementsAre("jobs[0].handler.command[1]: must not contain NUL characters"));
  EXPECT_THAT(
      Problems(job(R"({"type": "exec", "command": ["a"], "env": {"1X": "v", "A=B": "v", "OK": "v"}})")),
      ElementsAre("jobs[0].handler.env.1X: expected a variable name (letters, digits and _, not starting "
                  "with a digit)",
                  "jobs[0].handler.env[\"A=B\"]: expected a variable name (letters, digits and _, not "
                  "starting with a digit)"));
  EXPECT_THAT(Problems(job(R"({"type": "http"})")),
              ElementsAre("jobs[0].handler.url: required key is missing"));
  EXPECT_THAT(Problems(job(R"({"type": "http", "url": "ftp://h"})")),
              ElementsAre("jobs[0].handler.url: expected an http:// or https:// URL, got \"ftp://h\""));
  EXPECT_THAT(
      Problems(job(R"({"type": "http", "url": "http://h", "headers": {"Bad Name": "v", "X-Ok": "a\r\nb"}})")),
      ElementsAre("jobs[0].handler.headers[\"Bad Name\"]: not a valid HTTP header name",
                  "jobs[0].handler.headers.X-Ok: must not contain line breaks or NUL characters"));
  // Keys of another built-in type are reported, not silently ignored.
  EXPECT_THAT(Problems(job(R"({"type": "log", "command": ["x"], "url": "http://h", "options": {}})")),
              ElementsAre("jobs[0].handler.command: not used by handler type \"log\"",
                          "jobs[0].handler.url: not used by handler type \"log\"",
                          "jobs[0].handler.options: not used by handler type \"log\""));
  EXPECT_THAT(Problems(job(R"({"type": "http", "url": "http://h", "command": ["x"]})")),
              ElementsAre("jobs[0].handler.command: not used by handler type \"http\""));
  EXPECT_THAT(Problems(job(R"({"command": ["x"]})")),  // the default type is "log"
              ElementsAre("jobs[0].handler.command: not used by handler type \"log\""));
  EXPECT_THAT(
      Problems(job(R"({"type": "exce", "command": ["x"]})")),
      ElementsAre("jobs[0].handler.type: unknown handler type \"exce\" (did you mean \"exec\"? known: exec, "
                  "http, log)"));
  EXPECT_THAT(Problems(job(R"({"type": "python"})")),
              ElementsAre("jobs[0].handler.type: unknown handler type \"python\" (known: exec, http, log)"));
}

TEST(ConfigJsonTest, FullHandlers) {
  const Config config = Load(R"({"jobs": [
    {"name": "e", "handler": {"type": "exec", "command": ["/bin/echo", "hi"], "cwd": "/tmp", "env": {"A": "1"},
                              "timeout": "30s"}},
    {"name": "h", "handler": {"type": "http", "url": "https://app/admin", "method": "PUT",
                              "headers": {"Authorization": "Bearer abcdef"}}}
  ]})");
  ASSERT_EQ(config.jobs.size(), 2u);
  const HandlerConfig& exec = config.jobs[0].handler;
  EXPECT_THAT(exec.command, ElementsAre("/bin/echo", "hi"));
  EXPECT_EQ(exec.cwd, "/tmp");
  EXPECT_EQ(exec.env, (std::map<std::string, std::string>{{"A", "1"}}));
  EXPECT_EQ(exec.timeout, seconds(30));
  const HandlerConfig& http = config.jobs[1].handler;
  EXPECT_EQ(http.url, "https://app/admin");
  EXPECT_EQ(http.method, "PUT");
  EXPECT_EQ(http.headers.at("Authorization"), "Bearer abcdef");
}

TEST(ConfigJsonTest, RegisteredHandlerTypes) {
  LoadOptions options = WithEnv({{"REGION", "eu"}});
  options.handler_types.insert("resize-image");
  const Config config = Load(R"({"jobs": [{"name": "j", "handler": {"type": "resize-image", "timeout": "1m",
                                  "options": {"width": 100, "region": "${REGION}"}}}]})",
                             options);
  ASSERT_EQ(config.jobs.size(), 1u);
  EXPECT_EQ(config.jobs[0].handler.type, "resize-image");
  EXPECT_EQ(config.jobs[0].handler.options, json({{"width", 100}, {"region", "eu"}}));
  EXPECT_THAT(
      Problems(R"({"jobs": [{"name": "j", "handler": {"type": "resize-imag"}}]})", options),
      ElementsAre(
          "jobs[0].handler.type: unknown handler type \"resize-imag\" (did you mean \"resize-image\"? "
          "known: exec, http, log, resize-image)"));
  EXPECT_THAT(
      Problems(R"({"jobs": [{"name": "j", "handler": {"type": "resize-image", "options": 5}}]})", options),
      ElementsAre("jobs[0].handler.options: expected an object, got 5"));
  // Without registration the name is unknown.
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "handler": {"type": "resize-image"}}]})"),
              ElementsAre(StartsWith("jobs[0].handler.type: unknown handler type \"resize-image\"")));
}

TEST(ConfigJsonTest, NotifyTargetsMustExist) {
  EXPECT_THAT(Problems(R"({"notify": {"targets": {"team-slack": {"type": "slack", "url": "https://s"},
                                                  "ops-discord": {"type": "discord", "url": "https://d"}}},
                          "jobs": [{"name": "j", "notify": {"targets": ["team-slak", "ops-discord", "pager"]}}]})"),
              ElementsAre("jobs[0].notify.targets[0]: unknown notify target \"team-slak\" (did you mean "
                          "\"team-slack\"? known: ops-discord, team-slack)",
                          "jobs[0].notify.targets[2]: unknown notify target \"pager\" (known: ops-discord, "
                          "team-slack)"));
  // One-letter names are not "close" to each other.
  EXPECT_THAT(
      Problems(R"({"notify": {"targets": {"t": {"type": "slack", "url": "https://s"}}},
                          "jobs": [{"name": "j", "notify": {"targets": ["x", "T"]}}]})"),
      ElementsAre("jobs[0].notify.targets[0]: unknown notify target \"x\" (known: t)",
                  "jobs[0].notify.targets[1]: unknown notify target \"T\" (did you mean \"t\"? known: t)"));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "notify": {"targets": ["x"]}}]})"),
              ElementsAre("jobs[0].notify.targets[0]: unknown notify target \"x\" (no targets are defined in "
                          "notify.targets)"));
}

TEST(ConfigJsonTest, DefaultJobMustNameAJob) {
  EXPECT_THAT(
      Problems(R"({"consumer": {"default_job": "daily-reprot"},
                          "jobs": [{"name": "daily-report"}, {"name": "other"}]})"),
      ElementsAre("consumer.default_job: unknown job \"daily-reprot\" (did you mean \"daily-report\"? known: "
                  "daily-report, other)"));
  EXPECT_THAT(Problems(R"({"consumer": {"default_job": "x"}})"),
              ElementsAre("consumer.default_job: unknown job \"x\" (no jobs are defined)"));
  EXPECT_EQ(Load(R"({"consumer": {"default_job": "a"}, "jobs": [{"name": "a"}]})").consumer.default_job, "a");
}

// ---------------------------------------------------------------------------------------------
// ${VAR} expansion

TEST(ConfigJsonTest, EnvExpansion) {
  const LoadOptions options =
      WithEnv({{"A", "alpha"}, {"EMPTY", ""}, {"Q", "say \"hi\" \\ {x}"}, {"B", "beta"}});
  const auto region = [&](const std::string& value) {
    StatusOr<Config> config = ParseConfig(R"({"queue": {"region": ")" + value + R"("}})", options);
    return config.ok() ? config->queue.region : "ERROR: " + config.status().message();
  };
  EXPECT_EQ(region("${A}"), "alpha");
  EXPECT_EQ(region("x-${A}-${B}-y"), "x-alpha-beta-y");
  EXPECT_EQ(region("${EMPTY}"), "");  // set but empty: empty, no problem
  EXPECT_EQ(region("${UNSET:-fallback}"), "fallback");
  EXPECT_EQ(region("${EMPTY:-fallback}"), "fallback");  // shell semantics: ":-" also covers empty
  EXPECT_EQ(region("${A:-fallback}"), "alpha");
  EXPECT_EQ(region("${UNSET:-}"), "");  // an explicit empty default
  EXPECT_EQ(region("${UNSET:-a b:c-d}"), "a b:c-d");
  // Decision: a default may itself use ${...}; it is expanded only when used.
  EXPECT_EQ(region("${UNSET:-${B}}"), "beta");
  EXPECT_EQ(region("${UNSET:-${ALSO_UNSET:-deep}}"), "deep");
  EXPECT_EQ(region("${A:-${ALSO_UNSET}}"), "alpha");  // not used, so not an error
  EXPECT_EQ(region("${UNSET:-x$$y}"), "x$y");
  // $$ is a literal $, and a $ before anything but { or $ stays as is.
  EXPECT_EQ(region("$$"), "$");
  EXPECT_EQ(region("$${A}"), "${A}");
  EXPECT_EQ(region("$$$${A}"), "$${A}");
  EXPECT_EQ(region("$$${A}"), "$alpha");
  EXPECT_EQ(region("$A $ 5$ $"), "$A $ 5$ $");
  EXPECT_EQ(region("}{"), "}{");
  // Values are inserted after parsing: quotes and braces in them cannot break the JSON.
  EXPECT_EQ(region("${Q}"), "say \"hi\" \\ {x}");
}

TEST(ConfigJsonTest, EnvExpansionProblems) {
  const LoadOptions options = WithEnv({{"A", "alpha"}});
  const auto problems = [&](const std::string& value) {
    return Problems(R"({"queue": {"region": ")" + value + R"("}})", options);
  };
  EXPECT_THAT(problems("${SLACK_WEBHOOK_URL}"),
              ElementsAre("queue.region: environment variable SLACK_WEBHOOK_URL is not set (use "
                          "${SLACK_WEBHOOK_URL:-default} to give a default)"));
  EXPECT_THAT(problems("${U1}/${A}/${U2}"),
              ElementsAre(StartsWith("queue.region: environment variable U1 is not set"),
                          StartsWith("queue.region: environment variable U2 is not set")));
  EXPECT_THAT(problems("${UNSET:-${ALSO_UNSET}}"),
              ElementsAre(StartsWith("queue.region: environment variable ALSO_UNSET is not set")));
  const std::string hint = " (write ${VAR} or ${VAR:-default}, and $$ for a literal $)";
  EXPECT_THAT(problems("x${A"),
              ElementsAre("queue.region: \"${\" without a closing \"}\" in \"x${A\"" + hint));
  EXPECT_THAT(problems("${"), ElementsAre("queue.region: \"${\" without a closing \"}\" in \"${\"" + hint));
  EXPECT_THAT(problems("${A:-x"),
              ElementsAre("queue.region: \"${\" without a closing \"}\" in \"${A:-x\"" + hint));
  EXPECT_THAT(problems("${A:-${B}"),
              ElementsAre("queue.region: \"${\" without a closing \"}\" in \"${A:-${B}\"" + hint));
  EXPECT_THAT(problems("${}"),
              ElementsAre("queue.region: missing variable name after \"${\" in \"${}\"" + hint));
  EXPECT_THAT(problems("${1A}"),
              ElementsAre("queue.region: invalid variable name \"1A\" in \"${1A}\"" + hint));
  EXPECT_THAT(problems("${A:?required}"),
              ElementsAre("queue.region: unsupported \"${A:\" in \"${A:?required}\"" + hint));
  EXPECT_THAT(problems("${A-x}"), ElementsAre("queue.region: unsupported \"${A-\" in \"${A-x}\"" + hint));
  EXPECT_THAT(problems("${A B}"), ElementsAre("queue.region: unsupported \"${A \" in \"${A B}\"" + hint));
  EXPECT_THAT(problems("${UNSET:-${}}"), ElementsAre(StartsWith("queue.region: missing variable name")));
}

TEST(ConfigJsonTest, EnvValueThatIsNotUtf8IsAProblem) {
  EXPECT_THAT(Problems(R"({"queue": {"region": "${BAD}"}})", WithEnv({{"BAD", "\xff\xfe"}})),
              ElementsAre("queue.region: environment variable BAD is not valid UTF-8"));
}

TEST(ConfigJsonTest, EnvLookupThatThrowsIsAProblem) {
  LoadOptions options;
  options.getenv = [](std::string_view) -> std::optional<std::string> {
    throw std::runtime_error("vault down");
  };
  EXPECT_THAT(Problems(R"({"queue": {"region": "${A}"}})", options),
              ElementsAre("queue.region: cannot read environment variable A: vault down"));
}

TEST(ConfigJsonTest, DefaultEnvironmentIsTheProcessEnvironment) {
  ASSERT_EQ(::setenv("TASKPIPE_CONFIG_TEST_REGION", "ap-east-1", 1), 0);
  ::unsetenv("TASKPIPE_CONFIG_TEST_UNSET");
  StatusOr<Config> config = ParseConfig(R"({"queue": {"region": "${TASKPIPE_CONFIG_TEST_REGION}"}})");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->queue.region, "ap-east-1");
  EXPECT_FALSE(ParseConfig(R"({"queue": {"region": "${TASKPIPE_CONFIG_TEST_UNSET}"}})").ok());
  ::unsetenv("TASKPIPE_CONFIG_TEST_REGION");
}

TEST(ConfigJsonTest, ExpansionReachesTasksButNotKeys) {
  const Config config =
      Load(R"({"jobs": [{"name": "j", "tasks": ["${A}", {"${A}": "${A}", "n": [{"d": "${A}"}], "k": 1}]}]})",
           WithEnv({{"A", "x"}}));
  ASSERT_EQ(config.jobs.size(), 1u);
  EXPECT_THAT(config.jobs[0].tasks,
              ElementsAre(json("x"), json({{"${A}", "x"}, {"n", json::array({{{"d", "x"}}})}, {"k", 1}})));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "tasks": [{"n": ["${NOPE}"]}]}]})"),
              ElementsAre(StartsWith("jobs[0].tasks[0].n[0]: environment variable NOPE is not set")));
}

TEST(ConfigJsonTest, ExpansionInEveryStringField) {
  const Config config = Load(R"({
    "queue": {"backend": "${BACKEND}", "name": "${QUEUE}", "visibility_timeout": "${VT}"},
    "notify": {"targets": {"t": {"type": "slack", "url": "https://${HOST}/x"}}},
    "jobs": [{"name": "${JOB}", "handler": {"type": "exec", "command": ["${BIN}", "--token=${TOKEN}"],
              "env": {"X": "${HOME_DIR}"}}, "notify": {"targets": ["${TARGET}"]}}]
  })",
                             WithEnv({{"BACKEND", "sqs"},
                                      {"QUEUE", "q"},
                                      {"VT", "2m"},
                                      {"HOST", "h"},
                                      {"JOB", "job1"},
                                      {"BIN", "/bin/x"},
                                      {"TOKEN", "tok-12345"},
                                      {"HOME_DIR", "/home/u"},
                                      {"TARGET", "t"}}));
  EXPECT_EQ(config.queue.backend, "sqs");
  EXPECT_EQ(config.queue.name, "q");
  EXPECT_EQ(config.queue.visibility_timeout, seconds(120));
  ASSERT_EQ(config.jobs.size(), 1u);
  EXPECT_EQ(config.jobs[0].name, "job1");
  EXPECT_THAT(config.jobs[0].handler.command, ElementsAre("/bin/x", "--token=tok-12345"));
  EXPECT_THAT(config.jobs[0].notify.targets, ElementsAre("t"));
}

// An unset variable at a key that is itself unknown is reported once, as the unknown key.
TEST(ConfigJsonTest, UnknownKeyValuesAreNotExpanded) {
  EXPECT_THAT(Problems(R"({"queue": {"regoin": "${NOPE}"}})"),
              ElementsAre("queue.regoin: unknown key (did you mean \"region\"?)"));
}

// ---------------------------------------------------------------------------------------------
// Secrets

TEST(ConfigJsonTest, SecretsAreCollected) {
  const Config config = Load(
      R"({
    "notify": {"targets": {"a": {"type": "slack", "url": "${URL}"}, "b": {"type": "discord", "url": "${URL}"}}},
    "jobs": [
      {"name": "h", "handler": {"type": "http", "url": "https://app/x", "headers": {"Authorization": "Bearer ${TOKEN}",
                                                                                    "X-Short": "abc"}}},
      {"name": "e", "handler": {"type": "exec", "command": ["run", "${API_KEY}"], "env": {"DB_PASSWORD": "hunter22"}}}
    ]
  })",
      WithEnv(
          {{"URL", "https://hooks.example/secret"}, {"TOKEN", "t0ken-value"}, {"API_KEY", "key-123456"}}));
  // Webhook URLs (once), header values, exec env values, and values of secret-looking variables
  // wherever they are used. Values under 4 characters are not collected.
  EXPECT_THAT(config.secrets, UnorderedElementsAre("https://hooks.example/secret", "Bearer t0ken-value",
                                                   "hunter22", "t0ken-value", "key-123456"));
}

TEST(ConfigJsonTest, QueueUrlIsNotASecret) {
  const Config config = Load(R"({"queue": {"backend": "sqs", "url": "https://sqs.x/1/q"}})");
  EXPECT_TRUE(config.secrets.empty());
}

// ---------------------------------------------------------------------------------------------
// Many problems at once

TEST(ConfigJsonTest, ReportsEveryProblemInOneGo) {
  constexpr std::string_view kText = R"({
    "queue": {"backend": "sqs", "visiblity_timeout": "60s", "visibility_timeout": "13h"},
    "consumer": {"workers": "eight", "default_job": "nope"},
    "notify": {"targets": {"team-slack": {"type": "slack", "url": "${SLACK_WEBHOOK_URL}"},
                           "ops-discord": {"type": "discord", "url": "https://d"}}},
    "jobs": [
      {"name": "a", "handler": {"type": "exec", "command": ["x"]}},
      {"name": "b", "handler": {"timeout": "soon"}, "notify": {"targets": ["team-slak"]}},
      {"name": "a"}
    ]
  })";
  EXPECT_THAT(
      Problems(kText),
      ElementsAre(
          "queue.visiblity_timeout: unknown key (did you mean \"visibility_timeout\"?)",
          "queue.visibility_timeout: 13h is over SQS's maximum of 12h",
          "queue: backend \"sqs\" needs \"url\" (the queue URL) or \"name\" (the queue name)",
          "consumer.workers: expected an integer, got \"eight\"",
          StartsWith("notify.targets.team-slack.url: environment variable SLACK_WEBHOOK_URL is not set"),
          "jobs[1].handler.timeout: expected a duration like \"30s\", got \"soon\"",
          "jobs[1].notify.targets[0]: unknown notify target \"team-slak\" (did you mean \"team-slack\"? "
          "known: ops-discord, team-slack)",
          "jobs[2].name: duplicate job name \"a\" (also at jobs[0].name)",
          "consumer.default_job: unknown job \"nope\" (known: a, b)"));

  StatusOr<Config> config = ParseConfig(kText, WithEnv({}), "conf/taskpipe.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  const std::string& message = config.status().message();
  EXPECT_THAT(message,
              StartsWith("invalid config \"conf/taskpipe.json\" (9 problems):\n"
                         "queue.visiblity_timeout: unknown key (did you mean \"visibility_timeout\"?)\n"
                         "queue.visibility_timeout: 13h is over SQS's maximum of 12h\n"));
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 9);
}

TEST(ConfigJsonTest, StatusMessageForOneProblemWithoutFile) {
  StatusOr<Config> config = ParseConfig(R"({"consumer": {"workers": 0}})");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "invalid config (1 problem):\nconsumer.workers: must be between 1 and 1024, got 0");
  EXPECT_TRUE(ConfigProblemsToStatus({}, "x").ok());
}

// Every value of the example replaced, in turn, by values of every JSON type: never a crash or
// an exception, always a clean result or problems.
TEST(ConfigJsonTest, AnyTypeAtAnyPlaceIsHandled) {
  StatusOr<Config> base_config = ParseConfig(kDesignExample, DesignEnv());
  ASSERT_TRUE(base_config.ok());
  const json base = json::parse(kDesignExample, nullptr, true, true);
  const json replacements[] = {nullptr,
                               true,
                               -1,
                               0,
                               18446744073709551615ULL,
                               1.5,
                               "",
                               "x",
                               "${",
                               json::array(),
                               json::object(),
                               json::array({1, "a", nullptr}),
                               json({{"k", json::array()}})};
  const json flat = base.flatten();
  size_t runs = 0;
  for (const auto& [pointer, unused] : flat.items()) {
    // Replace the leaf and each of its ancestors.
    for (json::json_pointer p(pointer); !p.empty(); p = p.parent_pointer()) {
      for (const json& replacement : replacements) {
        json mutated = base;
        mutated[p] = replacement;
        Config config;
        std::vector<ConfigProblem> problems;
        EXPECT_NO_THROW(problems = ParseConfigProblems(mutated.dump(), DesignEnv(), "", &config))
            << p.to_string() << " = " << replacement.dump();
        for (const ConfigProblem& problem : problems) {
          EXPECT_FALSE(problem.message.empty());
          EXPECT_NO_THROW((void)json(problem.ToString()).dump());
        }
        ++runs;
      }
    }
  }
  EXPECT_GT(runs, 500u);
}

// ---------------------------------------------------------------------------------------------
// Schedule hook

TEST(ConfigJsonTest, ScheduleHookReportsAtTheJobsSchedule) {
  LoadOptions options = WithEnv({});
  std::vector<std::string> seen;
  options.validate_schedule = [&](const JobConfig& job) -> std::optional<std::string> {
    seen.push_back(job.name + "|" + job.schedule + "|" + job.timezone);
    if (job.schedule == "cron(bad)") return "cron() needs 6 fields, got 1";
    return std::nullopt;
  };
  EXPECT_THAT(Problems(R"js({"jobs": [{"name": "a", "schedule": "rate(1 day)"},
                                    {"name": "b", "schedule": "cron(bad)", "timezone": "Asia/Taipei"},
                                    {"name": "c"},
                                    {"name": "d", "schedule": 5}]})js",
                       options),
              ElementsAre("jobs[1].schedule: cron() needs 6 fields, got 1",
                          "jobs[3].schedule: expected a string, got 5"));
  // Not called for a job without a schedule, nor for one whose schedule is not a string.
  EXPECT_THAT(seen, ElementsAre("a|rate(1 day)|UTC", "b|cron(bad)|Asia/Taipei"));
}

TEST(ConfigJsonTest, ScheduleHookThatThrowsIsAProblem) {
  LoadOptions options = WithEnv({});
  options.validate_schedule = [](const JobConfig&) -> std::optional<std::string> {
    throw std::runtime_error("tzdata missing");
  };
  EXPECT_THAT(Problems(R"js({"jobs": [{"name": "a", "schedule": "rate(1 day)"}]})js", options),
              ElementsAre("jobs[0].schedule: cannot check the schedule: tzdata missing"));
}

// ---------------------------------------------------------------------------------------------
// Files

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::temp_directory_path() /
           ("taskpipe_config_json_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(dir_ / "conf");
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string Write(const std::string& name, const std::string& content) {
    const std::filesystem::path path = dir_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigFileTest, LoadsAFileAndResolvesTasksFileAgainstItsFolder) {
  Write("conf/tasks.txt", "# tasks\none\r\n{\"two\": 2}\r\n");
  Write("conf/sub/more.json", R"(["three"])");
  const std::string absolute = Write("abs.txt", "four\n");
  const std::string path = Write("conf/taskpipe.json", R"({"jobs": [
      {"name": "a", "tasks_file": "tasks.txt"},
      {"name": "b", "tasks_file": "./sub/../sub/more.json"},
      {"name": "c", "tasks_file": ")" + absolute + R"("}]})");
  StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->source_path, path);
  ASSERT_EQ(config->jobs.size(), 3u);
  EXPECT_EQ(config->jobs[0].tasks_file, (dir_ / "conf/tasks.txt").string());
  EXPECT_THAT(config->jobs[0].tasks, ElementsAre(json("one"), json({{"two", 2}})));
  EXPECT_EQ(config->jobs[1].tasks_file, (dir_ / "conf/sub/more.json").string());
  EXPECT_THAT(config->jobs[1].tasks, ElementsAre(json("three")));
  EXPECT_EQ(config->jobs[2].tasks_file, absolute);
  EXPECT_THAT(config->jobs[2].tasks, ElementsAre(json("four")));
}

TEST_F(ConfigFileTest, TasksFileProblemsAreReportedAtTheJob) {
  Write("conf/bad.txt", "ok\n{oops\n\"also bad\n");
  Write("conf/empty.txt", "# nothing yet\n");
  const std::string path = Write("conf/taskpipe.json", R"({"jobs": [
      {"name": "a", "tasks_file": "missing.txt"},
      {"name": "b", "tasks_file": "bad.txt"},
      {"name": "c", "tasks_file": "empty.txt"}]})");
  Config config;
  std::vector<std::string> problems;
  for (const ConfigProblem& p : LoadConfigFileProblems(path, WithEnv({}), &config))
    problems.push_back(p.ToString());
  const std::string conf = (dir_ / "conf").string();
  EXPECT_THAT(problems,
              ElementsAre("jobs[0].tasks_file: cannot read tasks file \"" + conf +
                              "/missing.txt\": No such file or directory",
                          StartsWith("jobs[1].tasks_file: " + conf + "/bad.txt:2: line starts with '{'"),
                          StartsWith("jobs[1].tasks_file: " + conf + "/bad.txt:3: line starts with '\"'"),
                          "jobs[2].tasks_file: \"" + conf +
                              "/empty.txt\" holds no tasks: the job would send nothing"));
}

TEST_F(ConfigFileTest, MissingConfigFileIsAClearError) {
  const std::string path = (dir_ / "nope.json").string();
  StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(), "cannot read config \"" + path + "\": No such file or directory");
  Config unused;
  EXPECT_THAT(LoadConfigFileProblems(path, WithEnv({}), &unused).at(0).ToString(),
              "cannot read config \"" + path + "\": No such file or directory");
}

TEST_F(ConfigFileTest, ProblemsNameTheFileOnce) {
  const std::string path = Write("conf/taskpipe.json", "{\n  \"consumer\": {\"workers\": 0},\n}\n");
  StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "invalid config \"" + path +
                "\" (1 problem):\n"
                "line 3, column 1: syntax error while parsing object key - unexpected '}'; "
                "expected string literal");
}

TEST_F(ConfigFileTest, TasksFileWithoutConfigFileIsRelativeToTheCurrentFolder) {
  LoadOptions options = WithEnv({});
  std::vector<std::string> reads;
  options.read_file = [&](const std::string& path) -> StatusOr<std::string> {
    reads.push_back(path);
    return std::string("x\n");
  };
  const Config config = Load(R"({"jobs": [{"name": "a", "tasks_file": "./t/../tasks.txt"}]})", options);
  EXPECT_THAT(reads, ElementsAre("tasks.txt"));
  ASSERT_EQ(config.jobs.size(), 1u);
  EXPECT_EQ(config.jobs[0].tasks_file, "tasks.txt");
  EXPECT_THAT(config.jobs[0].tasks, ElementsAre(json("x")));
}

// ---------------------------------------------------------------------------------------------
// Producer keys: catch_up and message_group_id

TEST(ConfigJsonTest, CatchUpAndMessageGroupIdDefaults) {
  const Config config = Load(R"({"jobs": [{"name": "j"}]})");
  ASSERT_EQ(config.jobs.size(), 1u);
  EXPECT_FALSE(config.jobs[0].catch_up);
  EXPECT_EQ(config.jobs[0].message_group_id, "");
}

TEST(ConfigJsonTest, CatchUpAndMessageGroupIdAreRead) {
  const Config config = Load(
      R"({"jobs": [{"name": "a", "catch_up": true, "message_group_id": "${G}"},
                   {"name": "b", "catch_up": false, "message_group_id": "x!#$$%&'()*+,-./:;<=>?@[]^_`{|}~9"}]})",
      WithEnv({{"G", "group-1"}}));
  ASSERT_EQ(config.jobs.size(), 2u);
  EXPECT_TRUE(config.jobs[0].catch_up);
  EXPECT_EQ(config.jobs[0].message_group_id, "group-1");
  EXPECT_FALSE(config.jobs[1].catch_up);
  EXPECT_EQ(config.jobs[1].message_group_id, "x!#$%&'()*+,-./:;<=>?@[]^_`{|}~9");
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "message_group_id": ")" + std::string(128, 'g') + R"("}]})"),
              IsEmpty());
}

TEST(ConfigJsonTest, CatchUpMustBeABoolean) {
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "catch_up": "yes"}]})"),
              ElementsAre("jobs[0].catch_up: expected true or false, got \"yes\""));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "catch_up": 1}]})"),
              ElementsAre("jobs[0].catch_up: expected true or false, got 1"));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "catch_up": null}]})"),
              ElementsAre("jobs[0].catch_up: expected true or false, got null"));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "catchup": true}]})"),
              ElementsAre("jobs[0].catchup: unknown key (did you mean \"catch_up\"?)"));
}

TEST(ConfigJsonTest, MessageGroupIdRules) {
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "message_group_id": 7}]})"),
              ElementsAre("jobs[0].message_group_id: expected a string, got 7"));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "message_group_id": ""}]})"),
              ElementsAre(StartsWith("jobs[0].message_group_id: a message group id must be 1 to 128")));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "message_group_id": "has space"}]})"),
              ElementsAre(HasSubstr("got \"has space\"")));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "message_group_id": "caf\u00e9"}]})"),
              ElementsAre(StartsWith("jobs[0].message_group_id: a message group id must be")));
  EXPECT_THAT(Problems(R"({"jobs": [{"name": "j", "message_group_id": ")" + std::string(129, 'g') + R"("}]})"),
              ElementsAre(StartsWith("jobs[0].message_group_id: a message group id must be")));
}

}  // namespace
}  // namespace taskpipe
