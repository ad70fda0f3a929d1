// The real Producer and Consumer against a real SQS server (moto on loopback, started by
// scripts/test.sh), over both protocols: fan-out and batch delete, heartbeat extension of a task
// longer than three visibility timeouts, a poison message reaching the dead-letter queue through
// the queue's redrive policy, and FIFO deduplication across two producer "replicas".
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "aws/credentials.h"
#include "common/clock.h"
#include "consumer/consumer.h"
#include "consumer/handler.h"
#include "net/curl_http_client.h"
#include "producer/envelope.h"
#include "producer/producer.h"
#include "queue/sqs_queue.h"
#include "tests/testing/run_process.h"
#include "tests/testing/sqs_server.h"

namespace taskpipe {
namespace {

using namespace std::chrono_literals;
using testing::CreateTestQueue;
using testing::DrainWithBoto3;
using testing::UniqueQueueName;
using testing::WaitUntilTrue;

// Counts runs per task; fails tasks named "poison"; sleeps `run_for` (real time: the point of the
// heartbeat test is that SQS's own visibility clock runs meanwhile).
class RecordingHandler final : public Handler {
 public:
  explicit RecordingHandler(std::chrono::milliseconds run_for = 0ms) : run_for_(run_for) {}
  HandlerOutcome Run(const HandlerTask& task, std::stop_token stop) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++runs_[task.task_json];
      max_receive_count_ = std::max(max_receive_count_, task.receive_count);
    }
    const auto until = std::chrono::steady_clock::now() + run_for_;
    while (std::chrono::steady_clock::now() < until && !stop.stop_requested()) std::this_thread::sleep_for(10ms);
    if (task.task == "poison") return {.status = InternalError("poisoned"), .output = ""};
    return {};
  }
  std::map<std::string, int> runs() {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_;
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& [task, count] : runs_) n += count;
    return n;
  }

 private:
  const std::chrono::milliseconds run_for_;
  std::mutex mu_;
  std::map<std::string, int> runs_;
  int max_receive_count_ = 0;
};

class SqsPipelineTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    endpoint_ = testing::SqsTestEndpoint();
    ASSERT_FALSE(endpoint_.empty());
    CurlHttpClientOptions http_options;
    http_options.proxy = "";  // loopback
    auto http = NewCurlHttpClient(http_options);
    ASSERT_TRUE(http.ok());
    http_ = std::move(*http);
    credentials_ = NewStaticCredentialsProvider({"AKIDTESTING", "secret-for-tests-only", ""});
  }

  std::unique_ptr<Queue> Open(const std::string& url) {
    SqsQueueOptions options;
    options.queue_url = url;
    options.endpoint = endpoint_;
    options.region = "us-east-1";
    options.protocol = GetParam();
    options.receive_proxy = "";
    auto queue = NewSqsQueue(options, *http_, *credentials_, RealClock());
    EXPECT_TRUE(queue.ok()) << queue.status().ToString();
    return queue.ok() ? std::move(*queue) : nullptr;
  }

  static JobConfig Job(const std::string& name, std::vector<nlohmann::json> tasks) {
    JobConfig job;
    job.name = name;
    job.tasks = std::move(tasks);
    return job;
  }

  static ConsumerOptions Options(std::chrono::seconds visibility) {
    ConsumerOptions options;
    options.workers = 4;
    options.wait_time = 1s;
    options.visibility_timeout = visibility;
    options.retry = {.base = 1s, .max = 1s};
    options.summary_interval = 0s;
    options.shutdown_grace = 5s;
    options.jitter_seed = 7;
    return options;
  }

  std::string endpoint_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<CredentialsProvider> credentials_;
};

