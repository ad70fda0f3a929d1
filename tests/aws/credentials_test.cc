#include "aws/credentials.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/redact.h"
#include "net/curl_http_client.h"
#include "net/http_client.h"
#include "tests/fakes/fake_clock.h"
#include "tests/testing/http_test_server.h"

namespace taskpipe {
namespace {

using ::taskpipe::testing::HttpTestReply;
using ::taskpipe::testing::HttpTestRequest;
using ::taskpipe::testing::HttpTestServer;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr char kCredentialsPath[] = "/home/u/.aws/credentials";
constexpr char kConfigPath[] = "/home/u/.aws/config";

std::string CredentialsJson(const std::string& id, const std::string& secret, const std::string& token,
                            const std::string& expiration, const std::string& code = "") {
  std::string json = "{";
  if (!code.empty()) json += "\"Code\":\"" + code + "\",\"Type\":\"AWS-HMAC\",";
  json += "\"AccessKeyId\":\"" + id + "\",\"SecretAccessKey\":\"" + secret + "\",\"Token\":\"" + token + "\"";
  if (!expiration.empty()) json += ",\"Expiration\":\"" + expiration + "\"";
  return json + "}";
}

// The environment and files every test controls, a loopback HTTP client and a fake clock.
// Instance metadata is disabled unless a test turns it on, so no test reaches 169.254.169.254.
class CredentialsTest : public ::testing::Test {
 protected:
  CredentialsTest() {
    StatusOr<std::unique_ptr<HttpClient>> client = NewCurlHttpClient({.proxy = ""});
    EXPECT_TRUE(client.ok());
    http_ = std::move(client).value();
    vars_["AWS_EC2_METADATA_DISABLED"] = "true";
  }

  CredentialsChainOptions Options() {
    return CredentialsChainOptions{
        .getenv = [this](const std::string& name) -> std::optional<std::string> {
          std::lock_guard<std::mutex> lock(mu_);
          auto it = vars_.find(name);
          if (it == vars_.end()) return std::nullopt;
          return it->second;
        },
        .read_file = [this](const std::string& path) -> StatusOr<std::string> {
          std::lock_guard<std::mutex> lock(mu_);
          auto it = files_.find(path);
          if (it == files_.end())
            return NotFoundError("cannot read \"" + path + "\": No such file or directory");
          return it->second;
        },
        .home = "/home/u",
        .http = http_.get(),
        .clock = &clock_,
    };
  }

  std::unique_ptr<CredentialsProvider> Chain() { return NewDefaultCredentialsChain(Options()); }

  void UseImds(const HttpTestServer& server) {
    vars_.erase("AWS_EC2_METADATA_DISABLED");
    vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.url() + "/";
  }

  std::mutex mu_;  // the hooks may run on a fetching thread while a test thread waits
  std::map<std::string, std::string> vars_;
  std::map<std::string, std::string> files_;
  FakeClock clock_;  // wall time 2026-01-01T00:00:00Z
  std::unique_ptr<HttpClient> http_;
};

// An IMDSv2 server: a token from PUT /latest/api/token (which requires the TTL header), then GETs
// that carry it. GETs without the current token get 401.
class FakeImds {
 public:
  HttpTestReply Handle(const HttpTestRequest& r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (down_) return HttpTestReply::Reset();
    if (r.method == "PUT" && r.path() == "/latest/api/token") {
      if (r.Header("X-aws-ec2-metadata-token-ttl-seconds") != "21600") return HttpTestReply::Text(400, "ttl");
      ++token_requests_;
      return HttpTestReply::Text(200, token_);
    }
    if (r.method != "GET") return HttpTestReply::Text(405, "");
    if (r.Header("X-aws-ec2-metadata-token") != token_) return HttpTestReply::Text(401, "");
    if (r.path() == "/latest/meta-data/iam/security-credentials/") {
      if (role_.empty()) return HttpTestReply::Text(404, "");
      return HttpTestReply::Text(200, role_ + "\n");
    }
    if (r.path() == "/latest/meta-data/iam/security-credentials/" + role_) {
      ++credential_requests_;
      HttpTestReply reply = HttpTestReply::Json(200, credentials_);
      reply.delay = delay_;
      return reply;
    }
    return HttpTestReply::Text(404, "");
  }

