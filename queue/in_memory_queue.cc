#include "queue/in_memory_queue.h"

#include <concurrentqueue/concurrentqueue.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "queue/validate.h"

// SQS semantics implemented here, with their sources:
//  - visibility timeout, ChangeMessageVisibility, MessageNotInflight, the 12-hour cap counted from
//    the receive:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
//  - ReceiveMessage (1-10 messages, WaitTimeSeconds <= 20, return as soon as one is available):
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
//  - redrive after maxReceiveCount, keeping the message:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
//  - retention counted from the original enqueue time, also in the dead-letter queue:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/setting-up-dead-letter-queue-retention.html
//  - DeleteMessage, receipt handles:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html

namespace taskpipe {
namespace {

using SteadyTime = Clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// Time points kept in atomics as nanoseconds since the steady clock's epoch.
using Nanos = std::int64_t;
constexpr Nanos kNever = std::numeric_limits<Nanos>::max();
Nanos ToNanos(SteadyTime t) { return t.time_since_epoch().count(); }
SteadyTime FromNanos(Nanos n) { return SteadyTime(Clock::duration(n)); }

// Lowers `target` to `value` if that is smaller; returns true if it did.
bool AtomicMin(std::atomic<Nanos>& target, Nanos value) {
  Nanos current = target.load(std::memory_order_seq_cst);
  while (value < current) {
    if (target.compare_exchange_weak(current, value, std::memory_order_seq_cst)) return true;
  }
  return false;
}

// In-flight bookkeeping is split into shards, each with its own mutex. A message joins a shard
// on its first receive (the shard of the receiving thread, so one Receive call of ten messages
// takes one lock, and the same thread's DeleteBatch takes one lock) and stays there; the shard is
// encoded in the receipt handle (5 bits, so at most 32).
constexpr std::size_t kNumShards = 32;

// A message's state once it has been received at least once (until then it sits only in the
// ready queue and has no shard).
enum class State : std::uint8_t {
  kReady,     // visible: in the ready queue (or about to be put there)
  kInFlight,  // received and invisible until visible_at
  kDeleted,   // deleted through its newest handle while in the ready queue: a tombstone that the
              // receiver dequeuing it frees
};

constexpr std::size_t kMessageIdLength = 36;  // UUID-shaped
constexpr std::size_t kMd5HexLength = 32;

struct Record {
  // Set when the record enters a queue (Send, or redrive into a dead-letter queue) and not
  // changed while it is there; readable by whoever holds the record.
  std::uint64_t serial = 0;  // unique within the queue; the key of the shard table
  SteadyTime sent_at;        // original send time: retention counts from here
  SteadyTime expire_at;      // sent_at + the holding queue's retention
  WallTime sent_wall;        // SentTimestamp
  std::array<char, kMessageIdLength> message_id{};
  std::array<char, kMd5HexLength> md5_of_body{};
  bool has_md5 = false;
  std::size_t body_size = 0;  // the body's bytes follow the Record in the same allocation
  MessageAttributes attributes;
  std::string group_id;
  std::string deduplication_id;

  // While shard < 0 the record has never been received in this queue: it is referenced only by
  // the ready queue (or the delayed heap) and owned by whoever took it from there. Once shard >= 0
  // the fields below are guarded by that shard's mutex.
  int shard = -1;
  State state = State::kReady;
  std::uint32_t generation = 0;   // bumped by every receive: only the newest handle is valid
  std::uint32_t vis_version = 0;  // bumped whenever the in-flight deadline changes
  int receive_count = 0;
  WallTime first_receive_wall{};  // ApproximateFirstReceiveTimestamp
  SteadyTime received_at;         // last receive: ChangeVisibility may not go 12 h past it
  SteadyTime visible_at;          // when an in-flight message becomes visible again
  Record* next_in_bucket = nullptr;  // RecordTable chaining

  std::string_view body() const { return {reinterpret_cast<const char*>(this + 1), body_size}; }

  // One allocation for the record and its body (a message costs one malloc, not two).
  static Record* New(std::string_view body) {
    void* memory = ::operator new(sizeof(Record) + body.size());
    auto* record = new (memory) Record();
    record->body_size = body.size();
    std::memcpy(reinterpret_cast<char*>(record + 1), body.data(), body.size());
    return record;
  }
  static void Delete(Record* record) {
    if (record == nullptr) return;
    record->~Record();
    ::operator delete(record);
  }
};

// serial -> Record*, chained through Record::next_in_bucket so that inserting allocates nothing.
// Not synchronised (each shard's mutex guards its table).
class RecordTable {
 public:
  RecordTable() : buckets_(kInitialBuckets, nullptr), shift_(64 - kInitialBits) {}

  Record* Find(std::uint64_t serial) const {
    for (Record* r = buckets_[Bucket(serial)]; r != nullptr; r = r->next_in_bucket) {
      if (r->serial == serial) return r;
    }
    return nullptr;
  }

  void Insert(Record* record) {
    if (size_ >= buckets_.size()) Grow();
    Record*& head = buckets_[Bucket(record->serial)];
    record->next_in_bucket = head;
    head = record;
    ++size_;
  }

  // Returns the removed record, or nullptr.
  Record* Erase(std::uint64_t serial) {
    for (Record** link = &buckets_[Bucket(serial)]; *link != nullptr; link = &(*link)->next_in_bucket) {
      if ((*link)->serial == serial) {
        Record* found = *link;
        *link = found->next_in_bucket;
        found->next_in_bucket = nullptr;
        --size_;
        return found;
      }
    }
    return nullptr;
  }

  template <typename F>
  void ForEach(F&& f) const {
    for (Record* head : buckets_) {
      for (Record* r = head; r != nullptr;) {
        Record* next = r->next_in_bucket;  // f may delete r
        f(r);
        r = next;
      }
    }
  }

 private:
  static constexpr int kInitialBits = 6;
  static constexpr std::size_t kInitialBuckets = std::size_t{1} << kInitialBits;

  std::size_t Bucket(std::uint64_t serial) const {
    return static_cast<std::size_t>((serial * 0x9E3779B97F4A7C15ULL) >> shift_);  // Fibonacci hashing
  }

  void Grow() {
    std::vector<Record*> old(buckets_.size() * 2, nullptr);
    old.swap(buckets_);
    --shift_;
    for (Record* head : old) {
      for (Record* r = head; r != nullptr;) {
        Record* next = r->next_in_bucket;
        Record*& slot = buckets_[Bucket(r->serial)];
        r->next_in_bucket = slot;
        slot = r;
        r = next;
      }
    }
  }

