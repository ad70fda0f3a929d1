#include "net/curl_http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/redact.h"

namespace taskpipe {
namespace {

// curl_global_init is not thread-safe and must run once per process before any other libcurl
// call; it is never undone (the process's lifetime, like RealClock()).
Status InitCurlOnce() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return InternalError(std::string("curl_global_init: ") + curl_easy_strerror(result));
  }
  return Status::Ok();
}

// --- Secrets in messages --------------------------------------------------------------------

// Returns `text` with every piece of `url` that may be secret (user info, path, query, fragment)
// masked, and known secret shapes redacted. libcurl's error buffer names the host and port only,
// but this does not rely on it.
std::string ScrubUrl(std::string_view text, std::string_view url) {
  std::string out(text);
  auto replace_all = [&out](std::string_view needle, std::string_view with) {
    if (needle.size() < 2) return;
    for (std::size_t pos = 0; (pos = out.find(needle, pos)) != std::string::npos; pos += with.size()) {
      out.replace(pos, needle.size(), with);
    }
  };
  replace_all(url, RedactUrl(url));
  std::size_t scheme_end = url.find("://");
  std::size_t host_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  std::size_t host_end = url.find_first_of("/?#", host_start);
  std::string_view authority = url.substr(host_start, host_end == std::string_view::npos
                                                           ? std::string_view::npos
                                                           : host_end - host_start);
  if (std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    replace_all(authority.substr(0, at + 1), "");
  }
  if (host_end != std::string_view::npos) replace_all(url.substr(host_end), "/***");
  return RedactKnownSecrets(out);
}

// --- CURLcode -> Status: the one mapping for libcurl's errors ------------------------------

// `detail` is libcurl's error buffer (already scrubbed), `where` is "METHOD scheme://host:port".
Status CurlCodeToStatus(CURLcode code, std::string_view where, std::string_view detail) {
  std::string message(where);
  message += ": ";
  message += curl_easy_strerror(code);
  if (!detail.empty()) {
    message += " (";
    message += detail;
    message += ")";
  }
  switch (code) {
    case CURLE_OK:
      return Status::Ok();
    case CURLE_OPERATION_TIMEDOUT:
      return DeadlineExceededError(std::move(message));
    case CURLE_ABORTED_BY_CALLBACK:
      return CancelledError(std::move(message));
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_PARTIAL_FILE:  // body shorter than Content-Length: the connection was cut
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_FAIL_REWIND:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_AGAIN:
    case CURLE_NO_CONNECTION_AVAILABLE:
    case CURLE_PROXY:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
      return UnavailableError(std::move(message));
    // A certificate that does not verify is a trust problem (wrong CA bundle, interception),
    // not a blip: retrying cannot fix it, so it is not kUnavailable.
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
      return PermissionDeniedError(std::move(message));
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return InvalidArgumentError(std::move(message));
    case CURLE_FILESIZE_EXCEEDED:
      return ResourceExhaustedError(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

// --- Request validation ------------------------------------------------------------------------

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) !=
                                                            std::string_view::npos;
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar); }

