#include "consumer/http_handler.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "common/quote.h"
#include "common/redact.h"
#include "consumer/output_tail.h"
#include "net/http_client.h"

namespace taskpipe {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kDefaultConnectTimeout{5000};

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

// RFC 9110 token characters (method and header names).
bool IsToken(std::string_view text) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    const unsigned char u = static_cast<unsigned char>(c);
    return std::isalnum(u) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool HasLineBreakOrNul(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// Header values we make from message data: no byte that could end a header line.
std::string HeaderSafe(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
  return out;
}

std::string TaskJson(const HandlerTask& task) {
  if (!task.task_json.empty()) return task.task_json;
  return task.task.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Replaces every occurrence of each of `secrets` (longest first) in `text` with kRedacted.
std::string MaskExact(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    for (std::size_t pos = 0; (pos = text.find(secret, pos)) != std::string::npos; pos += kRedacted.size()) {
      text.replace(pos, secret.size(), kRedacted);
    }
  }
  return text;
}

// The parts of `url` after scheme://host:port (path, query, fragment) and any user info: the
// parts that may be credentials.
std::vector<std::string> UrlSecrets(std::string_view url) {
  std::vector<std::string> out;
  const std::size_t scheme_end = url.find("://");
  const std::size_t host_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const std::size_t host_end = std::min(url.find_first_of("/?#", host_start), url.size());
  const std::string_view authority = url.substr(host_start, host_end - host_start);
  if (std::size_t at = authority.rfind('@'); at != std::string_view::npos)
    out.emplace_back(authority.substr(0, at));
  if (host_end < url.size()) out.emplace_back(url.substr(host_end));
  return out;
}

class HttpHandler final : public Handler {
 public:
  HttpHandler(const HandlerConfig& config, const HandlerDeps& deps)
      : config_(config), clock_(deps.clock), http_(deps.http) {
    bool has_content_type = false;
    for (const auto& [name, value] : config_.headers) {
      if (EqualsNoCase(name, "Content-Type")) has_content_type = true;
      if (value.size() >= Redactor::kMinSecretLength) secrets_.push_back(value);
    }
    if (!has_content_type) fixed_headers_.emplace_back("Content-Type", "application/json");
    for (std::string& part : UrlSecrets(config_.url)) {
      if (part.size() >= Redactor::kMinSecretLength) secrets_.push_back(std::move(part));
    }
    std::sort(secrets_.begin(), secrets_.end(), [](const std::string& a, const std::string& b) {
      return a.size() > b.size();  // longest first, so a secret that contains another is masked whole
    });
    for (const std::string& secret : secrets_) redactor_.AddSecret(secret);
  }

  HandlerOutcome Run(const HandlerTask& task, std::stop_token stop) override {
    if (stop.stop_requested()) return {CancelledError("cancelled before the request was sent"), ""};
    const Clock::duration left = task.deadline - clock_.Now();
    if (left <= Clock::duration::zero())
      return {DeadlineExceededError("timed out before the request was sent"), ""};
    const milliseconds timeout = std::max(
        milliseconds(1), std::min<milliseconds>(config_.timeout, std::chrono::floor<milliseconds>(left)));

    HttpRequest request{.method = config_.method, .url = config_.url};
    request.headers = fixed_headers_;
    auto add_ours = [&](std::string name, std::string value) {
      for (const auto& [configured, unused] : config_.headers) {
        if (EqualsNoCase(configured, name)) return;  // the configuration wins
      }
      request.headers.emplace_back(std::move(name), std::move(value));
    };
    add_ours("X-Taskpipe-Job", HeaderSafe(task.job));
    add_ours("X-Taskpipe-Message-Id", HeaderSafe(task.message_id));
    add_ours("X-Taskpipe-Receive-Count", std::to_string(task.receive_count));
    for (const auto& [name, value] : config_.headers) request.headers.emplace_back(name, value);
    request.body = TaskJson(task);
    request.timeout = timeout;
    request.connect_timeout = std::min(kDefaultConnectTimeout, timeout);

    // Not interruptible by `stop` (see the header): request.timeout bounds this call.
    StatusOr<HttpResponse> response = http_.Send(request);
    if (!response.ok()) {
      const Status& error = response.status();
      // The client names at most scheme://host:port; the redactor is a second line of defence
      // for header values and the URL's path.
      std::string message = redactor_.Redact(error.message());
      if (error.code() == StatusCode::kDeadlineExceeded) {
        return {DeadlineExceededError("timed out after " + FormatDuration(timeout) + ": " + message), ""};
      }
      return {Status(error.code(), std::move(message)), ""};
    }
    HandlerOutcome outcome;
    outcome.output = MaskExact(TailOf(response->body, kMaxHandlerOutputBytes), secrets_);
    // "HTTP 503" alone: the body is the output, not part of the message.
    outcome.status = HttpStatusToStatus(response->status, "");
    return outcome;
  }

 private:
  const HandlerConfig config_;
  Clock& clock_;
  HttpClient& http_;
  std::vector<std::pair<std::string, std::string>> fixed_headers_;
  std::vector<std::string> secrets_;  // longest first
  Redactor redactor_;
};

}  // namespace

StatusOr<std::unique_ptr<Handler>> NewHttpHandler(const HandlerConfig& config, const HandlerDeps& deps) {
  // Never quote the URL or a header value here: either may be a secret.
  if (config.url.empty()) return InvalidArgumentError("http handler: url is empty");
  const std::size_t scheme_end = config.url.find("://");
  const std::string_view scheme = scheme_end == std::string::npos
                                      ? std::string_view()
                                      : std::string_view(config.url).substr(0, scheme_end);
  if (!EqualsNoCase(scheme, "http") && !EqualsNoCase(scheme, "https")) {
    return InvalidArgumentError("http handler: url must start with http:// or https://");
  }
  const std::string_view rest = std::string_view(config.url).substr(scheme_end + 3);
  if (rest.empty() || rest.find_first_of("/?#") == 0)
    return InvalidArgumentError("http handler: url has no host");
  if (HasLineBreakOrNul(config.url))
    return InvalidArgumentError("http handler: url holds a line break or NUL byte");
  if (!IsToken(config.method)) {
    return InvalidArgumentError("http handler: method " + QuoteForError(config.method) +
                                " is not an HTTP method");
  }
  for (const auto& [name, value] : config.headers) {
    if (!IsToken(name))
      return InvalidArgumentError("http handler: invalid header name " + QuoteForError(name));
    if (HasLineBreakOrNul(value)) {
      return InvalidArgumentError("http handler: headers." + name + ": value holds a line break or NUL byte");
    }
  }
  if (config.timeout <= std::chrono::seconds(0)) {
    return InvalidArgumentError("http handler: timeout must be positive, got " +
                                FormatDuration(std::chrono::duration_cast<milliseconds>(config.timeout)));
  }
  return std::unique_ptr<Handler>(std::make_unique<HttpHandler>(config, deps));
}

}  // namespace taskpipe
