#include "net/curl_http_client.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "tests/testing/http_test_server.h"

namespace taskpipe {
namespace {

using ::taskpipe::testing::HttpTestReply;
using ::taskpipe::testing::HttpTestRequest;
using ::taskpipe::testing::HttpTestServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// Loopback tests go direct even where the environment names a proxy.
std::unique_ptr<HttpClient> NewClient(CurlHttpClientOptions options = {}) {
  if (!options.proxy) options.proxy = "";
  StatusOr<std::unique_ptr<HttpClient>> client = NewCurlHttpClient(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return std::move(client).value();
}

std::chrono::milliseconds Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

TEST(CurlHttpClientTest, GetRoundTrip) {
  HttpTestServer server([](const HttpTestRequest& r) { return HttpTestReply::Text(200, "hello " + r.path()); });
  auto client = NewClient();
  StatusOr<HttpResponse> response =
      client->Send({.url = server.url() + "/a/b?x=1&y=2", .headers = {{"X-Trace", "abc"}, {"X-Empty", ""}}});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello /a/b");
  EXPECT_EQ(response->Header("content-type"), "text/plain; charset=utf-8");

  ASSERT_EQ(server.request_count(), 1);
  HttpTestRequest req = server.requests()[0];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.target, "/a/b?x=1&y=2");
  EXPECT_EQ(req.query(), "x=1&y=2");
  EXPECT_EQ(req.version, "HTTP/1.1");
  EXPECT_EQ(req.Header("x-trace"), "abc");
  EXPECT_EQ(req.Header("X-Empty"), "");
  EXPECT_EQ(req.Header("User-Agent"), "taskpipe/" TASKPIPE_VERSION);
  EXPECT_EQ(req.body, "");
}

TEST(CurlHttpClientTest, PostSendsExactlyTheBodyAndHeadersGiven) {
  HttpTestServer server([](const HttpTestRequest& r) { return HttpTestReply::Json(201, "{\"got\":" + r.body + "}"); });
  auto client = NewClient();
  std::string big(100000, 'x');  // large enough that libcurl would add "Expect: 100-continue"
  StatusOr<HttpResponse> response = client->Send({.method = "POST",
                                                   .url = server.url() + "/post",
                                                   .headers = {{"Content-Type", "application/json"}},
                                                   .body = "{\"k\":\"" + big + "\"}"});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, "{\"got\":{\"k\":\"" + big + "\"}}");
  HttpTestRequest req = server.requests().at(0);
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.Header("Content-Type"), "application/json");
  EXPECT_EQ(req.Header("Expect"), std::nullopt);

  // No Content-Type given: none is sent (libcurl would default to a form type).
  ASSERT_TRUE(client->Send({.method = "POST", .url = server.url(), .body = "raw"}).ok());
  req = server.requests().at(1);
  EXPECT_EQ(req.Header("Content-Type"), std::nullopt);
  EXPECT_EQ(req.Header("Content-Length"), "3");
  EXPECT_EQ(req.body, "raw");
}

TEST(CurlHttpClientTest, OtherMethods) {
  HttpTestServer server([](const HttpTestRequest& r) { return HttpTestReply::Text(200, r.method + ":" + r.body); });
  auto client = NewClient();
  StatusOr<HttpResponse> put = client->Send({.method = "PUT", .url = server.url(), .body = "p"});
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->body, "PUT:p");
  StatusOr<HttpResponse> del = client->Send({.method = "DELETE", .url = server.url()});
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->body, "DELETE:");
  StatusOr<HttpResponse> post_empty = client->Send({.method = "POST", .url = server.url()});
  ASSERT_TRUE(post_empty.ok());
  EXPECT_EQ(post_empty->body, "POST:");
  StatusOr<HttpResponse> head = client->Send({.method = "HEAD", .url = server.url()});
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  EXPECT_EQ(head->Header("Content-Length"), "5");
  // After HEAD, the reused handle does a normal GET again.
  StatusOr<HttpResponse> get = client->Send({.url = server.url()});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->body, "GET:");
  EXPECT_EQ(server.connection_count(), 1);
}

