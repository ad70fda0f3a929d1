#include "producer/scheduler.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "common/logging.h"
#include "common/time_format.h"
#include "config/json_text.h"
#include "config/tasks_file.h"

namespace taskpipe {
namespace {

using nlohmann::json;
using std::chrono::system_clock;
using time_point = system_clock::time_point;

// The longest single wait: a wall-clock step (NTP, resume from suspend) is noticed within this.
constexpr std::chrono::seconds kMaxWait{60};
constexpr int kStateVersion = 1;

// Reads the state file; problems are logged and give an empty (or partial) state.
std::map<std::string, time_point> LoadState(const std::string& path, spdlog::logger& logger) {
  std::map<std::string, time_point> state;
  if (path.empty()) return state;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && !ec) return state;  // first run: nothing recorded yet
  StatusOr<std::string> text = ReadTextFile(path, "scheduler state file");
  const auto ignore = [&](const std::string& why) {
    logger.error("scheduler state file {}: {}; ignoring it (missed fires will not be replayed)",
                 QuoteText(path), why);
  };
  if (!text.ok()) {
    ignore(text.status().message());
    return state;
  }
  const json parsed = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    ignore("not valid JSON");
    return state;
  }
  if (!parsed.is_object() || !parsed.contains("last_fired") || !parsed["last_fired"].is_object()) {
    ignore("expected an object with a \"last_fired\" object");
    return state;
  }
  for (const auto& [name, value] : parsed["last_fired"].items()) {
    StatusOr<time_point> t = value.is_string()
                                 ? ParseRfc3339(value.get_ref<const std::string&>())
                                 : StatusOr<time_point>(InvalidArgumentError(
                                       "expected an RFC 3339 time, got " + DescribeJsonValue(value)));
    if (!t.ok()) {
      logger.error("scheduler state file {}: job {}: {}; ignoring that entry", QuoteText(path),
                   QuoteText(name), t.status().message());
      continue;
    }
    state[name] = *t;
  }
  return state;
}

// Writes `text` to `path` atomically: a temporary file in the same folder, flushed to disk, then
// renamed over `path`, so a crash leaves either the old or the new content, never a torn file.
Status WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  const auto failure = [&](std::string_view step) {
    const int error = errno;
    ::unlink(temp.c_str());
    return UnavailableError("cannot write " + QuoteText(path) + " (" + std::string(step) +
                            "): " + std::strerror(error));
  };
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failure("open");
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return failure("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return failure("fsync");
  }
  if (::close(fd) != 0) return failure("close");
  if (::rename(temp.c_str(), path.c_str()) != 0) return failure("rename");
  return Status::Ok();
}

}  // namespace