  void SetCredentials(std::string json) {
    std::lock_guard<std::mutex> lock(mu_);
    credentials_ = std::move(json);
  }
  void SetToken(std::string token) {
    std::lock_guard<std::mutex> lock(mu_);
    token_ = std::move(token);
  }
  void SetRole(std::string role) {
    std::lock_guard<std::mutex> lock(mu_);
    role_ = std::move(role);
  }
  void SetDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }
  void SetDelay(std::chrono::milliseconds delay) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = delay;
  }
  int token_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return token_requests_;
  }
  int credential_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return credential_requests_;
  }

 private:
  std::mutex mu_;
  std::string token_ = "tok-1";
  std::string role_ = "my-role";
  std::string credentials_ =
      CredentialsJson("ASIAIMDS1", "imds-secret-1", "imds-token-1", "2026-01-01T01:00:00Z", "Success");
  bool down_ = false;
  std::chrono::milliseconds delay_{0};
  int token_requests_ = 0;
  int credential_requests_ = 0;
};

std::chrono::milliseconds Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

TEST(StaticCredentialsProviderTest, ReturnsWhatItWasGiven) {
  auto provider =
      NewStaticCredentialsProvider({.access_key_id = "AKID", .secret_access_key = "s", .session_token = "t"});
  StatusOr<AwsCredentials> credentials = provider->Get();
  ASSERT_TRUE(credentials.ok());
  EXPECT_EQ(credentials->access_key_id, "AKID");
  EXPECT_EQ(credentials->secret_access_key, "s");
  EXPECT_EQ(credentials->session_token, "t");
}

TEST(SecretsOfTest, SecretAndTokenOnly) {
  EXPECT_THAT(SecretsOf({.access_key_id = "AKID", .secret_access_key = "sec", .session_token = "tok"}),
              ::testing::ElementsAre("sec", "tok"));
  EXPECT_THAT(SecretsOf({.access_key_id = "AKID", .secret_access_key = "sec", .session_token = ""}),
              ::testing::ElementsAre("sec"));
}

// --- 1. environment ------------------------------------------------------------------------------

TEST_F(CredentialsTest, EnvironmentVariables) {
  vars_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  vars_["AWS_SECRET_ACCESS_KEY"] = "env-secret";
  auto chain = Chain();
  StatusOr<AwsCredentials> credentials = chain->Get();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIDENV");
  EXPECT_EQ(credentials->secret_access_key, "env-secret");
  EXPECT_EQ(credentials->session_token, "");

  vars_["AWS_SESSION_TOKEN"] = "env-token";
  credentials = Chain()->Get();
  ASSERT_TRUE(credentials.ok());
  EXPECT_EQ(credentials->session_token, "env-token");
}

TEST_F(CredentialsTest, OneEnvironmentKeyWithoutTheOtherNamesTheMissingVariable) {
  vars_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  vars_["AWS_SECRET_ACCESS_KEY"] = "";  // empty counts as unset
  files_[kCredentialsPath] = "[default]\naws_access_key_id = F\naws_secret_access_key = f\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(credentials.status().message(), HasSubstr("AWS_SECRET_ACCESS_KEY is not"));

  vars_.erase("AWS_ACCESS_KEY_ID");
  vars_["AWS_SECRET_ACCESS_KEY"] = "env-secret";
  credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), HasSubstr("AWS_ACCESS_KEY_ID is not"));
  EXPECT_THAT(credentials.status().message(), Not(HasSubstr("env-secret")));
}

// --- 2. shared files -----------------------------------------------------------------------------

TEST_F(CredentialsTest, DefaultProfileFromCredentialsFile) {
  files_[kCredentialsPath] =
      "# keys\n[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n"
      "aws_session_token = file-token\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIDFILE");
  EXPECT_EQ(credentials->secret_access_key, "file-secret");
  EXPECT_EQ(credentials->session_token, "file-token");
}

TEST_F(CredentialsTest, NamedProfileFromConfigFile) {
  vars_["AWS_PROFILE"] = "dev";
  files_[kConfigPath] =
      "[default]\naws_access_key_id = WRONG\naws_secret_access_key = wrong\n"
      "[profile dev]\nregion = eu-west-1\naws_access_key_id = AKIDDEV\naws_secret_access_key = dev-secret\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIDDEV");
  EXPECT_EQ(credentials->secret_access_key, "dev-secret");
}