TEST(CurlHttpClientTest, ResponseHeadersAreCaseInsensitiveAndKeepEveryValue) {
  HttpTestServer server([](const HttpTestRequest&) {
    HttpTestReply reply = HttpTestReply::Text(200, "ok");
    reply.headers.emplace_back("X-RateLimit-Remaining", "3");
    reply.headers.emplace_back("Set-Cookie", "a=1");
    reply.headers.emplace_back("set-cookie", "b=2");
    reply.headers.emplace_back("X-Spaces", "  padded value  ");
    return reply;
  });
  auto client = NewClient();
  StatusOr<HttpResponse> response = client->Send({.url = server.url()});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->Header("x-ratelimit-remaining"), "3");
  EXPECT_EQ(response->Header("X-RATELIMIT-REMAINING"), "3");
  EXPECT_EQ(response->Header("Set-Cookie"), "a=1");
  EXPECT_THAT(response->HeaderValues("SET-COOKIE"), ElementsAre("a=1", "b=2"));
  EXPECT_EQ(response->Header("X-Spaces"), "padded value");
  EXPECT_EQ(response->Header("Content-Length"), "2");
  EXPECT_EQ(response->Header("Missing"), std::nullopt);
  EXPECT_TRUE(response->HeaderValues("Missing").empty());
}

TEST(CurlHttpClientTest, Non2xxIsAResponseNotAnError) {
  HttpTestServer server([](const HttpTestRequest& r) {
    return HttpTestReply::Json(std::stoi(r.path().substr(1)), "{\"error\":\"x\"}");
  });
  auto client = NewClient();
  for (int code : {301, 400, 404, 429, 500, 503}) {
    StatusOr<HttpResponse> response = client->Send({.url = server.url() + "/" + std::to_string(code)});
    ASSERT_TRUE(response.ok()) << code << ": " << response.status().ToString();
    EXPECT_EQ(response->status, code);
    EXPECT_EQ(response->body, "{\"error\":\"x\"}");
  }
  EXPECT_EQ(server.connection_count(), 1);  // error replies keep the connection too
}

TEST(CurlHttpClientTest, RedirectIsNotFollowed) {
  HttpTestServer server([](const HttpTestRequest& r) {
    HttpTestReply reply = HttpTestReply::Text(r.path() == "/from" ? 302 : 200, r.path());
    reply.headers.emplace_back("Location", "/to");
    return reply;
  });
  auto client = NewClient();
  StatusOr<HttpResponse> response = client->Send({.url = server.url() + "/from"});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 302);
  EXPECT_EQ(response->Header("Location"), "/to");
  EXPECT_EQ(server.request_count(), 1);
}

TEST(CurlHttpClientTest, ChunkedResponseBody) {
  std::string body(50000, 'c');
  HttpTestServer server([&body](const HttpTestRequest&) {
    HttpTestReply reply = HttpTestReply::Text(200, body);
    reply.chunked = true;
    return reply;
  });
  auto client = NewClient();
  StatusOr<HttpResponse> response = client->Send({.url = server.url()});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, body);
}

TEST(CurlHttpClientTest, DelayedReplyArrives) {
  HttpTestServer server([](const HttpTestRequest&) {
    HttpTestReply reply = HttpTestReply::Text(200, "late");
    reply.delay = 100ms;
    return reply;
  });
  auto client = NewClient();
  auto start = std::chrono::steady_clock::now();
  StatusOr<HttpResponse> response = client->Send({.url = server.url()});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->body, "late");
  EXPECT_GE(Since(start), 90ms);
}

TEST(CurlHttpClientTest, ConnectionRefusedIsUnavailable) {
  int port = testing::UnusedLoopbackPort();
  auto client = NewClient();
  StatusOr<HttpResponse> response = client->Send({.url = "http://127.0.0.1:" + std::to_string(port) + "/x"});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable) << response.status().ToString();
  EXPECT_TRUE(IsRetryable(response.status()));
}

TEST(CurlHttpClientTest, TimeoutAgainstHangingServerIsDeadlineExceeded) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  auto client = NewClient();
  auto start = std::chrono::steady_clock::now();
  StatusOr<HttpResponse> response = client->Send({.url = server.url(), .timeout = 300ms});
  std::chrono::milliseconds elapsed = Since(start);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded) << response.status().ToString();
  EXPECT_GE(elapsed, 290ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST(CurlHttpClientTest, TruncatedBodyIsUnavailable) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Truncated("only part", 100); });
  auto client = NewClient();
  StatusOr<HttpResponse> response = client->Send({.url = server.url()});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable) << response.status().ToString();
}

TEST(CurlHttpClientTest, ResetIsUnavailable) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Reset(); });
  auto client = NewClient();
  StatusOr<HttpResponse> response = client->Send({.url = server.url()});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable) << response.status().ToString();
}

TEST(CurlHttpClientTest, CloseWithoutReplyIsUnavailable) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Close(); });
  auto client = NewClient();
  StatusOr<HttpResponse> response = client->Send({.url = server.url()});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable) << response.status().ToString();
}

