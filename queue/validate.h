// SQS request validation and checksums: pure functions shared by the in-memory backend and the SQS
// backend (which checks a request before spending a round trip on it, and checks the MD5s SQS
// returns). Each failure is a kInvalidArgument Status whose error_name() is SQS's own error code and
// whose message says what was wrong.
//
// Thread-safe: no shared state.
#ifndef TASKPIPE_QUEUE_VALIDATE_H_
#define TASKPIPE_QUEUE_VALIDATE_H_

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "queue/message.h"
#include "queue/queue.h"

namespace taskpipe {

// The ids of a batch request (SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch).
// Fails with EmptyBatchRequest (no entries), TooManyEntriesInBatchRequest (more than 10),
// InvalidBatchEntryId (an id that is not 1-80 characters of [A-Za-z0-9_-]) or
// BatchEntryIdsNotDistinct (the same id twice), checked in that order.
Status ValidateBatchEntryIds(const std::vector<std::string>& ids);
// The same for ids that are not in a vector of strings (no copies).
Status ValidateBatchEntryIdViews(std::span<const std::string_view> ids);

// ReceiveMessage parameters: max_messages 1..10, wait 0..20 s, visibility override 0..12 h.
// Fails with InvalidParameterValue.
Status ValidateReceiveOptions(const ReceiveOptions& options);

// A visibility timeout (queue default, receive override or ChangeMessageVisibility): 0..12 h.
// Fails with InvalidParameterValue.
Status ValidateVisibilityTimeout(std::chrono::seconds timeout);

// One message as SendMessage (or one SendMessageBatch entry) would accept it:
//  - InvalidParameterValue: empty body, MessageSize() over 1 MiB, delay outside 0..15 min, more
//    than 10 attributes, a malformed attribute name, data type or value;
//  - InvalidMessageContents: a body that is not UTF-8 or holds a character SQS rejects.
Status ValidateOutgoingMessage(const OutgoingMessage& message);

// True if `text` is UTF-8 made only of the characters SQS accepts in a body or a String attribute:
// #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
bool IsValidMessageText(std::string_view text);

// The size SQS counts against the 1 MiB limit: the body plus, for each attribute, its name, data
// type and value (string_value, or binary_value for Binary types).
std::size_t MessageSize(const OutgoingMessage& message);

// True if `data_type` ("Binary", "Binary.png") uses SQS's Binary transport type; String and Number
// types use the String transport type.
bool IsBinaryDataType(std::string_view data_type);

// Lower-case hex MD5 of the body, as SQS returns in MD5OfMessageBody.
std::string Md5OfBody(std::string_view body);

// MD5OfMessageAttributes, computed as SQS does: attributes sorted by name; for each, the name and
// the data type, each as a 4-byte big-endian length and its UTF-8 bytes; one transport-type byte
// (1 = String/Number, 2 = Binary); then the value as a 4-byte big-endian length and its bytes.
// Returns "" for no attributes (SQS then omits the field).
std::string Md5OfMessageAttributes(const MessageAttributes& attributes);

}  // namespace taskpipe

#endif  // TASKPIPE_QUEUE_VALIDATE_H_
