#include "consumer/consumer.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <utility>

#include "common/logging.h"
#include "common/quote.h"
#include "config/json_text.h"
#include "consumer/retry_policy.h"
#include "producer/envelope.h"

namespace taskpipe {

namespace {

using nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Outbox entries: tries per entry before giving up, and the first retry's delay (doubling).
constexpr int kMaxOutboxAttempts = 5;
constexpr milliseconds kOutboxRetryBase{100};
// Handler run times kept for the p50/p99 figures.
constexpr std::size_t kDurationWindow = 1024;
// Visibility set near the 12-hour cap stays this far below it: the cap counts from the receive
// and the request reaches the queue a little after we computed the timeout.
constexpr seconds kCapMargin{5};

ConsumerOptions Normalize(ConsumerOptions o) {
  o.workers = std::clamp(o.workers, 1, 1024 * 16);
  o.batch_size = std::clamp(o.batch_size, 1, kMaxReceiveMessages);
  o.pollers = std::clamp(o.pollers, 1, 1024);
  o.wait_time = std::clamp(o.wait_time, seconds(0), kMaxWaitTime);
  o.visibility_timeout = std::clamp(o.visibility_timeout, seconds(1), kMaxVisibilityTimeout);
  o.shutdown_grace = std::max(o.shutdown_grace, seconds(0));
  o.retry.base = std::max(o.retry.base, seconds(0));
  o.retry.max = std::max(o.retry.max, seconds(0));
  o.max_receive_count = std::max(o.max_receive_count, 0);
  o.delete_flush_interval = std::max(o.delete_flush_interval, milliseconds(0));
  o.summary_interval = std::max(o.summary_interval, seconds(0));
  o.receive_backoff_base = std::max(o.receive_backoff_base, milliseconds(0));
  o.receive_backoff_max = std::max(o.receive_backoff_max, milliseconds(0));
  o.timeout_grace = std::max(o.timeout_grace, seconds(0));
  return o;
}

// The default job's task: the body's JSON object when it is one, else the body as a string.
// (Nesting is checked first: see ScanJsonBrackets().)
json BodyAsTask(const std::string& body) {
  if (!ScanJsonBrackets(body, kMaxEnvelopeDepth).too_deep) {
    json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) return parsed;
  }
  return json(body);
}

// Compact JSON that never throws (invalid UTF-8 in a raw body becomes U+FFFD).
std::string Dump(const json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

struct Route {
  const ConsumerJob* job = nullptr;  // null: the message cannot be handled
  std::string job_name{};
  json task{};
  std::chrono::system_clock::time_point scheduled_at{};
  std::string error{};  // why job is null
};

Route RouteMessage(const std::string& body, const std::map<std::string, ConsumerJob, std::less<>>& jobs,
                   const std::string& default_job) {
  Route route;
  StatusOr<Envelope> envelope = DecodeEnvelope(body);
  if (envelope.ok()) {
    const auto it = jobs.find(envelope->job);
    route.scheduled_at = envelope->scheduled_at;
    if (it != jobs.end()) {
      route.job = &it->second;
      route.job_name = envelope->job;
      route.task = std::move(envelope->task);
      return route;
    }
    route.error = "unknown job " + QuoteForError(envelope->job);
  } else {
    route.error = envelope.status().message();
  }
  if (default_job.empty()) {
    route.error += "; no consumer.default_job is set";
    return route;
  }
  const auto it = jobs.find(default_job);
  if (it == jobs.end()) {
    route.error += "; consumer.default_job " + QuoteForError(default_job) + " is not a job of this consumer";
    return route;
  }
  route.job = &it->second;
  route.job_name = default_job;
  route.task = BodyAsTask(body);
  route.error.clear();
  return route;
}

// Handlers may be user C++ code: an exception must not escape into a worker thread.
HandlerOutcome RunHandler(Handler& handler, const HandlerTask& task, std::stop_token stop) {
  try {
    return handler.Run(task, std::move(stop));
  } catch (const std::exception& e) {
    return {InternalError(std::string("the handler threw an exception: ") + e.what()), ""};
  } catch (...) {
    return {InternalError("the handler threw an exception"), ""};
  }
}

bool HandleGone(const Status& status) {
  return status.error_name() == "ReceiptHandleIsInvalid" || status.error_name() == "MessageNotInflight";
}

// Batch entry ids are positions in the request ("0".."9"); anything else maps past the end.
std::size_t EntryIndex(const std::string& id) {
  if (id.empty() || id.size() > 2 || !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return static_cast<std::size_t>(-1);
  }
  return static_cast<std::size_t>(std::stoi(id));
}

seconds FloorSeconds(Clock::duration d) {
  return d <= Clock::duration::zero() ? seconds(0) : std::chrono::floor<seconds>(d);
}

}  // namespace

// One received message, from the receive until its outcome is reported.
struct Consumer::Lease {
  enum class State { kQueued, kRunning, kDone };

