// OutputTail: keeps the last N bytes of a stream of unknown length (a handler's output) in a fixed
// ring, so a child that prints hundreds of megabytes costs N bytes of memory and one copy per byte
// at most. Not synchronised: one owner at a time.
#ifndef TASKPIPE_CONSUMER_OUTPUT_TAIL_H_
#define TASKPIPE_CONSUMER_OUTPUT_TAIL_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace taskpipe {

class OutputTail {
 public:
  // REQUIRES: capacity > 0.
  explicit OutputTail(std::size_t capacity);

  // Appends `data`, dropping the oldest bytes beyond the capacity.
  void Append(std::string_view data);
  // Reads once from `fd` straight into the ring (readv over its two free spans, so up to
  // `capacity` bytes per call without an intermediate buffer). Returns read(2)'s result: bytes
  // read, 0 at EOF, -1 with errno set.
  ssize_t ReadFrom(int fd);

  // Bytes appended in total, kept or not.
  std::uint64_t total_bytes() const { return total_; }
  // Whether older bytes were dropped.
  bool truncated() const { return total_ > size_; }

  // The kept bytes, oldest first. When bytes were dropped, the result starts at a UTF-8 character
  // boundary (up to 3 leading continuation bytes are cut), so it can go into JSON as is.
  std::string str() const;

 private:
  void Advance(std::size_t n);  // `n` bytes were written at head_

  std::vector<char> ring_;
  std::size_t head_ = 0;  // where the next byte goes
  std::size_t size_ = 0;  // bytes held, <= ring_.size()
  std::uint64_t total_ = 0;
};

// The last `max_bytes` of `text`; when cut, starting at a UTF-8 character boundary.
std::string TailOf(std::string_view text, std::size_t max_bytes);

}  // namespace taskpipe

#endif  // TASKPIPE_CONSUMER_OUTPUT_TAIL_H_
