#include "common/redact.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace taskpipe {
namespace {

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Case-insensitive find of `needle` (lower case) in `text` from `pos`.
std::size_t FindNoCase(std::string_view text, std::string_view needle, std::size_t pos) {
  if (needle.empty() || text.size() < needle.size()) return std::string_view::npos;
  for (std::size_t i = pos; i + needle.size() <= text.size(); ++i) {
    bool match = true;
    for (std::size_t j = 0; j < needle.size(); ++j) {
      if (Lower(text[i + j]) != needle[j]) {
        match = false;
        break;
      }
    }
    if (match) return i;
  }
  return std::string_view::npos;
}

// Characters that end a token: white space, quotes, and the separators of query strings, JSON
// and headers.
bool EndsToken(char c) {
  return std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == '\'' || c == '&' || c == ',' ||
         c == ';' || c == '}' || c == ']' || c == ')' || c == '<' || c == '>' || c == '\\';
}

bool EndsUrl(char c) {
  return std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == '\'' || c == '<' || c == '>' ||
         c == '\\' || c == ')' || c == ']' || c == '}' || c == ',';
}

// Replaces, after each occurrence of `marker`, the token that follows (up to a char for which
// `ends` is true) with kRedacted. `skip` lets JSON markers step over `": "` before the value.
template <typename EndFn>
void MaskAfter(std::string& text, std::string_view marker, EndFn ends, bool skip_json_colon = false) {
  std::size_t pos = 0;
  while ((pos = FindNoCase(text, marker, pos)) != std::string::npos) {
    std::size_t start = pos + marker.size();
    if (skip_json_colon) {
      // "Key" : "value"  -> start at the first char of value
      while (start < text.size() && (text[start] == ' ' || text[start] == ':')) ++start;
      if (start >= text.size() || text[start] != '"') {
        pos = start;
        continue;
      }
      ++start;
    }
    std::size_t end = start;
    while (end < text.size() && !ends(text[end])) ++end;
    if (end > start && std::string_view(text).substr(start, end - start) != kRedacted) {
      text.replace(start, end - start, kRedacted);
      end = start + kRedacted.size();
    }
    pos = end;
  }
}

// Authorization header values run to the end of the line.
void MaskHeaderValue(std::string& text, std::string_view header) {
  std::size_t pos = 0;
  while ((pos = FindNoCase(text, header, pos)) != std::string::npos) {
    std::size_t start = pos + header.size();
    while (start < text.size() && text[start] == ' ') ++start;
    std::size_t end = start;
    while (end < text.size() && text[end] != '\r' && text[end] != '\n' && text[end] != '"') ++end;
    if (end > start) {
      text.replace(start, end - start, kRedacted);
      end = start + kRedacted.size();
    }
    pos = end;
  }
}

}  // namespace

std::string RedactKnownSecrets(std::string_view input) {
  std::string text(input);
  // Webhook URLs: everything after the fixed prefix identifies and authorises the webhook.
  MaskAfter(text, "hooks.slack.com/", EndsUrl);
  MaskAfter(text, "/webhooks/", EndsUrl);  // Discord: /api/webhooks/ID/TOKEN, /api/v10/webhooks/...
  MaskHeaderValue(text, "authorization:");
  MaskAfter(text, "bearer ", EndsToken);
  static constexpr std::array<std::string_view, 7> kQueryKeys = {
      "x-amz-signature=", "x-amz-security-token=", "x-amz-credential=", "signature=",
      "aws_secret_access_key=", "aws_session_token=", "awssecretaccesskey="};
  for (std::string_view key : kQueryKeys) MaskAfter(text, key, EndsToken);
  static constexpr std::array<std::string_view, 5> kJsonKeys = {
      "\"secretaccesskey\"", "\"sessiontoken\"", "\"token\"", "\"password\"", "\"authorization\""};
  for (std::string_view key : kJsonKeys) MaskAfter(text, key, EndsToken, /*skip_json_colon=*/true);
  return text;
}

void Redactor::AddSecret(std::string_view secret) {
  if (secret.size() < kMinSecretLength) return;
  std::lock_guard<std::mutex> guard(mu_);
  if (std::find(secrets_.begin(), secrets_.end(), secret) != secrets_.end()) return;
  secrets_.emplace_back(secret);
  // Longest first, so that a secret containing another is masked whole.
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string Redactor::Redact(std::string_view input) const {
  std::string text(input);
  {
    std::lock_guard<std::mutex> guard(mu_);
    for (const std::string& secret : secrets_) {
      std::size_t pos = 0;
      while ((pos = text.find(secret, pos)) != std::string::npos) {
        text.replace(pos, secret.size(), kRedacted);
        pos += kRedacted.size();
      }
    }
  }
  return RedactKnownSecrets(text);
}

std::string RedactUrl(std::string_view url) {
  std::size_t scheme_end = url.find("://");
  std::size_t host_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  std::size_t host_end = url.find_first_of("/?#", host_start);
  std::string_view authority = url.substr(host_start, host_end == std::string_view::npos
                                                           ? std::string_view::npos
                                                           : host_end - host_start);
  if (std::size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string out(url.substr(0, host_start));
  out += authority;
  if (host_end != std::string_view::npos) {
    out += '/';
    // A bare trailing "/" hides nothing; any path, query or fragment may.
    if (url.substr(host_end) != "/") out += kRedacted;
  }
  return out;
}

}  // namespace taskpipe
