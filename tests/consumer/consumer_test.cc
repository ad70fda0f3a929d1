#include "consumer/consumer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "producer/envelope.h"
#include "queue/in_memory_queue.h"
#include "tests/fakes/fake_clock.h"

namespace taskpipe {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::AllOf;
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// Real-time bound on waits for other threads: generous, only reached when a test is broken.
constexpr auto kPatience = 60s;

// Waits on `cv` (real time) until `pred` holds; false after kPatience.
template <typename Pred>
bool Await(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Pred pred) {
  return cv.wait_for(lock, kPatience, pred);
}

// A Queue decorator that records what the consumer asks of the queue and injects faults:
// Receive failures, DeleteBatch failures, and holding the messages of one Receive until Shutdown().
// Thread-safe. `base` and `clock` must outlive it.
class RecordingQueue final : public Queue {
 public:
  struct ReceiveCall {
    int max_messages = 0;
    int running = 0;  // handlers running when the call was made (from the probe)
    Clock::time_point at{};
  };
  struct VisibilityCall {
    Clock::time_point at{};
    std::vector<ChangeVisibilityBatchEntry> entries;
  };

  RecordingQueue(Queue& base, Clock& clock) : base_(base), clock_(clock) {}

  void SetRunningProbe(std::function<int()> probe) {
    std::lock_guard<std::mutex> lock(mu_);
    running_probe_ = std::move(probe);
  }
  void FailNextReceives(int n, Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    receive_failures_ = n;
    receive_status_ = std::move(status);
  }
  void FailNextDeleteBatches(int n, Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    delete_failures_ = n;
    delete_status_ = std::move(status);
  }
  void FailNextVisibilityBatches(int n, Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    visibility_failures_ = n;
    visibility_status_ = std::move(status);
  }
  // From now on every ChangeVisibilityBatch entry fails with `status` (not forwarded).
  void FailVisibilityEntries(Status status, bool sender_fault) {
    std::lock_guard<std::mutex> lock(mu_);
    entry_status_ = std::move(status);
    entry_sender_fault_ = sender_fault;
  }
  // The next Receive that gets messages keeps them until Shutdown() (as a long poll in progress
  // when a consumer stops).
  void HoldNextReceivedMessages() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = true;
  }
  // Lets the holding Receive return its messages (a long poll that ends by itself).
  void ReleaseHeld() {
    std::lock_guard<std::mutex> lock(mu_);
    release_held_ = true;
    cv_.notify_all();
  }
  // Waits until a Receive is holding messages; returns how many.
  std::size_t WaitUntilHolding() {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(Await(lock, cv_, [&] { return held_ > 0; }));
    return held_;
  }

  bool shut_down() const {
    std::lock_guard<std::mutex> lock(mu_);
    return shutdown_;
  }
  std::vector<ReceiveCall> receive_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return receive_calls_;
  }
  int receive_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(receive_calls_.size());
  }
  bool WaitForReceiveCalls(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return Await(lock, cv_, [&] { return static_cast<int>(receive_calls_.size()) >= n; });
  }
  std::vector<std::vector<DeleteBatchEntry>> delete_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return delete_calls_;
  }
  int deleted_entries() const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& call : delete_calls_) n += static_cast<int>(call.size());
    return n;
  }
  bool WaitForDeletedEntries(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return Await(lock, cv_, [&] {
      int total = 0;
      for (const auto& call : delete_calls_) total += static_cast<int>(call.size());
      return total >= n;
    });
  }
  // ChangeVisibilityBatch calls that have returned.
  std::vector<VisibilityCall> visibility_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return visibility_calls_;
  }
  bool WaitForVisibilityCalls(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return Await(lock, cv_, [&] { return static_cast<int>(visibility_calls_.size()) >= n; });
  }
  int single_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return single_calls_;
  }

  StatusOr<SendResult> Send(const OutgoingMessage& message) override { return base_.Send(message); }
  StatusOr<BatchResult<SendResult>> SendBatch(const std::vector<SendBatchEntry>& entries) override {
    return base_.SendBatch(entries);
  }
  StatusOr<std::vector<ReceivedMessage>> Receive(const ReceiveOptions& options) override {
    {
      std::function<int()> probe;
      {
        std::lock_guard<std::mutex> lock(mu_);
        probe = running_probe_;
      }
      const int running = probe ? probe() : 0;
      std::lock_guard<std::mutex> lock(mu_);
      receive_calls_.push_back({options.max_messages, running, clock_.Now()});
      cv_.notify_all();
      if (receive_failures_ > 0) {
        --receive_failures_;
        return receive_status_;
      }
    }
    StatusOr<std::vector<ReceivedMessage>> result = base_.Receive(options);
    if (result.ok() && !result->empty()) {
      std::unique_lock<std::mutex> lock(mu_);
      if (hold_) {
        held_ = result->size();
        cv_.notify_all();
        cv_.wait(lock, [&] { return shutdown_ || release_held_; });
        hold_ = false;
      }
    }
    return result;
  }
  Status Delete(std::string_view receipt_handle) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++single_calls_;
    return base_.Delete(receipt_handle);
  }
  StatusOr<BatchResult<Empty>> DeleteBatch(const std::vector<DeleteBatchEntry>& entries) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (delete_failures_ > 0) {
        --delete_failures_;
        return delete_status_;
      }
    }
    StatusOr<BatchResult<Empty>> result = base_.DeleteBatch(entries);
    std::lock_guard<std::mutex> lock(mu_);
    delete_calls_.push_back(entries);
    cv_.notify_all();
    return result;
  }
  Status ChangeVisibility(std::string_view receipt_handle, std::chrono::seconds timeout) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++single_calls_;
    return base_.ChangeVisibility(receipt_handle, timeout);
  }
  StatusOr<BatchResult<Empty>> ChangeVisibilityBatch(
      const std::vector<ChangeVisibilityBatchEntry>& entries) override {
    const Clock::time_point at = clock_.Now();
    StatusOr<BatchResult<Empty>> result = BatchResult<Empty>{};
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (visibility_failures_ > 0) {
        --visibility_failures_;
        result = visibility_status_;
      } else if (!entry_status_.ok()) {
        for (const auto& entry : entries) result->failed.push_back({entry.id, entry_status_, entry_sender_fault_});
      }
    }
    if (result.ok() && result->failed.empty()) result = base_.ChangeVisibilityBatch(entries);
    std::lock_guard<std::mutex> lock(mu_);
    visibility_calls_.push_back({at, entries});
    cv_.notify_all();
    return result;
  }
  StatusOr<QueueAttributes> GetAttributes() override { return base_.GetAttributes(); }
  void Shutdown() override {
    base_.Shutdown();
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    cv_.notify_all();
  }

 private:
  Queue& base_;
  Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::function<int()> running_probe_;
  int receive_failures_ = 0;
  Status receive_status_;
  int delete_failures_ = 0;
  Status delete_status_;
  int visibility_failures_ = 0;
  Status visibility_status_;
  Status entry_status_;
  bool entry_sender_fault_ = true;
  bool hold_ = false;
  bool release_held_ = false;
  std::size_t held_ = 0;
  bool shutdown_ = false;
  std::vector<ReceiveCall> receive_calls_;
  std::vector<std::vector<DeleteBatchEntry>> delete_calls_;
  std::vector<VisibilityCall> visibility_calls_;
  int single_calls_ = 0;
};

// A test handler: records every run and the peak concurrency. By default a run succeeds at once;
// `fn` scripts the outcome; runs for which `block_if` holds (all, after Block()) wait until
// Release()d or until their stop_token is requested (then they return kCancelled).
class TestHandler final : public Handler {
 public:
  using Fn = std::function<HandlerOutcome(const HandlerTask&, std::stop_token)>;
  explicit TestHandler(Fn fn = nullptr) : fn_(std::move(fn)) {}

  void Block(std::function<bool(const HandlerTask&)> block_if = [](const HandlerTask&) { return true; }) {
    std::lock_guard<std::mutex> lock(mu_);
    block_if_ = std::move(block_if);
  }
  void Release(int n = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    releases_ += n;
    cv_.notify_all();
  }
  void ReleaseAll() {
    std::lock_guard<std::mutex> lock(mu_);
    release_all_ = true;
    cv_.notify_all();
  }