std::optional<time_point> LastFireBetween(const Schedule& schedule, time_point after, time_point before) {
  std::optional<time_point> first = schedule.Next(after);
  if (!first || *first >= before) return std::nullopt;
  // Invariants: lo is a fire in (after, before); there is no fire in (hi, before). Each turn
  // halves hi - lo, so this takes at most ~64 turns whatever the gap.
  time_point lo = *first;
  time_point hi = before;
  for (int turn = 0; turn < 200; ++turn) {
    const std::optional<time_point> after_lo = schedule.Next(lo);
    if (!after_lo || *after_lo >= before) return lo;
    const time_point mid = lo + (hi - lo) / 2;
    const std::optional<time_point> after_mid = schedule.Next(mid);
    if (after_mid && *after_mid < before) {
      lo = *after_mid;
    } else {
      hi = mid;
    }
  }
  return lo;  // not reached for any schedule Next() can describe
}

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(std::vector<JobConfig> jobs, Queue& queue,
                                                       Clock& clock, std::shared_ptr<spdlog::logger> logger,
                                                       SchedulerOptions options) {
  if (!logger) logger = NullLogger();
  // Schedules work in whole seconds. Rounding up makes a rate() job's first fire (at start-up, as
  // AWS fires one "immediately" on creation) happen within a second, on time, rather than
  // "late" by the fraction of a second that had already passed.
  const time_point start = std::chrono::ceil<std::chrono::seconds>(clock.WallNow());
  std::map<std::string, time_point> last_fired = LoadState(options.state_file, *logger);
  std::vector<Job> scheduled;
  scheduled.reserve(jobs.size());
  for (JobConfig& config : jobs) {
    Job job{.config = std::move(config), .schedule = std::nullopt, .next = std::nullopt};
    if (!job.config.schedule.empty()) {
      ScheduleOptions schedule_options;
      schedule_options.timezone = job.config.timezone;
      schedule_options.created_at = start;
      // A rate() continues the grid of the last recorded fire, so that a restart neither fires
      // an extra time nor pushes the next fire back by a whole period.
      if (const auto it = last_fired.find(job.config.name); it != last_fired.end() && it->second < start) {
        schedule_options.created_at = std::chrono::floor<std::chrono::seconds>(it->second);
      }
      StatusOr<Schedule> schedule = Schedule::Parse(job.config.schedule, schedule_options);
      if (!schedule.ok()) return schedule.status().WithContext("job \"" + job.config.name + "\": schedule");
      job.schedule = *schedule;
    }
    scheduled.push_back(std::move(job));
  }
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(scheduled), queue, clock, std::move(logger),
                                                  std::move(options), start, std::move(last_fired)));
}

Scheduler::Scheduler(std::vector<Job> jobs, Queue& queue, Clock& clock,
                     std::shared_ptr<spdlog::logger> logger, SchedulerOptions options, time_point start,
                     std::map<std::string, time_point> last_fired)
    : jobs_(std::move(jobs)),
      clock_(clock),
      logger_(std::move(logger)),
      options_(std::move(options)),
      start_(start),
      producer_(queue, clock, logger_, options_.producer),
      last_fired_(std::move(last_fired)) {
  for (Job& job : jobs_) {
    if (!job.schedule) continue;
    // Fires at the start instant itself count (a rate() fires at creation, as on AWS), but never
    // one already recorded (a restart within the same second).
    time_point after = start_ - std::chrono::nanoseconds(1);
    if (const auto it = last_fired_.find(job.config.name); it != last_fired_.end())
      after = std::max(after, it->second);
    job.next = job.schedule->Next(after);
  }
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  producer_.Stop();
}

bool Scheduler::stopped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopped_;
}

FireResult Scheduler::FireJob(const JobConfig& job, time_point scheduled_at) {
  FireResult result = producer_.Fire(job, scheduled_at);
  if (!options_.state_file.empty()) {
    last_fired_[job.name] = scheduled_at;
    SaveState();
  }
  return result;
}

void Scheduler::SaveState() {
  json last_fired = json::object();
  for (const auto& [name, t] : last_fired_) last_fired[name] = FormatRfc3339UtcMillis(t);
  const json state = {{"version", kStateVersion}, {"last_fired", last_fired}};
  if (Status status = WriteFileAtomically(options_.state_file, state.dump(2) + "\n"); !status.ok()) {
    logger_->error("scheduler state: {}", status.message());
  }
}

void Scheduler::CatchUp() {
  for (Job& job : jobs_) {
    if (!job.schedule || !job.config.catch_up) continue;
    const auto it = last_fired_.find(job.config.name);
    if (it == last_fired_.end() || it->second >= start_) continue;
    const std::optional<time_point> missed = LastFireBetween(*job.schedule, it->second, start_);
    if (!missed || stopped()) continue;
    logger_->info("job {}: catching up the fire missed at {} (last fired at {})", job.config.name,
                  FormatRfc3339Utc(*missed), FormatRfc3339Utc(it->second));
    const FireResult result = FireJob(job.config, *missed);
    for (const std::string& error : result.errors) logger_->error("{}", error);
  }
}

