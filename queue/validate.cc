#include "queue/validate.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

namespace taskpipe {
namespace {

// Sources for the rules below:
//  - batch entry ids, EmptyBatchRequest etc.:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
//  - ReceiveMessage limits:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
//  - body characters, InvalidMessageContents:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
//  - attribute names, data types, MD5 algorithm:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html
//  - 1 MiB including attributes:
//    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html

constexpr std::size_t kMaxAttributeNameLength = 256;
constexpr std::size_t kMaxAttributeTypeLength = 256;
constexpr int kMaxNumberDigits = 38;

Status InvalidParameter(std::string message) {
  return InvalidArgumentError(std::move(message), "InvalidParameterValue");
}

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool IsAttributeNameChar(char c) { return IsIdChar(c) || c == '.'; }

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    char b = prefix[i];
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

Status ValidateAttributeName(const std::string& name) {
  if (name.empty()) return InvalidParameter("message attribute name must not be empty");
  if (name.size() > kMaxAttributeNameLength) {
    return InvalidParameter("message attribute name '" + name.substr(0, 32) + "...' is longer than " +
                            std::to_string(kMaxAttributeNameLength) + " characters");
  }
  if (!std::all_of(name.begin(), name.end(), IsAttributeNameChar)) {
    return InvalidParameter("message attribute name '" + name +
                            "' may contain only A-Z, a-z, 0-9, '_', '-' and '.'");
  }
  if (StartsWithIgnoreCase(name, "aws.") || StartsWithIgnoreCase(name, "amazon.")) {
    return InvalidParameter("message attribute name '" + name +
                            "' must not start with the reserved prefix 'AWS.' or 'Amazon.'");
  }
  if (name.front() == '.' || name.back() == '.') {
    return InvalidParameter("message attribute name '" + name + "' must not start or end with '.'");
  }
  if (name.find("..") != std::string::npos) {
    return InvalidParameter("message attribute name '" + name + "' must not contain '..'");
  }
  return Status::Ok();
}

// "Number" values: an optional sign, digits with an optional decimal point, an optional exponent;
// at most 38 significant digits (leading and trailing zeros do not count), magnitude between
// 10^-128 and 10^+126, or zero.
bool IsValidNumber(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  std::string digits;
  long integer_digits = -1;  // digits before the decimal point; -1 until a point is seen
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      if (integer_digits >= 0) return false;
      integer_digits = static_cast<long>(digits.size());
    } else if (c >= '0' && c <= '9') {
      if (digits.size() > 1000) return false;
      digits.push_back(c);
    } else {
      break;
    }
  }
  if (digits.empty()) return false;
  if (integer_digits < 0) integer_digits = static_cast<long>(digits.size());
  long exponent = 0;
  if (i < s.size()) {
    if (s[i] != 'e' && s[i] != 'E') return false;
    ++i;
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
    if (i == s.size()) return false;
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      if (exponent < 100000) exponent = exponent * 10 + (s[i] - '0');
    }
    if (negative) exponent = -exponent;
  }
  const std::size_t first = digits.find_first_not_of('0');
  if (first == std::string::npos) return true;  // zero
  const std::size_t last = digits.find_last_not_of('0');
  if (last - first + 1 > static_cast<std::size_t>(kMaxNumberDigits)) return false;
  // The value is d.ddd x 10^magnitude.
  const long magnitude = integer_digits - 1 - static_cast<long>(first) + exponent;
  return magnitude >= -128 && magnitude <= 126;
}

