// Fire lateness of the producer daemon: how long after a job's scheduled instant its message is
// on the queue. Schedules N one-second-apart at() jobs (default 60) on the real clock, runs the
// Scheduler over the in-memory queue, and records for each message the wall time at which its
// SendBatch call returned, minus the scheduled instant in its envelope.
//
// Baseline, measured in the same run: a bare thread that sleeps until the same instants shifted by
// half a second (std::this_thread::sleep_until on the system clock) and records how late it woke.
// That is the floor the OS timer gives any program on this machine; the scheduler adds its own
// work (next-fire computation, envelope, batch send) on top.
//
// Prints a table, then `name: value` lines:
//   fire_lateness_p50_ms, fire_lateness_p99_ms, fire_lateness_max_ms   the scheduler
//   baseline_sleep_p99_ms                                              the bare sleep_until thread
//   fire_lateness_vs_baseline_p99                                      scheduler p99 / baseline p99
// Target: fire_lateness_p99_ms <= 5. Usage: fire_lateness_bench [--fires N]   (N seconds of run)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/time_format.h"
#include "config/config.h"
#include "producer/envelope.h"
#include "producer/scheduler.h"
#include "queue/in_memory_queue.h"
#include "queue/queue.h"

namespace taskpipe {
namespace {

using std::chrono::system_clock;

// Records, for every message sent, the wall time at which its send returned and its envelope's
// scheduled instant.
class RecordingQueue final : public Queue {
 public:
  explicit RecordingQueue(Queue& inner) : inner_(inner) {}

  StatusOr<SendResult> Send(const OutgoingMessage& message) override {
    auto result = inner_.Send(message);
    Record(message.body);
    return result;
  }
  StatusOr<BatchResult<SendResult>> SendBatch(const std::vector<SendBatchEntry>& entries) override {
    auto result = inner_.SendBatch(entries);
    for (const SendBatchEntry& entry : entries) Record(entry.message.body);
    return result;
  }
  StatusOr<std::vector<ReceivedMessage>> Receive(const ReceiveOptions& options) override {
    return inner_.Receive(options);
  }
  Status Delete(std::string_view receipt_handle) override { return inner_.Delete(receipt_handle); }
  StatusOr<BatchResult<Empty>> DeleteBatch(const std::vector<DeleteBatchEntry>& entries) override {
    return inner_.DeleteBatch(entries);
  }
  Status ChangeVisibility(std::string_view receipt_handle, std::chrono::seconds timeout) override {
    return inner_.ChangeVisibility(receipt_handle, timeout);
  }
  StatusOr<BatchResult<Empty>> ChangeVisibilityBatch(const std::vector<ChangeVisibilityBatchEntry>& entries) override {
    return inner_.ChangeVisibilityBatch(entries);
  }
  StatusOr<QueueAttributes> GetAttributes() override { return inner_.GetAttributes(); }
  void Shutdown() override { inner_.Shutdown(); }

  std::vector<double> LatenessMs() {
    std::lock_guard<std::mutex> lock(mu_);
    return lateness_ms_;
  }
  int count() const { return count_.load(); }

 private:
  void Record(const std::string& body) {
    const auto sent = system_clock::now();
    StatusOr<Envelope> envelope = DecodeEnvelope(body);
    if (!envelope.ok()) {
      std::fprintf(stderr, "undecodable body: %s\n", envelope.status().ToString().c_str());
      std::exit(1);
    }
    std::lock_guard<std::mutex> lock(mu_);
    lateness_ms_.push_back(std::chrono::duration<double, std::milli>(sent - envelope->scheduled_at).count());
    count_.fetch_add(1);
  }