TEST_F(CredentialsTest, CredentialsFileWinsOverConfigFile) {
  files_[kCredentialsPath] =
      "[default]\naws_access_key_id = FROMCREDS\naws_secret_access_key = creds-secret\n";
  files_[kConfigPath] = "[default]\naws_access_key_id = FROMCONFIG\naws_secret_access_key = config-secret\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_TRUE(credentials.ok());
  EXPECT_EQ(credentials->access_key_id, "FROMCREDS");
  EXPECT_EQ(credentials->secret_access_key, "creds-secret");
}

TEST_F(CredentialsTest, FileLocationsFromEnvironment) {
  vars_["AWS_SHARED_CREDENTIALS_FILE"] = "/etc/taskpipe/creds";
  vars_["AWS_CONFIG_FILE"] = "/etc/taskpipe/config";
  files_[kCredentialsPath] = "[default]\naws_access_key_id = DEFAULTPATH\naws_secret_access_key = x\n";
  files_["/etc/taskpipe/config"] = "[default]\naws_access_key_id = CUSTOM\naws_secret_access_key = y\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_TRUE(credentials.ok());
  EXPECT_EQ(credentials->access_key_id, "CUSTOM");
}

TEST_F(CredentialsTest, ExplicitProfileThatDoesNotExistIsAnError) {
  vars_["AWS_PROFILE"] = "prod";
  files_[kCredentialsPath] = "[default]\naws_access_key_id = A\naws_secret_access_key = b\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(credentials.status().message(),
              AllOf(HasSubstr("profile \"prod\""), HasSubstr("AWS_PROFILE"), HasSubstr(kCredentialsPath),
                    HasSubstr(std::string(kConfigPath) + "\" (not found)")));
}

TEST_F(CredentialsTest, MalformedSharedFileNamesFileAndLine) {
  files_[kCredentialsPath] = "[default]\naws_access_key_id = A\naws_secret_access_key: file-secret-xyz\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(credentials.status().message(),
              AllOf(HasSubstr("shared files"), HasSubstr(std::string(kCredentialsPath) + "\" line 3"),
                    Not(HasSubstr("file-secret-xyz"))));
}

TEST_F(CredentialsTest, ProfileWithHalfTheKeysIsAnError) {
  files_[kConfigPath] = "[default]\naws_secret_access_key = lonely-secret\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(
      credentials.status().message(),
      AllOf(HasSubstr("aws_secret_access_key but no aws_access_key_id"), Not(HasSubstr("lonely-secret"))));
}

TEST_F(CredentialsTest, UnsupportedProfileKindIsAnErrorOnlyWhenAskedForByName) {
  files_[kConfigPath] = "[default]\nrole_arn = arn:aws:iam::1:role/r\n[profile sso]\nsso_session = corp\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnauthenticated);  // default: the chain goes on
  EXPECT_THAT(credentials.status().message(), HasSubstr("uses role_arn, which taskpipe does not support"));

  vars_["AWS_PROFILE"] = "sso";
  credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(credentials.status().message(), HasSubstr("profile \"sso\" uses sso_session"));
}

TEST_F(CredentialsTest, ProfileWithOnlyARegionFallsThrough) {
  files_[kConfigPath] = "[default]\nregion = us-east-1\n";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(credentials.status().message(), HasSubstr("profile \"default\" has no aws_access_key_id"));
}

// --- precedence ----------------------------------------------------------------------------------

