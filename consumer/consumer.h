// Consumer: the worker pool that long-polls a Queue, runs each message's handler, and deletes the
// message on success or hides it for a growing back-off on failure.
//
// Threads (Start()): `pollers` poller threads, `workers` worker threads and one maintenance thread
// (no pollers with `receive_per_worker`: then each worker receives for itself).
//  - Backpressure. Concurrency is `workers`, independent of `batch_size`. A poller asks the queue
//    only for as many messages as there are free workers (min(batch_size, free)); pollers share one
//    count of reserved slots, so no message sits fetched but unstarted while its visibility runs
//    down. A poller with no free worker waits (on a condition variable) until one frees up.
//  - Visibility. Messages are received with VisibilityTimeout = `visibility_timeout`, so the
//    consumer knows each deadline: it takes the time just *before* ReceiveMessage, which makes its
//    estimate early, never late. While a message is held, the maintenance thread extends it once
//    at most a third of `visibility_timeout` is left, setting it to `visibility_timeout` again
//    (ChangeMessageVisibilityBatch, <= 10 entries a call; messages due within the next sixth of the
//    timeout join the same call). Extensions stop 12 h after the receive (SQS's cap): the message
//    may then be delivered again, which is logged. A failed extension is retried after
//    visibility_timeout / 10 (0.1 s..5 s) unless the receipt handle is no longer valid
//    (ReceiptHandleIsInvalid, MessageNotInflight): then it is logged at warn (the task may now run
//    twice) and counted in extend_errors.
//  - Outcome. Success -> DeleteMessageBatch; entries are collected and sent when 10 are pending (by
//    the worker that adds the tenth) or `delete_flush_interval` after the oldest was added (by the
//    maintenance thread). Failure, timeout, or a body that cannot be handled -> the message's
//    visibility is set to RetryVisibility(receive_count, retry, jitter) (consumer/retry_policy.h),
//    batched the same way; after the queue's maxReceiveCount its redrive policy moves the message
//    to the dead-letter queue. Failed entries are retried up to 5 times (whole-call errors for
//    which IsRetryable() holds and entries with sender_fault = false), 0.1 s, 0.2 s, ... apart;
//    anything else is logged: the message will be delivered again.
//  - Timeouts. Each job has a timeout: HandlerTask::deadline = start + timeout, and the handler
//    stops its own work by then. A handler still running `timeout_grace` after its deadline has
//    its stop_token requested by the consumer, and its result is reported as a timeout.
//  - Bad bodies. A body that is not a taskpipe envelope (producer/envelope.h), or an envelope that
//    names a job the consumer does not know, goes to the job `default_job` when it is set, with the
//    task being the body itself: the JSON object when the body is one, else the body as a JSON
//    string. Without a default job it is reported as TaskStatus::kInvalid and backs off like a
//    failure, so it ends in the dead-letter queue. It never stops the consumer.
//  - Receive errors. A poller logs each failed ReceiveMessage at warn (error for failures that
//    IsRetryable() says will not go away, such as bad credentials) with the count of consecutive
//    failures, then waits Backoff(failures, receive_backoff_base, receive_backoff_max, jitter)
//    and tries again; it leaves its loop only when the consumer stops.
//  - Summary. Every `summary_interval` the maintenance thread logs one info line with the counters
//    of stats() (also when idle: it is the consumer's proof of life).
//
// Shutdown (the app calls Stop() on the first SIGINT/SIGTERM and StopNow() on the second; this
// class installs no signal handlers):
//  - Stop(): no new receive starts. A receive in progress is let finish (a long poll ends within
//    `wait_time`), within `shutdown_grace`, and what it got is released: cutting an SQS reply off
//    mid-transfer would strand its messages until their visibility timeout. With
//    `abort_receives_on_stop` (the in-memory queue, where nothing is ever in transit) Stop() calls
//    queue.Shutdown() at once instead; otherwise it calls it once the receives are done or the
//    grace is over (when `shutdown_queue_on_stop`, the default; in local mode stop the producer
//    first). Messages received but not started are released at once (visibility 0), so another
//    consumer can take them now. Running handlers get `shutdown_grace` to finish; after that their
//    stop_tokens are requested (an exec child is killed) and, when they return, their messages are
//    released too (reported as kFailure, "interrupted by shutdown", will_retry = true). Pending
//    deletes and visibility changes are flushed, every thread is joined. Messages stay extended
//    while their handlers run, including after the grace; a handler that ignores its stop_token
//    therefore blocks Stop() (the app's second signal exits the process).
//  - StopNow(): does what Stop() does up to the grace at once, without waiting: stops polling and
//    requests every running handler's stop_token, then returns. It does not join; a Stop() blocked
//    in another thread stops waiting for the grace, and Stop() or the destructor finish the rest.
//
// Thread-safety: Start() once, not concurrently with Stop(). Stop(), StopNow() and stats() may be
// called from any thread at any time, concurrently (a second Stop() waits for the first). PollOnce()
// is for tests and single-threaded use: one caller at a time, never after Start(). on_result runs
// on the worker thread that ran the handler (in PollOnce(), on the caller's thread), after the
// message's delete or visibility change is queued, never with a lock held; it must be thread-safe
// and should be quick (the notifiers queue and return).
// `queue`, `clock` and every ConsumerJob::handler must outlive the Consumer.
#ifndef TASKPIPE_CONSUMER_CONSUMER_H_
#define TASKPIPE_CONSUMER_CONSUMER_H_