  HandlerOutcome Run(const HandlerTask& task, std::stop_token stop) override {
    // Registered outside mu_: if stop was already requested the callback runs right here.
    std::stop_callback wake(stop, [this] {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    });
    bool stopped = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      tasks_.push_back(task);
      ++started_;
      ++running_;
      max_running_ = std::max(max_running_, running_);
      cv_.notify_all();
      if (block_if_ && block_if_(task)) {
        EXPECT_TRUE(Await(lock, cv_, [&] { return release_all_ || releases_ > 0 || stop.stop_requested(); }));
        if (release_all_ || releases_ > 0) {
          if (!release_all_) --releases_;
        } else {
          stopped = true;
          ++saw_stop_;
        }
      }
    }
    HandlerOutcome outcome;
    if (stopped) {
      outcome.status = CancelledError("stopped");
    } else if (fn_) {
      outcome = fn_(task, stop);
    }
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
    ++finished_;
    cv_.notify_all();
    return outcome;
  }

  int started() const {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }
  int running() const {
    std::lock_guard<std::mutex> lock(mu_);
    return running_;
  }
  int max_running() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_running_;
  }
  int saw_stop() const {
    std::lock_guard<std::mutex> lock(mu_);
    return saw_stop_;
  }
  std::vector<HandlerTask> tasks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_;
  }
  bool WaitStarted(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return Await(lock, cv_, [&] { return started_ >= n; });
  }
  bool WaitRunning(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return Await(lock, cv_, [&] { return running_ >= n; });
  }

 private:
  const Fn fn_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::function<bool(const HandlerTask&)> block_if_;
  int releases_ = 0;
  bool release_all_ = false;
  int started_ = 0;
  int running_ = 0;
  int max_running_ = 0;
  int finished_ = 0;
  int saw_stop_ = 0;
  std::vector<HandlerTask> tasks_;
};

TestHandler::Fn Fail(std::string message) {
  return [message](const HandlerTask&, std::stop_token) {
    HandlerOutcome outcome;
    outcome.status = UnavailableError(message);
    outcome.output = "some output";
    return outcome;
  };
}

// Collects the results the consumer reports.
class Results {
 public:
  Consumer::ResultCallback Callback() {
    return [this](const TaskResult& result) {
      std::lock_guard<std::mutex> lock(mu_);
      results_.push_back(result);
      cv_.notify_all();
    };
  }
  std::vector<TaskResult> all() const {
    std::lock_guard<std::mutex> lock(mu_);
    return results_;
  }
  bool WaitFor(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return Await(lock, cv_, [&] { return results_.size() >= n; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TaskResult> results_;
};

// A spdlog sink that keeps every formatted line, so tests can wait for one.
class LineSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  bool WaitForLine(const std::string& substring) {
    std::unique_lock<std::mutex> lock(lines_mu_);
    return Await(lock, lines_cv_, [&] { return Contains(substring); });
  }
  bool HasLine(const std::string& substring) {
    std::lock_guard<std::mutex> lock(lines_mu_);
    return Contains(substring);
  }
  std::string All() {
    std::lock_guard<std::mutex> lock(lines_mu_);
    std::string all;
    for (const std::string& line : lines_) all += line;
    return all;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::lock_guard<std::mutex> lock(lines_mu_);
    lines_.emplace_back(formatted.data(), formatted.size());
    lines_cv_.notify_all();
  }
  void flush_() override {}

 private:
  bool Contains(const std::string& substring) const {
    return std::any_of(lines_.begin(), lines_.end(),
                       [&](const std::string& line) { return line.find(substring) != std::string::npos; });
  }
  std::mutex lines_mu_;
  std::condition_variable lines_cv_;
  std::vector<std::string> lines_;
};

std::string Body(const std::string& job, json task) {
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));
  return EncodeEnvelope({job, std::move(task), at, at});
}

// Options for tests: deterministic jitter, no summary unless asked for.
ConsumerOptions TestOptions() {
  ConsumerOptions options;
  options.jitter_seed = 42;
  options.summary_interval = 0s;
  options.wait_time = 20s;
  options.visibility_timeout = 30s;
  options.retry.base = 10s;
  options.retry.max = 60s;
  // The in-memory queue's way (the fake clock would never end a long poll that Stop() waits for);
  // StopLetsAReceiveInProgressFinishAndReleasesWhatItGot covers the SQS way.
  options.abort_receives_on_stop = true;
  return options;
}

class ConsumerTest : public ::testing::Test {
 protected:
  // The queue under test; with max_receive_count > 0 it redrives into dlq_.
  void MakeQueue(InMemoryQueueOptions options, Clock& clock) {
    StatusOr<std::unique_ptr<Queue>> dlq = NewInMemoryQueue({.name = "dlq"}, clock);
    ASSERT_TRUE(dlq.ok());
    dlq_ = std::move(*dlq);
    if (options.max_receive_count > 0) options.dead_letter_queue = dlq_.get();
    StatusOr<std::unique_ptr<Queue>> memory = NewInMemoryQueue(options, clock);
    ASSERT_TRUE(memory.ok()) << memory.status().ToString();
    memory_ = std::move(*memory);
    queue_ = std::make_unique<RecordingQueue>(*memory_, clock);
  }
  void SetUp() override { MakeQueue({}, clock_); }

  std::unique_ptr<Consumer> MakeConsumer(std::map<std::string, ConsumerJob, std::less<>> jobs,
                                         ConsumerOptions options, Clock* clock = nullptr) {
    return std::make_unique<Consumer>(*queue_, clock ? *clock : clock_, std::move(jobs), results_.Callback(),
                                      logger_, options);
  }
  std::unique_ptr<Consumer> MakeConsumer(TestHandler& handler, ConsumerOptions options, Clock* clock = nullptr) {
    return MakeConsumer({{"job", ConsumerJob{&handler, 60s}}}, options, clock);
  }

  std::string Send(const std::string& body) {
    OutgoingMessage message;
    message.body = body;
    StatusOr<SendResult> sent = memory_->Send(message);
    EXPECT_TRUE(sent.ok()) << sent.status().ToString();
    return sent.ok() ? sent->message_id : "";
  }
  std::vector<ReceivedMessage> Peek(Queue& queue) {
    StatusOr<std::vector<ReceivedMessage>> peeked = PeekInMemoryQueue(queue);
    EXPECT_TRUE(peeked.ok());
    return peeked.ok() ? *peeked : std::vector<ReceivedMessage>{};
  }
  std::vector<ReceivedMessage> ReceiveNow(Queue& queue) {
    ReceiveOptions options;
    options.max_messages = 10;
    StatusOr<std::vector<ReceivedMessage>> received = queue.Receive(options);
    EXPECT_TRUE(received.ok());
    return received.ok() ? *received : std::vector<ReceivedMessage>{};
  }
  QueueAttributes Attributes() {
    StatusOr<QueueAttributes> attributes = memory_->GetAttributes();
    EXPECT_TRUE(attributes.ok());
    return attributes.ok() ? *attributes : QueueAttributes{};
  }

  FakeClock clock_;
  std::unique_ptr<Queue> dlq_;
  std::unique_ptr<Queue> memory_;
  std::unique_ptr<RecordingQueue> queue_;
  Results results_;
  std::shared_ptr<LineSink> sink_ = std::make_shared<LineSink>();
  std::shared_ptr<spdlog::logger> logger_ = NewLogger("consumer", {.level = spdlog::level::debug}, nullptr, sink_);
};

ConsumerOptions PollOptions() {
  ConsumerOptions options = TestOptions();
  options.wait_time = 0s;
  return options;
}

// ---------------------------------------------------------------------------------------------
// PollOnce: one turn of the crank, no threads.

TEST_F(ConsumerTest, SuccessRunsTheHandlerAndDeletesInOneBatch) {
  TestHandler handler;
  auto consumer = MakeConsumer({{"report", ConsumerJob{&handler, 90s}}}, PollOptions());
  const std::string id = Send(Body("report", json{{"day", "monday"}}));
  Send(Body("report", "two"));
  Send(Body("report", "three"));
  const Clock::time_point start = clock_.Now();

  EXPECT_EQ(consumer->PollOnce(), 3);

  const std::vector<HandlerTask> tasks = handler.tasks();
  ASSERT_THAT(tasks, SizeIs(3));
  EXPECT_EQ(tasks[0].job, "report");
  EXPECT_EQ(tasks[0].task, (json{{"day", "monday"}}));
  EXPECT_EQ(tasks[0].task_json, R"({"day":"monday"})");
  EXPECT_EQ(tasks[0].message_id, id);
  EXPECT_EQ(tasks[0].receive_count, 1);
  EXPECT_EQ(tasks[0].scheduled_at, std::chrono::system_clock::time_point(std::chrono::seconds(1767225600)));
  EXPECT_EQ(tasks[0].deadline, start + 90s);
  EXPECT_EQ(tasks[1].task_json, R"("two")");

  EXPECT_THAT(Peek(*memory_), IsEmpty());
  const auto deletes = queue_->delete_calls();
  ASSERT_THAT(deletes, SizeIs(1));
  EXPECT_THAT(deletes[0], SizeIs(3));
  EXPECT_EQ(queue_->single_calls(), 0);

  const std::vector<TaskResult> results = results_.all();
  ASSERT_THAT(results, SizeIs(3));
  EXPECT_EQ(results[0].status, TaskStatus::kSuccess);
  EXPECT_EQ(results[0].job, "report");
  EXPECT_EQ(results[0].task, R"({"day":"monday"})");
  EXPECT_EQ(results[0].message_id, id);
  EXPECT_EQ(results[0].receive_count, 1);
  EXPECT_EQ(results[0].error, "");
  EXPECT_FALSE(results[0].will_retry);
  EXPECT_EQ(results[0].finished_at, clock_.WallNow());

  const ConsumerStats stats = consumer->stats();
  EXPECT_EQ(stats.received, 3);
  EXPECT_EQ(stats.succeeded, 3);
  EXPECT_EQ(stats.deleted, 3);
  EXPECT_EQ(stats.in_flight, 0);
  EXPECT_EQ(consumer->PollOnce(), 0);
}

