// Clock: every read of time and every timed wait in taskpipe goes through a Clock, so that tests can
// use a FakeClock (tests/fakes/fake_clock.h) and never sleep.
//
// Implementations are thread-safe.
#ifndef TASKPIPE_COMMON_CLOCK_H_
#define TASKPIPE_COMMON_CLOCK_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace taskpipe {

class Clock {
 public:
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

  virtual ~Clock() = default;

  // Monotonic time: timeouts, deadlines, back-off.
  virtual time_point Now() const = 0;
  // Wall-clock time: SigV4 dates, schedules, SentTimestamp.
  virtual std::chrono::system_clock::time_point WallNow() const = 0;

  // Waits on `cv` until pred() holds or Now() >= deadline; returns pred().
  // REQUIRES: `lock` holds the mutex that guards pred's state, and whoever changes that state
  // notifies `cv` while holding (or after releasing) that mutex.
  virtual bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         time_point deadline, const std::function<bool()>& pred) = 0;

  // Convenience: WaitUntil(lock, cv, Now() + timeout, pred).
  bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, duration timeout,
               const std::function<bool()>& pred) {
    return WaitUntil(lock, cv, Now() + timeout, pred);
  }
};

// The process's real clock. Never deleted, like leveldb's Env::Default().
Clock& RealClock();

}  // namespace taskpipe

#endif  // TASKPIPE_COMMON_CLOCK_H_
