#include "notify/webhook_target.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/curl_http_client.h"
#include "tests/fakes/fake_clock.h"
#include "tests/testing/http_test_server.h"

namespace taskpipe {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::HttpTestReply;
using testing::HttpTestRequest;
using testing::HttpTestServer;

// Real-time bound on waits for other threads: generous, only reached when a test is broken.
constexpr auto kPatience = 30s;
// The secret part of every webhook URL in these tests: it must never reach a log line.
constexpr const char* kSecret = "SECRETtoken123";
constexpr const char* kFakeUrl = "http://127.0.0.1:9/services/T000/B000/SECRETtoken123";

// Polls `cond` (real time, short sleeps) until it holds; false after `timeout`.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout = kPatience) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(200us);
  }
  return true;
}

void ExpectInvariant(const NotifyStats& s) {
  EXPECT_EQ(s.enqueued, s.delivered + s.dropped() + s.pending)
      << "enqueued " << s.enqueued << " delivered " << s.delivered << " dropped " << s.dropped() << " pending "
      << s.pending;
}

TaskResult Result(int i) {
  TaskResult r;
  r.job = "job";
  r.task = std::to_string(i);  // a JSON number
  r.message_id = "m" + std::to_string(i);
  return r;
}

// The test platform: the body is the task; replies are read as in the brief: 2xx delivered,
// 429 rate limited (Retry-After in seconds, "X-Global" makes it global), 5xx retry, 401/403/404/410
// dead, other 4xx rejected. A Retry-After on any reply is passed on (on a 2xx: the bucket is empty).
DeliveryVerdict TestClassify(const HttpResponse& reply) {
  DeliveryVerdict v;
  v.error = "test platform answered " + std::to_string(reply.status);
  if (std::optional<std::string> ra = reply.Header("Retry-After")) {
    v.retry_after = std::chrono::milliseconds(std::llround(std::strtod(ra->c_str(), nullptr) * 1000));
  }
  v.global = reply.Header("X-Global").has_value();
  const int s = reply.status;
  if (s >= 200 && s < 300) {
    v.kind = DeliveryVerdict::Kind::kDelivered;
    v.error.clear();
  } else if (s == 429) {
    v.kind = DeliveryVerdict::Kind::kRateLimited;
  } else if (s >= 500) {
    v.kind = DeliveryVerdict::Kind::kRetry;
  } else if (s == 401 || s == 403 || s == 404 || s == 410) {
    v.kind = DeliveryVerdict::Kind::kDead;
  } else {
    v.kind = DeliveryVerdict::Kind::kRejected;
  }
  return v;
}

WebhookPlatform TestPlatform(std::string url, std::string kind = "slack") {
  return {.kind = std::move(kind),
          .request_url = std::move(url),
          .build_payload = [](const TaskResult& r) { return r.task; },
          .classify = TestClassify};
}

HttpResponse Reply(int status, std::vector<std::pair<std::string, std::string>> headers = {}) {
  return {.status = status, .headers = std::move(headers), .body = ""};
}

// An HttpClient that records each request with the clock's time at Send() and answers from a
// responder (which runs without the client's lock, on the caller's thread). Thread-safe.
class ScriptedHttpClient final : public HttpClient {
 public:
  using Responder = std::function<StatusOr<HttpResponse>(const HttpRequest&, std::size_t index)>;
  struct Sent {
    HttpRequest request;
    Clock::time_point at;
  };

  ScriptedHttpClient(Clock& clock, Responder responder) : clock_(clock), responder_(std::move(responder)) {}

  StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    std::size_t index = 0;
    {
      std::lock_guard<std::mutex> guard(mu_);
      index = sent_.size();
      sent_.push_back({request, clock_.Now()});
      cv_.notify_all();
    }
    return responder_(request, index);
  }
  void Shutdown() override {}

  std::vector<Sent> sent() const {
    std::lock_guard<std::mutex> guard(mu_);
    return sent_;
  }
  std::size_t count() const {
    std::lock_guard<std::mutex> guard(mu_);
    return sent_.size();
  }
  // Waits (real time) until at least `n` requests were sent.
  bool WaitForRequests(std::size_t n) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kPatience, [&] { return sent_.size() >= n; });
  }
  std::vector<std::string> bodies() const {
    std::vector<std::string> out;
    for (const Sent& s : sent()) out.push_back(s.request.body);
    return out;
  }

 private:
  Clock& clock_;
  const Responder responder_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Sent> sent_;  // GUARDED_BY(mu_)
};

ScriptedHttpClient::Responder AlwaysOk() {
  return [](const HttpRequest&, std::size_t) -> StatusOr<HttpResponse> { return Reply(200); };
}