std::optional<time_point> Scheduler::FireDue() {
  if (!caught_up_) {
    caught_up_ = true;
    CatchUp();
  }
  const time_point now = clock_.WallNow();
  while (!stopped()) {
    // The job due first (ties: config order), so fires go out in schedule order.
    Job* due = nullptr;
    for (Job& job : jobs_) {
      if (job.next && *job.next <= now && (due == nullptr || *job.next < *due->next)) due = &job;
    }
    if (due == nullptr) break;
    const time_point scheduled_at = *due->next;
    const FireResult result = FireJob(due->config, scheduled_at);
    for (const std::string& error : result.errors) logger_->error("{}", error);
    // Instants that passed before this turn began (the machine was suspended, the wall clock
    // stepped, an earlier fire retried for long) are skipped, not replayed in a burst.
    due->next = due->schedule->Next(std::max(scheduled_at, now));
    if (const std::optional<time_point> skipped = due->schedule->Next(scheduled_at);
        skipped && *skipped <= now) {
      logger_->warn(
          "job {}: skipping fires from {} to {} (the producer is behind; missed fires are not replayed)",
          due->config.name, FormatRfc3339Utc(*skipped), FormatRfc3339Utc(now));
    }
  }
  std::optional<time_point> earliest;
  for (const Job& job : jobs_) {
    if (job.next && (!earliest || *job.next < *earliest)) earliest = job.next;
  }
  return earliest;
}

void Scheduler::Run() {
  for (const Job& job : jobs_) {
    if (!job.schedule) continue;
    if (job.next) {
      logger_->info("job {}: {} ({}), next fire at {}", job.config.name, job.config.schedule,
                    job.config.timezone, FormatRfc3339Utc(*job.next));
    } else {
      logger_->info("job {}: {} ({}) will not fire again", job.config.name, job.config.schedule,
                    job.config.timezone);
    }
  }
  while (true) {
    const std::optional<time_point> next = FireDue();
    std::unique_lock<std::mutex> lock(mu_);
    if (stopped_) return;
    // Sleep until the earliest fire, never more than kMaxWait at once: the steady deadline is
    // derived from the wall clock now, and a wall-clock step (NTP) would make it wrong, so it is
    // recomputed at least every minute.
    Clock::duration wait = kMaxWait;
    if (next) wait = std::min<Clock::duration>(wait, *next - clock_.WallNow());
    if (wait <= Clock::duration::zero()) continue;
    clock_.WaitUntil(lock, cv_, clock_.Now() + wait, [this] { return stopped_; });
    if (stopped_) return;
  }
}

Status Scheduler::RunOnce(std::optional<std::string> job_name) {
  std::vector<const JobConfig*> selected;
  for (const Job& job : jobs_) {
    if (!job_name || job.config.name == *job_name) selected.push_back(&job.config);
  }
  if (job_name && selected.empty()) {
    std::string known;
    for (const Job& job : jobs_) known += (known.empty() ? "" : ", ") + job.config.name;
    return NotFoundError("unknown job " + QuoteText(*job_name) +
                         (known.empty() ? " (no jobs are defined)" : " (known: " + known + ")"));
  }
  const time_point scheduled_at = std::chrono::floor<std::chrono::seconds>(clock_.WallNow());
  int sent = 0;
  std::vector<std::string> errors;
  for (const JobConfig* job : selected) {
    FireResult result = FireJob(*job, scheduled_at);
    sent += result.sent;
    errors.insert(errors.end(), result.errors.begin(), result.errors.end());
  }
  if (errors.empty()) return Status::Ok();
  std::string message = std::to_string(errors.size()) + " of " + std::to_string(errors.size() + sent) +
                        " messages were not sent:";
  for (const std::string& error : errors) message += "\n" + error;
  return Status(StatusCode::kUnknown, std::move(message));
}

}  // namespace taskpipe
