#include "producer/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/time_format.h"
#include "producer/envelope.h"
#include "queue/in_memory_queue.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/faulty_queue.h"

namespace taskpipe {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::system_clock;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

system_clock::time_point At(std::string_view text) { return *ParseRfc3339(text); }

JobConfig MakeJob(std::string name, std::string schedule, bool catch_up = false) {
  JobConfig job;
  job.name = std::move(name);
  job.schedule = std::move(schedule);
  job.catch_up = catch_up;
  job.tasks = {json{{"job", job.name}}};
  return job;
}

SchedulerOptions WithState(std::string state_file) {
  SchedulerOptions options;
  options.state_file = std::move(state_file);
  return options;
}

// "job@scheduled_at" for each message fired, in order; checks lateness on the way.
struct Fired {
  std::string job;
  std::string scheduled_at;
  system_clock::duration lateness;
};

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : SchedulerTest(At("2026-01-01T00:00:00Z")) {}
  explicit SchedulerTest(system_clock::time_point start)
      : clock_(std::make_unique<FakeClock>(start)),
        memory_(std::move(*NewInMemoryQueue({}, *clock_))),
        queue_(std::make_unique<FaultyQueue>(*memory_)) {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::temp_directory_path() /
           ("taskpipe_scheduler_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(dir_);
    logger_ = NewLogger("scheduler", {.level = spdlog::level::debug, .format = LogFormat::kText}, nullptr,
                        std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
  }
  ~SchedulerTest() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Simulates a restart of the producer process at wall time `t`: a new clock and queue.
  void RestartAt(system_clock::time_point t) {
    queue_.reset();
    memory_.reset();
    clock_ = std::make_unique<FakeClock>(t);
    memory_ = std::move(*NewInMemoryQueue({}, *clock_));
    queue_ = std::make_unique<FaultyQueue>(*memory_);
  }

  std::unique_ptr<Scheduler> Make(std::vector<JobConfig> jobs, SchedulerOptions options = {}) {
    options.producer.backoff_base = milliseconds(0);
    options.producer.backoff_max = milliseconds(0);
    StatusOr<std::unique_ptr<Scheduler>> scheduler =
        Scheduler::Create(std::move(jobs), *queue_, *clock_, logger_, std::move(options));
    EXPECT_TRUE(scheduler.ok()) << scheduler.status().ToString();
    return scheduler.ok() ? std::move(*scheduler) : nullptr;
  }

  std::vector<Fired> FiredSoFar() {
    std::vector<Fired> out;
    StatusOr<std::vector<ReceivedMessage>> queued = PeekInMemoryQueue(*memory_);
    EXPECT_TRUE(queued.ok()) << queued.status().ToString();
    if (!queued.ok()) return out;
    for (const ReceivedMessage& m : *queued) {
      StatusOr<Envelope> envelope = DecodeEnvelope(m.body);
      EXPECT_TRUE(envelope.ok()) << envelope.status().ToString();
      if (!envelope.ok()) continue;
      out.push_back({envelope->job, FormatRfc3339Utc(envelope->scheduled_at),
                     envelope->fired_at - envelope->scheduled_at});
    }
    return out;
  }
  std::vector<std::string> FiredNames() {
    std::vector<std::string> out;
    for (const Fired& f : FiredSoFar()) out.push_back(f.job + "@" + f.scheduled_at);
    return out;
  }

  std::string StateFile() const { return (dir_ / "state.json").string(); }
  void WriteFile(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  std::string Log() {
    logger_->flush();
    return log_.str();
  }

  std::unique_ptr<FakeClock> clock_;
  std::unique_ptr<Queue> memory_;
  std::unique_ptr<FaultyQueue> queue_;
  std::filesystem::path dir_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> logger_;
};

TEST_F(SchedulerTest, FiresRateAndCronJobsAtTheirInstants) {
  auto scheduler = Make({MakeJob("rate5", "rate(5 minutes)"), MakeJob("cron7", "cron(0/7 * * * ? *)"),
                         MakeJob("on-demand", "")});
  ASSERT_NE(scheduler, nullptr);
  // Turn the crank as Run() would: fire what is due, then jump to the next instant.
  for (int turn = 0; turn < 20; ++turn) {
    const std::optional<system_clock::time_point> next = scheduler->FireDue();
    ASSERT_TRUE(next.has_value());
    if (*next >= At("2026-01-01T00:30:00Z")) break;
    clock_->Advance(*next - clock_->WallNow());
  }
  EXPECT_THAT(
      FiredNames(),
      ElementsAre("rate5@2026-01-01T00:00:00Z", "cron7@2026-01-01T00:00:00Z", "rate5@2026-01-01T00:05:00Z",
                  "cron7@2026-01-01T00:07:00Z", "rate5@2026-01-01T00:10:00Z", "cron7@2026-01-01T00:14:00Z",
                  "rate5@2026-01-01T00:15:00Z", "rate5@2026-01-01T00:20:00Z", "cron7@2026-01-01T00:21:00Z",
                  "rate5@2026-01-01T00:25:00Z", "cron7@2026-01-01T00:28:00Z"));
  for (const Fired& f : FiredSoFar()) EXPECT_EQ(f.lateness, system_clock::duration::zero()) << f.scheduled_at;
  EXPECT_THAT(
      Log(),
      HasSubstr("fired job cron7 scheduled at 2026-01-01T00:28:00Z (lateness 0.000s): sent 1, failed 0"));
}

TEST_F(SchedulerTest, RunFiresOnTheFakeClockAndStops) {
  auto scheduler =
      Make({MakeJob("every-minute", "rate(1 minute)"), MakeJob("every-2", "cron(0/2 * * * ? *)")});
  ASSERT_NE(scheduler, nullptr);
  std::thread run([&] { scheduler->Run(); });
  queue_->WaitForSendBatchCalls(2);  // both fire at start-up (00:00)
  clock_->BlockUntilWaiters(1);
  clock_->Advance(seconds(30));  // not due yet: the thread is not even woken
  EXPECT_EQ(queue_->send_batch_calls(), 2);
  clock_->Advance(seconds(30));  // 00:01
  queue_->WaitForSendBatchCalls(3);
  clock_->BlockUntilWaiters(1);
  clock_->Advance(seconds(60));  // 00:02
  queue_->WaitForSendBatchCalls(5);
  clock_->BlockUntilWaiters(1);
  scheduler->Stop();
  run.join();
  EXPECT_THAT(FiredNames(), ElementsAre("every-minute@2026-01-01T00:00:00Z", "every-2@2026-01-01T00:00:00Z",
                                        "every-minute@2026-01-01T00:01:00Z",
                                        "every-minute@2026-01-01T00:02:00Z", "every-2@2026-01-01T00:02:00Z"));
  for (const Fired& f : FiredSoFar()) EXPECT_EQ(f.lateness, system_clock::duration::zero());
}

TEST_F(SchedulerTest, WaitsAreCappedSoAWallClockStepIsNoticed) {
  RestartAt(At("2026-01-01T00:00:30Z"));
  auto scheduler = Make({MakeJob("hourly", "cron(0 * * * ? *)")});
  ASSERT_NE(scheduler, nullptr);
  std::thread run([&] { scheduler->Run(); });
  clock_->BlockUntilWaiters(1);
  // NTP steps the wall clock forward to just before the hour; the steady clock does not move.
  clock_->SetWallTime(At("2026-01-01T00:59:50Z"));
  clock_->Advance(seconds(60));  // the capped wait ends; the scheduler sees the new wall time
  queue_->WaitForSendBatchCalls(1);
  clock_->BlockUntilWaiters(1);
  scheduler->Stop();
  run.join();
  const std::vector<Fired> fired = FiredSoFar();
  ASSERT_THAT(fired, SizeIs(1));
  EXPECT_EQ(fired[0].scheduled_at, "2026-01-01T01:00:00Z");
  EXPECT_EQ(fired[0].lateness, seconds(50));
}

TEST_F(SchedulerTest, StopReturnsPromptly) {
  auto scheduler = Make({MakeJob("yearly", "cron(0 0 1 1 ? *)"), MakeJob("later", "rate(7 days)")});
  ASSERT_NE(scheduler, nullptr);
  std::thread run([&] { scheduler->Run(); });
  queue_->WaitForSendBatchCalls(2);  // both fire at 2026-01-01T00:00:00Z
  clock_->BlockUntilWaiters(1);
  scheduler->Stop();
  run.join();  // the clock never moved
  EXPECT_THAT(FiredSoFar(), SizeIs(2));

  // Stopped before Run(): returns at once, firing nothing.
  RestartAt(At("2026-01-01T00:00:00Z"));
  auto stopped = Make({MakeJob("yearly", "cron(0 0 1 1 ? *)")});
  stopped->Stop();
  stopped->Run();
  EXPECT_THAT(FiredSoFar(), IsEmpty());
}

TEST_F(SchedulerTest, NoScheduledJobsStillWaitsForStop) {
  auto scheduler = Make({MakeJob("manual", "")});
  std::thread run([&] { scheduler->Run(); });
  clock_->BlockUntilWaiters(1);
  clock_->Advance(minutes(1));
  clock_->BlockUntilWaiters(1);
  scheduler->Stop();
  run.join();
  EXPECT_EQ(queue_->send_batch_calls(), 0);
}

TEST_F(SchedulerTest, StopInterruptsAProducerBackoff) {
  queue_->FailNextSendBatchCalls(100, UnavailableError("503"));
  SchedulerOptions options;
  options.producer.backoff_base = std::chrono::hours(1);
  options.producer.backoff_max = std::chrono::hours(1);
  auto scheduler_or = Scheduler::Create({MakeJob("j", "rate(1 minute)")}, *queue_, *clock_, logger_, options);
  ASSERT_TRUE(scheduler_or.ok());
  std::unique_ptr<Scheduler> scheduler = std::move(*scheduler_or);
  std::thread run([&] { scheduler->Run(); });
  queue_->WaitForSendBatchCalls(1);
  clock_->BlockUntilWaiters(1);  // the producer's back-off
  scheduler->Stop();
  run.join();
  EXPECT_EQ(queue_->send_batch_calls(), 1);
  EXPECT_THAT(Log(), HasSubstr("producer stopped while retrying"));
}

TEST_F(SchedulerTest, MissedFiresAreNotReplayedWithoutCatchUp) {
  const SchedulerOptions options = WithState(StateFile());
  auto first = Make({MakeJob("hourly", "cron(0 * * * ? *)")}, options);
  first->FireDue();
  EXPECT_THAT(FiredNames(), ElementsAre("hourly@2026-01-01T00:00:00Z"));
  first.reset();

  RestartAt(At("2026-01-01T03:30:00Z"));  // down from 00:00:00 to 03:30
  auto second = Make({MakeJob("hourly", "cron(0 * * * ? *)")}, options);
  EXPECT_EQ(second->FireDue(), At("2026-01-01T04:00:00Z"));
  EXPECT_THAT(FiredNames(), IsEmpty());
}

TEST_F(SchedulerTest, CatchUpReplaysExactlyTheMostRecentMissedFire) {
  const SchedulerOptions options = WithState(StateFile());
  const std::vector<JobConfig> jobs = {MakeJob("hourly", "cron(0 * * * ? *)", /*catch_up=*/true),
                                       MakeJob("no-catch-up", "cron(30 * * * ? *)")};
  auto first = Make(jobs, options);
  first->FireDue();
  clock_->Advance(minutes(30));
  first->FireDue();
  EXPECT_THAT(FiredNames(), ElementsAre("hourly@2026-01-01T00:00:00Z", "no-catch-up@2026-01-01T00:30:00Z"));
  const json state = json::parse(ReadFile(StateFile()));
  EXPECT_EQ(state["version"], 1);
  EXPECT_EQ(state["last_fired"]["hourly"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(state["last_fired"]["no-catch-up"], "2026-01-01T00:30:00.000Z");
  first.reset();

  RestartAt(At("2026-01-01T03:45:10Z"));  // missed 01:00, 02:00, 03:00 (and 01:30, 02:30, 03:30)
  auto second = Make(jobs, options);
  EXPECT_EQ(second->FireDue(), At("2026-01-01T04:00:00Z"));
  const std::vector<Fired> fired = FiredSoFar();
  ASSERT_THAT(fired, SizeIs(1));
  EXPECT_EQ(fired[0].job, "hourly");
  EXPECT_EQ(fired[0].scheduled_at, "2026-01-01T03:00:00Z");
  EXPECT_THAT(Log(), HasSubstr("job hourly: catching up the fire missed at 2026-01-01T03:00:00Z"));
  EXPECT_EQ(json::parse(ReadFile(StateFile()))["last_fired"]["hourly"], "2026-01-01T03:00:00.000Z");

  // Once only: more cranks at the same time fire nothing; the next regular fire is at 04:00.
  second->FireDue();
  EXPECT_THAT(FiredSoFar(), SizeIs(1));
  clock_->Advance(At("2026-01-01T04:00:00Z") - clock_->WallNow());
  second->FireDue();
  EXPECT_THAT(FiredNames(), ElementsAre("hourly@2026-01-01T03:00:00Z", "hourly@2026-01-01T04:00:00Z"));

  // A restart with nothing missed replays nothing.
  second.reset();
  RestartAt(At("2026-01-01T04:00:20Z"));
  auto third = Make(jobs, options);
  third->FireDue();
  EXPECT_THAT(FiredSoFar(), IsEmpty());
}

TEST_F(SchedulerTest, CatchUpWithoutStateDoesNothing) {
  RestartAt(At("2026-01-01T03:45:00Z"));
  auto scheduler = Make({MakeJob("hourly", "cron(0 * * * ? *)", /*catch_up=*/true)}, WithState(StateFile()));
  scheduler->FireDue();
  EXPECT_THAT(FiredSoFar(), IsEmpty());
  auto no_file = Make({MakeJob("hourly", "cron(0 * * * ? *)", /*catch_up=*/true)});
  no_file->FireDue();
  EXPECT_THAT(FiredSoFar(), IsEmpty());
}

TEST_F(SchedulerTest, CatchUpAfterALongOutageIsBounded) {
  WriteFile(StateFile(), R"({"version": 1, "last_fired": {"minutely": "2016-01-01T00:00:00Z"}})");
  RestartAt(At("2026-01-01T00:00:30Z"));
  auto scheduler =
      Make({MakeJob("minutely", "cron(* * * * ? *)", /*catch_up=*/true)}, WithState(StateFile()));
  scheduler->FireDue();
  // Ten years of minutes were missed: only the last one, 00:00:00, is replayed; next is 00:01.
  EXPECT_THAT(FiredNames(), ElementsAre("minutely@2026-01-01T00:00:00Z"));
  EXPECT_EQ(scheduler->FireDue(), At("2026-01-01T00:01:00Z"));
}

TEST_F(SchedulerTest, CorruptStateFileIsLoggedAndTreatedAsEmpty) {
  const std::vector<std::string> bad_files = {
      "{not json", "[]", R"({"last_fired": 3})", "",
      R"({"version": 1, "last_fired": {"hourly": "yesterday", "other": 5}})"};
  for (const std::string& content : bad_files) {
    WriteFile(StateFile(), content);
    RestartAt(At("2026-01-01T03:30:00Z"));
    log_.str("");
    auto scheduler =
        Make({MakeJob("hourly", "cron(0 * * * ? *)", /*catch_up=*/true)}, WithState(StateFile()));
    ASSERT_NE(scheduler, nullptr);
    EXPECT_THAT(Log(), HasSubstr("scheduler state file")) << content;
    EXPECT_EQ(scheduler->FireDue(), At("2026-01-01T04:00:00Z"));
    EXPECT_THAT(FiredSoFar(), IsEmpty()) << content;
    // It is rewritten whole at the next fire.
    clock_->Advance(minutes(30));
    scheduler->FireDue();
    EXPECT_EQ(json::parse(ReadFile(StateFile()))["last_fired"]["hourly"], "2026-01-01T04:00:00.000Z");
  }
  // A state "file" that is a folder cannot be read or written: logged, never a crash.
  const std::string folder = (dir_ / "folder").string();
  std::filesystem::create_directories(folder);
  RestartAt(At("2026-01-01T03:30:00Z"));
  log_.str("");
  auto scheduler = Make({MakeJob("hourly", "cron(0 * * * ? *)")}, WithState(folder));
  clock_->Advance(minutes(60));
  scheduler->FireDue();
  EXPECT_THAT(FiredSoFar(), SizeIs(1));
  EXPECT_THAT(Log(), HasSubstr("cannot read scheduler state file"));
  EXPECT_THAT(Log(), HasSubstr("cannot write"));
}

TEST_F(SchedulerTest, RateContinuesTheRecordedGridAfterARestart) {
  WriteFile(StateFile(), R"({"version": 1, "last_fired": {"r": "2026-01-01T00:00:00Z"}})");
  RestartAt(At("2026-01-01T00:07:00Z"));
  auto scheduler = Make({MakeJob("r", "rate(5 minutes)")}, WithState(StateFile()));
  EXPECT_EQ(scheduler->FireDue(), At("2026-01-01T00:10:00Z"));  // not 00:07 (an extra fire) nor 00:12
  EXPECT_THAT(FiredSoFar(), IsEmpty());

  // Without a record, a rate() fires at start-up, as AWS does at creation.
  auto fresh = Make({MakeJob("r", "rate(5 minutes)")});
  EXPECT_EQ(fresh->FireDue(), At("2026-01-01T00:12:00Z"));
  EXPECT_THAT(FiredNames(), ElementsAre("r@2026-01-01T00:07:00Z"));
}

TEST_F(SchedulerTest, SkippedInstantsAreNotReplayedInABurst) {
  auto scheduler = Make({MakeJob("m", "rate(1 minute)")});
  scheduler->FireDue();
  clock_->Advance(minutes(10) + seconds(5));  // e.g. the machine was suspended
  EXPECT_EQ(scheduler->FireDue(), At("2026-01-01T00:11:00Z"));
  EXPECT_THAT(FiredNames(), ElementsAre("m@2026-01-01T00:00:00Z", "m@2026-01-01T00:01:00Z"));
  EXPECT_THAT(Log(), HasSubstr("skipping fires from 2026-01-01T00:02:00Z to 2026-01-01T00:10:05Z"));
}

TEST_F(SchedulerTest, RunOnceFiresAllOrOneJobNow) {
  clock_->Advance(seconds(5) + milliseconds(700));
  auto scheduler = Make({MakeJob("a", "rate(1 hour)"), MakeJob("b", "cron(0 12 * * ? *)"), MakeJob("c", "")});
  ASSERT_TRUE(scheduler->RunOnce().ok());
  EXPECT_THAT(FiredNames(),
              ElementsAre("a@2026-01-01T00:00:05Z", "b@2026-01-01T00:00:05Z", "c@2026-01-01T00:00:05Z"));
  EXPECT_EQ(FiredSoFar()[0].lateness, milliseconds(700));

  ASSERT_TRUE(scheduler->RunOnce("b").ok());
  EXPECT_THAT(FiredNames(), SizeIs(4));
  EXPECT_EQ(FiredNames().back(), "b@2026-01-01T00:00:05Z");

  const Status unknown = scheduler->RunOnce("zzz");
  EXPECT_EQ(unknown.code(), StatusCode::kNotFound);
  EXPECT_EQ(unknown.message(), "unknown job \"zzz\" (known: a, b, c)");
  EXPECT_THAT(FiredNames(), SizeIs(4));
}

TEST_F(SchedulerTest, RunOnceReportsWhatWasNotSent) {
  queue_->FailNextSendBatchCalls(1, PermissionDeniedError("expired token"));
  auto scheduler = Make({MakeJob("a", ""), MakeJob("b", "")});
  const Status status = scheduler->RunOnce();
  EXPECT_EQ(status.code(), StatusCode::kUnknown);
  EXPECT_EQ(status.message(),
            "1 of 2 messages were not sent:\njob \"a\" task 0: PermissionDenied: expired token");
  EXPECT_THAT(Log(), Not(HasSubstr("expired token")));  // returned, not logged
  EXPECT_THAT(FiredNames(), ElementsAre("b@2026-01-01T00:00:00Z"));
}

TEST_F(SchedulerTest, BadScheduleFailsCreate) {
  StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create(
      {MakeJob("ok", "rate(1 minute)"), MakeJob("bad", "rate(5 weeks)")}, *queue_, *clock_, nullptr);
  ASSERT_FALSE(scheduler.ok());
  EXPECT_EQ(scheduler.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(scheduler.status().message(), HasSubstr("job \"bad\": schedule: rate: unit must be"));
}

TEST(LastFireBetweenTest, FindsTheMostRecentFireInBoundedWork) {
  const Schedule minutely = *Schedule::Parse("cron(* * * * ? *)");
  EXPECT_EQ(LastFireBetween(minutely, At("1990-01-01T00:00:00Z"), At("2150-06-01T12:34:56Z")),
            At("2150-06-01T12:34:00Z"));
  EXPECT_EQ(LastFireBetween(minutely, At("2026-01-01T00:00:00Z"), At("2026-01-01T00:01:00Z")), std::nullopt);
  EXPECT_EQ(LastFireBetween(minutely, At("2026-01-01T00:00:00Z"), At("2026-01-01T00:01:00.001Z")),
            At("2026-01-01T00:01:00Z"));
  const Schedule sparse = *Schedule::Parse("cron(0 9 29 2 ? *)");  // Feb 29th only
  EXPECT_EQ(LastFireBetween(sparse, At("2001-01-01T00:00:00Z"), At("2026-01-01T00:00:00Z")),
            At("2024-02-29T09:00:00Z"));
  const Schedule once = *Schedule::Parse("at(2026-01-01T10:00:00)");
  EXPECT_EQ(LastFireBetween(once, At("2026-01-01T00:00:00Z"), At("2026-01-02T00:00:00Z")),
            At("2026-01-01T10:00:00Z"));
  EXPECT_EQ(LastFireBetween(once, At("2026-01-01T10:00:00Z"), At("2026-01-02T00:00:00Z")), std::nullopt);
  ScheduleOptions anchored;
  anchored.created_at = At("2026-01-01T00:00:00Z");
  const Schedule rate = *Schedule::Parse("rate(7 minutes)", anchored);
  EXPECT_EQ(LastFireBetween(rate, At("2026-01-01T00:00:00Z"), At("2026-01-01T01:00:00Z")),
            At("2026-01-01T00:56:00Z"));
}

}  // namespace
}  // namespace taskpipe