// A latch a responder can block on (a slow or hung platform), opened by the test.
class Latch {
 public:
  void Open() {
    std::lock_guard<std::mutex> guard(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kPatience, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Opens a latch when it goes out of scope: declared after the target, it runs before the target's
// destructor, so a failed ASSERT never leaves the delivery thread blocked in a responder.
struct OpenOnExit {
  Latch& latch;
  ~OpenOnExit() { latch.Open(); }
};

// A logger over an ostringstream, at trace level, without a redactor: what the target writes is
// exactly what is captured. Read text() only once the target has shut down (the sink's stream is
// not read under its lock).
class CapturedLog {
 public:
  CapturedLog()
      : logger_(std::make_shared<spdlog::logger>("notify", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_))) {
    logger_->set_level(spdlog::level::trace);
    logger_->set_pattern("%l|%v");
  }
  const std::shared_ptr<spdlog::logger>& logger() const { return logger_; }
  std::string text() const { return out_.str(); }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(text());
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  int Count(const std::string& prefix_or_substr) const {
    int n = 0;
    for (const std::string& line : lines()) n += line.find(prefix_or_substr) != std::string::npos ? 1 : 0;
    return n;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> logger_;
};

WebhookTargetOptions SlackLike() {
  WebhookTargetOptions o;
  o.rate_per_sec = 1;
  o.burst = 3;
  o.jitter = [] { return 0.5; };
  return o;
}

// ---------------------------------------------------------------------------------------------
// Pure parts.

TEST(WebhookTargetBackoffTest, EqualJitterTable) {
  struct Case {
    int attempt;
    std::chrono::milliseconds base, max;
    double jitter;
    Clock::duration want;
  };
  const Case cases[] = {
      {1, 1000ms, 60000ms, 0.0, 500ms},     {1, 1000ms, 60000ms, 0.5, 750ms},
      {2, 1000ms, 60000ms, 0.0, 1000ms},    {3, 1000ms, 60000ms, 0.0, 2000ms},
      {7, 1000ms, 60000ms, 0.0, 30000ms},   {8, 1000ms, 60000ms, 0.0, 30000ms},  // capped at 60 s
      {1000, 1000ms, 60000ms, 0.0, 30000ms}, {0, 1000ms, 60000ms, 0.0, 500ms},   // < 1 counts as 1
      {1, 0ms, 60000ms, 0.5, 0ms},          {3, 1000ms, 0ms, 0.5, 0ms},
      {1, 1000ms, 60000ms, -3.0, 500ms},    {1, 1000ms, 60000ms, std::nan(""), 500ms},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(WebhookBackoff(c.attempt, c.base, c.max, c.jitter), c.want) << "attempt " << c.attempt;
  }
  // jitter -> 1 approaches d without reaching past it.
  const Clock::duration high = WebhookBackoff(2, 1000ms, 60000ms, 1.0);
  EXPECT_LE(high, 2000ms);
  EXPECT_GT(high, 1999ms);
}

TEST(WebhookTargetOptionsTest, Validate) {
  EXPECT_TRUE(ValidateWebhookTargetOptions({}).ok());
  auto bad = [](auto mutate) {
    WebhookTargetOptions o;
    mutate(o);
    return ValidateWebhookTargetOptions(o);
  };
  EXPECT_THAT(bad([](auto& o) { o.outbox_capacity = 0; }).message(), HasSubstr("outbox_capacity"));
  EXPECT_THAT(bad([](auto& o) { o.rate_per_sec = 0; }).message(), HasSubstr("rate_per_sec"));
  EXPECT_THAT(bad([](auto& o) { o.rate_per_sec = std::nan(""); }).message(), HasSubstr("rate_per_sec"));
  EXPECT_THAT(bad([](auto& o) { o.burst = 0.5; }).message(), HasSubstr("burst"));
  EXPECT_THAT(bad([](auto& o) { o.max_attempts = 0; }).message(), HasSubstr("max_attempts"));
  EXPECT_THAT(bad([](auto& o) { o.max_rate_limited = 0; }).message(), HasSubstr("max_rate_limited"));
  EXPECT_THAT(bad([](auto& o) { o.retry_base = -1ms; }).message(), HasSubstr("retry_base"));
  EXPECT_THAT(bad([](auto& o) { o.request_timeout = 0ms; }).message(), HasSubstr("request_timeout"));
  EXPECT_EQ(bad([](auto& o) { o.max_attempts = 0; }).code(), StatusCode::kInvalidArgument);
}

TEST(WebhookTargetGateTest, KeepsTheLaterPause) {
  RateLimitGate gate;
  const Clock::time_point t(1000s);
  gate.PauseUntil(t + 5s);
  gate.PauseUntil(t + 2s);
  EXPECT_EQ(gate.until(), t + 5s);
  gate.PauseUntil(t + 7s);
  EXPECT_EQ(gate.until(), t + 7s);
}

// ---------------------------------------------------------------------------------------------
// The delivery thread, on a FakeClock and a scripted HttpClient.

TEST(WebhookTargetTest, BurstOfHundredDeliveredInOrderObeyingTheBucket) {
  FakeClock clock;
  ScriptedHttpClient http(clock, AlwaysOk());
  CapturedLog log;
  const Clock::time_point t0 = clock.Now();
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), SlackLike(), http, clock, log.logger(), nullptr);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));

  ASSERT_TRUE(http.WaitForRequests(3));
  for (std::size_t n = 3; n < 100; ++n) {
    clock.BlockUntilWaiters(1);  // waiting for a token
    EXPECT_EQ(http.count(), n);
    clock.Advance(1s);
    ASSERT_TRUE(http.WaitForRequests(n + 1));
  }
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 100; }));
  target->Shutdown(clock.Now());

  const std::vector<ScriptedHttpClient::Sent> sent = http.sent();
  ASSERT_EQ(sent.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(sent[i].request.body, std::to_string(i));
    // First three at once (the burst), then one a second.
    EXPECT_EQ(sent[i].at - t0, std::chrono::seconds(std::max(0, i - 2))) << "request " << i;
    EXPECT_EQ(sent[i].request.method, "POST");
    EXPECT_EQ(sent[i].request.url, kFakeUrl);
    EXPECT_EQ(sent[i].request.timeout, 10000ms);
  }
  using Header = std::pair<std::string, std::string>;
  EXPECT_THAT(sent[0].request.headers, ::testing::ElementsAre(Header{"Content-Type", "application/json"},
                                                              Header{"User-Agent", "taskpipe/" TASKPIPE_VERSION}));
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.enqueued, 100u);
  EXPECT_EQ(s.delivered, 100u);
  EXPECT_EQ(s.dropped(), 0u);
  EXPECT_EQ(s.pending, 0u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("info|notify target \"team-slack\" (slack) shut down: 100 delivered, 0 dropped"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

TEST(WebhookTargetTest, RateLimitedReplyHoldsTheNextRequestForRetryAfter) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest&, std::size_t i) -> StatusOr<HttpResponse> {
    if (i == 0) return Reply(429, {{"Retry-After", "5"}});
    return Reply(200);
  });
  CapturedLog log;
  const Clock::time_point t0 = clock.Now();
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), SlackLike(), http, clock, log.logger(), nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(target->Enqueue(Result(1)));
  ASSERT_TRUE(http.WaitForRequests(1));
  clock.BlockUntilWaiters(1);
  clock.Advance(4999ms);  // before the hold ends: the thread is not even woken
  EXPECT_EQ(http.count(), 1u);
  clock.Advance(1ms);
  ASSERT_TRUE(http.WaitForRequests(3));  // the same result again, then the next (tokens left)
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 2; }));
  target->Shutdown(clock.Now());

  const auto sent = http.sent();
  EXPECT_EQ(sent[1].at - t0, 5s);
  EXPECT_EQ(sent[2].at - t0, 5s);
  EXPECT_EQ(http.bodies(), (std::vector<std::string>{"0", "0", "1"}));
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.rate_limited, 1u);
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(s.delivered, 2u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("rate limited: test platform answered 429; retrying in 5000 ms"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

TEST(WebhookTargetTest, RateLimitedWithoutRetryAfterWaitsOneSecondAndCapApplies) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest&, std::size_t i) -> StatusOr<HttpResponse> {
    if (i == 0) return Reply(429);
    if (i == 1) return Reply(429, {{"Retry-After", "3600"}});  // capped at max_retry_after
    return Reply(200);
  });
  WebhookTargetOptions options = SlackLike();
  options.max_retry_after = 7s;
  const Clock::time_point t0 = clock.Now();
  auto target = NewWebhookTarget("t", TestPlatform(kFakeUrl), options, http, clock, nullptr, nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(http.WaitForRequests(1));
  clock.BlockUntilWaiters(1);
  clock.Advance(1s);
  ASSERT_TRUE(http.WaitForRequests(2));
  clock.BlockUntilWaiters(1);
  clock.Advance(6999ms);
  EXPECT_EQ(http.count(), 2u);
  clock.Advance(1ms);
  ASSERT_TRUE(http.WaitForRequests(3));
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 1; }));
  target->Shutdown(clock.Now());
  const auto sent = http.sent();
  EXPECT_EQ(sent[1].at - t0, 1s);
  EXPECT_EQ(sent[2].at - t0, 8s);
  EXPECT_EQ(target->Stats().rate_limited, 2u);
}

