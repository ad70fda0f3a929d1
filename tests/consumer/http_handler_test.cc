#include "consumer/http_handler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "common/logging.h"
#include "consumer/handler.h"
#include "net/curl_http_client.h"
#include "net/http_client.h"
#include "tests/testing/http_test_server.h"

namespace taskpipe {
namespace {

using ::taskpipe::testing::HttpTestReply;
using ::taskpipe::testing::HttpTestRequest;
using ::taskpipe::testing::HttpTestServer;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr char kToken[] = "tp-secret-token-8f2b61c9";
constexpr char kSecretPath[] = "/admin/run/hook-key-5d1e9a";

std::chrono::milliseconds Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

class HttpHandlerTest : public ::testing::Test {
 protected:
  HttpHandlerTest() {
    // Loopback tests go direct even where the environment names a proxy.
    StatusOr<std::unique_ptr<HttpClient>> client = NewCurlHttpClient({.proxy = ""});
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    http_ = std::move(client).value();
  }

  HandlerDeps Deps() { return HandlerDeps{RealClock(), *http_, NullLogger()}; }

  HandlerConfig Config(const HttpTestServer& server) {
    return {.type = "http",
            .url = server.url() + kSecretPath + "?key=q-secret-value",
            .headers = {{"Authorization", std::string("Bearer ") + kToken}}};
  }

  std::unique_ptr<Handler> Make(const HandlerConfig& config) {
    StatusOr<std::unique_ptr<Handler>> handler = NewHttpHandler(config, Deps());
    EXPECT_TRUE(handler.ok()) << handler.status().ToString();
    return handler.ok() ? std::move(handler).value() : nullptr;
  }

  static HandlerTask Task(Clock::duration timeout = 5s) {
    HandlerTask task;
    task.job = "daily-report";
    task.task = {{"report", "sales"}};
    task.task_json = R"({"report":"sales"})";
    task.message_id = "1f3c9a2e-0000-4000-8000-000000000001";
    task.receive_count = 3;
    task.deadline = RealClock().Now() + timeout;
    return task;
  }

  static void ExpectNoSecret(const HandlerOutcome& outcome) {
    EXPECT_THAT(outcome.status.message(), Not(HasSubstr(kToken)));
    EXPECT_THAT(outcome.status.message(), Not(HasSubstr("admin")));
    EXPECT_THAT(outcome.status.message(), Not(HasSubstr("q-secret-value")));
  }

  std::unique_ptr<HttpClient> http_;
};

TEST_F(HttpHandlerTest, SendsTheTaskWithItsHeaders) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Json(200, R"({"ok":true})"); });
  auto handler = Make(Config(server));
  HandlerOutcome outcome = handler->Run(Task(), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.output, R"({"ok":true})");

  ASSERT_EQ(server.request_count(), 1);
  HttpTestRequest request = server.requests()[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.target, std::string(kSecretPath) + "?key=q-secret-value");
  EXPECT_EQ(request.body, R"({"report":"sales"})");
  EXPECT_EQ(request.Header("Content-Type"), "application/json");
  EXPECT_EQ(request.Header("Authorization"), std::string("Bearer ") + kToken);
  EXPECT_EQ(request.Header("X-Taskpipe-Job"), "daily-report");
  EXPECT_EQ(request.Header("X-Taskpipe-Message-Id"), "1f3c9a2e-0000-4000-8000-000000000001");
  EXPECT_EQ(request.Header("X-Taskpipe-Receive-Count"), "3");
}

TEST_F(HttpHandlerTest, NoContentIsSuccessAndConfiguredMethodAndContentTypeAreUsed) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Text(204, ""); });
  HandlerConfig config = Config(server);
  config.method = "PUT";
  config.headers["content-type"] = "application/vnd.report+json";
  auto handler = Make(config);
  HandlerOutcome outcome = handler->Run(Task(), {});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.output, "");
  HttpTestRequest request = server.requests().at(0);
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.Header("Content-Type"), "application/vnd.report+json");
  int content_types = 0;
  for (const auto& [name, value] : request.headers)
    content_types += (name == "Content-Type" || name == "content-type");
  EXPECT_EQ(content_types, 1);
}

