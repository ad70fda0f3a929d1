#include "aws/sqs_wire.h"

#include <tinyxml2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "aws/sigv4.h"
#include "queue/validate.h"

// References for the shapes below (SQS API reference, one page per action):
//   https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
//   https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
//   https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_Message.html
//   https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html
// Query requests: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-making-api-requests-xml.html

namespace taskpipe {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kJsonContentType = "application/x-amz-json-1.0";
constexpr std::string_view kQueryContentType = "application/x-www-form-urlencoded; charset=utf-8";
constexpr std::size_t kMaxServiceMessageBytes = 1024;

// ---------------------------------------------------------------------------------------------
// Small helpers.

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool ContainsNoCase(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != haystack.end();
}

bool Is2xx(int status) { return status >= 200 && status <= 299; }

// At most kMaxServiceMessageBytes of a service's message, not splitting a UTF-8 sequence.
std::string Bounded(std::string_view text) {
  if (text.size() <= kMaxServiceMessageBytes) return std::string(text);
  std::size_t end = kMaxServiceMessageBytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end)) + "...";
}

std::string Context(std::string_view action) { return "SQS " + std::string(action); }

Status Malformed(std::string_view action, std::string_view what) {
  return DataLossError(Context(action) + ": malformed response: " + std::string(what));
}

// An HTML page where an SQS response should be: a proxy's or load balancer's error page, or a
// captive portal. Query responses are XML, so only an <html> root counts.
bool IsHtml(const HttpResponse& response) {
  if (std::optional<std::string> type = response.Header("Content-Type"); type && ContainsNoCase(*type, "text/html")) {
    return true;
  }
  std::string_view body = response.body;
  std::size_t start = body.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return false;
  body = body.substr(start, 64);
  return ContainsNoCase(body.substr(0, 15), "<!doctype html") || ContainsNoCase(body.substr(0, 5), "<html");
}

// The <title> of an HTML page, if it has a short one.
std::string HtmlTitle(std::string_view body) {
  std::string lower(body.substr(0, 4096));
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::size_t open = lower.find("<title>");
  if (open == std::string::npos) return "";
  open += 7;
  std::size_t close = lower.find("</title>", open);
  if (close == std::string::npos || close - open > 200) return "";
  std::string title(body.substr(open, close - open));
  title.erase(0, title.find_first_not_of(" \t\r\n"));
  title.erase(title.find_last_not_of(" \t\r\n") + 1);
  return title;
}

// A reply that is not an SQS response at all.
Status NotSqsResponse(std::string_view action, const HttpResponse& response, std::string_view parse_problem) {
  const bool html = IsHtml(response);
  if (html) {
    std::string title = HtmlTitle(response.body);
    std::string what = "HTTP " + std::to_string(response.status) + " with an HTML page" +
                       (title.empty() ? "" : " (\"" + title + "\")") +
                       " instead of an SQS response; a proxy or load balancer in the way?";
    if (Is2xx(response.status)) return UnavailableError(Context(action) + ": " + what);
    Status mapped = HttpStatusToStatus(response.status, "");
    return Status(mapped.code(), Context(action) + ": " + what);
  }
  if (Is2xx(response.status)) return Malformed(action, parse_problem);
  return HttpStatusToStatus(response.status, response.body).WithContext(Context(action));
}

// ---------------------------------------------------------------------------------------------
// Base64 (RFC 4648, with padding), for Binary message attributes.

constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t n = (static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16) |
                            (static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8) |
                            static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 2]));
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += kBase64Alphabet[(n >> 6) & 63];
    out += kBase64Alphabet[n & 63];
  }
  const std::size_t rest = data.size() - i;
  if (rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict: a multiple of 4 characters, '=' only as one or two final padding characters.
std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    std::uint32_t n = 0;
    for (int k = 0; k < 4; ++k) {
      int v = 0;
      if (k >= 4 - pad) {
        v = 0;
      } else {
        v = Base64Value(text[i + static_cast<std::size_t>(k)]);
        if (v < 0) return std::nullopt;
      }
      n = (n << 6) | static_cast<std::uint32_t>(v);
    }
    out += static_cast<char>((n >> 16) & 0xFF);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(n & 0xFF);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Request building.

std::string JsonBody(const OrderedJson& body) {
  // Replace, not throw, on bytes that are not UTF-8 (see the header).
  return body.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

SqsWireRequest JsonRequest(std::string_view action, const OrderedJson& body) {
  SqsWireRequest request;
  request.action = std::string(action);
  request.headers = {{"Content-Type", std::string(kJsonContentType)},
                     {"X-Amz-Target", "AmazonSQS." + std::string(action)}};
  request.body = JsonBody(body);
  return request;
}

// "a=b&c=d", each value percent-encoded as SigV4's UriEncode() does (so "/" and "+" are escaped
// and a space is "%20").
class Form {
 public:
  Form(std::string_view action, std::string_view queue_url) : action_(action) {
    Add("Action", action);
    Add("Version", kSqsApiVersion);
    if (!queue_url.empty()) Add("QueueUrl", queue_url);
  }
  void Add(std::string_view name, std::string_view value) {
    if (!body_.empty()) body_ += '&';
    body_ += name;
    body_ += '=';
    body_ += UriEncode(value, /*encode_slash=*/true);
  }
  void Add(std::string_view name, long long value) { Add(name, std::to_string(value)); }
  SqsWireRequest Done() && {
    SqsWireRequest request;
    request.action = std::move(action_);
    request.headers = {{"Content-Type", std::string(kQueryContentType)}};
    request.body = std::move(body_);
    return request;
  }

 private:
  std::string action_;
  std::string body_;
};

OrderedJson JsonAttributes(const MessageAttributes& attributes) {
  OrderedJson out = OrderedJson::object();
  for (const auto& [name, attribute] : attributes) {
    OrderedJson value = OrderedJson::object();
    value["DataType"] = attribute.data_type;
    if (IsBinaryDataType(attribute.data_type)) {
      value["BinaryValue"] = Base64Encode(attribute.binary_value);
    } else {
      value["StringValue"] = attribute.string_value;
    }
    out[name] = std::move(value);
  }
  return out;
}

// The members of a SendMessage request or a SendMessageBatch entry, after QueueUrl / Id.
void AddJsonMessage(const OutgoingMessage& message, OrderedJson& out) {
  out["MessageBody"] = message.body;
  if (message.delay.count() > 0) out["DelaySeconds"] = message.delay.count();
  if (!message.attributes.empty()) out["MessageAttributes"] = JsonAttributes(message.attributes);
  if (!message.group_id.empty()) out["MessageGroupId"] = message.group_id;
  if (!message.deduplication_id.empty()) out["MessageDeduplicationId"] = message.deduplication_id;
}

void AddFormMessage(const OutgoingMessage& message, const std::string& prefix, Form& form) {
  form.Add(prefix + "MessageBody", message.body);
  if (message.delay.count() > 0) form.Add(prefix + "DelaySeconds", message.delay.count());
  int n = 0;
  for (const auto& [name, attribute] : message.attributes) {
    const std::string p = prefix + "MessageAttribute." + std::to_string(++n) + ".";
    form.Add(p + "Name", name);
    form.Add(p + "Value.DataType", attribute.data_type);
    if (IsBinaryDataType(attribute.data_type)) {
      form.Add(p + "Value.BinaryValue", Base64Encode(attribute.binary_value));
    } else {
      form.Add(p + "Value.StringValue", attribute.string_value);
    }
  }
  if (!message.group_id.empty()) form.Add(prefix + "MessageGroupId", message.group_id);
  if (!message.deduplication_id.empty()) form.Add(prefix + "MessageDeduplicationId", message.deduplication_id);
}

// ---------------------------------------------------------------------------------------------
// Error codes.

const std::set<std::string, std::less<>>& ThrottlingCodes() {
  // botocore's ThrottledRetryableChecker list (retries/standard.py), plus SQS's own.
  static const auto* codes = new std::set<std::string, std::less<>>{
      "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
      "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
      "LimitExceededException", "BandwidthLimitExceeded", "SlowDown", "KmsThrottled", "OverLimit",
      "PriorRequestNotComplete", "ProvisionedThroughputExceededException"};
  return *codes;
}

const std::set<std::string, std::less<>>& TransientCodes() {
  static const auto* codes = new std::set<std::string, std::less<>>{
      "ServiceUnavailable", "ServiceUnavailableException", "InternalError", "InternalFailure",
      "InternalServerError", "ServiceFailure", "RequestTimeout", "RequestTimeoutException"};
  return *codes;
}

const std::set<std::string, std::less<>>& AuthCodes() {
  static const auto* codes = new std::set<std::string, std::less<>>{
      "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "UnrecognizedClientException",
      "SignatureDoesNotMatch", "IncompleteSignature", "ExpiredToken", "ExpiredTokenException",
      "RequestExpired", "MissingAuthenticationToken", "InvalidSecurity", "OptInRequired",
      "KmsAccessDenied", "InvalidAccessKeyId"};
  return *codes;
}

// The mapping behind SqsErrorToStatus(); `http_status` only decides for codes it does not know.
StatusCode CodeFor(std::string_view code, int http_status) {
  if (ThrottlingCodes().count(code) > 0) return StatusCode::kResourceExhausted;
  if (TransientCodes().count(code) > 0) return StatusCode::kUnavailable;
  if (AuthCodes().count(code) > 0) return StatusCode::kPermissionDenied;
  if (code == "QueueDoesNotExist") return StatusCode::kNotFound;
  if (http_status == 429) return StatusCode::kResourceExhausted;
  if (http_status >= 500 && http_status <= 599) return StatusCode::kUnavailable;
  if (http_status == 401 || http_status == 403) return StatusCode::kPermissionDenied;
  if (http_status >= 400 && http_status <= 499) return StatusCode::kInvalidArgument;
  return StatusCode::kUnknown;
}

Status ServiceError(std::string_view action, std::string_view raw_code, std::string_view message,
                    int http_status) {
  return SqsErrorToStatus(action, raw_code, message, http_status);
}

// One failed batch entry: `sender_fault` stands in for the HTTP status when the code is unknown.
BatchEntryFailure EntryFailure(std::string_view action, std::string id, std::string_view raw_code,
                               std::string_view message, bool sender_fault) {
  std::string code = NormalizeSqsErrorCode(raw_code);
  std::string text = Context(action) + " entry '" + id + "': " + Bounded(message.empty() ? code : message);
  BatchEntryFailure failure;
  failure.status = Status(CodeFor(code, sender_fault ? 400 : 500), std::move(text), code);
  failure.id = std::move(id);
  failure.sender_fault = sender_fault;
  return failure;
}

// ---------------------------------------------------------------------------------------------
// The protocol-neutral shapes of responses: both parsers fill these, then one function checks
// and converts them.

struct RawAttribute {
  std::optional<std::string> data_type;
  std::optional<std::string> string_value;
  std::optional<std::string> binary_base64;
};

struct RawMessage {
  std::optional<std::string> message_id, receipt_handle, md5_of_body, body, md5_of_attributes;
  std::map<std::string, std::string> system;
  std::map<std::string, RawAttribute> attributes;
};

struct RawSendResult {
  std::optional<std::string> id, message_id, md5_of_body, md5_of_attributes, sequence_number;
};

struct RawBatchError {
  std::optional<std::string> id;
  bool sender_fault = true;
  std::string code, message;
};

bool EqualsHex(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<std::int64_t> ParseInt(std::string_view text) {
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// SentTimestamp and friends: milliseconds since the epoch.
Status ParseMillis(std::string_view action, const std::map<std::string, std::string>& system, const char* name,
                   std::chrono::system_clock::time_point* out) {
  auto it = system.find(name);
  if (it == system.end()) return Status::Ok();
  std::optional<std::int64_t> ms = ParseInt(it->second);
  // Bounded so that the conversion to system_clock's nanoseconds cannot overflow: at most
  // 9223372036854 ms (2262-04-11).
  constexpr std::int64_t kMaxMillis =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::duration::max()).count();
  if (!ms || *ms < 0 || *ms > kMaxMillis) {
    return Malformed(action, std::string(name) + " is not a time in milliseconds: '" + Bounded(it->second) + "'");
  }
  *out = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::milliseconds(*ms)));
  return Status::Ok();
}

StatusOr<ReceivedMessage> FinishMessage(RawMessage raw) {
  constexpr std::string_view kAction = "ReceiveMessage";
  if (!raw.message_id || raw.message_id->empty()) return Malformed(kAction, "a message without MessageId");
  const std::string& id = *raw.message_id;
  if (!raw.receipt_handle || raw.receipt_handle->empty()) {
    return Malformed(kAction, "message " + id + " has no ReceiptHandle");
  }
  if (!raw.body) return Malformed(kAction, "message " + id + " has no Body");
  ReceivedMessage m;
  m.message_id = std::move(*raw.message_id);
  m.receipt_handle = std::move(*raw.receipt_handle);
  m.body = std::move(*raw.body);
  m.md5_of_body = Md5OfBody(m.body);
  if (raw.md5_of_body && !EqualsHex(*raw.md5_of_body, m.md5_of_body)) {
    return DataLossError(Context(kAction) + ": MD5OfBody of message " + m.message_id + " is " +
                         Bounded(*raw.md5_of_body) + " but the body received hashes to " + m.md5_of_body);
  }
  for (auto& [name, value] : raw.attributes) {
    if (!value.data_type || value.data_type->empty()) {
      return Malformed(kAction, "message attribute '" + Bounded(name) + "' of message " + m.message_id +
                                    " has no DataType");
    }
    MessageAttribute attribute;
    attribute.data_type = std::move(*value.data_type);
    if (IsBinaryDataType(attribute.data_type)) {
      if (!value.binary_base64) {
        return Malformed(kAction, "Binary message attribute '" + Bounded(name) + "' has no BinaryValue");
      }
      std::optional<std::string> bytes = Base64Decode(*value.binary_base64);
      if (!bytes) {
        return Malformed(kAction, "message attribute '" + Bounded(name) + "' of message " + m.message_id +
                                      ": BinaryValue is not valid base64");
      }
      attribute.binary_value = std::move(*bytes);
    } else {
      if (!value.string_value) {
        return Malformed(kAction, "message attribute '" + Bounded(name) + "' has no StringValue");
      }
      attribute.string_value = std::move(*value.string_value);
    }
    m.attributes.emplace(name, std::move(attribute));
  }
  if (raw.md5_of_attributes) {
    const std::string expected = Md5OfMessageAttributes(m.attributes);
    if (!EqualsHex(*raw.md5_of_attributes, expected)) {
      return DataLossError(Context(kAction) + ": MD5OfMessageAttributes of message " + m.message_id + " is " +
                           Bounded(*raw.md5_of_attributes) + " but the attributes received hash to " +
                           (expected.empty() ? "nothing (no attributes)" : expected));
    }
  }
  if (auto it = raw.system.find("ApproximateReceiveCount"); it != raw.system.end()) {
    std::optional<std::int64_t> count = ParseInt(it->second);
    if (!count || *count < 0 || *count > 1'000'000'000) {
      return Malformed(kAction, "ApproximateReceiveCount is not a count: '" + Bounded(it->second) + "'");
    }
    m.receive_count = static_cast<int>(*count);
  }
  TASKPIPE_RETURN_IF_ERROR(ParseMillis(kAction, raw.system, "SentTimestamp", &m.sent_timestamp));
  TASKPIPE_RETURN_IF_ERROR(
      ParseMillis(kAction, raw.system, "ApproximateFirstReceiveTimestamp", &m.first_receive_timestamp));
  if (auto it = raw.system.find("MessageGroupId"); it != raw.system.end()) m.group_id = it->second;
  if (auto it = raw.system.find("MessageDeduplicationId"); it != raw.system.end()) {
    m.deduplication_id = it->second;
  }
  if (auto it = raw.system.find("SequenceNumber"); it != raw.system.end()) m.sequence_number = it->second;
  return m;
}

// Checks one send result against what was sent.
StatusOr<SendResult> FinishSend(std::string_view action, RawSendResult raw, const OutgoingMessage& sent) {
  if (!raw.message_id || raw.message_id->empty()) return Malformed(action, "no MessageId");
  SendResult result;
  result.message_id = std::move(*raw.message_id);
  result.md5_of_body = Md5OfBody(sent.body);
  if (raw.md5_of_body && !EqualsHex(*raw.md5_of_body, result.md5_of_body)) {
    return DataLossError(Context(action) + ": SQS reports MD5OfMessageBody " + Bounded(*raw.md5_of_body) +
                         " for message " + result.message_id + " but the body sent hashes to " +
                         result.md5_of_body);
  }
  if (raw.md5_of_attributes && !sent.attributes.empty()) {
    const std::string expected = Md5OfMessageAttributes(sent.attributes);
    if (!EqualsHex(*raw.md5_of_attributes, expected)) {
      return DataLossError(Context(action) + ": SQS reports MD5OfMessageAttributes " +
                           Bounded(*raw.md5_of_attributes) + " for message " + result.message_id +
                           " but the attributes sent hash to " + expected);
    }
  }
  if (raw.sequence_number) result.sequence_number = std::move(*raw.sequence_number);
  return result;
}

// Matches batch results to the request's entries by id. `ok_ids` and `errors` come from the
// response; every sent id ends up in exactly one of the result's lists.
template <typename T, typename Finish>
StatusOr<BatchResult<T>> FinishBatch(std::string_view action, const std::vector<std::string>& sent_ids,
                                     std::vector<std::pair<std::string, Finish>> ok,
                                     std::vector<RawBatchError> errors) {
  std::map<std::string, std::size_t, std::less<>> index;
  for (std::size_t i = 0; i < sent_ids.size(); ++i) index.emplace(sent_ids[i], i);
  std::vector<int> seen(sent_ids.size(), 0);
  BatchResult<T> result;
  auto claim = [&](const std::string& id) -> StatusOr<std::size_t> {
    auto it = index.find(id);
    if (it == index.end()) return Malformed(action, "a result for entry '" + Bounded(id) + "', which was not sent");
    if (seen[it->second]++ > 0) return Malformed(action, "two results for entry '" + Bounded(id) + "'");
    return it->second;
  };
  for (auto& [id, finish] : ok) {
    StatusOr<std::size_t> i = claim(id);
    if (!i.ok()) return i.status();
    StatusOr<T> value = finish();
    if (value.ok()) {
      result.successful.push_back({id, std::move(*value)});
    } else {
      // The entry took effect (SQS says so) but its result cannot be trusted: not a sender fault.
      BatchEntryFailure failure;
      failure.id = id;
      failure.status = value.status();
      failure.sender_fault = false;
      result.failed.push_back(std::move(failure));
    }
  }
  for (RawBatchError& error : errors) {
    if (!error.id) return Malformed(action, "a failed entry without Id");
    StatusOr<std::size_t> i = claim(*error.id);
    if (!i.ok()) return i.status();
    result.failed.push_back(EntryFailure(action, *error.id, error.code, error.message, error.sender_fault));
  }
  for (std::size_t i = 0; i < sent_ids.size(); ++i) {
    if (seen[i] > 0) continue;
    BatchEntryFailure failure;
    failure.id = sent_ids[i];
    failure.status = DataLossError(Context(action) + ": the response says nothing about entry '" + sent_ids[i] + "'");
    failure.sender_fault = false;
    result.failed.push_back(std::move(failure));
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// JSON responses.

// The members a parse expects, with type checks that report instead of throwing.
class JsonReader {
 public:
  explicit JsonReader(std::string_view action) : action_(action) {}

  // *out stays nullopt when `key` is absent or null.
  Status String(const Json& object, const char* key, std::optional<std::string>* out) const {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return Status::Ok();
    if (!it->is_string()) return Malformed(action_, std::string(key) + " is " + it->type_name() + ", not a string");
    *out = it->get<std::string>();
    return Status::Ok();
  }
  // An absent or null member is an empty array.
  StatusOr<const Json*> Array(const Json& object, const char* key) const {
    static const Json* empty = new Json(Json::array());
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return empty;
    if (!it->is_array()) return Malformed(action_, std::string(key) + " is " + it->type_name() + ", not an array");
    return &*it;
  }
  // An absent or null member is an empty object.
  StatusOr<const Json*> Object(const Json& object, const char* key) const {
    static const Json* empty = new Json(Json::object());
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return empty;
    if (!it->is_object()) return Malformed(action_, std::string(key) + " is " + it->type_name() + ", not an object");
    return &*it;
  }
  Status ExpectObject(const Json& value, std::string_view what) const {
    if (value.is_object()) return Status::Ok();
    return Malformed(action_, std::string(what) + " is " + value.type_name() + ", not an object");
  }
  // A map of strings (Attributes).
  Status StringMap(const Json& object, const char* key, std::map<std::string, std::string>* out) const {
    StatusOr<const Json*> map = Object(object, key);
    if (!map.ok()) return map.status();
    for (const auto& [name, value] : (*map)->items()) {
      if (!value.is_string()) {
        return Malformed(action_, std::string(key) + "." + Bounded(name) + " is " + value.type_name() +
                                      ", not a string");
      }
      (*out)[name] = value.get<std::string>();
    }
    return Status::Ok();
  }

 private:
  std::string_view action_;
};

// Parses a JSON protocol response: the result object, or the error the response stands for. A
// blank 2xx body is an empty result when `allow_blank` (actions whose success carries nothing).
StatusOr<Json> JsonResult(std::string_view action, const HttpResponse& response, bool allow_blank = false) {
  std::string_view body = response.body;
  const bool blank = body.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (blank && Is2xx(response.status) && !allow_blank) return Malformed(action, "the body is empty");
  Json parsed = blank ? Json::object() : Json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::optional<std::string> query_error = response.Header("x-amzn-query-error");
  if (!parsed.is_discarded() && parsed.is_object()) {
    auto type = parsed.find("__type");
    if ((type != parsed.end() && type->is_string()) || (!Is2xx(response.status) && query_error)) {
      std::string code;
      if (type != parsed.end() && type->is_string()) code = type->get<std::string>();
      if (code.empty() && query_error) code = query_error->substr(0, query_error->find(';'));
      std::string message;
      for (const char* key : {"message", "Message"}) {
        auto it = parsed.find(key);
        if (it != parsed.end() && it->is_string()) {
          message = it->get<std::string>();
          break;
        }
      }
      return ServiceError(action, code, message, response.status);
    }
  }
  if (!Is2xx(response.status)) {
    if (query_error) {
      return ServiceError(action, query_error->substr(0, query_error->find(';')), "", response.status);
    }
    return NotSqsResponse(action, response, "");
  }
  if (parsed.is_discarded()) return NotSqsResponse(action, response, "the body is not JSON");
  if (!parsed.is_object()) {
    return Malformed(action, std::string("the body is a JSON ") + parsed.type_name() + ", not an object");
  }
  return parsed;
}

Status JsonSendResult(const JsonReader& r, const Json& object, RawSendResult* out) {
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "Id", &out->id));
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "MessageId", &out->message_id));
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "MD5OfMessageBody", &out->md5_of_body));
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "MD5OfMessageAttributes", &out->md5_of_attributes));
  return r.String(object, "SequenceNumber", &out->sequence_number);
}

