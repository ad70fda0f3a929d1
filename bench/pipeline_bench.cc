// The consumer pool end to end on the in-memory queue, configured as `taskpipe run` configures it
// (each worker receives for itself): tasks/s from a full queue and send->handler-start latency at
// 50,000 tasks/s (half the 100,000 target) and at half the best measured tasks/s, with an
// in-process no-op handler at 1, 4 and 16 workers (and, for comparison,
// with pollers handing over to 4 workers, the SQS arrangement); the exec handler's tasks/s with
// /bin/true; the resident memory of an idle taskpipe process with 16 workers.
//
// Baseline, measured in the same run: the bare queue work a consumer cannot avoid (ReceiveMessage
// of 10, then DeleteMessageBatch of 10, on one thread, no handler, no threads handing over), on the
// same pre-filled queue size. pipeline_vs_bare_queue = consumer tasks/s / bare queue messages/s.
// For latency, each consumer run is paired with a run just before it of the same sends taken by one
// thread that long-polls ReceiveMessage for one message and deletes it (no decoding, no handler):
// the queue's wake-up plus whatever the machine adds. The hypervisor's steal during each run is
// printed beside it, since on a shared VM it alone can exceed the 2 ms target.
//
// Prints a table, then `name: value` lines:
//   pipeline_tasks_per_sec     best of the three worker counts (no-op handler)
//   pipeline_p99_ms            send->handler-start p99 at 50,000 tasks/s, best of the worker counts
//   pipeline_p99_at_half_best_ms   the same at half pipeline_tasks_per_sec (a stress figure)
//   exec_tasks_per_sec         exec handler running /bin/true (8 workers)
//   idle_rss_mib               VmRSS of `taskpipe run` with 16 workers and nothing due, after 2 s
//   bare_queue_msgs_per_sec, pipeline_vs_bare_queue
//   bare_queue_p99_ms, steal_percent_during_p99_run
// Targets: >= 100,000 no-op tasks/s, p99 <= 2 ms at half that rate, idle RSS <= 20 MiB.
// Usage: pipeline_bench [--tasks N] [--taskpipe PATH]   (PATH: the taskpipe binary for idle RSS)
//        pipeline_bench --latency WORKERS RATE           (one latency run; WORKERS 0: the baseline)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "config/config.h"
#include "consumer/consumer.h"
#include "consumer/handler.h"
#include "net/curl_http_client.h"
#include "producer/envelope.h"
#include "queue/in_memory_queue.h"

#ifndef TASKPIPE_ALLOCATOR
#define TASKPIPE_ALLOCATOR "system"
#endif

namespace taskpipe {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
}

// Records handler-start latency (task {"t": send time in steady ns}) and counts runs.
class NoopHandler final : public Handler {
 public:
  HandlerOutcome Run(const HandlerTask& task, std::stop_token) override {
    if (record_.load(std::memory_order_relaxed) && task.task.is_object() && task.task.contains("t")) {
      const double ms = static_cast<double>(NowNs() - task.task["t"].get<std::int64_t>()) / 1e6;
      std::lock_guard<std::mutex> lock(mu_);
      latencies_ms_.push_back(ms);
    }
    done_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  std::int64_t done() const { return done_.load(); }
  void Record(bool on) { record_ = on; }
  std::vector<double> Latencies() {
    std::lock_guard<std::mutex> lock(mu_);
    return latencies_ms_;
  }

 private:
  std::atomic<std::int64_t> done_{0};
  std::atomic<bool> record_{false};
  std::mutex mu_;
  std::vector<double> latencies_ms_;
};

std::string Body(std::int64_t t) {
  Envelope envelope{.job = "noop",
                    .task = nlohmann::json{{"t", t}},
                    .scheduled_at = std::chrono::system_clock::time_point{},
                    .fired_at = std::chrono::system_clock::time_point{}};
  return EncodeEnvelope(envelope);
}

void Fill(Queue& queue, int n) {
  std::vector<SendBatchEntry> batch;
  for (int i = 0; i < n; ++i) {
    batch.push_back({.id = "e" + std::to_string(batch.size()), .message = {.body = Body(0)}});
    if (batch.size() == 10 || i == n - 1) {
      if (!queue.SendBatch(batch).ok()) {
        std::fprintf(stderr, "SendBatch failed\n");
        std::exit(1);
      }
      batch.clear();
    }
  }
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5))];
}

