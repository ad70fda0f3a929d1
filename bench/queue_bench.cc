// Throughput and wake-up latency of the in-memory queue backend, next to
//  (a) raw moodycamel::ConcurrentQueue bulk enqueue/dequeue of the same payloads: the ceiling;
//  (b) MutexQueue below: the same SQS semantics (validation, MD5, message ids, receipt handles,
//      visibility deadlines, in-flight map, tombstones, long polling) behind one std::mutex and a
//      std::deque: the baseline a straightforward implementation would give.
//
// Each throughput run: S sender threads send for a fixed time (each message: Send, or SendBatch of
// 10), R receiver threads Receive (long poll, up to the batch size) and Delete / DeleteBatch, until
// everything sent is deleted. msgs/s = messages deleted / wall time. Senders pause while more than
// kMaxBacklog messages are outstanding (they block, they do not spin), the same for all three
// queues, so the queue stays small and nobody burns a core waiting.
// Figures, not pass/fail. Ends with the three headline lines (queue_vs_moodycamel, queue_vs_mutex,
// wake_p99_us). Plain main(): the runs are multi-threaded end to end, which Google Benchmark's
// per-iteration model does not fit well.
// g++ 12 reports false -Wnull-dereference warnings from inside moodycamel's token code once it is
// inlined (as it does -Wstringop-overflow, silenced for this file in CMakeLists.txt).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <concurrentqueue/concurrentqueue.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "queue/in_memory_queue.h"
#include "queue/queue.h"
#include "queue/validate.h"

