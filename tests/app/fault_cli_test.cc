// Fault injection, end to end: `taskpipe send` and `taskpipe consume` as real processes, talking
// to the SQS server (moto on loopback, started by scripts/test.sh) through bench/fault_proxy.py,
// which answers some requests with 5xx, throttling, resets, stalls and truncated replies, before
// or after moto did the work. Every task must complete and no process may crash; duplicates are
// allowed (SQS is at-least-once) and reported as test properties. Plus a consumer killed with
// SIGKILL while it holds messages: the survivor completes them after the visibility timeout.
// The long version with 1,000 tasks is bench/fault_bench.sh.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
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
using testing::BackgroundProcess;
using testing::CreateTestQueue;
using testing::ProcessOptions;
using testing::ProcessResult;
using testing::RunProcess;
using testing::RunTaskpipe;
using testing::StartTaskpipe;
using testing::UniqueQueueName;
using testing::WaitUntilTrue;

const char kProxy[] = TASKPIPE_SOURCE_DIR "/bench/fault_proxy.py";

// What the handlers wrote: one line "<task JSON> <receive count>" per run.
struct Results {
  std::size_t runs = 0;
  std::set<std::string> tasks;
  std::size_t redelivered = 0;  // runs with a receive count over 1
  std::size_t duplicates() const { return runs - tasks.size(); }
};

Results ReadResults(const std::vector<std::string>& paths) {
  Results results;
  for (const std::string& path : paths) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      const std::size_t space = line.rfind(' ');
      if (space == std::string::npos) continue;
      ++results.runs;
      results.tasks.insert(line.substr(0, space));
      if (line.substr(space + 1) != "1") ++results.redelivered;
    }
  }
  return results;
}

// Task names "<prefix>-000" ... as the config's inline tasks (strings).
nlohmann::json TaskList(const std::string& prefix, int count) {
  nlohmann::json tasks = nlohmann::json::array();
  for (int i = 0; i < count; ++i) {
    std::string n = std::to_string(i);
    tasks.push_back(prefix + "-" + std::string(3 - std::min<std::size_t>(3, n.size()), '0') + n);
  }
  return tasks;
}

class FaultCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("taskpipe-fault-cli-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "home");
  }
  void TearDown() override {
    if (proxy_ != nullptr) {
      proxy_->Signal(SIGTERM);
      proxy_->Wait(5000);
    }
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Starts bench/fault_proxy.py in front of the test's moto with `args`; returns false (after
  // recording a failure) when it does not come up.
  bool StartProxy(const std::vector<std::string>& args) {
    const std::string endpoint = testing::SqsTestEndpoint();
    if (endpoint.empty()) return false;
    const std::string upstream = endpoint.substr(endpoint.find("://") + 3);
    std::vector<std::string> argv = {"python3", kProxy, "--upstream", upstream, "--listen-port", "0",
                                     "--ready-file", Path("proxy.json")};
    argv.insert(argv.end(), args.begin(), args.end());
    proxy_ = testing::StartBinary("/usr/bin/env", argv, {}, Path("proxy.out"), Path("proxy.err"));
    if (!proxy_->started()) {
      ADD_FAILURE() << "cannot start " << kProxy;
      return false;
    }
    if (!WaitUntilTrue([&] { return std::filesystem::exists(Path("proxy.json")); }, 15000)) {
      ADD_FAILURE() << "fault_proxy.py did not start: " << proxy_->Err();
      return false;
    }
    std::ifstream in(Path("proxy.json"));
    nlohmann::json ready = nlohmann::json::parse(in, nullptr, false);
    if (ready.is_discarded() || !ready.contains("port")) {
      ADD_FAILURE() << "bad ready file from fault_proxy.py";
      return false;
    }
    proxy_port_ = ready["port"].get<int>();
    return true;
  }

  // GET /__stats from the proxy.
  nlohmann::json ProxyStats() const {
    ProcessResult result =
        RunProcess({"/usr/bin/curl", "-sS", "--fail", "http://127.0.0.1:" + std::to_string(proxy_port_) + "/__stats"});
    nlohmann::json stats = nlohmann::json::parse(result.out, nullptr, false);
    if (result.exit_code != 0 || stats.is_discarded()) {
      ADD_FAILURE() << "the fault proxy's /__stats did not answer: " << result.err;
      return nlohmann::json::object();
    }
    return stats;
  }

  // The environment of a taskpipe process: moto through the proxy when one runs, else directly.
  ProcessOptions Env() const {
    ProcessOptions options = testing::SqsClientEnv(Path("home"));
    if (proxy_port_ > 0) options.env["AWS_ENDPOINT_URL_SQS"] = "http://127.0.0.1:" + std::to_string(proxy_port_);
    return options;
  }

  // A config for `url` whose job "work" runs `tasks`; each run sleeps `sleep` (shell syntax),
  // then appends "<task> <receive count>" to `results`.
  std::string WriteConfig(const std::string& name, const std::string& url, const nlohmann::json& tasks,
                          const std::string& results, const std::string& sleep, int visibility_seconds,
                          int workers) {
    // "$$" is a literal "$" in a config string.
    const std::string script = (sleep.empty() ? "" : "sleep " + sleep + "; ") +
                               "printf '%s %s\\n' \"$$TASKPIPE_TASK\" \"$$TASKPIPE_RECEIVE_COUNT\" >> " + results;
    nlohmann::json config = {
        {"queue",
         {{"backend", "sqs"},
          {"url", url},
          {"wait_time", "1s"},
          {"visibility_timeout", std::to_string(visibility_seconds) + "s"}}},
        {"consumer", {{"workers", workers}, {"shutdown_grace", "10s"}, {"retry", {{"base", "1s"}, {"max", "2s"}}}}},
        {"jobs",
         {{{"name", "work"},
           {"tasks", tasks},
           {"handler", {{"type", "exec"}, {"timeout", "30s"}, {"command", {"sh", "-c", script}}}}}}}};
    const std::string path = Path(name);
    std::ofstream(path) << config.dump(2);
    return path;
  }

  // SIGTERM, then the drain must end with exit 0 (anything else is a crash).
  static void StopCleanly(BackgroundProcess& consumer, const std::string& what) {
    consumer.Signal(SIGTERM);
    ASSERT_TRUE(consumer.Wait(20000)) << what << " did not stop within 20 s of SIGTERM:\n" << consumer.Err();
    EXPECT_EQ(consumer.signal(), 0) << what << " died by a signal:\n" << consumer.Err();
    EXPECT_EQ(consumer.exit_code(), 0) << what << ":\n" << consumer.Err();
    EXPECT_THAT(consumer.Err(), HasSubstr("stopped: ")) << what;
  }

  std::filesystem::path dir_;
  std::unique_ptr<BackgroundProcess> proxy_;
  int proxy_port_ = 0;
};

