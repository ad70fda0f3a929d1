#include "producer/producer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "common/time_format.h"
#include "producer/envelope.h"
#include "queue/in_memory_queue.h"
#include "queue/validate.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/faulty_queue.h"

namespace taskpipe {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::system_clock;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

system_clock::time_point At(std::string_view text) { return *ParseRfc3339(text); }

JobConfig MakeJob(std::string name, int tasks) {
  JobConfig job;
  job.name = std::move(name);
  for (int i = 0; i < tasks; ++i) job.tasks.push_back(json("task-" + std::to_string(i) + "."));
  return job;
}

// Zero back-off: retries happen at once, so retry counting needs no clock advancing.
ProducerOptions NoWait(ProducerOptions options = {}) {
  options.backoff_base = milliseconds(0);
  options.backoff_max = milliseconds(0);
  options.jitter_seed = 1;
  return options;
}

class ProducerTest : public ::testing::Test {
 protected:
  ProducerTest() : memory_(std::move(*NewInMemoryQueue({}, clock_))), queue_(*memory_) {}

  std::vector<ReceivedMessage> Queued() { return *PeekInMemoryQueue(*memory_); }
  std::vector<Envelope> QueuedEnvelopes() {
    std::vector<Envelope> out;
    for (const ReceivedMessage& m : Queued()) {
      StatusOr<Envelope> envelope = DecodeEnvelope(m.body);
      EXPECT_TRUE(envelope.ok()) << envelope.status().ToString();
      if (envelope.ok()) out.push_back(*envelope);
    }
    return out;
  }

