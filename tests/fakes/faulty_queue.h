// FaultyQueue: a Queue decorator for tests (leveldb's ErrorEnv). It forwards to a base queue,
// records every SendBatch call, and injects scripted failures:
//  - FailNextSendBatchCalls(n, status): the next n SendBatch calls fail as a whole with `status`
//    (the base queue is not called);
//  - FailEntries(body_substring, n, status, sender_fault): the next n entries whose body contains
//    `body_substring` fail individually (they are not forwarded; the rest of the batch is).
// Thread-safe. `base` must outlive it.
#ifndef TASKPIPE_TESTS_FAKES_FAULTY_QUEUE_H_
#define TASKPIPE_TESTS_FAKES_FAULTY_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "queue/queue.h"
#include "queue/validate.h"

namespace taskpipe {

class FaultyQueue final : public Queue {
 public:
  explicit FaultyQueue(Queue& base) : base_(base) {}

  void FailNextSendBatchCalls(int n, Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    call_failures_ = n;
    call_status_ = std::move(status);
  }
  void FailEntries(std::string body_substring, int n, Status status, bool sender_fault) {
    std::lock_guard<std::mutex> lock(mu_);
    entry_failures_.push_back({std::move(body_substring), n, std::move(status), sender_fault});
  }

  // What each SendBatch call was given, in call order (failed calls included).
  struct Call {
    std::vector<std::string> ids;
    std::vector<std::string> bodies;
    std::vector<OutgoingMessage> messages;
    std::size_t total_size = 0;  // sum of MessageSize()
  };
  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  int send_batch_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(calls_.size());
  }
  // Entries over all SendBatch calls.
  int entries_attempted() const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const Call& call : calls_) n += static_cast<int>(call.ids.size());
    return n;
  }
  // Blocks (really, on a condition variable) until at least `n` SendBatch calls have returned.
  void WaitForSendBatchCalls(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    returned_changed_.wait(lock, [&] { return returned_ >= n; });
  }

  StatusOr<SendResult> Send(const OutgoingMessage& message) override { return base_.Send(message); }

  StatusOr<BatchResult<SendResult>> SendBatch(const std::vector<SendBatchEntry>& entries) override;

  StatusOr<std::vector<ReceivedMessage>> Receive(const ReceiveOptions& options) override {
    return base_.Receive(options);
  }
  Status Delete(std::string_view receipt_handle) override { return base_.Delete(receipt_handle); }
  StatusOr<BatchResult<Empty>> DeleteBatch(const std::vector<DeleteBatchEntry>& entries) override {
    return base_.DeleteBatch(entries);
  }
  Status ChangeVisibility(std::string_view receipt_handle, std::chrono::seconds timeout) override {
    return base_.ChangeVisibility(receipt_handle, timeout);
  }
  StatusOr<BatchResult<Empty>> ChangeVisibilityBatch(
      const std::vector<ChangeVisibilityBatchEntry>& entries) override {
    return base_.ChangeVisibilityBatch(entries);
  }
  StatusOr<QueueAttributes> GetAttributes() override { return base_.GetAttributes(); }
  void Shutdown() override { base_.Shutdown(); }

 private:
  struct EntryFailure {
    std::string body_substring;
    int remaining;
    Status status;
    bool sender_fault;
  };

  void Returned() {
    std::lock_guard<std::mutex> lock(mu_);
    ++returned_;
    returned_changed_.notify_all();
  }

  Queue& base_;
  mutable std::mutex mu_;
  std::condition_variable returned_changed_;
  int call_failures_ = 0;                    // GUARDED_BY(mu_)
  Status call_status_;                       // GUARDED_BY(mu_)
  std::deque<EntryFailure> entry_failures_;  // GUARDED_BY(mu_)
  std::vector<Call> calls_;                  // GUARDED_BY(mu_)
  int returned_ = 0;                         // GUARDED_BY(mu_)
};

inline StatusOr<BatchResult<SendResult>> FaultyQueue::SendBatch(const std::vector<SendBatchEntry>& entries) {
  std::vector<SendBatchEntry> forward;
  BatchResult<SendResult> injected;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Call call;
    for (const SendBatchEntry& entry : entries) {
      call.ids.push_back(entry.id);
      call.bodies.push_back(entry.message.body);
      call.messages.push_back(entry.message);
      call.total_size += MessageSize(entry.message);
    }
    calls_.push_back(std::move(call));
    if (call_failures_ > 0) {
      --call_failures_;
      Status status = call_status_;
      ++returned_;
      returned_changed_.notify_all();
      return status;
    }
    for (const SendBatchEntry& entry : entries) {
      bool failed = false;
      for (EntryFailure& failure : entry_failures_) {
        if (failure.remaining > 0 && entry.message.body.find(failure.body_substring) != std::string::npos) {
          --failure.remaining;
          injected.failed.push_back({entry.id, failure.status, failure.sender_fault});
          failed = true;
          break;
        }
      }
      if (!failed) forward.push_back(entry);
    }
  }
  StatusOr<BatchResult<SendResult>> result = BatchResult<SendResult>{};
  if (!forward.empty()) result = base_.SendBatch(forward);
  if (result.ok()) {
    for (BatchEntryFailure& failure : injected.failed) result->failed.push_back(std::move(failure));
  }
  Returned();
  return result;
}

}  // namespace taskpipe

#endif  // TASKPIPE_TESTS_FAKES_FAULTY_QUEUE_H_
