#include "notify/webhook_target.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <random>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/quote.h"
#include "common/redact.h"

namespace taskpipe {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// Drops at Enqueue() are logged on the first, then once per this many or per this interval.
constexpr std::uint64_t kDropLogEvery = 100;
constexpr Clock::duration kDropLogInterval = std::chrono::minutes(1);
// A 429 that names no wait is retried after this (still capped by max_retry_after).
constexpr milliseconds kDefaultRateLimitWait{1000};
// HttpRequest's own default, kept unless the request's whole timeout is shorter.
constexpr milliseconds kConnectTimeout{5000};
constexpr double kMinRate = 1e-3;
constexpr double kMaxRate = 1e6;
constexpr double kMaxBurst = 1e6;
// Longest back-off, timeout or requested wait: keeps time arithmetic far from overflow.
constexpr milliseconds kMaxWait = std::chrono::hours(24);

WebhookTargetOptions Normalize(WebhookTargetOptions o) {
  o.outbox_capacity = std::max<std::size_t>(o.outbox_capacity, 1);
  // NaN fails every comparison: `!(x > 0)` catches it too.
  if (!(o.rate_per_sec > 0)) o.rate_per_sec = 1.0;
  o.rate_per_sec = std::clamp(o.rate_per_sec, kMinRate, kMaxRate);
  if (!(o.burst >= 1)) o.burst = 1;
  o.burst = std::min(o.burst, kMaxBurst);
  o.max_attempts = std::max(o.max_attempts, 1);
  o.max_rate_limited = std::max(o.max_rate_limited, 1);
  o.retry_base = std::clamp(o.retry_base, milliseconds(0), kMaxWait);
  o.retry_max = std::clamp(o.retry_max, milliseconds(0), kMaxWait);
  o.request_timeout = std::clamp(o.request_timeout, milliseconds(1), kMaxWait);
  o.max_retry_after = std::clamp(o.max_retry_after, milliseconds(0), kMaxWait);
  return o;
}

double ClampJitter(double jitter) {
  if (!(jitter >= 0.0)) return 0.0;  // also NaN
  return std::min(jitter, std::nextafter(1.0, 0.0));
}

// Logs the first of a run of similar events, then one line per kDropLogEvery events or per
// kDropLogInterval, whichever comes first. Not synchronised (the target's mutex guards it).
class LogThrottle {
 public:
  // Records one event at `now`. Returns how many events the caller should report now (the events
  // since the last report, this one included), or 0 to stay quiet.
  std::uint64_t Note(Clock::time_point now) {
    ++unreported_;
    if (reported_ && unreported_ < kDropLogEvery && now - last_report_ < kDropLogInterval) return 0;
    reported_ = true;
    last_report_ = now;
    return std::exchange(unreported_, 0);
  }

 private:
  bool reported_ = false;
  Clock::time_point last_report_{};
  std::uint64_t unreported_ = 0;
};

struct LogLine {
  spdlog::level::level_enum level;
  std::string text;
};

std::string Millis(Clock::duration d) {
  return std::to_string(duration_cast<milliseconds>(d).count()) + " ms";
}

class WebhookTarget final : public NotifyTarget {
 public:
  WebhookTarget(std::string name, WebhookPlatform platform, WebhookTargetOptions options, HttpClient& http,
                Clock& clock, std::shared_ptr<spdlog::logger> logger, std::shared_ptr<RateLimitGate> gate)
      : name_(std::move(name)),
        platform_(std::move(platform)),
        options_(Normalize(std::move(options))),
        http_(http),
        clock_(clock),
        logger_(logger ? std::move(logger) : NullLogger()),
        gate_(std::move(gate)),
        prefix_("notify target " + QuoteForError(name_) + " (" + platform_.kind + ")") {
    assert(platform_.build_payload && platform_.classify);
    // Defence in depth: HttpClient and the platform's classify already keep the URL out of their
    // messages; should one slip through, it is masked before it reaches a log line.
    redactor_.AddSecret(platform_.request_url);
    if (const std::size_t scheme = platform_.request_url.find("://"); scheme != std::string::npos) {
      if (const std::size_t path = platform_.request_url.find_first_of("/?#", scheme + 3); path != std::string::npos) {
        redactor_.AddSecret(std::string_view(platform_.request_url).substr(path));
      }
    }
    // The bucket as GCRA: a request may go at `t` when t >= tat_ - tolerance_; each one pushes
    // tat_ (the "theoretical arrival time") one interval on. Integer nanoseconds keep the times
    // exact: with 1/s and a burst of 3, requests 4, 5, ... go exactly 1 s, 2 s, ... after the first.
    interval_ = Clock::duration(std::max<Clock::duration::rep>(
        1, std::llround(1e9 / options_.rate_per_sec)));
    tolerance_ = Clock::duration(std::llround((options_.burst - 1.0) * static_cast<double>(interval_.count())));
    tat_ = clock_.Now();  // full bucket
    if (options_.jitter) {
      jitter_ = options_.jitter;
    } else {
      auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
      jitter_ = [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); };
    }
    thread_ = std::thread([this] { Run(); });
  }

