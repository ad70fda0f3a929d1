// The in-process queue backend: a Queue with SQS standard-queue semantics (visibility timeout,
// fresh receipt handles, delays, retention, receive counts, dead-letter redrive, long polling),
// for local mode (`taskpipe run`) and tests. Thread-safe: any number of threads may send, receive,
// delete and change visibility concurrently.
//
// Time comes only from the Clock passed in (a FakeClock in tests): deadlines are checked lazily
// whenever Receive() or GetAttributes() runs, and long polls wait through Clock::WaitUntil(), so
// FakeClock::Advance() wakes them. There are no timer threads.
//
// Differences from SQS, all deliberate:
//  - Only the newest receipt handle of a message is valid, and only while the message exists:
//    deleting twice with the same handle fails the second time (SQS is lenient there).
//  - OutgoingMessage cannot say "no delay" explicitly: a per-message delay of 0 means "use the
//    queue's default delay" (InMemoryQueueOptions::delay).
//  - FIFO queues are not modelled; group and deduplication ids are stored and returned as given.
#ifndef TASKPIPE_QUEUE_IN_MEMORY_QUEUE_H_
#define TASKPIPE_QUEUE_IN_MEMORY_QUEUE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "queue/message.h"
#include "queue/queue.h"

namespace taskpipe {

struct InMemoryQueueOptions {
  // How long a received message stays invisible unless the receive overrides it. 0..12 h.
  std::chrono::seconds visibility_timeout = kDefaultVisibilityTimeout;
  // How long a message is kept, counted from when it was first sent (also in the dead-letter
  // queue, which applies its own retention to the original send time). 60 s..14 d.
  std::chrono::seconds retention = kDefaultRetention;
  // The queue's DelaySeconds: applies to messages sent with a delay of 0. 0..15 min.
  std::chrono::seconds delay{0};
  // A message whose receive count has reached this number is moved to `dead_letter_queue` instead
  // of being delivered again. 0 = never (no redrive).
  int max_receive_count = 0;
  // Where redriven messages go; required when max_receive_count > 0. Must be a queue made by
  // NewInMemoryQueue() (with the same Clock) and must outlive this queue.
  Queue* dead_letter_queue = nullptr;
  // For messages and logs; 1-80 characters of [A-Za-z0-9_-], like an SQS queue name.
  std::string name = "local";
};

// Creates an empty in-memory queue. `clock` must outlive it. Fails with InvalidParameterValue
// (kInvalidArgument) for options out of range, a max_receive_count without a dead-letter queue, or
// a dead-letter queue that is not an in-memory queue.
StatusOr<std::unique_ptr<Queue>> NewInMemoryQueue(const InMemoryQueueOptions& options, Clock& clock);

// Every message `queue` holds (visible, in flight and delayed; for a dead-letter queue: what was
// redriven into it), oldest first, without receiving them: visibility, receive counts and receipt
// handles are untouched and `receipt_handle` is empty in the result. Meant for tests and local
// mode (showing what ended up in a dead-letter queue). Exact when the queue is quiescent; with
// concurrent calls, a message another thread is handing over at that instant may be missed, and
// concurrent receivers may find the queue empty while the snapshot is taken. Fails with
// kInvalidArgument if `queue` was not made by NewInMemoryQueue().
StatusOr<std::vector<ReceivedMessage>> PeekInMemoryQueue(Queue& queue);

}  // namespace taskpipe

#endif  // TASKPIPE_QUEUE_IN_MEMORY_QUEUE_H_
