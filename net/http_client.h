// HttpClient: the one interface through which taskpipe speaks HTTP (SQS, Slack and Discord
// webhooks, the `http` handler). The production implementation is NewCurlHttpClient()
// (net/curl_http_client.h); tests use tests/fakes/ or a real loopback server
// (tests/testing/http_test_server.h).
//
// Implementations are thread-safe: any number of threads may call Send() concurrently.
#ifndef TASKPIPE_NET_HTTP_CLIENT_H_
#define TASKPIPE_NET_HTTP_CLIENT_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace taskpipe {

// Every member has a default member initializer so that designated initializers
// ({.method = "POST", .url = u}) pass -Wmissing-field-initializers.
struct HttpRequest {
  std::string method = "GET";  // any token: GET, POST, PUT, DELETE, HEAD, ...
  // Absolute http:// or https:// URL. May hold credentials (webhook URLs are secrets): it never
  // appears in an error message beyond scheme://host:port.
  std::string url;
  // Sent in order, as given. Names and values must not contain CR or LF.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};  // sent with Content-Length when non-empty (or when the method is POST/PUT)
  std::chrono::milliseconds timeout{30000};         // whole exchange, connect included
  std::chrono::milliseconds connect_timeout{5000};  // TCP + TLS handshake
};

struct HttpResponse {
  int status = 0;
  // In the order received; names as the server spelled them.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};

  // The first value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
  // Every value of header `name` (case-insensitive), in order; empty when absent.
  std::vector<std::string> HeaderValues(std::string_view name) const;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;

  // Performs one exchange. A reply with any HTTP status (404, 429, 503, ...) is a response, not an
  // error: use HttpStatusToStatus() to turn it into one. Errors are transport failures only:
  //  - kDeadlineExceeded: request.timeout or request.connect_timeout elapsed;
  //  - kUnavailable: connection refused/reset, name resolution, send/receive errors, a truncated
  //    or malformed reply;
  //  - kResourceExhausted: the reply exceeds the implementation's size limit;
  //  - kPermissionDenied: TLS peer verification failed;
  //  - kInvalidArgument: a malformed URL, unsupported scheme, or header with CR/LF;
  //  - kCancelled: Shutdown() was called before or during the exchange.
  // Error messages name at most scheme://host:port of the URL, never its path or query.
  virtual StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;

  // Aborts in-flight exchanges promptly (they return kCancelled) and makes every later Send()
  // fail with kCancelled. Idempotent; may be called from any thread.
  virtual void Shutdown() = 0;
};

// The one mapping from an HTTP status to a Status: 2xx -> OK; 429 -> kResourceExhausted;
// 5xx -> kUnavailable; 401, 403 -> kPermissionDenied; 404 -> kNotFound; any other 4xx ->
// kInvalidArgument; anything else (1xx, 3xx, out of range) -> kUnknown. The message is
// "HTTP <status>" plus up to 256 bytes of `body_excerpt`, with known secret shapes redacted.
Status HttpStatusToStatus(int http_status, std::string_view body_excerpt);

}  // namespace taskpipe

#endif  // TASKPIPE_NET_HTTP_CLIENT_H_