// 60 tasks through 20% faults of every kind, before and after moto did the work: `send` exits 0,
// the consumer runs every task, stops cleanly on SIGTERM; the proxy really injected faults.
TEST_F(FaultCliTest, EveryTaskCompletesThroughFaultsOfEveryKind) {
  const std::string url = CreateTestQueue(UniqueQueueName("fault-mix"), {"VisibilityTimeout=3"});
  ASSERT_FALSE(url.empty());
  ASSERT_TRUE(StartProxy({"--rate", "0.2", "--seed", "7", "--stall-seconds", "1", "--after", "0.5"}));
  constexpr int kTasks = 60;
  const std::string config =
      WriteConfig("config.json", url, TaskList("mix", kTasks), Path("results"), "", /*visibility_seconds=*/3, 8);

  ProcessOptions env = Env();
  ProcessResult sent = RunTaskpipe({"send", "--config", config, "--job", "work"}, env);
  ASSERT_EQ(sent.signal, 0) << sent.err;
  ASSERT_EQ(sent.exit_code, 0) << "send gave up despite its retries:\n" << sent.err;
  EXPECT_THAT(sent.out, HasSubstr("sent " + std::to_string(kTasks) + " messages"));

  auto consumer = StartTaskpipe({"consume", "--config", config}, env, Path("out"), Path("err"));
  ASSERT_TRUE(consumer->started());
  const bool all_done = WaitUntilTrue(
      [&] { return ReadResults({Path("results")}).tasks.size() == kTasks || consumer->Wait(0); }, 120000);
  const Results results = ReadResults({Path("results")});
  const nlohmann::json stats = ProxyStats();
  EXPECT_TRUE(all_done) << results.tasks.size() << " of " << kTasks << " tasks completed; proxy: " << stats.dump()
                        << "\n" << consumer->Err();
  EXPECT_EQ(results.tasks.size(), static_cast<std::size_t>(kTasks));
  StopCleanly(*consumer, "taskpipe consume");

  // The faults happened: a 20% rate over the send's and the consumer's requests.
  const int faulted = stats.value("faulted", 0);
  EXPECT_GE(faulted, 4) << stats.dump();
  const nlohmann::json faults = stats.value("faults", nlohmann::json::object());
  int after = 0;
  for (const auto& [kind, counts] : faults.items()) after += counts.value("after", 0);
  EXPECT_GE(after, 1) << "no fault after forwarding: " << stats.dump();
  RecordProperty("tasks", kTasks);
  RecordProperty("runs", static_cast<int>(results.runs));
  RecordProperty("duplicates", static_cast<int>(results.duplicates()));
  RecordProperty("faults", faulted);
  std::cout << "[ fault    ] " << kTasks << " tasks, " << results.runs << " handler runs, " << results.duplicates()
            << " duplicates; proxy: " << stats.value("requests", 0) << " requests, " << faulted
            << " faulted: " << faults.dump() << "\n";
}

// A SendMessageBatch that moto carried out but whose reply was reset: the producer sends the batch
// again, so the queue holds a second copy of those ten tasks, and each copy runs. Duplicates, never
// losses: exactly 10 extra runs per faulted batch.
TEST_F(FaultCliTest, ALostSendReplyDuplicatesTheBatchAndLosesNothing) {
  const std::string url = CreateTestQueue(UniqueQueueName("fault-send"));
  ASSERT_FALSE(url.empty());
  ASSERT_TRUE(StartProxy({"--rate", "0.4", "--seed", "1", "--after", "1", "--mix", "reset=1,truncate=1",
                          "--actions", "SendMessageBatch"}));
  constexpr int kTasks = 50;
  const std::string config =
      WriteConfig("config.json", url, TaskList("send", kTasks), Path("results"), "", /*visibility_seconds=*/30, 8);

  ProcessOptions env = Env();
  ProcessResult sent = RunTaskpipe({"send", "--config", config, "--job", "work"}, env);
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  const nlohmann::json stats = ProxyStats();
  // Seed 1 at rate 0.4 faults the 1st, 2nd and 4th SendMessageBatch requests (the RNG draws per
  // request in arrival order, and `send` sends one batch at a time), so the count is known.
  const int lost_replies = stats.value(nlohmann::json::json_pointer("/actions/SendMessageBatch/faults"), 0);
  ASSERT_GE(lost_replies, 1) << "the seed must fault at least one batch: " << stats.dump();
  const std::size_t expected_runs = kTasks + 10 * static_cast<std::size_t>(lost_replies);

  auto consumer = StartTaskpipe({"consume", "--config", config}, env, Path("out"), Path("err"));
  ASSERT_TRUE(consumer->started());
  EXPECT_TRUE(WaitUntilTrue([&] { return ReadResults({Path("results")}).runs >= expected_runs || consumer->Wait(0); },
                            90000))
      << consumer->Err();
  StopCleanly(*consumer, "taskpipe consume");
  const Results results = ReadResults({Path("results")});
  EXPECT_EQ(results.tasks.size(), static_cast<std::size_t>(kTasks));
  EXPECT_EQ(results.runs, expected_runs) << lost_replies << " batch replies lost";
  RecordProperty("duplicates", static_cast<int>(results.duplicates()));
  std::cout << "[ fault    ] " << lost_replies << " SendMessageBatch replies lost after moto stored them: "
            << results.duplicates() << " duplicate runs\n";
}

