#include "queue/sqs_queue.h"

#include <algorithm>
#include <cstdint>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "aws/sigv4.h"
#include "aws/sqs_wire.h"
#include "net/curl_http_client.h"
#include "queue/validate.h"

namespace taskpipe {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// "https://host:port" of an http(s) URL, or "" when it is not one.
std::string SchemeAndAuthority(std::string_view url) {
  std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "";
  std::string_view scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return "";
  std::size_t host_start = scheme_end + 3;
  std::size_t host_end = url.find_first_of("/?#", host_start);
  if (host_end == std::string_view::npos) host_end = url.size();
  if (host_end == host_start) return "";
  return std::string(url.substr(0, host_end));
}

// The region in an AWS SQS host: "sqs.us-east-1.amazonaws.com", "sqs.cn-north-1.amazonaws.com.cn"
// or the legacy "us-east-1.queue.amazonaws.com". "" when the host is none of these.
std::string RegionFromUrl(std::string_view url) {
  std::string authority = SchemeAndAuthority(url);
  if (authority.empty()) return "";
  std::string_view host = std::string_view(authority).substr(authority.find("://") + 3);
  host = host.substr(0, host.find(':'));
  for (std::string_view suffix : {".amazonaws.com", ".amazonaws.com.cn"}) {
    if (!EndsWith(host, suffix)) continue;
    std::string_view rest = host.substr(0, host.size() - suffix.size());
    if (StartsWith(rest, "sqs.")) return std::string(rest.substr(4));
    if (EndsWith(rest, ".queue")) return std::string(rest.substr(0, rest.size() - 6));
  }
  return "";
}

bool IsFifoName(std::string_view name_or_url) { return EndsWith(name_or_url, ".fifo"); }

class SqsQueue final : public Queue {
 public:
  SqsQueue(const SqsQueueOptions& options, SqsProtocol protocol, std::string endpoint, std::string region,
           HttpClient& http, std::unique_ptr<HttpClient> receive_http, CredentialsProvider& credentials,
           Clock& clock)
      : options_(options),
        protocol_(protocol),
        url_(std::move(endpoint) + "/"),
        region_(std::move(region)),
        http_(http),
        receive_http_(std::move(receive_http)),
        credentials_(credentials),
        clock_(clock),
        random_(std::random_device{}()) {}

  // Looks the queue's URL up by name (GetQueueUrl), or takes it from the options.
  Status Resolve();

  StatusOr<SendResult> Send(const OutgoingMessage& message) override;
  StatusOr<BatchResult<SendResult>> SendBatch(const std::vector<SendBatchEntry>& entries) override;
  StatusOr<std::vector<ReceivedMessage>> Receive(const ReceiveOptions& options) override;
  Status Delete(std::string_view receipt_handle) override;
  StatusOr<BatchResult<Empty>> DeleteBatch(const std::vector<DeleteBatchEntry>& entries) override;
  Status ChangeVisibility(std::string_view receipt_handle, std::chrono::seconds timeout) override;
  StatusOr<BatchResult<Empty>> ChangeVisibilityBatch(const std::vector<ChangeVisibilityBatchEntry>& entries) override;
  StatusOr<QueueAttributes> GetAttributes() override;
  void Shutdown() override;

 private:
  // How a call goes out.
  struct CallOptions {
    HttpClient* http = nullptr;
    std::chrono::milliseconds timeout{0};
    // Shutdown() ends the back-off waits of this call (Receive only).
    bool interruptible = false;
  };

  // Signs and sends `wire` once.
  StatusOr<HttpResponse> SendOnce(const SqsWireRequest& wire, const CallOptions& call);

  // Sends `wire` and parses the reply with `parse` (HttpResponse -> StatusOr<T> or Status),
  // retrying as the file comment of sqs_queue.h says.
  template <typename Result, typename Parse>
  Result Call(const SqsWireRequest& wire, const CallOptions& call, Parse parse);

  CallOptions Normal() { return {&http_, options_.request_timeout, false}; }

  bool shut_down() {
    std::lock_guard<std::mutex> lock(mu_);
    return shutdown_;
  }

