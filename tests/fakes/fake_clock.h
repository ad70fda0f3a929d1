// FakeClock: a Clock that moves only when Advance() is called (absl's SimulatedClock, folly's
// ManualExecutor). Thread-safe.
//
// Advance() wakes every WaitUntil() whose deadline has passed. To wake a waiter without losing the
// notification, Advance() locks the waiter's own mutex before notify_all, so a waiter that has
// registered but not yet blocked cannot miss it. Tests that advance time while another thread is
// about to wait call BlockUntilWaiters(n) first, so Advance() cannot run before that thread has
// computed its deadline.
//
// REQUIRES: the mutex and condition variable passed to WaitUntil() outlive any Advance() that runs
// concurrently with that wait.
#ifndef TASKPIPE_TESTS_FAKES_FAKE_CLOCK_H_
#define TASKPIPE_TESTS_FAKES_FAKE_CLOCK_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <list>
#include <mutex>

#include "common/clock.h"

namespace taskpipe {

class FakeClock final : public Clock {
 public:
  // Starts at steady time 1000 s (so that "zero" time points are distinguishable) and wall time
  // 2026-01-01T00:00:00Z unless told otherwise.
  FakeClock();
  explicit FakeClock(std::chrono::system_clock::time_point wall_start);

  time_point Now() const override;
  std::chrono::system_clock::time_point WallNow() const override;
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, time_point deadline,
                 const std::function<bool()>& pred) override;

  // Moves both clocks forward by `d` (d >= 0) and wakes the waiters whose deadline has passed.
  void Advance(duration d);
  // Sets the wall clock (the steady clock is unaffected, as when NTP steps the system time).
  void SetWallTime(std::chrono::system_clock::time_point t);

  // Blocks (really) until at least `n` threads are inside WaitUntil().
  void BlockUntilWaiters(std::size_t n);
  std::size_t num_waiters() const;

 private:
  struct Waiter {
    std::mutex* mu;
    std::condition_variable* cv;
    time_point deadline;
  };

  mutable std::mutex mu_;
  std::condition_variable waiters_changed_;
  time_point now_;                                 // GUARDED_BY(mu_)
  std::chrono::system_clock::time_point wall_;     // GUARDED_BY(mu_)
  std::list<Waiter> waiters_;                      // GUARDED_BY(mu_)
};

}  // namespace taskpipe

#endif  // TASKPIPE_TESTS_FAKES_FAKE_CLOCK_H_
