// AWS credentials, resolved in the order the AWS SDKs use.
//
// Credentials (https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html):
//   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
//      (https://docs.aws.amazon.com/sdkref/latest/guide/feature-static-credentials.html);
//   2. shared files: AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) and AWS_CONFIG_FILE
//      (default ~/.aws/config), profile AWS_PROFILE (default "default")
//      (https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html);
//   3. ECS/EKS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on 169.254.170.2) or
//      AWS_CONTAINER_CREDENTIALS_FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)
//      (https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html);
//   4. EC2 instance metadata: IMDSv2 token, then the role's credentials
//      (https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html).
// Temporary credentials (those with an expiration) are cached and refreshed before they expire.
// Region and endpoint resolution live in aws/aws_config.h.
//
// A CredentialsProvider is thread-safe. Nothing it returns in an error holds a secret (secret
// access key, session token, authorization token, or the path of a container credentials URI).
#ifndef TASKPIPE_AWS_CREDENTIALS_H_
#define TASKPIPE_AWS_CREDENTIALS_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aws/aws_config.h"
#include "aws/sigv4.h"
#include "common/clock.h"
#include "common/status.h"

namespace taskpipe {

class HttpClient;
class Redactor;

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Current credentials. Errors:
  //  - kUnauthenticated: no source has any; the message lists each source tried and why it did
  //    not apply;
  //  - kInvalidArgument: a source is configured wrongly (only one of AWS_ACCESS_KEY_ID and
  //    AWS_SECRET_ACCESS_KEY set, a malformed shared file, AWS_PROFILE naming a profile that does
  //    not exist, a disallowed AWS_CONTAINER_CREDENTIALS_FULL_URI host, ...): the chain stops
  //    there rather than fall through to another identity;
  //  - kUnavailable or kDeadlineExceeded: a source that applies (container endpoint, instance
  //    metadata) could not be reached or answered with something malformed; an HTTP error status
  //    is mapped by HttpStatusToStatus() (5xx: kUnavailable, 401/403: kPermissionDenied, ...).
  //    IsRetryable() tells whether trying again later may help.
  // When a refresh fails while the cached temporary credentials are still valid, those are
  // returned instead of the error.
  virtual StatusOr<AwsCredentials> Get() = 0;
};

// Always returns `credentials`.
std::unique_ptr<CredentialsProvider> NewStaticCredentialsProvider(AwsCredentials credentials);

// Every member has a default, so `NewDefaultCredentialsChain({})` reads the real environment and
// files, and tests replace only what they need with designated initializers.
struct CredentialsChainOptions {
  // Environment variables; nullopt = unset. An empty value counts as unset.
  GetenvFunction getenv = SystemGetenv;
  // Reads a shared file or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. A missing file is kNotFound.
  ReadFileFunction read_file = ReadLocalFile;
  // Home folder for ~/.aws/...; "": $HOME through `getenv`.
  std::string home;
  // For the container and instance metadata endpoints. null: an internal client that never uses a
  // proxy (a proxy must not see metadata requests). A client passed here must outlive the
  // provider, and should not route 169.254.x.x through a proxy either.
  HttpClient* http = nullptr;
  // WallNow() decides when temporary credentials are refreshed; Now() ages the IMDS token.
  // Must outlive the provider.
  Clock* clock = &RealClock();
  // When set, the secrets of every credentials obtained are registered with it (SecretsOf()), so
  // that logs mask them. Must outlive the provider.
  Redactor* redactor = nullptr;

  // Host (and port) for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; tests point it at loopback.
  std::string ecs_host = "169.254.170.2";
  // Instance metadata: short, so that a machine without IMDS (a laptop) fails fast.
  std::chrono::milliseconds imds_connect_timeout{1000};
  std::chrono::milliseconds imds_timeout{2000};
  // Container endpoint (configured explicitly, so it is given more time).
  std::chrono::milliseconds container_connect_timeout{2000};
  std::chrono::milliseconds container_timeout{5000};
  // Temporary credentials are refreshed this long before they expire...
  std::chrono::seconds refresh_before_expiry{std::chrono::minutes(5)};
  // ...and when a refresh fails while they are still valid, they are used and the refresh is
  // retried no sooner than this later.
  std::chrono::seconds retry_after_failure{30};
};

// The default chain: environment, shared files, container, instance metadata (see the top of
// this file). It resolves lazily, on the first Get(), and then keeps to the source that worked:
// static credentials are returned as they are; temporary ones are refreshed from that source
// `refresh_before_expiry` ahead of their expiration. Only one Get() at a time fetches; others
// wait for it, or return the cached credentials while those are still valid. While no source has
// worked, each Get() runs the chain again (so it is cheap only once credentials were found).
std::unique_ptr<CredentialsProvider> NewDefaultCredentialsChain(CredentialsChainOptions options = {});

// The parts of `credentials` that are secret (secret access key, session token; the access key id
// is not secret and appears in every signed request), for Redactor::AddSecret().
std::vector<std::string> SecretsOf(const AwsCredentials& credentials);

}  // namespace taskpipe

#endif  // TASKPIPE_AWS_CREDENTIALS_H_