  // A MissingParameter error for a FIFO message without a group id, else OK.
  Status CheckFifo(const OutgoingMessage& message) const {
    if (!fifo_ || !message.group_id.empty()) return Status::Ok();
    return InvalidArgumentError("a message for a FIFO queue needs a MessageGroupId", "MissingParameter");
  }

  const SqsQueueOptions options_;
  const SqsProtocol protocol_;
  const std::string url_;     // where requests are POSTed: the endpoint's "/"
  const std::string region_;  // for signing
  std::string queue_url_;     // set by Resolve(), constant afterwards
  bool fifo_ = false;         // set by Resolve(), constant afterwards
  HttpClient& http_;
  const std::unique_ptr<HttpClient> receive_http_;  // ReceiveMessage only; shut down by Shutdown()
  CredentialsProvider& credentials_;
  Clock& clock_;

  std::mutex mu_;
  std::condition_variable cv_;  // notified by Shutdown(): ends interruptible back-off waits
  bool shutdown_ = false;       // GUARDED_BY(mu_)
  std::mt19937_64 random_;      // GUARDED_BY(mu_)
};

StatusOr<HttpResponse> SqsQueue::SendOnce(const SqsWireRequest& wire, const CallOptions& call) {
  StatusOr<AwsCredentials> creds = credentials_.Get();
  if (!creds.ok()) return creds.status().WithContext("SQS " + wire.action + ": credentials");
  SigningRequest signing;
  signing.method = "POST";
  signing.url = url_;
  signing.headers = wire.headers;
  signing.body = wire.body;
  StatusOr<std::vector<std::pair<std::string, std::string>>> signature =
      SignV4(signing, *creds, region_, "sqs", clock_.WallNow());
  if (!signature.ok()) return signature.status().WithContext("SQS " + wire.action + ": signing");
  HttpRequest request;
  request.method = "POST";
  request.url = url_;
  request.headers = std::move(signing.headers);
  for (auto& header : *signature) request.headers.push_back(std::move(header));
  request.body = std::move(signing.body);
  request.timeout = call.timeout;
  request.connect_timeout = options_.connect_timeout;
  StatusOr<HttpResponse> response = call.http->Send(request);
  if (!response.ok()) return response.status().WithContext("SQS " + wire.action);
  return response;
}

template <typename Result, typename Parse>
Result SqsQueue::Call(const SqsWireRequest& wire, const CallOptions& call, Parse parse) {
  const int attempts = std::max(1, options_.max_attempts);
  for (int attempt = 1;; ++attempt) {
    Status status;
    StatusOr<HttpResponse> response = SendOnce(wire, call);
    if (response.ok()) {
      Result result = parse(*response);
      if (result.ok()) {
        if (options_.counters != nullptr) options_.counters->Count(wire.action, true);
        return result;
      }
      if constexpr (std::is_same_v<Result, Status>) {
        status = result;
      } else {
        status = result.status();
      }
    } else {
      status = response.status();
    }
    if (options_.counters != nullptr) options_.counters->Count(wire.action, status.code() == StatusCode::kCancelled);
    if (!IsRetryable(status)) return status;
    if (attempt >= attempts) {
      if (attempts == 1) return status;
      return Status(status.code(), status.message() + " (gave up after " + std::to_string(attempts) + " attempts)",
                    status.error_name());
    }
    std::unique_lock<std::mutex> lock(mu_);
    const double r = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
    const Clock::duration delay =
        SqsRetryDelay(options_, attempt, status.code() == StatusCode::kResourceExhausted, r);
    const bool interrupted = clock_.WaitFor(lock, cv_, delay, [&] { return call.interruptible && shutdown_; });
    if (interrupted) return CancelledError("SQS " + wire.action + ": queue shut down while waiting to retry");
  }
}

Status SqsQueue::Resolve() {
  if (!options_.queue_url.empty()) {
    queue_url_ = options_.queue_url;
  } else {
    SqsWireRequest wire = BuildGetQueueUrl(protocol_, options_.queue_name);
    StatusOr<std::string> url = Call<StatusOr<std::string>>(
        wire, Normal(), [&](const HttpResponse& r) { return ParseGetQueueUrlResponse(protocol_, r); });
    if (!url.ok()) return url.status();
    queue_url_ = std::move(*url);
  }
  fifo_ = IsFifoName(queue_url_);
  return Status::Ok();
}

StatusOr<SendResult> SqsQueue::Send(const OutgoingMessage& message) {
  TASKPIPE_RETURN_IF_ERROR(ValidateOutgoingMessage(message));
  TASKPIPE_RETURN_IF_ERROR(CheckFifo(message));
  SqsWireRequest wire = BuildSendMessage(protocol_, queue_url_, message);
  return Call<StatusOr<SendResult>>(
      wire, Normal(), [&](const HttpResponse& r) { return ParseSendMessageResponse(protocol_, r, message); });
}

StatusOr<BatchResult<SendResult>> SqsQueue::SendBatch(const std::vector<SendBatchEntry>& entries) {
  std::vector<std::string> ids;
  ids.reserve(entries.size());
  for (const SendBatchEntry& entry : entries) ids.push_back(entry.id);
  TASKPIPE_RETURN_IF_ERROR(ValidateBatchEntryIds(ids));
  std::size_t total = 0;
  for (const SendBatchEntry& entry : entries) total += MessageSize(entry.message);
  if (total > kMaxMessageBytes) {
    return InvalidArgumentError("the messages of the batch total " + std::to_string(total) +
                                    " bytes; the limit is " + std::to_string(kMaxMessageBytes) + " bytes",
                                "BatchRequestTooLong");
  }
  // Entries that fail locally are reported as SQS would, and not sent.
  BatchResult<SendResult> local;
  std::vector<SendBatchEntry> valid;
  for (const SendBatchEntry& entry : entries) {
    Status s = ValidateOutgoingMessage(entry.message);
    if (s.ok()) s = CheckFifo(entry.message);
    if (s.ok()) {
      valid.push_back(entry);
    } else {
      local.failed.push_back({entry.id, std::move(s), /*sender_fault=*/true});
    }
  }
  if (valid.empty()) return local;
  SqsWireRequest wire = BuildSendMessageBatch(protocol_, queue_url_, valid);
  StatusOr<BatchResult<SendResult>> result = Call<StatusOr<BatchResult<SendResult>>>(
      wire, Normal(), [&](const HttpResponse& r) { return ParseSendMessageBatchResponse(protocol_, r, valid); });
  if (!result.ok()) return result;
  for (BatchEntryFailure& failure : local.failed) result->failed.push_back(std::move(failure));
  return result;
}

StatusOr<std::vector<ReceivedMessage>> SqsQueue::Receive(const ReceiveOptions& options) {
  TASKPIPE_RETURN_IF_ERROR(ValidateReceiveOptions(options));
  if (shut_down()) return std::vector<ReceivedMessage>{};
  SqsWireRequest wire = BuildReceiveMessage(protocol_, queue_url_, options);
  CallOptions call;
  call.http = receive_http_.get();
  call.timeout = std::max(options_.request_timeout,
                          std::chrono::duration_cast<std::chrono::milliseconds>(options.wait) + options_.long_poll_margin);
  call.interruptible = true;
  StatusOr<std::vector<ReceivedMessage>> result = Call<StatusOr<std::vector<ReceivedMessage>>>(
      wire, call, [&](const HttpResponse& r) { return ParseReceiveMessageResponse(protocol_, r); });
  // An exchange aborted by Shutdown() (kCancelled from the private client) or a back-off wait it
  // ended is no error: the interface promises an empty result.
  if (!result.ok() && result.status().code() == StatusCode::kCancelled && shut_down()) {
    return std::vector<ReceivedMessage>{};
  }
  return result;
}

Status SqsQueue::Delete(std::string_view receipt_handle) {
  if (receipt_handle.empty()) {
    return InvalidArgumentError("the receipt handle is empty", "ReceiptHandleIsInvalid");
  }
  SqsWireRequest wire = BuildDeleteMessage(protocol_, queue_url_, receipt_handle);
  return Call<Status>(wire, Normal(),
                      [&](const HttpResponse& r) { return ParseEmptyResponse(protocol_, "DeleteMessage", r); });
}

StatusOr<BatchResult<Empty>> SqsQueue::DeleteBatch(const std::vector<DeleteBatchEntry>& entries) {
  std::vector<std::string> ids;
  ids.reserve(entries.size());
  for (const DeleteBatchEntry& entry : entries) ids.push_back(entry.id);
  TASKPIPE_RETURN_IF_ERROR(ValidateBatchEntryIds(ids));
  BatchResult<Empty> local;
  std::vector<DeleteBatchEntry> valid;
  std::vector<std::string> valid_ids;
  for (const DeleteBatchEntry& entry : entries) {
    if (entry.receipt_handle.empty()) {
      local.failed.push_back(
          {entry.id, InvalidArgumentError("the receipt handle is empty", "ReceiptHandleIsInvalid"), true});
    } else {
      valid.push_back(entry);
      valid_ids.push_back(entry.id);
    }
  }
  if (valid.empty()) return local;
  SqsWireRequest wire = BuildDeleteMessageBatch(protocol_, queue_url_, valid);
  StatusOr<BatchResult<Empty>> result = Call<StatusOr<BatchResult<Empty>>>(wire, Normal(), [&](const HttpResponse& r) {
    return ParseEmptyBatchResponse(protocol_, "DeleteMessageBatch", r, valid_ids);
  });
  if (!result.ok()) return result;
  for (BatchEntryFailure& failure : local.failed) result->failed.push_back(std::move(failure));
  return result;
}

Status SqsQueue::ChangeVisibility(std::string_view receipt_handle, std::chrono::seconds timeout) {
  TASKPIPE_RETURN_IF_ERROR(ValidateVisibilityTimeout(timeout));
  if (receipt_handle.empty()) {
    return InvalidArgumentError("the receipt handle is empty", "ReceiptHandleIsInvalid");
  }
  SqsWireRequest wire = BuildChangeMessageVisibility(protocol_, queue_url_, receipt_handle, timeout);
  return Call<Status>(wire, Normal(), [&](const HttpResponse& r) {
    return ParseEmptyResponse(protocol_, "ChangeMessageVisibility", r);
  });
}

StatusOr<BatchResult<Empty>> SqsQueue::ChangeVisibilityBatch(const std::vector<ChangeVisibilityBatchEntry>& entries) {
  std::vector<std::string> ids;
  ids.reserve(entries.size());
  for (const ChangeVisibilityBatchEntry& entry : entries) ids.push_back(entry.id);
  TASKPIPE_RETURN_IF_ERROR(ValidateBatchEntryIds(ids));
  BatchResult<Empty> local;
  std::vector<ChangeVisibilityBatchEntry> valid;
  std::vector<std::string> valid_ids;
  for (const ChangeVisibilityBatchEntry& entry : entries) {
    Status s = ValidateVisibilityTimeout(entry.visibility_timeout);
    if (s.ok() && entry.receipt_handle.empty()) {
      s = InvalidArgumentError("the receipt handle is empty", "ReceiptHandleIsInvalid");
    }
    if (s.ok()) {
      valid.push_back(entry);
      valid_ids.push_back(entry.id);
    } else {
      local.failed.push_back({entry.id, std::move(s), /*sender_fault=*/true});
    }
  }
  if (valid.empty()) return local;
  SqsWireRequest wire = BuildChangeMessageVisibilityBatch(protocol_, queue_url_, valid);
  StatusOr<BatchResult<Empty>> result = Call<StatusOr<BatchResult<Empty>>>(wire, Normal(), [&](const HttpResponse& r) {
    return ParseEmptyBatchResponse(protocol_, "ChangeMessageVisibilityBatch", r, valid_ids);
  });
  if (!result.ok()) return result;
  for (BatchEntryFailure& failure : local.failed) result->failed.push_back(std::move(failure));
  return result;
}

StatusOr<QueueAttributes> SqsQueue::GetAttributes() {
  SqsWireRequest wire = BuildGetQueueAttributes(protocol_, queue_url_);
  return Call<StatusOr<QueueAttributes>>(
      wire, Normal(), [&](const HttpResponse& r) { return ParseGetQueueAttributesResponse(protocol_, r); });
}

void SqsQueue::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  receive_http_->Shutdown();
}

}  // namespace