Status ValidateAttribute(const std::string& name, const MessageAttribute& attribute) {
  TASKPIPE_RETURN_IF_ERROR(ValidateAttributeName(name));
  const std::string& type = attribute.data_type;
  if (type.empty()) return InvalidParameter("message attribute '" + name + "' has no data type");
  if (type.size() > kMaxAttributeTypeLength) {
    return InvalidParameter("message attribute '" + name + "' has a data type longer than " +
                            std::to_string(kMaxAttributeTypeLength) + " characters");
  }
  std::string_view base = type;
  std::string_view custom;
  if (std::size_t dot = base.find('.'); dot != std::string_view::npos) {
    custom = base.substr(dot + 1);
    base = base.substr(0, dot);
    if (custom.empty()) {
      return InvalidParameter("message attribute '" + name + "' has data type '" + type +
                              "' with an empty custom label");
    }
  }
  if (base != "String" && base != "Number" && base != "Binary") {
    return InvalidParameter("message attribute '" + name + "' has data type '" + type +
                            "'; it must be String, Number or Binary, optionally with a .label");
  }
  if (!IsValidMessageText(custom)) {
    return InvalidParameter("message attribute '" + name +
                            "' has a data type with characters SQS does not accept");
  }
  if (base == "Binary") {
    if (attribute.binary_value.empty()) {
      return InvalidParameter("message attribute '" + name + "' (Binary) has an empty value");
    }
    return Status::Ok();
  }
  if (attribute.string_value.empty()) {
    return InvalidParameter("message attribute '" + name + "' (" + type + ") has an empty value");
  }
  if (base == "Number" && !IsValidNumber(attribute.string_value)) {
    return InvalidParameter("message attribute '" + name + "' (Number) has value '" +
                            attribute.string_value.substr(0, 64) +
                            "', which is not a number of at most 38 digits between 10^-128 and 10^126");
  }
  if (!IsValidMessageText(attribute.string_value)) {
    return InvalidParameter("message attribute '" + name +
                            "' has a value with characters SQS does not accept (or invalid UTF-8)");
  }
  return Status::Ok();
}

// OpenSSL 3: fetch the MD5 implementation once (implicit fetches on every call take a global
// lock), and reuse one digest context per thread instead of allocating one per message.
const EVP_MD* Md5Algorithm() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "MD5", nullptr);  // never freed: process-wide
    return fetched != nullptr ? fetched : EVP_md5();
  }();
  return md;
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

EVP_MD_CTX* ThreadMdContext() {
  thread_local std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  return ctx.get();
}

// "00" .. "ff": two hex digits per byte with one lookup.
struct HexPairs {
  std::array<char, 512> chars{};
  constexpr HexPairs() {
    constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 256; ++i) {
      chars[static_cast<std::size_t>(2 * i)] = kHex[i >> 4];
      chars[static_cast<std::size_t>(2 * i + 1)] = kHex[i & 0xf];
    }
  }
};
constexpr HexPairs kHexPairs;

std::string HexDigest(const unsigned char* digest, unsigned int length) {
  std::string out(2 * length, '0');
  for (unsigned int i = 0; i < length; ++i) std::memcpy(&out[2 * i], &kHexPairs.chars[2 * digest[i]], 2);
  return out;
}

// Incremental MD5 over the thread's context. Returns "" if MD5 is unavailable (e.g. a FIPS-only
// OpenSSL configuration); callers treat the checksum as informational.
class Md5 {
 public:
  Md5() : ctx_(ThreadMdContext()) {
    ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_, Md5Algorithm(), nullptr) == 1;
  }
  void Update(const void* data, std::size_t size) {
    if (ok_ && size > 0) ok_ = EVP_DigestUpdate(ctx_, data, size) == 1;
  }
  void UpdateLengthPrefixed(std::string_view bytes) {
    const auto n = static_cast<std::uint32_t>(bytes.size());
    const unsigned char length[4] = {static_cast<unsigned char>(n >> 24),
                                     static_cast<unsigned char>(n >> 16),
                                     static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
    Update(length, sizeof(length));
    Update(bytes.data(), bytes.size());
  }
  std::string HexFinal() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_, digest, &length) != 1) return "";
    return HexDigest(digest, length);
  }

 private:
  EVP_MD_CTX* ctx_;
  bool ok_ = false;
};

}  // namespace

