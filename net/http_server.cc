#include "net/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

namespace taskpipe {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Reads and writes poll the connection and the wake pipe together: Stop() makes the pipe
// readable for good, which ends every wait at once.
enum class Wait { kReady, kTimeout, kStopped, kError };

Wait WaitFor(int fd, short events, int wake_fd, steady_clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
    if (left <= 0) return Wait::kTimeout;
    pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    const int n = poll(fds, 2, static_cast<int>(std::min<long long>(left, 60'000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Wait::kError;
    }
    if (n == 0) continue;
    if (fds[1].revents != 0) return Wait::kStopped;
    if (fds[0].revents & (events | POLLHUP | POLLERR)) return Wait::kReady;
  }
}

bool WriteAll(int fd, int wake_fd, std::string_view data, steady_clock::time_point deadline) {
  while (!data.empty()) {
    if (WaitFor(fd, POLLOUT, wake_fd, deadline) != Wait::kReady) return false;
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool IsTchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Parses "METHOD SP target SP HTTP/1.x" (RFC 9112 section 3). False when malformed.
bool ParseRequestLine(std::string_view line, HttpServerRequest* request) {
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return false;
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!std::all_of(method.begin(), method.end(), IsTchar)) return false;
  if (target.front() != '/' || target.find_first_of(" \t") != std::string_view::npos) return false;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return false;
  request->method = std::string(method);
  request->target = std::string(target);
  request->path = std::string(target.substr(0, target.find('?')));
  return true;
}

std::string Serialize(const HttpServerReply& reply, bool head) {
  std::string out = "HTTP/1.1 " + HttpStatusLine(reply.status) + "\r\n";
  if (!reply.content_type.empty()) out += "Content-Type: " + reply.content_type + "\r\n";
  for (const auto& [name, value] : reply.headers) out += name + ": " + value + "\r\n";
  out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head) out += reply.body;
  return out;
}

HttpServerReply TextReply(int status, std::string body) {
  HttpServerReply reply;
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}

class PosixHttpServer final : public HttpServer {
 public:
  PosixHttpServer(const HttpServerOptions& options, Handler handler, int listen_fd, int port, int wake_read,
                  int wake_write)
      : options_(options),
        handler_(std::move(handler)),
        listen_fd_(listen_fd),
        port_(port),
        wake_read_(wake_read),
        wake_write_(wake_write) {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~PosixHttpServer() override {
    Stop();
    close(wake_read_);
    close(wake_write_);
  }

  int port() const override { return port_; }

  void Stop() override {
    std::lock_guard<std::mutex> stop_lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    const char byte = 1;
    while (write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
    }
    accept_thread_.join();
    close(listen_fd_);  // from now on a connect is refused
    std::list<Connection> connections;
    {
      std::lock_guard<std::mutex> lock(mu_);
      connections.swap(connections_);  // the accept thread, which adds them, is gone
    }
    for (Connection& c : connections) c.thread.join();
  }

 private:
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void AcceptLoop() {
    while (true) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
      if (poll(fds, 2, 1000) < 0 && errno != EINTR) return;
      if (fds[1].revents != 0) return;
      ReapFinished();
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        // EMFILE and friends: back off a little instead of spinning on a readable listener.
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) std::this_thread::sleep_for(milliseconds(50));
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (static_cast<int>(connections_.size()) >= options_.max_connections) {
        // Over the limit: answer on this thread with a short deadline rather than queue behind.
        WriteAll(fd, wake_read_, Serialize(TextReply(503, "too many connections\n"), false),
                 steady_clock::now() + milliseconds(100));
        close(fd);
        continue;
      }
      Connection& c = connections_.emplace_back();
      c.thread = std::thread([this, fd, &c] {
        Serve(fd);
        close(fd);
        c.done.store(true, std::memory_order_release);
      });
    }
  }

  void ReapFinished() {
    std::list<Connection> finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = connections_.begin(); it != connections_.end();) {
        auto next = std::next(it);
        if (it->done.load(std::memory_order_acquire)) finished.splice(finished.end(), connections_, it);
        it = next;
      }
    }
    for (Connection& c : finished) c.thread.join();
  }

  void Serve(int fd) {
    const steady_clock::time_point deadline = steady_clock::now() + options_.read_timeout;
    std::string head;
    std::size_t end = std::string::npos;
    char buffer[2048];
    while (end == std::string::npos) {
      if (head.size() > options_.max_request_bytes) {
        Reply(fd, TextReply(431, "request header fields too large\n"), false, deadline);
        return;
      }
      if (WaitFor(fd, POLLIN, wake_read_, deadline) != Wait::kReady) return;
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return;  // closed (or failed) before a whole request head
      head.append(buffer, static_cast<std::size_t>(n));
      end = head.find("\r\n\r\n");
      // Bare LF line ends are accepted too (RFC 9112 section 2.2).
      if (end == std::string::npos && head.find("\n\n") != std::string::npos) end = head.find("\n\n");
    }
    if (end > options_.max_request_bytes) {
      Reply(fd, TextReply(431, "request header fields too large\n"), false, deadline);
      return;
    }
    std::string_view line(head.data(), head.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    HttpServerRequest request;
    if (!ParseRequestLine(line, &request)) {
      Reply(fd, TextReply(400, "malformed request line\n"), false, deadline);
      return;
    }
    const bool head_only = request.method == "HEAD";
    if (request.method != "GET" && !head_only) {
      HttpServerReply reply = TextReply(405, "only GET and HEAD are served\n");
      reply.headers.emplace_back("Allow", "GET, HEAD");
      Reply(fd, reply, false, deadline);
      return;
    }
    Reply(fd, handler_(request), head_only, deadline);
  }

  void Reply(int fd, const HttpServerReply& reply, bool head_only, steady_clock::time_point read_deadline) {
    // Writing gets its own allowance: a slow reader of a large reply is not cut off by the time a
    // slow writer of the request used.
    WriteAll(fd, wake_read_, Serialize(reply, head_only),
             std::max(read_deadline, steady_clock::now() + options_.read_timeout));
    shutdown(fd, SHUT_WR);
  }

  const HttpServerOptions options_;
  const Handler handler_;
  const int listen_fd_;
  const int port_;
  const int wake_read_;
  const int wake_write_;
  std::thread accept_thread_;

  std::mutex stop_mu_;
  bool stopped_ = false;  // GUARDED_BY(stop_mu_)
  std::mutex mu_;
  std::list<Connection> connections_;  // GUARDED_BY(mu_); std::list: threads hold references
};

}  // namespace