TEST_F(ConsumerTest, PollOnceAsksForAtMostBatchSizeAndWorkers) {
  TestHandler handler;
  ConsumerOptions options = PollOptions();
  options.batch_size = 10;
  options.workers = 4;
  auto consumer = MakeConsumer(handler, options);
  for (int i = 0; i < 9; ++i) Send(Body("job", "t" + std::to_string(i)));
  EXPECT_EQ(consumer->PollOnce(), 4);
  EXPECT_EQ(consumer->PollOnce(), 4);
  EXPECT_EQ(consumer->PollOnce(), 1);
  for (const auto& call : queue_->receive_calls()) EXPECT_EQ(call.max_messages, 4);
  EXPECT_THAT(Peek(*memory_), IsEmpty());
}

// Delivery n of a message that always fails reappears after RetryVisibility(n): 10 s, 20 s, 40 s,
// then 60 s (the max), each jittered into [d/2, d].
TEST_F(ConsumerTest, BackOffGrowsOnEveryDelivery) {
  TestHandler handler(Fail("exit status 3"));
  auto consumer = MakeConsumer(handler, PollOptions());  // retry 10 s .. 60 s
  Send(Body("job", "x"));
  ASSERT_EQ(consumer->PollOnce(), 1);
  for (int delivery = 1; delivery <= 5; ++delivery) {
    SCOPED_TRACE(delivery);
    const std::chrono::seconds d = std::min<std::chrono::seconds>(10s * (1 << (delivery - 1)), 60s);
    std::chrono::seconds waited{0};
    int handled = 0;
    while (handled == 0 && waited <= d) {
      clock_.Advance(1s);
      waited += 1s;
      handled = consumer->PollOnce();
    }
    ASSERT_EQ(handled, 1);
    EXPECT_GE(waited, (d + 1s) / 2);
    EXPECT_LE(waited, d);
    const auto calls = queue_->visibility_calls();
    ASSERT_THAT(calls, SizeIs(delivery + 1));
    EXPECT_EQ(calls[static_cast<std::size_t>(delivery) - 1].entries.at(0).visibility_timeout, waited);
  }
  EXPECT_EQ(handler.started(), 6);
  const std::vector<TaskResult> results = results_.all();
  ASSERT_THAT(results, SizeIs(6));
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].status, TaskStatus::kFailure);
    EXPECT_EQ(results[i].receive_count, static_cast<int>(i) + 1);
    EXPECT_TRUE(results[i].will_retry);
    EXPECT_EQ(results[i].error, "Unavailable: exit status 3");
    EXPECT_EQ(results[i].output, "some output");
  }
  const ConsumerStats stats = consumer->stats();
  EXPECT_EQ(stats.failed, 6);
  EXPECT_EQ(stats.retried, 6);
  EXPECT_EQ(stats.succeeded, 0);
}

TEST_F(ConsumerTest, PoisonMessageEndsInTheDeadLetterQueue) {
  MakeQueue({.visibility_timeout = 30s, .max_receive_count = 3}, clock_);
  TestHandler handler(Fail("always"));
  ConsumerOptions options = PollOptions();
  options.max_receive_count = 3;
  auto consumer = MakeConsumer(handler, options);
  const std::string id = Send(Body("job", "poison"));
  for (int i = 0; i < 10; ++i) {
    consumer->PollOnce();
    clock_.Advance(61s);
  }
  EXPECT_EQ(handler.started(), 3);
  EXPECT_THAT(Peek(*memory_), IsEmpty());
  const std::vector<ReceivedMessage> dead = Peek(*dlq_);
  ASSERT_THAT(dead, SizeIs(1));
  EXPECT_EQ(dead[0].message_id, id);
  const std::vector<TaskResult> results = results_.all();
  ASSERT_THAT(results, SizeIs(3));
  EXPECT_TRUE(results[0].will_retry);
  EXPECT_TRUE(results[1].will_retry);
  EXPECT_FALSE(results[2].will_retry);
  EXPECT_TRUE(sink_->HasLine("last delivery"));
  const ConsumerStats stats = consumer->stats();
  EXPECT_EQ(stats.retried, 3);
  EXPECT_EQ(stats.dead_lettered, 1);  // the third failure only
}

TEST_F(ConsumerTest, HandlerDurationsFillTheHistogramBuckets) {
  // Durations on the fake clock: 5 ms is in the first bucket (le 5 ms), 6 ms in the second, and
  // two hours past the last bound (1 h).
  const std::vector<std::chrono::milliseconds> durations = {5ms, 6ms, 2h};
  std::size_t next = 0;
  TestHandler handler([&](const HandlerTask&, std::stop_token) {
    clock_.Advance(durations[next++]);
    return HandlerOutcome{};
  });
  auto consumer = MakeConsumer(handler, PollOptions());
  for (int i = 0; i < 3; ++i) {
    Send(Body("job", std::to_string(i)));
    ASSERT_EQ(consumer->PollOnce(), 1);
  }
  const ConsumerStats stats = consumer->stats();
  EXPECT_EQ(stats.handler_runs, 3);
  EXPECT_EQ(stats.handler_duration_total, 5ms + 6ms + 2h);
  std::array<std::int64_t, kHandlerDurationBounds.size() + 1> expected{};
  expected[0] = 1;
  expected[1] = 1;
  expected.back() = 1;
  EXPECT_EQ(stats.handler_duration_buckets, expected);
}

TEST_F(ConsumerTest, ReceiveHealthRemembersWhenAStreakOfFailuresBeganAndClearsOnSuccess) {
  TestHandler handler;
  auto consumer = MakeConsumer(handler, PollOptions());
  EXPECT_FALSE(consumer->stats().receive_failing_since.has_value());
  queue_->FailNextReceives(2, UnavailableError("503"));
  const Clock::time_point first = clock_.Now();
  EXPECT_EQ(consumer->PollOnce(), 0);
  clock_.Advance(5s);
  EXPECT_EQ(consumer->PollOnce(), 0);
  const ConsumerStats failing = consumer->stats();
  ASSERT_TRUE(failing.receive_failing_since.has_value());
  EXPECT_EQ(*failing.receive_failing_since, first);  // the first failure, not the latest
  EXPECT_EQ(failing.receive_errors_in_a_row, 2);
  EXPECT_EQ(consumer->PollOnce(), 0);  // an empty receive is a receive that works
  const ConsumerStats recovered = consumer->stats();
  EXPECT_FALSE(recovered.receive_failing_since.has_value());
  EXPECT_EQ(recovered.receive_errors_in_a_row, 0);
  EXPECT_EQ(recovered.receive_errors, 2);
}

TEST_F(ConsumerTest, BodyThatIsNotAnEnvelopeFailsWithoutADefaultJob) {
  MakeQueue({.visibility_timeout = 30s, .max_receive_count = 2}, clock_);
  TestHandler handler;
  auto consumer = MakeConsumer(handler, PollOptions());
  Send("hello, not json");
  Send(R"({"job": 7})");
  ASSERT_EQ(consumer->PollOnce(), 2);
  EXPECT_EQ(handler.started(), 0);
  std::vector<TaskResult> results = results_.all();
  ASSERT_THAT(results, SizeIs(2));
  for (const TaskResult& result : results) {
    EXPECT_EQ(result.status, TaskStatus::kInvalid);
    EXPECT_EQ(result.job, "");
    EXPECT_THAT(result.error, AllOf(HasSubstr("not a taskpipe envelope"), HasSubstr("no consumer.default_job")));
    EXPECT_TRUE(result.will_retry);
  }
  // Backed off, not deleted, not hot-looped.
  EXPECT_THAT(Peek(*memory_), SizeIs(2));
  EXPECT_EQ(consumer->PollOnce(), 0);
  EXPECT_EQ(consumer->stats().invalid, 2);
  EXPECT_EQ(consumer->stats().retried, 2);
  // ... and in the end in the dead-letter queue.
  for (int i = 0; i < 6; ++i) {
    clock_.Advance(61s);
    consumer->PollOnce();
  }
  EXPECT_THAT(Peek(*memory_), IsEmpty());
  EXPECT_THAT(Peek(*dlq_), SizeIs(2));
  EXPECT_EQ(handler.started(), 0);
}