TEST(WebhookTargetTest, TooManyRateLimitedRepliesDropTheResultAsFailed) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest& r, std::size_t) -> StatusOr<HttpResponse> {
    if (r.body == "0") return Reply(429, {{"Retry-After", "1"}});
    return Reply(200);
  });
  CapturedLog log;
  WebhookTargetOptions options = SlackLike();
  options.max_rate_limited = 3;
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), options, http, clock, log.logger(), nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(target->Enqueue(Result(1)));
  for (std::size_t n = 1; n < 4; ++n) {
    ASSERT_TRUE(http.WaitForRequests(n));
    clock.BlockUntilWaiters(1);
    clock.Advance(1s);
  }
  ASSERT_TRUE(http.WaitForRequests(4));
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 1; }));
  target->Shutdown(clock.Now());
  EXPECT_EQ(http.bodies(), (std::vector<std::string>{"0", "0", "0", "1"}));
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.dropped_failed, 1u);
  EXPECT_EQ(s.rate_limited, 3u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("warning|notify target \"team-slack\" (slack): dropped a result of job \"job\" "
                                    "after 3 rate-limited replies"));
}

TEST(WebhookTargetTest, EmptyBucketOnADeliveredReplyHoldsTheNextRequest) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest&, std::size_t i) -> StatusOr<HttpResponse> {
    if (i == 0) return Reply(200, {{"Retry-After", "2.5"}});
    return Reply(200);
  });
  const Clock::time_point t0 = clock.Now();
  auto target = NewWebhookTarget("d", TestPlatform(kFakeUrl, "discord"), SlackLike(), http, clock, nullptr, nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(target->Enqueue(Result(1)));
  ASSERT_TRUE(http.WaitForRequests(1));
  clock.BlockUntilWaiters(1);
  clock.Advance(2499ms);
  EXPECT_EQ(http.count(), 1u);
  clock.Advance(1ms);
  ASSERT_TRUE(http.WaitForRequests(2));
  EXPECT_EQ(http.sent()[1].at - t0, 2500ms);
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 2; }));
  EXPECT_EQ(target->Stats().rate_limited, 0u);
}

