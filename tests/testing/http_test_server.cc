#include "tests/testing/http_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/clock.h"

namespace taskpipe::testing {
namespace {

constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
constexpr std::size_t kMaxBodyBytes = 64 * 1024 * 1024;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "HttpTestServer: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool ContainsTokenNoCase(std::string_view list, std::string_view token) {
  std::string lower(list);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find(token) != std::string::npos;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<std::string> FindHeader(const std::vector<std::pair<std::string, std::string>>& headers,
                                      std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (EqualsNoCase(k, name)) return v;
  }
  return std::nullopt;
}

const char* Reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

// Parses the head (request line and headers, without the final CRLF CRLF) into `req`.
bool ParseHead(std::string_view head, HttpTestRequest& req) {
  std::size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return false;
  req.method = std::string(line.substr(0, sp1));
  req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  req.version = std::string(line.substr(sp2 + 1));
  if (req.method.empty() || req.target.empty() || !req.version.starts_with("HTTP/1.")) return false;
  while (eol != std::string_view::npos) {
    std::size_t start = eol + 2;
    eol = head.find("\r\n", start);
    std::string_view header = head.substr(start, eol == std::string_view::npos ? eol : eol - start);
    if (header.empty()) continue;
    std::size_t colon = header.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    req.headers.emplace_back(std::string(header.substr(0, colon)), std::string(Trim(header.substr(colon + 1))));
  }
  return true;
}

}  // namespace

// --- HttpTestRequest / HttpTestReply -------------------------------------------------------------

std::string HttpTestRequest::path() const { return target.substr(0, target.find('?')); }

std::string HttpTestRequest::query() const {
  std::size_t q = target.find('?');
  return q == std::string::npos ? "" : target.substr(q + 1);
}

std::optional<std::string> HttpTestRequest::Header(std::string_view name) const { return FindHeader(headers, name); }

HttpTestReply HttpTestReply::Text(int status, std::string body) {
  HttpTestReply r;
  r.status = status;
  r.headers = {{"Content-Type", "text/plain; charset=utf-8"}};
  r.body = std::move(body);
  return r;
}

HttpTestReply HttpTestReply::Json(int status, std::string body) {
  HttpTestReply r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}};
  r.body = std::move(body);
  return r;
}

HttpTestReply HttpTestReply::Hang() {
  HttpTestReply r;
  r.fault = Fault::kHang;
  return r;
}

HttpTestReply HttpTestReply::Reset() {
  HttpTestReply r;
  r.fault = Fault::kReset;
  return r;
}

HttpTestReply HttpTestReply::Truncated(std::string body, std::size_t missing_bytes) {
  HttpTestReply r = Text(200, std::move(body));
  r.fault = Fault::kTruncate;
  r.missing_bytes = missing_bytes;
  return r;
}

HttpTestReply HttpTestReply::Close() {
  HttpTestReply r;
  r.fault = Fault::kClose;
  return r;
}

// --- HttpTestServer ------------------------------------------------------------------------------

HttpTestServer::HttpTestServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) Die("socket");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("bind");
  if (listen(listen_fd_, 128) != 0) Die("listen");
  socklen_t len = sizeof(addr);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Die("getsockname");
  port_ = ntohs(addr.sin_port);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) Die("pipe2");
  wake_read_fd_ = fds[0];
  wake_write_fd_ = fds[1];
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

HttpTestServer::~HttpTestServer() { Stop(); }

void HttpTestServer::SetHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handler_ = std::move(handler);
}

std::string HttpTestServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::vector<HttpTestRequest> HttpTestServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

int HttpTestServer::request_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(requests_.size());
}

int HttpTestServer::connection_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

bool HttpTestServer::WaitForRequests(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return RealClock().WaitFor(lock, cv_, timeout, [&] { return static_cast<int>(requests_.size()) >= n; });
}

bool HttpTestServer::WaitForConnections(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return RealClock().WaitFor(lock, cv_, timeout, [&] { return connections_ >= n; });
}

