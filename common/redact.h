// Redaction of secrets in text that may reach a log line or an error message.
//
// One helper serves every place a secret could leak: webhook URLs (Slack and Discord webhook URLs
// are credentials), AWS secret keys and session tokens, bearer tokens, SigV4 signatures. Secrets
// are masked two ways: values registered with AddSecret() wherever they occur, and well-known
// shapes that need no registration (see Redact()).
//
// Thread-safe: AddSecret() and Redact() may be called concurrently.
#ifndef TASKPIPE_COMMON_REDACT_H_
#define TASKPIPE_COMMON_REDACT_H_

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace taskpipe {

inline constexpr std::string_view kRedacted = "***";

class Redactor {
 public:
  // Values shorter than this are not registered: masking every "ab" would garble the logs, and a
  // secret that short is no secret.
  static constexpr std::size_t kMinSecretLength = 6;

  // Masks every later occurrence of `secret` (exact bytes) in Redact()'s output.
  void AddSecret(std::string_view secret);

  // Returns `text` with registered secrets and these shapes masked:
  //  - the path of Slack webhook URLs (hooks.slack.com/services/..., /workflows/...) and the id and
  //    token of Discord webhook URLs (.../api[/vN]/webhooks/ID/TOKEN);
  //  - "Bearer TOKEN" and the whole value of an "Authorization:" header;
  //  - the values of X-Amz-Signature=, X-Amz-Security-Token=, X-Amz-Credential=, Signature=,
  //    aws_secret_access_key=, aws_session_token= and of JSON keys such as "SecretAccessKey",
  //    "SessionToken", "Token".
  std::string Redact(std::string_view text) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> secrets_;  // GUARDED_BY(mu_); longest first
};

// The shape-based part of Redactor::Redact() alone, for code that has no Redactor at hand.
std::string RedactKnownSecrets(std::string_view text);

// "https://hooks.slack.com/services/T0/B0/XXXX" -> "https://hooks.slack.com/***": scheme and host
// (with port) kept so that a log line still says where a request went. User info is dropped.
std::string RedactUrl(std::string_view url);

}  // namespace taskpipe

#endif  // TASKPIPE_COMMON_REDACT_H_