TEST_P(SqsPipelineTest, EveryTaskOfAFireRunsOnceAndIsDeleted) {
  const std::string url = CreateTestQueue(UniqueQueueName("pipeline-" + GetParam()));
  std::unique_ptr<Queue> queue = Open(url);
  ASSERT_NE(queue, nullptr);
  std::vector<nlohmann::json> tasks;
  for (int i = 0; i < 25; ++i) tasks.push_back("task-" + std::to_string(i));
  Producer producer(*queue, RealClock(), nullptr);
  FireResult fired = producer.Fire(Job("fan-out", tasks), std::chrono::floor<std::chrono::seconds>(RealClock().WallNow()));
  ASSERT_EQ(fired.sent, 25) << ::testing::PrintToString(fired.errors);

  RecordingHandler handler;
  std::atomic<int> succeeded{0};
  Consumer consumer(*queue, RealClock(), {{"fan-out", ConsumerJob{.handler = &handler, .timeout = 30s}}},
                    [&](const TaskResult& r) { succeeded += r.status == TaskStatus::kSuccess ? 1 : 0; }, nullptr,
                    Options(30s));
  consumer.Start();
  EXPECT_TRUE(WaitUntilTrue([&] { return succeeded.load() == 25; }, 30000)) << succeeded.load();
  consumer.Stop();
  EXPECT_EQ(handler.runs().size(), 25u);
  for (const auto& [task, runs] : handler.runs()) EXPECT_EQ(runs, 1) << task;
  EXPECT_EQ(consumer.stats().deleted, 25);
  // Nothing is left: every message was deleted, none is waiting to reappear.
  std::unique_ptr<Queue> check = Open(url);
  StatusOr<QueueAttributes> attributes = check->GetAttributes();
  ASSERT_TRUE(attributes.ok());
  EXPECT_EQ(attributes->visible + attributes->in_flight + attributes->delayed, 0);
}

// A task running for more than three visibility timeouts (2 s each) is never handed to a second
// worker: the heartbeat extends its visibility on the server before it runs out.
TEST_P(SqsPipelineTest, HeartbeatKeepsALongTaskInvisible) {
  const std::string url = CreateTestQueue(UniqueQueueName("heartbeat-" + GetParam()));
  std::unique_ptr<Queue> queue = Open(url);
  ASSERT_NE(queue, nullptr);
  Producer producer(*queue, RealClock(), nullptr);
  ASSERT_EQ(producer.Fire(Job("long", {"slow"}), RealClock().WallNow()).sent, 1);

  RecordingHandler handler(7000ms);
  std::atomic<int> done{0};
  Consumer consumer(*queue, RealClock(), {{"long", ConsumerJob{.handler = &handler, .timeout = 60s}}},
                    [&](const TaskResult&) { ++done; }, nullptr, Options(2s));
  consumer.Start();
  // A second consumer polls the same queue all along, as another host would.
  RecordingHandler other_handler;
  Consumer other(*queue, RealClock(), {{"long", ConsumerJob{.handler = &other_handler, .timeout = 60s}}}, nullptr,
                 nullptr, Options(2s));
  ASSERT_TRUE(WaitUntilTrue([&] { return handler.total() == 1; }, 10000));
  other.Start();
  EXPECT_TRUE(WaitUntilTrue([&] { return done.load() == 1; }, 20000));
  other.Stop();
  consumer.Stop();
  EXPECT_EQ(other_handler.total(), 0) << "the message was delivered again while its handler ran";
  EXPECT_GE(consumer.stats().extended, 3);
  EXPECT_EQ(consumer.stats().extend_errors, 0);
}