// The consumer as `taskpipe run` configures it on the memory queue: each worker receives for
// itself (receive_per_worker). With `pollers_hand_over`, pollers receive batches and hand them to
// the workers, as with SQS: printed for comparison.
ConsumerOptions Options(int workers, bool pollers_hand_over = false) {
  ConsumerOptions options;
  options.workers = workers;
  options.receive_per_worker = !pollers_hand_over;
  options.abort_receives_on_stop = true;  // the memory queue, as ConsumerOptionsFromConfig() sets it
  options.pollers = workers >= 8 ? 2 : 1;
  options.wait_time = std::chrono::seconds(1);
  options.summary_interval = std::chrono::seconds(0);
  options.delete_flush_interval = std::chrono::milliseconds(2);
  return options;
}

std::unique_ptr<Queue> NewQueue() {
  InMemoryQueueOptions options;
  options.visibility_timeout = std::chrono::seconds(300);
  StatusOr<std::unique_ptr<Queue>> queue = NewInMemoryQueue(options, RealClock());
  if (!queue.ok()) std::exit(1);
  return std::move(*queue);
}

// Pre-fills `tasks` messages, then times the consumer draining them.
double Throughput(int workers, int tasks, Handler& handler, const std::string& job,
                  const std::function<std::int64_t()>& done, bool pollers_hand_over = false) {
  std::unique_ptr<Queue> queue = NewQueue();
  std::vector<SendBatchEntry> batch;
  for (int i = 0; i < tasks; ++i) {
    Envelope envelope{.job = job, .task = "x", .scheduled_at = {}, .fired_at = {}};
    batch.push_back({.id = "e" + std::to_string(batch.size()), .message = {.body = EncodeEnvelope(envelope)}});
    if (batch.size() == 10 || i == tasks - 1) {
      (void)queue->SendBatch(batch);
      batch.clear();
    }
  }
  std::map<std::string, ConsumerJob, std::less<>> jobs;
  jobs[job] = ConsumerJob{.handler = &handler, .timeout = std::chrono::seconds(60)};
  const std::int64_t before = done();
  Consumer consumer(*queue, RealClock(), jobs, nullptr, nullptr, Options(workers, pollers_hand_over));
  const auto start = SteadyClock::now();
  consumer.Start();
  while (done() - before < tasks) std::this_thread::sleep_for(std::chrono::microseconds(200));
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  consumer.Stop();
  return tasks / seconds;
}

// The share of CPU time the hypervisor gave to other guests ("steal", /proc/stat) between two
// readings: on a shared virtual machine, a thread that is runnable but not running for a few
// milliseconds shows up in every latency figure, ours and the baseline's alike.
struct CpuTimes {
  std::int64_t steal = 0;
  std::int64_t total = 0;
};

CpuTimes ReadCpuTimes() {
  CpuTimes times;
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;
  std::int64_t value = 0;
  for (int field = 0; field < 8 && stat >> value; ++field) {
    times.total += value;
    if (field == 7) times.steal = value;
  }
  return times;
}

double StealPercent(const CpuTimes& before, const CpuTimes& after) {
  const std::int64_t total = after.total - before.total;
  return total > 0 ? 100.0 * static_cast<double>(after.steal - before.steal) / static_cast<double>(total) : 0;
}

struct LatencyRun {
  std::vector<double> latencies_ms;
  double steal_percent = 0;
};

