// `taskpipe send`, `produce --once` and the `produce` daemon against a real SQS server (moto on
// loopback, started by scripts/test.sh), configured as a user would: only AWS_ENDPOINT_URL_SQS and
// dummy credentials in the environment. boto3 checks what landed on the queue.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/curl_http_client.h"
#include "tests/testing/http_test_server.h"
#include "tests/testing/run_process.h"
#include "tests/testing/sqs_server.h"

namespace taskpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::BackgroundProcess;
using testing::CreateTestQueue;
using testing::DrainWithBoto3;
using testing::ProcessOptions;
using testing::ProcessResult;
using testing::RunTaskpipe;
using testing::SqsTestEndpoint;
using testing::UniqueQueueName;

class SqsCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("taskpipe-sqs-cli-" + std::to_string(getpid()) + "-" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / "home");
    endpoint_ = SqsTestEndpoint();
    ASSERT_FALSE(endpoint_.empty());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // What a user sets to point taskpipe at a local SQS: the endpoint and dummy credentials. HOME is
  // an empty folder so that no ~/.aws file of the machine's interferes.
  ProcessOptions Env() const { return testing::SqsClientEnv((dir_ / "home").string()); }

  // `extra`: more top-level sections (",\"metrics\": {...}").
  std::string WriteConfig(const std::string& queue_url, const std::string& jobs, const std::string& extra = "") {
    const std::string path = (dir_ / "config.json").string();
    std::ofstream(path) << R"({"queue": {"backend": "sqs", "url": ")" << queue_url << R"(", "wait_time": "1s"},
      "jobs": )" << jobs << extra << "}";
    return path;
  }

  // Starts `taskpipe consume --metrics-port 0` and returns the base URL its log names ("" if none
  // within 20 s).
  std::string StartConsumerWithMetrics(const std::string& config, std::unique_ptr<BackgroundProcess>* consumer) {
    *consumer = testing::StartTaskpipe({"consume", "--config", config, "--metrics-port", "0"}, Env(),
                                       (dir_ / "out").string(), (dir_ / "err").string());
    const std::regex line(R"(metrics: (http://127\.0\.0\.1:[0-9]+)/metrics)");
    std::smatch match;
    std::string err;
    testing::WaitUntilTrue(
        [&] {
          err = (*consumer)->Err();
          return std::regex_search(err, match, line);
        },
        20000);
    return match.empty() ? "" : match[1].str();
  }

  // Polls `base`/metrics for up to 20 s until it has each of `lines` (whole lines, without the
  // newline); `metrics` is left with the last text read, for the caller's messages.
  static bool WaitForMetrics(const std::string& base, std::initializer_list<std::string_view> lines,
                             std::string* metrics) {
    return testing::WaitUntilTrue(
        [&] {
          *metrics = Get(base + "/metrics").second;
          return std::all_of(lines.begin(), lines.end(), [&](std::string_view line) {
            return metrics->find("\n" + std::string(line) + "\n") != std::string::npos;
          });
        },
        20000);
  }

  // GET url; the status and body, or status 0 when the exchange failed.
  static std::pair<int, std::string> Get(const std::string& url) {
    static const std::unique_ptr<HttpClient> http = std::move(*NewCurlHttpClient(CurlHttpClientOptions{.proxy = ""}));
    StatusOr<HttpResponse> r = http->Send(HttpRequest{.url = url, .timeout = std::chrono::seconds(5)});
    return r.ok() ? std::make_pair(r->status, r->body) : std::make_pair(0, r.status().ToString());
  }

  std::filesystem::path dir_;
  std::string endpoint_;
};

constexpr char kTwoJobs[] = R"json([
  {"name": "hello", "schedule": "rate(1 minute)", "tasks": ["one", {"n": 2}, "three"]},
  {"name": "report", "schedule": "cron(0 9 ? * MON-FRI *)", "timezone": "Asia/Taipei", "tasks": ["sales"]}
])json";

TEST_F(SqsCliTest, SendBodyPutsTheTextOnTheQueueAsIs) {
  const std::string url = CreateTestQueue(UniqueQueueName("cli-body"));
  const std::string config = WriteConfig(url, kTwoJobs);
  ProcessResult result = RunTaskpipe({"send", "--config", config, "--body", "plain text, not an envelope"}, Env());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "sent 1 message\n");
  std::vector<nlohmann::json> messages = DrainWithBoto3(url);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0]["body"], "plain text, not an envelope");
}