  std::vector<Record*> buckets_;
  std::size_t size_ = 0;
  int shift_;
};

// An in-flight deadline. Entries are never removed when a message is deleted or its visibility
// changes; they go stale (the message is gone, not in flight, or has a newer vis_version) and are
// dropped when they reach the top or when a shard compacts its heap.
struct Deadline {
  SteadyTime at;  // min(visible_at, expire_at)
  std::uint64_t serial;
  std::uint32_t vis_version;
};
struct LaterDeadline {
  bool operator()(const Deadline& a, const Deadline& b) const { return a.at > b.at; }
};

struct alignas(64) Shard {
  std::mutex mu;
  RecordTable table;             // GUARDED_BY(mu): every message of this shard that still exists
  std::vector<Deadline> heap;    // GUARDED_BY(mu): min-heap of in-flight deadlines
  std::size_t stale = 0;         // GUARDED_BY(mu): entries of `heap` that are stale
};

struct DelayedEntry {
  SteadyTime due;
  Record* record;
};
struct LaterDue {
  bool operator()(const DelayedEntry& a, const DelayedEntry& b) const { return a.due > b.due; }
};

constexpr int kSpinBeforeBlocking = 128;
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// The shard a thread uses for the messages it receives: threads are numbered round-robin, so
// concurrent receivers use different shards.
std::size_t ThreadShard() {
  static std::atomic<std::size_t> next_thread{0};
  thread_local const std::size_t index = next_thread.fetch_add(1, std::memory_order_relaxed);
  return index % kNumShards;
}

std::uint64_t Mix64(std::uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

constexpr char kHexDigits[] = "0123456789abcdef";

void PutHex(std::uint64_t value, int digits, char* out) {
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = kHexDigits[value & 0xf];
    value >>= 4;
  }
}

// Receipt handle: 15 characters of a URL-safe base-64 alphabet, so that it fits in std::string's
// inline buffer (no allocation per receive, nor per copy the consumer makes). 90 bits:
//   queue salt (12) | shard (5) | serial (49) | generation (24).
// Serials run out after 5.6e14 messages per queue, and a handle is mistaken for a newer one only
// if the message was received exactly 2^24 times in between.
constexpr std::size_t kHandleLength = 15;
constexpr char kHandleAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint64_t kHandleSaltMask = (1u << 12) - 1;
constexpr std::uint64_t kHandleGenerationMask = (1u << 24) - 1;
constexpr std::uint64_t kHandleSerialLowBits = 36;
static_assert(kNumShards <= 32, "the shard has 5 bits in a receipt handle");

struct HandleDecoder {
  std::array<std::uint8_t, 256> value{};
  constexpr HandleDecoder() {
    for (auto& v : value) v = 0xFF;
    for (std::uint8_t i = 0; i < 64; ++i) value[static_cast<unsigned char>(kHandleAlphabet[i])] = i;
  }
};
constexpr HandleDecoder kHandleDecoder;

struct ParsedHandle {
  std::size_t shard;
  std::uint64_t serial;
  std::uint32_t generation;
};

Status InvalidHandle(std::string_view handle, std::string_view why) {
  std::string shown(handle.substr(0, 64));
  if (handle.size() > 64) shown += "...";
  return InvalidArgumentError("receipt handle '" + shown + "' " + std::string(why),
                              "ReceiptHandleIsInvalid");
}

Status InvalidParameter(std::string message) {
  return InvalidArgumentError(std::move(message), "InvalidParameterValue");
}

// ValidateBatchEntryIds() over the entries' ids, without copying them.
template <typename Entry>
Status ValidateIds(const std::vector<Entry>& entries) {
  std::array<std::string_view, kMaxBatchEntries> ids;
  const std::size_t n = std::min(entries.size(), ids.size());
  for (std::size_t i = 0; i < n; ++i) ids[i] = entries[i].id;
  if (entries.size() > ids.size()) {  // only the count matters then
    return ValidateBatchEntryIds(std::vector<std::string>(entries.size()));
  }
  return ValidateBatchEntryIdViews(std::span<const std::string_view>(ids.data(), n));
}

class InMemoryQueue final : public Queue {
 public:
  InMemoryQueue(const InMemoryQueueOptions& options, Clock& clock, InMemoryQueue* dead_letter_queue)
      : options_(options), clock_(clock), dead_letter_queue_(dead_letter_queue) {
    std::random_device random;
    const auto seed = (std::uint64_t{random()} << 32) ^ random() ^
                      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    salt_ = Mix64(seed ^ reinterpret_cast<std::uintptr_t>(this));
    id_salt_ = Mix64(salt_ + 0x9E3779B97F4A7C15ULL);
  }

  ~InMemoryQueue() override {
    // Ready records that are in a shard table are freed with the table below.
    Record* r;
    while (ready_.try_dequeue(r)) {
      if (r->shard < 0 || r->state == State::kDeleted) Record::Delete(r);
    }
    for (Shard& shard : shards_) shard.table.ForEach([](Record* rec) { Record::Delete(rec); });
    for (const DelayedEntry& entry : delayed_) Record::Delete(entry.record);
  }

  StatusOr<SendResult> Send(const OutgoingMessage& message) override;
  StatusOr<BatchResult<SendResult>> SendBatch(const std::vector<SendBatchEntry>& entries) override;
  StatusOr<std::vector<ReceivedMessage>> Receive(const ReceiveOptions& options) override;
  Status Delete(std::string_view receipt_handle) override;
  StatusOr<BatchResult<Empty>> DeleteBatch(const std::vector<DeleteBatchEntry>& entries) override;
  Status ChangeVisibility(std::string_view receipt_handle, std::chrono::seconds timeout) override;
  StatusOr<BatchResult<Empty>> ChangeVisibilityBatch(
      const std::vector<ChangeVisibilityBatchEntry>& entries) override;
  StatusOr<QueueAttributes> GetAttributes() override;
  void Shutdown() override;

  // Takes ownership of a record redriven from a source queue (which shares this queue's Clock).
  void AcceptRedrive(Record* record, SteadyTime now);
  std::vector<ReceivedMessage> Peek();

 private:
  // What a locked per-handle operation leaves to do once the shard lock is released.
  struct Deferred {
    Record* free = nullptr;      // delete
    Record* to_ready = nullptr;  // put back in the ready queue
    Nanos new_deadline = kNever; // lower the in-flight hint
  };

  Record* NewRecord(const OutgoingMessage& message, std::uint64_t serial, SteadyTime now, WallTime wall,
                    std::string* md5);
  SendResult MakeSendResult(const Record& record, std::string md5) const;
  std::chrono::seconds EffectiveDelay(const OutgoingMessage& message) const {
    return message.delay > std::chrono::seconds::zero() ? message.delay : options_.delay;
  }