// The "Successful" ids and "Failed" entries of a batch response.
Status JsonBatchErrors(std::string_view action, const JsonReader& r, const Json& result,
                       std::vector<RawBatchError>* errors) {
  StatusOr<const Json*> failed = r.Array(result, "Failed");
  if (!failed.ok()) return failed.status();
  for (const Json& entry : **failed) {
    TASKPIPE_RETURN_IF_ERROR(r.ExpectObject(entry, "a Failed entry"));
    RawBatchError error;
    TASKPIPE_RETURN_IF_ERROR(r.String(entry, "Id", &error.id));
    std::optional<std::string> code, message;
    TASKPIPE_RETURN_IF_ERROR(r.String(entry, "Code", &code));
    TASKPIPE_RETURN_IF_ERROR(r.String(entry, "Message", &message));
    error.code = code.value_or("");
    error.message = message.value_or("");
    // A boolean as SQS sends it; moto 5 sends the string "true" for SendMessageBatch.
    if (auto it = entry.find("SenderFault"); it != entry.end() && !it->is_null()) {
      if (it->is_boolean()) {
        error.sender_fault = it->get<bool>();
      } else if (it->is_string() && (*it == "true" || *it == "false")) {
        error.sender_fault = *it == "true";
      } else {
        return Malformed(action, std::string("SenderFault is ") + it->type_name() + ", not a boolean");
      }
    }
    errors->push_back(std::move(error));
  }
  return Status::Ok();
}

