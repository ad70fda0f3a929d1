#include "consumer/retry_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <set>

namespace taskpipe {
namespace {

using namespace std::chrono_literals;

RetryConfig Retry(std::chrono::seconds base, std::chrono::seconds max) {
  RetryConfig retry;
  retry.base = base;
  retry.max = max;
  return retry;
}

constexpr double kAlmostOne = 0.999999;

TEST(RetryVisibilityTest, DoublesWithTheReceiveCountUpToTheMax) {
  const RetryConfig retry = Retry(5s, 60s);
  struct Row {
    int receive_count;
    std::chrono::seconds low, high;  // jitter 0 and jitter -> 1
  };
  for (const Row& row : {Row{1, 3s, 5s}, Row{2, 5s, 10s}, Row{3, 10s, 20s}, Row{4, 20s, 40s},
                         Row{5, 30s, 60s}, Row{6, 30s, 60s}, Row{1000, 30s, 60s}}) {
    SCOPED_TRACE(row.receive_count);
    EXPECT_EQ(RetryVisibility(row.receive_count, retry, 0.0), row.low);
    EXPECT_EQ(RetryVisibility(row.receive_count, retry, kAlmostOne), row.high);
    for (double jitter = 0.0; jitter < 1.0; jitter += 0.01) {
      const std::chrono::seconds d = RetryVisibility(row.receive_count, retry, jitter);
      EXPECT_GE(d, row.low);
      EXPECT_LE(d, row.high);
    }
  }
}

TEST(RetryVisibilityTest, JitterSpreadsOverTheWholeRange) {
  const RetryConfig retry = Retry(8s, 900s);
  // d = 8 s on the first delivery: every whole second of [4, 8] is reachable.
  std::set<std::int64_t> seen;
  for (double jitter = 0.0; jitter < 1.0; jitter += 0.001) seen.insert(RetryVisibility(1, retry, jitter).count());
  EXPECT_EQ(seen, (std::set<std::int64_t>{4, 5, 6, 7, 8}));
}

TEST(RetryVisibilityTest, ReceiveCountBelowOneCountsAsOne) {
  const RetryConfig retry = Retry(10s, 100s);
  EXPECT_EQ(RetryVisibility(0, retry, 0.0), 5s);
  EXPECT_EQ(RetryVisibility(-3, retry, kAlmostOne), 10s);
}

TEST(RetryVisibilityTest, NeverBelowOneSecond) {
  EXPECT_EQ(RetryVisibility(1, Retry(0s, 0s), 0.0), 1s);
  EXPECT_EQ(RetryVisibility(7, Retry(0s, 60s), 0.5), 1s);
  EXPECT_EQ(RetryVisibility(1, Retry(1s, 60s), 0.0), 1s);
  EXPECT_EQ(RetryVisibility(1, Retry(1s, 60s), kAlmostOne), 1s);
}

TEST(RetryVisibilityTest, CappedAtTwelveHours) {
  const RetryConfig retry = Retry(3600s, 48h);
  EXPECT_EQ(RetryVisibility(10, retry, kAlmostOne), 12h);
  EXPECT_EQ(RetryVisibility(10, retry, 0.0), 6h);
  EXPECT_EQ(RetryVisibility(std::numeric_limits<int>::max(), retry, kAlmostOne), 12h);
}

TEST(RetryVisibilityTest, JitterOutsideTheRangeIsClamped) {
  const RetryConfig retry = Retry(10s, 100s);
  EXPECT_EQ(RetryVisibility(1, retry, -1.0), 5s);
  EXPECT_EQ(RetryVisibility(1, retry, 1.0), 10s);
  EXPECT_EQ(RetryVisibility(1, retry, 7.0), 10s);
  EXPECT_EQ(RetryVisibility(1, retry, std::numeric_limits<double>::quiet_NaN()), 5s);
}

TEST(BackoffTest, GrowsExponentiallyWithJitterAndCap) {
  const Clock::duration base = 100ms;
  const Clock::duration max = 1s;
  EXPECT_EQ(Backoff(1, base, max, 0.0), 50ms);
  EXPECT_EQ(Backoff(2, base, max, 0.0), 100ms);
  EXPECT_EQ(Backoff(3, base, max, 0.0), 200ms);
  EXPECT_EQ(Backoff(4, base, max, 0.0), 400ms);
  EXPECT_EQ(Backoff(5, base, max, 0.0), 500ms);    // capped at 1 s, half of it
  EXPECT_EQ(Backoff(100, base, max, 0.0), 500ms);
  EXPECT_EQ(Backoff(std::numeric_limits<int>::max(), base, max, 0.0), 500ms);
  for (int failures = 1; failures < 10; ++failures) {
    for (double jitter = 0.0; jitter < 1.0; jitter += 0.05) {
      const Clock::duration d = Backoff(failures, base, max, jitter);
      const Clock::duration full = std::min<Clock::duration>(max, base * (1 << (failures - 1)));
      EXPECT_GE(d, full / 2);
      EXPECT_LE(d, full);
    }
  }
  EXPECT_GT(Backoff(1, base, max, kAlmostOne), 99ms);
}

TEST(BackoffTest, ZeroBaseOrMaxMeansNoWait) {
  EXPECT_EQ(Backoff(3, 0ms, 1s, 0.5), Clock::duration::zero());
  EXPECT_EQ(Backoff(3, 100ms, 0ms, 0.5), Clock::duration::zero());
  EXPECT_EQ(Backoff(0, 100ms, 1s, 0.0), 50ms);  // below 1 counts as 1
}

}  // namespace
}  // namespace taskpipe
