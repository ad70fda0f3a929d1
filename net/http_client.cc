#include "net/http_client.h"

#include <cctype>

#include "common/redact.h"

namespace taskpipe {
namespace {

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

constexpr std::size_t kMaxExcerptBytes = 256;

// The first `max` bytes of `text`, cut back so that a UTF-8 sequence is not split.
std::string_view Excerpt(std::string_view text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t end = max;
  // Step back over continuation bytes (10xxxxxx) and the lead byte they belong to.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsNoCase(key, name)) return value;
  }
  return std::nullopt;
}

std::vector<std::string> HttpResponse::HeaderValues(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [key, value] : headers) {
    if (EqualsNoCase(key, name)) out.push_back(value);
  }
  return out;
}

Status HttpStatusToStatus(int http_status, std::string_view body_excerpt) {
  if (http_status >= 200 && http_status <= 299) return Status::Ok();
  std::string message = "HTTP " + std::to_string(http_status);
  std::string_view excerpt = Excerpt(body_excerpt, kMaxExcerptBytes);
  if (!excerpt.empty()) {
    message += ": ";
    message += RedactKnownSecrets(excerpt);
    if (excerpt.size() < body_excerpt.size()) message += "...";
  }
  if (http_status == 429) return ResourceExhaustedError(std::move(message));
  if (http_status >= 500 && http_status <= 599) return UnavailableError(std::move(message));
  if (http_status == 401 || http_status == 403) return PermissionDeniedError(std::move(message));
  if (http_status == 404) return NotFoundError(std::move(message));
  if (http_status >= 400 && http_status <= 499) return InvalidArgumentError(std::move(message));
  return Status(StatusCode::kUnknown, "unexpected " + message);
}

}  // namespace taskpipe