Status JsonMessage(const JsonReader& r, const Json& object, RawMessage* out) {
  TASKPIPE_RETURN_IF_ERROR(r.ExpectObject(object, "a message"));
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "MessageId", &out->message_id));
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "ReceiptHandle", &out->receipt_handle));
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "MD5OfBody", &out->md5_of_body));
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "Body", &out->body));
  TASKPIPE_RETURN_IF_ERROR(r.String(object, "MD5OfMessageAttributes", &out->md5_of_attributes));
  TASKPIPE_RETURN_IF_ERROR(r.StringMap(object, "Attributes", &out->system));
  StatusOr<const Json*> attributes = r.Object(object, "MessageAttributes");
  if (!attributes.ok()) return attributes.status();
  for (const auto& [name, value] : (*attributes)->items()) {
    TASKPIPE_RETURN_IF_ERROR(r.ExpectObject(value, "message attribute '" + Bounded(name) + "'"));
    RawAttribute attribute;
    TASKPIPE_RETURN_IF_ERROR(r.String(value, "DataType", &attribute.data_type));
    TASKPIPE_RETURN_IF_ERROR(r.String(value, "StringValue", &attribute.string_value));
    TASKPIPE_RETURN_IF_ERROR(r.String(value, "BinaryValue", &attribute.binary_base64));
    out->attributes[name] = std::move(attribute);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// XML (Query protocol) responses.

using tinyxml2::XMLDocument;
using tinyxml2::XMLElement;

// The text of child `name` of `parent`: nullopt when there is no such child, "" when it is empty.
std::optional<std::string> ChildText(const XMLElement* parent, const char* name) {
  const XMLElement* child = parent->FirstChildElement(name);
  if (child == nullptr) return std::nullopt;
  const char* text = child->GetText();
  return std::string(text == nullptr ? "" : text);
}

// Parses a Query protocol response into `doc` and returns its <ActionResult> element (or the
// root when the action has no result element), or the error the response stands for.
StatusOr<const XMLElement*> XmlResult(std::string_view action, const HttpResponse& response, XMLDocument& doc,
                                      bool allow_blank = false) {
  if (allow_blank && Is2xx(response.status) &&
      response.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return static_cast<const XMLElement*>(nullptr);
  }
  const tinyxml2::XMLError parse_error = doc.Parse(response.body.data(), response.body.size());
  const XMLElement* root = parse_error == tinyxml2::XML_SUCCESS ? doc.RootElement() : nullptr;
  if (root != nullptr) {
    // <ErrorResponse><Error>...</Error></ErrorResponse>, or the older <Response><Errors><Error>.
    const XMLElement* error = nullptr;
    if (std::string_view(root->Name()) == "ErrorResponse") {
      error = root->FirstChildElement("Error");
    } else if (std::string_view(root->Name()) == "Response" && root->FirstChildElement("Errors") != nullptr) {
      error = root->FirstChildElement("Errors")->FirstChildElement("Error");
    }
    if (error != nullptr) {
      std::string code = ChildText(error, "Code").value_or("");
      std::optional<std::string> message = ChildText(error, "Message");
      if (!message) message = ChildText(error, "message");
      // A Receiver fault without a known code is the service's, like a 5xx.
      int status = response.status;
      if (Is2xx(status) && ChildText(error, "Type").value_or("") == "Receiver") status = 500;
      return ServiceError(action, code, message.value_or(""), status);
    }
  }
  if (!Is2xx(response.status) || IsHtml(response)) return NotSqsResponse(action, response, "");
  if (root == nullptr) {
    return NotSqsResponse(action, response,
                          response.body.empty() ? std::string("the body is empty")
                                                : std::string("the body is not XML (") + doc.ErrorName() + ")");
  }
  const std::string expected = std::string(action) + "Response";
  if (root->Name() != expected) {
    return Malformed(action, "the root element is <" + Bounded(root->Name()) + ">, not <" + expected + ">");
  }
  const XMLElement* result = root->FirstChildElement((std::string(action) + "Result").c_str());
  return result != nullptr ? result : root;
}

// <Attribute><Name>n</Name><Value>v</Value></Attribute>... under `parent`.
Status XmlNameValues(std::string_view action, const XMLElement* parent, const char* element,
                     std::map<std::string, std::string>* out) {
  for (const XMLElement* a = parent->FirstChildElement(element); a != nullptr; a = a->NextSiblingElement(element)) {
    std::optional<std::string> name = ChildText(a, "Name");
    std::optional<std::string> value = ChildText(a, "Value");
    if (!name || !value) return Malformed(action, std::string("an <") + element + "> without <Name> or <Value>");
    (*out)[*name] = std::move(*value);
  }
  return Status::Ok();
}

void XmlSendResult(const XMLElement* e, RawSendResult* out) {
  out->id = ChildText(e, "Id");
  out->message_id = ChildText(e, "MessageId");
  out->md5_of_body = ChildText(e, "MD5OfMessageBody");
  out->md5_of_attributes = ChildText(e, "MD5OfMessageAttributes");
  out->sequence_number = ChildText(e, "SequenceNumber");
}

Status XmlBatchErrors(std::string_view action, const XMLElement* result, std::vector<RawBatchError>* errors) {
  for (const XMLElement* e = result->FirstChildElement("BatchResultErrorEntry"); e != nullptr;
       e = e->NextSiblingElement("BatchResultErrorEntry")) {
    RawBatchError error;
    error.id = ChildText(e, "Id");
    error.code = ChildText(e, "Code").value_or("");
    error.message = ChildText(e, "Message").value_or("");
    if (std::optional<std::string> fault = ChildText(e, "SenderFault")) {
      if (*fault != "true" && *fault != "false") {
        return Malformed(action, "SenderFault is '" + Bounded(*fault) + "', not true or false");
      }
      error.sender_fault = *fault == "true";
    }
    errors->push_back(std::move(error));
  }
  return Status::Ok();
}

Status XmlMessage(std::string_view action, const XMLElement* e, RawMessage* out) {
  out->message_id = ChildText(e, "MessageId");
  out->receipt_handle = ChildText(e, "ReceiptHandle");
  out->md5_of_body = ChildText(e, "MD5OfBody");
  out->body = ChildText(e, "Body");
  out->md5_of_attributes = ChildText(e, "MD5OfMessageAttributes");
  TASKPIPE_RETURN_IF_ERROR(XmlNameValues(action, e, "Attribute", &out->system));
  for (const XMLElement* a = e->FirstChildElement("MessageAttribute"); a != nullptr;
       a = a->NextSiblingElement("MessageAttribute")) {
    std::optional<std::string> name = ChildText(a, "Name");
    const XMLElement* value = a->FirstChildElement("Value");
    if (!name || value == nullptr) return Malformed(action, "a <MessageAttribute> without <Name> or <Value>");
    RawAttribute attribute;
    attribute.data_type = ChildText(value, "DataType");
    attribute.string_value = ChildText(value, "StringValue");
    attribute.binary_base64 = ChildText(value, "BinaryValue");
    out->attributes[*name] = std::move(attribute);
  }
  return Status::Ok();
}

// Runs a JSON parse body, turning an unexpected nlohmann exception into kDataLoss: the typed
// accessors above check types first, so this is a safety net only.
template <typename F>
auto Guarded(std::string_view action, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const nlohmann::json::exception& e) {
    return Malformed(action, e.what());
  }
}