TEST_F(CredentialsTest, OrderOfPrecedence) {
  FakeImds imds;
  HttpTestServer imds_server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  HttpTestServer ecs([](const HttpTestRequest&) {
    return HttpTestReply::Json(200,
                               CredentialsJson("ASIAECS", "ecs-secret", "ecs-token", "2026-01-01T06:00:00Z"));
  });
  UseImds(imds_server);
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = ecs.url() + "/creds";
  files_[kCredentialsPath] = "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n";
  vars_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  vars_["AWS_SECRET_ACCESS_KEY"] = "env-secret";

  EXPECT_EQ(Chain()->Get()->access_key_id, "AKIDENV");
  vars_.erase("AWS_ACCESS_KEY_ID");
  vars_.erase("AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(Chain()->Get()->access_key_id, "AKIDFILE");
  files_.clear();
  EXPECT_EQ(Chain()->Get()->access_key_id, "ASIAECS");
  EXPECT_EQ(imds_server.request_count(), 0);
  vars_.erase("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  EXPECT_EQ(Chain()->Get()->access_key_id, "ASIAIMDS1");
  EXPECT_EQ(ecs.request_count(), 1);
}

TEST_F(CredentialsTest, NothingFoundListsEverySourceTried) {
  vars_["AWS_SESSION_TOKEN"] = "lonely-session-token";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(
      credentials.status().message(),
      AllOf(HasSubstr("no AWS credentials found"),
            HasSubstr("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"),
            HasSubstr("shared files: no profile \"default\" in \"/home/u/.aws/credentials\" (not found)"),
            HasSubstr("container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set"),
            HasSubstr("instance metadata: disabled by AWS_EC2_METADATA_DISABLED"),
            Not(HasSubstr("lonely-session-token"))));
}

TEST_F(CredentialsTest, ChainRetriesWhileNothingWorkedThenRemembersTheSource) {
  auto chain = Chain();
  EXPECT_EQ(chain->Get().status().code(), StatusCode::kUnauthenticated);
  files_[kCredentialsPath] = "[default]\naws_access_key_id = LATER\naws_secret_access_key = later-secret\n";
  EXPECT_EQ(chain->Get()->access_key_id, "LATER");
  // Resolved once: static credentials are kept even though the sources change.
  vars_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  vars_["AWS_SECRET_ACCESS_KEY"] = "env-secret";
  files_.clear();
  EXPECT_EQ(chain->Get()->access_key_id, "LATER");
}

// --- 3. container --------------------------------------------------------------------------------

TEST_F(CredentialsTest, ContainerRelativeUri) {
  HttpTestServer server([](const HttpTestRequest& r) {
    if (r.path() != "/v2/credentials/abc-123") return HttpTestReply::Text(404, "");
    return HttpTestReply::Json(200,
                               CredentialsJson("ASIAECS", "ecs-secret", "ecs-token", "2026-01-01T06:00:00Z"));
  });
  vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/abc-123";
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://10.1.1.1/ignored";  // relative wins
  CredentialsChainOptions options = Options();
  options.ecs_host = "127.0.0.1:" + std::to_string(server.port());
  StatusOr<AwsCredentials> credentials = NewDefaultCredentialsChain(options)->Get();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIAECS");
  EXPECT_EQ(credentials->secret_access_key, "ecs-secret");
  EXPECT_EQ(credentials->session_token, "ecs-token");
  HttpTestRequest request = server.requests().at(0);
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.Header("Authorization"), std::nullopt);
}

TEST_F(CredentialsTest, ContainerRelativeUriMustBeAPath) {
  vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "v2/credentials";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(credentials.status().message(), HasSubstr("must start with '/'"));
}

TEST_F(CredentialsTest, ContainerFullUriWithAuthorizationToken) {
  HttpTestServer server([](const HttpTestRequest& r) {
    if (r.Header("Authorization") != "Bearer-ish abc")
      return HttpTestReply::Json(401, "{\"message\":\"no\"}");
    return HttpTestReply::Json(200, CredentialsJson("ASIAFULL", "full-secret", "full-token", ""));
  });
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.url() + "/get-credentials";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Bearer-ish abc";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIAFULL");
  EXPECT_EQ(server.requests().at(0).path(), "/get-credentials");

  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong";
  credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(credentials.status().message(),
              AllOf(HasSubstr("container credentials endpoint http://127.0.0.1:"), HasSubstr("HTTP 401"),
                    Not(HasSubstr("get-credentials")), Not(HasSubstr("wrong"))));
}

TEST_F(CredentialsTest, ContainerAuthorizationTokenFileWinsAndIsReadEachTime) {
  HttpTestServer server([](const HttpTestRequest& r) {
    return HttpTestReply::Json(200, CredentialsJson("ASIA" + r.Header("Authorization").value_or("none"), "s",
                                                    "t", "2026-01-01T01:00:00Z"));
  });
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.url() + "/creds";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "FROMVAR";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = "/var/run/token";
  files_["/var/run/token"] = "FROMFILE1\n";
  auto chain = Chain();
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAFROMFILE1");
  files_["/var/run/token"] = "FROMFILE2";  // EKS rotates the file
  clock_.Advance(56min);
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAFROMFILE2");
}

