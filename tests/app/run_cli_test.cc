// `taskpipe run` and `taskpipe consume` as real processes: local mode on the example config, and
// SIGTERM/SIGINT drain and release against a real SQS server (moto on loopback, started by
// scripts/test.sh), checked with boto3.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/testing/run_process.h"
#include "tests/testing/sqs_server.h"

namespace taskpipe {
namespace {

using ::testing::HasSubstr;
using testing::CreateTestQueue;
using testing::DrainWithBoto3;
using testing::ProcessOptions;
using testing::ProcessResult;
using testing::RunTaskpipe;
using testing::StartTaskpipe;
using testing::UniqueQueueName;
using testing::WaitUntilTrue;

class RunCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("taskpipe-run-cli-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / "home");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ProcessOptions SqsEnv() const { return testing::SqsClientEnv((dir_ / "home").string()); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

std::string UtcInSeconds(int seconds_from_now) {
  std::time_t t = std::time(nullptr) + seconds_from_now;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  return text;
}

// The README's main command: the example runs as written, and a new user sees both handlers run
// within seconds; SIGTERM then drains and exits 0.
TEST_F(RunCliTest, LocalModeRunsTheExampleAndStopsCleanlyOnSigterm) {
  ProcessOptions options;
  options.env = {{"TASKPIPE_DEMO_AT", UtcInSeconds(2)}};
  auto run = StartTaskpipe({"run", "--config", "examples/local.json"}, options, Path("out"), Path("err"));
  ASSERT_TRUE(run->started());
  const bool all_ran = WaitUntilTrue(
      [&] {
        const std::string err = run->Err();
        return err.find("job hello task \"Hello from taskpipe #2\": success") != std::string::npos &&
               err.find("job welcome task {\"day\":\"today\",\"report\":\"welcome\"}: success") != std::string::npos;
      },
      15000);
  ASSERT_TRUE(all_ran) << run->Err();
  // The exec handler's own output (examples/report.sh) reaches the log.
  EXPECT_THAT(run->Err(), HasSubstr("output ends: report ready"));
  run->Signal(SIGTERM);
  ASSERT_TRUE(run->Wait(10000)) << run->Err();
  EXPECT_EQ(run->exit_code(), 0) << run->Err();
  EXPECT_THAT(run->Err(), HasSubstr("received SIGTERM: draining"));
  EXPECT_THAT(run->Err(), HasSubstr("stopped: 4 received, 4 succeeded, 0 failed"));
}

// examples/custom_handler.cc: a handler written in C++, registered by name, runs like the
// built-in ones; its failures are retried.
TEST_F(RunCliTest, TheCompiledCustomHandlerExampleRuns) {
  auto run = testing::StartBinary(TASKPIPE_CUSTOM_HANDLER_EXAMPLE, {"run", "--config", "examples/custom_handler.json"},
                                  {}, Path("out"), Path("err"));
  ASSERT_TRUE(run->started());
  ASSERT_TRUE(WaitUntilTrue(
      [&] {
        const std::string err = run->Err();
        return err.find("6 words") != std::string::npos && err.find("4 words") != std::string::npos &&
               err.find("1 words, fewer than 2") != std::string::npos;
      },
      15000))
      << run->Err();
  run->Signal(SIGTERM);
  ASSERT_TRUE(run->Wait(10000)) << run->Err();
  EXPECT_EQ(run->exit_code(), 0) << run->Err();
  EXPECT_THAT(run->Err(), HasSubstr("will retry"));
  ProcessResult check = testing::RunProcess({TASKPIPE_CUSTOM_HANDLER_EXAMPLE, "check", "--config",
                                             TASKPIPE_SOURCE_DIR "/examples/custom_handler.json"});
  EXPECT_EQ(check.exit_code, 0) << check.err;
  // The stock binary does not know the type, and says which ones it knows.
  ProcessResult stock = RunTaskpipe({"check", "--config", "examples/custom_handler.json"});
  EXPECT_EQ(stock.exit_code, 2);
  EXPECT_THAT(stock.err, HasSubstr("word-count"));
}

TEST_F(RunCliTest, ConsumeRefusesTheMemoryBackend) {
  ProcessResult result = RunTaskpipe({"consume", "--config", "examples/local.json"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("taskpipe run --config examples/local.json"));
}

TEST_F(RunCliTest, RunReportsABadHandlerBeforeStarting) {
  std::ofstream(Path("bad.json")) << R"({"jobs": [{"name": "a", "tasks": ["x"],
      "handler": {"type": "http", "url": "ftp://example.invalid/"}}]})";
  ProcessResult result = RunTaskpipe({"run", "--config", Path("bad.json")});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr("jobs[0].handler"));
}