TEST(WebhookTargetTest, GlobalRateLimitOnOneTargetPausesAnotherSharingTheGate) {
  FakeClock clock;
  auto gate = std::make_shared<RateLimitGate>();
  ScriptedHttpClient http_a(clock, [](const HttpRequest&, std::size_t i) -> StatusOr<HttpResponse> {
    if (i == 0) return Reply(429, {{"Retry-After", "3"}, {"X-Global", "true"}});
    return Reply(200);
  });
  ScriptedHttpClient http_b(clock, AlwaysOk());
  CapturedLog log;
  const Clock::time_point t0 = clock.Now();
  auto a = NewWebhookTarget("discord-a", TestPlatform(kFakeUrl, "discord"), SlackLike(), http_a, clock, log.logger(),
                            gate);
  auto b = NewWebhookTarget("discord-b", TestPlatform(kFakeUrl, "discord"), SlackLike(), http_b, clock, log.logger(),
                            gate);
  ASSERT_TRUE(a->Enqueue(Result(0)));
  ASSERT_TRUE(http_a.WaitForRequests(1));
  ASSERT_TRUE(WaitFor([&] { return gate->until() == t0 + 3s; }));
  ASSERT_TRUE(b->Enqueue(Result(1)));
  clock.BlockUntilWaiters(2);  // a: its own hold; b: the gate
  EXPECT_EQ(http_b.count(), 0u);
  clock.Advance(2999ms);
  EXPECT_EQ(http_b.count(), 0u);
  clock.Advance(1ms);
  ASSERT_TRUE(http_b.WaitForRequests(1));
  ASSERT_TRUE(http_a.WaitForRequests(2));
  EXPECT_EQ(http_b.sent()[0].at - t0, 3s);
  EXPECT_EQ(http_a.sent()[1].at - t0, 3s);
  ASSERT_TRUE(WaitFor([&] { return a->Stats().delivered == 1 && b->Stats().delivered == 1; }));
  a->Shutdown(clock.Now());
  b->Shutdown(clock.Now());
  EXPECT_THAT(log.text(), HasSubstr("rate limited (global)"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

TEST(WebhookTargetTest, NonGlobalRateLimitDoesNotPauseOtherTargets) {
  FakeClock clock;
  auto gate = std::make_shared<RateLimitGate>();
  ScriptedHttpClient http_a(clock, [](const HttpRequest&, std::size_t) -> StatusOr<HttpResponse> {
    return Reply(429, {{"Retry-After", "3"}});
  });
  ScriptedHttpClient http_b(clock, AlwaysOk());
  const Clock::time_point t0 = clock.Now();
  auto a = NewWebhookTarget("a", TestPlatform(kFakeUrl, "discord"), SlackLike(), http_a, clock, nullptr, gate);
  auto b = NewWebhookTarget("b", TestPlatform(kFakeUrl, "discord"), SlackLike(), http_b, clock, nullptr, gate);
  ASSERT_TRUE(a->Enqueue(Result(0)));
  ASSERT_TRUE(http_a.WaitForRequests(1));
  clock.BlockUntilWaiters(1);
  ASSERT_TRUE(b->Enqueue(Result(1)));
  ASSERT_TRUE(http_b.WaitForRequests(1));
  EXPECT_EQ(http_b.sent()[0].at, t0);
  EXPECT_LT(gate->until(), t0);
}

TEST(WebhookTargetTest, ServerErrorsAndTransportErrorsAreRetriedWithBackoffThenDelivered) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest&, std::size_t i) -> StatusOr<HttpResponse> {
    if (i == 0) return Reply(503);
    if (i == 1) return UnavailableError("connection refused: http://127.0.0.1:9");
    return Reply(200);
  });
  CapturedLog log;
  const Clock::time_point t0 = clock.Now();
  // jitter 0.5: the back-off is 3/4 of d (d = 1 s, then 2 s).
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), SlackLike(), http, clock, log.logger(), nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(target->Enqueue(Result(1)));
  ASSERT_TRUE(http.WaitForRequests(1));
  clock.BlockUntilWaiters(1);
  clock.Advance(749ms);
  EXPECT_EQ(http.count(), 1u);
  clock.Advance(1ms);
  ASSERT_TRUE(http.WaitForRequests(2));
  clock.BlockUntilWaiters(1);
  clock.Advance(1499ms);
  EXPECT_EQ(http.count(), 2u);
  clock.Advance(1ms);
  ASSERT_TRUE(http.WaitForRequests(3));
  ASSERT_TRUE(http.WaitForRequests(4));  // the next result: a token is left
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 2; }));
  target->Shutdown(clock.Now());

  const auto sent = http.sent();
  EXPECT_EQ(sent[1].at - t0, 750ms);
  EXPECT_EQ(sent[2].at - t0, 2250ms);
  EXPECT_EQ(http.bodies(), (std::vector<std::string>{"0", "0", "0", "1"}));
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.delivered, 2u);
  EXPECT_EQ(s.dropped(), 0u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("attempt 1 for a result of job \"job\" failed: test platform answered 503; "
                                    "retrying in 750 ms"));
  EXPECT_THAT(log.text(), HasSubstr("attempt 2 for a result of job \"job\" failed: Unavailable: connection refused"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

// Turns a FakeClock's crank from another thread while `stop` is false: whenever a thread waits on
// the clock, time moves on by `step`.
class ClockPump {
 public:
  ClockPump(FakeClock& clock, Clock::duration step)
      : thread_([this, &clock, step] {
          while (!stop_.load()) {
            if (clock.num_waiters() > 0) {
              clock.Advance(step);
            } else {
              std::this_thread::sleep_for(50us);
            }
          }
        }) {}
  ~ClockPump() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(WebhookTargetTest, RetriesUsedUpDropTheResultAsFailedAndTheNextIsStillSent) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest& r, std::size_t) -> StatusOr<HttpResponse> {
    if (r.body == "0") return Reply(502);
    return Reply(200);
  });
  CapturedLog log;
  WebhookTargetOptions options = SlackLike();
  options.max_attempts = 3;
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), options, http, clock, log.logger(), nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(target->Enqueue(Result(1)));
  {
    ClockPump pump(clock, 100ms);
    ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 1; }));
  }
  target->Shutdown(clock.Now());
  EXPECT_EQ(http.bodies(), (std::vector<std::string>{"0", "0", "0", "1"}));
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.dropped_failed, 1u);
  EXPECT_EQ(s.retries, 3u);
  EXPECT_EQ(s.delivered, 1u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("warning|notify target \"team-slack\" (slack): dropped a result of job \"job\" "
                                    "after 3 failed attempt(s); last error: test platform answered 502"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

TEST(WebhookTargetTest, RejectedResultIsDroppedAndTheNextDelivered) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest& r, std::size_t) -> StatusOr<HttpResponse> {
    if (r.body == "0") return Reply(400);
    return Reply(200);
  });
  CapturedLog log;
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), SlackLike(), http, clock, log.logger(), nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(target->Enqueue(Result(1)));
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 1; }));
  target->Shutdown(clock.Now());
  EXPECT_EQ(http.bodies(), (std::vector<std::string>{"0", "1"}));
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.dropped_rejected, 1u);
  EXPECT_EQ(s.retries, 0u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("warning|notify target \"team-slack\" (slack): dropped a result of job \"job\", "
                                    "rejected by the platform: test platform answered 400"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

TEST(WebhookTargetTest, AUrlInAPlatformErrorIsMaskedBeforeItIsLogged) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest&, std::size_t i) -> StatusOr<HttpResponse> {
    if (i == 0) return Reply(400);
    return UnavailableError("cannot reach /services/T000/B000/SECRETtoken123");
  });
  CapturedLog log;
  WebhookPlatform platform = TestPlatform(kFakeUrl);
  // A classify that breaks its contract and quotes the URL.
  platform.classify = [](const HttpResponse& r) {
    DeliveryVerdict v = TestClassify(r);
    v.error += " from " + std::string(kFakeUrl);
    return v;
  };
  WebhookTargetOptions options = SlackLike();
  options.max_attempts = 1;
  auto target = NewWebhookTarget("team-slack", platform, options, http, clock, log.logger(), nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(target->Enqueue(Result(1)));
  ASSERT_TRUE(WaitFor([&] { return target->Stats().dropped_failed == 1; }));
  target->Shutdown(clock.Now());
  EXPECT_EQ(target->Stats().dropped_rejected, 1u);
  EXPECT_THAT(log.text(), HasSubstr("rejected by the platform: test platform answered 400 from ***"));
  EXPECT_THAT(log.text(), HasSubstr("last error: Unavailable: cannot reach ***"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
  EXPECT_THAT(log.text(), Not(HasSubstr("T000")));
}

TEST(WebhookTargetTest, DeadTargetDropsQueuedResultsRefusesLaterOnesAndLogsOneError) {
  FakeClock clock;
  Latch first_reply;
  ScriptedHttpClient http(clock, [&](const HttpRequest&, std::size_t) -> StatusOr<HttpResponse> {
    first_reply.Wait();
    return Reply(404);
  });
  CapturedLog log;
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), SlackLike(), http, clock, log.logger(), nullptr);
  OpenOnExit open{first_reply};
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));
  ASSERT_TRUE(http.WaitForRequests(1));
  first_reply.Open();
  ASSERT_TRUE(WaitFor([&] { return target->Stats().dropped_dead == 5; }));
  for (int i = 5; i < 205; ++i) EXPECT_FALSE(target->Enqueue(Result(i)));
  target->Shutdown(clock.Now());

  EXPECT_EQ(http.count(), 1u);
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.enqueued, 205u);
  EXPECT_EQ(s.dropped_dead, 205u);
  EXPECT_EQ(s.pending, 0u);
  ExpectInvariant(s);
  EXPECT_EQ(log.Count("error|"), 1) << log.text();
  EXPECT_THAT(log.text(), HasSubstr("error|notify target \"team-slack\" (slack) is disabled: test platform answered 404; "
                                    "check its webhook URL\n"));
  // 200 refusals: the first and the 101st are reported, nothing more.
  EXPECT_EQ(log.Count("is disabled: dropped"), 2) << log.text();
  EXPECT_THAT(log.text(), HasSubstr("is disabled: dropped 100 result(s) since the last report (106 in all)"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

TEST(WebhookTargetTest, FullOutboxRefusesAndCountsWithoutFloodingTheLog) {
  FakeClock clock;
  Latch release;
  ScriptedHttpClient http(clock, [&](const HttpRequest&, std::size_t) -> StatusOr<HttpResponse> {
    release.Wait();
    return Reply(200);
  });
  CapturedLog log;
  WebhookTargetOptions options = SlackLike();
  options.outbox_capacity = 10;
  options.burst = 100;  // no token waits in this test
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), options, http, clock, log.logger(), nullptr);
  OpenOnExit open{release};
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(http.WaitForRequests(1));  // in flight, still in the outbox
  for (int i = 1; i < 10; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));
  for (int i = 10; i < 960; ++i) EXPECT_FALSE(target->Enqueue(Result(i)));  // 950 drops
  EXPECT_EQ(target->Stats().dropped_full, 950u);
  EXPECT_EQ(target->Stats().pending, 10u);
  ExpectInvariant(target->Stats());
  clock.Advance(61s);  // a minute later, one more drop is reported with those not yet reported
  EXPECT_FALSE(target->Enqueue(Result(960)));
  release.Open();
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 10; }));
  target->Shutdown(clock.Now());

  EXPECT_EQ(http.bodies(), (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.enqueued, 961u);
  EXPECT_EQ(s.dropped_full, 951u);
  ExpectInvariant(s);
  // Reports at drops 1, 101, ..., 901 (10 lines), then the one a minute later: 11 lines for 951 drops.
  EXPECT_EQ(log.Count(": outbox full ("), 11) << log.text();
  EXPECT_THAT(log.text(), HasSubstr("warning|notify target \"team-slack\" (slack): outbox full (10 results): dropped 1 "
                                    "result(s) since the last report (1 in all)"));
  EXPECT_THAT(log.text(), HasSubstr("dropped 100 result(s) since the last report (901 in all)"));
  EXPECT_THAT(log.text(), HasSubstr("dropped 50 result(s) since the last report (951 in all)"));
}

