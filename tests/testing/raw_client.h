// RawClient: a blocking loopback TCP client for tests of HTTP servers at the byte level, so that
// faults in an HTTP client and faults in the server cannot hide each other.
#ifndef TASKPIPE_TESTS_TESTING_RAW_CLIENT_H_
#define TASKPIPE_TESTS_TESTING_RAW_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>

namespace taskpipe::testing {

// A blocking client socket with a receive timeout, so that a server bug fails the test instead of
// hanging it.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawClient() { close(fd_); }
  bool connected() const { return connected_; }

  bool Write(std::string_view data) { return send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size()); }

  // Reads until `n` bytes, EOF, error or timeout. `error` gets errno of a failed recv (0 on EOF).
  std::string Read(std::size_t n, int* error = nullptr) {
    std::string out;
    char buf[4096];
    while (out.size() < n) {
      ssize_t got = recv(fd_, buf, std::min(sizeof(buf), n - out.size()), 0);
      if (got <= 0) {
        if (error != nullptr) *error = got < 0 ? errno : 0;
        break;
      }
      out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
  }
  // Reads everything until the server closes.
  std::string ReadToEnd(int* error = nullptr) { return Read(SIZE_MAX, error); }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

}  // namespace taskpipe::testing

#endif  // TASKPIPE_TESTS_TESTING_RAW_CLIENT_H_