TEST_F(SqsCliTest, SendBodyDashReadsStandardInput) {
  const std::string url = CreateTestQueue(UniqueQueueName("cli-stdin"));
  const std::string config = WriteConfig(url, kTwoJobs);
  ProcessOptions options = Env();
  options.stdin_text = "{\"from\": \"stdin\"}\nsecond line";
  ProcessResult result = RunTaskpipe({"send", "--config", config, "--body", "-"}, options);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<nlohmann::json> messages = DrainWithBoto3(url);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0]["body"], "{\"from\": \"stdin\"}\nsecond line");
}

TEST_F(SqsCliTest, SendJobSendsOneEnvelopePerTask) {
  const std::string url = CreateTestQueue(UniqueQueueName("cli-job"));
  const std::string config = WriteConfig(url, kTwoJobs);
  ProcessResult result = RunTaskpipe({"send", "--config", config, "--job", "hello"}, Env());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "sent 3 messages for job hello\n");
  std::vector<nlohmann::json> messages = DrainWithBoto3(url);
  ASSERT_EQ(messages.size(), 3u);
  std::vector<std::string> tasks;
  for (const nlohmann::json& message : messages) {
    nlohmann::json envelope = nlohmann::json::parse(message["body"].get<std::string>());
    EXPECT_EQ(envelope["job"], "hello");
    EXPECT_TRUE(envelope.contains("scheduled_at") && envelope.contains("fired_at")) << envelope;
    tasks.push_back(envelope["task"].dump());
    EXPECT_EQ(message["message_attributes"]["taskpipe-job"]["StringValue"], "hello");
  }
  EXPECT_THAT(tasks, ::testing::UnorderedElementsAre("\"one\"", "{\"n\":2}", "\"three\""));
}

TEST_F(SqsCliTest, SendUnknownJobIsAUsageErrorNamingTheKnownJobs) {
  const std::string url = CreateTestQueue(UniqueQueueName("cli-unknown"));
  const std::string config = WriteConfig(url, kTwoJobs);
  ProcessResult result = RunTaskpipe({"send", "--config", config, "--job", "helo"}, Env());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("unknown job \"helo\" (known: hello, report)"));
  EXPECT_TRUE(DrainWithBoto3(url).empty());
}

TEST_F(SqsCliTest, SendNeedsExactlyOneOfJobAndBody) {
  const std::string config = WriteConfig("http://127.0.0.1:1/000000000000/unused", kTwoJobs);
  EXPECT_EQ(RunTaskpipe({"send", "--config", config}, Env()).exit_code, 2);
  ProcessResult both = RunTaskpipe({"send", "--config", config, "--job", "hello", "--body", "x"}, Env());
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_THAT(both.err, HasSubstr("excludes"));
}

TEST_F(SqsCliTest, ProduceOnceFiresEveryJobOrTheOneNamed) {
  const std::string url = CreateTestQueue(UniqueQueueName("cli-once"));
  const std::string config = WriteConfig(url, kTwoJobs);
  ProcessResult all = RunTaskpipe({"produce", "--config", config, "--once"}, Env());
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_THAT(all.err, HasSubstr("hello"));  // the per-fire log line
  EXPECT_EQ(DrainWithBoto3(url).size(), 4u);

  ProcessResult one = RunTaskpipe({"produce", "--config", config, "--once", "--job", "report"}, Env());
  ASSERT_EQ(one.exit_code, 0) << one.err;
  std::vector<nlohmann::json> messages = DrainWithBoto3(url);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(messages[0]["body"].get<std::string>())["task"], "sales");

  ProcessResult unknown = RunTaskpipe({"produce", "--config", config, "--once", "--job", "nope"}, Env());
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown job"));
}

TEST_F(SqsCliTest, JobRequiresOnce) {
  const std::string config = WriteConfig("http://127.0.0.1:1/000000000000/unused", kTwoJobs);
  ProcessResult result = RunTaskpipe({"produce", "--config", config, "--job", "hello"}, Env());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("--once"));
}