  // Puts records (not in the ready queue, state kReady) into the ready queue and wakes waiters.
  void EnqueueReady(Record* const* records, std::size_t count);
  void AddDelayed(Record* record, SteadyTime due);
  // Wakes one long-polling receiver (if any) because messages became visible. Whoever is woken
  // and leaves messages behind wakes the next one (TakeReady), so a batch wakes as many receivers
  // as it needs and no more.
  void WakeOneReceiver();
  // Wakes every long-polling receiver to re-plan its wake-up time (a delayed message or an
  // earlier in-flight deadline appeared), or to return (Shutdown).
  void WakeAllToReplan();

  // Moves due delayed messages and expired in-flight ones to the ready queue.
  void RunMaintenance(SteadyTime now) {
    if (next_delayed_due_.load(std::memory_order_seq_cst) <= ToNanos(now)) PromoteDelayed(now);
    if (inflight_hint_.load(std::memory_order_seq_cst) <= ToNanos(now)) ExpireInFlight(now);
  }
  void PromoteDelayed(SteadyTime now);
  void ExpireInFlight(SteadyTime now);
  void SweepReadyForRetention(SteadyTime now);
  void PurgeExpiredDelayed(SteadyTime now);

  // Dequeues up to `max` - out->size() deliverable messages into `out`.
  void TakeReady(std::size_t max, SteadyTime now, std::chrono::seconds visibility,
                 std::vector<ReceivedMessage>* out);
  // REQUIRES: shard.mu held (or `record` exclusively owned and about to join `shard`).
  void Deliver(Shard& shard, std::size_t shard_index, Record* record, SteadyTime now,
               WallTime wall, std::chrono::seconds visibility, std::vector<ReceivedMessage>* out,
               Nanos* min_deadline);
  ReceivedMessage MakeReceived(const Record& record, std::string receipt_handle) const;
  std::string FormatHandle(std::size_t shard, const Record& record) const;
  bool ParseHandle(std::string_view handle, ParsedHandle* parsed) const;

  // REQUIRES: shard.mu held.
  Status DeleteLocked(Shard& shard, const ParsedHandle& handle, std::string_view text, SteadyTime now,
                      Deferred* deferred);
  Status ChangeVisibilityLocked(Shard& shard, const ParsedHandle& handle, std::string_view text,
                                std::chrono::seconds timeout, SteadyTime now, Deferred* deferred);
  // Removes `record` (which is in shard's table) from the queue. REQUIRES: shard.mu held.
  void RemoveLocked(Shard& shard, Record* record, Deferred* deferred);
  void MaybeCompact(Shard& shard);
  bool IsLive(const Shard& shard, const Deadline& d) const;
  void FinishDeferred(const Deferred& deferred);

  void LowerInflightHint(Nanos deadline) {
    if (deadline != kNever && AtomicMin(inflight_hint_, deadline)) WakeAllToReplan();
  }

  const InMemoryQueueOptions options_;
  Clock& clock_;
  InMemoryQueue* const dead_letter_queue_;  // not owned; may be null
  std::uint64_t salt_ = 0;
  std::uint64_t id_salt_ = 0;

  // Ready messages. Holds records that are kReady or tombstones (kDeleted); each record is in it
  // at most once.
  moodycamel::ConcurrentQueue<Record*> ready_;
  alignas(64) std::atomic<std::uint64_t> next_serial_{1};

  // Approximate counts (exact when quiescent). visible_ also drives long-poll wake-ups.
  alignas(64) std::atomic<std::int64_t> visible_{0};
  alignas(64) std::atomic<std::int64_t> in_flight_{0};
  alignas(64) std::atomic<std::int64_t> delayed_count_{0};

  // A lower bound of every live in-flight deadline (kNever if none): Receive scans the shards only
  // once it has passed.
  alignas(64) std::atomic<Nanos> inflight_hint_{kNever};
  // A lower bound of the expiry of every record in the ready queue.
  std::atomic<Nanos> ready_expire_hint_{kNever};
  std::mutex scan_mu_;   // one ExpireInFlight / SweepReadyForRetention at a time
  std::array<Shard, kNumShards> shards_;

  std::mutex delayed_mu_;
  std::vector<DelayedEntry> delayed_;      // GUARDED_BY(delayed_mu_): min-heap by due time
  Nanos delayed_min_expire_ = kNever;      // GUARDED_BY(delayed_mu_): lower bound of their expiry
  std::atomic<Nanos> next_delayed_due_{kNever};  // written under delayed_mu_

  // Long polling. Senders touch wait_mu_ only when waiters_ > 0.
  alignas(64) std::atomic<int> waiters_{0};
  std::atomic<bool> shutdown_{false};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::uint64_t wake_epoch_ = 0;  // GUARDED_BY(wait_mu_): bumped to make waiters re-plan
};

Record* InMemoryQueue::NewRecord(const OutgoingMessage& message, std::uint64_t serial, SteadyTime now,
                                 WallTime wall, std::string* md5) {
  Record* r = Record::New(message.body);
  r->serial = serial;
  r->sent_at = now;
  r->expire_at = now + options_.retention;
  r->sent_wall = wall;
  // UUID-shaped id from (salt, serial): the low 62 bits are a bijection of the serial, so ids never
  // repeat within a queue; the salt makes them differ between queues and runs.
  const std::uint64_t hi = (id_salt_ & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  std::uint64_t lo = ((serial ^ salt_) * 0xD6E8FEB86659FD93ULL) & 0x3FFFFFFFFFFFFFFFULL;
  lo ^= lo >> 29;
  lo |= 0x8000000000000000ULL;  // RFC 4122 variant
  char* id = r->message_id.data();
  PutHex(hi >> 32, 8, id);
  id[8] = '-';
  PutHex((hi >> 16) & 0xFFFF, 4, id + 9);
  id[13] = '-';
  PutHex(hi & 0xFFFF, 4, id + 14);
  id[18] = '-';
  PutHex(lo >> 48, 4, id + 19);
  id[23] = '-';
  PutHex(lo & 0xFFFFFFFFFFFFULL, 12, id + 24);
  *md5 = Md5OfBody(message.body);
  if (md5->size() == kMd5HexLength) {
    std::memcpy(r->md5_of_body.data(), md5->data(), kMd5HexLength);
    r->has_md5 = true;
  }
  r->attributes = message.attributes;
  r->group_id = message.group_id;
  r->deduplication_id = message.deduplication_id;
  return r;
}

SendResult InMemoryQueue::MakeSendResult(const Record& record, std::string md5) const {
  SendResult result;
  result.message_id.assign(record.message_id.data(), kMessageIdLength);
  result.md5_of_body = std::move(md5);
  return result;
}

StatusOr<SendResult> InMemoryQueue::Send(const OutgoingMessage& message) {
  TASKPIPE_RETURN_IF_ERROR(ValidateOutgoingMessage(message));
  const SteadyTime now = clock_.Now();
  std::string md5;
  Record* record =
      NewRecord(message, next_serial_.fetch_add(1, std::memory_order_relaxed), now, clock_.WallNow(), &md5);
  SendResult result = MakeSendResult(*record, std::move(md5));
  // From here on another thread may receive and delete the record.
  if (const auto delay = EffectiveDelay(message); delay > std::chrono::seconds::zero()) {
    AddDelayed(record, now + delay);
  } else {
    EnqueueReady(&record, 1);
  }
  return result;
}

StatusOr<BatchResult<SendResult>> InMemoryQueue::SendBatch(const std::vector<SendBatchEntry>& entries) {
  TASKPIPE_RETURN_IF_ERROR(ValidateIds(entries));
  std::size_t total = 0;
  for (const SendBatchEntry& entry : entries) total += MessageSize(entry.message);
  if (total > kMaxMessageBytes) {
    return InvalidArgumentError("the messages of the batch total " + std::to_string(total) +
                                    " bytes; the limit is " + std::to_string(kMaxMessageBytes) + " bytes",
                                "BatchRequestTooLong");
  }

  std::array<Status, kMaxBatchEntries> statuses;
  std::size_t valid = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    statuses[i] = ValidateOutgoingMessage(entries[i].message);
    if (statuses[i].ok()) ++valid;
  }
  BatchResult<SendResult> result;
  result.successful.reserve(valid);
  const SteadyTime now = clock_.Now();
  const WallTime wall = clock_.WallNow();
  std::uint64_t serial = next_serial_.fetch_add(valid, std::memory_order_relaxed);
  std::array<Record*, kMaxBatchEntries> ready;
  std::size_t num_ready = 0;
  std::array<std::pair<Record*, SteadyTime>, kMaxBatchEntries> delayed;
  std::size_t num_delayed = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!statuses[i].ok()) {
      result.failed.push_back({entries[i].id, std::move(statuses[i]), /*sender_fault=*/true});
      continue;
    }
    std::string md5;
    Record* record = NewRecord(entries[i].message, serial++, now, wall, &md5);
    result.successful.push_back({entries[i].id, MakeSendResult(*record, std::move(md5))});
    if (const auto delay = EffectiveDelay(entries[i].message); delay > std::chrono::seconds::zero()) {
      delayed[num_delayed++] = {record, now + delay};
    } else {
      ready[num_ready++] = record;
    }
  }
  for (std::size_t i = 0; i < num_delayed; ++i) AddDelayed(delayed[i].first, delayed[i].second);
  if (num_ready > 0) EnqueueReady(ready.data(), num_ready);
  return result;
}