// Sends at `rate` per second for `seconds` (batches of 1, as a scheduler fire of one task would)
// while the caller's receiver takes them, and waits until `received()`, its count, has them all.
LatencyRun Drive(Queue& queue, double rate, double seconds, const std::function<std::int64_t()>& received) {
  const CpuTimes cpu_before = ReadCpuTimes();
  const int total = static_cast<int>(rate * seconds);
  const auto start = SteadyClock::now();
  // Sends what is due, then sleeps 200 us: on a 2-core machine a spinning sender would take a
  // whole core from the consumer it measures.
  int sent = 0;
  while (sent < total) {
    const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
    const int due = std::min(total, static_cast<int>(elapsed * rate) + 1);
    for (; sent < due; ++sent) (void)queue.Send({.body = Body(NowNs())});
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  while (received() < total) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return {.latencies_ms = {}, .steal_percent = StealPercent(cpu_before, ReadCpuTimes())};
}

// The consumer's send->handler-start latencies at `rate`.
LatencyRun Latency(int workers, double rate, double seconds, bool pollers_hand_over = false) {
  std::unique_ptr<Queue> queue = NewQueue();
  NoopHandler handler;
  handler.Record(true);
  std::map<std::string, ConsumerJob, std::less<>> jobs;
  jobs["noop"] = ConsumerJob{.handler = &handler, .timeout = std::chrono::seconds(60)};
  Consumer consumer(*queue, RealClock(), jobs, nullptr, nullptr, Options(workers, pollers_hand_over));
  consumer.Start();
  LatencyRun run = Drive(*queue, rate, seconds, [&] { return handler.done(); });
  consumer.Stop();
  run.latencies_ms = handler.Latencies();
  return run;
}

// The baseline for Latency(): the same sender, queue and rate, taken by one thread that
// long-polls ReceiveMessage for one message and deletes it at once. No envelope decoding, no
// handler, no hand-over, no result: what is left is the queue's wake-up and the machine.
LatencyRun BareQueueLatency(double rate, double seconds) {
  std::unique_ptr<Queue> queue = NewQueue();
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(rate * seconds) + 1);
  std::atomic<std::int64_t> received{0};
  std::atomic<bool> stop{false};
  std::thread receiver([&] {
    while (!stop.load()) {
      StatusOr<std::vector<ReceivedMessage>> got =
          queue->Receive({.max_messages = 1, .wait = std::chrono::seconds(1)});
      if (!got.ok()) continue;
      for (const ReceivedMessage& m : *got) {
        const std::int64_t now = NowNs();
        // The send time, without decoding the envelope: {"job":"noop","task":{"t":N},...
        const std::size_t at = m.body.find("\"t\":");
        if (at != std::string::npos) {
          latencies.push_back(static_cast<double>(now - std::atoll(m.body.c_str() + at + 4)) / 1e6);
        }
        (void)queue->Delete(m.receipt_handle);
        received.fetch_add(1);
      }
    }
  });
  LatencyRun run = Drive(*queue, rate, seconds, [&] { return received.load(); });
  stop = true;
  queue->Shutdown();
  receiver.join();
  run.latencies_ms = std::move(latencies);
  return run;
}

double BareQueue(int messages) {
  std::unique_ptr<Queue> queue = NewQueue();
  Fill(*queue, messages);
  const auto start = SteadyClock::now();
  int got = 0;
  while (got < messages) {
    StatusOr<std::vector<ReceivedMessage>> received = queue->Receive({.max_messages = 10});
    if (!received.ok() || received->empty()) break;
    std::vector<DeleteBatchEntry> deletes;
    for (const ReceivedMessage& m : *received) {
      deletes.push_back({.id = "d" + std::to_string(deletes.size()), .receipt_handle = m.receipt_handle});
    }
    (void)queue->DeleteBatch(deletes);
    got += static_cast<int>(received->size());
  }
  return got / std::chrono::duration<double>(SteadyClock::now() - start).count();
}

double ExecThroughput(int tasks) {
  HandlerConfig config;
  config.type = "exec";
  config.command = {"/bin/true"};
  StatusOr<std::unique_ptr<HttpClient>> http = NewCurlHttpClient();
  if (!http.ok()) std::exit(1);
  HandlerDeps deps{.clock = RealClock(), .http = **http, .logger = nullptr};
  StatusOr<std::unique_ptr<Handler>> exec = HandlerRegistry::WithBuiltins().Create(config, deps);
  if (!exec.ok()) {
    std::fprintf(stderr, "%s\n", exec.status().ToString().c_str());
    std::exit(1);
  }
  // Count through a wrapper.
  struct Counting final : Handler {
    Handler* inner;
    std::atomic<std::int64_t> done{0};
    HandlerOutcome Run(const HandlerTask& task, std::stop_token stop) override {
      HandlerOutcome outcome = inner->Run(task, stop);
      if (!outcome.status.ok()) std::fprintf(stderr, "exec failed: %s\n", outcome.status.ToString().c_str());
      done.fetch_add(1);
      return outcome;
    }
  } counting;
  counting.inner = exec->get();
  return Throughput(8, tasks, counting, "exec", [&] { return counting.done.load(); });
}