TEST_F(SqsCliTest, ProduceDaemonFiresAtStartAndStopsAtOnceOnSigterm) {
  const std::string url = CreateTestQueue(UniqueQueueName("cli-daemon"));
  const std::string config = WriteConfig(url, kTwoJobs);
  const std::string state = (dir_ / "state.json").string();
  auto producer = testing::StartTaskpipe({"produce", "--config", config, "--state", state}, Env(),
                                         (dir_ / "out").string(), (dir_ / "err").string());
  ASSERT_TRUE(producer->started());
  // rate(1 minute) fires at start-up: its three tasks arrive within seconds.
  std::vector<nlohmann::json> messages;
  ASSERT_TRUE(testing::WaitUntilTrue(
      [&] {
        for (nlohmann::json& m : DrainWithBoto3(url)) messages.push_back(std::move(m));
        return messages.size() >= 3;
      },
      20000))
      << producer->Err();
  EXPECT_EQ(messages.size(), 3u);
  producer->Signal(SIGTERM);
  ASSERT_TRUE(producer->Wait(5000)) << "the producer did not stop within 5 s of SIGTERM";
  EXPECT_EQ(producer->exit_code(), 0) << producer->Err();
  EXPECT_THAT(producer->Err(), HasSubstr("stopping the producer"));
  // The state file remembers the fire, for catch_up.
  std::ifstream in(state);
  nlohmann::json saved = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(saved.is_discarded());
  EXPECT_TRUE(saved["last_fired"].contains("hello")) << saved;
}

TEST_F(SqsCliTest, ProduceAndSendRefuseTheMemoryBackend) {
  const std::string path = (dir_ / "memory.json").string();
  std::ofstream(path) << R"({"queue": {"backend": "memory"}, "jobs": [{"name": "a", "tasks": ["x"]}]})";
  for (std::vector<std::string> args : {std::vector<std::string>{"produce", "--config", path, "--once"},
                                        std::vector<std::string>{"send", "--config", path, "--job", "a"}}) {
    ProcessResult result = RunTaskpipe(args, Env());
    EXPECT_EQ(result.exit_code, 2) << args[0];
    EXPECT_THAT(result.err, HasSubstr("a memory queue lives inside one process")) << args[0];
    EXPECT_THAT(result.err, HasSubstr("taskpipe run --config")) << args[0];
  }
}

TEST_F(SqsCliTest, AQueueThatDoesNotExistIsReportedWithTheServicesMessage) {
  const std::string path = (dir_ / "missing.json").string();
  std::ofstream(path) << R"({"queue": {"backend": "sqs", "name": "no-such-queue-)" << getpid()
                      << R"("}, "jobs": [{"name": "a", "tasks": ["x"]}]})";
  ProcessResult result = RunTaskpipe({"send", "--config", path, "--job", "a"}, Env());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("cannot open the queue"));
  EXPECT_THAT(result.err, Not(HasSubstr("secret-for-tests-only")));
}

TEST_F(SqsCliTest, NoCredentialsAnywhereSaysWhatWasTried) {
  const std::string url = CreateTestQueue(UniqueQueueName("cli-nocreds"));
  const std::string config = WriteConfig(url, kTwoJobs);
  ProcessOptions options = Env();
  options.env.erase("AWS_ACCESS_KEY_ID");
  options.env.erase("AWS_SECRET_ACCESS_KEY");
  options.unset_env.push_back("AWS_ACCESS_KEY_ID");
  options.unset_env.push_back("AWS_SECRET_ACCESS_KEY");
  ProcessResult result = RunTaskpipe({"send", "--config", config, "--body", "x"}, options);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("AWS_ACCESS_KEY_ID"));
}

// --metrics-port against the real queue: counters move as tasks run, SQS requests are counted by
// action, and /healthz is 200.
TEST_F(SqsCliTest, ConsumeServesMetricsAndHealth) {
  const std::string url = CreateTestQueue(UniqueQueueName("cli-metrics"));
  const std::string config = WriteConfig(url, kTwoJobs);
  ASSERT_EQ(RunTaskpipe({"send", "--config", config, "--job", "hello"}, Env()).exit_code, 0);
  std::unique_ptr<BackgroundProcess> consumer;
  const std::string base = StartConsumerWithMetrics(config, &consumer);
  ASSERT_FALSE(base.empty()) << consumer->Err();
  std::string metrics;
  // Deletes are batched and sent a few milliseconds after the tasks succeed.
  EXPECT_TRUE(WaitForMetrics(base, {"taskpipe_tasks_succeeded_total 3", "taskpipe_messages_deleted_total 3"},
                             &metrics))
      << metrics << consumer->Err();
  EXPECT_THAT(metrics, HasSubstr("\ntaskpipe_messages_received_total 3\n"));
  EXPECT_THAT(metrics, HasSubstr("taskpipe_sqs_requests_total{action=\"ReceiveMessage\"}"));
  EXPECT_THAT(metrics, HasSubstr("taskpipe_sqs_request_errors_total{action=\"ReceiveMessage\"} 0\n"));
  EXPECT_THAT(metrics, HasSubstr("taskpipe_sqs_requests_total{action=\"DeleteMessageBatch\"}"));
  EXPECT_THAT(metrics, HasSubstr("taskpipe_handler_duration_seconds_count 3\n"));
  const auto [status, body] = Get(base + "/healthz");
  EXPECT_EQ(status, 200) << body;
  EXPECT_EQ(nlohmann::json::parse(body)["status"], "ok");
  consumer->Signal(SIGTERM);
  ASSERT_TRUE(consumer->Wait(10000));
  EXPECT_EQ(consumer->exit_code(), 0) << consumer->Err();
}