Clock::duration SqsRetryDelay(const SqsQueueOptions& options, int retry, bool throttled, double random01) {
  const std::int64_t base =
      std::chrono::duration_cast<Clock::duration>(throttled ? options.retry_throttling_base : options.retry_base)
          .count();
  const std::int64_t cap = std::chrono::duration_cast<Clock::duration>(options.retry_max).count();
  if (base <= 0 || cap <= 0) return Clock::duration::zero();
  // base * 2^(retry-1), capped; doubling stops at the cap, so nothing overflows.
  std::int64_t ceiling = std::min(base, cap);
  for (int i = 1; i < retry && ceiling < cap; ++i) ceiling = std::min(ceiling * 2, cap);
  const double r = std::clamp(random01, 0.0, 1.0);
  return Clock::duration(static_cast<std::int64_t>(static_cast<double>(ceiling) * r));
}

void SqsRequestCounters::Count(std::string_view action, bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = rows_.find(action);
  if (it == rows_.end()) it = rows_.emplace(std::string(action), Row{.action = std::string(action)}).first;
  ++it->second.requests;
  if (!ok) ++it->second.errors;
}

std::vector<SqsRequestCounters::Row> SqsRequestCounters::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Row> rows;
  rows.reserve(rows_.size());
  for (const auto& [action, row] : rows_) rows.push_back(row);
  return rows;
}