Status ValidateBatchEntryIdViews(std::span<const std::string_view> ids) {
  if (ids.empty()) {
    return InvalidArgumentError("a batch request must contain at least one entry",
                                "EmptyBatchRequest");
  }
  if (ids.size() > static_cast<std::size_t>(kMaxBatchEntries)) {
    return InvalidArgumentError("a batch request may contain at most " +
                                    std::to_string(kMaxBatchEntries) + " entries, got " +
                                    std::to_string(ids.size()),
                                "TooManyEntriesInBatchRequest");
  }
  for (std::string_view id : ids) {
    if (id.empty() || id.size() > kMaxBatchEntryIdLength ||
        !std::all_of(id.begin(), id.end(), IsIdChar)) {
      return InvalidArgumentError("batch entry id '" + std::string(id.substr(0, kMaxBatchEntryIdLength + 1)) +
                                      "' must be 1-80 characters of A-Z, a-z, 0-9, '-' and '_'",
                                  "InvalidBatchEntryId");
    }
  }
  // At most 10 ids: a quadratic scan beats building a set.
  for (std::size_t i = 0; i < ids.size(); ++i) {
    for (std::size_t j = i + 1; j < ids.size(); ++j) {
      // Ids usually differ in their last character ("e0", "e1"): check that before memcmp.
      if (ids[i].size() == ids[j].size() && ids[i].back() == ids[j].back() && ids[i] == ids[j]) {
        return InvalidArgumentError("batch entry id '" + std::string(ids[i]) + "' is used more than once",
                                    "BatchEntryIdsNotDistinct");
      }
    }
  }
  return Status::Ok();
}

Status ValidateBatchEntryIds(const std::vector<std::string>& ids) {
  if (ids.size() > static_cast<std::size_t>(kMaxBatchEntries)) {
    return InvalidArgumentError("a batch request may contain at most " +
                                    std::to_string(kMaxBatchEntries) + " entries, got " +
                                    std::to_string(ids.size()),
                                "TooManyEntriesInBatchRequest");
  }
  std::array<std::string_view, kMaxBatchEntries> views;
  for (std::size_t i = 0; i < ids.size(); ++i) views[i] = ids[i];
  return ValidateBatchEntryIdViews(std::span<const std::string_view>(views.data(), ids.size()));
}

Status ValidateVisibilityTimeout(std::chrono::seconds timeout) {
  if (timeout < std::chrono::seconds::zero() || timeout > kMaxVisibilityTimeout) {
    return InvalidParameter("visibility timeout must be between 0 and " +
                            std::to_string(kMaxVisibilityTimeout.count()) + " seconds (12 hours), got " +
                            std::to_string(timeout.count()));
  }
  return Status::Ok();
}

Status ValidateReceiveOptions(const ReceiveOptions& options) {
  if (options.max_messages < 1 || options.max_messages > kMaxReceiveMessages) {
    return InvalidParameter("MaxNumberOfMessages must be between 1 and " +
                            std::to_string(kMaxReceiveMessages) + ", got " +
                            std::to_string(options.max_messages));
  }
  if (options.wait < std::chrono::seconds::zero() || options.wait > kMaxWaitTime) {
    return InvalidParameter("WaitTimeSeconds must be between 0 and " +
                            std::to_string(kMaxWaitTime.count()) + ", got " +
                            std::to_string(options.wait.count()));
  }
  if (options.visibility_timeout.has_value()) {
    return ValidateVisibilityTimeout(*options.visibility_timeout);
  }
  return Status::Ok();
}