  std::uint64_t id = 0;
  ReceivedMessage message;
  State state = State::kQueued;
  // Visibility, as seen from this side: the message is invisible at least until visible_at (the
  // time before the request that set it, plus the timeout), and may be kept invisible until cap
  // (12 h after the time before the receive).
  Clock::time_point visible_at{};
  Clock::time_point next_extend_at{};
  Clock::time_point cap{};
  bool extending = false;       // an extension request for it is in flight
  bool extension_over = false;  // its handle is gone or the cap is reached: no more extensions
  // The handler's run.
  std::stop_source stop{};
  Clock::time_point stop_at = Clock::time_point::max();  // deadline + timeout_grace
  bool timeout_stopped = false;  // the consumer requested stop: past its timeout
  bool interrupted = false;      // the consumer requested stop: shutting down
};

struct Consumer::OutboxEntry {
  enum class Kind { kDelete, kVisibility };

  Kind kind = Kind::kDelete;
  std::string receipt_handle{};
  seconds visibility{0};
  std::string message_id{};
  int attempts = 0;
  Clock::time_point due{};
  Status last_error{};
};

ConsumerOptions ConsumerOptionsFromConfig(const Config& config) {
  ConsumerOptions options;
  options.workers = config.consumer.workers;
  options.batch_size = config.consumer.batch_size;
  options.pollers = config.consumer.pollers;
  options.receive_per_worker = config.queue.backend == "memory";
  options.abort_receives_on_stop = config.queue.backend == "memory";
  options.wait_time = config.queue.wait_time;
  options.visibility_timeout = config.queue.visibility_timeout;
  options.shutdown_grace = config.consumer.shutdown_grace;
  options.retry = config.consumer.retry;
  options.default_job = config.consumer.default_job;
  options.max_receive_count = config.queue.backend == "memory" ? config.queue.max_receive_count : 0;
  return options;
}

Consumer::Consumer(Queue& queue, Clock& clock, std::map<std::string, ConsumerJob, std::less<>> jobs,
                   ResultCallback on_result, std::shared_ptr<spdlog::logger> logger, ConsumerOptions options)
    : queue_(queue),
      clock_(clock),
      jobs_(std::move(jobs)),
      on_result_(std::move(on_result)),
      logger_(logger ? std::move(logger) : NullLogger()),
      options_(Normalize(std::move(options))),
      rng_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {
  durations_.reserve(kDurationWindow);
}

Consumer::~Consumer() { Stop(); }

void Consumer::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_ || stop_begun_) return;
    started_ = true;
    // Absolute, so that the first summary does not depend on when the thread gets going.
    if (options_.summary_interval > seconds(0)) next_summary_ = clock_.Now() + options_.summary_interval;
  }
  if (options_.receive_per_worker) {
    logger_->info("consumer starting: {} workers, each receiving for itself, visibility timeout {}s, wait {}s",
                  options_.workers, options_.visibility_timeout.count(), options_.wait_time.count());
  } else {
    logger_->info("consumer starting: {} workers, {} poller(s), batch size {}, visibility timeout {}s, wait {}s",
                  options_.workers, options_.pollers, options_.batch_size, options_.visibility_timeout.count(),
                  options_.wait_time.count());
  }
  threads_.reserve(static_cast<std::size_t>(1 + options_.workers + options_.pollers));
  threads_.emplace_back([this] { MaintenanceLoop(); });
  if (options_.receive_per_worker) {
    for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { ReceivingWorkerLoop(); });
    return;
  }
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  for (int i = 0; i < options_.pollers; ++i) threads_.emplace_back([this] { PollerLoop(); });
}

int Consumer::FreeSlotsLocked() const {
  return options_.workers - reserved_ - static_cast<int>(leases_.size());
}

double Consumer::JitterLocked() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

void Consumer::WakeMaintenanceLocked(Clock::time_point at) {
  if (at < maint_deadline_) {
    maint_wake_ = true;
    maint_cv_.notify_one();
  }
}

Consumer::Lease* Consumer::AddLeaseLocked(ReceivedMessage message, Clock::time_point received_before,
                                          bool running) {
  auto lease = std::make_unique<Lease>();
  lease->id = next_lease_id_++;
  lease->message = std::move(message);
  lease->state = running ? Lease::State::kRunning : Lease::State::kQueued;
  if (running) ++running_;
  lease->visible_at = received_before + options_.visibility_timeout;
  lease->next_extend_at = lease->visible_at - Clock::duration(options_.visibility_timeout) / 3;
  lease->cap = received_before + kMaxVisibilityTimeout;
  Lease* raw = lease.get();
  leases_.emplace(raw->id, std::move(lease));
  WakeMaintenanceLocked(raw->next_extend_at);
  return raw;
}

void Consumer::EnqueueLocked(OutboxEntry entry) {
  entry.due = clock_.Now() + options_.delete_flush_interval;
  WakeMaintenanceLocked(entry.due);
  outbox_.push_back(std::move(entry));
}