void InMemoryQueue::EnqueueReady(Record* const* records, std::size_t count) {
  Nanos min_expire = kNever;
  for (std::size_t i = 0; i < count; ++i) min_expire = std::min(min_expire, ToNanos(records[i]->expire_at));
  // Before the records become visible, so that a sweep never misses them.
  AtomicMin(ready_expire_hint_, min_expire);
  while (!ready_.enqueue_bulk(records, count)) {
    // Only fails when a block cannot be allocated; the records must not be lost.
    std::this_thread::yield();
  }
  // seq_cst: pairs with the waiter's increment of waiters_ then read of visible_ (no lost wake-up).
  visible_.fetch_add(static_cast<std::int64_t>(count), std::memory_order_seq_cst);
  WakeOneReceiver();
}

void InMemoryQueue::WakeOneReceiver() {
  if (waiters_.load(std::memory_order_seq_cst) == 0) return;
  // Taking the mutex orders this wake-up after a waiter's check of visible_ (made under it).
  { std::lock_guard<std::mutex> guard(wait_mu_); }
  wait_cv_.notify_one();
}

void InMemoryQueue::WakeAllToReplan() {
  if (waiters_.load(std::memory_order_seq_cst) == 0) return;
  {
    std::lock_guard<std::mutex> guard(wait_mu_);
    ++wake_epoch_;
  }
  wait_cv_.notify_all();
}

void InMemoryQueue::AddDelayed(Record* record, SteadyTime due) {
  {
    std::lock_guard<std::mutex> guard(delayed_mu_);
    delayed_.push_back({due, record});
    std::push_heap(delayed_.begin(), delayed_.end(), LaterDue());
    delayed_min_expire_ = std::min(delayed_min_expire_, ToNanos(record->expire_at));
    next_delayed_due_.store(ToNanos(delayed_.front().due), std::memory_order_seq_cst);
    delayed_count_.fetch_add(1, std::memory_order_relaxed);
  }
  WakeAllToReplan();  // long polls re-plan their wake-up time
}

void InMemoryQueue::PromoteDelayed(SteadyTime now) {
  std::vector<Record*> due;
  std::vector<Record*> expired;
  {
    std::lock_guard<std::mutex> guard(delayed_mu_);
    while (!delayed_.empty() && delayed_.front().due <= now) {
      std::pop_heap(delayed_.begin(), delayed_.end(), LaterDue());
      Record* record = delayed_.back().record;
      delayed_.pop_back();
      (now >= record->expire_at ? expired : due).push_back(record);
    }
    next_delayed_due_.store(delayed_.empty() ? kNever : ToNanos(delayed_.front().due),
                            std::memory_order_seq_cst);
    delayed_count_.fetch_sub(static_cast<std::int64_t>(due.size() + expired.size()),
                             std::memory_order_relaxed);
  }
  for (Record* record : expired) Record::Delete(record);
  if (!due.empty()) EnqueueReady(due.data(), due.size());
}

void InMemoryQueue::PurgeExpiredDelayed(SteadyTime now) {
  std::vector<Record*> expired;
  {
    std::lock_guard<std::mutex> guard(delayed_mu_);
    if (ToNanos(now) < delayed_min_expire_) return;
    auto keep_end = std::partition(delayed_.begin(), delayed_.end(),
                                   [&](const DelayedEntry& e) { return now < e.record->expire_at; });
    for (auto it = keep_end; it != delayed_.end(); ++it) expired.push_back(it->record);
    delayed_.erase(keep_end, delayed_.end());
    std::make_heap(delayed_.begin(), delayed_.end(), LaterDue());
    delayed_min_expire_ = kNever;
    for (const DelayedEntry& e : delayed_) {
      delayed_min_expire_ = std::min(delayed_min_expire_, ToNanos(e.record->expire_at));
    }
    next_delayed_due_.store(delayed_.empty() ? kNever : ToNanos(delayed_.front().due),
                            std::memory_order_seq_cst);
    delayed_count_.fetch_sub(static_cast<std::int64_t>(expired.size()), std::memory_order_relaxed);
  }
  for (Record* record : expired) Record::Delete(record);
}

bool InMemoryQueue::IsLive(const Shard& shard, const Deadline& d) const {
  const Record* r = shard.table.Find(d.serial);
  return r != nullptr && r->state == State::kInFlight && r->vis_version == d.vis_version;
}