std::vector<std::string> SendIds(const std::vector<SendBatchEntry>& entries) {
  std::vector<std::string> ids;
  ids.reserve(entries.size());
  for (const SendBatchEntry& entry : entries) ids.push_back(entry.id);
  return ids;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

StatusOr<SqsProtocol> ParseSqsProtocol(std::string_view name) {
  if (name == "json") return SqsProtocol::kJson;
  if (name == "query") return SqsProtocol::kQuery;
  return InvalidArgumentError("SQS protocol must be \"json\" or \"query\", not \"" + Bounded(name) + "\"");
}

SqsWireRequest BuildSendMessage(SqsProtocol protocol, std::string_view queue_url, const OutgoingMessage& message) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueUrl"] = queue_url;
    AddJsonMessage(message, body);
    return JsonRequest("SendMessage", body);
  }
  Form form("SendMessage", queue_url);
  AddFormMessage(message, "", form);
  return std::move(form).Done();
}

SqsWireRequest BuildSendMessageBatch(SqsProtocol protocol, std::string_view queue_url,
                                     const std::vector<SendBatchEntry>& entries) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueUrl"] = queue_url;
    OrderedJson list = OrderedJson::array();
    for (const SendBatchEntry& entry : entries) {
      OrderedJson e = OrderedJson::object();
      e["Id"] = entry.id;
      AddJsonMessage(entry.message, e);
      list.push_back(std::move(e));
    }
    body["Entries"] = std::move(list);
    return JsonRequest("SendMessageBatch", body);
  }
  Form form("SendMessageBatch", queue_url);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string prefix = "SendMessageBatchRequestEntry." + std::to_string(i + 1) + ".";
    form.Add(prefix + "Id", entries[i].id);
    AddFormMessage(entries[i].message, prefix, form);
  }
  return std::move(form).Done();
}