void Consumer::ReleaseLocked(std::vector<std::unique_ptr<Lease>> leases) {
  for (const std::unique_ptr<Lease>& lease : leases) {
    OutboxEntry entry;
    entry.kind = OutboxEntry::Kind::kVisibility;
    entry.receipt_handle = lease->message.receipt_handle;
    entry.visibility = seconds(0);
    entry.message_id = lease->message.message_id;
    EnqueueLocked(std::move(entry));
    ++counters_.released;
  }
}

std::vector<Consumer::Lease*> Consumer::ReceiveLeases(std::unique_lock<std::mutex>& lock, int max,
                                                      bool start_now, int& failures) {
  ReceiveOptions receive;
  receive.max_messages = max;
  receive.wait = options_.wait_time;
  receive.visibility_timeout = options_.visibility_timeout;
  reserved_ += max;
  ++receives_in_progress_;
  lock.unlock();
  const Clock::time_point before = clock_.Now();
  StatusOr<std::vector<ReceivedMessage>> received = queue_.Receive(receive);
  lock.lock();
  reserved_ -= max;
  --receives_in_progress_;
  if (!options_.receive_per_worker) slots_cv_.notify_all();  // unused reservations are free again
  done_cv_.notify_all();

  std::vector<Lease*> leases;
  if (!received.ok()) {
    if (stopping_) return leases;  // Stop() shut the queue down under the call
    ++failures;
    CountReceiveLocked(false);
    const Clock::duration wait =
        Backoff(failures, options_.receive_backoff_base, options_.receive_backoff_max, JitterLocked());
    lock.unlock();
    logger_->log(IsRetryable(received.status()) ? spdlog::level::warn : spdlog::level::err,
                 "receive failed ({} in a row), retrying in {}ms: {}", failures,
                 duration_cast<milliseconds>(wait).count(), received.status().ToString());
    lock.lock();
    // A back-off wait, cut short by Stop(): never an instant re-poll flood.
    clock_.WaitUntil(lock, backoff_cv_, clock_.Now() + wait, [&] { return stopping_; });
    return leases;
  }
  if (failures > 0) {
    lock.unlock();
    logger_->info("receive recovered after {} failed attempt(s)", failures);
    lock.lock();
    failures = 0;
  }
  CountReceiveLocked(true);
  counters_.received += static_cast<std::int64_t>(received->size());
  if (stopping_) {
    // Received while Stop() began: give them back at once instead of starting them.
    if (received->empty()) return leases;
    std::vector<std::unique_ptr<Lease>> release;
    for (ReceivedMessage& message : *received) {
      auto lease = std::make_unique<Lease>();
      lease->message = std::move(message);
      release.push_back(std::move(lease));
    }
    ReleaseLocked(std::move(release));
    lock.unlock();
    FlushOutbox(FlushMode::kAll);
    lock.lock();
    return leases;
  }
  if (received->empty()) {
    if (clock_.Now() - before < options_.wait_time || options_.wait_time == seconds(0)) {
      // Empty before the long poll was over (the queue was shut down under us) or short polling
      // on an empty queue: pause instead of spinning.
      clock_.WaitUntil(lock, backoff_cv_, clock_.Now() + options_.receive_backoff_base, [&] { return stopping_; });
    }
    return leases;
  }
  leases.reserve(received->size());
  for (ReceivedMessage& message : *received) leases.push_back(AddLeaseLocked(std::move(message), before, start_now));
  return leases;
}

void Consumer::PollerLoop() {
  int failures = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    slots_cv_.wait(lock, [&] { return stopping_ || FreeSlotsLocked() > 0; });
    if (stopping_) return;
    // Backpressure: ask only for what free workers can start now.
    const int max = std::min(options_.batch_size, FreeSlotsLocked());
    const std::vector<Lease*> leases = ReceiveLeases(lock, max, /*start_now=*/false, failures);
    if (stopping_) return;
    // One wake-up per message: waking every idle worker for one message costs a context switch
    // each, for nothing.
    for (Lease* lease : leases) {
      ready_.push_back(lease);
      work_cv_.notify_one();
    }
  }
}

void Consumer::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stopping_ || !ready_.empty(); });
    if (stopping_) return;  // Stop() releases what is left in ready_
    Lease* lease = ready_.front();
    ready_.pop_front();
    lease->state = Lease::State::kRunning;
    ++running_;
    lock.unlock();
    Process(lease);
    lock.lock();
  }
}

void Consumer::ReceivingWorkerLoop() {
  int failures = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    // One message at a time: a worker never holds a message it has not started.
    const std::vector<Lease*> leases = ReceiveLeases(lock, 1, /*start_now=*/true, failures);
    for (Lease* lease : leases) {
      lock.unlock();
      Process(lease);
      lock.lock();
    }
  }
}