TEST_F(ConsumerTest, BodyThatIsNotAnEnvelopeGoesToTheDefaultJob) {
  TestHandler catch_all;
  TestHandler other;
  ConsumerOptions options = PollOptions();
  options.default_job = "catch-all";
  auto consumer = MakeConsumer({{"catch-all", ConsumerJob{&catch_all, 60s}}, {"other", ConsumerJob{&other, 60s}}},
                               options);
  Send("plain text");
  Send(R"({"order": 7, "items": [1, 2]})");
  Send("[1, 2]");
  Send(std::string(100, '[') + std::string(100, ']'));  // too deep to parse: passed as text
  Send("h\xC3\xA9llo \"quoted\"");
  ASSERT_EQ(consumer->PollOnce(), 5);
  EXPECT_EQ(other.started(), 0);
  std::map<std::string, HandlerTask> by_json;
  for (const HandlerTask& task : catch_all.tasks()) {
    EXPECT_EQ(task.job, "catch-all");
    EXPECT_EQ(task.scheduled_at, std::chrono::system_clock::time_point{});
    by_json[task.task_json] = task;
  }
  ASSERT_THAT(by_json, SizeIs(5));
  EXPECT_EQ(by_json.count(R"("plain text")"), 1u);
  EXPECT_EQ(by_json.count(R"({"items":[1,2],"order":7})"), 1u);
  EXPECT_EQ(by_json.count(R"("[1, 2]")"), 1u);
  EXPECT_EQ(by_json.count("\"" + std::string(100, '[') + std::string(100, ']') + "\""), 1u);
  EXPECT_EQ(by_json.count("\"h\xC3\xA9llo \\\"quoted\\\"\""), 1u);
  EXPECT_THAT(Peek(*memory_), IsEmpty());  // all succeeded and were deleted
  for (const TaskResult& result : results_.all()) {
    EXPECT_EQ(result.status, TaskStatus::kSuccess);
    EXPECT_EQ(result.job, "catch-all");
  }
}

TEST_F(ConsumerTest, EnvelopeForAnUnknownJob) {
  TestHandler known;
  {
    auto consumer = MakeConsumer({{"known", ConsumerJob{&known, 60s}}}, PollOptions());
    Send(Body("nope", "t"));
    ASSERT_EQ(consumer->PollOnce(), 1);
    const std::vector<TaskResult> results = results_.all();
    ASSERT_THAT(results, SizeIs(1));
    EXPECT_EQ(results[0].status, TaskStatus::kInvalid);
    EXPECT_THAT(results[0].error, HasSubstr("unknown job \"nope\""));
    EXPECT_EQ(results[0].scheduled_at, std::chrono::system_clock::time_point(std::chrono::seconds(1767225600)));
    EXPECT_THAT(Peek(*memory_), SizeIs(1));
  }
  clock_.Advance(61s);
  // With a default job, it gets the whole envelope.
  TestHandler catch_all;
  ConsumerOptions options = PollOptions();
  options.default_job = "catch-all";
  auto consumer = MakeConsumer({{"known", ConsumerJob{&known, 60s}}, {"catch-all", ConsumerJob{&catch_all, 60s}}},
                               options);
  ASSERT_EQ(consumer->PollOnce(), 1);
  ASSERT_THAT(catch_all.tasks(), SizeIs(1));
  const HandlerTask task = catch_all.tasks()[0];
  EXPECT_EQ(task.task["job"], "nope");
  EXPECT_EQ(task.task["task"], "t");
  EXPECT_EQ(task.receive_count, 2);
  EXPECT_EQ(known.started(), 0);
  EXPECT_THAT(Peek(*memory_), IsEmpty());
}

TEST_F(ConsumerTest, DefaultJobThatIsNotAJob) {
  TestHandler handler;
  ConsumerOptions options = PollOptions();
  options.default_job = "missing";
  auto consumer = MakeConsumer(handler, options);
  Send("raw");
  ASSERT_EQ(consumer->PollOnce(), 1);
  ASSERT_THAT(results_.all(), SizeIs(1));
  EXPECT_EQ(results_.all()[0].status, TaskStatus::kInvalid);
  EXPECT_THAT(results_.all()[0].error, HasSubstr("consumer.default_job \"missing\" is not a job"));
}

TEST_F(ConsumerTest, TimeoutIsReportedAndBacksOff) {
  TestHandler handler([](const HandlerTask&, std::stop_token) {
    HandlerOutcome outcome;
    outcome.status = DeadlineExceededError("killed after the 5s timeout");
    return outcome;
  });
  auto consumer = MakeConsumer({{"job", ConsumerJob{&handler, 5s}}}, PollOptions());
  Send(Body("job", "slow"));
  ASSERT_EQ(consumer->PollOnce(), 1);
  ASSERT_THAT(results_.all(), SizeIs(1));
  EXPECT_EQ(results_.all()[0].status, TaskStatus::kTimeout);
  EXPECT_THAT(results_.all()[0].error, HasSubstr("killed after the 5s timeout"));
  EXPECT_TRUE(results_.all()[0].will_retry);
  EXPECT_EQ(consumer->stats().timed_out, 1);
  EXPECT_THAT(queue_->visibility_calls(), SizeIs(1));
}

TEST_F(ConsumerTest, HandlerThatThrowsIsAFailure) {
  TestHandler handler([](const HandlerTask& task, std::stop_token) -> HandlerOutcome {
    if (task.task == "throw") throw std::runtime_error("bad handler");
    return {};
  });
  auto consumer = MakeConsumer(handler, PollOptions());
  Send(Body("job", "throw"));
  Send(Body("job", "fine"));
  ASSERT_EQ(consumer->PollOnce(), 2);
  std::map<std::string, TaskResult> by_task;
  for (const TaskResult& r : results_.all()) by_task[r.task] = r;
  EXPECT_EQ(by_task[R"("throw")"].status, TaskStatus::kFailure);
  EXPECT_THAT(by_task[R"("throw")"].error, HasSubstr("bad handler"));
  EXPECT_EQ(by_task[R"("fine")"].status, TaskStatus::kSuccess);
}

TEST_F(ConsumerTest, ReceiveErrorInPollOnceIsCountedAndLogged) {
  TestHandler handler;
  auto consumer = MakeConsumer(handler, PollOptions());
  Send(Body("job", "a"));
  queue_->FailNextReceives(1, UnavailableError("503"));
  EXPECT_EQ(consumer->PollOnce(), 0);
  EXPECT_EQ(consumer->stats().receive_errors, 1);
  EXPECT_TRUE(sink_->HasLine("receive failed: Unavailable: 503"));
  EXPECT_EQ(consumer->PollOnce(), 1);
}

TEST_F(ConsumerTest, RetryableDeleteFailureIsRetried) {
  TestHandler handler;
  auto consumer = MakeConsumer(handler, PollOptions());
  Send(Body("job", "a"));
  queue_->FailNextDeleteBatches(2, UnavailableError("503"));
  ASSERT_EQ(consumer->PollOnce(), 1);
  EXPECT_THAT(Peek(*memory_), IsEmpty());
  EXPECT_EQ(consumer->stats().deleted, 1);
  EXPECT_EQ(consumer->stats().delete_errors, 0);
}

TEST_F(ConsumerTest, PermanentDeleteFailureIsLoggedAndTheMessageComesBack) {
  TestHandler handler;
  auto consumer = MakeConsumer(handler, PollOptions());
  Send(Body("job", "a"));
  queue_->FailNextDeleteBatches(1, PermissionDeniedError("not allowed"));
  ASSERT_EQ(consumer->PollOnce(), 1);
  EXPECT_EQ(consumer->stats().delete_errors, 1);
  EXPECT_TRUE(sink_->HasLine("delete failed after 1 attempt(s): PermissionDenied: not allowed"));
  clock_.Advance(30s);
  EXPECT_EQ(consumer->PollOnce(), 1);  // delivered again: at least once
  EXPECT_EQ(handler.started(), 2);
  EXPECT_THAT(Peek(*memory_), IsEmpty());
}

