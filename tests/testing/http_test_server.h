// A real HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for tests of HTTP clients and of what
// sits on them: SQS fault injection, Slack/Discord webhook emulation.
//
// Each accepted connection gets a thread that parses requests (request line, headers,
// Content-Length or chunked bodies, "Expect: 100-continue"), keeps the connection alive as
// HTTP/1.1 does, records every request, and answers with what the handler returns: a response or
// a fault (hang, reset, truncated body, close without reply, delay).
//
//   HttpTestServer server([](const HttpTestRequest& r) { return HttpTestReply::Json(200, "{}"); });
//   client->Send({.url = server.url() + "/path"});
//   server.WaitForRequests(1);
//   EXPECT_EQ(server.requests()[0].path(), "/path");
//
// Thread-safe. The handler runs on connection threads, possibly several at once.
#ifndef TASKPIPE_TESTS_TESTING_HTTP_TEST_SERVER_H_
#define TASKPIPE_TESTS_TESTING_HTTP_TEST_SERVER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace taskpipe::testing {

struct HttpTestRequest {
  std::string method;
  std::string target;  // as on the request line: path and query, e.g. "/q?Action=Send"
  std::string version;  // "HTTP/1.1"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;     // de-chunked
  int connection = 0;   // 1 for the first accepted connection, 2 for the next, ...
  // Its position in requests(): 0 for the first request read. Handlers run on the connections'
  // threads, so their calls may come in another order; a handler that scripts replies by arrival
  // must go by this, not by counting its own calls.
  int index = 0;

  std::string path() const;   // target up to '?'
  std::string query() const;  // after '?', or ""
  // First value of header `name` (case-insensitive).
  std::optional<std::string> Header(std::string_view name) const;
};

struct HttpTestReply {
  enum class Fault {
    kNone,      // send the response
    kHang,      // read nothing more, answer nothing; until the server stops, the client
                // closes, or `hang_for` elapses (then the connection is closed)
    kReset,     // close with SO_LINGER 0: the client sees a TCP RST
    kTruncate,  // send headers with Content-Length = body.size() + `missing_bytes`, then the
                // body, then close
    kClose,     // close without answering
  };

  int status = 200;
  // Content-Length (or Transfer-Encoding) and Connection are set by the server.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};
  Fault fault = Fault::kNone;
  // Waited before the reply (or fault); a real timed wait, cut short when the server stops.
  // Keep it small (<= 200 ms) so tests stay fast.
  std::chrono::milliseconds delay{0};
  std::chrono::milliseconds hang_for{std::chrono::minutes(5)};
  std::size_t missing_bytes = 1;
  bool close_after = false;  // send "Connection: close" and close after this reply
  bool chunked = false;      // send the body with Transfer-Encoding: chunked (no Content-Length)

  static HttpTestReply Text(int status, std::string body);
  static HttpTestReply Json(int status, std::string body);
  static HttpTestReply Hang();
  static HttpTestReply Reset();
  static HttpTestReply Truncated(std::string body, std::size_t missing_bytes = 1);
  static HttpTestReply Close();
};

class HttpTestServer {
 public:
  using Handler = std::function<HttpTestReply(const HttpTestRequest&)>;

  // Binds 127.0.0.1:0 and starts serving (aborts the test binary if loopback cannot be bound).
  // The default handler answers 200 with an empty body.
  explicit HttpTestServer(Handler handler = nullptr);
  ~HttpTestServer();  // Stop()
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  // Replaces the handler for requests read from now on.
  void SetHandler(Handler handler);

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"

  // Every request read so far, in arrival order (recorded before the handler runs).
  std::vector<HttpTestRequest> requests() const;
  int request_count() const;
  // TCP connections accepted so far.
  int connection_count() const;
  // Waits until at least `n` requests have been read; returns false on timeout.
  bool WaitForRequests(int n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  bool WaitForConnections(int n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  // Stops accepting, releases hung connections, closes every connection and joins all threads.
  // Idempotent.
  void Stop();

 private:
  void AcceptLoop();
  void ServeConnection(int fd, int connection);
  // Waits until `fd` is readable or the server stops (or `timeout`); true if readable.
  bool WaitReadable(int fd, std::chrono::milliseconds timeout) const;
  // Reads until `buffer` holds at least `n` bytes; false on EOF, error or stop.
  bool ReadAtLeast(int fd, std::string& buffer, std::size_t n) const;
  bool ReadUntil(int fd, std::string& buffer, std::string_view delimiter, std::size_t limit) const;

  int listen_fd_ = -1;
  int wake_read_fd_ = -1;  // readable once Stop() begins: wakes every poll()
  int wake_write_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;
  std::once_flag stop_once_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Handler handler_;                          // GUARDED_BY(mu_)
  std::vector<HttpTestRequest> requests_;    // GUARDED_BY(mu_)
  int connections_ = 0;                      // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::vector<std::thread> conn_threads_;    // GUARDED_BY(mu_)
};

// A loopback port that nothing listens on (bound, then closed): connecting to it is refused.
int UnusedLoopbackPort();

}  // namespace taskpipe::testing

#endif  // TASKPIPE_TESTS_TESTING_HTTP_TEST_SERVER_H_
