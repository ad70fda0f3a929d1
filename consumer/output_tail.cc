#include "consumer/output_tail.h"

#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace taskpipe {
namespace {

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Cuts at most 3 leading UTF-8 continuation bytes: the rest of a character whose start was dropped.
std::string_view SkipPartialCharacter(std::string_view text) {
  std::size_t skip = 0;
  while (skip < 3 && skip < text.size() && IsContinuationByte(text[skip])) ++skip;
  return text.substr(skip);
}

}  // namespace

OutputTail::OutputTail(std::size_t capacity) : ring_(capacity) { assert(capacity > 0); }

void OutputTail::Advance(std::size_t n) {
  head_ = (head_ + n) % ring_.size();
  size_ = std::min(ring_.size(), size_ + n);
  total_ += n;
}

void OutputTail::Append(std::string_view data) {
  const std::size_t capacity = ring_.size();
  if (data.size() >= capacity) {
    // Only the last `capacity` bytes can survive: copy those and nothing else.
    std::memcpy(ring_.data(), data.data() + data.size() - capacity, capacity);
    head_ = 0;
    size_ = capacity;
    total_ += data.size();
    return;
  }
  const std::size_t first = std::min(data.size(), capacity - head_);
  std::memcpy(ring_.data() + head_, data.data(), first);
  std::memcpy(ring_.data(), data.data() + first, data.size() - first);
  Advance(data.size());
}

ssize_t OutputTail::ReadFrom(int fd) {
  // Free space first: [head_, end) then [0, head_). Once full, these are the oldest bytes, which
  // the read overwrites in order: a ring never needs to move data.
  iovec spans[2] = {{ring_.data() + head_, ring_.size() - head_}, {ring_.data(), head_}};
  const ssize_t got = readv(fd, spans, head_ == 0 ? 1 : 2);
  if (got > 0) Advance(static_cast<std::size_t>(got));
  return got;
}

std::string OutputTail::str() const {
  std::string out;
  out.reserve(size_);
  if (size_ < ring_.size()) {
    out.assign(ring_.data(), size_);  // never wrapped: [0, size_)
  } else {
    out.assign(ring_.data() + head_, ring_.size() - head_);
    out.append(ring_.data(), head_);
  }
  if (truncated()) return std::string(SkipPartialCharacter(out));
  return out;
}

std::string TailOf(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  return std::string(SkipPartialCharacter(text.substr(text.size() - max_bytes)));
}

}  // namespace taskpipe
