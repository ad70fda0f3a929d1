// Shared vocabulary of the notifiers (Slack and Discord webhooks): what a target looks like to the
// rest of taskpipe, how a platform's formats plug into the delivery machinery, and what a webhook's
// reply means.
//
//   notify/webhook_format.h   pure functions: payloads, templates, UTF-8 safe truncation, reading
//                             a platform's reply (DeliveryVerdict)
//   notify/webhook_target.h   delivery: a bounded outbox per target drained by its own thread,
//                             rate limits, 429s, retries, dead targets, flush on shutdown
//   notify/dispatcher.h       which results go to which targets (per-job rules)
//
// Webhook URLs are credentials: nothing here puts one in a log line, an error message or a Status.
#ifndef TASKPIPE_NOTIFY_NOTIFY_H_
#define TASKPIPE_NOTIFY_NOTIFY_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/clock.h"
#include "common/task_result.h"
#include "net/http_client.h"

namespace taskpipe {

// What one webhook reply (or transport failure) means for the message that was sent.
struct DeliveryVerdict {
  enum class Kind {
    kDelivered,    // the platform accepted the message
    kRateLimited,  // 429: send it again after `retry_after` (not counted as a failed attempt)
    kRetry,        // 5xx, a transport error, an unreadable reply: retry with back-off
    kRejected,     // any other 4xx about this message (e.g. Slack invalid_payload, Discord 50035):
                   // drop this message (counted, logged); the target stays usable
    kDead,         // the webhook is gone or not ours (401, 403, 404, 410, Slack no_service,
                   // Discord 10015 Unknown Webhook): drop everything, stop sending
  };
  Kind kind = Kind::kRetry;
  // kRateLimited: the wait the platform asked for (the classifiers put 1 s when the reply names
  // none or an unreadable one; a target treats 0 as 1 s). Also set on any reply that says the
  // bucket is empty (Discord X-RateLimit-Remaining: 0 with X-RateLimit-Reset-After), then with kind
  // kDelivered; on any kind it is a minimum wait before the next request.
  std::chrono::milliseconds retry_after{0};
  bool global = false;  // Discord's global rate limit: every Discord target must pause
  // One line, e.g. `Slack answered 404 "no_service"` or `Discord answered 429 (retry after
  // 0.64 s)`. Never contains the webhook URL.
  std::string error{};
};

// Counters of one target. `enqueued` counts every Enqueue() call, accepted or not; each ends in
// exactly one of delivered and dropped_* (or is still pending): enqueued == delivered + dropped()
// + pending in every snapshot. A call refused after Shutdown() began counts in dropped_deadline.
struct NotifyStats {
  std::uint64_t enqueued = 0;
  std::uint64_t delivered = 0;
  std::uint64_t dropped_full = 0;      // the outbox was full
  std::uint64_t dropped_dead = 0;      // the target was dead (or became dead with it queued)
  std::uint64_t dropped_rejected = 0;  // the platform refused the payload (kRejected)
  std::uint64_t dropped_failed = 0;    // retries used up
  std::uint64_t dropped_deadline = 0;  // still queued when the shutdown deadline passed
  std::uint64_t retries = 0;           // kRetry replies
  std::uint64_t rate_limited = 0;      // kRateLimited replies (429)
  std::uint64_t pending = 0;           // queued or in flight now

  std::uint64_t dropped() const {
    return dropped_full + dropped_dead + dropped_rejected + dropped_failed + dropped_deadline;
  }
};

// One notification destination (a Slack or Discord webhook). Thread-safe.
class NotifyTarget {
 public:
  virtual ~NotifyTarget() = default;

  // The target's name from the config ("team-slack"); safe to log.
  virtual const std::string& name() const = 0;

  // Queues `result` for delivery and returns at once: never waits for the network or for room in
  // the outbox. Returns false when the result is dropped instead (outbox full, target dead, shut
  // down); the drop is counted and logged.
  virtual bool Enqueue(const TaskResult& result) = 0;

  // Stops accepting results, delivers what is queued until `deadline` (rate limits and retries
  // still apply), then drops what is left (counted as dropped_deadline, logged with the number)
  // and joins the delivery thread. Idempotent; the destructor calls it with a deadline of now.
  virtual void Shutdown(Clock::time_point deadline) = 0;

  virtual NotifyStats Stats() const = 0;
};

// How one platform's messages are made and its replies read; NewWebhookTarget() does the rest.
struct WebhookPlatform {
  std::string kind;  // "slack" | "discord": for log lines
  // The URL to POST to, derived from the configured one (Discord: versioned path, ?wait=true).
  std::string request_url;
  // The JSON body for one result. Must not throw.
  std::function<std::string(const TaskResult&)> build_payload;
  // Reads one reply. Must not throw.
  std::function<DeliveryVerdict(const HttpResponse&)> classify;
};

}  // namespace taskpipe

#endif  // TASKPIPE_NOTIFY_NOTIFY_H_
