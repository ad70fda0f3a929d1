// End-to-end tests of the taskpipe executable: real child processes, real files.
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/run_process.h"

namespace taskpipe {
namespace {

using ::taskpipe::testing::ProcessOptions;
using ::taskpipe::testing::ProcessResult;
using ::taskpipe::testing::RunTaskpipe;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    path_ = std::filesystem::temp_directory_path() /
            ("taskpipe_cli_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++) + ".json");
    std::ofstream(path_) << contents;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(CliTest, VersionPrintsNameAndVersion) {
  ProcessResult r = RunTaskpipe({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("taskpipe " TASKPIPE_VERSION));
}

TEST(CliTest, HelpTeachesCommandsAndExamples) {
  ProcessResult r = RunTaskpipe({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("check"), HasSubstr("next"), HasSubstr("Examples:"),
                           HasSubstr("--log-level"), HasSubstr("--log-format"), HasSubstr("Exit status")));
}

TEST(CliTest, NoCommandIsUsageError) {
  ProcessResult r = RunTaskpipe({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--help"));
}

TEST(CliTest, UnknownCommandIsUsageError) {
  ProcessResult r = RunTaskpipe({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("frobnicate"));
}

TEST(CliTest, BadLogLevelIsUsageError) {
  ProcessResult r = RunTaskpipe({"check", "--config", "examples/local.json", "--log-level", "loud"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--log-level: unknown log level \"loud\""));
}

TEST(CliTest, CheckRequiresConfig) {
  ProcessResult r = RunTaskpipe({"check"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--config"));
}

TEST(CliTest, CheckExampleConfigListsJobsWithNextFires) {
  ProcessResult r = RunTaskpipe({"check", "--config", "examples/local.json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(HasSubstr("config OK: examples/local.json"), HasSubstr("queue: memory"),
                           HasSubstr("hello: rate(1 minute) in UTC"),
                           HasSubstr("daily-report: cron(0 9 ? * MON-FRI *) in Asia/Taipei"),
                           HasSubstr("(Asia/Taipei)"), HasSubstr("+08:00"), HasSubstr("    next ")));
}

TEST(CliTest, CheckInvalidConfigReportsEveryProblemWithItsPath) {
  ProcessResult r = RunTaskpipe({"check", "--config", "examples/invalid.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("invalid config \"examples/invalid.json\""),
                           HasSubstr("queue.visiblity_timeout: unknown key"),
                           HasSubstr("queue.retention:"),
                           HasSubstr("consumer.workers: expected an integer"),
                           HasSubstr("jobs[1].handler.timeout: expected a duration like \"30s\", got \"soon\""),
                           HasSubstr("jobs[1].handler.command"),
                           HasSubstr("jobs[1].notify.targets[0]")));
  EXPECT_EQ(r.out, "");
}

TEST(CliTest, CheckMissingFileSaysSo) {
  ProcessResult r = RunTaskpipe({"check", "--config", "no/such/file.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("cannot read config \"no/such/file.json\""));
}

TEST(CliTest, CheckReportsBadScheduleAtItsPath) {
  TempFile config(R"json({"jobs": [{"name": "a", "schedule": "cron(0 12 * * 8 *)"},
                               {"name": "b", "schedule": "rate(5 minutes)", "timezone": "Mars/Base"}]})json");
  ProcessResult r = RunTaskpipe({"check", "--config", config.path()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("jobs[0].schedule: "), HasSubstr("unknown time zone \"Mars/Base\"")));
}

TEST(CliTest, CheckNeverPrintsWebhookUrlsOrTokens) {
  TempFile config(R"json({
    "notify": {"targets": {"team": {"type": "slack", "url": "${HOOK}"}}},
    "jobs": [{"name": "a", "schedule": "rate(1 hour)",
              "handler": {"type": "http", "url": "http://127.0.0.1:9/admin",
                          "headers": {"Authorization": "Bearer ${APP_TOKEN}"}},
              "notify": {"targets": ["team"], "on": "always"}}]})json");
  ProcessOptions options;
  options.env["HOOK"] = "https://hooks.slack.com/services/TSECRET/BSECRET/XSECRETXSECRET";
  options.env["APP_TOKEN"] = "app-token-0123456789";
  ProcessResult r = RunTaskpipe({"check", "--config", config.path(), "--log-level", "trace"}, options);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const std::string& text : {r.out, r.err}) {
    EXPECT_THAT(text, Not(HasSubstr("SECRET")));
    EXPECT_THAT(text, Not(HasSubstr("app-token-0123456789")));
  }
  EXPECT_THAT(r.out, HasSubstr("team (slack)"));
}

TEST(CliTest, NextPrintsUtcInstantsStrictlyAfter) {
  ProcessResult r = RunTaskpipe({"next", "cron(0 12 * * ? *)", "--after", "2026-03-08T12:00:00Z", "--count", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2026-03-09T12:00:00Z\n2026-03-10T12:00:00Z\n");
}

TEST(CliTest, NextInZoneAcrossSpringForward) {
  // 02:30 local does not exist in New York on 2026-03-08 (clocks jump 02:00 -> 03:00): skipped.
  ProcessResult r = RunTaskpipe({"next", "cron(30 2 * * ? *)", "--tz", "America/New_York", "--after",
                                 "2026-03-07T00:00:00Z", "-n", "3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2026-03-07T07:30:00Z\n2026-03-09T06:30:00Z\n2026-03-10T06:30:00Z\n");
}

TEST(CliTest, NextRateAnchoredAtStart) {
  ProcessResult r = RunTaskpipe({"next", "rate(15 minutes)", "--start", "2026-01-01T00:05:00Z", "--after",
                                 "2026-03-08T10:07:00Z", "--count", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2026-03-08T10:20:00Z\n2026-03-08T10:35:00Z\n");
}

TEST(CliTest, NextHonoursEnd) {
  ProcessResult r = RunTaskpipe({"next", "rate(1 day)", "--start", "2026-01-01T00:00:00Z", "--end",
                                 "2026-01-03T00:00:00Z", "--after", "2025-12-31T00:00:00Z", "-n", "10"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2026-01-01T00:00:00Z\n2026-01-02T00:00:00Z\n2026-01-03T00:00:00Z\n");
}

TEST(CliTest, NextAtInThePastPrintsNothing) {
  ProcessResult r = RunTaskpipe({"next", "at(2020-01-01T00:00:00)", "--after", "2026-01-01T00:00:00Z"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("no fire times after 2026-01-01T00:00:00Z"));
}

TEST(CliTest, NextInvalidExpressionIsUsageError) {
  ProcessResult r = RunTaskpipe({"next", "cron(0 12 * * 8 *)"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("day-of-week"));
  EXPECT_EQ(r.out, "");
}

TEST(CliTest, NextUnknownZoneIsUsageError) {
  ProcessResult r = RunTaskpipe({"next", "rate(5 minutes)", "--tz", "Mars/Base"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown time zone \"Mars/Base\""));
}

TEST(CliTest, NextBadTimeFlagIsUsageError) {
  ProcessResult r = RunTaskpipe({"next", "rate(5 minutes)", "--after", "yesterday"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--after: "));
}

}  // namespace
}  // namespace taskpipe