#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/task_result.h"
#include "config/config.h"
#include "consumer/handler.h"
#include "queue/message.h"
#include "queue/queue.h"

namespace taskpipe {

// A job the consumer can run.
struct ConsumerJob {
  Handler* handler = nullptr;            // not owned; must outlive the Consumer
  std::chrono::seconds timeout{10 * 60};  // the job's handler.timeout
};

struct ConsumerOptions {
  int workers = 8;                                 // concurrent handlers, >= 1
  int batch_size = 10;                             // most messages one receive asks for, 1..10
  int pollers = 1;                                 // threads calling ReceiveMessage, >= 1
  // Each worker receives its own messages, one at a time, instead of pollers receiving for the
  // workers and handing them over: no hand-off between threads, so the lowest latency, but every
  // idle worker holds a long poll open. That costs nothing on the in-memory queue and one request
  // per idle worker per `wait_time` on SQS, so ConsumerOptionsFromConfig() sets it for the memory
  // backend only. `pollers` and `batch_size` are then unused.
  bool receive_per_worker = false;
  std::chrono::seconds wait_time{20};              // long poll, 0..20 s
  std::chrono::seconds visibility_timeout{30};     // per receive and per extension, 1 s..12 h
  std::chrono::seconds shutdown_grace{30};         // Stop(): how long running handlers may finish
  RetryConfig retry{};                             // back-off of failed messages
  std::string default_job{};                       // job for bodies that are not ours; "" = none
  // The queue's maxReceiveCount, only to fill in TaskResult::will_retry (a failure on the last
  // delivery goes to the dead-letter queue). 0 = unknown or no redrive: failures always retry.
  int max_receive_count = 0;
  std::chrono::milliseconds delete_flush_interval{5};  // longest a delete waits for a batch
  std::chrono::seconds summary_interval{60};           // periodic summary line; 0 = never
  std::chrono::milliseconds receive_backoff_base{100};  // after a failed ReceiveMessage
  std::chrono::milliseconds receive_backoff_max{30'000};
  // How long after its deadline a handler that has not returned gets its stop_token requested.
  std::chrono::seconds timeout_grace{5};
  // Stop() and StopNow() may call queue.Shutdown() to end long polls (see above).
  bool shutdown_queue_on_stop = true;
  // Stop() ends receives in progress at once (queue.Shutdown() before the grace). Only safe when
  // no message can be in transit in a cut-off receive, as with the in-memory queue (whose
  // Shutdown() makes a waiting Receive return without taking anything). When false (SQS: a reply
  // cut off mid-transfer would strand its messages until their visibility timeout), Stop() lets
  // receives in progress return within shutdown_grace and releases what they got, and only then
  // shuts the queue down. ConsumerOptionsFromConfig() sets it for the memory backend.
  bool abort_receives_on_stop = false;
  // Seed of the jitter's generator; 0 = seeded from std::random_device.
  std::uint64_t jitter_seed = 0;
};

// The options a config file asks for (queue.wait_time, queue.visibility_timeout,
// queue.max_receive_count when the backend is "memory", and the consumer section); the rest keep
// their defaults.
ConsumerOptions ConsumerOptionsFromConfig(const Config& config);

// The upper bounds of the buckets of ConsumerStats::handler_duration_buckets (the last bucket,
// one more, counts the runs longer than the last bound).
inline constexpr std::array<std::chrono::milliseconds, 16> kHandlerDurationBounds = {
    std::chrono::milliseconds(5),      std::chrono::milliseconds(10),     std::chrono::milliseconds(25),
    std::chrono::milliseconds(50),     std::chrono::milliseconds(100),    std::chrono::milliseconds(250),
    std::chrono::milliseconds(500),    std::chrono::milliseconds(1000),   std::chrono::milliseconds(2500),
    std::chrono::milliseconds(5000),   std::chrono::milliseconds(10000),  std::chrono::milliseconds(30000),
    std::chrono::milliseconds(60000),  std::chrono::milliseconds(300000), std::chrono::milliseconds(900000),
    std::chrono::milliseconds(3600000)};

// Counters since construction. The TaskStatus of each result counts in exactly one of succeeded,
// failed, timed_out or invalid.
struct ConsumerStats {
  std::int64_t received = 0;        // messages received
  std::int64_t succeeded = 0;       // handler succeeded (the message is deleted)
  std::int64_t failed = 0;          // handler failed, or was interrupted by shutdown
  std::int64_t timed_out = 0;       // handler ran past its timeout
  std::int64_t invalid = 0;         // not an envelope / unknown job, and no default job
  std::int64_t retried = 0;         // failed, timed out or invalid, given a back-off visibility
  // Of those, the ones on their last delivery: the queue's redrive moves them to the dead-letter
  // queue. Known only when max_receive_count is (ConsumerOptions); 0 otherwise.
  std::int64_t dead_lettered = 0;
  std::int64_t released = 0;        // given back with visibility 0 at shutdown (started or not)
  std::int64_t deleted = 0;         // DeleteMessageBatch entries that succeeded
  std::int64_t delete_errors = 0;   // deletes and visibility changes given up on
  std::int64_t extended = 0;        // visibility extensions that succeeded
  std::int64_t extend_errors = 0;   // extensions that failed for good (the task may run twice)
  std::int64_t receive_errors = 0;  // ReceiveMessage calls that failed
  // Receive health: the time of the first of the failed receives since the last one that worked;
  // nullopt while the latest receive worked (or none has ended yet). receive_errors_in_a_row
  // counts them.
  std::optional<Clock::time_point> receive_failing_since{};
  std::int64_t receive_errors_in_a_row = 0;
  int in_flight = 0;                // received and not yet finished (queued, running, reporting)
  int running = 0;                  // handlers running now
  // Handler run time over the most recent (up to 1,024) runs; 0 when none.
  std::chrono::milliseconds handler_p50{0};
  std::chrono::milliseconds handler_p99{0};
  // Every handler run since construction, by duration: handler_duration_buckets[i] counts the runs
  // with kHandlerDurationBounds[i-1] < duration <= kHandlerDurationBounds[i] (the last entry: the
  // longer ones), for a Prometheus histogram.
  std::array<std::int64_t, kHandlerDurationBounds.size() + 1> handler_duration_buckets{};
  std::int64_t handler_runs = 0;
  std::chrono::milliseconds handler_duration_total{0};
};

class Consumer {
 public:
  using ResultCallback = std::function<void(const TaskResult&)>;