int Consumer::PollOnce() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_ || stopping_) return 0;
  }
  ReceiveOptions receive;
  receive.max_messages = std::min(options_.batch_size, options_.workers);
  receive.wait = options_.wait_time;
  receive.visibility_timeout = options_.visibility_timeout;
  const Clock::time_point before = clock_.Now();
  StatusOr<std::vector<ReceivedMessage>> received = queue_.Receive(receive);
  if (!received.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      CountReceiveLocked(false);
    }
    logger_->warn("receive failed: {}", received.status().ToString());
    return 0;
  }
  std::vector<Lease*> leases;
  {
    std::lock_guard<std::mutex> lock(mu_);
    CountReceiveLocked(true);
    counters_.received += static_cast<std::int64_t>(received->size());
    for (ReceivedMessage& message : *received) leases.push_back(AddLeaseLocked(std::move(message), before, false));
  }
  int handled = 0;
  for (std::size_t i = 0; i < leases.size(); ++i) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        std::vector<std::unique_ptr<Lease>> release;
        for (std::size_t j = i; j < leases.size(); ++j) {
          auto it = leases_.find(leases[j]->id);
          release.push_back(std::move(it->second));
          leases_.erase(it);
        }
        ReleaseLocked(std::move(release));
        done_cv_.notify_all();
        break;
      }
      leases[i]->state = Lease::State::kRunning;
      ++running_;
    }
    Process(leases[i]);
    ++handled;
  }
  FlushOutbox(FlushMode::kAll);
  return handled;
}

void Consumer::Process(Lease* lease) {
  const ReceivedMessage& message = lease->message;
  Route route = RouteMessage(message.body, jobs_, options_.default_job);

  TaskResult result;
  result.job = route.job_name;
  result.message_id = message.message_id;
  result.receive_count = message.receive_count;
  result.scheduled_at = route.scheduled_at;
  bool release = false;
  if (route.job == nullptr || route.job->handler == nullptr) {
    result.status = TaskStatus::kInvalid;
    result.error = route.job == nullptr ? route.error : "job " + QuoteForError(route.job_name) + " has no handler";
    if (route.job != nullptr) result.task = Dump(route.task);
  } else {
    HandlerTask task;
    task.job = route.job_name;
    task.task_json = Dump(route.task);
    task.task = std::move(route.task);
    task.message_id = message.message_id;
    task.receive_count = message.receive_count;
    task.scheduled_at = route.scheduled_at;
    result.task = task.task_json;

    const Clock::time_point start = clock_.Now();
    task.deadline = start + route.job->timeout;
    std::stop_token token;
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease->stop_at = task.deadline + options_.timeout_grace;
      token = lease->stop.get_token();
      WakeMaintenanceLocked(lease->stop_at);
    }
    HandlerOutcome outcome = RunHandler(*route.job->handler, task, token);
    const Clock::duration took = clock_.Now() - start;
    result.duration = duration_cast<milliseconds>(took);
    result.output = std::move(outcome.output);

    bool interrupted = false;
    bool timeout_stopped = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      interrupted = lease->interrupted;
      timeout_stopped = lease->timeout_stopped;
      if (durations_.size() < kDurationWindow) {
        durations_.push_back(result.duration);
      } else {
        durations_[durations_next_] = result.duration;
      }
      durations_next_ = (durations_next_ + 1) % kDurationWindow;
      const auto bucket = std::lower_bound(kHandlerDurationBounds.begin(), kHandlerDurationBounds.end(),
                                           result.duration);
      ++counters_.handler_duration_buckets[static_cast<std::size_t>(bucket - kHandlerDurationBounds.begin())];
      ++counters_.handler_runs;
      counters_.handler_duration_total += result.duration;
    }
    if (outcome.status.ok()) {
      result.status = TaskStatus::kSuccess;
    } else if (interrupted) {
      result.status = TaskStatus::kFailure;
      result.error = "interrupted by shutdown: " + outcome.status.ToString();
      release = true;
    } else if (outcome.status.code() == StatusCode::kDeadlineExceeded || timeout_stopped) {
      result.status = TaskStatus::kTimeout;
      result.error = outcome.status.code() == StatusCode::kDeadlineExceeded
                         ? outcome.status.ToString()
                         : "stopped " + std::to_string(options_.timeout_grace.count()) +
                               " s after its timeout of " + std::to_string(route.job->timeout.count()) +
                               " s: " + outcome.status.ToString();
    } else {
      result.status = TaskStatus::kFailure;
      result.error = outcome.status.ToString();
    }
  }
  result.finished_at = clock_.WallNow();

  // Queue the outcome. An extension in flight for this message must land first: sent after our
  // delete it would fail spuriously, and after our back-off it would override it.
  seconds visibility{0};
  bool full_batch = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    lease->state = Lease::State::kDone;
    --running_;
    done_cv_.wait(lock, [&] { return !lease->extending; });
    OutboxEntry entry;
    entry.receipt_handle = message.receipt_handle;
    entry.message_id = message.message_id;
    if (result.status == TaskStatus::kSuccess) {
      entry.kind = OutboxEntry::Kind::kDelete;
      ++counters_.succeeded;
      EnqueueLocked(std::move(entry));
    } else {
      switch (result.status) {
        case TaskStatus::kTimeout: ++counters_.timed_out; break;
        case TaskStatus::kInvalid: ++counters_.invalid; break;
        default: ++counters_.failed; break;
      }
      entry.kind = OutboxEntry::Kind::kVisibility;
      if (release) {
        ++counters_.released;
        result.will_retry = true;
        EnqueueLocked(std::move(entry));
      } else {
        visibility = RetryVisibility(message.receive_count, options_.retry, JitterLocked());
        // Not past the 12-hour cap (the queue would refuse it); at the cap, the message reappears
        // at its current deadline anyway.
        visibility = std::min(visibility, FloorSeconds(lease->cap - clock_.Now()) - kCapMargin);
        result.will_retry = options_.max_receive_count == 0 || message.receive_count < options_.max_receive_count;
        ++counters_.retried;
        if (!result.will_retry) ++counters_.dead_lettered;
        if (visibility >= seconds(1)) {
          entry.visibility = visibility;
          EnqueueLocked(std::move(entry));
        }
      }
    }
    int deletes = 0;
    int changes = 0;
    for (const OutboxEntry& pending : outbox_) {
      ++(pending.kind == OutboxEntry::Kind::kDelete ? deletes : changes);
    }
    full_batch = deletes >= kMaxBatchEntries || changes >= kMaxBatchEntries;
  }
  if (full_batch) FlushOutbox(FlushMode::kFullBatches);

  const std::string& job_text = result.job.empty() ? std::string("-") : result.job;
  if (result.status == TaskStatus::kSuccess) {
    logger_->debug("job {} message {} succeeded in {}ms (delivery {})", job_text, result.message_id,
                   result.duration.count(), result.receive_count);
  } else if (release) {
    logger_->warn("job {} message {} {}; released for another consumer (delivery {})", job_text,
                  result.message_id, result.error, result.receive_count);
  } else {
    const char* what = result.status == TaskStatus::kTimeout   ? "timed out"
                       : result.status == TaskStatus::kInvalid ? "cannot be handled"
                                                               : "failed";
    logger_->log(result.will_retry ? spdlog::level::warn : spdlog::level::err,
                 "job {} message {} {} (delivery {}, {}ms): {}; {}", job_text, result.message_id, what,
                 result.receive_count, result.duration.count(), result.error,
                 result.will_retry ? "retry in " + std::to_string(visibility.count()) + "s"
                                   : std::string("last delivery: the queue's redrive moves it to the "
                                                 "dead-letter queue"));
  }

  if (on_result_) on_result_(result);

  std::lock_guard<std::mutex> lock(mu_);
  leases_.erase(lease->id);
  slots_cv_.notify_one();
  done_cv_.notify_all();
}