TEST_F(ConsumerTest, DeleteWithAStaleHandleIsLoggedAsAPossibleDuplicate) {
  // The handler outlives the visibility (no heartbeat in PollOnce) and another consumer takes the
  // message meanwhile: our delete then fails with ReceiptHandleIsInvalid.
  std::string stolen_handle;
  TestHandler handler([&](const HandlerTask&, std::stop_token) {
    clock_.Advance(31s);
    std::vector<ReceivedMessage> stolen = ReceiveNow(*memory_);
    EXPECT_THAT(stolen, SizeIs(1));
    if (!stolen.empty()) stolen_handle = stolen[0].receipt_handle;
    return HandlerOutcome{};
  });
  auto consumer = MakeConsumer(handler, PollOptions());
  Send(Body("job", "a"));
  ASSERT_EQ(consumer->PollOnce(), 1);
  EXPECT_EQ(consumer->stats().delete_errors, 1);
  EXPECT_TRUE(sink_->HasLine("may run twice"));
  EXPECT_TRUE(memory_->Delete(stolen_handle).ok());
}

// ---------------------------------------------------------------------------------------------
// Threads.

TEST_F(ConsumerTest, BackpressureReceivesOnlyForFreeWorkers) {
  TestHandler handler;
  handler.Block();
  queue_->SetRunningProbe([&] { return handler.running(); });
  ConsumerOptions options = TestOptions();
  options.workers = 2;
  options.batch_size = 10;
  auto consumer = MakeConsumer(handler, options);
  for (int i = 0; i < 10; ++i) Send(Body("job", "t" + std::to_string(i)));
  consumer->Start();

  ASSERT_TRUE(handler.WaitStarted(2));
  // Two running, eight still on the queue: nothing fetched and left waiting.
  EXPECT_EQ(Attributes().visible, 8);
  for (int done = 1; done <= 8; ++done) {
    handler.Release();
    ASSERT_TRUE(handler.WaitStarted(2 + done));
    EXPECT_GE(Attributes().visible, 10 - (2 + done) - 1);
  }
  handler.ReleaseAll();
  ASSERT_TRUE(results_.WaitFor(10));
  consumer->Stop();

  EXPECT_EQ(handler.started(), 10);
  EXPECT_LE(handler.max_running(), 2);
  for (const RecordingQueue::ReceiveCall& call : queue_->receive_calls()) {
    EXPECT_GE(call.max_messages, 1);
    EXPECT_LE(call.max_messages + call.running, 2) << "asked for " << call.max_messages << " with "
                                                    << call.running << " running";
  }
  EXPECT_THAT(Peek(*memory_), IsEmpty());
  for (const auto& call : queue_->delete_calls()) EXPECT_LE(call.size(), 10u);
  EXPECT_EQ(queue_->deleted_entries(), 10);
}

TEST_F(ConsumerTest, ConcurrencyIsIndependentOfBatchSize) {
  TestHandler handler;
  handler.Block();
  ConsumerOptions options = TestOptions();
  options.workers = 16;
  options.batch_size = 1;
  auto consumer = MakeConsumer(handler, options);
  for (int i = 0; i < 16; ++i) Send(Body("job", "t" + std::to_string(i)));
  consumer->Start();
  ASSERT_TRUE(handler.WaitRunning(16));  // sixteen at once, from batches of one
  EXPECT_EQ(handler.running(), 16);
  handler.ReleaseAll();
  ASSERT_TRUE(results_.WaitFor(16));
  consumer->Stop();
  for (const auto& call : queue_->receive_calls()) EXPECT_EQ(call.max_messages, 1);
  EXPECT_THAT(Peek(*memory_), IsEmpty());
  EXPECT_EQ(consumer->stats().succeeded, 16);
}

TEST_F(ConsumerTest, HeartbeatKeepsALongTaskInvisibleForMoreThanThreeTimeouts) {
  TestHandler handler;
  handler.Block();
  ConsumerOptions options = TestOptions();  // visibility 30 s: extended when 10 s are left
  options.workers = 2;                      // so that the consumer's own poller keeps polling
  auto consumer = MakeConsumer({{"job", ConsumerJob{&handler, 1h}}}, options);
  const Clock::time_point t0 = clock_.Now();
  Send(Body("job", "long"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(1));

  // 110 s in 5 s steps: more than three visibility timeouts.
  for (int step = 1; step <= 22; ++step) {
    clock_.Advance(5s);
    const auto elapsed = clock_.Now() - t0;
    SCOPED_TRACE(std::to_string(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count()) + " s");
    if (step % 4 == 0) {
      // Due every 20 s: at 20 s (visible until 30 s), 40 s (until 50 s), ...
      ASSERT_TRUE(queue_->WaitForVisibilityCalls(step / 4));
    }
    // Another consumer polling the queue never gets the message.
    EXPECT_THAT(ReceiveNow(*memory_), IsEmpty());
  }
  const auto calls = queue_->visibility_calls();
  ASSERT_THAT(calls, SizeIs(5));
  for (std::size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].at, t0 + 20s * static_cast<int>(i + 1));  // 10 s before each expiry
    ASSERT_THAT(calls[i].entries, SizeIs(1));
    EXPECT_EQ(calls[i].entries[0].visibility_timeout, 30s);
  }
  handler.ReleaseAll();
  ASSERT_TRUE(results_.WaitFor(1));
  consumer->Stop();
  EXPECT_EQ(handler.started(), 1);
  EXPECT_EQ(consumer->stats().extended, 5);
  EXPECT_EQ(consumer->stats().extend_errors, 0);
  EXPECT_THAT(Peek(*memory_), IsEmpty());
}

TEST_F(ConsumerTest, FailedExtensionsAreRetriedOrReported) {
  TestHandler handler;
  handler.Block();
  ConsumerOptions options = TestOptions();  // visibility 30 s: retry a failed extension after 3 s
  options.workers = 1;
  auto consumer = MakeConsumer({{"job", ConsumerJob{&handler, 1h}}}, options);
  const Clock::time_point t0 = clock_.Now();
  Send(Body("job", "long"));
  queue_->FailNextVisibilityBatches(1, UnavailableError("503"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(1));

  clock_.Advance(20s);
  ASSERT_TRUE(queue_->WaitForVisibilityCalls(1));  // fails as a whole: retried soon
  // Logged once the retry is scheduled (3 s after the failed call returned).
  ASSERT_TRUE(sink_->WaitForLine("visibility extension of 1 message(s) failed, retrying: Unavailable: 503"));
  clock_.Advance(3s);
  ASSERT_TRUE(queue_->WaitForVisibilityCalls(2));  // extended: visible at 53 s, next try at 43 s

  queue_->FailVisibilityEntries(InvalidArgumentError("gone", "ReceiptHandleIsInvalid"), /*sender_fault=*/true);
  clock_.Advance(20s);
  ASSERT_TRUE(queue_->WaitForVisibilityCalls(3));
  EXPECT_TRUE(sink_->WaitForLine("it may be handed to another consumer while its handler runs"));
  const auto calls = queue_->visibility_calls();
  EXPECT_EQ(calls[0].at, t0 + 20s);
  EXPECT_EQ(calls[1].at, t0 + 23s);
  EXPECT_EQ(calls[2].at, t0 + 43s);
  handler.ReleaseAll();
  ASSERT_TRUE(results_.WaitFor(1));
  consumer->Stop();
  EXPECT_THAT(queue_->visibility_calls(), SizeIs(3));  // a lost handle is not extended again
  const ConsumerStats stats = consumer->stats();
  EXPECT_EQ(stats.extended, 1);
  EXPECT_EQ(stats.extend_errors, 1);
}

TEST_F(ConsumerTest, HeartbeatWithTheRealClockAgainstACompetingConsumer) {
  // Visibility 2 s: extended when 0.67 s are left, which leaves room for a loaded machine.
  StatusOr<std::unique_ptr<Queue>> memory = NewInMemoryQueue({.visibility_timeout = 2s}, RealClock());
  ASSERT_TRUE(memory.ok());
  RecordingQueue queue(**memory, RealClock());
  TestHandler handler;
  handler.Block();
  TestHandler competitor_handler;
  ConsumerOptions options = TestOptions();
  options.visibility_timeout = 2s;
  options.workers = 3;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*memory)->Send({.body = Body("job", "t" + std::to_string(i))}).ok());
  Consumer consumer(queue, RealClock(), {{"job", ConsumerJob{&handler, 60s}}}, nullptr, nullptr, options);
  consumer.Start();
  ASSERT_TRUE(handler.WaitStarted(3));
  options.shutdown_queue_on_stop = false;
  options.wait_time = 1s;
  Consumer competitor(**memory, RealClock(), {{"job", ConsumerJob{&competitor_handler, 60s}}}, nullptr, nullptr,
                      options);
  competitor.Start();
  // Each message extended at least four times: held for more than three visibility timeouts.
  ASSERT_TRUE(queue.WaitForVisibilityCalls(4));
  std::map<std::string, int> extensions;
  ASSERT_TRUE([&] {
    for (int i = 0; i < 200; ++i) {
      extensions.clear();
      for (const auto& call : queue.visibility_calls()) {
        for (const auto& entry : call.entries) ++extensions[entry.receipt_handle];
      }
      if (extensions.size() == 3 &&
          std::all_of(extensions.begin(), extensions.end(), [](const auto& e) { return e.second >= 4; })) {
        return true;
      }
      queue.WaitForVisibilityCalls(static_cast<int>(queue.visibility_calls().size()) + 1);
    }
    return false;
  }());
  handler.ReleaseAll();
  competitor.Stop();
  consumer.Stop();
  EXPECT_EQ(competitor_handler.started(), 0);
  EXPECT_EQ(handler.started(), 3);
  EXPECT_EQ(consumer.stats().succeeded, 3);
  EXPECT_EQ(consumer.stats().extend_errors, 0);
  EXPECT_THAT(*PeekInMemoryQueue(**memory), IsEmpty());
}

