// Chat notifications through the real binary: `taskpipe notify-test` against loopback servers that
// answer like Slack and Discord, and `taskpipe run` posting a failed task's result.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/testing/http_test_server.h"
#include "tests/testing/run_process.h"

namespace taskpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using testing::HttpTestReply;
using testing::HttpTestRequest;
using testing::HttpTestServer;
using testing::ProcessOptions;
using testing::ProcessResult;
using testing::RunTaskpipe;
using testing::StartTaskpipe;
using testing::WaitUntilTrue;
using json = nlohmann::json;

class NotifyCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("taskpipe-notify-cli-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    // The webhook URLs come from the environment, as the README shows.
    env_.env = {{"SLACK_WEBHOOK_URL", server_.url() + "/services/T000/B000/SLACKSECRET"},
                {"DISCORD_WEBHOOK_URL", server_.url() + "/api/webhooks/42/DISCORDSECRET"}};
    std::ofstream(Path("config.json")) << R"json({
      "notify": {"targets": {
        "team-slack": {"type": "slack", "url": "${SLACK_WEBHOOK_URL}"},
        "ops-discord": {"type": "discord", "url": "${DISCORD_WEBHOOK_URL}", "mention_on_failure": ["role:77"]}}},
      "jobs": [{"name": "flaky", "schedule": "rate(1 day)",
                "tasks": ["x"],
                "handler": {"type": "exec", "command": ["sh", "-c", "echo '@everyone <!channel> oops'; exit 3"]},
                "notify": {"targets": ["team-slack", "ops-discord"], "on": "failure"}}]})json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  static void ExpectNoSecret(const std::string& text) {
    EXPECT_THAT(text, Not(HasSubstr("SLACKSECRET")));
    EXPECT_THAT(text, Not(HasSubstr("DISCORDSECRET")));
  }

  HttpTestServer server_{[](const HttpTestRequest& r) {
    if (r.path().starts_with("/services/")) return HttpTestReply::Text(200, "ok");
    return HttpTestReply::Json(200, R"({"id": "1"})");
  }};
  std::filesystem::path dir_;
  ProcessOptions env_;
};

TEST_F(NotifyCliTest, NotifyTestDeliversASampleToSlack) {
  ProcessResult result =
      RunTaskpipe({"notify-test", "--config", Path("config.json"), "--target", "team-slack", "--log-level", "trace"},
                  env_);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("delivered a sample failure result to \"team-slack\" (slack)"));
  ASSERT_THAT(server_.requests(), SizeIs(1));
  const HttpTestRequest request = server_.requests()[0];
  EXPECT_EQ(request.path(), "/services/T000/B000/SLACKSECRET");
  EXPECT_EQ(request.Header("Content-Type").value_or(""), "application/json");
  const json body = json::parse(request.body);
  EXPECT_THAT(body["text"].get<std::string>(), HasSubstr("notify-test"));
  ExpectNoSecret(result.err);
  ExpectNoSecret(result.out);
}

TEST_F(NotifyCliTest, NotifyTestToDiscordUsesTheVersionedPathAndWaits) {
  ProcessResult result = RunTaskpipe(
      {"notify-test", "-c", Path("config.json"), "-t", "ops-discord", "--status", "success"}, env_);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  ASSERT_THAT(server_.requests(), SizeIs(1));
  EXPECT_EQ(server_.requests()[0].path(), "/api/v10/webhooks/42/DISCORDSECRET");
  EXPECT_EQ(server_.requests()[0].query(), "wait=true");
  const json body = json::parse(server_.requests()[0].body);
  EXPECT_EQ(body["allowed_mentions"]["parse"], json::array());
  EXPECT_EQ(body["content"], "");  // a success mentions no one
}