void InMemoryQueue::MaybeCompact(Shard& shard) {
  // Stale entries (deleted messages) pile up until their deadline; drop them once they are the
  // majority, which keeps the heap O(live) at O(1) amortised cost per delete.
  if (shard.stale < 256 || shard.stale * 2 < shard.heap.size()) return;
  std::erase_if(shard.heap, [&](const Deadline& d) { return !IsLive(shard, d); });
  std::make_heap(shard.heap.begin(), shard.heap.end(), LaterDeadline());
  shard.stale = 0;
}

void InMemoryQueue::ExpireInFlight(SteadyTime now) {
  std::unique_lock<std::mutex> scan(scan_mu_, std::try_to_lock);
  if (!scan.owns_lock()) return;  // another thread is doing it right now
  if (inflight_hint_.load(std::memory_order_seq_cst) > ToNanos(now)) return;
  // Reset before looking, then lower again: a deadline pushed concurrently either is seen below or
  // lowers the hint itself after this store.
  inflight_hint_.store(kNever, std::memory_order_seq_cst);
  std::vector<Record*> to_ready;
  std::vector<Record*> to_free;
  Nanos next = kNever;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> guard(shard.mu);
    while (!shard.heap.empty()) {
      const Deadline top = shard.heap.front();
      const bool live = IsLive(shard, top);
      if (live && top.at > now) break;
      std::pop_heap(shard.heap.begin(), shard.heap.end(), LaterDeadline());
      shard.heap.pop_back();
      if (!live) {
        --shard.stale;
        continue;
      }
      Record* record = shard.table.Find(top.serial);
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      if (now >= record->expire_at) {  // retention ran out while in flight
        shard.table.Erase(record->serial);
        to_free.push_back(record);
      } else {
        record->state = State::kReady;
        to_ready.push_back(record);
      }
    }
    if (!shard.heap.empty()) next = std::min(next, ToNanos(shard.heap.front().at));
  }
  AtomicMin(inflight_hint_, next);
  scan.unlock();
  for (Record* record : to_free) Record::Delete(record);
  if (!to_ready.empty()) EnqueueReady(to_ready.data(), to_ready.size());
}

void InMemoryQueue::SweepReadyForRetention(SteadyTime now) {
  std::lock_guard<std::mutex> scan(scan_mu_);
  if (ready_expire_hint_.load(std::memory_order_seq_cst) > ToNanos(now)) return;
  ready_expire_hint_.store(kNever, std::memory_order_seq_cst);
  std::vector<Record*> drained(64);
  std::vector<Record*> keep;
  std::vector<Record*> to_free;
  std::int64_t dropped_visible = 0;
  for (;;) {
    const std::size_t n = ready_.try_dequeue_bulk(drained.begin(), drained.size());
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) {
      Record* record = drained[i];
      if (record->shard < 0) {
        if (now >= record->expire_at) {
          to_free.push_back(record);
          ++dropped_visible;
        } else {
          keep.push_back(record);
        }
        continue;
      }
      Shard& shard = shards_[static_cast<std::size_t>(record->shard)];
      std::lock_guard<std::mutex> guard(shard.mu);
      if (record->state == State::kDeleted) {
        to_free.push_back(record);
      } else if (now >= record->expire_at) {
        shard.table.Erase(record->serial);
        to_free.push_back(record);
        ++dropped_visible;
      } else {
        keep.push_back(record);
      }
    }
  }
  visible_.fetch_sub(dropped_visible, std::memory_order_seq_cst);
  for (Record* record : to_free) Record::Delete(record);
  if (!keep.empty()) {
    // They were counted as visible already; EnqueueReady would count them again.
    visible_.fetch_sub(static_cast<std::int64_t>(keep.size()), std::memory_order_seq_cst);
    EnqueueReady(keep.data(), keep.size());
  }
}

std::string InMemoryQueue::FormatHandle(std::size_t shard, const Record& record) const {
  // 60 low bits: serial (low 36) | generation (24); 30 high bits: salt | shard | serial (high 13).
  const std::uint64_t low = ((record.serial & ((std::uint64_t{1} << kHandleSerialLowBits) - 1)) << 24) |
                            (record.generation & kHandleGenerationMask);
  const std::uint64_t high = ((salt_ & kHandleSaltMask) << 18) | (std::uint64_t{shard} << 13) |
                             (record.serial >> kHandleSerialLowBits);
  std::string handle(kHandleLength, 'A');
  for (int i = 0; i < 5; ++i) handle[static_cast<std::size_t>(i)] = kHandleAlphabet[(high >> (24 - 6 * i)) & 63];
  for (int i = 0; i < 10; ++i) {
    handle[static_cast<std::size_t>(5 + i)] = kHandleAlphabet[(low >> (54 - 6 * i)) & 63];
  }
  return handle;
}

bool InMemoryQueue::ParseHandle(std::string_view handle, ParsedHandle* parsed) const {
  if (handle.size() != kHandleLength) return false;
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  for (std::size_t i = 0; i < kHandleLength; ++i) {
    const std::uint8_t v = kHandleDecoder.value[static_cast<unsigned char>(handle[i])];
    if (v == 0xFF) return false;
    if (i < 5) {
      high = (high << 6) | v;
    } else {
      low = (low << 6) | v;
    }
  }
  if ((high >> 18) != (salt_ & kHandleSaltMask)) return false;  // another queue's (or garbage)
  parsed->shard = static_cast<std::size_t>((high >> 13) & 31);
  parsed->serial = ((high & ((1u << 13) - 1)) << kHandleSerialLowBits) | (low >> 24);
  parsed->generation = static_cast<std::uint32_t>(low & kHandleGenerationMask);
  return true;
}

ReceivedMessage InMemoryQueue::MakeReceived(const Record& record, std::string receipt_handle) const {
  ReceivedMessage m;
  m.message_id.assign(record.message_id.data(), kMessageIdLength);
  m.receipt_handle = std::move(receipt_handle);
  m.body = record.body();
  if (record.has_md5) m.md5_of_body.assign(record.md5_of_body.data(), kMd5HexLength);
  m.attributes = record.attributes;
  m.receive_count = record.receive_count;
  m.sent_timestamp = record.sent_wall;
  m.first_receive_timestamp = record.first_receive_wall;
  m.group_id = record.group_id;
  m.deduplication_id = record.deduplication_id;
  return m;
}