TEST(WebhookTargetTest, ShutdownFlushesTheOutboxWithinTheDeadline) {
  FakeClock clock;
  ScriptedHttpClient http(clock, AlwaysOk());
  CapturedLog log;
  const Clock::time_point t0 = clock.Now();
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), SlackLike(), http, clock, log.logger(), nullptr);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));
  ASSERT_TRUE(http.WaitForRequests(3));
  std::thread shutdown([&] { target->Shutdown(t0 + 10s); });
  for (std::size_t n = 3; n < 6; ++n) {
    clock.BlockUntilWaiters(1);
    clock.Advance(1s);
    ASSERT_TRUE(http.WaitForRequests(n + 1));
  }
  shutdown.join();
  EXPECT_EQ(clock.Now() - t0, 3s);
  EXPECT_FALSE(target->Enqueue(Result(6)));  // refused after shutdown, counted
  target->Shutdown(t0);  // idempotent
  EXPECT_EQ(http.bodies(), (std::vector<std::string>{"0", "1", "2", "3", "4", "5"}));
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.delivered, 6u);
  EXPECT_EQ(s.dropped_deadline, 1u);  // the late Enqueue only
  EXPECT_EQ(s.pending, 0u);
  ExpectInvariant(s);
  EXPECT_EQ(log.Count("shut down:"), 1);
  EXPECT_THAT(log.text(), HasSubstr("info|notify target \"team-slack\" (slack) shut down: 6 delivered, 0 dropped"));
}