SqsWireRequest BuildReceiveMessage(SqsProtocol protocol, std::string_view queue_url, const ReceiveOptions& options) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueUrl"] = queue_url;
    body["MaxNumberOfMessages"] = options.max_messages;
    body["WaitTimeSeconds"] = options.wait.count();
    if (options.visibility_timeout) body["VisibilityTimeout"] = options.visibility_timeout->count();
    body["AttributeNames"] = OrderedJson::array({"All"});
    body["MessageSystemAttributeNames"] = OrderedJson::array({"All"});
    body["MessageAttributeNames"] = OrderedJson::array({"All"});
    return JsonRequest("ReceiveMessage", body);
  }
  Form form("ReceiveMessage", queue_url);
  form.Add("MaxNumberOfMessages", options.max_messages);
  form.Add("WaitTimeSeconds", options.wait.count());
  if (options.visibility_timeout) form.Add("VisibilityTimeout", options.visibility_timeout->count());
  form.Add("AttributeName.1", "All");
  form.Add("MessageSystemAttributeName.1", "All");
  form.Add("MessageAttributeName.1", "All");
  return std::move(form).Done();
}

SqsWireRequest BuildDeleteMessage(SqsProtocol protocol, std::string_view queue_url, std::string_view receipt_handle) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueUrl"] = queue_url;
    body["ReceiptHandle"] = receipt_handle;
    return JsonRequest("DeleteMessage", body);
  }
  Form form("DeleteMessage", queue_url);
  form.Add("ReceiptHandle", receipt_handle);
  return std::move(form).Done();
}

SqsWireRequest BuildDeleteMessageBatch(SqsProtocol protocol, std::string_view queue_url,
                                       const std::vector<DeleteBatchEntry>& entries) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueUrl"] = queue_url;
    OrderedJson list = OrderedJson::array();
    for (const DeleteBatchEntry& entry : entries) {
      list.push_back(OrderedJson{{"Id", entry.id}, {"ReceiptHandle", entry.receipt_handle}});
    }
    body["Entries"] = std::move(list);
    return JsonRequest("DeleteMessageBatch", body);
  }
  Form form("DeleteMessageBatch", queue_url);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string prefix = "DeleteMessageBatchRequestEntry." + std::to_string(i + 1) + ".";
    form.Add(prefix + "Id", entries[i].id);
    form.Add(prefix + "ReceiptHandle", entries[i].receipt_handle);
  }
  return std::move(form).Done();
}

SqsWireRequest BuildChangeMessageVisibility(SqsProtocol protocol, std::string_view queue_url,
                                            std::string_view receipt_handle, std::chrono::seconds timeout) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueUrl"] = queue_url;
    body["ReceiptHandle"] = receipt_handle;
    body["VisibilityTimeout"] = timeout.count();
    return JsonRequest("ChangeMessageVisibility", body);
  }
  Form form("ChangeMessageVisibility", queue_url);
  form.Add("ReceiptHandle", receipt_handle);
  form.Add("VisibilityTimeout", timeout.count());
  return std::move(form).Done();
}

SqsWireRequest BuildChangeMessageVisibilityBatch(SqsProtocol protocol, std::string_view queue_url,
                                                 const std::vector<ChangeVisibilityBatchEntry>& entries) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueUrl"] = queue_url;
    OrderedJson list = OrderedJson::array();
    for (const ChangeVisibilityBatchEntry& entry : entries) {
      list.push_back(OrderedJson{{"Id", entry.id},
                                 {"ReceiptHandle", entry.receipt_handle},
                                 {"VisibilityTimeout", entry.visibility_timeout.count()}});
    }
    body["Entries"] = std::move(list);
    return JsonRequest("ChangeMessageVisibilityBatch", body);
  }
  Form form("ChangeMessageVisibilityBatch", queue_url);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string prefix = "ChangeMessageVisibilityBatchRequestEntry." + std::to_string(i + 1) + ".";
    form.Add(prefix + "Id", entries[i].id);
    form.Add(prefix + "ReceiptHandle", entries[i].receipt_handle);
    form.Add(prefix + "VisibilityTimeout", entries[i].visibility_timeout.count());
  }
  return std::move(form).Done();
}

namespace {
constexpr std::array<const char*, 3> kCountAttributes = {
    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"};
}  // namespace

// The attributes GetQueueAttributes asks for: the counts, then the redrive policy.
constexpr std::array<const char*, 4> kRequestedAttributes = {kCountAttributes[0], kCountAttributes[1],
                                                             kCountAttributes[2], "RedrivePolicy"};

SqsWireRequest BuildGetQueueAttributes(SqsProtocol protocol, std::string_view queue_url) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueUrl"] = queue_url;
    body["AttributeNames"] = OrderedJson::array();
    for (const char* name : kRequestedAttributes) body["AttributeNames"].push_back(name);
    return JsonRequest("GetQueueAttributes", body);
  }
  Form form("GetQueueAttributes", queue_url);
  for (std::size_t i = 0; i < kRequestedAttributes.size(); ++i) {
    form.Add("AttributeName." + std::to_string(i + 1), kRequestedAttributes[i]);
  }
  return std::move(form).Done();
}

SqsWireRequest BuildGetQueueUrl(SqsProtocol protocol, std::string_view queue_name) {
  if (protocol == SqsProtocol::kJson) {
    OrderedJson body = OrderedJson::object();
    body["QueueName"] = queue_name;
    return JsonRequest("GetQueueUrl", body);
  }
  Form form("GetQueueUrl", "");
  form.Add("QueueName", queue_name);
  return std::move(form).Done();
}

// ---------------------------------------------------------------------------------------------