  // `jobs` maps job names to handlers. `on_result` may be empty; `logger` may be null (nothing is
  // logged). Options out of range are clamped into range (ConsumerOptions documents the ranges).
  Consumer(Queue& queue, Clock& clock, std::map<std::string, ConsumerJob, std::less<>> jobs,
           ResultCallback on_result, std::shared_ptr<spdlog::logger> logger, ConsumerOptions options = {});
  // Stop() if Start() ran; flushes what PollOnce() left pending otherwise. Joins every thread.
  ~Consumer();

  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // Starts the pollers, workers and the maintenance thread. No effect after the first call or
  // after Stop().
  void Start();

  // One receive -> handle -> delete-or-back-off cycle on the calling thread, without threads (for
  // tests, as folly's ManualExecutor turns the crank): receives up to min(batch_size, workers)
  // messages, waiting at most `wait_time`, runs their handlers one after another, then sends the
  // deletes and visibility changes (and any left over from an earlier call). No heartbeat runs.
  // Returns the number of messages handled; 0 on a receive error (logged, counted), after Start()
  // or after Stop().
  int PollOnce();

  // Graceful shutdown as described above. Blocks until done: about shutdown_grace plus the time
  // the interrupted handlers take to return, plus a flush. Idempotent.
  // REQUIRES: not called from a handler or from on_result (it waits for them to return).
  void Stop();
  // Immediate shutdown (second signal): see above. Returns promptly. Idempotent.
  void StopNow();

  ConsumerStats stats() const;

 private:
  struct Lease;
  struct OutboxEntry;
  enum class FlushMode { kDue, kFullBatches, kAll };