namespace taskpipe {
namespace {

using namespace std::chrono_literals;
using SteadyTime = Clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

constexpr auto kRunTime = 800ms;          // sending phase of each throughput run
constexpr std::int64_t kMaxBacklog = 4096;
constexpr int kWakeSamples = 3000;

// What taskpipe's producer puts on the queue: a JSON envelope of about 130 bytes.
const std::string kPayload =
    R"({"job":"daily-report","task":{"report":"sales","day":"yesterday"},)"
    R"("scheduled_at":"2026-03-08T07:00:00Z","fired_at":"2026-03-08T07:00:00Z"})";

// ---------------------------------------------------------------------------------------------
// Baseline: SQS semantics behind one mutex.

constexpr char kHex[] = "0123456789abcdef";
void PutHex(std::uint64_t value, int digits, char* out) {
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = kHex[value & 0xf];
    value >>= 4;
  }
}
bool GetHex(const char* in, int digits, std::uint64_t* value) {
  std::uint64_t v = 0;
  for (int i = 0; i < digits; ++i) {
    const char c = in[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  *value = v;
  return true;
}

class MutexQueue final : public Queue {
 public:
  explicit MutexQueue(Clock& clock) : clock_(clock) {
    std::random_device random;
    salt_ = (std::uint64_t{random()} << 32) ^ random();
    PutHex(salt_, 16, salt_hex_);
  }
  ~MutexQueue() override {
    for (Rec* r : ready_) {
      if (r->deleted || by_serial_.count(r->serial) == 0) delete r;
    }
    for (auto& [serial, r] : by_serial_) delete r;
  }

  StatusOr<SendResult> Send(const OutgoingMessage& message) override {
    TASKPIPE_RETURN_IF_ERROR(ValidateOutgoingMessage(message));
    Rec* r = NewRec(message, clock_.Now(), clock_.WallNow());
    SendResult result{r->id, r->md5, ""};
    std::lock_guard<std::mutex> guard(mu_);
    ready_.push_back(r);
    if (waiters_ > 0) cv_.notify_all();
    return result;
  }

  StatusOr<BatchResult<SendResult>> SendBatch(const std::vector<SendBatchEntry>& entries) override {
    std::vector<std::string> ids;
    std::size_t total = 0;
    for (const SendBatchEntry& e : entries) {
      ids.push_back(e.id);
      total += MessageSize(e.message);
    }
    TASKPIPE_RETURN_IF_ERROR(ValidateBatchEntryIds(ids));
    if (total > kMaxMessageBytes) return InvalidArgumentError("batch too long", "BatchRequestTooLong");
    BatchResult<SendResult> result;
    std::vector<Rec*> recs;
    const SteadyTime now = clock_.Now();
    const WallTime wall = clock_.WallNow();
    for (const SendBatchEntry& e : entries) {
      if (Status s = ValidateOutgoingMessage(e.message); !s.ok()) {
        result.failed.push_back({e.id, s, true});
        continue;
      }
      Rec* r = NewRec(e.message, now, wall);
      result.successful.push_back({e.id, SendResult{r->id, r->md5, ""}});
      recs.push_back(r);
    }
    std::lock_guard<std::mutex> guard(mu_);
    ready_.insert(ready_.end(), recs.begin(), recs.end());
    if (waiters_ > 0) cv_.notify_all();
    return result;
  }

  StatusOr<std::vector<ReceivedMessage>> Receive(const ReceiveOptions& options) override {
    TASKPIPE_RETURN_IF_ERROR(ValidateReceiveOptions(options));
    const auto visibility = options.visibility_timeout.value_or(30s);
    std::vector<ReceivedMessage> out;
    SteadyTime now = clock_.Now();
    const SteadyTime end = now + options.wait;
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (shutdown_) return out;
      ExpireLocked(now);
      TakeLocked(static_cast<std::size_t>(options.max_messages), now, visibility, &out);
      if (!out.empty() || now >= end) return out;
      ++waiters_;
      const SteadyTime deadline = heap_.empty() ? end : std::min(end, heap_.front().at);
      clock_.WaitUntil(lock, cv_, deadline, [&] { return shutdown_ || !ready_.empty(); });
      --waiters_;
      now = clock_.Now();
    }
  }

  Status Delete(std::string_view handle) override {
    Rec* to_free = nullptr;
    Status s;
    {
      std::lock_guard<std::mutex> guard(mu_);
      s = DeleteLocked(handle, &to_free);
    }
    delete to_free;
    return s;
  }

  StatusOr<BatchResult<Empty>> DeleteBatch(const std::vector<DeleteBatchEntry>& entries) override {
    std::vector<std::string> ids;
    for (const DeleteBatchEntry& e : entries) ids.push_back(e.id);
    TASKPIPE_RETURN_IF_ERROR(ValidateBatchEntryIds(ids));
    BatchResult<Empty> result;
    std::vector<Rec*> to_free(entries.size(), nullptr);
    {
      std::lock_guard<std::mutex> guard(mu_);
      for (std::size_t i = 0; i < entries.size(); ++i) {
        Status s = DeleteLocked(entries[i].receipt_handle, &to_free[i]);
        if (s.ok()) {
          result.successful.push_back({entries[i].id, Empty{}});
        } else {
          result.failed.push_back({entries[i].id, s, true});
        }
      }
    }
    for (Rec* r : to_free) delete r;
    return result;
  }

  Status ChangeVisibility(std::string_view handle, std::chrono::seconds timeout) override {
    TASKPIPE_RETURN_IF_ERROR(ValidateVisibilityTimeout(timeout));
    std::uint64_t serial, generation;
    if (!Parse(handle, &serial, &generation)) return InvalidArgumentError("bad handle", "ReceiptHandleIsInvalid");
    std::lock_guard<std::mutex> guard(mu_);
    auto it = by_serial_.find(serial);
    if (it == by_serial_.end() || it->second->generation != generation) {
      return InvalidArgumentError("stale handle", "ReceiptHandleIsInvalid");
    }
    Rec* r = it->second;
    const SteadyTime now = clock_.Now();
    if (!r->in_flight || now >= r->visible_at) return InvalidArgumentError("not in flight", "MessageNotInflight");
    ++r->vis_version;
    ++stale_;
    if (timeout == 0s) {
      r->in_flight = false;
      ready_.push_back(r);
      if (waiters_ > 0) cv_.notify_all();
    } else {
      r->visible_at = now + timeout;
      PushDeadline(r);
    }
    return Status::Ok();
  }

  StatusOr<BatchResult<Empty>> ChangeVisibilityBatch(
      const std::vector<ChangeVisibilityBatchEntry>& entries) override {
    BatchResult<Empty> result;
    for (const auto& e : entries) {
      Status s = ChangeVisibility(e.receipt_handle, e.visibility_timeout);
      if (s.ok()) {
        result.successful.push_back({e.id, Empty{}});
      } else {
        result.failed.push_back({e.id, s, true});
      }
    }
    return result;
  }

  StatusOr<QueueAttributes> GetAttributes() override {
    std::lock_guard<std::mutex> guard(mu_);
    QueueAttributes a;
    for (Rec* r : ready_) a.visible += r->deleted ? 0 : 1;
    a.in_flight = static_cast<std::int64_t>(by_serial_.size()) - a.visible;
    return a;
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> guard(mu_);
    shutdown_ = true;
    cv_.notify_all();
  }

 private:
  struct Rec {
    std::uint64_t serial;
    SteadyTime expire_at;
    WallTime sent_wall;
    std::string id;
    std::string md5;
    std::string body;
    MessageAttributes attributes;
    int receive_count = 0;
    std::uint32_t generation = 0;
    std::uint32_t vis_version = 0;
    bool in_flight = false;
    bool deleted = false;
    WallTime first_receive{};
    SteadyTime visible_at;
  };
  struct Deadline {
    SteadyTime at;
    std::uint64_t serial;
    std::uint32_t vis_version;
  };
  struct Later {
    bool operator()(const Deadline& a, const Deadline& b) const { return a.at > b.at; }
  };

  Rec* NewRec(const OutgoingMessage& m, SteadyTime now, WallTime wall) {
    auto* r = new Rec;
    r->serial = next_serial_.fetch_add(1, std::memory_order_relaxed);
    r->expire_at = now + kDefaultRetention;
    r->sent_wall = wall;
    r->id.resize(36);
    const std::uint64_t hi = (salt_ & 0xFFFFFFFFFFFF0FFFULL) | 0x4000;
    const std::uint64_t lo = ((r->serial ^ salt_) * 0xD6E8FEB86659FD93ULL) | 0x8000000000000000ULL;
    PutHex(hi >> 32, 8, &r->id[0]);
    r->id[8] = '-';
    PutHex((hi >> 16) & 0xFFFF, 4, &r->id[9]);
    r->id[13] = '-';
    PutHex(hi & 0xFFFF, 4, &r->id[14]);
    r->id[18] = '-';
    PutHex(lo >> 48, 4, &r->id[19]);
    r->id[23] = '-';
    PutHex(lo & 0xFFFFFFFFFFFFULL, 12, &r->id[24]);
    r->md5 = Md5OfBody(m.body);
    r->body = m.body;
    r->attributes = m.attributes;
    return r;
  }

  bool Parse(std::string_view h, std::uint64_t* serial, std::uint64_t* generation) const {
    return h.size() == 40 && std::memcmp(h.data(), salt_hex_, 16) == 0 && GetHex(h.data() + 16, 16, serial) &&
           GetHex(h.data() + 32, 8, generation);
  }

  void PushDeadline(Rec* r) {
    heap_.push_back({std::min(r->visible_at, r->expire_at), r->serial, r->vis_version});
    std::push_heap(heap_.begin(), heap_.end(), Later());
    if (stale_ > 256 && stale_ * 2 > heap_.size()) {
      std::erase_if(heap_, [&](const Deadline& d) { return !Live(d); });
      std::make_heap(heap_.begin(), heap_.end(), Later());
      stale_ = 0;
    }
  }

  bool Live(const Deadline& d) const {
    auto it = by_serial_.find(d.serial);
    return it != by_serial_.end() && it->second->in_flight && it->second->vis_version == d.vis_version;
  }

  void ExpireLocked(SteadyTime now) {
    while (!heap_.empty() && heap_.front().at <= now) {
      const Deadline d = heap_.front();
      std::pop_heap(heap_.begin(), heap_.end(), Later());
      heap_.pop_back();
      if (!Live(d)) {
        --stale_;
        continue;
      }
      Rec* r = by_serial_[d.serial];
      r->in_flight = false;
      ready_.push_back(r);
    }
  }

  void TakeLocked(std::size_t max, SteadyTime now, std::chrono::seconds visibility,
                  std::vector<ReceivedMessage>* out) {
    WallTime wall{};
    while (out->size() < max && !ready_.empty()) {
      Rec* r = ready_.front();
      ready_.pop_front();
      if (r->deleted) {
        delete r;
        continue;
      }
      if (now >= r->expire_at) {
        by_serial_.erase(r->serial);
        delete r;
        continue;
      }
      if (r->receive_count++ == 0) {
        if (wall == WallTime{}) wall = clock_.WallNow();
        r->first_receive = wall;
        by_serial_.emplace(r->serial, r);
      }
      ++r->generation;
      ++r->vis_version;
      r->in_flight = true;
      r->visible_at = now + visibility;
      PushDeadline(r);
      ReceivedMessage m;
      m.message_id = r->id;
      m.receipt_handle.resize(40);
      std::memcpy(&m.receipt_handle[0], salt_hex_, 16);
      PutHex(r->serial, 16, &m.receipt_handle[16]);
      PutHex(r->generation, 8, &m.receipt_handle[32]);
      m.body = r->body;
      m.md5_of_body = r->md5;
      m.attributes = r->attributes;
      m.receive_count = r->receive_count;
      m.sent_timestamp = r->sent_wall;
      m.first_receive_timestamp = r->first_receive;
      out->push_back(std::move(m));
    }
  }

  Status DeleteLocked(std::string_view handle, Rec** to_free) {
    std::uint64_t serial, generation;
    if (!Parse(handle, &serial, &generation)) return InvalidArgumentError("bad handle", "ReceiptHandleIsInvalid");
    auto it = by_serial_.find(serial);
    if (it == by_serial_.end() || it->second->generation != generation) {
      return InvalidArgumentError("stale handle", "ReceiptHandleIsInvalid");
    }
    Rec* r = it->second;
    by_serial_.erase(it);
    if (r->in_flight) {
      ++stale_;
      *to_free = r;
    } else {
      r->deleted = true;  // tombstone in ready_
    }
    return Status::Ok();
  }

  Clock& clock_;
  std::uint64_t salt_;
  char salt_hex_[16];
  std::atomic<std::uint64_t> next_serial_{1};
  std::mutex mu_;
  std::condition_variable cv_;
  int waiters_ = 0;                                    // GUARDED_BY(mu_)
  bool shutdown_ = false;                              // GUARDED_BY(mu_)
  std::deque<Rec*> ready_;                             // GUARDED_BY(mu_)
  std::unordered_map<std::uint64_t, Rec*> by_serial_;  // GUARDED_BY(mu_)
  std::vector<Deadline> heap_;                         // GUARDED_BY(mu_)
  std::size_t stale_ = 0;                              // GUARDED_BY(mu_)
};

// ---------------------------------------------------------------------------------------------
// Harness.

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Backpressure shared by all harnesses: a sender more than kMaxBacklog messages ahead of the
// receivers blocks (std::atomic::wait, a futex; no spinning) until they catch up.
void WaitForBacklog(const std::atomic<std::int64_t>& sent, const std::atomic<std::int64_t>& done) {
  std::int64_t d = done.load(std::memory_order_relaxed);
  while (sent.load(std::memory_order_relaxed) - d > kMaxBacklog) {
    done.wait(d, std::memory_order_relaxed);
    d = done.load(std::memory_order_relaxed);
  }
}
void MarkDone(std::atomic<std::int64_t>& done, std::int64_t n) {
  done.fetch_add(n);
  done.notify_all();  // no system call unless a sender is waiting
}

// Sender/receiver run through the Queue interface. Returns messages per second.
double RunQueue(Queue& queue, int num_senders, int num_receivers, int batch) {
  std::atomic<std::int64_t> sent{0};
  std::atomic<std::int64_t> done{0};
  std::atomic<int> senders_left{num_senders};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  std::atomic<std::int64_t> finish_ns{0};
  auto finish = [&] {
    std::int64_t unset = 0;  // the first to see the end records it
    finish_ns.compare_exchange_strong(unset, (std::chrono::steady_clock::now() - start).count());
    queue.Shutdown();  // releases the receivers from their long polls
  };
  for (int s = 0; s < num_senders; ++s) {
    threads.emplace_back([&] {
      std::vector<SendBatchEntry> entries(static_cast<std::size_t>(batch));
      for (int i = 0; i < batch; ++i) {
        entries[static_cast<std::size_t>(i)].id = "e" + std::to_string(i);
        entries[static_cast<std::size_t>(i)].message.body = kPayload;
      }
      while (std::chrono::steady_clock::now() - start < kRunTime) {
        WaitForBacklog(sent, done);
        if (batch == 1) {
          if (!queue.Send(entries[0].message).ok()) errors.fetch_add(1);
        } else {
          auto result = queue.SendBatch(entries);
          if (!result.ok() || !result->failed.empty()) errors.fetch_add(1);
        }
        sent.fetch_add(batch);
      }
      // The last sender may finish after the receivers deleted everything (and went back to a
      // long poll): then it ends the run. seq_cst on both sides: one of them sees the end.
      if (senders_left.fetch_sub(1) == 1 && done.load() >= sent.load()) finish();
    });
  }
  for (int r = 0; r < num_receivers; ++r) {
    threads.emplace_back([&] {
      ReceiveOptions options;
      options.max_messages = batch;
      options.wait = 1s;
      std::vector<DeleteBatchEntry> entries;
      while (true) {
        auto received = queue.Receive(options);
        if (!received.ok()) {
          errors.fetch_add(1);
          return;
        }
        if (!received->empty()) {
          if (batch == 1) {
            if (!queue.Delete((*received)[0].receipt_handle).ok()) errors.fetch_add(1);
          } else {
            entries.clear();
            for (const ReceivedMessage& m : *received) {
              entries.push_back({"d" + std::to_string(entries.size()), m.receipt_handle});
            }
            auto result = queue.DeleteBatch(entries);
            if (!result.ok() || !result->failed.empty()) errors.fetch_add(1);
          }
          MarkDone(done, static_cast<std::int64_t>(received->size()));
        }
        if (senders_left.load() == 0 && done.load() >= sent.load()) {
          finish();
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (errors.load() != 0) std::printf("  !! %d errors\n", errors.load());
  const double elapsed = Seconds(std::chrono::steady_clock::duration(finish_ns.load()));
  return static_cast<double>(done.load()) / elapsed;
}

// Raw moodycamel: the same payloads copied in, bulk enqueue, bulk dequeue, dropped.
double RunRaw(int num_senders, int num_receivers, int batch, bool tokens) {
  moodycamel::ConcurrentQueue<std::string> queue;
  std::atomic<std::int64_t> sent{0};
  std::atomic<std::int64_t> done{0};
  std::atomic<int> senders_left{num_senders};
  std::atomic<std::int64_t> finish_ns{0};
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int s = 0; s < num_senders; ++s) {
    threads.emplace_back([&] {
      moodycamel::ProducerToken token(queue);
      std::vector<std::string> items(static_cast<std::size_t>(batch));
      while (std::chrono::steady_clock::now() - start < kRunTime) {
        WaitForBacklog(sent, done);
        for (std::string& item : items) item = kPayload;  // a fresh copy, as Send makes
        if (tokens) {
          queue.enqueue_bulk(token, std::make_move_iterator(items.begin()), items.size());
        } else {
          queue.enqueue_bulk(std::make_move_iterator(items.begin()), items.size());
        }
        sent.fetch_add(batch, std::memory_order_relaxed);
      }
      senders_left.fetch_sub(1);
    });
  }
  for (int r = 0; r < num_receivers; ++r) {
    threads.emplace_back([&] {
      moodycamel::ConsumerToken token(queue);
      std::vector<std::string> items(static_cast<std::size_t>(batch));
      while (true) {
        const std::size_t n = tokens ? queue.try_dequeue_bulk(token, items.begin(), items.size())
                                     : queue.try_dequeue_bulk(items.begin(), items.size());
        for (std::size_t i = 0; i < n; ++i) std::string().swap(items[i]);  // free, as a Delete would
        if (n > 0) {
          MarkDone(done, static_cast<std::int64_t>(n));
        }
        if (senders_left.load() == 0 && done.load() >= sent.load()) break;
        if (n == 0) std::this_thread::yield();
      }
      std::int64_t unset = 0;  // the first receiver to see the end records it
      finish_ns.compare_exchange_strong(unset, (std::chrono::steady_clock::now() - start).count());
    });
  }
  for (std::thread& t : threads) t.join();
  return static_cast<double>(done.load()) / Seconds(std::chrono::steady_clock::duration(finish_ns.load()));
}

std::unique_ptr<Queue> NewBackend() {
  auto queue = NewInMemoryQueue({}, RealClock());
  if (!queue.ok()) {
    std::fprintf(stderr, "%s\n", queue.status().ToString().c_str());
    std::abort();
  }
  return std::move(*queue);
}

// Median of `runs` runs (the machine is shared; the median resists one disturbed run).
double Median(int runs, const std::function<double()>& f) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i) v.push_back(f());
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Latency from Send to the return of a Receive that was blocked in a long poll.
std::vector<double> WakeLatencies(Queue& queue, int samples) {
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(samples));
  std::atomic<int> ready{0};
  std::atomic<std::int64_t> woke_ns{0};
  std::thread receiver([&] {
    ReceiveOptions options;
    options.max_messages = 1;
    options.wait = 20s;
    for (int i = 0; i < samples; ++i) {
      ready.store(i + 1, std::memory_order_release);
      auto received = queue.Receive(options);
      woke_ns.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_release);
      if (received.ok() && !received->empty()) (void)queue.Delete((*received)[0].receipt_handle);
    }
  });
  OutgoingMessage message;
  message.body = kPayload;
  for (int i = 0; i < samples; ++i) {
    while (ready.load(std::memory_order_acquire) != i + 1) std::this_thread::yield();
    // Give the receiver time to get past its first look and block in the condition variable.
    const auto until = std::chrono::steady_clock::now() + 300us;
    while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
    woke_ns.store(0);
    const auto t0 = std::chrono::steady_clock::now().time_since_epoch().count();
    (void)queue.Send(message);
    std::int64_t t1;
    while ((t1 = woke_ns.load(std::memory_order_acquire)) == 0) std::this_thread::yield();
    latencies.push_back(static_cast<double>(t1 - t0) / 1000.0);
  }
  receiver.join();
  std::sort(latencies.begin(), latencies.end());
  return latencies;
}

double Percentile(const std::vector<double>& sorted, double p) {
  const auto i = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[i];
}

int Main() {
  std::printf("payload %zu bytes, %lld ms sending per run, %u hardware threads\n", kPayload.size(),
              static_cast<long long>(std::chrono::milliseconds(kRunTime).count()),
              std::thread::hardware_concurrency());
  std::printf("%-34s %6s %8s %14s\n", "queue", "batch", "threads", "msgs/s");
  const int runs = 3;
  double headline_backend = 0, headline_mutex = 0, headline_raw = 0;
  for (int batch : {1, 10}) {
    for (int threads : {1, 2}) {
      const double backend = Median(runs, [&] {
        auto queue = NewBackend();
        return RunQueue(*queue, threads, threads, batch);
      });
      const double mutex = Median(runs, [&] {
        MutexQueue queue(RealClock());
        return RunQueue(queue, threads, threads, batch);
      });
      const double raw = Median(runs, [&] { return RunRaw(threads, threads, batch, false); });
      const double raw_tokens = Median(runs, [&] { return RunRaw(threads, threads, batch, true); });
      std::printf("%-34s %6d %6d+%d %14.0f\n", "memory backend (InMemoryQueue)", batch, threads, threads, backend);
      std::printf("%-34s %6d %6d+%d %14.0f\n", "mutex+deque baseline", batch, threads, threads, mutex);
      std::printf("%-34s %6d %6d+%d %14.0f\n", "raw moodycamel bulk", batch, threads, threads, raw);
      std::printf("%-34s %6d %6d+%d %14.0f\n", "raw moodycamel bulk + tokens", batch, threads, threads,
                  raw_tokens);
      std::printf("  backend/raw %.3f  backend/raw+tokens %.3f  backend/mutex %.2f\n", backend / raw,
                  backend / raw_tokens, backend / mutex);
      if (batch == 10 && threads == 2) {
        headline_backend = backend;
        headline_mutex = mutex;
        headline_raw = std::max(raw, raw_tokens);  // the ceiling: the faster raw variant
      }
    }
  }
  // For scale: SQS semantics make every Send compute the body's MD5 (SendResult::md5_of_body), work
  // that raw moodycamel does not do at all.
  {
    constexpr int kDigests = 100'000;
    std::size_t sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kDigests; ++i) sink += Md5OfBody(kPayload).size();
    const double ns = Seconds(std::chrono::steady_clock::now() - t0) * 1e9 / kDigests;
    std::printf("md5 of the %zu-byte payload (one thread): %.0f ns per message%s\n", kPayload.size(), ns,
                sink == 0 ? "?" : "");
  }
  auto queue = NewBackend();
  std::vector<double> wake = WakeLatencies(*queue, kWakeSamples);
  std::printf("long-poll wake-up latency over %d samples: p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us\n",
              kWakeSamples, Percentile(wake, 0.5), Percentile(wake, 0.9), Percentile(wake, 0.99), wake.back());
  std::printf("queue_vs_moodycamel: %.3f\n", headline_backend / headline_raw);
  std::printf("queue_vs_mutex: %.2f\n", headline_backend / headline_mutex);
  std::printf("wake_p99_us: %.1f\n", Percentile(wake, 0.99));
  return 0;
}

}  // namespace
}  // namespace taskpipe

int main() { return taskpipe::Main(); }