double IdleRssMib(const std::string& taskpipe) {
  if (taskpipe.empty() || access(taskpipe.c_str(), X_OK) != 0) return -1;
  char dir[] = "/tmp/taskpipe-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return -1;
  const std::string config = std::string(dir) + "/idle.json";
  std::ofstream(config) << R"json({"consumer": {"workers": 16},
    "jobs": [{"name": "later", "schedule": "cron(0 0 1 1 ? 2199)", "tasks": ["x"]}]})json";
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    execl(taskpipe.c_str(), taskpipe.c_str(), "run", "--config", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  double mib = -1;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) mib = std::atof(line.c_str() + 6) / 1024.0;
  }
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  std::remove(config.c_str());
  rmdir(dir);
  return mib;
}

int Main(int argc, char** argv) {
  int tasks = 200000;
  std::string taskpipe;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--tasks") == 0 && i + 1 < argc) {
      tasks = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--taskpipe") == 0 && i + 1 < argc) {
      taskpipe = argv[++i];
    } else if (std::strcmp(argv[i], "--latency") == 0 && i + 2 < argc) {
      // One latency measurement, for exploring: --latency WORKERS RATE (WORKERS 0: the baseline).
      const int workers = std::atoi(argv[i + 1]);
      const double rate = std::atof(argv[i + 2]);
      const LatencyRun run = workers == 0 ? BareQueueLatency(rate, 2.0) : Latency(workers, rate, 2.0);
      std::printf("workers %d, %.0f tasks/s: p50 %.3f ms, p99 %.3f ms, max %.3f ms, steal %.1f%%\n", workers, rate,
                  Percentile(run.latencies_ms, 0.5), Percentile(run.latencies_ms, 0.99),
                  Percentile(run.latencies_ms, 1.0), run.steal_percent);
      return 0;
    } else {
      std::fprintf(stderr, "usage: %s [--tasks N] [--taskpipe PATH] | --latency WORKERS RATE\n", argv[0]);
      return 2;
    }
  }
  if (taskpipe.empty()) {
    // Beside this binary, as the build lays it out.
    std::string self = argv[0];
    const std::size_t slash = self.rfind('/');
    taskpipe = (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/taskpipe";
  }

  std::printf("allocator: %s (this benchmark and the taskpipe binary, CMake's TASKPIPE_ALLOCATOR)\n",
              TASKPIPE_ALLOCATOR);
  const double bare = BareQueue(tasks);
  std::printf("%-34s %14s %10s %10s %12s %7s %14s %12s\n", "case", "tasks/s", "p50 ms", "p99 ms", "bare p99 ms",
              "steal%", "p99 best/2", "bare p99");
  std::printf("(p50/p99: send->handler start, tasks sent one by one at 50,000/s; bare p99: the same sends\n"
              " taken by one thread that receives and deletes, just before; steal%%: CPU time the hypervisor\n"
              " gave to other guests during the consumer's run; p99 best/2: the same at half the best\n"
              " tasks/s, with its own baseline)\n");
  std::printf("%-34s %14.0f\n", "bare queue receive+delete, 1 thread", bare);
  // Per worker count: throughput from a full queue. Then send->start latency with each worker
  // count at the two rates below; the p99 figures are the best (a user picks the worker count).
  const int worker_counts[] = {1, 4, 16};
  double best = 0;
  std::vector<double> throughput;
  for (int workers : worker_counts) {
    NoopHandler handler;
    throughput.push_back(Throughput(workers, tasks, handler, "noop", [&] { return handler.done(); }));
    best = std::max(best, throughput.back());
  }
  // Latency at two rates. The issue's target, "p99 <= 2 ms at half that rate", after ">= 100,000
  // tasks/s": at 50,000 tasks/s (kTargetRate), the figure pipeline_p99_ms reports. And, as a
  // stress figure, at half the best tasks/s measured above: that rate moves with the machine
  // (2-core VMs here drained 150k-550k/s in one worker), and near it the sender and the consumer
  // share the two cores.
  constexpr double kTargetRate = 50000;
  const double stress_rate = best / 2;
  // Each consumer run is paired with a baseline run just before it, so that both see the same
  // machine: on a shared VM the hypervisor's steal comes and goes within seconds.
  struct Best {
    double p50 = 0, p99 = -1, bare_p99 = 0, steal = 0;
    int workers = 0;
    void Offer(int w, const LatencyRun& run, const LatencyRun& bare) {
      const double candidate = Percentile(run.latencies_ms, 0.99);
      if (p99 >= 0 && candidate >= p99) return;
      p50 = Percentile(run.latencies_ms, 0.5);
      p99 = candidate;
      bare_p99 = Percentile(bare.latencies_ms, 0.99);
      steal = run.steal_percent;
      workers = w;
    }
  } at_target, at_stress;
  for (std::size_t i = 0; i < std::size(worker_counts); ++i) {
    const LatencyRun bare_run = BareQueueLatency(kTargetRate, 2.0);
    const LatencyRun run = Latency(worker_counts[i], kTargetRate, 2.0);
    const LatencyRun stress_bare = BareQueueLatency(stress_rate, 2.0);
    const LatencyRun stress = Latency(worker_counts[i], stress_rate, 2.0);
    at_target.Offer(worker_counts[i], run, bare_run);
    at_stress.Offer(worker_counts[i], stress, stress_bare);
    std::printf("%-34s %14.0f %10.3f %10.3f %12.3f %7.1f %14.3f %12.3f\n",
                ("no-op handler, " + std::to_string(worker_counts[i]) + " workers").c_str(), throughput[i],
                Percentile(run.latencies_ms, 0.5), Percentile(run.latencies_ms, 0.99),
                Percentile(bare_run.latencies_ms, 0.99), run.steal_percent, Percentile(stress.latencies_ms, 0.99),
                Percentile(stress_bare.latencies_ms, 0.99));
  }
  {
    NoopHandler handler;
    const double per_second =
        Throughput(4, tasks, handler, "noop", [&] { return handler.done(); }, /*pollers_hand_over=*/true);
    const LatencyRun run = Latency(4, kTargetRate, 2.0, /*pollers_hand_over=*/true);
    const LatencyRun stress = Latency(4, stress_rate, 2.0, /*pollers_hand_over=*/true);
    std::printf("%-34s %14.0f %10.3f %10.3f %12s %7.1f %14.3f\n", "  (poller hands over, 4 workers)", per_second,
                Percentile(run.latencies_ms, 0.5), Percentile(run.latencies_ms, 0.99), "", run.steal_percent,
                Percentile(stress.latencies_ms, 0.99));
  }
  const double exec = ExecThroughput(2000);
  std::printf("%-34s %14.0f\n", "exec /bin/true, 8 workers", exec);
  const double rss = IdleRssMib(taskpipe);

  std::printf("pipeline_tasks_per_sec: %.0f\n", best);
  std::printf("pipeline_p50_ms: %.3f\n", at_target.p50);
  std::printf("pipeline_p99_ms: %.3f\n", at_target.p99);
  std::printf("pipeline_latency_rate_per_sec: %.0f (best p99 with %d workers)\n", kTargetRate, at_target.workers);
  std::printf("bare_queue_p99_ms: %.3f\n", at_target.bare_p99);
  std::printf("steal_percent_during_p99_run: %.1f\n", at_target.steal);
  std::printf("pipeline_p99_at_half_best_ms: %.3f (at %.0f tasks/s, %d workers; bare queue p99 %.3f, steal %.1f%%)\n",
              at_stress.p99, stress_rate, at_stress.workers, at_stress.bare_p99, at_stress.steal);
  std::printf("exec_tasks_per_sec: %.0f\n", exec);
  if (rss >= 0) {
    std::printf("idle_rss_mib: %.1f\n", rss);
  } else {
    std::printf("idle_rss_mib: unknown (no taskpipe binary at %s; pass --taskpipe PATH)\n", taskpipe.c_str());
  }
  std::printf("bare_queue_msgs_per_sec: %.0f\n", bare);
  std::printf("pipeline_vs_bare_queue: %.2f\n", best / bare);
  std::printf("targets: tasks/s >= 100000 (%s), p99 <= 2 ms at 50,000/s (%s), idle RSS <= 20 MiB (%s)\n",
              best >= 100000 ? "met" : "missed", at_target.p99 <= 2.0 ? "met" : "missed",
              rss < 0 ? "not measured" : rss <= 20 ? "met" : "missed");
  return 0;
}

}  // namespace
}  // namespace taskpipe

int main(int argc, char** argv) { return taskpipe::Main(argc, argv); }