void HttpTestServer::Stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    // The pipe stays readable from now on: every poll() in every thread returns.
    char byte = 'x';
    while (write(wake_write_fd_, &byte, 1) < 0 && errno == EINTR) {
    }
    accept_thread_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(conn_threads_);  // no more are added: the accept thread is gone
    }
    for (std::thread& t : threads) t.join();
    close(listen_fd_);
    close(wake_read_fd_);
    close(wake_write_fd_);
  });
}

void HttpTestServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Die("poll");
    }
    if (fds[1].revents != 0) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // EINTR, ECONNABORTED, ...
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        close(fd);
        return;
      }
      int connection = ++connections_;
      conn_threads_.emplace_back([this, fd, connection] { ServeConnection(fd, connection); });
    }
    cv_.notify_all();
  }
}

bool HttpTestServer::WaitReadable(int fd, std::chrono::milliseconds timeout) const {
  while (true) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_read_fd_, POLLIN, 0}};
    int rc = poll(fds, 2, timeout.count() < 0 ? -1 : static_cast<int>(timeout.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0 || fds[1].revents != 0) return false;
    return true;
  }
}

bool HttpTestServer::ReadAtLeast(int fd, std::string& buffer, std::size_t n) const {
  char chunk[16384];
  while (buffer.size() < n) {
    if (!WaitReadable(fd, std::chrono::milliseconds(-1))) return false;
    ssize_t got = recv(fd, chunk, sizeof(chunk), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(got));
  }
  return true;
}

bool HttpTestServer::ReadUntil(int fd, std::string& buffer, std::string_view delimiter, std::size_t limit) const {
  std::size_t searched = 0;
  while (buffer.find(delimiter, searched) == std::string::npos) {
    if (buffer.size() > limit) return false;
    searched = buffer.size() >= delimiter.size() ? buffer.size() - delimiter.size() + 1 : 0;
    if (!ReadAtLeast(fd, buffer, buffer.size() + 1)) return false;
  }
  return true;
}