  ~WebhookTarget() override { Shutdown(clock_.Now()); }

  WebhookTarget(const WebhookTarget&) = delete;
  WebhookTarget& operator=(const WebhookTarget&) = delete;

  const std::string& name() const override { return name_; }

  bool Enqueue(const TaskResult& result) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++stats_.enqueued;
    std::uint64_t report = 0;
    std::string line;
    if (stopping_) {
      ++stats_.dropped_deadline;
      report = refused_log_.Note(clock_.Now());
      if (report > 0) {
        line = prefix_ + " is shutting down: dropped " + std::to_string(report) +
               " result(s) since the last report (" + std::to_string(stats_.dropped_deadline) +
               " dropped at shutdown in all)";
      }
    } else if (dead_) {
      ++stats_.dropped_dead;
      report = refused_log_.Note(clock_.Now());
      if (report > 0) {
        line = prefix_ + " is disabled: dropped " + std::to_string(report) +
               " result(s) since the last report (" + std::to_string(stats_.dropped_dead) + " in all)";
      }
    } else if (outbox_.size() >= options_.outbox_capacity) {
      ++stats_.dropped_full;
      report = full_log_.Note(clock_.Now());
      if (report > 0) {
        line = prefix_ + ": outbox full (" + std::to_string(options_.outbox_capacity) + " results): dropped " +
               std::to_string(report) + " result(s) since the last report (" +
               std::to_string(stats_.dropped_full) + " in all)";
      }
    } else {
      outbox_.push_back(Entry{.result = result, .seq = next_seq_++});
      lock.unlock();
      cv_.notify_all();
      return true;
    }
    lock.unlock();
    if (report > 0) logger_->warn("{}", line);
    return false;
  }

  void Shutdown(Clock::time_point deadline) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      deadline_ = deadline;
      cv_.notify_all();
    }
    if (join_started_) {
      // Another Shutdown() is joining: wait for it (a real wait on the thread, not a timed one).
      done_cv_.wait(lock, [&] { return joined_; });
      return;
    }
    join_started_ = true;
    lock.unlock();
    thread_.join();
    lock.lock();
    joined_ = true;
    const NotifyStats s = StatsLocked();
    done_cv_.notify_all();
    lock.unlock();
    logger_->log(s.dropped_deadline > 0 ? spdlog::level::warn : spdlog::level::info,
                 "{} shut down: {} delivered, {} dropped ({} outbox full, {} target dead, {} rejected, {} failed, "
                 "{} at the shutdown deadline)",
                 prefix_, s.delivered, s.dropped(), s.dropped_full, s.dropped_dead, s.dropped_rejected,
                 s.dropped_failed, s.dropped_deadline);
  }

  NotifyStats Stats() const override {
    std::lock_guard<std::mutex> guard(mu_);
    return StatsLocked();
  }

 private:
  struct Entry {
    TaskResult result;
    std::uint64_t seq = 0;  // tells the delivery thread when the head has changed
    int attempts = 0;       // kRetry replies and transport errors
    int rate_limited = 0;   // 429s
    std::string last_error{};
  };

  NotifyStats StatsLocked() const {
    NotifyStats s = stats_;
    s.pending = outbox_.size();
    return s;
  }

  std::string JobText(const TaskResult& result) const {
    return result.job.empty() ? std::string("(no job)") : QuoteForError(result.job);
  }

  // When the next request may start, as far as the target's own state and the gate say.
  Clock::time_point ReadyAtLocked() const {
    Clock::time_point ready = std::max({tat_ - tolerance_, hold_until_, backoff_until_});
    if (gate_) ready = std::max(ready, gate_->until());
    return ready;
  }

  void PopHeadLocked() { outbox_.pop_front(); }

  void DropAllAtDeadlineLocked(std::vector<LogLine>& logs) {
    if (outbox_.empty()) return;
    const std::size_t n = outbox_.size();
    stats_.dropped_deadline += n;
    outbox_.clear();
    logs.push_back({spdlog::level::warn,
                    prefix_ + ": shutdown deadline reached: dropped " + std::to_string(n) + " undelivered result(s)"});
  }

  void Emit(std::vector<LogLine>& logs) {
    for (const LogLine& l : logs) logger_->log(l.level, "{}", l.text);
    logs.clear();
  }

  // Applies the reply to the head of the outbox. REQUIRES: mu_ held, outbox_ not empty.
  void HandleVerdictLocked(const DeliveryVerdict& verdict, Clock::time_point after, std::vector<LogLine>& logs) {
    Entry& head = outbox_.front();
    const std::string job = JobText(head.result);
    const Clock::duration asked = std::clamp(verdict.retry_after, milliseconds(0), options_.max_retry_after);
    if (asked > Clock::duration::zero()) hold_until_ = std::max(hold_until_, after + asked);
    switch (verdict.kind) {
      case DeliveryVerdict::Kind::kDelivered:
        ++stats_.delivered;
        logs.push_back({spdlog::level::trace, prefix_ + ": delivered a result of job " + job});
        if (asked > Clock::duration::zero()) {
          logs.push_back({spdlog::level::debug, prefix_ + ": the platform's bucket is empty; next request in " +
                                                    Millis(asked)});
        }
        PopHeadLocked();
        return;
      case DeliveryVerdict::Kind::kRateLimited: {
        ++stats_.rate_limited;
        ++head.rate_limited;
        const Clock::duration wait =
            verdict.retry_after > milliseconds(0)
                ? asked
                : std::min<Clock::duration>(kDefaultRateLimitWait, options_.max_retry_after);
        hold_until_ = std::max(hold_until_, after + wait);
        if (verdict.global && gate_) gate_->PauseUntil(after + wait);
        if (head.rate_limited >= options_.max_rate_limited) {
          ++stats_.dropped_failed;
          logs.push_back({spdlog::level::warn, prefix_ + ": dropped a result of job " + job + " after " +
                                                   std::to_string(head.rate_limited) +
                                                   " rate-limited replies; last: " + verdict.error});
          PopHeadLocked();
        } else {
          logs.push_back({spdlog::level::debug,
                          prefix_ + ": rate limited" + (verdict.global ? " (global)" : "") + ": " + verdict.error +
                              "; retrying in " + Millis(wait)});
        }
        return;
      }
      case DeliveryVerdict::Kind::kRetry: {
        ++stats_.retries;
        ++head.attempts;
        head.last_error = verdict.error;
        const Clock::duration backoff =
            WebhookBackoff(head.attempts, options_.retry_base, options_.retry_max, jitter_());
        backoff_until_ = after + backoff;
        if (head.attempts >= options_.max_attempts) {
          ++stats_.dropped_failed;
          logs.push_back({spdlog::level::warn, prefix_ + ": dropped a result of job " + job + " after " +
                                                   std::to_string(head.attempts) +
                                                   " failed attempt(s); last error: " + head.last_error});
          PopHeadLocked();
        } else {
          logs.push_back({spdlog::level::debug, prefix_ + ": attempt " + std::to_string(head.attempts) +
                                                    " for a result of job " + job + " failed: " + verdict.error +
                                                    "; retrying in " + Millis(backoff)});
        }
        return;
      }
      case DeliveryVerdict::Kind::kRejected:
        ++stats_.dropped_rejected;
        logs.push_back({spdlog::level::warn,
                        prefix_ + ": dropped a result of job " + job + ", rejected by the platform: " + verdict.error});
        PopHeadLocked();
        return;
      case DeliveryVerdict::Kind::kDead:
        dead_ = true;
        stats_.dropped_dead += outbox_.size();
        outbox_.clear();
        logs.push_back({spdlog::level::err, prefix_ + " is disabled: " + verdict.error + "; check its webhook URL"});
        return;
    }
  }

  void Run() {
    std::vector<LogLine> logs;
    std::uint64_t body_seq = 0;  // seq of the entry `body` was built for (seqs start at 1)
    std::string body;
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (!logs.empty()) {
        lock.unlock();
        Emit(logs);
        lock.lock();
      }
      if (outbox_.empty()) {
        if (stopping_) break;
        // Idle: nothing timed to wait for, so a plain wait (it is not a FakeClock waiter).
        cv_.wait(lock, [&] { return stopping_ || !outbox_.empty(); });
        continue;
      }
      const Clock::time_point now = clock_.Now();
      if (stopping_ && now >= deadline_) {
        DropAllAtDeadlineLocked(logs);
        continue;
      }
      const Clock::time_point ready = ReadyAtLocked();
      if (now < ready) {
        // Shutdown() wakes the wait (its deadline may cut it); a gate pause that moved later
        // while we waited is seen when the loop comes back here.
        const bool was_stopping = stopping_;
        const Clock::time_point wake = stopping_ ? std::min(ready, deadline_) : ready;
        clock_.WaitUntil(lock, cv_, wake, [&] { return stopping_ != was_stopping; });
        continue;
      }
      Clock::duration timeout = options_.request_timeout;
      if (stopping_) timeout = std::min(timeout, deadline_ - now);
      const milliseconds timeout_ms = std::chrono::floor<milliseconds>(timeout);
      if (timeout_ms < milliseconds(1)) {  // curl would read 0 as "no timeout"
        DropAllAtDeadlineLocked(logs);
        continue;
      }
      tat_ = std::max(tat_, now) + interval_;
      // Only this thread removes entries, and push_back keeps references to the others valid, so
      // `head` stays usable with the lock released; Enqueue() never touches it.
      const Entry& head = outbox_.front();
      const std::uint64_t seq = head.seq;
      const int attempt = head.attempts + head.rate_limited + 1;
      lock.unlock();

      if (body_seq != seq) {
        body = platform_.build_payload(head.result);
        body_seq = seq;
      }
      logger_->trace("{}: sending a result of job {} (request {}, timeout {} ms)", prefix_, JobText(head.result),
                     attempt, timeout_ms.count());
      HttpRequest request{
          .method = "POST",
          .url = platform_.request_url,
          .headers = {{"Content-Type", "application/json"}, {"User-Agent", "taskpipe/" TASKPIPE_VERSION}},
          .body = body,
          .timeout = timeout_ms,
          .connect_timeout = std::min(kConnectTimeout, timeout_ms),
      };
      StatusOr<HttpResponse> reply = http_.Send(request);
      DeliveryVerdict verdict;
      if (reply.ok()) {
        verdict = platform_.classify(*reply);
      } else {
        verdict.kind = DeliveryVerdict::Kind::kRetry;
        verdict.error = reply.status().ToString();
      }
      verdict.error = redactor_.Redact(verdict.error);
      const Clock::time_point after = clock_.Now();

      lock.lock();
      HandleVerdictLocked(verdict, after, logs);
    }
    lock.unlock();
    Emit(logs);
  }

  const std::string name_;
  const WebhookPlatform platform_;
  const WebhookTargetOptions options_;
  HttpClient& http_;
  Clock& clock_;
  const std::shared_ptr<spdlog::logger> logger_;
  const std::shared_ptr<RateLimitGate> gate_;
  const std::string prefix_;  // `notify target "name" (kind)`: the name of the target in log lines
  Redactor redactor_;         // the URL and its path; thread-safe itself
  Clock::duration interval_{};
  Clock::duration tolerance_{};
  std::function<double()> jitter_;  // delivery thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;       // delivery thread: work, Shutdown()
  std::condition_variable done_cv_;  // a second Shutdown(): the first has joined
  std::deque<Entry> outbox_;         // GUARDED_BY(mu_)
  std::uint64_t next_seq_ = 1;       // GUARDED_BY(mu_)
  NotifyStats stats_;                // GUARDED_BY(mu_); pending computed
  Clock::time_point tat_{};          // GUARDED_BY(mu_): the bucket
  Clock::time_point hold_until_{};   // GUARDED_BY(mu_): retry-after / reset-after
  Clock::time_point backoff_until_{};  // GUARDED_BY(mu_)
  bool dead_ = false;                // GUARDED_BY(mu_)
  bool stopping_ = false;            // GUARDED_BY(mu_)
  Clock::time_point deadline_{};     // GUARDED_BY(mu_); set with stopping_
  bool join_started_ = false;        // GUARDED_BY(mu_)
  bool joined_ = false;              // GUARDED_BY(mu_)
  LogThrottle full_log_;             // GUARDED_BY(mu_)
  LogThrottle refused_log_;          // GUARDED_BY(mu_): dead or shutting down
  std::thread thread_;               // started last in the constructor; joined by Shutdown()
};

}  // namespace