TEST(CurlHttpClientTest, ClientRecoversAfterAFault) {
  std::atomic<int> calls{0};
  HttpTestServer server([&calls](const HttpTestRequest&) {
    return ++calls == 1 ? HttpTestReply::Reset() : HttpTestReply::Text(200, "fine");
  });
  auto client = NewClient();
  EXPECT_FALSE(client->Send({.url = server.url()}).ok());
  StatusOr<HttpResponse> response = client->Send({.url = server.url()});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "fine");
}

TEST(CurlHttpClientTest, ResponseOverTheLimitIsResourceExhausted) {
  HttpTestServer server([](const HttpTestRequest& r) {
    HttpTestReply reply = HttpTestReply::Text(200, std::string(r.path() == "/small" ? 100 : 200000, 'z'));
    reply.chunked = r.query() == "chunked";  // no Content-Length: the limit applies while reading
    if (r.path() == "/fat-headers") {
      reply.body = "";
      reply.headers.emplace_back("X-Fat", std::string(3000, 'h'));
    }
    return reply;
  });
  auto client = NewClient({.max_response_bytes = 2048});
  for (std::string path : {"/big", "/big?chunked", "/fat-headers"}) {
    StatusOr<HttpResponse> response = client->Send({.url = server.url() + path});
    ASSERT_FALSE(response.ok()) << path;
    EXPECT_EQ(response.status().code(), StatusCode::kResourceExhausted) << path << ": " << response.status().ToString();
  }
  StatusOr<HttpResponse> small = client->Send({.url = server.url() + "/small"});
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(small->body.size(), 100u);
}

TEST(CurlHttpClientTest, ExplicitProxyGetsTheAbsoluteUrl) {
  HttpTestServer proxy([](const HttpTestRequest& r) { return HttpTestReply::Text(200, "via proxy " + r.target); });
  auto client = NewClient({.proxy = proxy.url()});
  StatusOr<HttpResponse> response = client->Send({.url = "http://origin.invalid:8080/p?q=1"});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "via proxy http://origin.invalid:8080/p?q=1");
  EXPECT_EQ(proxy.requests().at(0).Header("Host"), "origin.invalid:8080");
}

// A TLS server on loopback with a fresh self-signed certificate: a client that verifies peers
// must refuse it. Serves one handshake attempt.
class SelfSignedTlsServer {
 public:
  SelfSignedTlsServer() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, cert);
    SSL_CTX_use_PrivateKey(ctx_, key);
    X509_free(cert);
    EVP_PKEY_free(key);

    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, 4);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;  // shut down before anyone connected
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      SSL_accept(ssl);  // fails when the client rejects the certificate
      SSL_free(ssl);
      close(fd);
    });
  }
  ~SelfSignedTlsServer() {
    shutdown(listen_fd_, SHUT_RDWR);  // unblocks accept()
    thread_.join();
    close(listen_fd_);
    SSL_CTX_free(ctx_);
  }
  int port() const { return port_; }

 private:
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(CurlHttpClientTest, TlsPeerVerificationIsAlwaysOn) {
  SelfSignedTlsServer server;
  auto client = NewClient();
  StatusOr<HttpResponse> response =
      client->Send({.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/SECRETPATH", .timeout = 5s});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kPermissionDenied) << response.status().ToString();
  EXPECT_FALSE(IsRetryable(response.status()));
  EXPECT_THAT(response.status().ToString(), Not(HasSubstr("SECRETPATH")));
}

TEST(CurlHttpClientTest, InvalidRequestsAreRejectedBeforeSending) {
  HttpTestServer server;
  auto client = NewClient();
  StatusOr<HttpResponse> injected =
      client->Send({.url = server.url(), .headers = {{"X-Evil", "a\r\nX-Injected: 1"}}});
  EXPECT_EQ(injected.status().code(), StatusCode::kInvalidArgument) << injected.status().ToString();
  StatusOr<HttpResponse> bad_name = client->Send({.url = server.url(), .headers = {{"Bad Name", "v"}}});
  EXPECT_EQ(bad_name.status().code(), StatusCode::kInvalidArgument);
  StatusOr<HttpResponse> bad_method = client->Send({.method = "GET /x", .url = server.url()});
  EXPECT_EQ(bad_method.status().code(), StatusCode::kInvalidArgument);
  StatusOr<HttpResponse> no_url = client->Send({});
  EXPECT_EQ(no_url.status().code(), StatusCode::kInvalidArgument);
  StatusOr<HttpResponse> ftp = client->Send({.url = "ftp://127.0.0.1:" + std::to_string(server.port()) + "/f"});
  EXPECT_EQ(ftp.status().code(), StatusCode::kInvalidArgument) << ftp.status().ToString();
  StatusOr<HttpResponse> file = client->Send({.url = "file:///etc/passwd"});
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument) << file.status().ToString();
  EXPECT_EQ(server.request_count(), 0);
}

TEST(CurlHttpClientTest, SequentialRequestsReuseOneConnection) {
  HttpTestServer server([](const HttpTestRequest& r) { return HttpTestReply::Text(200, r.path()); });
  auto client = NewClient();
  for (int i = 0; i < 20; ++i) {
    StatusOr<HttpResponse> response = client->Send({.url = server.url() + "/" + std::to_string(i)});
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->body, "/" + std::to_string(i));
  }
  EXPECT_EQ(server.request_count(), 20);
  EXPECT_EQ(server.connection_count(), 1);
}

