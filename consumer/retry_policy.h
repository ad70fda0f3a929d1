// Retry timing for the consumer: how long a failed message stays invisible before the queue hands
// it out again, and how long a poller waits after a failed ReceiveMessage. Pure functions of their
// arguments (the randomness comes in as `jitter`); thread-safe.
//
// Both use "equal jitter": the exponential delay d is computed first, then a delay is drawn
// uniformly from [d/2, d] (`jitter` = 0 gives d/2, `jitter` -> 1 gives d). Half of d is kept so that
// a failing task is never retried at once (no hot loop); the other half spreads out consumers and
// messages that failed together (AWS Architecture Blog, "Exponential Backoff And Jitter").
#ifndef TASKPIPE_CONSUMER_RETRY_POLICY_H_
#define TASKPIPE_CONSUMER_RETRY_POLICY_H_

#include <chrono>

#include "common/clock.h"
#include "config/config.h"

namespace taskpipe {

// The visibility timeout given to a message whose handler failed, timed out or could not be
// handled, on its `receive_count`-th delivery (ApproximateReceiveCount; values below 1 count as 1):
//   d = min(retry.base * 2^(receive_count - 1), retry.max, 12 h)
// then jittered into [ceil(d/2), d] in whole seconds (SQS visibility is whole seconds), and never
// below 1 s, even when retry.base is 0. `jitter` is in [0, 1); values outside are clamped.
std::chrono::seconds RetryVisibility(int receive_count, const RetryConfig& retry, double jitter);

// The wait after `failures` (>= 1; below 1 counts as 1) consecutive failures of the same operation:
//   d = min(base * 2^(failures - 1), max)
// jittered into [d/2, d]. Zero when base or max is zero. `jitter` is in [0, 1); clamped.
Clock::duration Backoff(int failures, Clock::duration base, Clock::duration max, double jitter);

}  // namespace taskpipe

#endif  // TASKPIPE_CONSUMER_RETRY_POLICY_H_