void Consumer::FlushOutbox(FlushMode mode) {
  using Kind = OutboxEntry::Kind;
  while (true) {
    std::vector<OutboxEntry> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (outbox_.empty()) return;
      const Clock::time_point now = clock_.Now();
      // Which kind to send: any (kAll), one with an entry due (kDue), one with 10 pending
      // (kFullBatches). Entries of that kind that are not due yet fill the batch: they would go
      // soon anyway, and one request is cheaper than two.
      std::optional<Kind> kind;
      if (mode == FlushMode::kAll) {
        kind = outbox_.front().kind;
      } else if (mode == FlushMode::kDue) {
        for (const OutboxEntry& entry : outbox_) {
          if (entry.due <= now) {
            kind = entry.kind;
            break;
          }
        }
      } else {
        int deletes = 0;
        int changes = 0;
        for (const OutboxEntry& entry : outbox_) ++(entry.kind == Kind::kDelete ? deletes : changes);
        if (deletes >= kMaxBatchEntries) kind = Kind::kDelete;
        else if (changes >= kMaxBatchEntries) kind = Kind::kVisibility;
      }
      if (!kind) return;
      for (auto it = outbox_.begin(); it != outbox_.end() && batch.size() < kMaxBatchEntries;) {
        if (it->kind == *kind) {
          batch.push_back(std::move(*it));
          it = outbox_.erase(it);
        } else {
          ++it;
        }
      }
    }

    // Entry ids are positions in this request.
    StatusOr<BatchResult<Empty>> result = BatchResult<Empty>{};
    if (batch.front().kind == Kind::kDelete) {
      std::vector<DeleteBatchEntry> entries;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        entries.push_back({std::to_string(i), batch[i].receipt_handle});
      }
      result = queue_.DeleteBatch(entries);
    } else {
      std::vector<ChangeVisibilityBatchEntry> entries;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        entries.push_back({std::to_string(i), batch[i].receipt_handle, batch[i].visibility});
      }
      result = queue_.ChangeVisibilityBatch(entries);
    }

    // Sort out each entry: done, retry, or give up (logged below, outside the lock). A whole call
    // that failed is retried when IsRetryable() says so; a failed entry when it is not the
    // sender's fault. An entry the response does not mention has an unknown fate: retried.
    std::vector<bool> done(batch.size(), false);
    std::vector<Status> failure(batch.size(), UnavailableError("the response has no result for the entry"));
    std::vector<bool> retryable(batch.size(), true);
    if (!result.ok()) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        failure[i] = result.status();
        retryable[i] = IsRetryable(result.status());
      }
    } else {
      for (const auto& success : result->successful) {
        if (const std::size_t i = EntryIndex(success.id); i < batch.size()) done[i] = true;
      }
      for (const BatchEntryFailure& f : result->failed) {
        if (const std::size_t i = EntryIndex(f.id); i < batch.size()) {
          failure[i] = f.status;
          retryable[i] = !f.sender_fault;
        }
      }
    }
    std::vector<std::string> give_up;      // log lines
    std::vector<std::string> lost_handle;  // log lines (warn)
    {
      std::lock_guard<std::mutex> lock(mu_);
      const Clock::time_point now = clock_.Now();
      for (std::size_t i = 0; i < batch.size(); ++i) {
        OutboxEntry& entry = batch[i];
        const bool is_delete = entry.kind == Kind::kDelete;
        if (done[i]) {
          if (is_delete) ++counters_.deleted;
          continue;
        }
        const Status& status = failure[i];
        ++entry.attempts;
        entry.last_error = status;
        if (HandleGone(status)) {
          if (is_delete) {
            ++counters_.delete_errors;
            lost_handle.push_back("message " + entry.message_id + ": delete failed (" + status.ToString() +
                                  "): it was received again after its visibility ran out and may run twice");
          }
          // A visibility change on a message that is visible again: nothing left to do.
          continue;
        }
        if (retryable[i] && entry.attempts < kMaxOutboxAttempts) {
          Clock::duration delay = kOutboxRetryBase;
          for (int a = 1; a < entry.attempts; ++a) delay *= 2;
          entry.due = now + delay;
          WakeMaintenanceLocked(entry.due);
          outbox_.push_back(std::move(entry));
          continue;
        }
        ++counters_.delete_errors;
        give_up.push_back(
            "message " + entry.message_id + ": " +
            (is_delete ? std::string("delete") : "visibility change to " + std::to_string(entry.visibility.count()) + "s") +
            " failed after " + std::to_string(entry.attempts) + " attempt(s): " + status.ToString() +
            (is_delete ? "; it will be delivered again" : ""));
      }
    }
    for (const std::string& line : lost_handle) logger_->warn("{}", line);
    for (const std::string& line : give_up) logger_->error("{}", line);
  }
}