TEST(CurlHttpClientTest, ServerClosingAfterAReplyIsHandledWithANewConnection) {
  HttpTestServer server([](const HttpTestRequest&) {
    HttpTestReply reply = HttpTestReply::Text(200, "bye");
    reply.close_after = true;
    return reply;
  });
  auto client = NewClient();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Send({.url = server.url()}).ok());
  EXPECT_EQ(server.connection_count(), 3);
}

TEST(CurlHttpClientTest, ConcurrentSendsFromManyThreads) {
  HttpTestServer server([](const HttpTestRequest& r) { return HttpTestReply::Text(200, r.path() + "|" + r.body); });
  auto client = NewClient();
  constexpr int kThreads = 4;
  constexpr int kRequests = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequests; ++i) {
        std::string id = std::to_string(t) + "-" + std::to_string(i);
        StatusOr<HttpResponse> response =
            client->Send({.method = "POST", .url = server.url() + "/" + id, .body = "body" + id});
        if (!response.ok() || response->status != 200 || response->body != "/" + id + "|body" + id) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(server.request_count(), kThreads * kRequests);
  EXPECT_LE(server.connection_count(), kThreads);
}

TEST(CurlHttpClientTest, ShutdownAbortsAHangingRequestPromptly) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  auto client = NewClient();
  StatusOr<HttpResponse> result = InternalError("not run");
  std::thread sender([&] { result = client->Send({.url = server.url() + "/poll", .timeout = 30s}); });
  ASSERT_TRUE(server.WaitForRequests(1));
  auto start = std::chrono::steady_clock::now();
  client->Shutdown();
  sender.join();
  std::chrono::milliseconds elapsed = Since(start);
  EXPECT_EQ(result.status().code(), StatusCode::kCancelled) << result.status().ToString();
  EXPECT_LT(elapsed, 1000ms);

  StatusOr<HttpResponse> later = client->Send({.url = server.url()});
  EXPECT_EQ(later.status().code(), StatusCode::kCancelled);
  client->Shutdown();  // idempotent
}

TEST(CurlHttpClientTest, ShutdownAbortsManyHangingRequests) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  auto client = NewClient();
  constexpr int kThreads = 3;
  std::vector<StatusOr<HttpResponse>> results(kThreads, StatusOr<HttpResponse>(InternalError("not run")));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = client->Send({.url = server.url(), .timeout = 30s}); });
  }
  ASSERT_TRUE(server.WaitForRequests(kThreads));
  auto start = std::chrono::steady_clock::now();
  client->Shutdown();
  for (std::thread& t : threads) t.join();
  EXPECT_LT(Since(start), 1000ms);
  for (const auto& r : results) EXPECT_EQ(r.status().code(), StatusCode::kCancelled) << r.status().ToString();
}

