#include "consumer/retry_policy.h"

#include <algorithm>
#include <cmath>

#include "queue/message.h"

namespace taskpipe {
namespace {

double ClampJitter(double jitter) {
  if (!(jitter >= 0.0)) return 0.0;  // also NaN
  return std::min(jitter, std::nextafter(1.0, 0.0));
}

// min(base * 2^(n - 1), cap), doubling step by step so that it cannot overflow.
template <typename Duration>
Duration Exponential(int n, Duration base, Duration cap) {
  if (base <= Duration::zero() || cap <= Duration::zero()) return Duration::zero();
  Duration d = std::min(base, cap);
  for (int i = 1; i < n && d < cap; ++i) d = d > cap / 2 ? cap : d * 2;
  return std::min(d, cap);
}

}  // namespace

std::chrono::seconds RetryVisibility(int receive_count, const RetryConfig& retry, double jitter) {
  const std::chrono::seconds cap = std::min(retry.max, kMaxVisibilityTimeout);
  const std::int64_t d = Exponential(std::max(1, receive_count), retry.base, cap).count();
  // Whole seconds in [ceil(d/2), d]: `span` values, picked by `jitter`.
  const std::int64_t low = (d + 1) / 2;
  const std::int64_t span = d - low + 1;
  const auto pick = std::min<std::int64_t>(span - 1, static_cast<std::int64_t>(ClampJitter(jitter) * static_cast<double>(span)));
  return std::chrono::seconds(std::max<std::int64_t>(1, low + pick));
}

Clock::duration Backoff(int failures, Clock::duration base, Clock::duration max, double jitter) {
  const Clock::duration d = Exponential(std::max(1, failures), base, max);
  const Clock::duration low = d / 2;
  return low + Clock::duration(static_cast<Clock::duration::rep>(ClampJitter(jitter) *
                                                                 static_cast<double>((d - low).count())));
}

}  // namespace taskpipe