bool IsFieldValue(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// --- One transfer handle -----------------------------------------------------------------------

// An easy handle driven by its own multi handle. The multi handle owns the connection cache, so
// connections survive from one request to the next; and curl_multi_poll() can be woken from
// another thread (curl_multi_wakeup), which is how Shutdown() interrupts a transfer at once.
struct Transfer {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  char error[CURL_ERROR_SIZE] = {};

  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() {
    if (multi != nullptr) curl_multi_cleanup(multi);  // closes the cached connections
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

// What the callbacks of one exchange see.
struct Exchange {
  HttpResponse* response = nullptr;
  std::size_t max_bytes = 0;
  std::size_t received = 0;  // header + body bytes
  bool too_large = false;
  const std::atomic<bool>* shutdown = nullptr;

  bool Count(std::size_t n) {
    if (n > max_bytes - received) {
      too_large = true;
      return false;
    }
    received += n;
    return true;
  }
};

std::size_t OnBody(char* data, std::size_t size, std::size_t nmemb, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::size_t n = size * nmemb;
  if (!ex->Count(n)) return 0;  // != n: libcurl stops with CURLE_WRITE_ERROR
  ex->response->body.append(data, n);
  return n;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// Called once per header line, status line included, for every response libcurl reads (an
// interim "100 Continue" too): a new status line starts the header list afresh.
std::size_t OnHeader(char* data, std::size_t size, std::size_t nmemb, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::size_t n = size * nmemb;
  if (!ex->Count(n)) return 0;
  std::string_view line(data, n);
  auto& headers = ex->response->headers;
  if (line.starts_with("HTTP/")) {
    headers.clear();
    return n;
  }
  if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {  // obsolete line folding
    std::string_view more = TrimOws(line);
    if (!headers.empty() && !more.empty()) {
      headers.back().second += ' ';
      headers.back().second += more;
    }
    return n;
  }
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;  // the blank line that ends the headers
  headers.emplace_back(std::string(TrimOws(line.substr(0, colon))), std::string(TrimOws(line.substr(colon + 1))));
  return n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ex = static_cast<Exchange*>(user);
  return ex->shutdown->load(std::memory_order_acquire) ? 1 : 0;  // non-zero aborts the transfer
}

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

// --- The client --------------------------------------------------------------------------------

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(const CurlHttpClientOptions& options) : options_(options) {}
  ~CurlHttpClient() override = default;  // REQUIRES: no Send() in progress

  StatusOr<HttpResponse> Send(const HttpRequest& request) override;
  void Shutdown() override;

 private:
  // Returns a transfer handle for the calling thread's exclusive use until Release(), or kCancelled.
  StatusOr<Transfer*> Acquire(std::string_view where);
  void Release(Transfer* transfer);
  Status Configure(Transfer& transfer, const HttpRequest& request, Exchange& exchange, Slist& headers);
  // Runs the transfer to completion (or until Shutdown()); returns its CURLcode.
  CURLcode Run(Transfer& transfer, std::string_view where, Status& failure);

  const CurlHttpClientOptions options_;
  std::atomic<bool> shutdown_{false};  // also read, without mu_, by the progress callback

  std::mutex mu_;
  std::vector<std::unique_ptr<Transfer>> idle_;   // GUARDED_BY(mu_); LIFO: the warmest on top
  std::unordered_set<Transfer*> active_;          // GUARDED_BY(mu_); leased to a Send()
  std::vector<std::unique_ptr<Transfer>> leased_; // GUARDED_BY(mu_); owners of active_
};

StatusOr<Transfer*> CurlHttpClient::Acquire(std::string_view where) {
  std::unique_ptr<Transfer> transfer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_.load()) return CancelledError(std::string(where) + ": HTTP client shut down");
    if (!idle_.empty()) {
      transfer = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (transfer == nullptr) {
    transfer = std::make_unique<Transfer>();
    transfer->easy = curl_easy_init();
    transfer->multi = curl_multi_init();
    if (transfer->easy == nullptr || transfer->multi == nullptr) {
      return InternalError(std::string(where) + ": cannot create a libcurl handle");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Checked again under mu_: Shutdown() either sees this transfer in active_ (and wakes it) or
  // has already set shutdown_, which is then seen here.
  if (shutdown_.load()) return CancelledError(std::string(where) + ": HTTP client shut down");
  Transfer* raw = transfer.get();
  active_.insert(raw);
  leased_.push_back(std::move(transfer));
  return raw;
}

void CurlHttpClient::Release(Transfer* transfer) {
  std::unique_ptr<Transfer> surplus;  // destroyed outside the lock: closing sockets takes time
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(transfer);
  auto it = std::find_if(leased_.begin(), leased_.end(), [transfer](const auto& p) { return p.get() == transfer; });
  std::unique_ptr<Transfer> owned = std::move(*it);
  leased_.erase(it);
  if (!shutdown_.load() && idle_.size() < options_.max_idle_handles) {
    idle_.push_back(std::move(owned));
  } else {
    surplus = std::move(owned);
  }
  // `surplus` must die after `lock`: declared first, destroyed last.
}

void CurlHttpClient::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_.store(true, std::memory_order_release);
  // curl_multi_wakeup() is the one multi call that may be made from another thread; a wakeup
  // sent before the owner reaches curl_multi_poll() makes that poll return at once.
  for (Transfer* transfer : active_) curl_multi_wakeup(transfer->multi);
}

Status CurlHttpClient::Configure(Transfer& t, const HttpRequest& request, Exchange& exchange, Slist& headers) {
  CURL* e = t.easy;
  // Clears the options of the previous request; keeps connections, DNS and TLS session caches.
  curl_easy_reset(e);
  t.error[0] = '\0';

  bool has_expect = false;
  bool has_content_type = false;
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name) || !IsFieldValue(value)) {
      return InvalidArgumentError("header \"" + (IsFieldValue(name) ? name : std::string("?")) +
                                  "\": invalid name or a value with CR, LF or NUL");
    }
    has_expect = has_expect || EqualsNoCase(name, "Expect");
    has_content_type = has_content_type || EqualsNoCase(name, "Content-Type");
    // libcurl sends "Name;" as a header with an empty value ("Name:" would remove the header).
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
    if (appended == nullptr) return ResourceExhaustedError("out of memory building headers");
    if (headers == nullptr) headers.reset(appended);  // else appended to the same list
  }
  // libcurl would add "Expect: 100-continue" to large bodies (a round trip for nothing) and a
  // form Content-Type to every POST: send exactly what the caller asked for.
  std::vector<const char*> suppress;
  if (!has_expect) suppress.push_back("Expect:");
  if (!has_content_type) suppress.push_back("Content-Type:");
  for (const char* line : suppress) {
    curl_slist* appended = curl_slist_append(headers.get(), line);
    if (appended == nullptr) return ResourceExhaustedError("out of memory building headers");
    if (headers == nullptr) headers.reset(appended);  // else appended to the same list
  }

  if (!IsToken(request.method)) return InvalidArgumentError("invalid HTTP method");
  bool send_body = !request.body.empty() || request.method == "POST" || request.method == "PUT" ||
                   request.method == "PATCH";

  auto ms = [](std::chrono::milliseconds d) { return static_cast<long>(std::max<std::int64_t>(d.count(), 1)); };
  CURLcode rc = CURLE_OK;
  auto set = [&rc](CURLcode r) {
    if (rc == CURLE_OK) rc = r;
  };
  set(curl_easy_setopt(e, CURLOPT_URL, request.url.c_str()));
  set(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));  // no SIGALRM for DNS timeouts: threads
  set(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms(request.timeout)));
  set(curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms(request.connect_timeout)));
  set(curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L));
  set(curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L));
  set(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L));
  set(curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L));
  set(curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str()));
  if (options_.proxy) set(curl_easy_setopt(e, CURLOPT_PROXY, options_.proxy->c_str()));
  set(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error));
  set(curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get()));
  set(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody));
  set(curl_easy_setopt(e, CURLOPT_WRITEDATA, &exchange));
  set(curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader));
  set(curl_easy_setopt(e, CURLOPT_HEADERDATA, &exchange));
  set(curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L));
  set(curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &OnProgress));
  set(curl_easy_setopt(e, CURLOPT_XFERINFODATA, &exchange));
  // Rejects a too-large reply from its Content-Length before reading it; OnBody covers the rest.
  set(curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_response_bytes)));
  if (request.method == "HEAD") {
    set(curl_easy_setopt(e, CURLOPT_NOBODY, 1L));
  } else if (request.method != "GET" && request.method != "POST") {
    set(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str()));
  }
  if (send_body) {
    // Not copied: request.body outlives the transfer.
    set(curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size())));
    set(curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.body.data()));
    if (request.method == "GET") set(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "GET"));
  }
  if (rc != CURLE_OK) {
    return InternalError(std::string("curl_easy_setopt: ") + curl_easy_strerror(rc));
  }
  return Status::Ok();
}