// SIGTERM mid-run: the running handler finishes and its message is deleted; the messages nobody
// started are given back at once (visibility 0), so another consumer takes them long before the
// 60 s visibility timeout; the process exits 0.
TEST_F(RunCliTest, SigtermLetsTheRunningTaskFinishAndReleasesTheRest) {
  const std::string url = CreateTestQueue(UniqueQueueName("drain"));
  ASSERT_FALSE(url.empty());
  std::ofstream(Path("config.json")) << R"({
    "queue": {"backend": "sqs", "url": ")" << url << R"(", "wait_time": "1s", "visibility_timeout": "60s"},
    "consumer": {"workers": 1, "shutdown_grace": "20s"},
    "jobs": [{"name": "slow", "tasks": ["a", "b", "c"],
              "handler": {"type": "exec", "timeout": "30s",
                          "command": ["sh", "-c", "touch )" << Path("started") << R"(; sleep 2; echo finished"]}}]})";
  ProcessOptions env = SqsEnv();
  ProcessResult sent = RunTaskpipe({"send", "--config", Path("config.json"), "--job", "slow"}, env);
  ASSERT_EQ(sent.exit_code, 0) << sent.err;

  auto consumer = StartTaskpipe({"consume", "--config", Path("config.json")}, env, Path("out"), Path("err"));
  ASSERT_TRUE(WaitUntilTrue([&] { return std::filesystem::exists(Path("started")); }, 15000)) << consumer->Err();
  consumer->Signal(SIGTERM);
  ASSERT_TRUE(consumer->Wait(15000)) << consumer->Err();
  EXPECT_EQ(consumer->exit_code(), 0) << consumer->Err();
  const std::string err = consumer->Err();
  EXPECT_THAT(err, HasSubstr("success"));  // the task that was running finished
  EXPECT_THAT(err, HasSubstr("stopped: 1 received, 1 succeeded"));

  // The other two are visible now, not after the 60 s visibility timeout, and the finished one is
  // gone: exactly two remain.
  std::vector<nlohmann::json> left = DrainWithBoto3(url);
  EXPECT_EQ(left.size(), 2u) << err;
}

// A second signal does not wait for the grace: a hung handler's child is killed and the process
// exits at once, with status 1.
TEST_F(RunCliTest, SecondSignalExitsAtOnceAndKillsTheHandler) {
  const std::string url = CreateTestQueue(UniqueQueueName("second-signal"));
  ASSERT_FALSE(url.empty());
  std::ofstream(Path("config.json")) << R"({
    "queue": {"backend": "sqs", "url": ")" << url << R"(", "wait_time": "1s", "visibility_timeout": "60s"},
    "consumer": {"workers": 1, "shutdown_grace": "5m"},
    "jobs": [{"name": "hang", "tasks": ["x"],
              "handler": {"type": "exec", "timeout": "10m",
                          "command": ["sh", "-c", "echo $$$$ > )" << Path("pid") << R"(; exec sleep 300"]}}]})";
  ProcessOptions env = SqsEnv();
  ASSERT_EQ(RunTaskpipe({"send", "--config", Path("config.json"), "--job", "hang"}, env).exit_code, 0);
  auto consumer = StartTaskpipe({"consume", "--config", Path("config.json")}, env, Path("out"), Path("err"));
  ASSERT_TRUE(WaitUntilTrue(
      [&] {
        std::error_code ec;
        const auto size = std::filesystem::file_size(Path("pid"), ec);  // -1 with ec set when missing
        return !ec && size > 0;
      },
      15000)) << consumer->Err();
  int child = 0;
  std::ifstream(Path("pid")) >> child;
  ASSERT_GT(child, 0);

  consumer->Signal(SIGINT);
  EXPECT_FALSE(consumer->Wait(500)) << "the first signal must wait for the running task";
  const auto second = std::chrono::steady_clock::now();
  consumer->Signal(SIGINT);
  ASSERT_TRUE(consumer->Wait(5000)) << consumer->Err();
  EXPECT_LT(std::chrono::steady_clock::now() - second, std::chrono::seconds(4));
  EXPECT_EQ(consumer->exit_code(), 1) << consumer->Err();
  // The handler's child is gone (killed, and reaped by the consumer or, once it exited, by init).
  EXPECT_TRUE(WaitUntilTrue([&] { return kill(child, 0) != 0; }, 3000));
}

}  // namespace
}  // namespace taskpipe
