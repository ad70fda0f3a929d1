// AWS settings that come from outside taskpipe's own config: the environment and the shared
// `config` and `credentials` files, read the way the AWS SDKs read them.
//
//   - AwsEnvironment: where environment variables and files are read from (injectable for tests).
//   - ParseAwsIni() / LoadAwsProfile(): the shared files' INI format and the selected profile.
//   - ResolveRegion(), ResolveSqsEndpoint(): the region and the SQS endpoint.
//
// Shared file format: https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html
// Region: https://docs.aws.amazon.com/sdkref/latest/guide/feature-region.html
// Endpoints: https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
//
// Functions here are thread-safe if the AwsEnvironment hooks are. Error messages name files,
// line numbers, profiles and variables, never a value read from a file or variable that could
// be a secret.
#ifndef TASKPIPE_AWS_AWS_CONFIG_H_
#define TASKPIPE_AWS_AWS_CONFIG_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace taskpipe {

// Looks up an environment variable; nullopt = unset.
using GetenvFunction = std::function<std::optional<std::string>(const std::string& name)>;
// Reads a whole file. REQUIRES of implementations: a file that does not exist is kNotFound (the
// shared files are optional); any other failure is another code.
using ReadFileFunction = std::function<StatusOr<std::string>(const std::string& path)>;

// ::getenv.
std::optional<std::string> SystemGetenv(const std::string& name);
// Reads the file at `path`: kNotFound when it does not exist, kPermissionDenied when it cannot be
// opened for lack of permission, kInvalidArgument for other failures (a directory, over 1 MiB).
StatusOr<std::string> ReadLocalFile(const std::string& path);

struct AwsEnvironment {
  GetenvFunction getenv = SystemGetenv;
  ReadFileFunction read_file = ReadLocalFile;
  // The home folder for the default file paths ("~/.aws/config") and for a leading "~/" in
  // AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE. "": $HOME, through `getenv`.
  std::string home;
};

// A parsed shared file: section name (as written between the brackets, trimmed, e.g. "default",
// "profile dev", "sso-session corp") -> key (lower case) -> value. A section that appears twice is
// merged; a key that appears twice keeps the later value.
using AwsIniSections = std::map<std::string, std::map<std::string, std::string>>;

// Parses a shared `config` or `credentials` file. The format, as the AWS SDKs read it:
//  - blank lines are ignored; a line whose first non-blank character is '#' or ';' is a comment;
//  - "[name]" starts a section; a comment may follow the ']';
//  - "key = value" (the key at the start of the line) sets a property of the current section;
//    keys are case-insensitive; a '#' or ';' preceded by white space starts an inline comment;
//  - an indented line continues the property above: a sub-property ("s3 =" then
//    "  max_concurrent_requests = 10") is kept as "s3.max_concurrent_requests"; otherwise the
//    line is appended to the value after a '\n'.
// Errors (kInvalidArgument) name `path` and the line number only, never the line's text:
//   ~/.aws/credentials line 4: expected "[section]", "key = value" or a comment
StatusOr<AwsIniSections> ParseAwsIni(std::string_view text, std::string_view path);

// The profile selected by AWS_PROFILE (or "default"), merged from both shared files.
struct AwsProfile {
  std::string name;              // "default" or AWS_PROFILE
  bool name_from_env = false;    // AWS_PROFILE was set (and not empty)
  std::string credentials_path;  // AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials ("" without a home)
  std::string config_path;       // AWS_CONFIG_FILE, else ~/.aws/config ("" without a home)
  bool credentials_file_exists = false;
  bool config_file_exists = false;
  // The profile's section in each file: [name] in `credentials`; [profile name] in `config`
  // (and [default] for the default profile). nullopt: no such section.
  std::optional<std::map<std::string, std::string>> in_credentials_file;
  std::optional<std::map<std::string, std::string>> in_config_file;

  bool found() const { return in_credentials_file.has_value() || in_config_file.has_value(); }
  // The value of `key` (lower case): from the credentials file if set there, else from the config
  // file, else nullopt.
  std::optional<std::string> Get(const std::string& key) const;
  // "/home/u/.aws/credentials (not found), /home/u/.aws/config": the files, for error messages.
  std::string DescribeFiles() const;
};

// Reads both shared files and picks out the profile. Missing files are not an error (the profile
// is then not found()). Errors: a file that exists but cannot be read, or is malformed (see
// ParseAwsIni()). Whether a missing profile is an error is the caller's decision.
StatusOr<AwsProfile> LoadAwsProfile(const AwsEnvironment& env);

// The region, in the SDKs' order: `configured` (taskpipe's queue.region) if not empty, else
// AWS_REGION, else AWS_DEFAULT_REGION, else "region" in the profile's section of the config file.
// Errors (kInvalidArgument): no region anywhere (the message says how to set one), a malformed or
// unreadable config file, a region that is not a DNS label sequence (letters, digits, '-', '.').
StatusOr<std::string> ResolveRegion(const std::string& configured, const AwsEnvironment& env);

// The SQS endpoint, without a trailing '/': `configured` if not empty, else AWS_ENDPOINT_URL_SQS,
// else AWS_ENDPOINT_URL (both skipped when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is "true"), else
// "https://sqs.<region>.amazonaws.com" ("...amazonaws.com.cn" for the cn- regions).
std::string ResolveSqsEndpoint(const std::string& configured, const std::string& region,
                               const GetenvFunction& getenv = SystemGetenv);

}  // namespace taskpipe

#endif  // TASKPIPE_AWS_AWS_CONFIG_H_