// Many workers never run one message twice while it is invisible, and every message is deleted.
void StressEveryMessageRunsExactlyOnce(bool receive_per_worker) {
  StatusOr<std::unique_ptr<Queue>> memory = NewInMemoryQueue({}, RealClock());
  ASSERT_TRUE(memory.ok());
  RecordingQueue queue(**memory, RealClock());
  std::mutex mu;
  std::map<std::string, int> runs;
  TestHandler handler([&](const HandlerTask& task, std::stop_token) {
    std::lock_guard<std::mutex> lock(mu);
    ++runs[task.message_id];
    return HandlerOutcome{};
  });
  queue.SetRunningProbe([&] { return handler.running(); });
  constexpr int kMessages = 2000;
  for (int start = 0; start < kMessages; start += 10) {
    std::vector<SendBatchEntry> batch;
    for (int i = start; i < start + 10; ++i) batch.push_back({"e" + std::to_string(i), {.body = Body("job", "t" + std::to_string(i))}});
    ASSERT_TRUE((*memory)->SendBatch(batch).ok());
  }
  Results results;
  ConsumerOptions options = TestOptions();
  options.workers = 8;
  options.pollers = 2;
  options.receive_per_worker = receive_per_worker;
  Consumer consumer(queue, RealClock(), {{"job", ConsumerJob{&handler, 60s}}}, results.Callback(), nullptr, options);
  consumer.Start();
  ASSERT_TRUE(results.WaitFor(kMessages));
  consumer.Stop();

  EXPECT_THAT(runs, SizeIs(kMessages));
  for (const auto& [id, n] : runs) EXPECT_EQ(n, 1) << id;
  EXPECT_LE(handler.max_running(), 8);
  for (const auto& call : queue.receive_calls()) {
    EXPECT_LE(call.max_messages + call.running, 8);
    if (receive_per_worker) {
      EXPECT_EQ(call.max_messages, 1);
    }
  }
  for (const auto& call : queue.delete_calls()) EXPECT_LE(call.size(), 10u);
  EXPECT_EQ(queue.deleted_entries(), kMessages);
  EXPECT_THAT(*PeekInMemoryQueue(**memory), IsEmpty());
  const ConsumerStats stats = consumer.stats();
  EXPECT_EQ(stats.received, kMessages);
  EXPECT_EQ(stats.succeeded, kMessages);
  EXPECT_EQ(stats.deleted, kMessages);
}

TEST_F(ConsumerTest, StressEveryMessageRunsExactlyOnce) { StressEveryMessageRunsExactlyOnce(false); }

TEST_F(ConsumerTest, StressEveryMessageRunsExactlyOnceWhenWorkersReceive) {
  StressEveryMessageRunsExactlyOnce(true);
}

TEST_F(ConsumerTest, DeletesAreFlushedByTimeInBatchesOfAtMostTen) {
  StatusOr<std::unique_ptr<Queue>> memory = NewInMemoryQueue({}, RealClock());
  ASSERT_TRUE(memory.ok());
  RecordingQueue queue(**memory, RealClock());
  TestHandler handler;
  for (int i = 0; i < 25; ++i) ASSERT_TRUE((*memory)->Send({.body = Body("job", "t" + std::to_string(i))}).ok());
  ConsumerOptions options = TestOptions();
  options.workers = 4;
  Consumer consumer(queue, RealClock(), {{"job", ConsumerJob{&handler, 60s}}}, nullptr, nullptr, options);
  consumer.Start();
  // All 25 deleted while running (the last few by the flush timer), before any Stop().
  ASSERT_TRUE(queue.WaitForDeletedEntries(25));
  EXPECT_THAT(*PeekInMemoryQueue(**memory), IsEmpty());
  consumer.Stop();
  for (const auto& call : queue.delete_calls()) {
    EXPECT_GE(call.size(), 1u);
    EXPECT_LE(call.size(), 10u);
  }
  EXPECT_EQ(queue.deleted_entries(), 25);
}

TEST_F(ConsumerTest, ReceiveErrorsBackOffExponentiallyAndThePollerRecovers) {
  TestHandler handler;
  ConsumerOptions options = TestOptions();
  options.workers = 1;
  options.receive_backoff_base = 100ms;
  options.receive_backoff_max = 400ms;
  queue_->FailNextReceives(4, UnavailableError("503 Service Unavailable"));
  auto consumer = MakeConsumer(handler, options);
  consumer->Start();

  const std::chrono::milliseconds full[] = {100ms, 200ms, 400ms, 400ms};
  for (int failure = 1; failure <= 4; ++failure) {
    SCOPED_TRACE(failure);
    ASSERT_TRUE(queue_->WaitForReceiveCalls(failure));
    clock_.BlockUntilWaiters(2);  // the maintenance thread and the poller's back-off
    const auto d = full[failure - 1];
    clock_.Advance(d / 2 - 1ms);  // jitter keeps at least half of d
    clock_.BlockUntilWaiters(2);
    EXPECT_EQ(queue_->receive_count(), failure);
    clock_.Advance(d / 2 + 1ms);  // and at most d
    ASSERT_TRUE(queue_->WaitForReceiveCalls(failure + 1));
  }
  const auto calls = queue_->receive_calls();
  for (std::size_t i = 1; i < calls.size(); ++i) EXPECT_GT(calls[i].at, calls[i - 1].at);  // never at once

  Send(Body("job", "after the outage"));
  ASSERT_TRUE(results_.WaitFor(1));
  EXPECT_EQ(results_.all()[0].status, TaskStatus::kSuccess);
  consumer->Stop();
  EXPECT_EQ(consumer->stats().receive_errors, 4);
  EXPECT_FALSE(consumer->stats().receive_failing_since.has_value());  // the poller's receive worked again
  EXPECT_TRUE(sink_->HasLine("receive failed (4 in a row), retrying in"));
  EXPECT_TRUE(sink_->HasLine("receive recovered after 4 failed attempt(s)"));
}

TEST_F(ConsumerTest, PermanentReceiveErrorsNeverStopThePoller) {
  TestHandler handler;
  ConsumerOptions options = TestOptions();
  options.receive_backoff_base = 1s;
  options.receive_backoff_max = 2s;
  queue_->FailNextReceives(20, PermissionDeniedError("The security token included in the request is invalid"));
  auto consumer = MakeConsumer(handler, options);
  consumer->Start();
  const Clock::time_point start = clock_.Now();
  for (int failure = 1; failure <= 20; ++failure) {
    ASSERT_TRUE(queue_->WaitForReceiveCalls(failure));
    clock_.BlockUntilWaiters(2);
    if (failure == 20) {
      const ConsumerStats failing = consumer->stats();
      EXPECT_EQ(failing.receive_failing_since, std::optional<Clock::time_point>(start));
      EXPECT_EQ(failing.receive_errors_in_a_row, 20);
    }
    clock_.Advance(2s);
  }
  Send(Body("job", "finally"));
  ASSERT_TRUE(results_.WaitFor(1));
  consumer->Stop();
  EXPECT_EQ(consumer->stats().receive_errors, 20);
  EXPECT_TRUE(sink_->HasLine("receive failed (20 in a row)"));
}