TEST(WebhookTargetTest, ShutdownWithAHungPlatformCutsTimeoutsAndDropsTheRestAtTheDeadline) {
  FakeClock clock;
  Latch first;
  // A hung platform: each exchange lasts its whole timeout, then fails (the clock moves by it).
  ScriptedHttpClient http(clock, [&](const HttpRequest& r, std::size_t i) -> StatusOr<HttpResponse> {
    if (i == 0) first.Wait();
    clock.Advance(r.timeout);
    return DeadlineExceededError("request to http://127.0.0.1:9 timed out");
  });
  CapturedLog log;
  WebhookTargetOptions options = SlackLike();
  options.outbox_capacity = 3;
  options.burst = 100;
  options.retry_base = 0ms;  // no back-off: only the exchanges move the clock
  options.max_attempts = 2;
  options.request_timeout = 10s;
  const Clock::time_point t0 = clock.Now();
  auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), options, http, clock, log.logger(), nullptr);
  OpenOnExit open{first};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));
  ASSERT_TRUE(http.WaitForRequests(1));  // result 0's first exchange hangs until `first` opens

  std::thread shutdown([&] { target->Shutdown(t0 + 25s); });
  // Wait until Shutdown() has begun: Enqueue() is then refused as dropped_deadline (before, as
  // dropped_full: the outbox holds 3).
  std::uint64_t probes = 0;
  ASSERT_TRUE(WaitFor([&] {
    if (target->Stats().dropped_deadline > 0) return true;
    EXPECT_FALSE(target->Enqueue(Result(99)));
    ++probes;
    return false;
  }));
  first.Open();
  shutdown.join();

  // Exchanges: result 0 at t0 (10 s) and t0+10 s (10 s): failed; result 1 at t0+20 s with the 5 s
  // left. At t0+25 s results 1 and 2 are dropped, and nothing starts after the deadline.
  const auto sent = http.sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].request.timeout, 10s);
  EXPECT_EQ(sent[1].request.timeout, 10s);
  EXPECT_EQ(sent[2].request.timeout, 5s);
  EXPECT_EQ(sent[2].at - t0, 20s);
  EXPECT_EQ(sent[2].request.body, "1");
  EXPECT_EQ(clock.Now() - t0, 25s);
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_EQ(s.dropped_failed, 1u);
  EXPECT_EQ(s.retries, 3u);
  EXPECT_EQ(s.dropped_full + s.dropped_deadline, probes + 2);
  EXPECT_GE(s.dropped_deadline, 3u);  // results 1 and 2, and the probe that saw the shutdown
  EXPECT_EQ(s.pending, 0u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("shutdown deadline reached: dropped 2 undelivered result(s)"));
  EXPECT_THAT(log.text(), HasSubstr("warning|notify target \"team-slack\" (slack) shut down: 0 delivered"));
  EXPECT_THAT(log.text(), HasSubstr("last error: DeadlineExceeded: request to http://127.0.0.1:9 timed out"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

TEST(WebhookTargetTest, DestructorDropsWhatIsPendingWithoutWaiting) {
  FakeClock clock;
  ScriptedHttpClient http(clock, [](const HttpRequest&, std::size_t) -> StatusOr<HttpResponse> {
    return Reply(429, {{"Retry-After", "600"}});
  });
  CapturedLog log;
  {
    auto target = NewWebhookTarget("team-slack", TestPlatform(kFakeUrl), SlackLike(), http, clock, log.logger(),
                                   nullptr);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));
    ASSERT_TRUE(http.WaitForRequests(1));
    clock.BlockUntilWaiters(1);  // held for 10 minutes
  }
  EXPECT_EQ(http.count(), 1u);
  EXPECT_THAT(log.text(), HasSubstr("shut down: 0 delivered, 4 dropped (0 outbox full, 0 target dead, 0 rejected, "
                                    "0 failed, 4 at the shutdown deadline)"));
}

