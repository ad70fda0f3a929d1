#include "common/clock.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "tests/fakes/fake_clock.h"

namespace taskpipe {
namespace {

using namespace std::chrono_literals;

TEST(RealClockTest, MovesForwardAndWaitReturnsWhenPredicateHolds) {
  Clock& clock = RealClock();
  auto a = clock.Now();
  auto b = clock.Now();
  EXPECT_LE(a, b);
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  // The predicate already holds: no waiting at all, even with a far deadline.
  EXPECT_TRUE(clock.WaitUntil(lock, cv, clock.Now() + 1h, [] { return true; }));
  // A deadline in the past returns at once with the predicate's value.
  EXPECT_FALSE(clock.WaitUntil(lock, cv, clock.Now() - 1s, [] { return false; }));
}

TEST(FakeClockTest, MovesOnlyWhenAdvanced) {
  FakeClock clock;
  auto t0 = clock.Now();
  auto w0 = clock.WallNow();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(90s);
  EXPECT_EQ(clock.Now() - t0, 90s);
  EXPECT_EQ(clock.WallNow() - w0, 90s);
}

TEST(FakeClockTest, DefaultWallTimeIs2026) {
  FakeClock clock;
  EXPECT_EQ(clock.WallNow().time_since_epoch(), std::chrono::seconds(1767225600));
}

TEST(FakeClockTest, SetWallTimeLeavesSteadyClockAlone) {
  FakeClock clock;
  auto t0 = clock.Now();
  clock.SetWallTime(std::chrono::system_clock::time_point(100s));
  EXPECT_EQ(clock.WallNow().time_since_epoch(), 100s);
  EXPECT_EQ(clock.Now(), t0);
}

TEST(FakeClockTest, WaiterTimesOutOnlyWhenDeadlinePasses) {
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool result = true;
  std::thread waiter([&] {
    std::unique_lock<std::mutex> lock(mu);
    result = clock.WaitFor(lock, cv, 30s, [] { return false; });
  });
  clock.BlockUntilWaiters(1);
  clock.Advance(29s);  // not yet due: the waiter stays registered
  EXPECT_EQ(clock.num_waiters(), 1u);
  clock.Advance(1s);
  waiter.join();
  EXPECT_FALSE(result);
  EXPECT_EQ(clock.num_waiters(), 0u);
}

TEST(FakeClockTest, WaiterWakesOnNotifyWithoutTimeMoving) {
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  bool result = false;
  std::thread waiter([&] {
    std::unique_lock<std::mutex> lock(mu);
    result = clock.WaitFor(lock, cv, 1h, [&] { return ready; });
  });
  clock.BlockUntilWaiters(1);
  {
    std::lock_guard<std::mutex> guard(mu);
    ready = true;
  }
  cv.notify_all();
  waiter.join();
  EXPECT_TRUE(result);
}

TEST(FakeClockTest, ManyWaitersWithDifferentDeadlines) {
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  int woken = 0;
  std::vector<std::thread> threads;
  for (int i = 1; i <= 3; ++i) {
    threads.emplace_back([&, i] {
      std::unique_lock<std::mutex> lock(mu);
      (void)clock.WaitFor(lock, cv, std::chrono::seconds(10 * i), [] { return false; });
      ++woken;
    });
  }
  clock.BlockUntilWaiters(3);
  clock.Advance(10s);
  threads[0].join();
  clock.Advance(20s);
  threads[1].join();
  threads[2].join();
  EXPECT_EQ(woken, 3);
}

}  // namespace
}  // namespace taskpipe