// Two consumers; one is frozen and SIGKILLed (with the handlers it was running, as when its
// machine dies) while it holds messages. The survivor runs every task, the dead one's after their
// 2 s visibility timeout.
TEST_F(FaultCliTest, SurvivorCompletesTheMessagesOfAKilledConsumer) {
  const std::string url = CreateTestQueue(UniqueQueueName("fault-kill"), {"VisibilityTimeout=2"});
  ASSERT_FALSE(url.empty());
  constexpr int kTasks = 40;
  const nlohmann::json tasks = TaskList("kill", kTasks);
  const std::string config_a = WriteConfig("a.json", url, tasks, Path("results-a"), "0.3", 2, 4);
  const std::string config_b = WriteConfig("b.json", url, tasks, Path("results-b"), "0.3", 2, 4);
  ProcessOptions env = Env();
  ASSERT_EQ(RunTaskpipe({"send", "--config", config_a, "--job", "work"}, env).exit_code, 0);

  auto a = StartTaskpipe({"consume", "--config", config_a}, env, Path("a.out"), Path("a.err"));
  auto b = StartTaskpipe({"consume", "--config", config_b}, env, Path("b.out"), Path("b.err"));
  ASSERT_TRUE(a->started() && b->started());
  ASSERT_TRUE(WaitUntilTrue([&] { return ReadResults({Path("results-a")}).runs >= 2; }, 15000)) << a->Err();

  // Freeze A while one of its handlers runs (so it holds that message), then kill A and the
  // handlers' process groups: nothing A held completes.
  std::vector<int> handlers;
  const bool holding = WaitUntilTrue(
      [&] {
        a->Signal(SIGSTOP);
        ProcessResult children = RunProcess({"/usr/bin/pgrep", "-P", std::to_string(a->pid())});
        std::istringstream pids(children.out);
        for (int pid = 0; pids >> pid;) handlers.push_back(pid);
        if (!handlers.empty()) return true;
        a->Signal(SIGCONT);
        return false;
      },
      10000);
  ASSERT_TRUE(holding) << "consumer A never had a handler running";
  a->Signal(SIGKILL);
  for (int pid : handlers) kill(-pid, SIGKILL);  // each exec handler leads its own process group
  ASSERT_TRUE(a->Wait(5000));
  EXPECT_EQ(a->signal(), SIGKILL);
  const std::size_t done_at_kill = ReadResults({Path("results-a"), Path("results-b")}).tasks.size();
  ASSERT_LT(done_at_kill, static_cast<std::size_t>(kTasks)) << "killed too late to prove anything";

  const bool all_done = WaitUntilTrue(
      [&] { return ReadResults({Path("results-a"), Path("results-b")}).tasks.size() == kTasks || b->Wait(0); },
      90000);
  const Results results = ReadResults({Path("results-a"), Path("results-b")});
  EXPECT_TRUE(all_done) << results.tasks.size() << " of " << kTasks << " tasks completed\n" << b->Err();
  StopCleanly(*b, "the surviving consumer");
  // B ran what A held: those deliveries came back after the visibility timeout.
  EXPECT_GE(ReadResults({Path("results-b")}).redelivered, handlers.size()) << b->Err();
  RecordProperty("held_by_killed_consumer", static_cast<int>(handlers.size()));
  RecordProperty("duplicates", static_cast<int>(results.duplicates()));
  std::cout << "[ kill     ] A killed holding " << handlers.size() << " running handler(s) with " << done_at_kill
            << " of " << kTasks << " tasks done; B completed the rest; " << results.duplicates()
            << " duplicates\n";
}

}  // namespace
}  // namespace taskpipe
