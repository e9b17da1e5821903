// deja::net::BufWriter: a bounded write buffer over any AsyncWrite, so many small writes become
// few system calls (and few packets). Call flush(): a destructor cannot wait, so bytes still
// buffered when a BufWriter is destroyed are dropped.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <utility>

#include "deja/errors.hpp"
#include "deja/net/async_io.hpp"
#include "deja/task.hpp"

namespace deja::net {

template <AsyncWrite W>
class BufWriter {
 public:
  static constexpr std::size_t kDefaultCapacity = 8 * 1024;

  explicit BufWriter(W inner, std::size_t capacity = kDefaultCapacity)
      : inner_(std::move(inner)), capacity_(capacity) {
    if (capacity_ == 0) throw UsageError("deja::net::BufWriter: capacity must be at least 1");
    buf_ = std::make_unique<std::byte[]>(capacity_);
  }

  W& get_ref() noexcept { return inner_; }
  std::size_t buffered() const noexcept { return len_; }
  std::size_t capacity() const noexcept { return capacity_; }

  // Buffers `data`, flushing first when it does not fit; data as large as the buffer goes
  // straight to the inner writer. Returns data.size().
  Task<std::size_t> write(std::span<const std::byte> data) {
    if (len_ + data.size() > capacity_) co_await flush_buffer();
    if (data.size() >= capacity_) {
      co_await net::write_all(inner_, data);
    } else if (!data.empty()) {
      std::memcpy(buf_.get() + len_, data.data(), data.size());
      len_ += data.size();
    }
    co_return data.size();
  }

  Task<void> write_all(std::span<const std::byte> data) { return net::write_all(*this, data); }

  // Writes every buffered byte to the inner writer.
  Task<void> flush() { return flush_buffer(); }

 private:
  Task<void> flush_buffer() {
    // Bytes leave the buffer only once written, so a failed or cancelled flush keeps what it did
    // not write (a retry may still send them).
    while (len_ > 0) {
      const std::size_t n = co_await inner_.write(std::span<const std::byte>(buf_.get(), len_));
      if (n == 0) throw std::system_error(std::make_error_code(std::errc::io_error), "deja::net: BufWriter: the writer accepted 0 bytes");
      std::memmove(buf_.get(), buf_.get() + n, len_ - n);
      len_ -= n;
    }
  }

  W inner_;
  std::size_t capacity_;
  std::unique_ptr<std::byte[]> buf_;
  std::size_t len_ = 0;
};

}  // namespace deja::net