TEST_F(CredentialsTest, ContainerAuthorizationTokenFileProblems) {
  HttpTestServer server;
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.url() + "/creds";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = "/var/run/missing";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(credentials.status().message(),
              AllOf(HasSubstr("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), HasSubstr("/var/run/missing")));

  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = "/var/run/two-lines";
  files_["/var/run/two-lines"] = "token-part-one\ntoken-part-two\n";
  credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(),
              AllOf(HasSubstr("more than one line"), Not(HasSubstr("token-part"))));
  EXPECT_EQ(server.request_count(), 0);
}

TEST_F(CredentialsTest, ContainerFullUriHostRules) {
  for (const char* url :
       {"http://10.0.0.1/creds", "http://example.com/creds", "http://169.254.170.3/creds",
        "http://[fd00:ec2::24]/creds", "http://user@8.8.8.8:80/creds", "ftp://127.0.0.1/x"}) {
    vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = url;
    StatusOr<AwsCredentials> credentials = Chain()->Get();
    ASSERT_FALSE(credentials.ok()) << url;
    EXPECT_EQ(credentials.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(credentials.status().message(), HasSubstr("AWS_CONTAINER_CREDENTIALS_FULL_URI")) << url;
  }
  // Allowed hosts get as far as connecting (nothing listens on these ports).
  const std::string port = std::to_string(testing::UnusedLoopbackPort());
  for (const std::string& url : {"http://127.0.0.1:" + port + "/c", "http://127.1.2.3:" + port + "/c",
                                 "http://localhost:" + port + "/c", "http://[::1]:" + port + "/c",
                                 "https://127.0.0.1:" + port + "/c", "HTTP://127.0.0.1:" + port + "/c"}) {
    vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = url;
    StatusOr<AwsCredentials> credentials = Chain()->Get();
    ASSERT_FALSE(credentials.ok()) << url;
    EXPECT_NE(credentials.status().code(), StatusCode::kInvalidArgument)
        << url << credentials.status().ToString();
    EXPECT_TRUE(IsRetryable(credentials.status())) << url << credentials.status().ToString();
  }
}

TEST_F(CredentialsTest, ContainerMalformedResponses) {
  std::string body;
  std::mutex body_mu;
  HttpTestServer server([&](const HttpTestRequest&) {
    std::lock_guard<std::mutex> lock(body_mu);
    return HttpTestReply::Json(200, body);
  });
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.url() + "/creds";
  struct Case {
    std::string body;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"not json", "not a JSON object (8 bytes)"},
           {"[1,2]", "not a JSON object"},
           {"{\"AccessKeyId\":\"A\",\"Token\":\"t\"}", "no \"SecretAccessKey\""},
           {"{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"s\"}", "no \"AccessKeyId\""},
           {"{\"AccessKeyId\":7,\"SecretAccessKey\":\"s\"}", "\"AccessKeyId\" is not a string"},
           {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":\"tomorrow\"}",
            "\"Expiration\""},
           {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":\"2025-12-31T23:00:00Z\"}",
            "expired at 2025-12-31T23:00:00Z"},
       }) {
    {
      std::lock_guard<std::mutex> lock(body_mu);
      body = c.body;
    }
    StatusOr<AwsCredentials> credentials = Chain()->Get();
    ASSERT_FALSE(credentials.ok()) << c.body;
    EXPECT_EQ(credentials.status().code(), StatusCode::kUnavailable) << c.body;
    EXPECT_THAT(credentials.status().message(), HasSubstr(c.message)) << c.body;
  }
}

TEST_F(CredentialsTest, ContainerServerErrorIsUnavailable) {
  HttpTestServer server(
      [](const HttpTestRequest&) { return HttpTestReply::Json(500, "{\"code\":\"boom\"}"); });
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.url() + "/creds";
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(credentials.status().message(), AllOf(HasSubstr("container"), HasSubstr("HTTP 500")));
}

// --- 4. instance metadata ------------------------------------------------------------------------

TEST_F(CredentialsTest, ImdsV2Flow) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIAIMDS1");
  EXPECT_EQ(credentials->secret_access_key, "imds-secret-1");
  EXPECT_EQ(credentials->session_token, "imds-token-1");

  std::vector<HttpTestRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].path(), "/latest/api/token");
  EXPECT_EQ(requests[0].Header("X-aws-ec2-metadata-token-ttl-seconds"), "21600");
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].path(), "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(requests[1].Header("X-aws-ec2-metadata-token"), "tok-1");
  EXPECT_EQ(requests[2].path(), "/latest/meta-data/iam/security-credentials/my-role");
  EXPECT_EQ(requests[2].Header("X-aws-ec2-metadata-token"), "tok-1");
}

