#include "aws/credentials.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "common/quote.h"
#include "common/redact.h"
#include "common/time_format.h"
#include "net/curl_http_client.h"
#include "net/http_client.h"

namespace taskpipe {
namespace {

using WallTime = std::chrono::system_clock::time_point;

// Credentials as a source delivers them: temporary ones carry their expiration.
struct Fetched {
  AwsCredentials credentials;
  std::optional<WallTime> expiration;
};

// What a source found: credentials, or why it does not apply (a line of the kUnauthenticated
// message). Errors (the source applies but failed) travel in the StatusOr around it.
struct Outcome {
  std::optional<Fetched> fetched;
  std::string not_applicable;
};

Outcome Found(Fetched fetched) { return Outcome{.fetched = std::move(fetched), .not_applicable = ""}; }
Outcome NotApplicable(std::string why) {
  return Outcome{.fetched = std::nullopt, .not_applicable = std::move(why)};
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimSpace(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

bool HasControlChars(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// What the chain's sources share: the options and the HTTP client.
class ChainContext {
 public:
  explicit ChainContext(CredentialsChainOptions options) : options_(std::move(options)) {}

  const CredentialsChainOptions& options() const { return options_; }
  Clock& clock() const { return *options_.clock; }

  // The variable's value; "" counts as unset, as in the SDKs.
  std::optional<std::string> Env(const std::string& name) const {
    std::optional<std::string> value = options_.getenv ? options_.getenv(name) : SystemGetenv(name);
    if (value && value->empty()) return std::nullopt;
    return value;
  }

  AwsEnvironment environment() const {
    return AwsEnvironment{.getenv = options_.getenv, .read_file = options_.read_file, .home = options_.home};
  }

  StatusOr<std::string> ReadFile(const std::string& path) const {
    return options_.read_file ? options_.read_file(path) : ReadLocalFile(path);
  }

  // REQUIRES: called by the fetching thread only (ChainProvider's `fetching_`), so the lazily
  // created client needs no lock.
  StatusOr<HttpClient*> Http() {
    if (options_.http != nullptr) return options_.http;
    if (!owned_http_) {
      // Metadata endpoints are link-local: never through a proxy, whatever http_proxy says.
      StatusOr<std::unique_ptr<HttpClient>> client = NewCurlHttpClient({.proxy = ""});
      if (!client.ok()) return client.status();
      owned_http_ = std::move(client).value();
    }
    return owned_http_.get();
  }

 private:
  CredentialsChainOptions options_;
  std::unique_ptr<HttpClient> owned_http_;
};

// One link of the chain. Fetch() is called by one thread at a time.
class Source {
 public:
  virtual ~Source() = default;
  virtual std::string name() const = 0;
  virtual StatusOr<Outcome> Fetch() = 0;
};

// {AccessKeyId, SecretAccessKey, Token, Expiration[, Code]}: the shape both the container endpoint
// and IMDS answer with. Messages name fields, never their values (but for Code, which is not
// secret and says what went wrong).
StatusOr<Fetched> ParseCredentialsJson(std::string_view body, const std::string& what) {
  const nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return UnavailableError(what + ": response is not a JSON object (" + std::to_string(body.size()) +
                            " bytes)");
  }
  const auto field = [&](const char* key) -> StatusOr<std::optional<std::string>> {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return std::optional<std::string>();
    if (!it->is_string()) return UnavailableError(what + ": response field \"" + key + "\" is not a string");
    return std::optional<std::string>(it->get<std::string>());
  };
  StatusOr<std::optional<std::string>> code = field("Code");
  if (!code.ok()) return code.status();
  if (code->has_value() && **code != "Success") {
    return UnavailableError(what + ": response Code is " + QuoteForError(**code) + ", not \"Success\"");
  }
  Fetched fetched;
  for (auto [key, out] :
       {std::pair<const char*, std::string*>{"AccessKeyId", &fetched.credentials.access_key_id},
        {"SecretAccessKey", &fetched.credentials.secret_access_key},
        {"Token", &fetched.credentials.session_token}}) {
    StatusOr<std::optional<std::string>> value = field(key);
    if (!value.ok()) return value.status();
    const bool required = std::strcmp(key, "Token") != 0;
    if (required && (!value->has_value() || (*value)->empty())) {
      return UnavailableError(what + ": response has no \"" + std::string(key) + "\"");
    }
    if (value->has_value()) *out = std::move(**value);
  }
  StatusOr<std::optional<std::string>> expiration = field("Expiration");
  if (!expiration.ok()) return expiration.status();
  if (expiration->has_value()) {
    StatusOr<WallTime> when = ParseRfc3339(**expiration);
    // The value is left out of the message, like every other field's.
    if (!when.ok()) return UnavailableError(what + ": response field \"Expiration\" is not an RFC 3339 time");
    fetched.expiration = *when;
  }
  return fetched;
}

// 1. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
// https://docs.aws.amazon.com/sdkref/latest/guide/feature-static-credentials.html
class EnvironmentSource final : public Source {
 public:
  explicit EnvironmentSource(const ChainContext& context) : context_(context) {}
  std::string name() const override { return "environment"; }

  StatusOr<Outcome> Fetch() override {
    std::optional<std::string> id = context_.Env("AWS_ACCESS_KEY_ID");
    std::optional<std::string> secret = context_.Env("AWS_SECRET_ACCESS_KEY");
    if (!id && !secret) return NotApplicable("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
    if (!secret) {
      return InvalidArgumentError(
          "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither");
    }
    if (!id) {
      return InvalidArgumentError(
          "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither");
    }
    return Found({.credentials = {.access_key_id = std::move(*id),
                                  .secret_access_key = std::move(*secret),
                                  .session_token = context_.Env("AWS_SESSION_TOKEN").value_or("")},
                  .expiration = std::nullopt});
  }

 private:
  const ChainContext& context_;
};

// 2. Static keys in the shared credentials/config files.
// https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html
class ProfileSource final : public Source {
 public:
  explicit ProfileSource(const ChainContext& context) : context_(context) {}
  std::string name() const override { return "shared files"; }

  StatusOr<Outcome> Fetch() override {
    StatusOr<AwsProfile> profile = LoadAwsProfile(context_.environment());
    if (!profile.ok()) return profile.status();
    const std::string which = "profile " + QuoteForError(profile->name);
    if (!profile->found()) {
      if (profile->name_from_env) {
        // The user asked for this profile: falling through to another identity would surprise.
        return InvalidArgumentError(which + " (from AWS_PROFILE) not found in " + profile->DescribeFiles());
      }
      return NotApplicable("no " + which + " in " + profile->DescribeFiles());
    }
    const auto non_empty = [&](const char* key) {
      std::optional<std::string> value = profile->Get(key);
      if (value && value->empty()) value.reset();
      return value;
    };
    std::optional<std::string> id = non_empty("aws_access_key_id");
    std::optional<std::string> secret = non_empty("aws_secret_access_key");
    if (id && secret) {
      return Found({.credentials = {.access_key_id = std::move(*id),
                                    .secret_access_key = std::move(*secret),
                                    .session_token = non_empty("aws_session_token").value_or("")},
                    .expiration = std::nullopt});
    }
    if (id || secret) {
      return InvalidArgumentError(which + " has " +
                                  (id ? "aws_access_key_id but no aws_secret_access_key"
                                      : "aws_secret_access_key but no aws_access_key_id") +
                                  " (files: " + profile->DescribeFiles() + ")");
    }
    // No static keys. Some settings name a kind of credentials taskpipe does not fetch; say so
    // rather than let a later source silently supply another identity.
    for (const char* key : {"role_arn", "credential_process", "sso_session", "sso_start_url",
                            "web_identity_token_file", "login_session"}) {
      if (profile->Get(key)) {
        std::string message = which + " uses " + key +
                              ", which taskpipe does not support: give it aws_access_key_id and "
                              "aws_secret_access_key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
        if (profile->name_from_env) return InvalidArgumentError(std::move(message));
        return NotApplicable(std::move(message));
      }
    }
    return NotApplicable(which + " has no aws_access_key_id (files: " + profile->DescribeFiles() + ")");
  }

 private:
  const ChainContext& context_;
};

// Whether AWS_CONTAINER_CREDENTIALS_FULL_URI may be used: https to any host; http only to a
// loopback address, the ECS host 169.254.170.2 or the EKS Pod Identity hosts 169.254.170.23 and
// fd00:ec2::23 (https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html,
// https://docs.rs/aws-config/latest/aws_config/ecs/index.html). Host names other than "localhost"
// are refused over http: the SDKs resolve them and check every address, which needs a DNS lookup
// this check does not make.
Status CheckFullUri(const std::string& url) {
  const std::string lower = Lower(url.substr(0, 8));
  if (lower.rfind("https://", 0) == 0) return Status::Ok();
  if (lower.rfind("http://", 0) != 0) {
    return InvalidArgumentError("AWS_CONTAINER_CREDENTIALS_FULL_URI must be an http:// or https:// URL");
  }
  std::string_view authority = std::string_view(url).substr(7);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (std::size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string host;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgumentError("AWS_CONTAINER_CREDENTIALS_FULL_URI has a malformed IPv6 host");
    }
    host = std::string(authority.substr(1, close - 1));
  } else {
    host = std::string(authority.substr(0, authority.find(':')));
  }
  bool allowed = Lower(host) == "localhost";
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    const std::uint32_t ip = ntohl(v4.s_addr);
    allowed = (ip >> 24) == 127 || ip == 0xA9FEAA02u /* 169.254.170.2 */ || ip == 0xA9FEAA17u /* .23 */;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    in6_addr eks{};
    inet_pton(AF_INET6, "fd00:ec2::23", &eks);
    allowed = IN6_IS_ADDR_LOOPBACK(&v6) || std::memcmp(&v6, &eks, sizeof v6) == 0;
  }
  if (allowed) return Status::Ok();
  return InvalidArgumentError("AWS_CONTAINER_CREDENTIALS_FULL_URI host " + QuoteForError(host) +
                              " is not allowed over http: use https, or a loopback, 169.254.170.2, "
                              "169.254.170.23 or fd00:ec2::23 address");
}

// 3. ECS task role / EKS Pod Identity endpoint.
// https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html
class ContainerSource final : public Source {
 public:
  explicit ContainerSource(ChainContext& context) : context_(context) {}
  std::string name() const override { return "container"; }

  StatusOr<Outcome> Fetch() override {
    std::optional<std::string> relative = context_.Env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    std::optional<std::string> full = context_.Env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (!relative && !full) {
      return NotApplicable(
          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set");
    }
    const CredentialsChainOptions& options = context_.options();
    HttpRequest request{.method = "GET",
                        .url = "",
                        .headers = {{"Accept", "application/json"}},
                        .body = "",
                        .timeout = options.container_timeout,
                        .connect_timeout = options.container_connect_timeout};
    if (relative) {  // the relative URI wins when both are set, as in the SDKs
      if (relative->front() != '/') {
        return InvalidArgumentError("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'");
      }
      request.url = "http://" + options.ecs_host + *relative;
    } else {
      TASKPIPE_RETURN_IF_ERROR(CheckFullUri(*full));
      request.url = *full;
    }
    // The token file wins over the token variable; it is re-read on every fetch because EKS
    // rotates it.
    std::optional<std::string> token;
    if (std::optional<std::string> file = context_.Env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
      StatusOr<std::string> content = context_.ReadFile(*file);
      if (!content.ok()) {
        return InvalidArgumentError("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: " + content.status().message());
      }
      token = std::string(TrimSpace(*content));
      if (token->empty())
        return InvalidArgumentError("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + QuoteForError(*file) +
                                    " is empty");
      if (HasControlChars(*token)) {
        return InvalidArgumentError("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + QuoteForError(*file) +
                                    " holds control characters or more than one line");
      }
    } else if ((token = context_.Env("AWS_CONTAINER_AUTHORIZATION_TOKEN"))) {
      if (HasControlChars(*token)) {
        return InvalidArgumentError("AWS_CONTAINER_AUTHORIZATION_TOKEN holds control characters");
      }
    }
    if (token) request.headers.emplace_back("Authorization", *token);

    // Only scheme://host:port: the path of an ECS URI is a per-task capability.
    const std::string where = "container credentials endpoint " + RedactUrl(request.url);
    StatusOr<HttpClient*> http = context_.Http();
    if (!http.ok()) return http.status();
    StatusOr<HttpResponse> response = (*http)->Send(request);
    if (!response.ok()) return response.status().WithContext(where);
    if (response->status < 200 || response->status > 299) {
      // The body is left out: an error body could echo the request's token.
      return HttpStatusToStatus(response->status, "").WithContext(where);
    }
    StatusOr<Fetched> fetched = ParseCredentialsJson(response->body, where);
    if (!fetched.ok()) return fetched.status();
    return Found(std::move(fetched).value());
  }

 private:
  ChainContext& context_;
};

// 4. EC2 instance metadata, IMDSv2 only (a session token first; no fallback to IMDSv1, as in the
// newer SDKs). https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html
// https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-security-credentials.html
class InstanceMetadataSource final : public Source {
 public:
  explicit InstanceMetadataSource(ChainContext& context) : context_(context) {}
  std::string name() const override { return "instance metadata"; }

  StatusOr<Outcome> Fetch() override {
    if (std::optional<std::string> disabled = context_.Env("AWS_EC2_METADATA_DISABLED");
        disabled && Lower(TrimSpace(*disabled)) == "true") {
      return NotApplicable("disabled by AWS_EC2_METADATA_DISABLED");
    }
    std::string endpoint;
    if (std::optional<std::string> configured = context_.Env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) {
      endpoint = std::string(TrimSpace(*configured));
    } else if (std::optional<std::string> mode = context_.Env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
               mode && Lower(TrimSpace(*mode)) == "ipv6") {
      endpoint = "http://[fd00:ec2::254]";
    } else {
      endpoint = "http://169.254.169.254";
    }
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    if (endpoint != endpoint_) {
      endpoint_ = endpoint;
      token_.clear();
    }

    if (token_.empty() || context_.clock().Now() >= token_expires_) {
      // No token means no IMDS here (not on EC2, or IMDSv2 turned off): the source does not apply.
      if (Status status = FetchToken(); !status.ok()) return NotApplicable(status.ToString());
    }
    StatusOr<HttpResponse> roles = GetWithToken(kCredentialsPath);
    if (!roles.ok()) return roles.status();
    if (roles->status == 404) return NotApplicable("no IAM role is attached to this instance (HTTP 404)");
    if (roles->status != 200) return HttpStatusToStatus(roles->status, "").WithContext(Where("role name"));
    std::string_view role = roles->body;
    role = TrimSpace(role.substr(0, role.find('\n')));
    if (role.empty()) return NotApplicable("no IAM role is attached to this instance (empty role list)");
    for (char c : role) {
      // IAM role names: letters, digits and +=,.@_- (never '/', which would change the path).
      if (!std::isalnum(static_cast<unsigned char>(c)) && std::strchr("+=,.@_-", c) == nullptr) {
        return UnavailableError(Where("role name") + ": not a valid IAM role name");
      }
    }
    StatusOr<HttpResponse> response = GetWithToken(kCredentialsPath + std::string(role));
    if (!response.ok()) return response.status();
    if (response->status != 200) {
      return HttpStatusToStatus(response->status, "")
          .WithContext(Where("credentials of role " + std::string(role)));
    }
    StatusOr<Fetched> fetched =
        ParseCredentialsJson(response->body, Where("credentials of role " + std::string(role)));
    if (!fetched.ok()) return fetched.status();
    return Found(std::move(fetched).value());
  }

 private:
  static constexpr const char* kCredentialsPath = "/latest/meta-data/iam/security-credentials/";
  static constexpr std::chrono::seconds kTokenTtl{21600};  // 6 h, the maximum IMDS grants

  std::string Where(const std::string& what) const {
    return "instance metadata " + RedactUrl(endpoint_) + " (" + what + ")";
  }

  HttpRequest Request(std::string method, const std::string& path) const {
    return HttpRequest{.method = std::move(method),
                       .url = endpoint_ + path,
                       .headers = {},
                       .body = "",
                       .timeout = context_.options().imds_timeout,
                       .connect_timeout = context_.options().imds_connect_timeout};
  }

  Status FetchToken() {
    token_.clear();
    HttpRequest request = Request("PUT", "/latest/api/token");
    request.headers.emplace_back("X-aws-ec2-metadata-token-ttl-seconds", std::to_string(kTokenTtl.count()));
    StatusOr<HttpClient*> http = context_.Http();
    if (!http.ok()) return http.status();
    const Clock::time_point sent = context_.clock().Now();
    StatusOr<HttpResponse> response = (*http)->Send(request);
    if (!response.ok()) return response.status().WithContext(Where("token"));
    if (response->status != 200) return HttpStatusToStatus(response->status, "").WithContext(Where("token"));
    const std::string_view token = TrimSpace(response->body);
    if (token.empty() || HasControlChars(token))
      return UnavailableError(Where("token") + ": empty or malformed token");
    token_ = std::string(token);
    // A minute of margin, counted from when the request left.
    token_expires_ = sent + kTokenTtl - std::chrono::minutes(1);
    return Status::Ok();
  }

  // GET with the session token; a 401 means the token expired or was revoked: fetch a new one and
  // try once more.
  StatusOr<HttpResponse> GetWithToken(const std::string& path) {
    StatusOr<HttpClient*> http = context_.Http();
    if (!http.ok()) return http.status();
    for (int attempt = 0;; ++attempt) {
      HttpRequest request = Request("GET", path);
      request.headers.emplace_back("X-aws-ec2-metadata-token", token_);
      StatusOr<HttpResponse> response = (*http)->Send(request);
      if (!response.ok()) return response.status().WithContext(Where("metadata"));
      if (response->status != 401 || attempt > 0) return response;
      TASKPIPE_RETURN_IF_ERROR(FetchToken());
    }
  }

  ChainContext& context_;
  std::string endpoint_;
  std::string token_;
  Clock::time_point token_expires_{};
};

// The default chain with its cache. Fetches happen outside the mutex (they may take seconds), one
// at a time: `fetching_` marks the thread doing it; others wait on `cv_` unless cached credentials
// are still valid.
class ChainProvider final : public CredentialsProvider {
 public:
  explicit ChainProvider(CredentialsChainOptions options) : context_(std::move(options)) {
    sources_.push_back(std::make_unique<EnvironmentSource>(context_));
    sources_.push_back(std::make_unique<ProfileSource>(context_));
    sources_.push_back(std::make_unique<ContainerSource>(context_));
    sources_.push_back(std::make_unique<InstanceMetadataSource>(context_));
  }

  StatusOr<AwsCredentials> Get() override {
    const CredentialsChainOptions& options = context_.options();
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      const WallTime now = context_.clock().WallNow();
      if (cached_) {
        if (!cached_->expiration) return cached_->credentials;
        if (now < *cached_->expiration - options.refresh_before_expiry) return cached_->credentials;
        // Due for a refresh but still valid: unless it is this caller's turn to refresh, use them.
        if (now < *cached_->expiration && (fetching_ || now < next_attempt_)) return cached_->credentials;
      }
      if (!fetching_) break;
      // Wait for the fetch in progress and take its outcome rather than start another.
      const std::uint64_t before = fetches_done_;
      cv_.wait(lock, [&] { return fetches_done_ != before; });
      if (!last_status_.ok() &&
          !(cached_ && cached_->expiration && context_.clock().WallNow() < *cached_->expiration)) {
        return last_status_;
      }
    }

    fetching_ = true;
    lock.unlock();
    StatusOr<Fetched> result = Fetch();
    lock.lock();
    fetching_ = false;
    ++fetches_done_;
    cv_.notify_all();
    const WallTime now = context_.clock().WallNow();
    next_attempt_ = now + options.retry_after_failure;
    if (result.ok()) {
      last_status_ = Status::Ok();
      if (options.redactor != nullptr) {
        for (const std::string& secret : SecretsOf(result->credentials)) options.redactor->AddSecret(secret);
      }
      cached_ = std::move(result).value();
      return cached_->credentials;
    }
    last_status_ = result.status();
    if (cached_ && cached_->expiration && now < *cached_->expiration) return cached_->credentials;
    return last_status_;
  }

 private:
  // The chain on first use; afterwards only the source that worked.
  // REQUIRES: this thread set `fetching_`.
  StatusOr<Fetched> Fetch() {
    if (chosen_ != nullptr) {
      StatusOr<Outcome> outcome = chosen_->Fetch();
      if (!outcome.ok()) return outcome.status().WithContext(chosen_->name());
      if (!outcome->fetched) return UnavailableError(chosen_->name() + ": " + outcome->not_applicable);
      return CheckNotExpired(*chosen_, std::move(*outcome->fetched));
    }
    std::string tried;
    for (const std::unique_ptr<Source>& source : sources_) {
      StatusOr<Outcome> outcome = source->Fetch();
      if (!outcome.ok()) return outcome.status().WithContext(source->name());
      if (outcome->fetched) {
        StatusOr<Fetched> fetched = CheckNotExpired(*source, std::move(*outcome->fetched));
        if (fetched.ok()) chosen_ = source.get();
        return fetched;
      }
      tried += "\n  " + source->name() + ": " + outcome->not_applicable;
    }
    return UnauthenticatedError(
        "no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a "
        "profile with keys in ~/.aws/credentials. Sources tried:" +
        tried);
  }

  StatusOr<Fetched> CheckNotExpired(const Source& source, Fetched fetched) const {
    if (fetched.expiration && *fetched.expiration <= context_.clock().WallNow()) {
      return UnavailableError(source.name() + ": the credentials received expired at " +
                              FormatRfc3339Utc(*fetched.expiration) + " (is the clock right?)");
    }
    return fetched;
  }

  ChainContext context_;
  std::vector<std::unique_ptr<Source>> sources_;
  Source* chosen_ = nullptr;  // touched only by the fetching thread

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Fetched> cached_;   // GUARDED_BY(mu_)
  WallTime next_attempt_{};         // GUARDED_BY(mu_): no refresh before this while cached_ is valid
  bool fetching_ = false;           // GUARDED_BY(mu_)
  std::uint64_t fetches_done_ = 0;  // GUARDED_BY(mu_)
  Status last_status_;              // GUARDED_BY(mu_): the outcome of the latest fetch
};

class StaticProvider final : public CredentialsProvider {
 public:
  explicit StaticProvider(AwsCredentials credentials) : credentials_(std::move(credentials)) {}
  StatusOr<AwsCredentials> Get() override { return credentials_; }

 private:
  const AwsCredentials credentials_;
};

}  // namespace

std::unique_ptr<CredentialsProvider> NewStaticCredentialsProvider(AwsCredentials credentials) {
  return std::make_unique<StaticProvider>(std::move(credentials));
}

std::unique_ptr<CredentialsProvider> NewDefaultCredentialsChain(CredentialsChainOptions options) {
  if (options.clock == nullptr) options.clock = &RealClock();
  return std::make_unique<ChainProvider>(std::move(options));
}

std::vector<std::string> SecretsOf(const AwsCredentials& credentials) {
  std::vector<std::string> secrets;
  if (!credentials.secret_access_key.empty()) secrets.push_back(credentials.secret_access_key);
  if (!credentials.session_token.empty()) secrets.push_back(credentials.session_token);
  return secrets;
}

}  // namespace taskpipe