TEST_F(ConsumerTest, StopLetsRunningHandlersFinishReleasesUnstartedAndFlushesDeletes) {
  TestHandler handler;
  handler.Block([](const HandlerTask& task) { return task.task == "A"; });
  ConsumerOptions options = TestOptions();
  options.workers = 4;
  auto consumer = MakeConsumer(handler, options);
  Send(Body("job", "A"));
  Send(Body("job", "B"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(2));
  ASSERT_TRUE(results_.WaitFor(1));  // B succeeded; its delete waits for a batch (the clock stands still)
  EXPECT_THAT(queue_->delete_calls(), IsEmpty());

  // C and D are received by a long poll that is still in progress when Stop() comes.
  queue_->HoldNextReceivedMessages();
  std::vector<SendBatchEntry> batch = {{"c", {.body = Body("job", "C")}}, {"d", {.body = Body("job", "D")}}};
  ASSERT_TRUE(memory_->SendBatch(batch).ok());
  const std::size_t held = queue_->WaitUntilHolding();

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    consumer->Stop();
    stopped = true;
  });
  // Released at once (visibility 0) and B's delete flushed, while A still runs.
  ASSERT_TRUE(queue_->WaitForVisibilityCalls(1));
  ASSERT_TRUE(queue_->WaitForDeletedEntries(1));
  const auto release = queue_->visibility_calls()[0];
  EXPECT_THAT(release.entries, SizeIs(held));
  for (const auto& entry : release.entries) EXPECT_EQ(entry.visibility_timeout, 0s);
  EXPECT_EQ(Attributes().visible, 2);  // C and D, ready for another consumer
  EXPECT_EQ(Attributes().in_flight, 1);  // A
  EXPECT_FALSE(stopped);

  handler.ReleaseAll();
  stopper.join();
  EXPECT_EQ(handler.started(), 2);  // A and B only
  std::vector<ReceivedMessage> left = Peek(*memory_);
  ASSERT_THAT(left, SizeIs(2));
  std::set<std::string> bodies;
  for (const ReceivedMessage& m : left) bodies.insert(m.body);
  EXPECT_EQ(bodies, (std::set<std::string>{Body("job", "C"), Body("job", "D")}));
  EXPECT_EQ(Attributes().visible, 2);
  EXPECT_EQ(Attributes().in_flight, 0);
  const ConsumerStats stats = consumer->stats();
  EXPECT_EQ(stats.succeeded, 2);
  EXPECT_EQ(stats.released, static_cast<std::int64_t>(held));
  EXPECT_EQ(stats.in_flight, 0);
  consumer->Stop();  // idempotent
}

// SQS's way (the default): a receive in progress when Stop() comes is not cut off (its reply
// could be in transit, and messages in a lost reply stay hidden for their visibility timeout); it
// is let finish, and what it brings back is released at once. Only then is the queue shut down.
TEST_F(ConsumerTest, StopLetsAReceiveInProgressFinishAndReleasesWhatItGot) {
  TestHandler handler;
  handler.Block([](const HandlerTask& task) { return task.task == "A"; });
  ConsumerOptions options = TestOptions();
  options.workers = 4;
  options.abort_receives_on_stop = false;
  auto consumer = MakeConsumer(handler, options);
  Send(Body("job", "A"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(1));

  queue_->HoldNextReceivedMessages();
  std::vector<SendBatchEntry> batch = {{"c", {.body = Body("job", "C")}}, {"d", {.body = Body("job", "D")}}};
  ASSERT_TRUE(memory_->SendBatch(batch).ok());
  const std::size_t held = queue_->WaitUntilHolding();

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    consumer->Stop();
    stopped = true;
  });
  ASSERT_TRUE(sink_->WaitForLine("waiting for 1 receive(s) in progress"));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(queue_->shut_down());  // not cut off
  EXPECT_THAT(queue_->visibility_calls(), IsEmpty());

  queue_->ReleaseHeld();  // the long poll returns with C and D
  ASSERT_TRUE(queue_->WaitForVisibilityCalls(1));
  const auto release = queue_->visibility_calls()[0];
  EXPECT_THAT(release.entries, SizeIs(held));
  for (const auto& entry : release.entries) EXPECT_EQ(entry.visibility_timeout, 0s);
  for (int i = 0; i < 5000 && !queue_->shut_down(); ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(queue_->shut_down());  // and then the queue is shut down
  EXPECT_EQ(Attributes().visible, 2);  // C and D, ready for another consumer now
  EXPECT_FALSE(stopped);               // A still runs

  handler.ReleaseAll();
  stopper.join();
  EXPECT_EQ(handler.started(), 1);
  EXPECT_EQ(consumer->stats().released, static_cast<std::int64_t>(held));
  EXPECT_EQ(consumer->stats().succeeded, 1);
}