TEST(WebhookTargetTest, ConcurrentShutdownsBothReturnAfterTheJoin) {
  FakeClock clock;
  ScriptedHttpClient http(clock, AlwaysOk());
  auto target = NewWebhookTarget("t", TestPlatform(kFakeUrl), SlackLike(), http, clock, nullptr, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));
  ASSERT_TRUE(http.WaitForRequests(3));
  const Clock::time_point deadline = clock.Now() + 1h;
  std::thread a([&] { target->Shutdown(deadline); });
  std::thread b([&] { target->Shutdown(deadline); });
  for (std::size_t n = 3; n < 5; ++n) {
    clock.BlockUntilWaiters(1);
    clock.Advance(1s);
    ASSERT_TRUE(http.WaitForRequests(n + 1));
  }
  a.join();
  b.join();
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.delivered, 5u);
  ExpectInvariant(s);
}

TEST(WebhookTargetTest, StatsInvariantHoldsInEverySnapshotUnderConcurrentLoad) {
  FakeClock clock;
  std::mutex seen_mu;
  std::set<std::string> failed_once;  // GUARDED_BY(seen_mu)
  ScriptedHttpClient http(clock, [&](const HttpRequest& r, std::size_t) -> StatusOr<HttpResponse> {
    const int n = std::stoi(r.body);
    if (n % 10 == 3) return Reply(400);
    if (n % 10 == 7) return Reply(503);  // always: dropped after max_attempts
    std::lock_guard<std::mutex> guard(seen_mu);
    if (n % 5 == 1 && failed_once.insert(r.body).second) return Reply(429, {{"Retry-After", "0.05"}});
    if (n % 5 == 4 && failed_once.insert(r.body).second) return UnavailableError("reset");
    return Reply(200);
  });
  WebhookTargetOptions options;
  options.outbox_capacity = 50;
  options.rate_per_sec = 1000;
  options.burst = 10;
  options.retry_base = 10ms;
  options.max_attempts = 2;
  auto target = NewWebhookTarget("load", TestPlatform(kFakeUrl), options, http, clock, nullptr, nullptr);

  std::atomic<bool> done{false};
  std::atomic<int> snapshots{0};
  std::thread checker([&] {
    while (!done.load()) {
      const NotifyStats s = target->Stats();
      if (s.enqueued != s.delivered + s.dropped() + s.pending) ADD_FAILURE() << "invariant broken in a snapshot";
      if (s.pending > 50) ADD_FAILURE() << "outbox over capacity: " << s.pending;
      ++snapshots;
    }
  });
  std::atomic<int> accepted{0};
  {
    ClockPump pump(clock, 5ms);
    std::vector<std::thread> producers;
    for (int p = 0; p < 4; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < 250; ++i) {
          if (target->Enqueue(Result(p * 1000 + i))) ++accepted;
        }
      });
    }
    for (std::thread& t : producers) t.join();
    EXPECT_TRUE(WaitFor([&] { return target->Stats().pending == 0; }));
  }
  target->Shutdown(clock.Now());
  done = true;
  checker.join();
  EXPECT_GT(snapshots.load(), 0);

  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.enqueued, 1000u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.delivered + s.dropped_rejected + s.dropped_failed, static_cast<std::uint64_t>(accepted.load()));
  EXPECT_EQ(s.dropped_full, 1000u - static_cast<std::uint64_t>(accepted.load()));
  ExpectInvariant(s);
  // Each producer's accepted results were sent in the order it enqueued them.
  std::vector<int> last(4, -1);
  for (const std::string& body : http.bodies()) {
    const int n = std::stoi(body);
    EXPECT_GE(n % 1000, last[n / 1000]) << body;
    last[n / 1000] = n % 1000;
  }
}

// ---------------------------------------------------------------------------------------------
// Over a real loopback server, with curl and the real clock.

std::unique_ptr<HttpClient> LoopbackClient() {
  StatusOr<std::unique_ptr<HttpClient>> client = NewCurlHttpClient({.proxy = ""});
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(client).value() : nullptr;
}

WebhookTargetOptions Fast() {
  WebhookTargetOptions o;
  o.rate_per_sec = 200;
  o.burst = 5;
  o.retry_base = 20ms;
  o.retry_max = 100ms;
  return o;
}