// A task that always fails comes back after its back-off and, after the redrive policy's
// maxReceiveCount (2), SQS moves it to the dead-letter queue; the good task is unaffected.
TEST_P(SqsPipelineTest, PoisonMessageEndsInTheDeadLetterQueue) {
  const std::string name = UniqueQueueName("poison-" + GetParam());
  ASSERT_FALSE(testing::SqsTestEndpoint().empty());
  const auto [url, dlq] = testing::CreateTestQueueWithDeadLetter(name, 2);
  ASSERT_FALSE(url.empty());

  std::unique_ptr<Queue> queue = Open(url);
  ASSERT_NE(queue, nullptr);
  Producer producer(*queue, RealClock(), nullptr);
  ASSERT_EQ(producer.Fire(Job("mixed", {"poison", "fine"}), RealClock().WallNow()).sent, 2);
  RecordingHandler handler;
  ConsumerOptions consumer_options = Options(30s);
  consumer_options.max_receive_count = 2;
  std::mutex mu;
  std::vector<TaskResult> results;
  Consumer consumer(*queue, RealClock(), {{"mixed", ConsumerJob{.handler = &handler, .timeout = 30s}}},
                    [&](const TaskResult& r) {
                      std::lock_guard<std::mutex> lock(mu);
                      results.push_back(r);
                    },
                    nullptr, consumer_options);
  consumer.Start();
  // poison: receive 1 fails (back-off 1 s), receive 2 fails (the last), then SQS redrives it.
  EXPECT_TRUE(WaitUntilTrue([&] { return handler.runs()["\"poison\""] == 2; }, 20000));
  std::vector<nlohmann::json> dead;
  EXPECT_TRUE(WaitUntilTrue(
      [&] {
        for (nlohmann::json& m : DrainWithBoto3(dlq)) dead.push_back(std::move(m));
        return !dead.empty();
      },
      15000));
  consumer.Stop();
  ASSERT_EQ(dead.size(), 1u);
  StatusOr<Envelope> envelope = DecodeEnvelope(dead[0]["body"].get<std::string>());
  ASSERT_TRUE(envelope.ok());
  EXPECT_EQ(envelope->task, "poison");
  EXPECT_EQ(handler.runs()["\"fine\""], 1);
  std::lock_guard<std::mutex> lock(mu);
  int last_failures = 0;
  for (const TaskResult& r : results) {
    if (r.task == "\"poison\"" && r.receive_count == 2) {
      ++last_failures;
      EXPECT_FALSE(r.will_retry);
    }
  }
  EXPECT_EQ(last_failures, 1);
}

// Two producer replicas fire the same schedule instant on a FIFO queue: SQS keeps one copy of each
// task, because the deduplication id is derived from (job, instant, task index).
TEST_P(SqsPipelineTest, FifoReplicasFiringTheSameInstantEnqueueEachTaskOnce) {
  const std::string url = CreateTestQueue(UniqueQueueName("replicas-" + GetParam(), /*fifo=*/true),
                                          {"FifoQueue=true"});
  std::unique_ptr<Queue> replica_a = Open(url);
  std::unique_ptr<Queue> replica_b = Open(url);
  ASSERT_NE(replica_a, nullptr);
  ASSERT_NE(replica_b, nullptr);
  ProducerOptions fifo;
  fifo.fifo = true;
  Producer a(*replica_a, RealClock(), nullptr, fifo);
  Producer b(*replica_b, RealClock(), nullptr, fifo);
  const JobConfig job = Job("nightly", {"one", "two", "three"});
  const auto instant = std::chrono::floor<std::chrono::seconds>(RealClock().WallNow());
  std::thread other([&] { EXPECT_EQ(b.Fire(job, instant).sent, 3); });
  EXPECT_EQ(a.Fire(job, instant).sent, 3);
  other.join();
  // The next instant is a different fire: its tasks are new messages.
  EXPECT_EQ(a.Fire(job, instant + 60s).sent, 3);

  std::vector<nlohmann::json> messages = DrainWithBoto3(url);
  ASSERT_EQ(messages.size(), 6u);
  std::multiset<std::string> seen;
  for (const nlohmann::json& m : messages) {
    StatusOr<Envelope> envelope = DecodeEnvelope(m["body"].get<std::string>());
    ASSERT_TRUE(envelope.ok());
    seen.insert(envelope->task.get<std::string>());
    EXPECT_EQ(m["attributes"]["MessageGroupId"], "nightly");
  }
  EXPECT_EQ(seen, (std::multiset<std::string>{"one", "one", "two", "two", "three", "three"}));
}

INSTANTIATE_TEST_SUITE_P(Protocols, SqsPipelineTest, ::testing::Values("json", "query"),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace taskpipe