// Webhook URLs are credentials: no error message may carry a URL's path, query or user info.
TEST(CurlHttpClientTest, ErrorMessagesNeverContainTheUrlPathOrQuery) {
  HttpTestServer server([](const HttpTestRequest& r) {
    if (r.query().find("hang") != std::string::npos) return HttpTestReply::Hang();
    if (r.query().find("reset") != std::string::npos) return HttpTestReply::Reset();
    if (r.query().find("truncate") != std::string::npos) return HttpTestReply::Truncated("x", 10);
    if (r.query().find("close") != std::string::npos) return HttpTestReply::Close();
    return HttpTestReply::Text(200, std::string(5000, 'b'));
  });
  const std::string secret_path = "/services/T000/B000/SECRETPATH";
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  const std::string refused = "http://127.0.0.1:" + std::to_string(testing::UnusedLoopbackPort());
  std::vector<Status> errors;
  {
    auto client = NewClient({.max_response_bytes = 1000});
    for (std::string fault : {"hang", "reset", "truncate", "close", "big"}) {
      errors.push_back(client->Send({.url = base + secret_path + "?token=SECRETQUERY&" + fault, .timeout = 200ms}).status());
    }
    errors.push_back(client->Send({.url = refused + secret_path + "?token=SECRETQUERY"}).status());
    errors.push_back(client->Send({.url = "http://user:SECRETPASS@127.0.0.1:" + std::to_string(server.port()) +
                                          secret_path + "?hang",
                                   .timeout = 200ms})
                         .status());
    errors.push_back(client->Send({.url = "gopher://127.0.0.1" + secret_path + "?token=SECRETQUERY"}).status());
    errors.push_back(
        client->Send({.url = base + secret_path + "?x", .headers = {{"Bad\nName", "v"}}}).status());
    errors.push_back(client->Send({.url = "http://[::1" + secret_path + "?token=SECRETQUERY"}).status());
    client->Shutdown();
    errors.push_back(client->Send({.url = base + secret_path + "?token=SECRETQUERY"}).status());
  }
  {
    auto client = NewClient();
    StatusOr<HttpResponse> result = InternalError("not run");
    std::thread sender([&] { result = client->Send({.url = base + secret_path + "?token=SECRETQUERY&hang"}); });
    ASSERT_TRUE(server.WaitForRequests(7));
    client->Shutdown();
    sender.join();
    errors.push_back(result.status());
  }
  for (const Status& status : errors) {
    SCOPED_TRACE(status.ToString());
    EXPECT_FALSE(status.ok());
    EXPECT_THAT(status.ToString(), Not(HasSubstr("SECRET")));
    EXPECT_THAT(status.ToString(), Not(HasSubstr("services")));
  }
  // They still say where the request went.
  EXPECT_THAT(errors[0].message(), HasSubstr("127.0.0.1:" + std::to_string(server.port())));
  EXPECT_EQ(errors[0].code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(errors[4].code(), StatusCode::kResourceExhausted);
}

TEST(HttpStatusToStatusTest, MapsEveryClass) {
  struct Case {
    int http;
    StatusCode code;
  };
  for (const Case& c : std::vector<Case>{{200, StatusCode::kOk},
                                         {201, StatusCode::kOk},
                                         {204, StatusCode::kOk},
                                         {299, StatusCode::kOk},
                                         {429, StatusCode::kResourceExhausted},
                                         {500, StatusCode::kUnavailable},
                                         {502, StatusCode::kUnavailable},
                                         {503, StatusCode::kUnavailable},
                                         {504, StatusCode::kUnavailable},
                                         {599, StatusCode::kUnavailable},
                                         {401, StatusCode::kPermissionDenied},
                                         {403, StatusCode::kPermissionDenied},
                                         {404, StatusCode::kNotFound},
                                         {400, StatusCode::kInvalidArgument},
                                         {405, StatusCode::kInvalidArgument},
                                         {413, StatusCode::kInvalidArgument},
                                         {499, StatusCode::kInvalidArgument},
                                         {100, StatusCode::kUnknown},
                                         {302, StatusCode::kUnknown},
                                         {0, StatusCode::kUnknown},
                                         {600, StatusCode::kUnknown}}) {
    EXPECT_EQ(HttpStatusToStatus(c.http, "body").code(), c.code) << c.http;
  }
  EXPECT_TRUE(IsRetryable(HttpStatusToStatus(503, "")));
  EXPECT_TRUE(IsRetryable(HttpStatusToStatus(429, "")));
  EXPECT_FALSE(IsRetryable(HttpStatusToStatus(400, "")));
}

TEST(HttpStatusToStatusTest, MessageHasStatusAndAShortRedactedExcerpt) {
  EXPECT_EQ(HttpStatusToStatus(404, "").message(), "HTTP 404");
  EXPECT_EQ(HttpStatusToStatus(400, "invalid_payload").message(), "HTTP 400: invalid_payload");
  std::string long_body(1000, 'a');
  std::string message = HttpStatusToStatus(500, long_body).message();
  EXPECT_LT(message.size(), 300u);
  EXPECT_TRUE(message.ends_with("..."));
  // A multi-byte character is not cut in half.
  std::string utf8(255, 'a');
  utf8 += "\xC3\xA9tail";  // U+00E9 straddles byte 256
  EXPECT_THAT(HttpStatusToStatus(500, utf8).message(), Not(HasSubstr("\xC3.")));
  EXPECT_THAT(HttpStatusToStatus(403, "Authorization: Bearer abcdefSECRET").message(), Not(HasSubstr("SECRET")));
}

}  // namespace
}  // namespace taskpipe
