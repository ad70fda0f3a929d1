// SQS wire formats as pure functions: the request (headers and body) for each action the Queue
// interface needs, and the parse of each response into the types of queue/message.h and
// queue/queue.h. No I/O, no clock, no signing: queue/sqs_queue.cc adds the URL, signs the request
// and sends it.
//
// Two protocols, chosen per queue:
//  - JSON (AWS JSON 1.0, the default and what current AWS SDKs speak): POST "/", Content-Type
//    application/x-amz-json-1.0, X-Amz-Target AmazonSQS.<Action>, a JSON body.
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-json-faqs.html
//  - Query (the original protocol): POST form-encoded "Action=...&Version=2012-11-05&...", XML
//    responses. https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-requests.html
//
// Response handling (every Parse*Response function):
//  - An SQS error response (JSON `__type`, even with HTTP 200; XML <ErrorResponse>) becomes
//    SqsErrorToStatus(code, service message, HTTP status).
//  - A non-2xx reply that is not an SQS error (an HTML page from a proxy or load balancer, an empty
//    or garbled body) becomes HttpStatusToStatus(): 5xx -> kUnavailable, 429 ->
//    kResourceExhausted, 403 -> kPermissionDenied, ...
//  - A 2xx reply that is an HTML page (a captive portal or misrouted proxy) -> kUnavailable.
//  - A 2xx reply whose body does not parse, or lacks a required field, or has a field of the wrong
//    type, or bad base64 -> kDataLoss: SQS did something (the request may have taken effect) but
//    the reply cannot be trusted. Not retryable (IsRetryable() is false), because a retried send
//    could duplicate a message.
//  - An MD5 that does not match what was sent (SendMessage, each SendMessageBatch entry) or what was
//    received (each message of ReceiveMessage) -> kDataLoss for that call or entry; for
//    ReceiveMessage the whole call fails (naming the message), and the messages it had received
//    become visible again when their visibility timeout runs out.
//    MD5s are checked when the response carries them, as the AWS SDKs do.
// Nothing here throws; malformed input of any shape gives a Status, never a crash.
//
// Thread-safe: no shared state.
#ifndef TASKPIPE_AWS_SQS_WIRE_H_
#define TASKPIPE_AWS_SQS_WIRE_H_

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "net/http_client.h"
#include "queue/message.h"
#include "queue/queue.h"