CURLcode CurlHttpClient::Run(Transfer& t, std::string_view where, Status& failure) {
  CURLMcode mc = curl_multi_add_handle(t.multi, t.easy);
  if (mc != CURLM_OK) {
    failure = InternalError(std::string(where) + ": curl_multi_add_handle: " + curl_multi_strerror(mc));
    return CURLE_OK;
  }
  CURLcode result = CURLE_OK;
  bool done = false;
  while (!done) {
    int running = 0;
    mc = curl_multi_perform(t.multi, &running);
    if (mc != CURLM_OK) {
      failure = InternalError(std::string(where) + ": curl_multi_perform: " + curl_multi_strerror(mc));
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(t.multi, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == t.easy) {
        result = msg->data.result;
        done = true;
      }
    }
    if (done) break;
    if (shutdown_.load(std::memory_order_acquire)) {
      result = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    // Returns on socket activity, on libcurl's next timer (request timeouts included), on
    // curl_multi_wakeup() from Shutdown(), or after 1 s at the latest.
    mc = curl_multi_poll(t.multi, nullptr, 0, 1000, nullptr);
    if (mc != CURLM_OK) {
      failure = InternalError(std::string(where) + ": curl_multi_poll: " + curl_multi_strerror(mc));
      break;
    }
  }
  // Mid-transfer, this closes the connection instead of returning it to the cache.
  curl_multi_remove_handle(t.multi, t.easy);
  return result;
}

StatusOr<HttpResponse> CurlHttpClient::Send(const HttpRequest& request) {
  const std::string where = (IsToken(request.method) ? request.method : std::string("?")) + " " +
                            RedactUrl(request.url);
  if (request.url.empty()) return InvalidArgumentError("HTTP request without a URL");
  StatusOr<Transfer*> leased = Acquire(where);
  if (!leased.ok()) return leased.status();
  Transfer& transfer = **leased;

  HttpResponse response;
  Exchange exchange{.response = &response,
                    .max_bytes = options_.max_response_bytes,
                    .shutdown = &shutdown_};
  Slist headers;
  Status status = Configure(transfer, request, exchange, headers);
  CURLcode result = CURLE_OK;
  if (status.ok()) result = Run(transfer, where, status);
  long http_status = 0;
  if (status.ok() && result == CURLE_OK) curl_easy_getinfo(transfer.easy, CURLINFO_RESPONSE_CODE, &http_status);
  std::string detail = ScrubUrl(transfer.error, request.url);
  // HTTPHEADER points into `headers`, freed on return: clear it while the handle is still ours.
  curl_easy_setopt(transfer.easy, CURLOPT_HTTPHEADER, nullptr);
  Release(&transfer);

  if (!status.ok()) return status.WithContext(where);
  if (result == CURLE_OK) {
    response.status = static_cast<int>(http_status);
    return response;
  }
  if (exchange.too_large || result == CURLE_FILESIZE_EXCEEDED) {
    return ResourceExhaustedError(where + ": response larger than " + std::to_string(options_.max_response_bytes) +
                                  " bytes");
  }
  if (result == CURLE_ABORTED_BY_CALLBACK && shutdown_.load()) {
    return CancelledError(where + ": HTTP client shut down");
  }
  return CurlCodeToStatus(result, where, detail);
}

}  // namespace

StatusOr<std::unique_ptr<HttpClient>> NewCurlHttpClient(const CurlHttpClientOptions& options) {
  TASKPIPE_RETURN_IF_ERROR(InitCurlOnce());
  return std::unique_ptr<HttpClient>(std::make_unique<CurlHttpClient>(options));
}

}  // namespace taskpipe