StatusOr<std::unique_ptr<Queue>> NewSqsQueue(const SqsQueueOptions& options, HttpClient& http,
                                             CredentialsProvider& credentials, Clock& clock) {
  if (options.queue_url.empty() == options.queue_name.empty()) {
    return InvalidArgumentError("SQS queue: set exactly one of the queue URL and the queue name");
  }
  if (!options.queue_url.empty() && SchemeAndAuthority(options.queue_url).empty()) {
    return InvalidArgumentError("SQS queue URL must be an http(s) URL");
  }
  StatusOr<SqsProtocol> protocol = ParseSqsProtocol(options.protocol);
  if (!protocol.ok()) return protocol.status();
  if (options.max_attempts < 1) return InvalidArgumentError("SQS max_attempts must be at least 1");
  if (options.retry_base.count() < 0 || options.retry_throttling_base.count() < 0 || options.retry_max.count() < 0 ||
      options.request_timeout.count() <= 0 || options.connect_timeout.count() <= 0 ||
      options.long_poll_margin.count() < 0) {
    return InvalidArgumentError("SQS retry waits must not be negative, and timeouts must be positive");
  }
  std::string endpoint;
  if (!options.endpoint.empty()) {
    endpoint = SchemeAndAuthority(options.endpoint);
    std::string_view rest = std::string_view(options.endpoint).substr(endpoint.size());
    if (endpoint.empty() || (!rest.empty() && rest != "/")) {
      return InvalidArgumentError("SQS endpoint must be scheme://host[:port], e.g. https://sqs.us-east-1.amazonaws.com");
    }
  } else if (!options.queue_url.empty()) {
    endpoint = SchemeAndAuthority(options.queue_url);
  }
  std::string region = options.region;
  if (region.empty()) region = RegionFromUrl(!endpoint.empty() ? endpoint : options.queue_url);
  if (region.empty()) {
    return InvalidArgumentError("SQS region is not set and cannot be told from the endpoint or queue URL");
  }
  if (endpoint.empty()) {
    endpoint = "https://sqs." + region + (StartsWith(region, "cn-") ? ".amazonaws.com.cn" : ".amazonaws.com");
  }
  CurlHttpClientOptions curl_options;
  curl_options.proxy = options.receive_proxy;
  StatusOr<std::unique_ptr<HttpClient>> receive_http = NewCurlHttpClient(curl_options);
  if (!receive_http.ok()) return receive_http.status().WithContext("SQS queue: receive client");
  auto queue = std::make_unique<SqsQueue>(options, *protocol, std::move(endpoint), std::move(region), http,
                                          std::move(*receive_http), credentials, clock);
  TASKPIPE_RETURN_IF_ERROR(queue->Resolve());
  return std::unique_ptr<Queue>(std::move(queue));
}

}  // namespace taskpipe
