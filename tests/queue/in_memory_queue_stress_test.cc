// Concurrency stress for the in-memory queue on the real clock: several senders and receivers, a
// bounded amount of work (well under a second normally, a few seconds under ThreadSanitizer).
// Checks that every message is delivered, none is lost, and none is ever held by two receivers at
// once. No sleeps: receivers long-poll and are released by Shutdown() once everything is done.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "queue/in_memory_queue.h"

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer cannot model the std::atomic_thread_fence()s that moodycamel::ConcurrentQueue
// uses when it recycles a block, and reports element-slot reuse inside the queue as races
// (upstream: cameron314/concurrentqueue issues #49, #62, #196, #254; its MOODYCAMEL_NO_TSAN
// annotation only works with clang). Suppressed for frames inside the queue only: the hand-off of
// our own records through it (and everything else) is still checked. Applies to the whole test
// binary, so tests of code built on the memory backend need nothing more.
extern "C" const char* __tsan_default_suppressions() {
  return "race:moodycamel::ConcurrentQueue\n";
}
#endif

namespace taskpipe {
namespace {

using namespace std::chrono_literals;

constexpr int kSenders = 3;
// A hung test would otherwise wait forever for a lost message.
constexpr auto kWatchdog = 120s;

// Set once when all messages are deleted; the test thread waits for it (bounded) and shuts the
// queue down either way, which releases receivers still long-polling.
class Done {
 public:
  void Set() {
    if (!set_.exchange(true)) promise_.set_value();
  }
  bool WaitFor(std::chrono::seconds timeout) {
    return future_.wait_for(timeout) == std::future_status::ready;
  }

 private:
  std::atomic<bool> set_{false};
  std::promise<void> promise_;
  std::future<void> future_ = promise_.get_future();
};
constexpr int kReceivers = 3;

ReceiveOptions PollOptions(int max_messages) {
  ReceiveOptions options;
  options.max_messages = max_messages;
  options.wait = 20s;
  return options;
}

std::unique_ptr<Queue> MakeQueue() {
  // A visibility timeout far longer than the test: a message can only come back if released.
  StatusOr<std::unique_ptr<Queue>> queue = NewInMemoryQueue({.visibility_timeout = 1h}, RealClock());
  EXPECT_TRUE(queue.ok()) << queue.status().ToString();
  return std::move(*queue);
}

// Sends `per_sender` messages from each of kSenders threads, alternating single sends and batches
// of up to 10. Bodies are "sender:index" and unique.
void RunSenders(Queue& queue, int per_sender, std::atomic<int>& send_failures) {
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&queue, &send_failures, s, per_sender] {
      int i = 0;
      while (i < per_sender) {
        const int batch = std::min(1 + (i % 10), per_sender - i);
        if (batch == 1) {
          OutgoingMessage m;
          m.body = std::to_string(s) + ":" + std::to_string(i++);
          if (!queue.Send(m).ok()) send_failures.fetch_add(1);
          continue;
        }
        std::vector<SendBatchEntry> entries;
        for (int k = 0; k < batch; ++k) {
          SendBatchEntry entry;
          entry.id = "e" + std::to_string(k);
          entry.message.body = std::to_string(s) + ":" + std::to_string(i++);
          entries.push_back(std::move(entry));
        }
        StatusOr<BatchResult<SendResult>> result = queue.SendBatch(entries);
        if (!result.ok() || !result->failed.empty()) send_failures.fetch_add(1);
      }
    });
  }
  for (std::thread& t : senders) t.join();
}