StatusOr<SendResult> ParseSendMessageResponse(SqsProtocol protocol, const HttpResponse& response,
                                              const OutgoingMessage& sent) {
  constexpr std::string_view kAction = "SendMessage";
  RawSendResult raw;
  if (protocol == SqsProtocol::kJson) {
    StatusOr<Json> result = JsonResult(kAction, response);
    if (!result.ok()) return result.status();
    TASKPIPE_RETURN_IF_ERROR(Guarded(kAction, [&] { return JsonSendResult(JsonReader(kAction), *result, &raw); }));
  } else {
    XMLDocument doc;
    StatusOr<const XMLElement*> result = XmlResult(kAction, response, doc);
    if (!result.ok()) return result.status();
    XmlSendResult(*result, &raw);
  }
  return FinishSend(kAction, std::move(raw), sent);
}

StatusOr<BatchResult<SendResult>> ParseSendMessageBatchResponse(SqsProtocol protocol, const HttpResponse& response,
                                                                const std::vector<SendBatchEntry>& sent) {
  constexpr std::string_view kAction = "SendMessageBatch";
  std::vector<RawSendResult> oks;
  std::vector<RawBatchError> errors;
  if (protocol == SqsProtocol::kJson) {
    StatusOr<Json> result = JsonResult(kAction, response);
    if (!result.ok()) return result.status();
    Status parsed = Guarded(kAction, [&]() -> Status {
      JsonReader r(kAction);
      StatusOr<const Json*> successful = r.Array(*result, "Successful");
      if (!successful.ok()) return successful.status();
      for (const Json& entry : **successful) {
        TASKPIPE_RETURN_IF_ERROR(r.ExpectObject(entry, "a Successful entry"));
        RawSendResult raw;
        TASKPIPE_RETURN_IF_ERROR(JsonSendResult(r, entry, &raw));
        oks.push_back(std::move(raw));
      }
      return JsonBatchErrors(kAction, r, *result, &errors);
    });
    if (!parsed.ok()) return parsed;
  } else {
    XMLDocument doc;
    StatusOr<const XMLElement*> result = XmlResult(kAction, response, doc);
    if (!result.ok()) return result.status();
    for (const XMLElement* e = (*result)->FirstChildElement("SendMessageBatchResultEntry"); e != nullptr;
         e = e->NextSiblingElement("SendMessageBatchResultEntry")) {
      RawSendResult raw;
      XmlSendResult(e, &raw);
      oks.push_back(std::move(raw));
    }
    TASKPIPE_RETURN_IF_ERROR(XmlBatchErrors(kAction, *result, &errors));
  }
  std::map<std::string, const OutgoingMessage*, std::less<>> by_id;
  for (const SendBatchEntry& entry : sent) by_id.emplace(entry.id, &entry.message);
  using Finish = std::function<StatusOr<SendResult>()>;
  std::vector<std::pair<std::string, Finish>> finishes;
  for (RawSendResult& raw : oks) {
    if (!raw.id) return Malformed(kAction, "a successful entry without Id");
    std::string id = *raw.id;
    auto it = by_id.find(id);
    const OutgoingMessage* message = it == by_id.end() ? nullptr : it->second;
    finishes.emplace_back(id, [raw = std::move(raw), message, kAction]() mutable -> StatusOr<SendResult> {
      // FinishBatch rejects unknown ids before calling this, so `message` is set.
      if (message == nullptr) return InternalError("unmatched batch entry");
      return FinishSend(kAction, std::move(raw), *message);
    });
  }
  return FinishBatch<SendResult>(kAction, SendIds(sent), std::move(finishes), std::move(errors));
}

StatusOr<std::vector<ReceivedMessage>> ParseReceiveMessageResponse(SqsProtocol protocol,
                                                                   const HttpResponse& response) {
  constexpr std::string_view kAction = "ReceiveMessage";
  std::vector<RawMessage> raws;
  if (protocol == SqsProtocol::kJson) {
    StatusOr<Json> result = JsonResult(kAction, response);
    if (!result.ok()) return result.status();
    Status parsed = Guarded(kAction, [&]() -> Status {
      JsonReader r(kAction);
      StatusOr<const Json*> messages = r.Array(*result, "Messages");
      if (!messages.ok()) return messages.status();
      for (const Json& m : **messages) {
        RawMessage raw;
        TASKPIPE_RETURN_IF_ERROR(JsonMessage(r, m, &raw));
        raws.push_back(std::move(raw));
      }
      return Status::Ok();
    });
    if (!parsed.ok()) return parsed;
  } else {
    XMLDocument doc;
    StatusOr<const XMLElement*> result = XmlResult(kAction, response, doc);
    if (!result.ok()) return result.status();
    for (const XMLElement* e = (*result)->FirstChildElement("Message"); e != nullptr;
         e = e->NextSiblingElement("Message")) {
      RawMessage raw;
      TASKPIPE_RETURN_IF_ERROR(XmlMessage(kAction, e, &raw));
      raws.push_back(std::move(raw));
    }
  }
  if (raws.size() > static_cast<std::size_t>(kMaxReceiveMessages)) {
    return Malformed(kAction, std::to_string(raws.size()) + " messages; at most " +
                                  std::to_string(kMaxReceiveMessages) + " were asked for");
  }
  std::vector<ReceivedMessage> messages;
  messages.reserve(raws.size());
  for (RawMessage& raw : raws) {
    StatusOr<ReceivedMessage> m = FinishMessage(std::move(raw));
    if (!m.ok()) return m.status();
    messages.push_back(std::move(*m));
  }
  return messages;
}

Status ParseEmptyResponse(SqsProtocol protocol, std::string_view action, const HttpResponse& response) {
  if (protocol == SqsProtocol::kJson) {
    StatusOr<Json> result = JsonResult(action, response, /*allow_blank=*/true);
    return result.ok() ? Status::Ok() : result.status();
  }
  XMLDocument doc;
  StatusOr<const XMLElement*> result = XmlResult(action, response, doc, /*allow_blank=*/true);
  return result.ok() ? Status::Ok() : result.status();
}

