// Producer: turns one fire of a job into messages on a Queue, one per task, each body an envelope
// (producer/envelope.h), sent with SendBatch and retried entry by entry.
//
//  - Batches hold at most 10 entries and 1 MiB in all (queue/validate.h's MessageSize()).
//  - Only entries that failed are sent again, and only when retrying can help: a per-entry failure
//    with sender_fault = false, or a whole call failing with a status for which IsRetryable() is
//    true. Waits between rounds grow exponentially from `backoff_base` up to `backoff_max`, with
//    jitter (each wait is uniformly drawn from [d/2, d]). After `max_attempts` the rest is reported.
//  - A task whose message can never be sent (over 1 MiB, a character SQS refuses) is reported and
//    the others still go.
//  - Every message carries the String attribute "taskpipe-job" (the job's name).
//  - FIFO queues (ProducerOptions::fifo): MessageGroupId is the job's message_group_id, else its
//    name; MessageDeduplicationId is "<job>:<unix seconds of scheduled_at>:<task index>", so every
//    replica firing the same schedule instant sends the same ids and SQS keeps one copy of each task
//    (within SQS's 5-minute deduplication window). Job names are [A-Za-z0-9_.-]{1,80}, so the id is
//    at most ~105 characters of those SQS allows (128 max).
//
// Thread-safe: Fire() and SendBody() may run concurrently; Stop() may be called from any thread.
// `queue` and `clock` must outlive the Producer.
#ifndef TASKPIPE_PRODUCER_PRODUCER_H_
#define TASKPIPE_PRODUCER_PRODUCER_H_

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "queue/message.h"
#include "queue/queue.h"

namespace taskpipe {

struct ProducerOptions {
  // The queue is a FIFO queue: send MessageGroupId and MessageDeduplicationId.
  bool fifo = false;
  // Tries per message, the first included (>= 1).
  int max_attempts = 5;
  // Back-off before retry round n (n = 1, 2, ...): min(backoff_max, backoff_base * 2^(n-1)),
  // then jittered into [d/2, d].
  std::chrono::milliseconds backoff_base{200};
  std::chrono::milliseconds backoff_max{10'000};
  // Seed of the jitter's generator; 0 = seeded from std::random_device.
  std::uint64_t jitter_seed = 0;
  // FIFO queues: the MessageGroupId of SendBody()'s messages.
  std::string body_group_id = "taskpipe";
};

struct FireResult {
  int sent = 0;
  int failed = 0;
  // One line per message that was not sent, naming the job and the task index:
  //   job "daily-report" task 3: message is 1100000 bytes (body and attributes); the limit is ...
  std::vector<std::string> errors;
};

class Producer {
 public:
  // `logger` may be null (nothing is logged).
  Producer(Queue& queue, Clock& clock, std::shared_ptr<spdlog::logger> logger, ProducerOptions options = {});

  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Sends one message per task of `job` (REQUIRES: job.tasks is not empty, as after a config
  // load), stamped with `scheduled_at` and fired_at = clock.WallNow(). Logs one line with the
  // counts sent and failed and the lateness (fired_at - scheduled_at); the failures themselves are
  // returned in FireResult::errors, not logged. After Stop() nothing more is sent: what is left is
  // reported as failed ("producer stopped").
  FireResult Fire(const JobConfig& job, std::chrono::system_clock::time_point scheduled_at);

  // Sends `body` as is (no envelope, no attributes) with the same retries: `taskpipe send --body`.
  // Errors: the queue's status (kInvalidArgument for a body SQS would refuse: empty, over 1 MiB,
  // characters it does not accept), with the number of attempts when retries ran out; kCancelled
  // after Stop().
  Status SendBody(std::string body);

  // Interrupts back-off waits at once and makes every later send fail with kCancelled. Permanent.
  void Stop();
  bool stopped() const;

 private:
  struct Item {
    OutgoingMessage message;
    std::size_t size = 0;
    Status status = InternalError("message was not sent");  // the final outcome
  };

  // Sends every item, filling in each item's status.
  void SendAll(std::vector<Item*> items);
  // Waits the back-off before retry round `round` (1, 2, ...); false if Stop() interrupted it.
  bool Backoff(int round);

  Queue& queue_;
  Clock& clock_;
  std::shared_ptr<spdlog::logger> logger_;
  const ProducerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // GUARDED_BY(mu_)
  std::mt19937_64 rng_;   // GUARDED_BY(mu_)
};

// The MessageDeduplicationId Fire() gives task `task_index` of `job_name` fired for
// `scheduled_at` on a FIFO queue: "<job>:<unix seconds>:<index>".
std::string FifoDeduplicationId(const std::string& job_name,
                                std::chrono::system_clock::time_point scheduled_at, std::size_t task_index);

}  // namespace taskpipe

#endif  // TASKPIPE_PRODUCER_PRODUCER_H_
