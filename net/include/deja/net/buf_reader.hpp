// deja::net::BufReader: a bounded read buffer over any AsyncRead (a TcpStream, a read half), for
// reading lines and small pieces without one system call each.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "deja/errors.hpp"
#include "deja/net/async_io.hpp"
#include "deja/net/errors.hpp"
#include "deja/task.hpp"

namespace deja::net {

template <AsyncRead R>
class BufReader {
 public:
  static constexpr std::size_t kDefaultCapacity = 8 * 1024;
  static constexpr std::size_t kDefaultMaxLine = 64 * 1024;

  // The buffer is allocated once, `capacity` bytes (at least 1; 0 is a UsageError).
  explicit BufReader(R inner, std::size_t capacity = kDefaultCapacity)
      : inner_(std::move(inner)), capacity_(capacity) {
    if (capacity_ == 0) throw UsageError("deja::net::BufReader: capacity must be at least 1");
    buf_ = std::make_unique<std::byte[]>(capacity_);
  }

  R& get_ref() noexcept { return inner_; }
  // Bytes read from the inner reader and not yet consumed.
  std::size_t buffered() const noexcept { return end_ - pos_; }
  std::size_t capacity() const noexcept { return capacity_; }

  // The buffered bytes, after one read of the inner reader if there were none. Empty means end
  // of stream. Valid until the next call on this reader.
  Task<std::span<const std::byte>> fill_buf() {
    if (pos_ == end_) {
      pos_ = end_ = 0;
      end_ = co_await inner_.read(std::span<std::byte>(buf_.get(), capacity_));
    }
    co_return std::span<const std::byte>(buf_.get() + pos_, end_ - pos_);
  }

  // Marks n buffered bytes as used (n is clamped to what is buffered).
  void consume(std::size_t n) noexcept { pos_ += std::min(n, end_ - pos_); }

  // Reads from the buffer; a read at least as large as the buffer, with nothing buffered, goes
  // straight to the inner reader. 0 at end of stream.
  Task<std::size_t> read(std::span<std::byte> out) {
    if (out.empty()) co_return 0;
    if (pos_ == end_ && out.size() >= capacity_) co_return co_await inner_.read(out);
    const std::span<const std::byte> available = co_await fill_buf();
    const std::size_t n = std::min(available.size(), out.size());
    if (n > 0) std::memcpy(out.data(), available.data(), n);
    consume(n);
    co_return n;
  }

  Task<void> read_exact(std::span<std::byte> out) { return net::read_exact(*this, out); }

  // Appends one line, up to and including its '\n', to `line` and returns how many bytes it
  // appended: 0 at end of stream, and a last line without '\n' is returned as it is. A line
  // longer than `max_length` bytes (counting its '\n') throws MessageTooLarge after appending at
  // most max_length bytes, so a peer that never sends '\n' cannot grow `line` without bound.
  Task<std::size_t> read_line(std::string& line, std::size_t max_length = kDefaultMaxLine) {
    std::size_t appended = 0;
    for (;;) {
      const std::span<const std::byte> available = co_await fill_buf();
      if (available.empty()) co_return appended;
      const auto* begin = reinterpret_cast<const char*>(available.data());
      const auto* newline = static_cast<const char*>(std::memchr(begin, '\n', available.size()));
      const std::size_t take = newline != nullptr ? static_cast<std::size_t>(newline - begin) + 1 : available.size();
      if (appended + take > max_length) {
        const std::size_t allowed = max_length - appended;
        line.append(begin, allowed);
        consume(allowed);
        throw MessageTooLarge(appended + take, max_length,
                              fmt::format("deja::net: read_line: a line is longer than the limit of {} bytes", max_length));
      }
      line.append(begin, take);
      consume(take);
      appended += take;
      if (newline != nullptr) co_return appended;
    }
  }

 private:
  R inner_;
  std::size_t capacity_;
  std::unique_ptr<std::byte[]> buf_;
  std::size_t pos_ = 0;  // next unconsumed byte
  std::size_t end_ = 0;  // one past the last buffered byte
};

}  // namespace deja::net