TEST(WebhookTargetLoopbackTest, DeliversInOrderWithExactBodies) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Text(200, "ok"); });
  std::unique_ptr<HttpClient> http = LoopbackClient();
  ASSERT_NE(http, nullptr);
  CapturedLog log;
  const std::string url = server.url() + "/services/T000/B000/" + kSecret;
  WebhookPlatform platform = TestPlatform(url);
  platform.build_payload = [](const TaskResult& r) {
    return "{\"text\":\"result " + r.task + " of " + r.job + " \\u00e9\"}";
  };
  auto target = NewWebhookTarget("team-slack", platform, Fast(), *http, RealClock(), log.logger(), nullptr);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 20; }, 10s));
  target->Shutdown(RealClock().Now() + 5s);

  const std::vector<HttpTestRequest> got = server.requests();
  ASSERT_EQ(got.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(got[i].method, "POST");
    EXPECT_EQ(got[i].path(), "/services/T000/B000/SECRETtoken123");
    EXPECT_EQ(got[i].body, "{\"text\":\"result " + std::to_string(i) + " of job \\u00e9\"}");
    EXPECT_EQ(got[i].Header("Content-Type"), "application/json");
    EXPECT_EQ(got[i].Header("User-Agent"), "taskpipe/" TASKPIPE_VERSION);
  }
  ExpectInvariant(target->Stats());
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

TEST(WebhookTargetLoopbackTest, HangingServerTimesOutIsRetriedAndShutdownReturnsByItsDeadline) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  std::unique_ptr<HttpClient> http = LoopbackClient();
  ASSERT_NE(http, nullptr);
  CapturedLog log;
  WebhookTargetOptions options = Fast();
  options.request_timeout = 300ms;
  options.max_attempts = 2;
  Clock& clock = RealClock();
  auto target = NewWebhookTarget("team-slack", TestPlatform(server.url() + "/services/T000/B000/" + kSecret), options,
                                 *http, clock, log.logger(), nullptr);
  const Clock::time_point start = clock.Now();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(target->Enqueue(Result(i)));
  // Result 0: two exchanges of 300 ms with a back-off of 10..20 ms between them, then dropped.
  ASSERT_TRUE(WaitFor([&] { return target->Stats().dropped_failed == 1; }, 10s));
  const Clock::duration first_dropped = clock.Now() - start;
  EXPECT_GE(first_dropped, 600ms);
  EXPECT_LT(first_dropped, 3s);

  const Clock::time_point shutdown_start = clock.Now();
  const Clock::time_point deadline = shutdown_start + 500ms;
  target->Shutdown(deadline);
  const Clock::time_point returned = clock.Now();
  // Never early (the server never answers), and late only by scheduling slack: a request in
  // flight at the call had at most 300 ms left, later ones were cut to the deadline.
  EXPECT_GE(returned, deadline);
  EXPECT_LT(returned - deadline, 250ms);

  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_EQ(s.dropped_failed + s.dropped_deadline, 3u);
  EXPECT_GE(s.dropped_deadline, 1u);
  EXPECT_GE(s.retries, 3u);
  EXPECT_EQ(s.pending, 0u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("last error: DeadlineExceeded"));
  EXPECT_THAT(log.text(), HasSubstr("shutdown deadline reached"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
  EXPECT_THAT(log.text(), Not(HasSubstr("/services/")));
}

TEST(WebhookTargetLoopbackTest, RetryAfterOnA429IsHonoured) {
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> arrivals;  // GUARDED_BY(mu)
  HttpTestServer server([&](const HttpTestRequest&) {
    std::lock_guard<std::mutex> guard(mu);
    arrivals.push_back(std::chrono::steady_clock::now());
    if (arrivals.size() == 1) {
      HttpTestReply reply = HttpTestReply::Json(429, "{\"message\":\"You are being rate limited.\"}");
      reply.headers.push_back({"Retry-After", "0.2"});
      return reply;
    }
    return HttpTestReply::Text(200, "ok");
  });
  std::unique_ptr<HttpClient> http = LoopbackClient();
  ASSERT_NE(http, nullptr);
  CapturedLog log;
  auto target = NewWebhookTarget("team-discord", TestPlatform(server.url() + "/api/webhooks/1/" + kSecret, "discord"),
                                 Fast(), *http, RealClock(), log.logger(), nullptr);
  ASSERT_TRUE(target->Enqueue(Result(0)));
  ASSERT_TRUE(target->Enqueue(Result(1)));
  ASSERT_TRUE(WaitFor([&] { return target->Stats().delivered == 2; }, 10s));
  target->Shutdown(RealClock().Now() + 5s);

  const std::vector<HttpTestRequest> got = server.requests();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].body, "0");
  EXPECT_EQ(got[1].body, "0");
  EXPECT_EQ(got[2].body, "1");
  {
    std::lock_guard<std::mutex> guard(mu);
    EXPECT_GE(arrivals[1] - arrivals[0], 200ms);
    EXPECT_LT(arrivals[1] - arrivals[0], 2s);
  }
  const NotifyStats s = target->Stats();
  EXPECT_EQ(s.rate_limited, 1u);
  ExpectInvariant(s);
  EXPECT_THAT(log.text(), HasSubstr("notify target \"team-discord\" (discord): rate limited: test platform answered 429"));
  EXPECT_THAT(log.text(), Not(HasSubstr(kSecret)));
}

}  // namespace
}  // namespace taskpipe