StatusOr<BatchResult<Empty>> ParseEmptyBatchResponse(SqsProtocol protocol, std::string_view action,
                                                     const HttpResponse& response,
                                                     const std::vector<std::string>& sent_ids) {
  std::vector<std::string> ok_ids;
  std::vector<RawBatchError> errors;
  if (protocol == SqsProtocol::kJson) {
    StatusOr<Json> result = JsonResult(action, response);
    if (!result.ok()) return result.status();
    Status parsed = Guarded(action, [&]() -> Status {
      JsonReader r(action);
      StatusOr<const Json*> successful = r.Array(*result, "Successful");
      if (!successful.ok()) return successful.status();
      for (const Json& entry : **successful) {
        TASKPIPE_RETURN_IF_ERROR(r.ExpectObject(entry, "a Successful entry"));
        std::optional<std::string> id;
        TASKPIPE_RETURN_IF_ERROR(r.String(entry, "Id", &id));
        if (!id) return Malformed(action, "a successful entry without Id");
        ok_ids.push_back(std::move(*id));
      }
      return JsonBatchErrors(action, r, *result, &errors);
    });
    if (!parsed.ok()) return parsed;
  } else {
    XMLDocument doc;
    StatusOr<const XMLElement*> result = XmlResult(action, response, doc);
    if (!result.ok()) return result.status();
    const std::string entry_name = std::string(action) + "ResultEntry";
    for (const XMLElement* e = (*result)->FirstChildElement(entry_name.c_str()); e != nullptr;
         e = e->NextSiblingElement(entry_name.c_str())) {
      std::optional<std::string> id = ChildText(e, "Id");
      if (!id) return Malformed(action, "a successful entry without Id");
      ok_ids.push_back(std::move(*id));
    }
    TASKPIPE_RETURN_IF_ERROR(XmlBatchErrors(action, *result, &errors));
  }
  using Finish = std::function<StatusOr<Empty>()>;
  std::vector<std::pair<std::string, Finish>> finishes;
  for (std::string& id : ok_ids) finishes.emplace_back(std::move(id), []() -> StatusOr<Empty> { return Empty{}; });
  return FinishBatch<Empty>(action, sent_ids, std::move(finishes), std::move(errors));
}

StatusOr<QueueAttributes> ParseGetQueueAttributesResponse(SqsProtocol protocol, const HttpResponse& response) {
  constexpr std::string_view kAction = "GetQueueAttributes";
  std::map<std::string, std::string> values;
  if (protocol == SqsProtocol::kJson) {
    StatusOr<Json> result = JsonResult(kAction, response);
    if (!result.ok()) return result.status();
    TASKPIPE_RETURN_IF_ERROR(
        Guarded(kAction, [&] { return JsonReader(kAction).StringMap(*result, "Attributes", &values); }));
  } else {
    XMLDocument doc;
    StatusOr<const XMLElement*> result = XmlResult(kAction, response, doc);
    if (!result.ok()) return result.status();
    TASKPIPE_RETURN_IF_ERROR(XmlNameValues(kAction, *result, "Attribute", &values));
  }
  QueueAttributes attributes;
  std::int64_t* targets[] = {&attributes.visible, &attributes.in_flight, &attributes.delayed};
  for (std::size_t i = 0; i < kCountAttributes.size(); ++i) {
    auto it = values.find(kCountAttributes[i]);
    if (it == values.end()) continue;
    std::optional<std::int64_t> n = ParseInt(it->second);
    if (!n || *n < 0) {
      return Malformed(kAction, std::string(kCountAttributes[i]) + " is not a count: '" + Bounded(it->second) + "'");
    }
    *targets[i] = *n;
  }
  // RedrivePolicy is a JSON object in a string: {"deadLetterTargetArn": "arn:...", "maxReceiveCount": 5},
  // the count a number or a string of digits, 1..1000
  // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html).
  if (auto it = values.find("RedrivePolicy"); it != values.end() && !it->second.empty()) {
    const Json policy = Json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    const Json* count = policy.is_object() && policy.contains("maxReceiveCount") ? &policy["maxReceiveCount"] : nullptr;
    std::optional<std::int64_t> n;
    if (count != nullptr && count->is_number_integer()) n = count->get<std::int64_t>();
    if (count != nullptr && count->is_string()) n = ParseInt(count->get<std::string>());
    if (!n || *n < 1 || *n > 1000) {
      return Malformed(kAction, "RedrivePolicy has no maxReceiveCount from 1 to 1000: '" + Bounded(it->second) + "'");
    }
    attributes.max_receive_count = static_cast<int>(*n);
  }
  return attributes;
}

StatusOr<std::string> ParseGetQueueUrlResponse(SqsProtocol protocol, const HttpResponse& response) {
  constexpr std::string_view kAction = "GetQueueUrl";
  std::optional<std::string> url;
  if (protocol == SqsProtocol::kJson) {
    StatusOr<Json> result = JsonResult(kAction, response);
    if (!result.ok()) return result.status();
    TASKPIPE_RETURN_IF_ERROR(Guarded(kAction, [&] { return JsonReader(kAction).String(*result, "QueueUrl", &url); }));
  } else {
    XMLDocument doc;
    StatusOr<const XMLElement*> result = XmlResult(kAction, response, doc);
    if (!result.ok()) return result.status();
    url = ChildText(*result, "QueueUrl");
  }
  if (!url || url->empty()) return Malformed(kAction, "no QueueUrl");
  if (!StartsWith(*url, "http://") && !StartsWith(*url, "https://")) {
    return Malformed(kAction, "QueueUrl '" + Bounded(*url) + "' is not an http(s) URL");
  }
  return std::move(*url);
}

// ---------------------------------------------------------------------------------------------

std::string NormalizeSqsErrorCode(std::string_view code) {
  // "Code;Sender" (x-amzn-query-error), "ns#Code" (JSON __type), "Code:http://..." (some JSON
  // services append a URL), "AWS.SimpleQueueService.Code" (Query).
  code = code.substr(0, code.find(';'));
  if (std::size_t hash = code.rfind('#'); hash != std::string_view::npos) code = code.substr(hash + 1);
  code = code.substr(0, code.find(':'));
  constexpr std::string_view kQueryPrefix = "AWS.SimpleQueueService.";
  if (StartsWith(code, kQueryPrefix)) code.remove_prefix(kQueryPrefix.size());
  while (!code.empty() && std::isspace(static_cast<unsigned char>(code.front()))) code.remove_prefix(1);
  while (!code.empty() && std::isspace(static_cast<unsigned char>(code.back()))) code.remove_suffix(1);
  if (code == "NonExistentQueue") return "QueueDoesNotExist";
  return std::string(code.substr(0, 256));
}

Status SqsErrorToStatus(std::string_view action, std::string_view code, std::string_view message,
                        int http_status) {
  std::string name = NormalizeSqsErrorCode(code);
  std::string text = Context(action) + ": " + (message.empty() ? (name.empty() ? "error" : name) : Bounded(message));
  if (http_status > 0) text += " (HTTP " + std::to_string(http_status) + ")";
  const StatusCode status_code = CodeFor(name, http_status);
  return Status(status_code, std::move(text), std::move(name));
}

}  // namespace taskpipe