TEST_F(NotifyCliTest, NotifyTestSaysWhyAGoneWebhookFailed) {
  server_.SetHandler([](const HttpTestRequest&) {
    return HttpTestReply::Json(404, R"({"message": "Unknown Webhook", "code": 10015})");
  });
  ProcessResult result = RunTaskpipe({"notify-test", "-c", Path("config.json"), "-t", "ops-discord"}, env_);
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_THAT(result.err, HasSubstr("is disabled"));
  EXPECT_THAT(result.err, HasSubstr("could not deliver a sample failure result to \"ops-discord\""));
  EXPECT_THAT(result.err, HasSubstr("check its URL"));
  EXPECT_EQ(server_.request_count(), 1);  // a dead webhook is not retried
  ExpectNoSecret(result.err);
}

TEST_F(NotifyCliTest, NotifyTestUsageErrors) {
  ProcessResult unknown = RunTaskpipe({"notify-test", "-c", Path("config.json"), "-t", "team-slak"}, env_);
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown notify target \"team-slak\" (known: ops-discord, team-slack)"));
  ProcessResult status =
      RunTaskpipe({"notify-test", "-c", Path("config.json"), "-t", "team-slack", "--status", "meh"}, env_);
  EXPECT_EQ(status.exit_code, 2);
  EXPECT_THAT(status.err, HasSubstr("--status: expected success, failure, timeout or invalid"));
  ProcessResult missing = RunTaskpipe({"notify-test", "-c", Path("config.json")}, env_);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("--target"));
  EXPECT_EQ(server_.request_count(), 0);
}

// The README's example: valid once the two variables are set, and without them the error names
// each variable (and never a URL).
TEST_F(NotifyCliTest, TheNotifyExampleChecksOutWithItsVariables) {
  ProcessResult ok = RunTaskpipe({"check", "--config", "examples/notify.json"}, env_);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("flaky-check: rate(1 minute) in UTC; 1 task; handler exec; notify team-slack "
                                "ops-discord on failure"));
  ExpectNoSecret(ok.out);
  ProcessOptions bare;
  bare.unset_env = {"SLACK_WEBHOOK_URL", "DISCORD_WEBHOOK_URL"};
  ProcessResult missing = RunTaskpipe({"check", "--config", "examples/notify.json"}, bare);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("notify.targets.team-slack.url: environment variable SLACK_WEBHOOK_URL is not set"));
  EXPECT_THAT(missing.err, HasSubstr("notify.targets.ops-discord.url: environment variable DISCORD_WEBHOOK_URL is not set"));
}

// The whole path: the producer fires, the exec handler fails, the consumer reports the result, and
// both targets get it (escaped, mention-proof) before the process exits on SIGTERM.
TEST_F(NotifyCliTest, RunPostsAFailedTaskToBothTargets) {
  auto run = StartTaskpipe({"run", "--config", Path("config.json")}, env_, Path("out"), Path("err"));
  ASSERT_TRUE(run->started());
  ASSERT_TRUE(WaitUntilTrue([&] { return server_.request_count() >= 2; }, 15000)) << run->Err();
  run->Signal(SIGTERM);
  ASSERT_TRUE(run->Wait(15000)) << run->Err();
  EXPECT_EQ(run->exit_code(), 0) << run->Err();
  std::string slack_body, discord_body;
  for (const HttpTestRequest& r : server_.requests()) {
    (r.path().starts_with("/services/") ? slack_body : discord_body) = r.body;
  }
  ASSERT_FALSE(slack_body.empty());
  ASSERT_FALSE(discord_body.empty());
  EXPECT_THAT(slack_body, HasSubstr("flaky"));
  EXPECT_THAT(slack_body, HasSubstr("&lt;!channel&gt;"));
  EXPECT_THAT(slack_body, Not(HasSubstr("<!channel>")));
  const json discord = json::parse(discord_body);
  EXPECT_EQ(discord["allowed_mentions"]["parse"], json::array());
  EXPECT_EQ(discord["allowed_mentions"]["roles"], json::array({"77"}));
  EXPECT_THAT(discord.dump(), HasSubstr("@everyone"));  // shown as text, pinging no one
  ExpectNoSecret(run->Err());
}

}  // namespace
}  // namespace taskpipe