TEST_F(CredentialsTest, ImdsRefreshesBeforeExpiryAndReusesTheToken) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  auto chain = Chain();
  ASSERT_EQ(chain->Get()->access_key_id, "ASIAIMDS1");  // expires at 01:00
  imds.SetCredentials(
      CredentialsJson("ASIAIMDS2", "imds-secret-2", "imds-token-2", "2026-01-01T02:00:00Z", "Success"));
  clock_.Advance(54min);  // 6 min left: still fresh
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAIMDS1");
  EXPECT_EQ(imds.credential_requests(), 1);
  clock_.Advance(2min);  // 4 min left: refreshed
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAIMDS2");
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAIMDS2");
  EXPECT_EQ(imds.credential_requests(), 2);
  EXPECT_EQ(imds.token_requests(), 1);  // the 6 h token is reused
}

TEST_F(CredentialsTest, ImdsUnauthorizedRefetchesTheToken) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  imds.SetToken("tok-2");  // the old token is now refused with 401
  imds.SetCredentials(
      CredentialsJson("ASIAIMDS2", "imds-secret-2", "imds-token-2", "2026-01-01T02:00:00Z", "Success"));
  clock_.Advance(56min);
  StatusOr<AwsCredentials> credentials = chain->Get();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIAIMDS2");
  EXPECT_EQ(imds.token_requests(), 2);
  std::vector<HttpTestRequest> requests = server.requests();
  EXPECT_EQ(requests.back().Header("X-aws-ec2-metadata-token"), "tok-2");
}

TEST_F(CredentialsTest, ImdsTokenIsRefetchedAfterItsTtl) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  imds.SetCredentials(CredentialsJson("ASIAIMDS1", "s", "t", "2026-01-02T00:00:00Z", "Success"));
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  clock_.Advance(23h + 56min);
  ASSERT_TRUE(chain->Get().ok());
  EXPECT_EQ(imds.token_requests(), 2);
  EXPECT_EQ(imds.credential_requests(), 2);
}

TEST_F(CredentialsTest, RefreshFailureKeepsValidCredentialsAndRetriesLater) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  auto chain = Chain();
  ASSERT_EQ(chain->Get()->access_key_id, "ASIAIMDS1");
  const int requests_before = server.request_count();

  imds.SetDown(true);
  clock_.Advance(56min);
  StatusOr<AwsCredentials> credentials = chain->Get();  // refresh fails; 4 min left
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIAIMDS1");
  const int requests_after_failure = server.request_count();
  EXPECT_GT(requests_after_failure, requests_before);
  clock_.Advance(10s);
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAIMDS1");
  EXPECT_EQ(server.request_count(), requests_after_failure);  // no retry before retry_after_failure

  imds.SetDown(false);
  imds.SetCredentials(
      CredentialsJson("ASIAIMDS2", "imds-secret-2", "imds-token-2", "2026-01-01T02:00:00Z", "Success"));
  clock_.Advance(25s);
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAIMDS2");
}

TEST_F(CredentialsTest, ExpiredCredentialsAndFailedRefreshIsAnError) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  auto chain = Chain();
  ASSERT_TRUE(chain->Get().ok());
  imds.SetDown(true);
  clock_.Advance(61min);
  StatusOr<AwsCredentials> credentials = chain->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnavailable) << credentials.status().ToString();
  EXPECT_THAT(credentials.status().message(), HasSubstr("instance metadata"));
  EXPECT_TRUE(IsRetryable(credentials.status()));
}

TEST_F(CredentialsTest, ImdsUnreachableFailsFast) {
  vars_.erase("AWS_EC2_METADATA_DISABLED");
  vars_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] =
      "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort());
  CredentialsChainOptions options = Options();
  options.http = nullptr;  // the internal, proxy-free client
  const auto start = std::chrono::steady_clock::now();
  StatusOr<AwsCredentials> credentials = NewDefaultCredentialsChain(options)->Get();
  EXPECT_LT(Since(start), 1500ms);
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(credentials.status().message(), AllOf(HasSubstr("instance metadata: Unavailable"),
                                                    HasSubstr("http://127.0.0.1:"), HasSubstr("(token)")));
}

TEST_F(CredentialsTest, ImdsHangingFailsWithinTheDefaultTimeout) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  UseImds(server);
  const auto start = std::chrono::steady_clock::now();
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  const std::chrono::milliseconds elapsed = Since(start);
  EXPECT_GE(elapsed, 1900ms);
  EXPECT_LT(elapsed, 3000ms);
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(credentials.status().message(), HasSubstr("instance metadata: DeadlineExceeded"));
}

