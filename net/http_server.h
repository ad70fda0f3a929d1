// HttpServer: the small HTTP/1.1 server behind `--metrics-port` (GET /healthz, GET /metrics).
//
// It is meant for probes and scrapers on a trusted network, not for the internet:
//  - GET and HEAD only (others get 405 with "Allow: GET, HEAD"); a request body is not read.
//  - One request per connection: every reply says "Connection: close" and the server closes.
//  - A request head over `max_request_bytes` gets 431; a malformed one gets 400; a client that
//    sends nothing whole within `read_timeout` is disconnected without a reply.
//  - Each connection has a thread of its own, at most `max_connections` at once; one over that
//    gets 503 at once, so a stuck scraper cannot block a health probe.
//  - The handler runs on the connection's thread and must be thread-safe.
// Binds `address` (an IPv4 or IPv6 literal; "127.0.0.1" by default, so nothing outside the host
// can reach it unless configured otherwise) and `port` (0: any free port; port() says which).
#ifndef TASKPIPE_NET_HTTP_SERVER_H_
#define TASKPIPE_NET_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace taskpipe {

struct HttpServerRequest {
  std::string method;  // "GET" or "HEAD"
  std::string target;  // as on the request line: "/metrics?x=1"
  std::string path;    // target up to '?'
};

struct HttpServerReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers{};  // extra headers
  std::string body{};  // not sent for HEAD (its Content-Length is)
};

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  int port = 0;
  std::chrono::milliseconds read_timeout{5000};
  std::size_t max_request_bytes = 8192;
  int max_connections = 8;
};

class HttpServer {
 public:
  using Handler = std::function<HttpServerReply(const HttpServerRequest&)>;
  virtual ~HttpServer() = default;  // implementations stop first

  // The port it listens on (the one chosen when options.port was 0).
  virtual int port() const = 0;
  // Stops accepting, closes the open connections, joins every thread. Idempotent.
  virtual void Stop() = 0;
};

// Binds and starts serving. Errors: kInvalidArgument for an address that is not an IP literal, a
// port out of 0..65535 or other bad options; kUnavailable when the address cannot be bound (the
// port is taken: the message says so).
StatusOr<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options, HttpServer::Handler handler);

// "200 OK", "404 Not Found", ...: the reason phrases of the statuses the server sends.
std::string HttpStatusLine(int status);

}  // namespace taskpipe

#endif  // TASKPIPE_NET_HTTP_SERVER_H_
