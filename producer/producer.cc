#include "producer/producer.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "common/logging.h"
#include "common/time_format.h"
#include "producer/envelope.h"
#include "queue/validate.h"

namespace taskpipe {
namespace {

using std::chrono::system_clock;

constexpr const char* kJobAttribute = "taskpipe-job";

// Entry ids only need to be distinct within one request; naming each entry after its position
// in the fire keeps them distinct across batches and retries too, and maps results back.
std::string EntryId(std::size_t index) { return "m" + std::to_string(index); }

std::string RandomHex(std::mt19937_64& rng) {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return text;
}

}  // namespace

std::string FifoDeduplicationId(const std::string& job_name, system_clock::time_point scheduled_at,
                                std::size_t task_index) {
  // Whole seconds: schedule instants are whole seconds, and replicas must agree on the text.
  const auto seconds = std::chrono::floor<std::chrono::seconds>(scheduled_at).time_since_epoch().count();
  return job_name + ":" + std::to_string(seconds) + ":" + std::to_string(task_index);
}

Producer::Producer(Queue& queue, Clock& clock, std::shared_ptr<spdlog::logger> logger,
                   ProducerOptions options)
    : queue_(queue),
      clock_(clock),
      logger_(logger ? std::move(logger) : NullLogger()),
      options_(std::move(options)),
      rng_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {}

void Producer::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  cv_.notify_all();
}

bool Producer::stopped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopped_;
}

bool Producer::Backoff(int round) {
  // min(max, base * 2^(round-1)), doubling step by step so that it cannot overflow.
  Clock::duration d = options_.backoff_base;
  for (int i = 1; i < round && d < options_.backoff_max; ++i) d *= 2;
  d = std::min<Clock::duration>(d, options_.backoff_max);
  std::unique_lock<std::mutex> lock(mu_);
  if (stopped_) return false;
  // Jitter spreads the retries of replicas that failed together (e.g. throttled at once).
  std::uniform_int_distribution<Clock::duration::rep> jitter(d.count() / 2,
                                                             std::max<Clock::duration::rep>(d.count(), 0));
  const Clock::time_point deadline = clock_.Now() + Clock::duration(jitter(rng_));
  // Waiting on our own mutex and cv lets Stop() end the wait at once.
  return !clock_.WaitUntil(lock, cv_, deadline, [this] { return stopped_; });
}

void Producer::SendAll(std::vector<Item*> items) {
  std::vector<std::size_t> todo(items.size());
  std::iota(todo.begin(), todo.end(), 0);
  std::vector<Status> last_error(items.size());
  const int max_attempts = std::max(1, options_.max_attempts);
  for (int attempt = 1;; ++attempt) {
    std::vector<std::size_t> retry;
    std::size_t next = 0;
    while (next < todo.size()) {
      if (stopped()) {
        for (; next < todo.size(); ++next) {
          const Status& last = last_error[todo[next]];
          items[todo[next]]->status = CancelledError("producer stopped before the message was sent" +
                                                     (last.ok() ? "" : "; last error: " + last.ToString()));
        }
        break;
      }
      // Greedy packing in task order: up to 10 entries and 1 MiB per request.
      std::vector<SendBatchEntry> batch;
      std::unordered_map<std::string, std::size_t> index_of;
      std::size_t total = 0;
      while (next < todo.size() && batch.size() < static_cast<std::size_t>(kMaxBatchEntries)) {
        const std::size_t index = todo[next];
        if (!batch.empty() && total + items[index]->size > kMaxMessageBytes) break;
        total += items[index]->size;
        batch.push_back({EntryId(index), items[index]->message});
        index_of.emplace(batch.back().id, index);
        ++next;
      }
      StatusOr<BatchResult<SendResult>> result = queue_.SendBatch(batch);
      if (!result.ok()) {
        const bool retryable = IsRetryable(result.status());
        for (const auto& [id, index] : index_of) {
          if (retryable) {
            retry.push_back(index);
            last_error[index] = result.status();
          } else {
            items[index]->status = result.status();
          }
        }
        continue;
      }
      for (const auto& success : result->successful) {
        const auto it = index_of.find(success.id);
        if (it == index_of.end()) continue;
        items[it->second]->status = Status::Ok();
        index_of.erase(it);
      }
      for (const BatchEntryFailure& failure : result->failed) {
        const auto it = index_of.find(failure.id);
        if (it == index_of.end()) continue;
        if (failure.sender_fault) {
          items[it->second]->status = failure.status;
        } else {
          retry.push_back(it->second);
          last_error[it->second] = failure.status;
        }
        index_of.erase(it);
      }
      // Entries the response does not mention: their fate is unknown, so send them again.
      for (const auto& [id, index] : index_of) {
        retry.push_back(index);
        last_error[index] = UnavailableError("the SendMessageBatch response has no result for entry " + id);
      }
    }
    if (retry.empty()) return;
    std::sort(retry.begin(), retry.end());  // keep task order in the next round's batches
    if (attempt >= max_attempts) {
      for (const std::size_t index : retry) {
        items[index]->status =
            last_error[index].WithContext("gave up after " + std::to_string(attempt) + " attempts");
      }
      return;
    }
    if (!Backoff(attempt)) {
      for (const std::size_t index : retry) {
        items[index]->status =
            CancelledError("producer stopped while retrying; last error: " + last_error[index].ToString());
      }
      return;
    }
    todo = std::move(retry);
  }
}

