// Tests of the loopback HTTP server itself, with raw sockets, so that faults in an HTTP client
// and faults in the server cannot hide each other.
#include "tests/testing/http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/raw_client.h"

namespace taskpipe::testing {
namespace {

using namespace std::chrono_literals;

TEST(HttpTestServerTest, ParsesRequestAndAnswersWithKeepAlive) {
  HttpTestServer server([](const HttpTestRequest& r) { return HttpTestReply::Text(200, "echo:" + r.body); });
  EXPECT_GT(server.port(), 0);
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()));
  RawClient c(server.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Write("POST /p/q?a=1 HTTP/1.1\r\nHost: x\r\nX-One:  v1 \r\nContent-Length: 5\r\n\r\nhello"));
  std::string expected =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\necho:hello";
  EXPECT_EQ(c.Read(expected.size()), expected);
  // Same connection, second request (chunked body this time).
  ASSERT_TRUE(c.Write("PUT /two HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nT: x\r\n\r\n"));
  std::string expected2 =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\necho:abcde";
  EXPECT_EQ(c.Read(expected2.size()), expected2);

  ASSERT_TRUE(server.WaitForRequests(2));
  std::vector<HttpTestRequest> reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/p/q?a=1");
  EXPECT_EQ(reqs[0].path(), "/p/q");
  EXPECT_EQ(reqs[0].query(), "a=1");
  EXPECT_EQ(reqs[0].Header("x-one"), "v1");
  EXPECT_EQ(reqs[0].body, "hello");
  EXPECT_EQ(reqs[0].connection, 1);
  EXPECT_EQ(reqs[1].method, "PUT");
  EXPECT_EQ(reqs[1].body, "abcde");
  EXPECT_EQ(reqs[1].connection, 1);
  EXPECT_EQ(server.connection_count(), 1);
}

TEST(HttpTestServerTest, IndexIsTheReadOrderEvenWhenHandlersRunOutOfOrder) {
  // The first request's handler is held until the second one's has run: the handler calls come
  // in the other order, and `index` still says which request was read first.
  std::mutex mu;
  std::condition_variable cv;
  bool second_handled = false;
  HttpTestServer server([&](const HttpTestRequest& r) {
    std::unique_lock<std::mutex> lock(mu);
    if (r.path() == "/first") {
      cv.wait_for(lock, 5s, [&] { return second_handled; });
    } else {
      second_handled = true;
      cv.notify_all();
    }
    return HttpTestReply::Text(200, std::to_string(r.index));
  });
  RawClient a(server.port());
  RawClient b(server.port());
  ASSERT_TRUE(a.Write("GET /first HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(server.WaitForRequests(1));
  ASSERT_TRUE(b.Write("GET /second HTTP/1.1\r\n\r\n"));
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 1\r\n\r\n";
  EXPECT_EQ(b.Read(head.size() + 1), head + "1");
  EXPECT_EQ(a.Read(head.size() + 1), head + "0");
  std::vector<HttpTestRequest> reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].path(), "/first");
  EXPECT_EQ(reqs[0].index, 0);
  EXPECT_EQ(reqs[1].index, 1);
}