TEST(InMemoryQueueStressTest, EveryMessageIsReceivedExactlyOnce) {
  constexpr int kPerSender = 4000;
  constexpr int kTotal = kSenders * kPerSender;
  auto queue = MakeQueue();
  std::atomic<int> send_failures{0};
  std::atomic<int> deleted{0};
  Done done;
  std::atomic<int> delete_failures{0};
  std::vector<std::unordered_map<std::string, int>> seen(kReceivers);  // one per receiver thread

  std::vector<std::thread> receivers;
  for (int r = 0; r < kReceivers; ++r) {
    receivers.emplace_back([&, r] {
      while (deleted.load() < kTotal) {
        StatusOr<std::vector<ReceivedMessage>> received =
            queue->Receive(PollOptions(1 + r * 4));
        ASSERT_TRUE(received.ok());
        if (received->empty()) return;  // shut down
        std::vector<DeleteBatchEntry> entries;
        for (const ReceivedMessage& m : *received) {
          ++seen[r][m.body];
          entries.push_back({"d" + std::to_string(entries.size()), m.receipt_handle});
        }
        if (r == 0) {  // single deletes
          for (const DeleteBatchEntry& e : entries) {
            if (!queue->Delete(e.receipt_handle).ok()) delete_failures.fetch_add(1);
          }
        } else {
          StatusOr<BatchResult<Empty>> result = queue->DeleteBatch(entries);
          if (!result.ok() || !result->failed.empty()) delete_failures.fetch_add(1);
        }
        const int n = static_cast<int>(entries.size());
        if (deleted.fetch_add(n) + n >= kTotal) done.Set();
      }
    });
  }
  RunSenders(*queue, kPerSender, send_failures);
  EXPECT_TRUE(done.WaitFor(kWatchdog)) << "messages lost: " << deleted.load() << " of " << kTotal;
  queue->Shutdown();  // wake the receivers still polling
  for (std::thread& t : receivers) t.join();

  EXPECT_EQ(send_failures.load(), 0);
  EXPECT_EQ(delete_failures.load(), 0);
  EXPECT_EQ(deleted.load(), kTotal);
  std::unordered_map<std::string, int> all;
  for (const auto& per_receiver : seen) {
    for (const auto& [body, count] : per_receiver) all[body] += count;
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kTotal));
  int duplicates = 0;
  for (const auto& [body, count] : all) duplicates += count - 1;
  EXPECT_EQ(duplicates, 0);
  StatusOr<QueueAttributes> attributes = queue->GetAttributes();
  ASSERT_TRUE(attributes.ok());
  EXPECT_EQ(attributes->visible, 0);
  EXPECT_EQ(attributes->in_flight, 0);
  EXPECT_EQ(attributes->delayed, 0);
}