bool IsValidMessageText(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char* end = p + text.size();
  while (p < end) {
    // Fast path: eight printable ASCII bytes at a time (no byte >= 0x80 and none < 0x20).
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
      constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
      if ((w & kHigh) != 0) break;  // a non-ASCII byte
      // With bit 7 forced on, subtracting 0x20 from a byte cannot borrow from its neighbour, and
      // leaves bit 7 set iff the byte was >= 0x20.
      if ((((w | kHigh) - 0x20 * kOnes) & kHigh) != kHigh) break;  // a control character
      p += 8;
    }
    if (p >= end) break;
    const unsigned char c = *p;
    if (c < 0x80) {
      if (c < 0x20 && c != 0x9 && c != 0xA && c != 0xD) return false;
      ++p;
      continue;
    }
    std::uint32_t cp;
    int extra;
    if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      extra = 2;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      extra = 3;
    } else {
      return false;  // a continuation byte where a character should start, or 0xF8..0xFF
    }
    if (end - p <= extra) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      if ((p[k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[k] & 0x3F);
    }
    static constexpr std::uint32_t kMinForLength[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[extra]) return false;  // overlong encoding
    const bool allowed = (cp >= 0x20 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
                         (cp >= 0x10000 && cp <= 0x10FFFF);
    if (!allowed) return false;  // surrogates, U+FFFE/U+FFFF, beyond U+10FFFF
    p += extra + 1;
  }
  return true;
}

bool IsBinaryDataType(std::string_view data_type) {
  return data_type.substr(0, 6) == "Binary" && (data_type.size() == 6 || data_type[6] == '.');
}

std::size_t MessageSize(const OutgoingMessage& message) {
  std::size_t size = message.body.size();
  for (const auto& [name, attribute] : message.attributes) {
    size += name.size() + attribute.data_type.size() +
            (IsBinaryDataType(attribute.data_type) ? attribute.binary_value.size()
                                                   : attribute.string_value.size());
  }
  return size;
}

Status ValidateOutgoingMessage(const OutgoingMessage& message) {
  if (message.delay < std::chrono::seconds::zero() || message.delay > kMaxDelay) {
    return InvalidParameter("DelaySeconds must be between 0 and " + std::to_string(kMaxDelay.count()) +
                            ", got " + std::to_string(message.delay.count()));
  }
  if (message.attributes.size() > static_cast<std::size_t>(kMaxMessageAttributes)) {
    return InvalidParameter("a message may have at most " + std::to_string(kMaxMessageAttributes) +
                            " attributes, got " + std::to_string(message.attributes.size()));
  }
  if (const std::size_t size = MessageSize(message); size > kMaxMessageBytes) {
    return InvalidParameter("message size (body and attributes) is " + std::to_string(size) +
                            " bytes; the limit is " + std::to_string(kMaxMessageBytes) + " bytes");
  }
  if (message.body.empty()) {
    return InvalidParameter("message body must not be empty (SQS requires at least one character)");
  }
  for (const auto& [name, attribute] : message.attributes) {
    TASKPIPE_RETURN_IF_ERROR(ValidateAttribute(name, attribute));
  }
  if (!IsValidMessageText(message.body)) {
    return InvalidArgumentError(
        "message body is not valid UTF-8 or contains characters outside #x9 | #xA | #xD | "
        "#x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF",
        "InvalidMessageContents");
  }
  return Status::Ok();
}

std::string Md5OfBody(std::string_view body) {
  Md5 md5;
  md5.Update(body.data(), body.size());
  return md5.HexFinal();
}

std::string Md5OfMessageAttributes(const MessageAttributes& attributes) {
  if (attributes.empty()) return "";
  Md5 md5;
  // std::map iterates in ascending byte order of the names, which is the order SQS sorts by.
  for (const auto& [name, attribute] : attributes) {
    md5.UpdateLengthPrefixed(name);
    md5.UpdateLengthPrefixed(attribute.data_type);
    if (IsBinaryDataType(attribute.data_type)) {
      const unsigned char transport = 2;
      md5.Update(&transport, 1);
      md5.UpdateLengthPrefixed(attribute.binary_value);
    } else {
      const unsigned char transport = 1;
      md5.Update(&transport, 1);
      md5.UpdateLengthPrefixed(attribute.string_value);
    }
  }
  return md5.HexFinal();
}

}  // namespace taskpipe