TEST_F(HttpHandlerTest, ServerErrorIsAFailureWithTheBodyTail) {
  const std::string body = std::string(100 * 1024, 'e') + "database is down";
  HttpTestServer server([&](const HttpTestRequest&) { return HttpTestReply::Text(500, body); });
  auto handler = Make(Config(server));
  HandlerOutcome outcome = handler->Run(Task(), {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(outcome.status.message(), "HTTP 500");
  ASSERT_EQ(outcome.output.size(), kMaxHandlerOutputBytes);
  EXPECT_EQ(outcome.output, body.substr(body.size() - kMaxHandlerOutputBytes));
  ExpectNoSecret(outcome);
}

TEST_F(HttpHandlerTest, EchoedSecretsAreMaskedInTheOutput) {
  HttpTestServer server([](const HttpTestRequest& r) {
    return HttpTestReply::Text(
        401, "bad credentials: " + r.Header("Authorization").value_or("") + " for " + r.target);
  });
  auto handler = Make(Config(server));
  HandlerOutcome outcome = handler->Run(Task(), {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(outcome.status.message(), "HTTP 401");
  EXPECT_EQ(outcome.output, "bad credentials: *** for ***");
}

TEST_F(HttpHandlerTest, HangingServerTimesOutAtTheTaskDeadline) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  auto handler = Make(Config(server));  // timeout 10m: the deadline is what limits
  auto start = std::chrono::steady_clock::now();
  HandlerOutcome outcome = handler->Run(Task(300ms), {});
  EXPECT_LT(Since(start), 1s);
  EXPECT_EQ(outcome.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(outcome.status.message(), HasSubstr("timed out after "));
  ExpectNoSecret(outcome);
}

TEST_F(HttpHandlerTest, ConfiguredTimeoutLimitsWhenShorterThanTheDeadline) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  HandlerConfig config = Config(server);
  config.timeout = 1s;
  auto handler = Make(config);
  auto start = std::chrono::steady_clock::now();
  HandlerOutcome outcome = handler->Run(Task(30s), {});
  EXPECT_LT(Since(start), 1800ms);
  EXPECT_EQ(outcome.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(outcome.status.message(), HasSubstr("timed out after 1s"));
}

TEST_F(HttpHandlerTest, TransportErrorKeepsTheClientsMessage) {
  int port = testing::UnusedLoopbackPort();
  HandlerConfig config{.type = "http",
                       .url = "http://127.0.0.1:" + std::to_string(port) + kSecretPath,
                       .headers = {{"Authorization", std::string("Bearer ") + kToken}}};
  auto handler = Make(config);
  HandlerOutcome outcome = handler->Run(Task(), {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(outcome.status.message(), HasSubstr("127.0.0.1:" + std::to_string(port)));
  ExpectNoSecret(outcome);
}

TEST_F(HttpHandlerTest, StopRequestedBeforehandSendsNothing) {
  HttpTestServer server;
  auto handler = Make(Config(server));
  std::stop_source stop;
  stop.request_stop();
  HandlerOutcome outcome = handler->Run(Task(), stop.get_token());
  EXPECT_EQ(outcome.status.code(), StatusCode::kCancelled);
  EXPECT_EQ(server.request_count(), 0);
}

TEST_F(HttpHandlerTest, RejectsBadConfigsWithoutQuotingSecrets) {
  auto error = [&](const HandlerConfig& config) {
    StatusOr<std::unique_ptr<Handler>> handler = NewHttpHandler(config, Deps());
    EXPECT_FALSE(handler.ok());
    EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(handler.status().message(), Not(HasSubstr(kToken)));
    return handler.status().message();
  };
  EXPECT_THAT(error({.type = "http"}), HasSubstr("url is empty"));
  EXPECT_THAT(error({.type = "http", .url = std::string("ftp://example.com/") + kToken}),
              HasSubstr("must start with http:// or https://"));
  EXPECT_THAT(error({.type = "http", .url = kToken}), HasSubstr("must start with http:// or https://"));
  EXPECT_THAT(error({.type = "http", .url = "https:///path"}), HasSubstr("no host"));
  EXPECT_THAT(error({.type = "http", .url = "https://example.com", .method = "GE T"}),
              HasSubstr("not an HTTP method"));
  EXPECT_THAT(error({.type = "http",
                     .url = "https://example.com",
                     .headers = {{"X-Key", std::string(kToken) + "\r\nX: y"}}}),
              HasSubstr("headers.X-Key: value holds a line break"));
  EXPECT_THAT(error({.type = "http", .url = "https://example.com", .timeout = 0s}),
              HasSubstr("timeout must be positive"));
  EXPECT_TRUE(NewHttpHandler({.type = "http", .url = "HTTPS://example.com"}, Deps()).ok());
}

}  // namespace
}  // namespace taskpipe