  FakeClock clock_;
  std::unique_ptr<Queue> memory_;
  FaultyQueue queue_;
};

TEST_F(ProducerTest, TwentyFiveTasksGoInThreeBatchesWithDistinctIds) {
  Producer producer(queue_, clock_, NullLogger(), NoWait());
  const JobConfig job = MakeJob("report", 25);
  const FireResult result = producer.Fire(job, At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(result.sent, 25);
  EXPECT_EQ(result.failed, 0);
  EXPECT_THAT(result.errors, IsEmpty());

  const std::vector<FaultyQueue::Call> calls = queue_.calls();
  ASSERT_THAT(calls, SizeIs(3));
  EXPECT_THAT(calls[0].ids, SizeIs(10));
  EXPECT_THAT(calls[1].ids, SizeIs(10));
  EXPECT_THAT(calls[2].ids, SizeIs(5));
  std::set<std::string> all_ids;
  for (const auto& call : calls) {
    EXPECT_EQ(std::set<std::string>(call.ids.begin(), call.ids.end()).size(), call.ids.size());
    all_ids.insert(call.ids.begin(), call.ids.end());
    EXPECT_TRUE(ValidateBatchEntryIds(call.ids).ok());
  }
  EXPECT_EQ(all_ids.size(), 25u);

  const std::vector<ReceivedMessage> queued = Queued();
  ASSERT_THAT(queued, SizeIs(25));
  std::set<std::string> tasks;
  for (const ReceivedMessage& m : queued) {
    StatusOr<Envelope> envelope = DecodeEnvelope(m.body);
    ASSERT_TRUE(envelope.ok()) << m.body;
    EXPECT_EQ(envelope->job, "report");
    EXPECT_EQ(envelope->scheduled_at, At("2026-01-01T00:00:00Z"));
    EXPECT_EQ(envelope->fired_at, clock_.WallNow());
    tasks.insert(envelope->task.get<std::string>());
    ASSERT_EQ(m.attributes.count("taskpipe-job"), 1u);
    EXPECT_EQ(m.attributes.at("taskpipe-job"), (MessageAttribute{"String", "report", ""}));
    EXPECT_EQ(m.group_id, "");
    EXPECT_EQ(m.deduplication_id, "");
  }
  EXPECT_EQ(tasks.size(), 25u);
}

TEST_F(ProducerTest, BatchesStayUnderOneMebibyte) {
  JobConfig job = MakeJob("big", 0);
  for (int i = 0; i < 5; ++i) job.tasks.push_back(json(std::string(400 * 1024, static_cast<char>('a' + i))));
  Producer producer(queue_, clock_, NullLogger(), NoWait());
  const FireResult result = producer.Fire(job, At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(result.sent, 5);
  EXPECT_EQ(result.failed, 0);
  const std::vector<FaultyQueue::Call> calls = queue_.calls();
  ASSERT_THAT(calls, SizeIs(3));  // 2 + 2 + 1: three 400 KiB messages would exceed 1 MiB
  for (const auto& call : calls) EXPECT_LE(call.total_size, kMaxMessageBytes);
  EXPECT_THAT(calls[0].ids, SizeIs(2));
  EXPECT_THAT(calls[1].ids, SizeIs(2));
  EXPECT_THAT(calls[2].ids, SizeIs(1));
  EXPECT_THAT(Queued(), SizeIs(5));
}

TEST_F(ProducerTest, OversizedTaskIsReportedAndTheOthersGo) {
  JobConfig job = MakeJob("mixed", 0);
  job.tasks = {json("small"), json{{"blob", std::string(kMaxMessageBytes, 'x')}}, json("also small")};
  Producer producer(queue_, clock_, NullLogger(), NoWait());
  const FireResult result = producer.Fire(job, At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(result.sent, 2);
  EXPECT_EQ(result.failed, 1);
  ASSERT_THAT(result.errors, SizeIs(1));
  EXPECT_THAT(result.errors[0],
              AllOf(StartsWith("job \"mixed\" task 1: "), HasSubstr(" bytes (body and attributes)"),
                    HasSubstr("limit is 1048576 bytes: not sent")));
  EXPECT_EQ(queue_.entries_attempted(), 2);
  const std::vector<Envelope> queued = QueuedEnvelopes();
  ASSERT_THAT(queued, SizeIs(2));
  EXPECT_EQ(queued[0].task, json("small"));
  EXPECT_EQ(queued[1].task, json("also small"));
}

TEST_F(ProducerTest, OnlyFailedEntriesAreRetried) {
  queue_.FailEntries("task-3.", 1, UnavailableError("InternalError"), /*sender_fault=*/false);
  queue_.FailEntries("task-11.", 2, ResourceExhaustedError("throttled"), /*sender_fault=*/false);
  Producer producer(queue_, clock_, NullLogger(), NoWait());
  const FireResult result = producer.Fire(MakeJob("j", 12), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(result.sent, 12);
  EXPECT_EQ(result.failed, 0);
  const std::vector<FaultyQueue::Call> calls = queue_.calls();
  ASSERT_THAT(calls, SizeIs(4));  // 10 + 2, then tasks 3 and 11, then task 11 again
  EXPECT_THAT(calls[0].ids, SizeIs(10));
  EXPECT_THAT(calls[1].ids, SizeIs(2));
  ASSERT_THAT(calls[2].bodies, SizeIs(2));
  EXPECT_THAT(calls[2].bodies[0], HasSubstr("task-3."));
  EXPECT_THAT(calls[2].bodies[1], HasSubstr("task-11."));
  ASSERT_THAT(calls[3].bodies, SizeIs(1));
  EXPECT_THAT(calls[3].bodies[0], HasSubstr("task-11."));
  EXPECT_EQ(queue_.entries_attempted(), 15);
  EXPECT_THAT(Queued(), SizeIs(12));  // no duplicates
}

TEST_F(ProducerTest, NonRetryableEntryIsNotRetried) {
  queue_.FailEntries("task-2.", 5, InvalidArgumentError("bad", "InvalidParameterValue"),
                     /*sender_fault=*/true);
  Producer producer(queue_, clock_, NullLogger(), NoWait());
  const FireResult result = producer.Fire(MakeJob("j", 4), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(result.sent, 3);
  EXPECT_EQ(result.failed, 1);
  EXPECT_THAT(result.errors, ElementsAre("job \"j\" task 2: InvalidArgument: InvalidParameterValue: bad"));
  EXPECT_EQ(queue_.send_batch_calls(), 1);
  EXPECT_EQ(queue_.entries_attempted(), 4);
}

TEST_F(ProducerTest, NonRetryableCallErrorIsNotRetried) {
  queue_.FailNextSendBatchCalls(1, PermissionDeniedError("signature does not match"));
  Producer producer(queue_, clock_, NullLogger(), NoWait());
  const FireResult result = producer.Fire(MakeJob("j", 3), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(result.sent, 0);
  EXPECT_EQ(result.failed, 3);
  EXPECT_THAT(result.errors[0], HasSubstr("PermissionDenied: signature does not match"));
  EXPECT_EQ(queue_.send_batch_calls(), 1);
}

TEST_F(ProducerTest, RetryableEntryGivesUpAfterMaxAttempts) {
  queue_.FailEntries("task-1.", 100, UnavailableError("InternalError"), /*sender_fault=*/false);
  ProducerOptions options = NoWait();
  options.max_attempts = 3;
  Producer producer(queue_, clock_, NullLogger(), options);
  const FireResult result = producer.Fire(MakeJob("j", 2), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(result.sent, 1);
  EXPECT_EQ(result.failed, 1);
  EXPECT_THAT(result.errors,
              ElementsAre("job \"j\" task 1: Unavailable: gave up after 3 attempts: InternalError"));
  EXPECT_EQ(queue_.send_batch_calls(), 3);
  EXPECT_EQ(queue_.entries_attempted(), 4);
}

TEST_F(ProducerTest, WholeCallErrorIsRetriedWithBackoffOnTheClock) {
  queue_.FailNextSendBatchCalls(2, UnavailableError("503 Service Unavailable"));
  ProducerOptions options;
  options.backoff_base = seconds(1);
  options.backoff_max = seconds(4);
  options.jitter_seed = 7;
  Producer producer(queue_, clock_, NullLogger(), options);
  FireResult result;
  std::thread fire([&] { result = producer.Fire(MakeJob("j", 3), At("2026-01-01T00:00:00Z")); });

  // First back-off: within [0.5 s, 1 s].
  clock_.BlockUntilWaiters(1);
  EXPECT_EQ(queue_.send_batch_calls(), 1);
  clock_.Advance(milliseconds(499));
  EXPECT_EQ(queue_.send_batch_calls(), 1);  // not woken: its deadline is later
  clock_.Advance(milliseconds(501));
  queue_.WaitForSendBatchCalls(2);

  // Second back-off: within [1 s, 2 s].
  clock_.BlockUntilWaiters(1);
  clock_.Advance(milliseconds(999));
  EXPECT_EQ(queue_.send_batch_calls(), 2);
  clock_.Advance(milliseconds(1001));
  fire.join();

  EXPECT_EQ(queue_.send_batch_calls(), 3);
  EXPECT_EQ(result.sent, 3);
  EXPECT_EQ(result.failed, 0);
  EXPECT_THAT(Queued(), SizeIs(3));
}

TEST_F(ProducerTest, WholeCallErrorGivesUpAfterMaxAttempts) {
  queue_.FailNextSendBatchCalls(100, ResourceExhaustedError("throttled", "RequestThrottled"));
  ProducerOptions options;
  options.max_attempts = 3;
  options.backoff_base = seconds(1);
  options.backoff_max = seconds(1);
  options.jitter_seed = 7;
  Producer producer(queue_, clock_, NullLogger(), options);
  FireResult result;
  std::thread fire([&] { result = producer.Fire(MakeJob("j", 2), At("2026-01-01T00:00:00Z")); });
  for (int call = 1; call <= 2; ++call) {
    queue_.WaitForSendBatchCalls(call);
    clock_.BlockUntilWaiters(1);
    clock_.Advance(seconds(1));
  }
  fire.join();
  EXPECT_EQ(queue_.send_batch_calls(), 3);
  EXPECT_EQ(result.sent, 0);
  EXPECT_EQ(result.failed, 2);
  EXPECT_THAT(result.errors[0],
              HasSubstr("ResourceExhausted: RequestThrottled: gave up after 3 attempts: throttled"));
}

TEST_F(ProducerTest, StopInterruptsBackoffAtOnce) {
  queue_.FailNextSendBatchCalls(1, UnavailableError("503"));
  ProducerOptions options;
  options.backoff_base = std::chrono::hours(1);
  options.backoff_max = std::chrono::hours(1);
  Producer producer(queue_, clock_, NullLogger(), options);
  FireResult result;
  std::thread fire([&] { result = producer.Fire(MakeJob("j", 2), At("2026-01-01T00:00:00Z")); });
  clock_.BlockUntilWaiters(1);
  producer.Stop();
  fire.join();  // the clock never moved
  EXPECT_TRUE(producer.stopped());
  EXPECT_EQ(result.sent, 0);
  EXPECT_EQ(result.failed, 2);
  EXPECT_THAT(result.errors[0],
              HasSubstr("Cancelled: producer stopped while retrying; last error: Unavailable: 503"));

  // Stopped for good: nothing more is sent.
  const FireResult after = producer.Fire(MakeJob("j", 1), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(after.failed, 1);
  EXPECT_THAT(after.errors[0], HasSubstr("Cancelled: producer stopped before the message was sent"));
  EXPECT_EQ(producer.SendBody("x").code(), StatusCode::kCancelled);
  EXPECT_EQ(queue_.send_batch_calls(), 1);
}

TEST_F(ProducerTest, FifoIdsAreTheSameAcrossReplicas) {
  ProducerOptions options = NoWait();
  options.fifo = true;
  Producer replica_a(queue_, clock_, NullLogger(), options);
  Producer replica_b(queue_, clock_, NullLogger(), options);
  const JobConfig job = MakeJob("nightly.sync", 3);
  const system_clock::time_point instant = At("2026-03-08T07:00:00Z");
  EXPECT_EQ(replica_a.Fire(job, instant).sent, 3);
  clock_.Advance(milliseconds(350));  // the other replica fires a little later
  EXPECT_EQ(replica_b.Fire(job, instant).sent, 3);
  EXPECT_EQ(replica_a.Fire(job, instant + std::chrono::minutes(1)).sent, 3);

  const std::vector<ReceivedMessage> queued = Queued();
  ASSERT_THAT(queued, SizeIs(9));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(queued[i].deduplication_id, "nightly.sync:1772953200:" + std::to_string(i));
    EXPECT_EQ(queued[i].deduplication_id, queued[i + 3].deduplication_id);
    EXPECT_NE(queued[i].deduplication_id, queued[i + 6].deduplication_id);
    EXPECT_EQ(queued[i].group_id, "nightly.sync");
    EXPECT_EQ(queued[i + 3].group_id, "nightly.sync");
  }
  std::set<std::string> distinct;
  for (const ReceivedMessage& m : queued) distinct.insert(m.deduplication_id);
  EXPECT_EQ(distinct.size(), 6u);

  EXPECT_EQ(FifoDeduplicationId(std::string(80, 'j'), At("2199-12-31T23:59:59Z"), 999999).size(),
            80u + 1 + 10 + 1 + 6);
}

TEST_F(ProducerTest, FifoGroupIdFromTheJob) {
  ProducerOptions options = NoWait();
  options.fifo = true;
  Producer producer(queue_, clock_, NullLogger(), options);
  JobConfig job = MakeJob("j", 1);
  job.message_group_id = "tenant-42";
  EXPECT_EQ(producer.Fire(job, At("2026-01-01T00:00:00Z")).sent, 1);
  ASSERT_THAT(Queued(), SizeIs(1));
  EXPECT_EQ(Queued()[0].group_id, "tenant-42");
  EXPECT_EQ(Queued()[0].deduplication_id, "j:1767225600:0");
}

TEST_F(ProducerTest, SendBodySendsTheTextAsIs) {
  Producer producer(queue_, clock_, NullLogger(), NoWait());
  ASSERT_TRUE(producer.SendBody("plain text, not an envelope").ok());
  const std::vector<ReceivedMessage> queued = Queued();
  ASSERT_THAT(queued, SizeIs(1));
  EXPECT_EQ(queued[0].body, "plain text, not an envelope");
  EXPECT_TRUE(queued[0].attributes.empty());

  const Status empty = producer.SendBody("");
  EXPECT_EQ(empty.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(producer.SendBody(std::string(kMaxMessageBytes + 1, 'x')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(queue_.send_batch_calls(), 1);
}

TEST_F(ProducerTest, SendBodyRetries) {
  queue_.FailEntries("hello", 2, UnavailableError("InternalError"), /*sender_fault=*/false);
  Producer producer(queue_, clock_, NullLogger(), NoWait());
  EXPECT_TRUE(producer.SendBody("hello").ok());
  EXPECT_EQ(queue_.send_batch_calls(), 3);

  queue_.FailNextSendBatchCalls(10, UnavailableError("down"));
  const Status status = producer.SendBody("again");
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "gave up after 5 attempts: down");
  EXPECT_EQ(queue_.send_batch_calls(), 8);
}

TEST_F(ProducerTest, SendBodyOnFifoQueueKeepsItsDeduplicationIdAcrossRetries) {
  queue_.FailEntries("hello", 1, UnavailableError("InternalError"), /*sender_fault=*/false);
  ProducerOptions options = NoWait();
  options.fifo = true;
  Producer producer(queue_, clock_, NullLogger(), options);
  ASSERT_TRUE(producer.SendBody("hello").ok());
  ASSERT_TRUE(producer.SendBody("hello").ok());
  const std::vector<FaultyQueue::Call> calls = queue_.calls();
  ASSERT_THAT(calls, SizeIs(3));
  EXPECT_EQ(calls[0].messages[0].deduplication_id, calls[1].messages[0].deduplication_id);
  EXPECT_NE(calls[1].messages[0].deduplication_id, calls[2].messages[0].deduplication_id);
  EXPECT_EQ(calls[0].messages[0].deduplication_id.size(), 32u);
  EXPECT_EQ(calls[0].messages[0].group_id, "taskpipe");
}

TEST_F(ProducerTest, LogsCountsAndLateness) {
  std::ostringstream out;
  auto logger = NewLogger("producer", {}, nullptr, std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  queue_.FailEntries("task-1.", 1, InvalidArgumentError("bad"), /*sender_fault=*/true);
  Producer producer(queue_, clock_, logger, NoWait());
  clock_.Advance(milliseconds(2500));
  const FireResult result = producer.Fire(MakeJob("j", 3), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(result.failed, 1);
  logger->flush();
  EXPECT_THAT(out.str(),
              HasSubstr("fired job j scheduled at 2026-01-01T00:00:00Z (lateness 2.500s): sent 2, failed 1"));
  EXPECT_THAT(out.str(), HasSubstr("error"));
  EXPECT_THAT(out.str(), ::testing::Not(HasSubstr("bad")));  // the errors are returned, not logged
}

}  // namespace
}  // namespace taskpipe
