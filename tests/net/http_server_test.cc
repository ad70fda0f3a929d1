// Tests of the metrics HTTP server: with raw sockets for the byte-level cases (malformed requests,
// slow and silent clients, connection limits) and with the real libcurl client for the rest.
#include "net/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "net/curl_http_client.h"
#include "tests/testing/raw_client.h"

namespace taskpipe {
namespace {

using ::taskpipe::testing::RawClient;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

// A server whose handler echoes what it saw and counts its calls.
class HttpServerTest : public ::testing::Test {
 protected:
  std::unique_ptr<HttpServer> Start(HttpServerOptions options = {}) {
    StatusOr<std::unique_ptr<HttpServer>> server = StartHttpServer(options, [this](const HttpServerRequest& r) {
      ++calls_;
      HttpServerReply reply;
      reply.body = r.method + " " + r.path + " " + r.target;
      reply.headers.emplace_back("X-Extra", "1");
      return reply;
    });
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    return server.ok() ? std::move(*server) : nullptr;
  }
  std::atomic<int> calls_{0};
};

TEST_F(HttpServerTest, GetReachesTheHandlerAndTheConnectionClosesAfterTheReply) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  EXPECT_GT(server->port(), 0);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Write("GET /metrics?name=x HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n"));
  const std::string body = "GET /metrics /metrics?name=x";
  EXPECT_EQ(c.ReadToEnd(), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Extra: 1\r\n"
                           "Content-Length: " + std::to_string(body.size()) +
                               "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + body);
  EXPECT_EQ(calls_, 1);
}

TEST_F(HttpServerTest, BareLineFeedsAndHttp10AreAccepted) {
  auto server = Start();
  RawClient c(server->port());
  ASSERT_TRUE(c.Write("GET /healthz HTTP/1.0\n\n"));
  EXPECT_THAT(c.ReadToEnd(), AllOf(StartsWith("HTTP/1.1 200 OK\r\n"), HasSubstr("\r\n\r\nGET /healthz /healthz")));
}

TEST_F(HttpServerTest, HeadSendsTheHeadersWithoutTheBody) {
  auto server = Start();
  RawClient c(server->port());
  ASSERT_TRUE(c.Write("HEAD /metrics HTTP/1.1\r\n\r\n"));
  const std::string reply = c.ReadToEnd();
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, HasSubstr("Content-Length: " + std::to_string(std::string("HEAD /metrics /metrics").size())));
  EXPECT_EQ(reply.substr(reply.size() - 4), "\r\n\r\n");  // nothing after the head
}