TEST(InMemoryQueueStressTest, ReleasedMessagesAreNeverHeldTwice) {
  constexpr int kPerSender = 1500;
  constexpr int kTotal = kSenders * kPerSender;
  auto queue = MakeQueue();
  std::atomic<int> send_failures{0};
  std::atomic<int> deleted{0};
  Done done;
  std::atomic<int> op_failures{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> releases{0};

  // Who holds what right now. A receiver adds a message when it receives it and removes it just
  // before it lets go (ChangeVisibility(0) or Delete), so finding it already there means the queue
  // handed a message to a second receiver while the first still held it.
  std::mutex held_mu;
  std::unordered_set<std::string> held;
  std::mutex deleted_mu;
  std::unordered_map<std::string, int> deleted_count;

  std::vector<std::thread> receivers;
  for (int r = 0; r < kReceivers; ++r) {
    receivers.emplace_back([&, r] {
      std::mt19937 random(static_cast<unsigned>(r + 1));
      while (deleted.load() < kTotal) {
        StatusOr<std::vector<ReceivedMessage>> received = queue->Receive(PollOptions(10));
        ASSERT_TRUE(received.ok());
        if (received->empty()) return;
        {
          std::lock_guard<std::mutex> guard(held_mu);
          for (const ReceivedMessage& m : *received) {
            if (!held.insert(m.message_id).second) overlaps.fetch_add(1);
          }
        }
        std::vector<ChangeVisibilityBatchEntry> release;
        std::vector<DeleteBatchEntry> remove;
        for (const ReceivedMessage& m : *received) {
          if (random() % 3 == 0) {  // give a third back
            release.push_back({"r" + std::to_string(release.size()), m.receipt_handle, 0s});
          } else {
            remove.push_back({"d" + std::to_string(remove.size()), m.receipt_handle});
          }
        }
        {
          std::lock_guard<std::mutex> guard(held_mu);
          for (const ReceivedMessage& m : *received) held.erase(m.message_id);
        }
        {
          std::lock_guard<std::mutex> guard(deleted_mu);
          for (const ReceivedMessage& m : *received) {
            const bool removing = std::any_of(remove.begin(), remove.end(), [&](const DeleteBatchEntry& e) {
              return e.receipt_handle == m.receipt_handle;
            });
            if (removing) ++deleted_count[m.body];
          }
        }
        if (!release.empty()) {
          releases.fetch_add(static_cast<int>(release.size()));
          if (release.size() == 1) {
            if (!queue->ChangeVisibility(release[0].receipt_handle, 0s).ok()) op_failures.fetch_add(1);
          } else {
            StatusOr<BatchResult<Empty>> result = queue->ChangeVisibilityBatch(release);
            if (!result.ok() || !result->failed.empty()) op_failures.fetch_add(1);
          }
        }
        if (!remove.empty()) {
          StatusOr<BatchResult<Empty>> result = queue->DeleteBatch(remove);
          if (!result.ok() || !result->failed.empty()) op_failures.fetch_add(1);
          const int n = static_cast<int>(remove.size());
          if (deleted.fetch_add(n) + n >= kTotal) done.Set();
        }
      }
    });
  }
  RunSenders(*queue, kPerSender, send_failures);
  EXPECT_TRUE(done.WaitFor(kWatchdog)) << "messages lost: " << deleted.load() << " of " << kTotal;
  queue->Shutdown();  // wake the receivers still polling
  for (std::thread& t : receivers) t.join();

  EXPECT_EQ(send_failures.load(), 0);
  EXPECT_EQ(op_failures.load(), 0);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_GT(releases.load(), 0);
  EXPECT_EQ(deleted.load(), kTotal);
  EXPECT_EQ(deleted_count.size(), static_cast<std::size_t>(kTotal));
  for (const auto& [body, count] : deleted_count) EXPECT_EQ(count, 1) << body;
  StatusOr<QueueAttributes> attributes = queue->GetAttributes();
  ASSERT_TRUE(attributes.ok());
  EXPECT_EQ(attributes->visible, 0);
  EXPECT_EQ(attributes->in_flight, 0);
}

// Receives with a visibility timeout of 0: every message is visible again at once, so receivers
// race for the same messages, handles go stale, the in-flight scan runs concurrently with
// receives, and a Delete through the newest handle may hit a message already back in the ready
// queue (a tombstone). Every message must still be deleted exactly once.
TEST(InMemoryQueueStressTest, ZeroVisibilityRedeliveryLosesNothing) {
  constexpr int kPerSender = 1000;
  constexpr int kTotal = kSenders * kPerSender;
  auto queue = MakeQueue();
  std::atomic<int> send_failures{0};
  std::atomic<int> deleted{0};
  std::atomic<int> stale{0};
  std::atomic<int> other_failures{0};
  Done done;
  std::mutex deleted_mu;
  std::unordered_map<std::string, int> deleted_count;

  std::vector<std::thread> receivers;
  for (int r = 0; r < kReceivers; ++r) {
    receivers.emplace_back([&] {
      ReceiveOptions options = PollOptions(10);
      options.visibility_timeout = 0s;
      ReceiveOptions again = options;
      again.wait = 0s;
      while (deleted.load() < kTotal) {
        // Two receives before deleting: the second often gets messages of the first again, whose
        // first handles are then stale, and those it does not get are back in the ready queue
        // when the first handle deletes them.
        StatusOr<std::vector<ReceivedMessage>> first = queue->Receive(options);
        ASSERT_TRUE(first.ok());
        if (first->empty()) return;
        StatusOr<std::vector<ReceivedMessage>> second = queue->Receive(again);
        ASSERT_TRUE(second.ok());
        for (const auto* batch : {&*first, &*second}) {
          for (const ReceivedMessage& m : *batch) {
            Status status = queue->Delete(m.receipt_handle);
            if (status.ok()) {
              {
                std::lock_guard<std::mutex> guard(deleted_mu);
                ++deleted_count[m.body];
              }
              if (deleted.fetch_add(1) + 1 == kTotal) done.Set();
            } else if (status.error_name() == "ReceiptHandleIsInvalid") {
              stale.fetch_add(1);  // received again since; the newer handle deletes it
            } else {
              other_failures.fetch_add(1);
            }
          }
        }
      }
    });
  }
  RunSenders(*queue, kPerSender, send_failures);
  EXPECT_TRUE(done.WaitFor(kWatchdog)) << "messages lost: " << deleted.load() << " of " << kTotal;
  queue->Shutdown();
  for (std::thread& t : receivers) t.join();

  EXPECT_EQ(send_failures.load(), 0);
  EXPECT_EQ(other_failures.load(), 0);
  EXPECT_GT(stale.load(), 0);  // the races this test is about did happen
  EXPECT_EQ(deleted.load(), kTotal);
  EXPECT_EQ(deleted_count.size(), static_cast<std::size_t>(kTotal));
  for (const auto& [body, count] : deleted_count) EXPECT_EQ(count, 1) << body;
  StatusOr<QueueAttributes> attributes = queue->GetAttributes();
  ASSERT_TRUE(attributes.ok());
  EXPECT_EQ(attributes->visible, 0);
  EXPECT_EQ(attributes->in_flight, 0);
}

}  // namespace
}  // namespace taskpipe