void InMemoryQueue::Deliver(Shard& shard, std::size_t shard_index, Record* record, SteadyTime now,
                            WallTime wall, std::chrono::seconds visibility,
                            std::vector<ReceivedMessage>* out, Nanos* min_deadline) {
  ++record->receive_count;
  ++record->generation;
  ++record->vis_version;
  if (record->receive_count == 1) record->first_receive_wall = wall;
  record->state = State::kInFlight;
  record->received_at = now;
  record->visible_at = now + visibility;
  const SteadyTime at = std::min(record->visible_at, record->expire_at);
  shard.heap.push_back({at, record->serial, record->vis_version});
  std::push_heap(shard.heap.begin(), shard.heap.end(), LaterDeadline());
  *min_deadline = std::min(*min_deadline, ToNanos(at));
  out->push_back(MakeReceived(*record, FormatHandle(shard_index, *record)));
}

void InMemoryQueue::TakeReady(std::size_t max, SteadyTime now, std::chrono::seconds visibility,
                              std::vector<ReceivedMessage>* out) {
  const std::size_t my_shard = ThreadShard();
  std::array<Record*, kMaxReceiveMessages> batch;
  std::vector<Record*> to_free;
  std::vector<Record*> to_redrive;
  Nanos min_deadline = kNever;
  WallTime wall{};
  bool have_wall = false;
  std::int64_t taken_visible = 0;
  std::int64_t delivered = 0;
  while (out->size() < max) {
    const std::size_t n = ready_.try_dequeue_bulk(batch.begin(), max - out->size());
    if (n == 0) break;
    // Group by shard so that each shard is locked once; records never received here (shard < 0)
    // join this thread's shard.
    std::sort(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(n), [&](Record* a, Record* b) {
      const std::size_t sa = a->shard < 0 ? my_shard : static_cast<std::size_t>(a->shard);
      const std::size_t sb = b->shard < 0 ? my_shard : static_cast<std::size_t>(b->shard);
      return sa < sb;
    });
    for (std::size_t i = 0; i < n && !have_wall; ++i) {
      if (batch[i]->shard < 0 && batch[i]->receive_count == 0) {
        wall = clock_.WallNow();
        have_wall = true;
      }
    }
    std::size_t i = 0;
    while (i < n) {
      const std::size_t shard_index =
          batch[i]->shard < 0 ? my_shard : static_cast<std::size_t>(batch[i]->shard);
      Shard& shard = shards_[shard_index];
      std::lock_guard<std::mutex> guard(shard.mu);
      for (; i < n; ++i) {
        Record* record = batch[i];
        const bool fresh = record->shard < 0;
        if ((fresh ? my_shard : static_cast<std::size_t>(record->shard)) != shard_index) break;
        if (record->state == State::kDeleted) {  // tombstone: already uncounted and untabled
          to_free.push_back(record);
          continue;
        }
        ++taken_visible;
        const bool expired = now >= record->expire_at;
        const bool redrive =
            options_.max_receive_count > 0 && record->receive_count >= options_.max_receive_count;
        if (expired || redrive) {
          if (!fresh) shard.table.Erase(record->serial);
          (expired ? to_free : to_redrive).push_back(record);
          continue;
        }
        if (fresh) {
          record->shard = static_cast<int>(shard_index);
          shard.table.Insert(record);
        }
        Deliver(shard, shard_index, record, now, wall, visibility, out, &min_deadline);
        ++delivered;
      }
      MaybeCompact(shard);
    }
  }
  if (taken_visible > 0) visible_.fetch_sub(taken_visible, std::memory_order_seq_cst);
  if (delivered > 0) in_flight_.fetch_add(delivered, std::memory_order_relaxed);
  // Pass the wake-up on if this receiver left messages for others.
  if (!out->empty() && visible_.load(std::memory_order_seq_cst) > 0) WakeOneReceiver();
  LowerInflightHint(min_deadline);
  for (Record* record : to_free) Record::Delete(record);
  for (Record* record : to_redrive) dead_letter_queue_->AcceptRedrive(record, now);
}

void InMemoryQueue::AcceptRedrive(Record* record, SteadyTime now) {
  // Keeps the message id, body, attributes, send time and receive count; a new serial in this
  // queue, so no receipt handle from the source queue is valid here.
  record->serial = next_serial_.fetch_add(1, std::memory_order_relaxed);
  record->shard = -1;
  record->state = State::kReady;
  record->next_in_bucket = nullptr;
  record->expire_at = record->sent_at + options_.retention;
  if (now >= record->expire_at) {
    Record::Delete(record);
    return;
  }
  EnqueueReady(&record, 1);
}

StatusOr<std::vector<ReceivedMessage>> InMemoryQueue::Receive(const ReceiveOptions& options) {
  TASKPIPE_RETURN_IF_ERROR(ValidateReceiveOptions(options));
  std::vector<ReceivedMessage> out;
  if (shutdown_.load(std::memory_order_acquire)) return out;
  const auto max = static_cast<std::size_t>(options.max_messages);
  out.reserve(max);
  const std::chrono::seconds visibility = options.visibility_timeout.value_or(options_.visibility_timeout);
  SteadyTime now = clock_.Now();
  RunMaintenance(now);
  TakeReady(max, now, visibility, &out);
  if (!out.empty() || options.wait == std::chrono::seconds::zero()) return out;

  // Under load a message usually arrives within microseconds: look again for a moment before
  // blocking, which spares both this thread and the sender a futex round trip.
  for (int i = 0; i < kSpinBeforeBlocking && visible_.load(std::memory_order_relaxed) <= 0; ++i) CpuRelax();
  if (visible_.load(std::memory_order_relaxed) > 0) {
    TakeReady(max, now, visibility, &out);
    if (!out.empty()) return out;
  }

  const SteadyTime end = now + options.wait;
  while (true) {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    {
      std::unique_lock<std::mutex> lock(wait_mu_);
      const std::uint64_t epoch = wake_epoch_;
      // Wake at the end of the poll or when a delayed message falls due or an in-flight one may
      // reappear, whichever is first (with a FakeClock, Advance() wakes exactly these waits).
      const Nanos deadline = std::min({ToNanos(end), next_delayed_due_.load(std::memory_order_seq_cst),
                                       inflight_hint_.load(std::memory_order_seq_cst)});
      clock_.WaitUntil(lock, wait_cv_, FromNanos(deadline), [&] {
        return shutdown_.load(std::memory_order_acquire) ||
               visible_.load(std::memory_order_seq_cst) > 0 || wake_epoch_ != epoch;
      });
    }
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
    if (shutdown_.load(std::memory_order_acquire)) return out;
    now = clock_.Now();
    RunMaintenance(now);
    TakeReady(max, now, visibility, &out);
    if (!out.empty() || now >= end) return out;
  }
}

