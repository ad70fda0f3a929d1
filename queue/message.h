// Messages as SQS knows them: what a sender puts on a queue and what a receiver gets back.
// Plain values; not synchronised.
#ifndef TASKPIPE_QUEUE_MESSAGE_H_
#define TASKPIPE_QUEUE_MESSAGE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace taskpipe {

// SQS limits (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html).
inline constexpr std::size_t kMaxMessageBytes = 1024 * 1024;  // body + attributes, since 2025
inline constexpr int kMaxBatchEntries = 10;
inline constexpr int kMaxReceiveMessages = 10;
inline constexpr std::chrono::seconds kMaxWaitTime{20};
inline constexpr std::chrono::seconds kMaxVisibilityTimeout{12 * 60 * 60};
inline constexpr std::chrono::seconds kDefaultVisibilityTimeout{30};
inline constexpr std::chrono::seconds kMaxDelay{15 * 60};
inline constexpr std::chrono::seconds kMinRetention{60};
inline constexpr std::chrono::seconds kMaxRetention{14 * 24 * 60 * 60};
inline constexpr std::chrono::seconds kDefaultRetention{4 * 24 * 60 * 60};
inline constexpr int kMaxMessageAttributes = 10;
inline constexpr std::size_t kMaxBatchEntryIdLength = 80;

// A message attribute: DataType is "String", "Number" or "Binary", optionally with a custom suffix
// ("Number.int"). String and Number use string_value; Binary uses binary_value (raw bytes).
struct MessageAttribute {
  std::string data_type = "String";
  std::string string_value{};
  std::string binary_value{};
  friend bool operator==(const MessageAttribute&, const MessageAttribute&) = default;
};
using MessageAttributes = std::map<std::string, MessageAttribute>;

struct OutgoingMessage {
  std::string body{};
  std::chrono::seconds delay{0};  // DelaySeconds, 0..15 min
  MessageAttributes attributes{};
  std::string group_id{};           // MessageGroupId (FIFO queues)
  std::string deduplication_id{};   // MessageDeduplicationId (FIFO queues)
};

struct SendResult {
  std::string message_id{};
  std::string md5_of_body{};      // hex MD5 of the body, as SQS returns it
  std::string sequence_number{};  // FIFO queues only
};

struct ReceivedMessage {
  std::string message_id{};
  std::string receipt_handle{};  // fresh for every receive; only the newest one is valid
  std::string body{};
  std::string md5_of_body{};
  MessageAttributes attributes{};
  int receive_count = 0;  // ApproximateReceiveCount, this receive included
  std::chrono::system_clock::time_point sent_timestamp{};                 // SentTimestamp
  std::chrono::system_clock::time_point first_receive_timestamp{};        // ApproximateFirstReceiveTimestamp
  std::string group_id{};
  std::string deduplication_id{};
  std::string sequence_number{};
};

// Batch requests: each entry has an id, unique within the request (1-80 chars of [A-Za-z0-9_-]).
struct SendBatchEntry {
  std::string id{};
  OutgoingMessage message{};
};
struct DeleteBatchEntry {
  std::string id{};
  std::string receipt_handle{};
};
struct ChangeVisibilityBatchEntry {
  std::string id{};
  std::string receipt_handle{};
  std::chrono::seconds visibility_timeout{0};
};

// A failed batch entry. `status.error_name()` is the SQS code ("ReceiptHandleIsInvalid");
// `sender_fault` is true when retrying the same entry cannot succeed.
struct BatchEntryFailure {
  std::string id{};
  Status status{};
  bool sender_fault = true;
};

// Per-entry results of a batch call. A batch call that returns OK may still have failed entries.
template <typename T>
struct BatchResult {
  struct Success {
    std::string id;
    T value;
  };
  std::vector<Success> successful{};
  std::vector<BatchEntryFailure> failed{};
};
struct Empty {};

}  // namespace taskpipe

#endif  // TASKPIPE_QUEUE_MESSAGE_H_
