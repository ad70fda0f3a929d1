// Delivery to one chat webhook (a Slack or Discord target): a bounded outbox drained by the
// target's own thread, so that posting a result never blocks the task worker that produced it.
//
//  - Outbox. Enqueue() copies the result into a FIFO of at most `outbox_capacity` results (the one
//    being sent included) and returns at once. When it is full the result is dropped (counted in
//    dropped_full) and a warning is logged: the first drop, then one line per 100 drops or per
//    minute, whichever comes first, with the count, so that a flood of results does not flood the
//    log.
//  - Order. One thread per target sends one request at a time, oldest result first. The head of the
//    outbox is removed only once it is delivered or dropped, so retries never reorder results.
//  - Waits before each request: a token from a token bucket (`rate_per_sec`, `burst`; the bucket
//    starts full), the target's own hold (a 429's retry-after, or a reply that said the bucket is
//    empty), the back-off after a kRetry reply, and the shared RateLimitGate (Discord's global
//    limit). Every wait is a Clock::WaitUntil on the target's own mutex and condition variable, so
//    Shutdown() cuts it short and tests with a FakeClock never sleep.
//  - Replies (WebhookPlatform::classify; a transport error from HttpClient::Send counts as kRetry
//    with the Status as its error):
//      kDelivered   counted, removed. A retry_after > 0 (the platform's bucket is empty) holds the
//                   next request back that long.
//      kRateLimited counted in rate_limited, not an attempt. The next request waits retry_after
//                   (1 s when the reply named none; at most `max_retry_after`); a global one also
//                   pauses every target sharing the gate until then. The same result is sent
//                   again, unless this was its `max_rate_limited`-th 429: then it is dropped
//                   (dropped_failed, logged at warn).
//      kRetry       counted in retries; an attempt. The next request waits the back-off
//                   WebhookBackoff(attempt, retry_base, retry_max, jitter) ("equal jitter": the
//                   delay d = min(retry_base * 2^(attempt-1), retry_max) is drawn from [d/2, d], so
//                   a failing webhook is never hit again at once, and targets that failed together
//                   spread out). After `max_attempts` attempts the result is dropped
//                   (dropped_failed, logged at warn with the last error); the back-off still
//                   applies before the next result.
//      kRejected    the result is dropped (dropped_rejected, logged at warn with the platform's
//                   error); the next one is sent as usual.
//      kDead        one error line: `notify target "team-slack" (slack) is disabled: <error>;
//                   check its webhook URL`. The result and everything queued are dropped
//                   (dropped_dead); later Enqueue() calls return false (dropped_dead, logged at
//                   warn only as rarely as outbox-full drops). Nothing is sent again.
//    A retry_after on any reply (capped at `max_retry_after`) holds the next request back at
//    least that long.
//  - Requests: POST platform.request_url with "Content-Type: application/json", "User-Agent:
//    taskpipe/<TASKPIPE_VERSION>" and platform.build_payload(result) as the body (built once per
//    result), timeout `request_timeout` (see Shutdown for the cut), connect timeout
//    min(5 s, timeout).
//  - Secrets. platform.request_url is a credential: no log line (at any level, trace included)
//    names it. Lines name the target as `notify target "<name>" (<kind>)`. Errors from the
//    HttpClient and from classify are URL-free by contract; as a second line of defence the URL
//    and its path are masked ("***") in them before they are logged.
//
// Shutdown(deadline): stops accepting (later Enqueue() calls return false and count in
// dropped_deadline), keeps delivering until the outbox is empty or `deadline` passes: the waits for
// tokens, holds and back-off end at the deadline, a request started after Shutdown() began gets
// the timeout min(request_timeout, deadline - now), and no request starts at or after the
// deadline (nor with less than 1 ms left). What is left is dropped (dropped_deadline), one line
// says how many were delivered and dropped (info; warn when any were dropped at the deadline),
// and the thread is joined. A request already in flight when Shutdown() is called keeps its own
// timeout: the HttpClient interface cannot cancel one exchange, so Shutdown() may return up to
// `request_timeout` after `deadline` (the app shuts the HttpClient down after its targets, or
// keeps request_timeout well below its shutdown budget).
//
// Counters (Stats()). `enqueued` counts every Enqueue() call, accepted or not, and at any time
//     enqueued == delivered + dropped() + pending
// where dropped() sums dropped_full, dropped_dead, dropped_rejected, dropped_failed and
// dropped_deadline, and pending is the number of results in the outbox (the one in flight
// included). An Enqueue() that returns false has already counted its result in exactly one of
// dropped_deadline (Shutdown() began; checked first), dropped_dead (the target is dead) or
// dropped_full (the outbox is full).
// Stats() takes one snapshot under the target's mutex, so the invariant holds for every snapshot.
//
// Thread-safety: Enqueue(), Shutdown() and Stats() may be called from any thread, concurrently; a
// second Shutdown() waits for the first to finish. RateLimitGate is thread-safe.
#ifndef TASKPIPE_NOTIFY_WEBHOOK_TARGET_H_
#define TASKPIPE_NOTIFY_WEBHOOK_TARGET_H_

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "net/http_client.h"
#include "notify/notify.h"