void InMemoryQueue::RemoveLocked(Shard& shard, Record* record, Deferred* deferred) {
  shard.table.Erase(record->serial);
  if (record->state == State::kInFlight) {
    ++shard.stale;
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    deferred->free = record;
  } else {
    // In the ready queue: leave a tombstone for the receiver that dequeues it.
    record->state = State::kDeleted;
    visible_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

Status InMemoryQueue::DeleteLocked(Shard& shard, const ParsedHandle& handle, std::string_view text,
                                   SteadyTime now, Deferred* deferred) {
  Record* record = shard.table.Find(handle.serial);
  // A handle is valid iff it is the newest handle of a message that still exists. So deleting
  // after the visibility timeout ran out but before anyone received the message again succeeds,
  // while a second Delete with the same handle fails: the issue asks for stale handles to be
  // rejected, where real SQS is lenient about repeated deletes.
  if (record == nullptr) return InvalidHandle(text, "does not belong to a message in the queue (deleted?)");
  if ((record->generation & kHandleGenerationMask) != handle.generation) {
    return InvalidHandle(text, "is stale: the message has been received again since");
  }
  const bool expired = now >= record->expire_at;
  RemoveLocked(shard, record, deferred);
  if (expired) return InvalidHandle(text, "belongs to a message past the queue's retention period");
  return Status::Ok();
}

Status InMemoryQueue::ChangeVisibilityLocked(Shard& shard, const ParsedHandle& handle,
                                             std::string_view text, std::chrono::seconds timeout,
                                             SteadyTime now, Deferred* deferred) {
  Record* record = shard.table.Find(handle.serial);
  if (record == nullptr) return InvalidHandle(text, "does not belong to a message in the queue (deleted?)");
  if ((record->generation & kHandleGenerationMask) != handle.generation) {
    return InvalidHandle(text, "is stale: the message has been received again since");
  }
  if (now >= record->expire_at) {
    RemoveLocked(shard, record, deferred);
    return InvalidHandle(text, "belongs to a message past the queue's retention period");
  }
  if (record->state != State::kInFlight || now >= record->visible_at) {
    if (record->state == State::kInFlight) {
      // Its visibility ran out and no Receive has noticed yet: it is visible, so make it so.
      ++record->vis_version;
      ++shard.stale;
      record->state = State::kReady;
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      deferred->to_ready = record;
    }
    return InvalidArgumentError("the message is not in flight: its visibility timeout has run out",
                                "MessageNotInflight");
  }
  if (now + timeout > record->received_at + kMaxVisibilityTimeout) {
    return InvalidParameter("visibility timeout " + std::to_string(timeout.count()) +
                            " s would keep the message invisible for more than 12 hours after it "
                            "was received");
  }
  ++record->vis_version;
  ++shard.stale;  // the previous deadline entry
  if (timeout == std::chrono::seconds::zero()) {
    record->state = State::kReady;
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    deferred->to_ready = record;
  } else {
    record->visible_at = now + timeout;
    const SteadyTime at = std::min(record->visible_at, record->expire_at);
    shard.heap.push_back({at, record->serial, record->vis_version});
    std::push_heap(shard.heap.begin(), shard.heap.end(), LaterDeadline());
    deferred->new_deadline = ToNanos(at);
  }
  return Status::Ok();
}

void InMemoryQueue::FinishDeferred(const Deferred& deferred) {
  Record::Delete(deferred.free);
  if (deferred.to_ready != nullptr) {
    Record* record = deferred.to_ready;
    EnqueueReady(&record, 1);
  }
  LowerInflightHint(deferred.new_deadline);
}

Status InMemoryQueue::Delete(std::string_view receipt_handle) {
  ParsedHandle handle;
  if (!ParseHandle(receipt_handle, &handle)) return InvalidHandle(receipt_handle, "is not valid for this queue");
  const SteadyTime now = clock_.Now();
  Deferred deferred;
  Status status;
  {
    Shard& shard = shards_[handle.shard];
    std::lock_guard<std::mutex> guard(shard.mu);
    status = DeleteLocked(shard, handle, receipt_handle, now, &deferred);
    MaybeCompact(shard);
  }
  FinishDeferred(deferred);
  return status;
}

Status InMemoryQueue::ChangeVisibility(std::string_view receipt_handle, std::chrono::seconds timeout) {
  TASKPIPE_RETURN_IF_ERROR(ValidateVisibilityTimeout(timeout));
  ParsedHandle handle;
  if (!ParseHandle(receipt_handle, &handle)) return InvalidHandle(receipt_handle, "is not valid for this queue");
  const SteadyTime now = clock_.Now();
  Deferred deferred;
  Status status;
  {
    Shard& shard = shards_[handle.shard];
    std::lock_guard<std::mutex> guard(shard.mu);
    status = ChangeVisibilityLocked(shard, handle, receipt_handle, timeout, now, &deferred);
    MaybeCompact(shard);
  }
  FinishDeferred(deferred);
  return status;
}

StatusOr<BatchResult<Empty>> InMemoryQueue::DeleteBatch(const std::vector<DeleteBatchEntry>& entries) {
  TASKPIPE_RETURN_IF_ERROR(ValidateIds(entries));
  const SteadyTime now = clock_.Now();
  std::array<Status, kMaxBatchEntries> statuses;
  std::array<ParsedHandle, kMaxBatchEntries> handles;
  std::array<std::size_t, kMaxBatchEntries> order;  // valid handles, grouped by shard
  std::size_t num_valid = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (ParseHandle(entries[i].receipt_handle, &handles[i])) {
      order[num_valid++] = i;
    } else {
      statuses[i] = InvalidHandle(entries[i].receipt_handle, "is not valid for this queue");
    }
  }
  // Stable: entries with the same handle are applied in request order.
  std::stable_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(num_valid),
                   [&](std::size_t a, std::size_t b) { return handles[a].shard < handles[b].shard; });
  std::array<Deferred, kMaxBatchEntries> deferred;
  for (std::size_t k = 0; k < num_valid;) {
    Shard& shard = shards_[handles[order[k]].shard];
    const std::size_t shard_index = handles[order[k]].shard;
    std::lock_guard<std::mutex> guard(shard.mu);
    for (; k < num_valid && handles[order[k]].shard == shard_index; ++k) {
      const std::size_t i = order[k];
      statuses[i] = DeleteLocked(shard, handles[i], entries[i].receipt_handle, now, &deferred[i]);
    }
    MaybeCompact(shard);
  }
  BatchResult<Empty> result;
  result.successful.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    FinishDeferred(deferred[i]);
    if (statuses[i].ok()) {
      result.successful.push_back({entries[i].id, Empty{}});
    } else {
      result.failed.push_back({entries[i].id, std::move(statuses[i]), /*sender_fault=*/true});
    }
  }
  return result;
}