std::string HttpStatusLine(int status) {
  const char* reason = "";
  switch (status) {
    case 200: reason = "OK"; break;
    case 400: reason = "Bad Request"; break;
    case 404: reason = "Not Found"; break;
    case 405: reason = "Method Not Allowed"; break;
    case 431: reason = "Request Header Fields Too Large"; break;
    case 500: reason = "Internal Server Error"; break;
    case 503: reason = "Service Unavailable"; break;
    default: break;
  }
  return std::to_string(status) + (*reason != '\0' ? " " : "") + reason;
}

StatusOr<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options, HttpServer::Handler handler) {
  if (options.port < 0 || options.port > 65535) {
    return InvalidArgumentError("port " + std::to_string(options.port) + " is out of range 0..65535");
  }
  if (options.max_connections < 1 || options.max_request_bytes < 64 || options.read_timeout.count() <= 0) {
    return InvalidArgumentError("max_connections, max_request_bytes and read_timeout must be positive");
  }
  if (!handler) return InvalidArgumentError("no handler");
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, options.address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(options.port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, options.address.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(options.port));
    length = sizeof(sockaddr_in6);
  } else {
    return InvalidArgumentError("\"" + options.address +
                                "\" is not an IP address (give one like 127.0.0.1, 0.0.0.0 or ::1)");
  }
  const std::string where = (family == AF_INET6 ? "[" + options.address + "]" : options.address) + ":" +
                            std::to_string(options.port);
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return UnavailableError("socket(): " + std::string(std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    const int error = errno;
    close(fd);
    return UnavailableError("cannot listen on " + where + ": " + std::strerror(error) +
                            (error == EADDRINUSE ? " (another process has the port; choose another)" : ""));
  }
  if (listen(fd, 64) != 0) {
    const int error = errno;
    close(fd);
    return UnavailableError("listen() on " + where + ": " + std::strerror(error));
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  const int port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(fd);
    return UnavailableError("pipe2(): " + std::string(std::strerror(errno)));
  }
  return std::unique_ptr<HttpServer>(
      std::make_unique<PosixHttpServer>(options, std::move(handler), fd, port, wake[0], wake[1]));
}

}  // namespace taskpipe