TEST_F(CredentialsTest, ImdsWithoutRoleOrWithoutV2DoesNotApply) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  imds.SetRole("");
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(credentials.status().message(), HasSubstr("no IAM role is attached"));

  server.SetHandler([](const HttpTestRequest&) { return HttpTestReply::Text(403, ""); });  // IMDSv2 off
  credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(credentials.status().message(), HasSubstr("HTTP 403"));
}

TEST_F(CredentialsTest, ImdsMalformedResponses) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  imds.SetCredentials(CredentialsJson("A", "imds-secret-x", "t", "2026-01-01T01:00:00Z", "Failure"));
  StatusOr<AwsCredentials> credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(
      credentials.status().message(),
      AllOf(HasSubstr("role my-role"), HasSubstr("Code is \"Failure\""), Not(HasSubstr("imds-secret-x"))));

  imds.SetCredentials("{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"imds-secret-x\"");
  credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), HasSubstr("not a JSON object"));

  imds.SetRole("../../evil");
  credentials = Chain()->Get();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), HasSubstr("not a valid IAM role name"));
}

TEST_F(CredentialsTest, RemembersTheSourceThatWorked) {
  HttpTestServer ecs([](const HttpTestRequest&) {
    return HttpTestReply::Json(200,
                               CredentialsJson("ASIAECS", "ecs-secret", "ecs-token", "2026-01-01T01:00:00Z"));
  });
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = ecs.url() + "/creds";
  auto chain = Chain();
  ASSERT_EQ(chain->Get()->access_key_id, "ASIAECS");
  // Keys appear in the environment later: the refresh still goes to the container endpoint.
  vars_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  vars_["AWS_SECRET_ACCESS_KEY"] = "env-secret";
  clock_.Advance(56min);
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAECS");
  EXPECT_EQ(ecs.request_count(), 2);
}

// --- concurrency ---------------------------------------------------------------------------------

TEST_F(CredentialsTest, ConcurrentGetsDoNotStampede) {
  FakeImds imds;
  HttpTestServer server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(server);
  imds.SetDelay(100ms);
  auto chain = Chain();
  constexpr int kThreads = 8;

  const auto run_all = [&](const std::string& want) {
    std::latch start(kThreads);
    std::atomic<int> good{0};
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        StatusOr<AwsCredentials> credentials = chain->Get();
        if (credentials.ok() && credentials->access_key_id.rfind(want, 0) == 0) ++good;
      });
    }
    threads.clear();  // joins
    EXPECT_EQ(good.load(), kThreads);
  };

  run_all("ASIAIMDS1");  // first resolution: one fetch, the others wait for it
  EXPECT_EQ(imds.credential_requests(), 1);
  EXPECT_EQ(imds.token_requests(), 1);

  imds.SetCredentials(
      CredentialsJson("ASIAIMDS2", "imds-secret-2", "imds-token-2", "2026-01-01T02:00:00Z", "Success"));
  clock_.Advance(56min);
  run_all("ASIAIMDS");  // refresh: one fetch; the others get the old, still valid, credentials
  EXPECT_EQ(imds.credential_requests(), 2);
  EXPECT_EQ(chain->Get()->access_key_id, "ASIAIMDS2");
}

TEST_F(CredentialsTest, ConcurrentWaitersShareAFailure) {
  std::atomic<int> calls{0};
  HttpTestServer server([&calls](const HttpTestRequest&) {
    ++calls;
    HttpTestReply reply = HttpTestReply::Json(503, "{}");
    reply.delay = 100ms;
    return reply;
  });
  vars_["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.url() + "/creds";
  auto chain = Chain();
  constexpr int kThreads = 6;
  std::latch start(kThreads);
  std::atomic<int> unavailable{0};
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        if (chain->Get().status().code() == StatusCode::kUnavailable) ++unavailable;
      });
    }
  }
  EXPECT_EQ(unavailable.load(), kThreads);
  // Threads that arrived while a fetch ran took its outcome; only latecomers fetched again.
  EXPECT_LT(calls.load(), kThreads);
}

// --- secrets -------------------------------------------------------------------------------------

