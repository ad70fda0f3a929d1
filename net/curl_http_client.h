// The production HttpClient, over libcurl (which appears only in curl_http_client.cc).
//
// - Connections are kept alive and reused: the client keeps a pool of transfer handles, each with
//   its own connection cache; a thread takes the most recently returned handle, so a thread that
//   sends requests one after another reuses one connection per host.
// - TLS peer and host verification are always on (the system CA store).
// - Proxies, unless CurlHttpClientOptions::proxy says otherwise, come from the environment as
//   libcurl reads it: `http_proxy`, `https_proxy` (or `HTTPS_PROXY`), `all_proxy`/`ALL_PROXY`,
//   `no_proxy`/`NO_PROXY`. Upper-case `HTTP_PROXY` is ignored on purpose (CGI programs get it from
//   a client's `Proxy:` header, "httpoxy"). libcurl 7.88 does not exempt localhost by itself:
//   with a proxy set, loopback needs `no_proxy=127.0.0.1,localhost`.
// - Redirects are not followed: a 3xx is returned as a response.
// - Only http and https are allowed.
//
// Thread-safe: see HttpClient.
#ifndef TASKPIPE_NET_CURL_HTTP_CLIENT_H_
#define TASKPIPE_NET_CURL_HTTP_CLIENT_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "net/http_client.h"

namespace taskpipe {

struct CurlHttpClientOptions {
  // A reply whose headers plus body exceed this fails with kResourceExhausted; the transfer is
  // stopped as soon as the limit is crossed, so memory stays bounded.
  std::size_t max_response_bytes = std::size_t{16} << 20;  // 16 MiB
  std::string user_agent = "taskpipe/" TASKPIPE_VERSION;
  // Idle transfer handles (each with its open connections) kept for reuse; more are created when
  // more threads send at once, and the surplus is closed when they come back.
  std::size_t max_idle_handles = 16;
  // nullopt: from the environment (above). "": never a proxy, whatever the environment says
  // (tests on loopback use this). Otherwise a proxy URL such as "http://proxy.internal:3128".
  std::optional<std::string> proxy = std::nullopt;
};

// Fails (kInternal) only if libcurl cannot be initialised. The client must outlive every Send()
// call made on it.
StatusOr<std::unique_ptr<HttpClient>> NewCurlHttpClient(const CurlHttpClientOptions& options = {});

}  // namespace taskpipe

#endif  // TASKPIPE_NET_CURL_HTTP_CLIENT_H_
