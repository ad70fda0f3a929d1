#include "tests/fakes/fake_clock.h"

#include <vector>

namespace taskpipe {

FakeClock::FakeClock()
    : FakeClock(std::chrono::system_clock::time_point(std::chrono::seconds(1767225600))) {}

FakeClock::FakeClock(std::chrono::system_clock::time_point wall_start)
    : now_(time_point(std::chrono::seconds(1000))), wall_(wall_start) {}

Clock::time_point FakeClock::Now() const {
  std::lock_guard<std::mutex> guard(mu_);
  return now_;
}

std::chrono::system_clock::time_point FakeClock::WallNow() const {
  std::lock_guard<std::mutex> guard(mu_);
  return wall_;
}

bool FakeClock::WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                          time_point deadline, const std::function<bool()>& pred) {
  while (true) {
    if (pred()) return true;
    std::list<Waiter>::iterator self;
    {
      // Checking the time and registering happen under one hold of mu_, so an Advance() either
      // sees this waiter or ran before the check and is reflected in it.
      std::lock_guard<std::mutex> guard(mu_);
      if (now_ >= deadline) return pred();
      self = waiters_.insert(waiters_.end(), Waiter{lock.mutex(), &cv, deadline});
      waiters_changed_.notify_all();
    }
    cv.wait(lock);  // Advance() holds lock.mutex() while notifying, so no wake-up is lost.
    {
      std::lock_guard<std::mutex> guard(mu_);
      waiters_.erase(self);
      waiters_changed_.notify_all();
    }
  }
}

void FakeClock::Advance(duration d) {
  std::vector<Waiter> due;
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (d > duration::zero()) {
      now_ += d;
      wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    }
    for (const Waiter& w : waiters_) {
      if (w.deadline <= now_) due.push_back(w);
    }
  }
  for (const Waiter& w : due) {
    std::lock_guard<std::mutex> waiter_guard(*w.mu);
    w.cv->notify_all();
  }
}

void FakeClock::SetWallTime(std::chrono::system_clock::time_point t) {
  std::lock_guard<std::mutex> guard(mu_);
  wall_ = t;
}

void FakeClock::BlockUntilWaiters(std::size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  waiters_changed_.wait(lock, [&] { return waiters_.size() >= n; });
}

std::size_t FakeClock::num_waiters() const {
  std::lock_guard<std::mutex> guard(mu_);
  return waiters_.size();
}

}  // namespace taskpipe