TEST_F(CredentialsTest, RegistersSecretsWithTheRedactor) {
  vars_["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  vars_["AWS_SECRET_ACCESS_KEY"] = "env-secret-to-mask";
  vars_["AWS_SESSION_TOKEN"] = "env-token-to-mask";
  Redactor redactor;
  CredentialsChainOptions options = Options();
  options.redactor = &redactor;
  ASSERT_TRUE(NewDefaultCredentialsChain(options)->Get().ok());
  EXPECT_EQ(redactor.Redact("a env-secret-to-mask b env-token-to-mask AKIDENV"), "a *** b *** AKIDENV");
}

TEST_F(CredentialsTest, NoSecretInAnyErrorMessage) {
  const std::vector<std::string> secrets = {
      "SeCrEt-env-1",  "SeCrEt-tok-2",  "SeCrEt-file-3", "SeCrEt-file-4",    "SeCrEt-auth-5",
      "SeCrEt-path-6", "SeCrEt-json-7", "SeCrEt-imds-8", "SeCrEt-tokfile-9", "SeCrEt-body-10"};
  std::vector<Status> errors;
  const auto collect = [&](CredentialsChainOptions options) {
    StatusOr<AwsCredentials> credentials = NewDefaultCredentialsChain(std::move(options))->Get();
    EXPECT_FALSE(credentials.ok());
    errors.push_back(credentials.status());
  };

  // Environment: half the pair, with a session token.
  vars_["AWS_SECRET_ACCESS_KEY"] = "SeCrEt-env-1";
  vars_["AWS_SESSION_TOKEN"] = "SeCrEt-tok-2";
  collect(Options());
  vars_.erase("AWS_SECRET_ACCESS_KEY");

  // Shared files: a malformed line holding a secret; half a pair.
  files_[kCredentialsPath] = "[default]\naws_secret_access_key SeCrEt-file-3\n";
  collect(Options());
  files_[kCredentialsPath] = "[default]\naws_secret_access_key = SeCrEt-file-4\n";
  collect(Options());
  files_.clear();

  // Container: the authorization token, a secret path, error and malformed bodies echoing secrets.
  std::string body;
  int status = 200;
  std::mutex mu;
  HttpTestServer ecs([&](const HttpTestRequest&) {
    std::lock_guard<std::mutex> lock(mu);
    return HttpTestReply::Json(status, body);
  });
  const auto reply = [&](int s, std::string b) {
    std::lock_guard<std::mutex> lock(mu);
    status = s;
    body = std::move(b);
  };
  vars_["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/SeCrEt-path-6";
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "SeCrEt-auth-5";
  CredentialsChainOptions ecs_options = Options();
  ecs_options.ecs_host = "127.0.0.1:" + std::to_string(ecs.port());
  reply(500, "{\"message\":\"bad token SeCrEt-auth-5\"}");
  collect(ecs_options);
  reply(403, "SeCrEt-body-10");
  collect(ecs_options);
  reply(200, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"SeCrEt-json-7\",\"Token\":\"SeCrEt-tok-2\"");
  collect(ecs_options);
  reply(200, "{\"SecretAccessKey\":\"SeCrEt-json-7\",\"Token\":\"SeCrEt-tok-2\"}");
  collect(ecs_options);
  reply(200, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"SeCrEt-json-7\",\"Expiration\":7}");
  collect(ecs_options);
  vars_["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = "/run/token";
  files_["/run/token"] = "SeCrEt-tokfile-9\nmore";
  collect(ecs_options);
  vars_.erase("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  vars_.erase("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  vars_.erase("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");

  // Instance metadata: failure code, malformed body, expired credentials.
  FakeImds imds;
  HttpTestServer imds_server([&imds](const HttpTestRequest& r) { return imds.Handle(r); });
  UseImds(imds_server);
  imds.SetCredentials(
      CredentialsJson("A", "SeCrEt-imds-8", "SeCrEt-tok-2", "2026-01-01T01:00:00Z", "Failure"));
  collect(Options());
  imds.SetCredentials("{\"Code\":\"Success\",\"SecretAccessKey\":\"SeCrEt-imds-8\"}");
  collect(Options());
  imds.SetCredentials(
      CredentialsJson("A", "SeCrEt-imds-8", "SeCrEt-tok-2", "2025-01-01T01:00:00Z", "Success"));
  collect(Options());
  imds.SetCredentials(CredentialsJson("A", "SeCrEt-imds-8", "SeCrEt-tok-2", "SeCrEt-body-10", "Success"));
  collect(Options());

  ASSERT_EQ(errors.size(), 13u);
  for (const Status& error : errors) {
    EXPECT_THAT(error.ToString(), HasSubstr(":"));  // a real message, not an empty one
    for (const std::string& secret : secrets) EXPECT_THAT(error.ToString(), Not(HasSubstr(secret)));
  }
}

}  // namespace
}  // namespace taskpipe