namespace {

// Writes all of `data`, waiting for the socket to drain but not past the server's stop.
bool WriteAll(int fd, int wake_fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd fds[2] = {{fd, POLLOUT, 0}, {wake_fd, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 && errno != EINTR) return false;
      if (fds[1].revents != 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

// `content_length` nullopt: chunked.
std::string ResponseHead(int status, const std::vector<std::pair<std::string, std::string>>& headers,
                         std::optional<std::size_t> content_length, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  for (const auto& [k, v] : headers) {
    if (EqualsNoCase(k, "Content-Length") || EqualsNoCase(k, "Connection") ||
        EqualsNoCase(k, "Transfer-Encoding")) {
      continue;
    }
    out += k + ": " + v + "\r\n";
  }
  if (content_length) {
    out += "Content-Length: " + std::to_string(*content_length) + "\r\n";
  } else {
    out += "Transfer-Encoding: chunked\r\n";
  }
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

}  // namespace

void HttpTestServer::ServeConnection(int fd, int connection) {
  std::string buffer;
  while (true) {
    if (!ReadUntil(fd, buffer, "\r\n\r\n", kMaxHeaderBytes)) {
      if (buffer.size() > kMaxHeaderBytes) WriteAll(fd, wake_read_fd_, ResponseHead(431, {}, 0, true));
      break;
    }
    std::size_t head_end = buffer.find("\r\n\r\n");
    HttpTestRequest req;
    req.connection = connection;
    bool parsed = ParseHead(std::string_view(buffer).substr(0, head_end), req);
    buffer.erase(0, head_end + 4);
    if (!parsed) {
      WriteAll(fd, wake_read_fd_, ResponseHead(400, {}, 0, true));
      break;
    }

    // Body.
    bool body_ok = true;
    std::optional<std::string> te = req.Header("Transfer-Encoding");
    std::optional<std::string> cl = req.Header("Content-Length");
    std::optional<std::string> expect = req.Header("Expect");
    if (expect && EqualsNoCase(*expect, "100-continue") && buffer.empty() && (te || (cl && *cl != "0"))) {
      body_ok = WriteAll(fd, wake_read_fd_, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (body_ok && te && ContainsTokenNoCase(*te, "chunked")) {
      while (true) {
        if (!ReadUntil(fd, buffer, "\r\n", kMaxHeaderBytes)) {
          body_ok = false;
          break;
        }
        std::size_t eol = buffer.find("\r\n");
        std::size_t size = std::strtoul(buffer.substr(0, eol).c_str(), nullptr, 16);
        buffer.erase(0, eol + 2);
        if (size == 0) {  // trailers, up to an empty line
          while (body_ok) {
            body_ok = ReadUntil(fd, buffer, "\r\n", kMaxHeaderBytes);
            if (!body_ok) break;
            std::size_t end = buffer.find("\r\n");
            buffer.erase(0, end + 2);
            if (end == 0) break;
          }
          break;
        }
        if (req.body.size() + size > kMaxBodyBytes || !ReadAtLeast(fd, buffer, size + 2)) {
          body_ok = false;
          break;
        }
        req.body.append(buffer, 0, size);
        buffer.erase(0, size + 2);
      }
    } else if (body_ok && cl) {
      std::size_t length = std::strtoul(cl->c_str(), nullptr, 10);
      body_ok = length <= kMaxBodyBytes && ReadAtLeast(fd, buffer, length);
      if (body_ok) {
        req.body = buffer.substr(0, length);
        buffer.erase(0, length);
      }
    }
    if (!body_ok) break;

    bool keep_alive = req.version == "HTTP/1.0" ? ContainsTokenNoCase(req.Header("Connection").value_or(""), "keep-alive")
                                                : !ContainsTokenNoCase(req.Header("Connection").value_or(""), "close");
    Handler handler;
    {
      std::lock_guard<std::mutex> lock(mu_);
      req.index = static_cast<int>(requests_.size());
      requests_.push_back(req);
      handler = handler_;
    }
    cv_.notify_all();
    HttpTestReply reply = handler ? handler(req) : HttpTestReply::Text(200, "");

    if (reply.delay.count() > 0) {
      std::unique_lock<std::mutex> lock(mu_);
      if (RealClock().WaitFor(lock, cv_, reply.delay, [this] { return stopping_; })) break;
    }

    using Fault = HttpTestReply::Fault;
    if (reply.fault == Fault::kHang) {
      // Discard whatever the client still sends; end on its close, on Stop() or after hang_for.
      auto deadline = std::chrono::steady_clock::now() + reply.hang_for;
      char scratch[4096];
      while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !WaitReadable(fd, left)) break;
        if (recv(fd, scratch, sizeof(scratch), 0) <= 0) break;
      }
      break;
    }
    if (reply.fault == Fault::kReset) {
      linger lin{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
      break;
    }
    if (reply.fault == Fault::kClose) break;
    if (reply.fault == Fault::kTruncate) {
      WriteAll(fd, wake_read_fd_, ResponseHead(reply.status, reply.headers, reply.body.size() + reply.missing_bytes, true));
      WriteAll(fd, wake_read_fd_, reply.body);
      shutdown(fd, SHUT_WR);  // a FIN, then close below
      break;
    }

    bool close_after = reply.close_after || !keep_alive;
    std::string out = ResponseHead(reply.status, reply.headers,
                                   reply.chunked ? std::nullopt : std::optional<std::size_t>(reply.body.size()),
                                   close_after);
    if (req.method != "HEAD") {
      if (reply.chunked) {
        constexpr std::size_t kChunk = 8192;
        for (std::size_t i = 0; i < reply.body.size(); i += kChunk) {
          std::string_view piece = std::string_view(reply.body).substr(i, kChunk);
          char size[32];
          std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
          out += size;
          out += piece;
          out += "\r\n";
        }
        out += "0\r\n\r\n";
      } else {
        out += reply.body;
      }
    }
    if (!WriteAll(fd, wake_read_fd_, out) || close_after) break;
  }
  close(fd);
}

int UnusedLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("bind");
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Die("getsockname");
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace taskpipe::testing
