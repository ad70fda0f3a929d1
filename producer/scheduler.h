// Scheduler: the producer daemon (`taskpipe produce`). It fires every job that has a schedule at
// the schedule's instants, through a Producer it owns, and fires jobs on demand (`--once`).
//
// Timing. Each job's Schedule is parsed once, with created_at = the scheduler's start time
// (rounded up to a whole second), so a rate() job fires at start-up and every N after — unless the state file remembers
// the job's last fire, which then anchors the rate so that restarts neither add fires nor push the
// next one back. The thread sleeps until the earliest next fire, with no polling; the wall-clock
// deadline becomes a steady one (Clock::Now() + (next - WallNow())) and is re-evaluated after every
// wake, and no single wait is longer than 60 s so that a step of the wall clock (NTP, a suspended
// machine) is noticed within a minute. Each fire is stamped with its scheduled instant; the
// Producer logs it with its lateness.
//
// Missed fires. Fires missed while no producer ran are not replayed (EventBridge does not either),
// nor are instants that passed while the thread was busy firing or the machine was suspended (a
// warning says so). A job with catch_up: true replays the most recent fire missed since its last
// recorded fire, once, at start-up. The record is SchedulerOptions::state_file, a small JSON file
// {"version": 1, "last_fired": {"<job>": "<RFC 3339>"}} rewritten atomically (temporary file, then
// rename) after each fire; a file that cannot be read or parsed is logged as an error and treated
// as empty.
//
// Thread-safety: Run(), FireDue() and RunOnce() are for one thread at a time; Stop() may be called
// from any thread (a signal-handling one) at any time. `queue` and `clock` must outlive it.
#ifndef TASKPIPE_PRODUCER_SCHEDULER_H_
#define TASKPIPE_PRODUCER_SCHEDULER_H_

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "producer/producer.h"
#include "producer/schedule.h"
#include "queue/queue.h"

namespace taskpipe {

struct SchedulerOptions {
  // Where the last fired instant of each job is kept; "" = nowhere (catch_up then does nothing).
  std::string state_file;
  ProducerOptions producer;
};

class Scheduler {
 public:
  using time_point = std::chrono::system_clock::time_point;

  // Parses the schedule of every job that has one and reads the state file; now is the start
  // time. Fails with kInvalidArgument naming the job for a schedule that does not parse (the
  // config loader normally catches that first). `logger` may be null.
  static StatusOr<std::unique_ptr<Scheduler>> Create(std::vector<JobConfig> jobs, Queue& queue, Clock& clock,
                                                     std::shared_ptr<spdlog::logger> logger,
                                                     SchedulerOptions options = {});

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Fires jobs on their schedules until Stop(), then returns. Logs what goes wrong (failed
  // messages, state file problems); nothing is returned. Runs even with no scheduled jobs (it then
  // just waits for Stop()).
  void Run();

  // One turn of Run()'s crank: fires every job whose next instant is not after WallNow(), each
  // with its scheduled instant, and returns the earliest next fire instant (nullopt: no job will
  // fire again). The first call also replays the missed fires of catch_up jobs. Run() loops this
  // between waits; tests call it directly.
  std::optional<time_point> FireDue();

  // Makes Run() return at once (a wait or a producer back-off in progress is interrupted; a fire
  // in progress sends nothing more). Permanent. Thread-safe.
  void Stop();

  // `produce --once`: fires every job (with or without a schedule) or only `job_name`, now, with
  // scheduled_at = WallNow() truncated to whole seconds. Fails with kNotFound naming the known jobs
  // for an unknown name, or with kUnknown listing every message that was not sent.
  Status RunOnce(std::optional<std::string> job_name = std::nullopt);

  time_point start_time() const { return start_; }

 private:
  struct Job {
    JobConfig config;
    std::optional<Schedule> schedule;  // none: on demand only
    std::optional<time_point> next;    // the next fire instant
  };

  Scheduler(std::vector<Job> jobs, Queue& queue, Clock& clock, std::shared_ptr<spdlog::logger> logger,
            SchedulerOptions options, time_point start, std::map<std::string, time_point> last_fired);

  // Fires `job` for `scheduled_at` and records it in the state file; returns the Producer's result.
  FireResult FireJob(const JobConfig& job, time_point scheduled_at);
  void CatchUp();
  void SaveState();
  bool stopped() const;

  std::vector<Job> jobs_;
  Clock& clock_;
  std::shared_ptr<spdlog::logger> logger_;
  const SchedulerOptions options_;
  const time_point start_;
  Producer producer_;
  std::map<std::string, time_point> last_fired_;  // the state file's content
  bool caught_up_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // GUARDED_BY(mu_)
};

// The most recent fire of `schedule` strictly between `after` and `before`, or nullopt. Bounded
// work whatever the gap (a bisection over Schedule::Next, not a walk). Exposed for tests.
std::optional<std::chrono::system_clock::time_point> LastFireBetween(
    const Schedule& schedule, std::chrono::system_clock::time_point after,
    std::chrono::system_clock::time_point before);

}  // namespace taskpipe

#endif  // TASKPIPE_PRODUCER_SCHEDULER_H_
