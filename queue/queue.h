// Queue: what the producer and consumer need from SQS, implemented by the in-memory backend
// (queue/in_memory_queue.h) and the SQS backend.
//
// A Queue is safe for concurrent use by any number of senders and receivers. Ordering is best
// effort, as in an SQS standard queue: callers must not rely on it. Delivery is at least once.
//
// Errors carry SQS's own names in Status::error_name(): "InvalidParameterValue",
// "TooManyEntriesInBatchRequest", "BatchEntryIdsNotDistinct", "EmptyBatchRequest",
// "InvalidBatchEntryId", "ReceiptHandleIsInvalid", "MessageNotInflight", "BatchRequestTooLong".
#ifndef TASKPIPE_QUEUE_QUEUE_H_
#define TASKPIPE_QUEUE_QUEUE_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "queue/message.h"

namespace taskpipe {

struct ReceiveOptions {
  int max_messages = 1;                                   // MaxNumberOfMessages, 1..10
  std::chrono::seconds wait{0};                           // WaitTimeSeconds, 0..20 (long poll)
  std::optional<std::chrono::seconds> visibility_timeout{}; // VisibilityTimeout override, 0..12 h
};

struct QueueAttributes {
  std::int64_t visible = 0;    // ApproximateNumberOfMessages
  std::int64_t in_flight = 0;  // ApproximateNumberOfMessagesNotVisible
  std::int64_t delayed = 0;    // ApproximateNumberOfMessagesDelayed
  // The redrive policy's maxReceiveCount: receives after which the queue moves a message to its
  // dead-letter queue; 0 when the queue has no redrive policy.
  int max_receive_count = 0;
};

class Queue {
 public:
  virtual ~Queue() = default;

  // SendMessage. Fails with InvalidParameterValue for a body over 1 MiB (with attributes), a delay
  // over 15 min, or malformed attributes.
  virtual StatusOr<SendResult> Send(const OutgoingMessage& message) = 0;
  // SendMessageBatch: 1..10 entries with distinct ids, at most 1 MiB in all. Request-level faults
  // (EmptyBatchRequest, TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct,
  // InvalidBatchEntryId, BatchRequestTooLong) fail the call; per-entry faults are in `failed`.
  virtual StatusOr<BatchResult<SendResult>> SendBatch(const std::vector<SendBatchEntry>& entries) = 0;

  // ReceiveMessage: returns up to `max_messages` visible messages, waiting at most `wait` for the
  // first and returning as soon as one is available. Each returned message stays invisible for
  // the visibility timeout (the queue's, or the override). An empty result is not an error.
  // Returns at once, empty, after Shutdown().
  virtual StatusOr<std::vector<ReceivedMessage>> Receive(const ReceiveOptions& options) = 0;

  // DeleteMessage. Fails with ReceiptHandleIsInvalid for a handle that is not the message's
  // newest one or whose message is gone.
  virtual Status Delete(std::string_view receipt_handle) = 0;
  virtual StatusOr<BatchResult<Empty>> DeleteBatch(const std::vector<DeleteBatchEntry>& entries) = 0;

  // ChangeMessageVisibility: the message becomes visible `timeout` (0..12 h) from now.
  virtual Status ChangeVisibility(std::string_view receipt_handle, std::chrono::seconds timeout) = 0;
  virtual StatusOr<BatchResult<Empty>> ChangeVisibilityBatch(
      const std::vector<ChangeVisibilityBatchEntry>& entries) = 0;

  // GetQueueAttributes (approximate counts).
  virtual StatusOr<QueueAttributes> GetAttributes() = 0;

  // Wakes every long-polling Receive at once; later Receives return empty without waiting.
  // Other operations keep working, so a consumer can still delete and release what it holds.
  virtual void Shutdown() = 0;
};

}  // namespace taskpipe

#endif  // TASKPIPE_QUEUE_QUEUE_H_