void RateLimitGate::PauseUntil(Clock::time_point t) {
  std::lock_guard<std::mutex> guard(mu_);
  until_ = std::max(until_, t);
}

Clock::time_point RateLimitGate::until() const {
  std::lock_guard<std::mutex> guard(mu_);
  return until_;
}

Status ValidateWebhookTargetOptions(const WebhookTargetOptions& o) {
  if (o.outbox_capacity < 1) return InvalidArgumentError("outbox_capacity must be at least 1");
  if (!(o.rate_per_sec >= kMinRate) || o.rate_per_sec > kMaxRate) {
    return InvalidArgumentError("rate_per_sec must be between 0.001 and 1000000");
  }
  if (!(o.burst >= 1) || o.burst > kMaxBurst) return InvalidArgumentError("burst must be between 1 and 1000000");
  if (o.max_attempts < 1) return InvalidArgumentError("max_attempts must be at least 1");
  if (o.max_rate_limited < 1) return InvalidArgumentError("max_rate_limited must be at least 1");
  auto in_range = [](milliseconds d, milliseconds low) { return d >= low && d <= kMaxWait; };
  if (!in_range(o.retry_base, milliseconds(0))) return InvalidArgumentError("retry_base must be between 0 and 24 h");
  if (!in_range(o.retry_max, milliseconds(0))) return InvalidArgumentError("retry_max must be between 0 and 24 h");
  if (!in_range(o.request_timeout, milliseconds(1))) {
    return InvalidArgumentError("request_timeout must be between 1 ms and 24 h");
  }
  if (!in_range(o.max_retry_after, milliseconds(0))) {
    return InvalidArgumentError("max_retry_after must be between 0 and 24 h");
  }
  return Status::Ok();
}

Clock::duration WebhookBackoff(int attempt, milliseconds base, milliseconds max, double jitter) {
  if (base <= milliseconds(0) || max <= milliseconds(0)) return Clock::duration::zero();
  // min(base * 2^(attempt - 1), max), doubling step by step so that it cannot overflow.
  const Clock::duration cap = std::min(max, kMaxWait);
  Clock::duration d = std::min<Clock::duration>(std::min(base, kMaxWait), cap);
  for (int i = 1; i < attempt && d < cap; ++i) d = d > cap / 2 ? cap : d * 2;
  const Clock::duration half = d / 2;
  return half + Clock::duration(static_cast<Clock::duration::rep>(ClampJitter(jitter) *
                                                                  static_cast<double>((d - half).count())));
}

std::unique_ptr<NotifyTarget> NewWebhookTarget(std::string name, WebhookPlatform platform,
                                               WebhookTargetOptions options, HttpClient& http, Clock& clock,
                                               std::shared_ptr<spdlog::logger> logger,
                                               std::shared_ptr<RateLimitGate> global_gate) {
  return std::make_unique<WebhookTarget>(std::move(name), std::move(platform), std::move(options), http, clock,
                                         std::move(logger), std::move(global_gate));
}

}  // namespace taskpipe