void Consumer::ExtendDue(std::unique_lock<std::mutex>& lock, Clock::time_point now) {
  const Clock::duration vt = options_.visibility_timeout;  // in nanoseconds: vt / 3 of 1 s is not 0
  const auto eligible = [](const Lease& lease) {
    return lease.state != Lease::State::kDone && !lease.extending && !lease.extension_over;
  };
  bool any_due = false;
  for (const auto& [id, lease] : leases_) {
    if (eligible(*lease) && lease->next_extend_at <= now) {
      any_due = true;
      break;
    }
  }
  if (!any_due) return;

  // Everything due within the next sixth of the timeout joins this round, to fill batches.
  struct Pending {
    std::uint64_t id;
    ChangeVisibilityBatchEntry entry;
  };
  std::vector<Pending> pending;
  std::vector<std::string> capped;
  for (const auto& [id, lease] : leases_) {
    if (!eligible(*lease) || lease->next_extend_at > now + vt / 6) continue;
    const seconds timeout = std::min<seconds>(options_.visibility_timeout, FloorSeconds(lease->cap - now) - kCapMargin);
    if (timeout < seconds(1)) {
      lease->extension_over = true;
      ++counters_.extend_errors;
      capped.push_back(lease->message.message_id);
      continue;
    }
    lease->extending = true;
    pending.push_back({id, {std::to_string(pending.size() % kMaxBatchEntries), lease->message.receipt_handle, timeout}});
  }
  lock.unlock();
  for (const std::string& id : capped) {
    logger_->warn("message {} has been held for 12 hours, SQS's limit: its visibility cannot be extended "
                  "and it may be delivered again while its handler runs", id);
  }
  Clock::duration retry_delay = std::clamp<Clock::duration>(vt / 10, milliseconds(100), seconds(5));
  for (std::size_t start = 0; start < pending.size(); start += kMaxBatchEntries) {
    const std::size_t end = std::min(pending.size(), start + kMaxBatchEntries);
    std::vector<ChangeVisibilityBatchEntry> entries;
    for (std::size_t i = start; i < end; ++i) entries.push_back(pending[i].entry);
    const Clock::time_point sent_at = clock_.Now();
    StatusOr<BatchResult<Empty>> result = queue_.ChangeVisibilityBatch(entries);

    std::vector<std::string> warnings;
    lock.lock();
    // Per entry: extended, retry later, or lost for good. Entries without a result are retried.
    std::vector<Status> outcome(end - start, UnavailableError("the response has no result for the entry"));
    std::vector<bool> retryable(end - start, true);
    if (!result.ok()) {
      for (std::size_t i = 0; i < outcome.size(); ++i) outcome[i] = result.status();
      warnings.push_back("visibility extension of " + std::to_string(entries.size()) +
                         " message(s) failed, retrying: " + result.status().ToString());
    } else {
      for (const auto& success : result->successful) {
        if (const std::size_t i = EntryIndex(success.id); i < outcome.size()) outcome[i] = Status::Ok();
      }
      for (const BatchEntryFailure& f : result->failed) {
        if (const std::size_t i = EntryIndex(f.id); i < outcome.size()) {
          outcome[i] = f.status;
          retryable[i] = !f.sender_fault && !HandleGone(f.status);
        }
      }
    }
    const Clock::time_point after = clock_.Now();
    for (std::size_t i = start; i < end; ++i) {
      const auto it = leases_.find(pending[i].id);
      if (it == leases_.end()) continue;
      Lease& lease = *it->second;
      lease.extending = false;
      const Status& o = outcome[i - start];
      if (o.ok()) {
        ++counters_.extended;
        lease.visible_at = sent_at + pending[i].entry.visibility_timeout;
        lease.next_extend_at = lease.visible_at - vt / 3;
      } else if (retryable[i - start]) {
        lease.next_extend_at = after + retry_delay;
      } else {
        lease.extension_over = true;
        if (lease.state != Lease::State::kDone) {
          ++counters_.extend_errors;
          warnings.push_back("message " + lease.message.message_id + ": visibility extension failed (" +
                             o.ToString() + "): it may be handed to another consumer while its handler runs");
        }
      }
    }
    done_cv_.notify_all();
    lock.unlock();
    for (const std::string& line : warnings) logger_->warn("{}", line);
  }
  lock.lock();
}