TEST_F(ConsumerTest, GraceExceededRequestsStopAndReleasesTheMessage) {
  TestHandler handler;
  handler.Block();
  ConsumerOptions options = TestOptions();
  options.workers = 1;
  options.shutdown_grace = 10s;
  auto consumer = MakeConsumer(handler, options);
  const std::string id = Send(Body("job", "endless"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(1));

  std::thread stopper([&] { consumer->Stop(); });
  clock_.BlockUntilWaiters(2);  // the maintenance thread and Stop() waiting out the grace
  clock_.Advance(9s);
  EXPECT_EQ(handler.saw_stop(), 0);
  clock_.BlockUntilWaiters(2);
  clock_.Advance(1s);
  stopper.join();

  EXPECT_EQ(handler.saw_stop(), 1);
  const std::vector<TaskResult> results = results_.all();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_EQ(results[0].status, TaskStatus::kFailure);
  EXPECT_THAT(results[0].error, HasSubstr("interrupted by shutdown"));
  EXPECT_TRUE(results[0].will_retry);
  // Released: visible at once for the next consumer.
  EXPECT_EQ(Attributes().visible, 1);
  const auto calls = queue_->visibility_calls();
  ASSERT_THAT(calls, SizeIs(1));
  EXPECT_EQ(calls[0].entries.at(0).visibility_timeout, 0s);
  EXPECT_EQ(consumer->stats().released, 1);
  EXPECT_TRUE(sink_->HasLine("shutdown grace ran out: stopping 1 running handler(s)"));
}

TEST_F(ConsumerTest, StopNowCutsTheGraceShort) {
  TestHandler handler;
  handler.Block();
  ConsumerOptions options = TestOptions();
  options.workers = 2;
  options.shutdown_grace = 1h;
  auto consumer = MakeConsumer(handler, options);
  Send(Body("job", "a"));
  Send(Body("job", "b"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(2));
  std::thread stopper([&] { consumer->Stop(); });
  clock_.BlockUntilWaiters(2);  // Stop() is waiting out the grace
  consumer->StopNow();          // returns without waiting for anything
  EXPECT_TRUE(handler.WaitStarted(2));
  stopper.join();               // no clock advance: StopNow ended the grace
  EXPECT_EQ(handler.saw_stop(), 2);
  EXPECT_EQ(Attributes().visible, 2);
  EXPECT_EQ(consumer->stats().released, 2);
  consumer->StopNow();
}

TEST_F(ConsumerTest, StopNowWithoutStopThenDestructor) {
  TestHandler handler;
  handler.Block();
  auto consumer = MakeConsumer(handler, TestOptions());
  Send(Body("job", "a"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(1));
  consumer->StopNow();
  ASSERT_TRUE(results_.WaitFor(1));
  EXPECT_EQ(handler.saw_stop(), 1);
  consumer.reset();  // joins, flushes the release
  EXPECT_EQ(Attributes().visible, 1);
}

TEST_F(ConsumerTest, HandlerIgnoringItsDeadlineIsStoppedAfterTheTimeoutGrace) {
  TestHandler handler;
  handler.Block();  // returns only when released or stopped
  ConsumerOptions options = TestOptions();
  options.workers = 1;
  options.timeout_grace = 5s;
  auto consumer = MakeConsumer({{"job", ConsumerJob{&handler, 10s}}}, options);
  const Clock::time_point t0 = clock_.Now();
  Send(Body("job", "stuck"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(1));
  EXPECT_EQ(handler.tasks()[0].deadline, t0 + 10s);
  clock_.Advance(14s);
  EXPECT_EQ(handler.saw_stop(), 0);
  clock_.Advance(1s);
  ASSERT_TRUE(results_.WaitFor(1));
  EXPECT_EQ(handler.saw_stop(), 1);
  const TaskResult result = results_.all()[0];
  EXPECT_EQ(result.status, TaskStatus::kTimeout);
  EXPECT_THAT(result.error, HasSubstr("stopped 5 s after its timeout of 10 s"));
  EXPECT_TRUE(result.will_retry);
  consumer->Stop();
  EXPECT_EQ(consumer->stats().timed_out, 1);
  // Backed off, not released.
  const auto calls = queue_->visibility_calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_GE(calls.back().entries.at(0).visibility_timeout, 5s);
}

TEST_F(ConsumerTest, SummaryIsLoggedPeriodically) {
  TestHandler handler;
  ConsumerOptions options = TestOptions();
  options.summary_interval = 60s;
  auto consumer = MakeConsumer(handler, options);
  Send(Body("job", "a"));
  consumer->Start();
  ASSERT_TRUE(results_.WaitFor(1));
  EXPECT_FALSE(sink_->HasLine("consumer summary"));
  clock_.Advance(5ms);  // the delete's flush interval: deleted before its visibility could run out
  ASSERT_TRUE(queue_->WaitForDeletedEntries(1));
  clock_.Advance(60s - 5ms);
  // (The result is reported before the worker lets go of the message, so "in flight" may be 0 or 1.)
  EXPECT_TRUE(sink_->WaitForLine(
      "consumer summary: received 1, succeeded 1, failed 0, timed out 0, invalid 0, retried 0, released 0, "
      "in flight "));
  EXPECT_TRUE(sink_->HasLine("running 0, handler p50 0ms p99 0ms, receive errors 0"));
  consumer->Stop();
}

TEST_F(ConsumerTest, BadBodiesDoNotWedgeTheThreadedConsumer) {
  MakeQueue({.visibility_timeout = 30s, .max_receive_count = 1}, clock_);
  TestHandler handler;
  ConsumerOptions options = TestOptions();
  options.workers = 3;
  auto consumer = MakeConsumer(handler, options);
  Send("garbage");
  Send(std::string(100000, '{'));
  Send(Body("unknown", "x"));
  for (int i = 0; i < 5; ++i) Send(Body("job", "t" + std::to_string(i)));
  consumer->Start();
  ASSERT_TRUE(results_.WaitFor(8));
  consumer->Stop();
  EXPECT_EQ(handler.started(), 5);
  EXPECT_EQ(consumer->stats().invalid, 3);
  EXPECT_EQ(consumer->stats().succeeded, 5);
}

// ---------------------------------------------------------------------------------------------
// receive_per_worker: each worker receives its own message (the memory backend's mode).

TEST_F(ConsumerTest, WorkersThatReceiveAskForOneMessageEachAndNeverHoldOneUnstarted) {
  TestHandler handler;
  handler.Block();
  queue_->SetRunningProbe([&] { return handler.running(); });
  ConsumerOptions options = TestOptions();
  options.workers = 3;
  options.receive_per_worker = true;
  auto consumer = MakeConsumer(handler, options);
  for (int i = 0; i < 10; ++i) Send(Body("job", "t" + std::to_string(i)));
  consumer->Start();

  ASSERT_TRUE(handler.WaitStarted(3));
  EXPECT_EQ(Attributes().visible, 7);  // three running, nothing fetched and left waiting
  EXPECT_EQ(Attributes().in_flight, 3);
  for (int done = 1; done <= 7; ++done) {
    handler.Release();
    ASSERT_TRUE(handler.WaitStarted(3 + done));
  }
  handler.ReleaseAll();
  ASSERT_TRUE(results_.WaitFor(10));
  consumer->Stop();

  EXPECT_EQ(handler.started(), 10);
  EXPECT_LE(handler.max_running(), 3);
  for (const RecordingQueue::ReceiveCall& call : queue_->receive_calls()) {
    EXPECT_EQ(call.max_messages, 1);
    EXPECT_LE(call.max_messages + call.running, 3);
  }
  EXPECT_THAT(Peek(*memory_), IsEmpty());
  EXPECT_EQ(queue_->deleted_entries(), 10);
  EXPECT_TRUE(sink_->HasLine("consumer starting: 3 workers, each receiving for itself"));
}

TEST_F(ConsumerTest, WorkersThatReceiveStopAtOnceAndLetTheRunningTaskFinish) {
  TestHandler handler;
  handler.Block([](const HandlerTask& task) { return task.task == "A"; });
  ConsumerOptions options = TestOptions();
  options.workers = 4;
  options.receive_per_worker = true;
  auto consumer = MakeConsumer(handler, options);
  Send(Body("job", "A"));
  consumer->Start();
  ASSERT_TRUE(handler.WaitStarted(1));
  // Three workers sit in long polls (the fake clock never ends them); Stop() must end them.
  ASSERT_TRUE(queue_->WaitForReceiveCalls(4));

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    consumer->Stop();
    stopped = true;
  });
  // Sent after Stop() began: no worker may start it.
  while (!queue_->shut_down()) std::this_thread::sleep_for(1ms);
  Send(Body("job", "late"));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(stopped);  // A still runs
  handler.ReleaseAll();
  stopper.join();

  EXPECT_EQ(handler.started(), 1);
  const ConsumerStats stats = consumer->stats();
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.deleted, 1);
  EXPECT_EQ(stats.receive_errors, 0);  // the ended long polls are not errors
  std::vector<ReceivedMessage> left = Peek(*memory_);
  ASSERT_THAT(left, SizeIs(1));
  EXPECT_EQ(left[0].body, Body("job", "late"));
  EXPECT_FALSE(sink_->HasLine("receive failed"));
}

TEST_F(ConsumerTest, WorkersThatReceiveBackOffOnReceiveErrorsAndRecover) {
  TestHandler handler;
  ConsumerOptions options = TestOptions();
  options.workers = 1;
  options.receive_per_worker = true;
  options.receive_backoff_base = 100ms;
  options.receive_backoff_max = 400ms;
  queue_->FailNextReceives(3, UnavailableError("503 Service Unavailable"));
  auto consumer = MakeConsumer(handler, options);
  consumer->Start();
  for (int failure = 1; failure <= 3; ++failure) {
    ASSERT_TRUE(queue_->WaitForReceiveCalls(failure));
    clock_.BlockUntilWaiters(2);  // the maintenance thread and the worker's back-off
    EXPECT_EQ(queue_->receive_count(), failure);  // no re-poll before the back-off ends
    clock_.Advance(400ms);
  }
  ASSERT_TRUE(queue_->WaitForReceiveCalls(4));
  Send(Body("job", "after the outage"));
  ASSERT_TRUE(results_.WaitFor(1));
  consumer->Stop();
  EXPECT_EQ(results_.all()[0].status, TaskStatus::kSuccess);
  EXPECT_EQ(consumer->stats().receive_errors, 3);
  EXPECT_TRUE(sink_->HasLine("receive failed (3 in a row), retrying in"));
  EXPECT_TRUE(sink_->HasLine("receive recovered after 3 failed attempt(s)"));
}

TEST_F(ConsumerTest, DestructorWithoutStartOrStopIsClean) {
  TestHandler handler;
  auto consumer = MakeConsumer(handler, TestOptions());
  consumer.reset();
  auto started = MakeConsumer(handler, TestOptions());
  started->Start();
  started.reset();
}

TEST(ConsumerOptionsTest, FromConfig) {
  Config config;
  config.queue.wait_time = 7s;
  config.queue.visibility_timeout = 45s;
  config.queue.max_receive_count = 4;
  config.consumer.workers = 3;
  config.consumer.batch_size = 5;
  config.consumer.shutdown_grace = 9s;
  config.consumer.retry.base = 2s;
  config.consumer.retry.max = 20s;
  config.consumer.default_job = "d";
  ConsumerOptions options = ConsumerOptionsFromConfig(config);
  EXPECT_EQ(options.workers, 3);
  EXPECT_EQ(options.batch_size, 5);
  EXPECT_EQ(options.wait_time, 7s);
  EXPECT_EQ(options.visibility_timeout, 45s);
  EXPECT_EQ(options.shutdown_grace, 9s);
  EXPECT_EQ(options.retry.base, 2s);
  EXPECT_EQ(options.retry.max, 20s);
  EXPECT_EQ(options.default_job, "d");
  EXPECT_EQ(options.max_receive_count, 4);
  EXPECT_EQ(options.pollers, 1);
  EXPECT_TRUE(options.receive_per_worker);  // the memory backend's receives cost nothing
  EXPECT_TRUE(options.abort_receives_on_stop);  // and nothing is ever in transit
  config.queue.backend = "sqs";
  config.consumer.pollers = 3;
  EXPECT_EQ(ConsumerOptionsFromConfig(config).max_receive_count, 0);
  EXPECT_EQ(ConsumerOptionsFromConfig(config).pollers, 3);
  EXPECT_FALSE(ConsumerOptionsFromConfig(config).receive_per_worker);
  EXPECT_FALSE(ConsumerOptionsFromConfig(config).abort_receives_on_stop);
}

}  // namespace
}  // namespace taskpipe