namespace taskpipe {

// A pause shared by every Discord target of a process: Discord's global rate limit (a 429 with
// "global": true) stops all of them. Targets read it before each request and after each of their
// own waits; pausing does not wake targets, which is fine since it only ever moves the time later.
// Thread-safe.
class RateLimitGate {
 public:
  // Pauses until `t`, or keeps the current pause if it ends later.
  void PauseUntil(Clock::time_point t);
  // When the pause ends (a time point in the past, or the epoch, when there is none).
  Clock::time_point until() const;

 private:
  mutable std::mutex mu_;
  Clock::time_point until_{};  // GUARDED_BY(mu_)
};

struct WebhookTargetOptions {
  // Results in the outbox (waiting or in flight); more are dropped (dropped_full). >= 1.
  std::size_t outbox_capacity = 1000;
  // Token bucket: Slack allows about 1 message/s per webhook, with short bursts. rate_per_sec in
  // [0.001, 1e6], burst in [1, 1e6].
  double rate_per_sec = 1.0;
  double burst = 3;
  // Attempts per result, counting kRetry replies and transport errors (429s are not attempts, but
  // see max_rate_limited). >= 1.
  int max_attempts = 5;
  // 429s for one result before it is dropped as failed. >= 1.
  int max_rate_limited = 20;
  // Back-off after a kRetry reply: base * 2^(n-1), capped at retry_max, with equal jitter (see
  // WebhookBackoff). 0..24 h.
  std::chrono::milliseconds retry_base{1000};
  std::chrono::milliseconds retry_max{60000};
  // Per HTTP exchange (also bounded by the shutdown deadline). 1 ms..24 h.
  std::chrono::milliseconds request_timeout{10000};
  // Cap on a platform's requested wait (429 retry-after, bucket reset-after). 0..24 h.
  std::chrono::milliseconds max_retry_after{std::chrono::minutes(10)};
  // Source of the back-off jitter, called on the target's thread only; returns a value in [0, 1)
  // (clamped). Null: a PRNG seeded from std::random_device. Tests pass a constant.
  std::function<double()> jitter = nullptr;
};

// InvalidArgument naming the first option out of the ranges documented above; OK otherwise. For
// config loaders: NewWebhookTarget() itself clamps options into range.
Status ValidateWebhookTargetOptions(const WebhookTargetOptions& options);

// The back-off before the next request after the `attempt`-th failed attempt (< 1 counts as 1):
//   d = min(base * 2^(attempt-1), max), then d/2 + jitter * d/2, i.e. within [d/2, d].
// Zero when base or max is zero; base and max above 24 h count as 24 h. `jitter` in [0, 1)
// (clamped). Pure; thread-safe.
Clock::duration WebhookBackoff(int attempt, std::chrono::milliseconds base, std::chrono::milliseconds max,
                               double jitter);

// A target named `name` ("team-slack": from the config, safe to log) delivering through
// `platform`. The delivery thread starts at once.
// `platform.request_url` is a secret. `http` and `clock` must outlive the target. `logger` may be
// null (nothing is logged). `global_gate` may be null (no shared pause); Discord targets share one.
// REQUIRES: platform.build_payload and platform.classify are set.
std::unique_ptr<NotifyTarget> NewWebhookTarget(std::string name, WebhookPlatform platform,
                                               WebhookTargetOptions options, HttpClient& http, Clock& clock,
                                               std::shared_ptr<spdlog::logger> logger,
                                               std::shared_ptr<RateLimitGate> global_gate);

}  // namespace taskpipe

#endif  // TASKPIPE_NOTIFY_WEBHOOK_TARGET_H_