FireResult Producer::Fire(const JobConfig& job, system_clock::time_point scheduled_at) {
  const system_clock::time_point fired_at = clock_.WallNow();
  std::vector<Item> items(job.tasks.size());
  std::vector<Item*> sendable;
  for (std::size_t i = 0; i < job.tasks.size(); ++i) {
    Item& item = items[i];
    item.message.body = EncodeEnvelope({job.name, job.tasks[i], scheduled_at, fired_at});
    item.message.attributes[kJobAttribute] =
        MessageAttribute{.data_type = "String", .string_value = job.name, .binary_value = ""};
    if (options_.fifo) {
      item.message.group_id = job.message_group_id.empty() ? job.name : job.message_group_id;
      item.message.deduplication_id = FifoDeduplicationId(job.name, scheduled_at, i);
    }
    item.size = MessageSize(item.message);
    if (Status valid = ValidateOutgoingMessage(item.message); !valid.ok()) {
      // Checked here so that one task that can never be sent does not fail a whole batch.
      item.status = item.size > kMaxMessageBytes
                        ? InvalidArgumentError("message is " + std::to_string(item.size) +
                                                   " bytes (body and attributes); SQS's limit is " +
                                                   std::to_string(kMaxMessageBytes) + " bytes: not sent",
                                               valid.error_name())
                        : valid;
      continue;
    }
    sendable.push_back(&item);
  }
  SendAll(std::move(sendable));

  FireResult result;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].status.ok()) {
      ++result.sent;
    } else {
      ++result.failed;
      result.errors.push_back("job \"" + job.name + "\" task " + std::to_string(i) + ": " +
                              items[i].status.ToString());
    }
  }
  const double lateness = std::chrono::duration<double>(fired_at - scheduled_at).count();
  logger_->log(result.failed == 0 ? spdlog::level::info : spdlog::level::err,
               "fired job {} scheduled at {} (lateness {:.3f}s): sent {}, failed {}", job.name,
               FormatRfc3339Utc(scheduled_at), lateness, result.sent, result.failed);
  return result;
}

Status Producer::SendBody(std::string body) {
  Item item;
  item.message.body = std::move(body);
  if (options_.fifo) {
    item.message.group_id = options_.body_group_id;
    // One id per call, the same for its retries, so that SQS drops a copy a retry might add.
    std::lock_guard<std::mutex> lock(mu_);
    item.message.deduplication_id = RandomHex(rng_);
  }
  item.size = MessageSize(item.message);
  TASKPIPE_RETURN_IF_ERROR(ValidateOutgoingMessage(item.message));
  SendAll({&item});
  return item.status;
}

}  // namespace taskpipe
