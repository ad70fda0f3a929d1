#include "common/clock.h"

namespace taskpipe {
namespace {

class RealClockImpl final : public Clock {
 public:
  time_point Now() const override {
    return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
  }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, time_point deadline,
                 const std::function<bool()>& pred) override {
    // time_point is steady_clock's own (nanosecond) time point, so no conversion drifts.
    return cv.wait_until(lock, deadline, pred);
  }
};

}  // namespace

Clock& RealClock() {
  static RealClockImpl* clock = new RealClockImpl();  // never deleted: usable during static teardown
  return *clock;
}

}  // namespace taskpipe