namespace taskpipe {

enum class SqsProtocol { kJson, kQuery };

// "json" -> kJson, "query" -> kQuery; anything else is kInvalidArgument.
StatusOr<SqsProtocol> ParseSqsProtocol(std::string_view name);

// The API version the Query protocol names in every request.
inline constexpr std::string_view kSqsApiVersion = "2012-11-05";

// What a request carries besides its URL and signature.
struct SqsWireRequest {
  std::string action{};  // "SendMessage", ...: for error messages and logs
  std::vector<std::pair<std::string, std::string>> headers{};  // Content-Type, X-Amz-Target (JSON)
  std::string body{};
};

// Request builders. `queue_url` is the queue's URL as SQS returned it. The JSON protocol sends
// strings as JSON (bytes that are not UTF-8 are replaced by U+FFFD: callers validate bodies and
// attributes first, see queue/validate.h); the Query protocol percent-encodes every byte but the
// unreserved characters. A message's delay is sent only when it is positive (0 = the queue's own
// DelaySeconds); MessageGroupId and MessageDeduplicationId only when not empty. Binary attribute
// values are sent base64-encoded. Batch entries and attributes keep their order (attributes are
// sorted by name, as MessageAttributes is a std::map).
SqsWireRequest BuildSendMessage(SqsProtocol protocol, std::string_view queue_url,
                                const OutgoingMessage& message);
SqsWireRequest BuildSendMessageBatch(SqsProtocol protocol, std::string_view queue_url,
                                     const std::vector<SendBatchEntry>& entries);
// Asks for every system attribute (AttributeNames and MessageSystemAttributeNames "All") and
// every message attribute (MessageAttributeNames "All"). VisibilityTimeout is sent only when
// `options` overrides it.
SqsWireRequest BuildReceiveMessage(SqsProtocol protocol, std::string_view queue_url,
                                   const ReceiveOptions& options);
SqsWireRequest BuildDeleteMessage(SqsProtocol protocol, std::string_view queue_url,
                                  std::string_view receipt_handle);
SqsWireRequest BuildDeleteMessageBatch(SqsProtocol protocol, std::string_view queue_url,
                                       const std::vector<DeleteBatchEntry>& entries);
SqsWireRequest BuildChangeMessageVisibility(SqsProtocol protocol, std::string_view queue_url,
                                            std::string_view receipt_handle, std::chrono::seconds timeout);
SqsWireRequest BuildChangeMessageVisibilityBatch(SqsProtocol protocol, std::string_view queue_url,
                                                 const std::vector<ChangeVisibilityBatchEntry>& entries);
// Asks for ApproximateNumberOfMessages, ...NotVisible and ...Delayed.
SqsWireRequest BuildGetQueueAttributes(SqsProtocol protocol, std::string_view queue_url);
SqsWireRequest BuildGetQueueUrl(SqsProtocol protocol, std::string_view queue_name);

// Response parsers; see the file comment for the errors. `sent` is what the request carried, for
// the MD5 checks and (batches) to match entries by id: an entry the response does not mention
// fails with kDataLoss and sender_fault = false, so that a caller retries it.
StatusOr<SendResult> ParseSendMessageResponse(SqsProtocol protocol, const HttpResponse& response,
                                              const OutgoingMessage& sent);
StatusOr<BatchResult<SendResult>> ParseSendMessageBatchResponse(SqsProtocol protocol,
                                                                const HttpResponse& response,
                                                                const std::vector<SendBatchEntry>& sent);
// Fills every field of ReceivedMessage: receive_count from ApproximateReceiveCount, the two
// timestamps (milliseconds since the epoch), group and deduplication ids and sequence number
// (FIFO), message attributes with Binary values base64-decoded. No messages is an empty vector.
StatusOr<std::vector<ReceivedMessage>> ParseReceiveMessageResponse(SqsProtocol protocol,
                                                                   const HttpResponse& response);
// DeleteMessage and ChangeMessageVisibility, whose success carries nothing. `action` names the
// call in error messages.
Status ParseEmptyResponse(SqsProtocol protocol, std::string_view action, const HttpResponse& response);
// DeleteMessageBatch and ChangeMessageVisibilityBatch (`action` is one of them). `sent_ids` are
// the ids of the request's entries.
StatusOr<BatchResult<Empty>> ParseEmptyBatchResponse(SqsProtocol protocol, std::string_view action,
                                                     const HttpResponse& response,
                                                     const std::vector<std::string>& sent_ids);
// Missing counts are 0; a count that is not a non-negative integer is kDataLoss.
StatusOr<QueueAttributes> ParseGetQueueAttributesResponse(SqsProtocol protocol, const HttpResponse& response);
StatusOr<std::string> ParseGetQueueUrlResponse(SqsProtocol protocol, const HttpResponse& response);

// SQS's error code as the Queue interface names it (queue/queue.h): the JSON protocol's namespace
// ("com.amazonaws.sqs#QueueDoesNotExist" -> "QueueDoesNotExist") and the Query protocol's prefix
// ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest" -> "TooManyEntriesInBatchRequest") are
// removed, as is the ";Sender" of an x-amzn-query-error header; "NonExistentQueue" (the Query
// name) becomes "QueueDoesNotExist" (the JSON name).
std::string NormalizeSqsErrorCode(std::string_view code);

// The one mapping from an SQS error to a Status. `code` is normalised first and kept as the
// Status's error_name(); the message is "SQS <action>: <service message> (HTTP <status>)".
//  - kResourceExhausted (retried): throttling — Throttling, ThrottlingException,
//    ThrottledException, RequestThrottled, RequestThrottledException, TooManyRequestsException,
//    RequestLimitExceeded, LimitExceededException, BandwidthLimitExceeded, SlowDown, KmsThrottled,
//    OverLimit, PriorRequestNotComplete; and any unknown code with HTTP 429.
//  - kUnavailable (retried): ServiceUnavailable, InternalError, InternalFailure, ServiceFailure,
//    RequestTimeout, RequestTimeoutException; any unknown code with HTTP 5xx (a Receiver fault).
//  - kPermissionDenied: AccessDenied, AccessDeniedException, InvalidClientTokenId,
//    UnrecognizedClientException, SignatureDoesNotMatch, IncompleteSignature, ExpiredToken,
//    ExpiredTokenException, RequestExpired, MissingAuthenticationToken, InvalidSecurity,
//    OptInRequired, KmsAccessDenied; and any unknown code with HTTP 401/403.
//  - kNotFound: QueueDoesNotExist (AWS.SimpleQueueService.NonExistentQueue).
//  - kInvalidArgument: everything else a sender caused — InvalidParameterValue,
//    MissingParameter, ReceiptHandleIsInvalid, MessageNotInflight, InvalidMessageContents,
//    the batch errors (EmptyBatchRequest, TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct,
//    InvalidBatchEntryId, BatchRequestTooLong), UnsupportedOperation, ...; any other 4xx.
//  - kUnknown: an unknown code with an HTTP status that says nothing (2xx, 3xx).
Status SqsErrorToStatus(std::string_view action, std::string_view code, std::string_view message,
                        int http_status);

}  // namespace taskpipe

#endif  // TASKPIPE_AWS_SQS_WIRE_H_