void Consumer::MaintenanceLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!maint_stop_) {
    const Clock::time_point now = clock_.Now();

    // Handlers past their timeout and its grace: request their stop.
    std::vector<std::stop_source> to_stop;
    std::vector<std::string> stopped_ids;
    for (const auto& [id, lease] : leases_) {
      if (lease->state == Lease::State::kRunning && !lease->timeout_stopped && !lease->interrupted &&
          lease->stop_at <= now) {
        lease->timeout_stopped = true;
        to_stop.push_back(lease->stop);
        stopped_ids.push_back(lease->message.message_id);
      }
    }
    if (!to_stop.empty()) {
      lock.unlock();
      for (const std::string& id : stopped_ids) {
        logger_->warn("message {}: handler still running {}s after its timeout: stopping it", id,
                      options_.timeout_grace.count());
      }
      // request_stop() runs the handlers' stop callbacks: never under our lock.
      for (std::stop_source& source : to_stop) source.request_stop();
      lock.lock();
      continue;
    }

    ExtendDue(lock, now);
    if (maint_stop_) break;

    bool flush = false;
    for (const OutboxEntry& entry : outbox_) flush = flush || entry.due <= now;
    if (flush) {
      lock.unlock();
      FlushOutbox(FlushMode::kDue);
      lock.lock();
      continue;
    }

    if (now >= next_summary_) {
      const std::string line = SummaryLocked();
      next_summary_ = now + options_.summary_interval;
      lock.unlock();
      logger_->info("{}", line);
      lock.lock();
      continue;
    }

    // Wake at least hourly: no timed wait reaches out to time_point::max().
    Clock::time_point deadline = std::min(next_summary_, now + std::chrono::hours(1));
    for (const auto& [id, lease] : leases_) {
      if (lease->state != Lease::State::kDone && !lease->extending && !lease->extension_over) {
        deadline = std::min(deadline, lease->next_extend_at);
      }
      if (lease->state == Lease::State::kRunning && !lease->timeout_stopped && !lease->interrupted) {
        deadline = std::min(deadline, lease->stop_at);
      }
    }
    for (const OutboxEntry& entry : outbox_) deadline = std::min(deadline, entry.due);
    if (deadline <= clock_.Now()) continue;
    maint_deadline_ = deadline;
    maint_wake_ = false;
    clock_.WaitUntil(lock, maint_cv_, deadline, [&] { return maint_stop_ || maint_wake_; });
    // Awake: whatever is added now is seen before the next wait.
    maint_deadline_ = Clock::time_point::min();
  }
}