// An unreachable queue: /healthz turns 503 after metrics.unhealthy_after, and the failed receives
// are counted; the consumer itself keeps trying and still stops cleanly.
TEST_F(SqsCliTest, HealthzIs503WhileTheQueueIsUnreachable) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort());
  const std::string config = WriteConfig(dead + "/000000000000/nowhere", kTwoJobs,
                                         ", \"metrics\": {\"unhealthy_after\": \"1s\"}");
  {
    // The endpoint given in the file beats AWS_ENDPOINT_URL_SQS, so requests go to the dead port.
    nlohmann::json parsed = nlohmann::json::parse(std::ifstream(config));
    parsed["queue"]["endpoint"] = dead;
    std::ofstream(config) << parsed.dump();
  }
  std::unique_ptr<BackgroundProcess> consumer;
  const std::string base = StartConsumerWithMetrics(config, &consumer);
  ASSERT_FALSE(base.empty()) << consumer->Err();
  std::pair<int, std::string> health;
  EXPECT_TRUE(testing::WaitUntilTrue(
      [&] {
        health = Get(base + "/healthz");
        return health.first == 503;
      },
      20000))
      << health.first << " " << health.second;
  EXPECT_EQ(nlohmann::json::parse(health.second)["status"], "unavailable");
  EXPECT_THAT(nlohmann::json::parse(health.second)["reason"].get<std::string>(), HasSubstr("has failed"));
  const std::string metrics = Get(base + "/metrics").second;
  EXPECT_THAT(metrics, Not(HasSubstr("taskpipe_receive_errors_total 0\n")));
  EXPECT_THAT(metrics, Not(HasSubstr("taskpipe_sqs_request_errors_total{action=\"ReceiveMessage\"} 0\n")));
  consumer->Signal(SIGTERM);
  ASSERT_TRUE(consumer->Wait(10000));
  EXPECT_EQ(consumer->exit_code(), 0) << consumer->Err();
}

// consume reads the queue's redrive policy: the last failure says "no retries left" and is counted
// in taskpipe_tasks_dead_lettered_total, and SQS moves the message to the dead-letter queue.
TEST_F(SqsCliTest, ConsumeReadsTheRedrivePolicyAndCountsDeadLetteredTasks) {
  const auto [url, dlq] = testing::CreateTestQueueWithDeadLetter(UniqueQueueName("cli-redrive"), 2);
  ASSERT_FALSE(url.empty());
  const std::string config =
      WriteConfig(url, R"json([{"name": "doomed", "tasks": ["x"], "handler": {"type": "exec", "command": ["false"]}}])json",
                  R"json(, "consumer": {"retry": {"base": "0s", "max": "0s"}})json");
  ASSERT_EQ(RunTaskpipe({"send", "--config", config, "--job", "doomed"}, Env()).exit_code, 0);
  std::unique_ptr<BackgroundProcess> consumer;
  const std::string base = StartConsumerWithMetrics(config, &consumer);
  ASSERT_FALSE(base.empty()) << consumer->Err();
  std::string metrics;
  EXPECT_TRUE(WaitForMetrics(base, {"taskpipe_tasks_dead_lettered_total 1"}, &metrics)) << metrics << consumer->Err();
  EXPECT_THAT(metrics, HasSubstr("\ntaskpipe_tasks_failed_total{reason=\"failure\"} 2\n"));
  EXPECT_THAT(consumer->Err(), HasSubstr("a message goes to the dead-letter queue after 2 receives"));
  EXPECT_THAT(consumer->Err(), HasSubstr("no retries left (dead-letter queue)"));
  std::vector<nlohmann::json> dead;
  EXPECT_TRUE(testing::WaitUntilTrue(
      [&] {
        for (nlohmann::json& m : DrainWithBoto3(dlq)) dead.push_back(std::move(m));
        return !dead.empty();
      },
      20000));
  consumer->Signal(SIGTERM);
  ASSERT_TRUE(consumer->Wait(10000));
  EXPECT_EQ(consumer->exit_code(), 0) << consumer->Err();
}

}  // namespace
}  // namespace taskpipe