  Queue& inner_;
  std::mutex mu_;
  std::vector<double> lateness_ms_;  // GUARDED_BY(mu_)
  std::atomic<int> count_{0};
};

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t rank = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

int Main(int argc, char** argv) {
  int fires = 60;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--fires") == 0 && i + 1 < argc) {
      fires = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--fires N]\n", argv[0]);
      return 2;
    }
  }
  if (fires < 1 || fires > 3600) {
    std::fprintf(stderr, "--fires: expected 1 to 3600\n");
    return 2;
  }

  // The first fire two whole seconds from now, then one a second.
  const auto first = std::chrono::ceil<std::chrono::seconds>(system_clock::now()) + std::chrono::seconds(2);
  std::vector<JobConfig> jobs;
  std::vector<system_clock::time_point> instants;
  for (int i = 0; i < fires; ++i) {
    const auto at = first + std::chrono::seconds(i);
    instants.push_back(at);
    std::string text = FormatRfc3339Utc(at);  // 2026-03-08T07:00:00Z
    text.pop_back();                          // at() takes a local time without the zone designator
    JobConfig job;
    job.name = "fire-" + std::to_string(i);
    job.schedule = "at(" + text + ")";
    job.timezone = "UTC";
    job.tasks = {nlohmann::json("task " + std::to_string(i))};
    jobs.push_back(std::move(job));
  }

  StatusOr<std::unique_ptr<Queue>> memory = NewInMemoryQueue({}, RealClock());
  if (!memory.ok()) {
    std::fprintf(stderr, "%s\n", memory.status().ToString().c_str());
    return 1;
  }
  RecordingQueue queue(**memory);
  StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create(jobs, queue, RealClock(), nullptr);
  if (!scheduler.ok()) {
    std::fprintf(stderr, "%s\n", scheduler.status().ToString().c_str());
    return 1;
  }
  std::printf("firing %d at() jobs one second apart from %s (about %d s)\n", fires,
              FormatRfc3339Utc(first).c_str(), fires + 2);
  std::fflush(stdout);

  std::vector<double> baseline_ms;
  std::thread baseline([&] {
    for (const auto& at : instants) {
      const auto target = at + std::chrono::milliseconds(500);
      std::this_thread::sleep_until(target);
      baseline_ms.push_back(
          std::chrono::duration<double, std::milli>(system_clock::now() - target).count());
    }
  });
  std::thread runner([&] { (*scheduler)->Run(); });

  const auto give_up = instants.back() + std::chrono::seconds(10);
  while (queue.count() < fires && system_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (*scheduler)->Stop();
  runner.join();
  baseline.join();

  std::vector<double> lateness = queue.LatenessMs();
  if (static_cast<int>(lateness.size()) != fires) {
    std::printf("ERROR: %zu of %d fires reached the queue\n", lateness.size(), fires);
    return 1;
  }
  const double p50 = Percentile(lateness, 0.50), p99 = Percentile(lateness, 0.99);
  const double max = *std::max_element(lateness.begin(), lateness.end());
  const double base_p50 = Percentile(baseline_ms, 0.50), base_p99 = Percentile(baseline_ms, 0.99);
  const double base_max = *std::max_element(baseline_ms.begin(), baseline_ms.end());
  std::printf("%-22s %10s %10s %10s\n", "lateness (ms)", "p50", "p99", "max");
  std::printf("%-22s %10.3f %10.3f %10.3f\n", "scheduler fire->sent", p50, p99, max);
  std::printf("%-22s %10.3f %10.3f %10.3f\n", "baseline sleep_until", base_p50, base_p99, base_max);
  std::printf("fires: %d\n", fires);
  std::printf("fire_lateness_p50_ms: %.3f\n", p50);
  std::printf("fire_lateness_p99_ms: %.3f\n", p99);
  std::printf("fire_lateness_max_ms: %.3f\n", max);
  std::printf("baseline_sleep_p99_ms: %.3f\n", base_p99);
  std::printf("fire_lateness_vs_baseline_p99: %.2f\n", base_p99 > 0 ? p99 / base_p99 : 0.0);
  std::printf("fire_lateness_target_p99_ms: 5 (%s)\n", p99 <= 5.0 ? "met" : "missed");
  return 0;
}

}  // namespace
}  // namespace taskpipe

int main(int argc, char** argv) { return taskpipe::Main(argc, argv); }