StatusOr<BatchResult<Empty>> InMemoryQueue::ChangeVisibilityBatch(
    const std::vector<ChangeVisibilityBatchEntry>& entries) {
  TASKPIPE_RETURN_IF_ERROR(ValidateIds(entries));
  const SteadyTime now = clock_.Now();
  std::array<Status, kMaxBatchEntries> statuses;
  std::array<ParsedHandle, kMaxBatchEntries> handles;
  std::array<std::size_t, kMaxBatchEntries> order;
  std::size_t num_valid = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (Status s = ValidateVisibilityTimeout(entries[i].visibility_timeout); !s.ok()) {
      statuses[i] = std::move(s);
    } else if (!ParseHandle(entries[i].receipt_handle, &handles[i])) {
      statuses[i] = InvalidHandle(entries[i].receipt_handle, "is not valid for this queue");
    } else {
      order[num_valid++] = i;
    }
  }
  std::stable_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(num_valid),
                   [&](std::size_t a, std::size_t b) { return handles[a].shard < handles[b].shard; });
  std::array<Deferred, kMaxBatchEntries> deferred;
  for (std::size_t k = 0; k < num_valid;) {
    const std::size_t shard_index = handles[order[k]].shard;
    Shard& shard = shards_[shard_index];
    std::lock_guard<std::mutex> guard(shard.mu);
    for (; k < num_valid && handles[order[k]].shard == shard_index; ++k) {
      const std::size_t i = order[k];
      statuses[i] = ChangeVisibilityLocked(shard, handles[i], entries[i].receipt_handle,
                                           entries[i].visibility_timeout, now, &deferred[i]);
    }
    MaybeCompact(shard);
  }
  BatchResult<Empty> result;
  result.successful.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    FinishDeferred(deferred[i]);
    if (statuses[i].ok()) {
      result.successful.push_back({entries[i].id, Empty{}});
    } else {
      result.failed.push_back({entries[i].id, std::move(statuses[i]), /*sender_fault=*/true});
    }
  }
  return result;
}

StatusOr<QueueAttributes> InMemoryQueue::GetAttributes() {
  const SteadyTime now = clock_.Now();
  RunMaintenance(now);
  if (ready_expire_hint_.load(std::memory_order_seq_cst) <= ToNanos(now)) SweepReadyForRetention(now);
  PurgeExpiredDelayed(now);
  QueueAttributes attributes;
  attributes.visible = std::max<std::int64_t>(0, visible_.load(std::memory_order_seq_cst));
  attributes.in_flight = std::max<std::int64_t>(0, in_flight_.load(std::memory_order_relaxed));
  attributes.delayed = std::max<std::int64_t>(0, delayed_count_.load(std::memory_order_relaxed));
  attributes.max_receive_count = options_.max_receive_count;
  return attributes;
}

void InMemoryQueue::Shutdown() {
  shutdown_.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> guard(wait_mu_);
    ++wake_epoch_;
  }
  wait_cv_.notify_all();
}

std::vector<ReceivedMessage> InMemoryQueue::Peek() {
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(kNumShards);
  for (Shard& shard : shards_) locks.emplace_back(shard.mu);  // always in index order
  std::lock_guard<std::mutex> delayed_guard(delayed_mu_);

  std::vector<const Record*> found;
  // Records that have been received are all in their shard's table (whether in flight, in the
  // ready queue or on their way there); the ready queue adds those never received.
  std::vector<Record*> drained;
  Record* record;
  while (ready_.try_dequeue(record)) drained.push_back(record);
  for (const Record* r : drained) {
    if (r->shard < 0) found.push_back(r);
  }
  for (const Shard& shard : shards_) shard.table.ForEach([&](const Record* r) { found.push_back(r); });
  for (const DelayedEntry& entry : delayed_) found.push_back(entry.record);
  std::sort(found.begin(), found.end(), [](const Record* a, const Record* b) {
    return a->sent_at != b->sent_at ? a->sent_at < b->sent_at : a->serial < b->serial;
  });
  std::vector<ReceivedMessage> result;
  result.reserve(found.size());
  for (const Record* r : found) result.push_back(MakeReceived(*r, ""));
  // Put the ready queue back as it was (tombstones included).
  if (!drained.empty()) {
    while (!ready_.enqueue_bulk(drained.data(), drained.size())) std::this_thread::yield();
  }
  return result;
}

}  // namespace

StatusOr<std::unique_ptr<Queue>> NewInMemoryQueue(const InMemoryQueueOptions& options, Clock& clock) {
  if (Status s = ValidateVisibilityTimeout(options.visibility_timeout); !s.ok()) {
    return s.WithContext("InMemoryQueueOptions.visibility_timeout");
  }
  if (options.retention < kMinRetention || options.retention > kMaxRetention) {
    return InvalidParameter("InMemoryQueueOptions.retention must be between " +
                            std::to_string(kMinRetention.count()) + " and " +
                            std::to_string(kMaxRetention.count()) + " seconds, got " +
                            std::to_string(options.retention.count()));
  }
  if (options.delay < std::chrono::seconds::zero() || options.delay > kMaxDelay) {
    return InvalidParameter("InMemoryQueueOptions.delay must be between 0 and " +
                            std::to_string(kMaxDelay.count()) + " seconds, got " +
                            std::to_string(options.delay.count()));
  }
  // SQS's RedrivePolicy accepts maxReceiveCount 1..1000.
  if (options.max_receive_count < 0 || options.max_receive_count > 1000) {
    return InvalidParameter("InMemoryQueueOptions.max_receive_count must be between 0 (no redrive) and "
                            "1000, got " + std::to_string(options.max_receive_count));
  }
  InMemoryQueue* dead_letter_queue = nullptr;
  if (options.dead_letter_queue != nullptr) {
    dead_letter_queue = dynamic_cast<InMemoryQueue*>(options.dead_letter_queue);
    if (dead_letter_queue == nullptr) {
      return InvalidParameter("InMemoryQueueOptions.dead_letter_queue must be an in-memory queue");
    }
  }
  if (options.max_receive_count > 0 && dead_letter_queue == nullptr) {
    return InvalidParameter("InMemoryQueueOptions.max_receive_count is " +
                            std::to_string(options.max_receive_count) +
                            " but there is no dead_letter_queue to move messages to");
  }
  const std::string& name = options.name;
  if (name.empty() || name.size() > 80 || !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-';
      })) {
    return InvalidParameter("InMemoryQueueOptions.name '" + name +
                            "' must be 1-80 characters of A-Z, a-z, 0-9, '-' and '_'");
  }
  return std::unique_ptr<Queue>(std::make_unique<InMemoryQueue>(options, clock, dead_letter_queue));
}

StatusOr<std::vector<ReceivedMessage>> PeekInMemoryQueue(Queue& queue) {
  auto* in_memory = dynamic_cast<InMemoryQueue*>(&queue);
  if (in_memory == nullptr) {
    return InvalidArgumentError("PeekInMemoryQueue: not an in-memory queue");
  }
  return in_memory->Peek();
}

}  // namespace taskpipe