  void PollerLoop();
  void WorkerLoop();
  void ReceivingWorkerLoop();  // receive_per_worker

  // One ReceiveMessage for up to `max` messages, on behalf of a poller or a receiving worker.
  // REQUIRES: lock holds mu_ (released during the call and the waits below). Returns the messages
  // received, each added as a lease (running when `start_now`, else queued but not in ready_).
  // Returns none when the call failed (after logging and the back-off wait; `failures` counts
  // consecutive failures), when it came back empty (after a short pause when that was not a full
  // long poll), or when stopping_ became true (what came is released).
  std::vector<Lease*> ReceiveLeases(std::unique_lock<std::mutex>& lock, int max, bool start_now, int& failures);
  void MaintenanceLoop();

  // Registers a received message; REQUIRES: mu_ held.
  Lease* AddLeaseLocked(ReceivedMessage message, Clock::time_point received_before, bool running);
  // Runs the handler for `lease` (already kRunning), queues the outcome, reports it and removes
  // the lease.
  void Process(Lease* lease);
  // Queues the release (visibility 0) of messages this consumer will not run.
  void ReleaseLocked(std::vector<std::unique_ptr<Lease>> leases);
  void EnqueueLocked(OutboxEntry entry);
  // Sends pending deletes and visibility changes. Logs failures it gives up on.
  void FlushOutbox(FlushMode mode);
  // One extension round; REQUIRES: lock holds mu_ (released during the queue calls).
  void ExtendDue(std::unique_lock<std::mutex>& lock, Clock::time_point now);
  void WakeMaintenanceLocked(Clock::time_point at);
  double JitterLocked();
  int FreeSlotsLocked() const;
  ConsumerStats StatsLocked() const;
  // Counts a ReceiveMessage that worked (ok) or failed, for receive_errors and receive health.
  void CountReceiveLocked(bool ok);
  std::string SummaryLocked() const;

  Queue& queue_;
  Clock& clock_;
  const std::map<std::string, ConsumerJob, std::less<>> jobs_;
  const ResultCallback on_result_;
  const std::shared_ptr<spdlog::logger> logger_;
  const ConsumerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // workers: ready_ or stopping_
  std::condition_variable slots_cv_;  // pollers: free slots or stopping_
  std::condition_variable backoff_cv_;  // pollers' back-off waits: stopping_
  std::condition_variable maint_cv_;  // maintenance: maint_wake_ or maint_stop_
  std::condition_variable done_cv_;   // leases finishing, extensions returning, Stop() finishing

  bool started_ = false;      // GUARDED_BY(mu_)
  bool stopping_ = false;     // GUARDED_BY(mu_): no more polling or starting of handlers
  bool stop_now_ = false;     // GUARDED_BY(mu_)
  bool stop_begun_ = false;   // GUARDED_BY(mu_): a Stop() is running or ran
  int receives_in_progress_ = 0;  // GUARDED_BY(mu_): Receive calls of pollers or workers
  bool stopped_ = false;      // GUARDED_BY(mu_): that Stop() finished
  bool maint_stop_ = false;   // GUARDED_BY(mu_)
  bool maint_wake_ = false;   // GUARDED_BY(mu_)
  Clock::time_point maint_deadline_{Clock::time_point::max()};  // GUARDED_BY(mu_): its next wake
  Clock::time_point next_summary_{Clock::time_point::max()};    // GUARDED_BY(mu_)

  std::uint64_t next_lease_id_ = 1;                          // GUARDED_BY(mu_)
  std::map<std::uint64_t, std::unique_ptr<Lease>> leases_;   // GUARDED_BY(mu_)
  std::deque<Lease*> ready_;                                 // GUARDED_BY(mu_): received, not started
  int reserved_ = 0;   // GUARDED_BY(mu_): slots pollers asked the queue for, not yet returned
  int running_ = 0;    // GUARDED_BY(mu_)
  std::deque<OutboxEntry> outbox_;  // GUARDED_BY(mu_)

  ConsumerStats counters_;                          // GUARDED_BY(mu_); in_flight etc. computed
  std::vector<std::chrono::milliseconds> durations_;  // GUARDED_BY(mu_): ring of recent run times
  std::size_t durations_next_ = 0;                  // GUARDED_BY(mu_)
  std::mt19937_64 rng_;                             // GUARDED_BY(mu_)

  std::vector<std::jthread> threads_;  // started by Start(), joined by Stop()
};

}  // namespace taskpipe

#endif  // TASKPIPE_CONSUMER_CONSUMER_H_