void Consumer::Stop() {
  std::unique_lock<std::mutex> lock(mu_);
  if (stop_begun_) {
    done_cv_.wait(lock, [&] { return stopped_; });
    return;
  }
  stop_begun_ = true;
  stopping_ = true;
  const bool started = started_;
  // Messages received but not started: released at once. Their extensions must land first, or one
  // could hide a released message again.
  done_cv_.wait(lock, [&] {
    return std::none_of(ready_.begin(), ready_.end(), [](const Lease* lease) { return lease->extending; });
  });
  std::vector<std::unique_ptr<Lease>> unstarted;
  for (Lease* lease : ready_) {
    auto it = leases_.find(lease->id);
    unstarted.push_back(std::move(it->second));
    leases_.erase(it);
  }
  ready_.clear();
  const std::size_t released = unstarted.size();
  ReleaseLocked(std::move(unstarted));
  const int running = running_;
  const int receiving = receives_in_progress_;
  work_cv_.notify_all();
  slots_cv_.notify_all();
  backoff_cv_.notify_all();
  done_cv_.notify_all();
  lock.unlock();

  const bool abort_now = started && options_.shutdown_queue_on_stop && options_.abort_receives_on_stop;
  if (started) {
    logger_->info("consumer stopping: {} handler(s) running, {} unstarted message(s) released{}", running, released,
                  receiving > 0 && !abort_now
                      ? "; waiting for " + std::to_string(receiving) + " receive(s) in progress (at most " +
                            std::to_string(options_.wait_time.count()) + "s) to release what they get"
                      : std::string());
  }
  if (abort_now) queue_.Shutdown();
  FlushOutbox(FlushMode::kAll);

  lock.lock();
  const auto idle = [&] { return leases_.empty() && reserved_ == 0; };
  const Clock::time_point grace_end = clock_.Now() + options_.shutdown_grace;
  if (started && options_.shutdown_queue_on_stop && !abort_now) {
    // Receives first: they end within wait_time, and what they bring back is released.
    clock_.WaitUntil(lock, done_cv_, grace_end, [&] { return reserved_ == 0 || stop_now_; });
    lock.unlock();
    queue_.Shutdown();
    lock.lock();
  }
  clock_.WaitUntil(lock, done_cv_, grace_end, [&] { return idle() || stop_now_; });
  if (!idle()) {
    std::vector<std::stop_source> to_stop;
    for (const auto& [id, lease] : leases_) {
      if (lease->state == Lease::State::kRunning && !lease->interrupted) {
        lease->interrupted = true;
        to_stop.push_back(lease->stop);
      }
    }
    const bool now_requested = stop_now_;
    lock.unlock();
    if (!to_stop.empty()) {
      logger_->warn("{}: stopping {} running handler(s); their messages will be released",
                    now_requested ? "immediate stop requested" : "shutdown grace ran out", to_stop.size());
    }
    for (std::stop_source& source : to_stop) source.request_stop();
    lock.lock();
    done_cv_.wait(lock, idle);
  }
  maint_stop_ = true;
  maint_cv_.notify_all();
  lock.unlock();

  for (std::jthread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  FlushOutbox(FlushMode::kAll);

  lock.lock();
  stopped_ = true;
  const std::string summary = SummaryLocked();
  done_cv_.notify_all();
  lock.unlock();
  if (started) logger_->info("consumer stopped; {}", summary);
}

void Consumer::StopNow() {
  std::vector<std::stop_source> to_stop;
  bool shutdown_queue = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_now_) return;
    stopping_ = true;
    stop_now_ = true;
    for (const auto& [id, lease] : leases_) {
      if (lease->state == Lease::State::kRunning && !lease->interrupted) {
        lease->interrupted = true;
        to_stop.push_back(lease->stop);
      }
    }
    shutdown_queue = started_ && options_.shutdown_queue_on_stop;
    work_cv_.notify_all();
    slots_cv_.notify_all();
    backoff_cv_.notify_all();
    done_cv_.notify_all();
  }
  for (std::stop_source& source : to_stop) source.request_stop();
  if (shutdown_queue) queue_.Shutdown();
}

void Consumer::CountReceiveLocked(bool ok) {
  if (ok) {
    counters_.receive_failing_since.reset();
    counters_.receive_errors_in_a_row = 0;
    return;
  }
  ++counters_.receive_errors;
  ++counters_.receive_errors_in_a_row;
  if (!counters_.receive_failing_since) counters_.receive_failing_since = clock_.Now();
}

ConsumerStats Consumer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return StatsLocked();
}

ConsumerStats Consumer::StatsLocked() const {
  ConsumerStats stats = counters_;
  stats.in_flight = static_cast<int>(leases_.size());
  stats.running = running_;
  if (!durations_.empty()) {
    std::vector<milliseconds> sorted = durations_;
    std::sort(sorted.begin(), sorted.end());
    // Nearest rank: the smallest value with at least p% of the runs at or below it.
    const auto rank = [&](std::size_t p) { return sorted[(sorted.size() * p + 99) / 100 - 1]; };
    stats.handler_p50 = rank(50);
    stats.handler_p99 = rank(99);
  }
  return stats;
}

std::string Consumer::SummaryLocked() const {
  const ConsumerStats s = StatsLocked();
  return "consumer summary: received " + std::to_string(s.received) + ", succeeded " +
         std::to_string(s.succeeded) + ", failed " + std::to_string(s.failed) + ", timed out " +
         std::to_string(s.timed_out) + ", invalid " + std::to_string(s.invalid) + ", retried " +
         std::to_string(s.retried) + ", released " + std::to_string(s.released) + ", in flight " +
         std::to_string(s.in_flight) + ", running " + std::to_string(s.running) + ", handler p50 " +
         std::to_string(s.handler_p50.count()) + "ms p99 " + std::to_string(s.handler_p99.count()) +
         "ms, receive errors " + std::to_string(s.receive_errors) + ", delete errors " +
         std::to_string(s.delete_errors) + ", extension errors " + std::to_string(s.extend_errors);
}

}  // namespace taskpipe