TEST(HttpTestServerTest, ConnectionCloseAndHttp10CloseAfterTheReply) {
  HttpTestServer server;
  {
    RawClient c(server.port());
    ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    EXPECT_EQ(c.ReadToEnd(), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n");
  }
  {
    RawClient c(server.port());
    ASSERT_TRUE(c.Write("GET / HTTP/1.0\r\n\r\n"));
    EXPECT_NE(c.ReadToEnd().find("Connection: close"), std::string::npos);
  }
  EXPECT_EQ(server.connection_count(), 2);
}

TEST(HttpTestServerTest, ExpectContinueGetsAnInterimReply) {
  HttpTestServer server([](const HttpTestRequest& r) {
    HttpTestReply reply = HttpTestReply::Text(200, r.body);
    reply.close_after = true;
    return reply;
  });
  RawClient c(server.port());
  ASSERT_TRUE(c.Write("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"));
  std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(c.Read(interim.size()), interim);
  ASSERT_TRUE(c.Write("ok"));
  EXPECT_TRUE(c.ReadToEnd().ends_with("\r\n\r\nok"));
}

TEST(HttpTestServerTest, MalformedRequestGets400) {
  HttpTestServer server;
  RawClient c(server.port());
  ASSERT_TRUE(c.Write("NONSENSE\r\n\r\n"));
  EXPECT_TRUE(c.ReadToEnd().starts_with("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_EQ(server.request_count(), 0);
}

TEST(HttpTestServerTest, ChunkedReply) {
  HttpTestServer server([](const HttpTestRequest&) {
    HttpTestReply reply = HttpTestReply::Text(200, "abc");
    reply.chunked = true;
    reply.close_after = true;
    return reply;
  });
  RawClient c(server.port());
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\n\r\n"));
  std::string got = c.ReadToEnd();
  EXPECT_NE(got.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_EQ(got.find("Content-Length"), std::string::npos);
  EXPECT_TRUE(got.ends_with("\r\n\r\n3\r\nabc\r\n0\r\n\r\n")) << got;
}

TEST(HttpTestServerTest, TruncatedReplyDeclaresMoreThanItSends) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Truncated("12345", 10); });
  RawClient c(server.port());
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\n\r\n"));
  std::string got = c.ReadToEnd();
  EXPECT_NE(got.find("Content-Length: 15\r\n"), std::string::npos);
  EXPECT_TRUE(got.ends_with("\r\n\r\n12345"));
}

TEST(HttpTestServerTest, ResetSendsRst) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Reset(); });
  RawClient c(server.port());
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\n\r\n"));
  int error = -1;
  EXPECT_EQ(c.ReadToEnd(&error), "");
  EXPECT_EQ(error, ECONNRESET);
}

TEST(HttpTestServerTest, CloseSendsNothing) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Close(); });
  RawClient c(server.port());
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\n\r\n"));
  int error = -1;
  EXPECT_EQ(c.ReadToEnd(&error), "");
  EXPECT_EQ(error, 0);  // a clean EOF
}

TEST(HttpTestServerTest, HangEndsAfterHangFor) {
  HttpTestServer server([](const HttpTestRequest&) {
    HttpTestReply reply = HttpTestReply::Hang();
    reply.hang_for = 100ms;
    return reply;
  });
  RawClient c(server.port());
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\n\r\n"));
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.ReadToEnd(), "");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 90ms);
}

TEST(HttpTestServerTest, StopReleasesHungConnectionsPromptly) {
  auto server = std::make_unique<HttpTestServer>([](const HttpTestRequest&) { return HttpTestReply::Hang(); });
  RawClient a(server->port());
  RawClient b(server->port());
  ASSERT_TRUE(a.Write("GET /a HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(b.Write("GET /b HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(server->WaitForRequests(2));
  RawClient idle(server->port());  // connected, never sends
  ASSERT_TRUE(server->WaitForConnections(3));
  auto start = std::chrono::steady_clock::now();
  server.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(a.ReadToEnd(), "");
  EXPECT_EQ(idle.ReadToEnd(), "");
}

TEST(HttpTestServerTest, StopCutsADelayShort) {
  auto server = std::make_unique<HttpTestServer>([](const HttpTestRequest&) {
    HttpTestReply reply = HttpTestReply::Text(200, "late");
    reply.delay = 10s;  // longer than tests should use: shows that Stop() does not wait for it
    return reply;
  });
  RawClient c(server->port());
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(server->WaitForRequests(1));
  auto start = std::chrono::steady_clock::now();
  server->Stop();
  server->Stop();  // idempotent
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(HttpTestServerTest, SetHandlerChangesLaterReplies) {
  HttpTestServer server([](const HttpTestRequest&) { return HttpTestReply::Text(429, "slow down"); });
  RawClient c(server.port());
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_TRUE(c.Read(12).starts_with("HTTP/1.1 429"));
  server.SetHandler([](const HttpTestRequest&) {
    HttpTestReply reply = HttpTestReply::Json(200, "{}");
    reply.close_after = true;
    return reply;
  });
  RawClient d(server.port());
  ASSERT_TRUE(d.Write("GET / HTTP/1.1\r\n\r\n"));
  std::string got = d.ReadToEnd();
  EXPECT_TRUE(got.starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(got.ends_with("\r\n\r\n{}"));
}

TEST(HttpTestServerTest, WaitForRequestsTimesOut) {
  HttpTestServer server;
  EXPECT_FALSE(server.WaitForRequests(1, 10ms));
  EXPECT_FALSE(server.WaitForConnections(1, 10ms));
}

TEST(HttpTestServerTest, UnusedLoopbackPortRefusesConnections) {
  RawClient c(UnusedLoopbackPort());
  EXPECT_FALSE(c.connected());
}

}  // namespace
}  // namespace taskpipe::testing