TEST_F(HttpServerTest, OtherMethodsGet405WithAllowAndNeverReachTheHandler) {
  auto server = Start();
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
    RawClient c(server->port());
    ASSERT_TRUE(c.Write(std::string(method) + " /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
    const std::string reply = c.ReadToEnd();
    EXPECT_THAT(reply, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n")) << method;
    EXPECT_THAT(reply, HasSubstr("Allow: GET, HEAD\r\n")) << method;
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(HttpServerTest, MalformedRequestLinesGet400) {
  auto server = Start();
  for (const char* line : {"garbage", "GET /x", "GET  HTTP/1.1", "GET x HTTP/1.1", "GET /x HTTP/2.0",
                           "GET /x y HTTP/1.1", "G(T /x HTTP/1.1", " GET /x HTTP/1.1"}) {
    RawClient c(server->port());
    ASSERT_TRUE(c.Write(std::string(line) + "\r\n\r\n"));
    EXPECT_THAT(c.ReadToEnd(), StartsWith("HTTP/1.1 400 Bad Request\r\n")) << line;
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(HttpServerTest, AnOversizedRequestHeadGets431) {
  HttpServerOptions options;
  options.max_request_bytes = 256;
  auto server = Start(options);
  RawClient c(server->port());
  ASSERT_TRUE(c.Write("GET /metrics HTTP/1.1\r\nX-Long: " + std::string(1000, 'a')));  // never ends
  EXPECT_THAT(c.ReadToEnd(), StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  RawClient d(server->port());  // a whole head, but too long
  ASSERT_TRUE(d.Write("GET /metrics HTTP/1.1\r\nX-Long: " + std::string(300, 'a') + "\r\n\r\n"));
  EXPECT_THAT(d.ReadToEnd(), StartsWith("HTTP/1.1 431 "));
  EXPECT_EQ(calls_, 0);
}

TEST_F(HttpServerTest, SilentAndSlowClientsAreDisconnectedAfterTheReadTimeout) {
  HttpServerOptions options;
  options.read_timeout = 200ms;
  auto server = Start(options);
  RawClient silent(server->port());
  RawClient slow(server->port());
  ASSERT_TRUE(slow.Write("GET /metr"));  // half a request line, then nothing
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(silent.ReadToEnd(), "");
  EXPECT_EQ(slow.ReadToEnd(), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(calls_, 0);
}

TEST_F(HttpServerTest, ConnectionsOverTheLimitGet503AtOnce) {
  HttpServerOptions options;
  options.max_connections = 1;
  options.read_timeout = 300ms;
  auto server = Start(options);
  RawClient idle(server->port());  // takes the only slot until its read timeout
  ASSERT_TRUE(idle.connected());
  std::this_thread::sleep_for(50ms);  // let the server accept it first
  RawClient over(server->port());
  ASSERT_TRUE(over.Write("GET /healthz HTTP/1.1\r\n\r\n"));
  EXPECT_THAT(over.ReadToEnd(), StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_EQ(idle.ReadToEnd(), "");  // timed out: the slot is free again
  std::string reply;
  for (int i = 0; i < 50 && reply.find("200 OK") == std::string::npos; ++i) {
    RawClient next(server->port());
    next.Write("GET /healthz HTTP/1.1\r\n\r\n");
    reply = next.ReadToEnd();
    if (reply.find("200 OK") == std::string::npos) std::this_thread::sleep_for(20ms);
  }
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST_F(HttpServerTest, StopClosesOpenConnectionsPromptly) {
  HttpServerOptions options;
  options.read_timeout = 30s;
  auto server = Start(options);
  RawClient idle(server->port());
  ASSERT_TRUE(idle.connected());
  std::this_thread::sleep_for(50ms);
  const auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(idle.ReadToEnd(), "");
  server->Stop();  // idempotent
  RawClient after(server->port());
  EXPECT_FALSE(after.connected());
}

TEST_F(HttpServerTest, ABusyPortIsAClearErrorAndBadOptionsAreRejected) {
  auto first = Start();
  HttpServerOptions same;
  same.port = first->port();
  auto handler = [](const HttpServerRequest&) { return HttpServerReply{}; };
  StatusOr<std::unique_ptr<HttpServer>> second = StartHttpServer(same, handler);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("127.0.0.1:" + std::to_string(first->port())));
  EXPECT_THAT(second.status().message(), HasSubstr("another process has the port"));

  HttpServerOptions named;
  named.address = "localhost";
  StatusOr<std::unique_ptr<HttpServer>> bad = StartHttpServer(named, handler);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("is not an IP address"));
  HttpServerOptions out_of_range;
  out_of_range.port = 70000;
  EXPECT_EQ(StartHttpServer(out_of_range, handler).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StartHttpServer(HttpServerOptions{}, nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(HttpServerTest, ServesTheRealClientConcurrently) {
  auto server = Start();
  StatusOr<std::unique_ptr<HttpClient>> http = NewCurlHttpClient(CurlHttpClientOptions{.proxy = ""});
  ASSERT_TRUE(http.ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string path = "/t" + std::to_string(t) + "/" + std::to_string(i);
        StatusOr<HttpResponse> r = (*http)->Send(HttpRequest{.url = "http://127.0.0.1:" + std::to_string(server->port()) + path});
        if (r.ok() && r->status == 200 && r->body == "GET " + path + " " + path) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok, 120);
  EXPECT_EQ(calls_, 120);
}

TEST_F(HttpServerTest, ListensOnIpv6LoopbackWhenAsked) {
  HttpServerOptions options;
  options.address = "::1";
  StatusOr<std::unique_ptr<HttpServer>> server =
      StartHttpServer(options, [](const HttpServerRequest&) { return HttpServerReply{.body = "six"}; });
  if (!server.ok() && server.status().code() == StatusCode::kUnavailable) {
    GTEST_SKIP() << "no IPv6 loopback here: " << server.status().ToString();
  }
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  StatusOr<std::unique_ptr<HttpClient>> http = NewCurlHttpClient(CurlHttpClientOptions{.proxy = ""});
  ASSERT_TRUE(http.ok());
  StatusOr<HttpResponse> r =
      (*http)->Send(HttpRequest{.url = "http://[::1]:" + std::to_string((*server)->port()) + "/healthz"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "six");
}

TEST(HttpStatusLineTest, NamesTheStatusesTheServerSends) {
  EXPECT_EQ(HttpStatusLine(200), "200 OK");
  EXPECT_EQ(HttpStatusLine(503), "503 Service Unavailable");
  EXPECT_EQ(HttpStatusLine(299), "299");
}

}  // namespace
}  // namespace taskpipe
