// The AWS SQS backend of the Queue interface (queue/queue.h), over either SQS protocol
// (aws/sqs_wire.h), signed with SigV4 (aws/sigv4.h).
//
// - Every request is signed at clock.WallNow() with credentials fetched from the provider for that
//   request (the provider caches and refreshes them).
// - Requests are checked locally first with queue/validate.h, so a bad request fails with the same
//   error as the in-memory backend and costs no round trip. For a FIFO queue (URL or name ending
//   in ".fifo") a message without a group id fails locally with MissingParameter.
// - Retries follow the AWS SDKs' "standard" retry mode
//   (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html; the back-off is
//   botocore 1.43's retries/standard.py ExponentialBackoff): at most `max_attempts` attempts in
//   all; only errors IsRetryable() accepts (throttling, 5xx, transport errors, timeouts); before
//   retry i (1-based) a wait of rand[0,1) * min(base * 2^(i-1), retry_max), where base is
//   retry_throttling_base after a throttling error and retry_base otherwise (SqsRetryDelay()).
//   Waits go through the Clock, so a FakeClock drives them. The standard mode's retry quota
//   (token bucket) is not implemented. Client errors (4xx) are never retried.
// - Receive() long-polls with an HTTP timeout of wait + long_poll_margin (at least
//   request_timeout).
// - Shutdown(): Receive() goes through an HttpClient of the queue's own (a curl client made by
//   NewSqsQueue), not the shared `http`, because HttpClient::Shutdown() is the only way to abort
//   an exchange in flight and the shared client must keep serving its other users. Shutdown()
//   shuts that private client down (an in-flight long poll is aborted at once and its Receive
//   returns empty) and wakes any Receive waiting to retry. Later Receives return empty without a
//   request. Every other operation keeps working through `http`, so a consumer can still delete
//   and release what it holds. A long poll aborted after SQS chose its messages leaves them
//   invisible until their visibility timeout runs out; they are then delivered again.
//
// Thread-safe: any number of threads may call any method concurrently.
#ifndef TASKPIPE_QUEUE_SQS_QUEUE_H_
#define TASKPIPE_QUEUE_SQS_QUEUE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "common/clock.h"
#include "common/status.h"
#include "net/http_client.h"
#include "queue/queue.h"

namespace taskpipe {

// The requests SqsQueues made, by action ("ReceiveMessage", ...): every HTTP attempt counts,
// retries included, and `errors` the attempts that failed (a transport error or an error reply;
// an exchange cut off by Shutdown() is no error). For the metrics endpoint. Thread-safe.
class SqsRequestCounters {
 public:
  struct Row {
    std::string action;
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
  };
  void Count(std::string_view action, bool ok);
  std::vector<Row> Snapshot() const;  // sorted by action

 private:
  mutable std::mutex mu_;
  std::map<std::string, Row, std::less<>> rows_;  // GUARDED_BY(mu_)
};

struct SqsQueueOptions {
  // The queue: its URL ("https://sqs.us-east-1.amazonaws.com/123456789012/tasks"), or its name
  // ("tasks"), looked up with GetQueueUrl when the queue is created. Exactly one of them.
  std::string queue_url{};
  std::string queue_name{};
  // Where requests go: "https://sqs.us-east-1.amazonaws.com", "http://127.0.0.1:4566". Empty: the
  // scheme and host of queue_url, else https://sqs.<region>.amazonaws.com.
  std::string endpoint{};
  // The signing region. Empty: taken from an AWS queue URL or endpoint host
  // (sqs.<region>.amazonaws.com); required otherwise.
  std::string region{};
  std::string protocol = "json";  // "json" | "query"
  // Retries (see the file comment). max_attempts >= 1 counts the first attempt.
  int max_attempts = 3;
  std::chrono::milliseconds retry_base{50};               // after 5xx and transport errors
  std::chrono::milliseconds retry_throttling_base{1000};  // after throttling errors
  std::chrono::milliseconds retry_max{20000};             // cap on one wait
  // HTTP timeouts: the whole exchange (long polls get wait + long_poll_margin) and the connect.
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds long_poll_margin{10000};
  // The proxy of the queue's own receive client (CurlHttpClientOptions::proxy): nullopt = from
  // the environment, "" = none (loopback tests), or a proxy URL.
  std::optional<std::string> receive_proxy = std::nullopt;
  // Where requests are counted; null = nowhere. Not owned: must outlive the queue.
  SqsRequestCounters* counters = nullptr;
};

// Creates the queue; looks its URL up (GetQueueUrl, with retries) when given a name. Fails with
// kInvalidArgument for bad options (neither or both of url and name, an unknown protocol, no region,
// a malformed endpoint), with kNotFound (error_name "QueueDoesNotExist") for a name SQS does not
// know, or with whatever else GetQueueUrl failed with. `http`, `credentials` and `clock` must
// outlive the queue; `http` is used for every call but ReceiveMessage (see the file comment).
StatusOr<std::unique_ptr<Queue>> NewSqsQueue(const SqsQueueOptions& options, HttpClient& http,
                                             CredentialsProvider& credentials, Clock& clock);

// The wait before retry number `retry` (1 for the first retry), given a uniform random number
// `random01` in [0, 1): random01 * min(base * 2^(retry-1), retry_max), base being
// options.retry_throttling_base when `throttled` and options.retry_base otherwise. Pure.
Clock::duration SqsRetryDelay(const SqsQueueOptions& options, int retry, bool throttled, double random01);

}  // namespace taskpipe

#endif  // TASKPIPE_QUEUE_SQS_QUEUE_H_
