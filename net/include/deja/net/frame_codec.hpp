// deja::net::FrameCodec: length-delimited frames (a 4-byte big-endian length, then that many bytes)
// over any byte stream, with a bound on the frame size so a peer cannot make us allocate at will.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <fmt/format.h>

#include "deja/errors.hpp"
#include "deja/net/async_io.hpp"
#include "deja/net/errors.hpp"
#include "deja/task.hpp"

namespace deja::net {

class FrameCodec {
 public:
  static constexpr std::size_t kHeaderSize = 4;
  static constexpr std::size_t kDefaultMaxFrameSize = 8 * 1024 * 1024;

  // Frames longer than max_frame_size bytes (payload, not counting the header) are refused on
  // both sides. It must fit the 32-bit prefix; more is a UsageError.
  explicit FrameCodec(std::size_t max_frame_size = kDefaultMaxFrameSize) : max_(max_frame_size) {
    if (max_ > UINT32_MAX) throw UsageError("deja::net::FrameCodec: max_frame_size must fit the 32-bit length prefix");
  }

  std::size_t max_frame_size() const noexcept { return max_; }

  // Appends the frame of `payload` to `out`. MessageTooLarge if payload exceeds max_frame_size.
  void encode(std::span<const std::byte> payload, std::vector<std::byte>& out) const {
    check_size(payload.size(), "encode");
    const auto header = header_of(payload.size());
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), payload.begin(), payload.end());
  }

  // Decodes the frame at the front of `buffer`: its payload and the bytes it took, or nullopt if
  // `buffer` does not hold a whole frame yet. MessageTooLarge as soon as the header announces a
  // frame over the limit.
  struct Decoded {
    std::vector<std::byte> payload;
    std::size_t consumed;
  };
  std::optional<Decoded> decode(std::span<const std::byte> buffer) const {
    if (buffer.size() < kHeaderSize) return std::nullopt;
    const std::size_t size = size_of(buffer.first<kHeaderSize>());
    check_size(size, "decode");
    if (buffer.size() - kHeaderSize < size) return std::nullopt;
    const auto payload = buffer.subspan(kHeaderSize, size);
    return Decoded{std::vector<std::byte>(payload.begin(), payload.end()), kHeaderSize + size};
  }

  // Reads the next frame's payload. nullopt when the stream ends cleanly between frames;
  // UnexpectedEof (std::errc::no_message_available) when it ends inside a frame (header or
  // payload); MessageTooLarge when the header announces more than max_frame_size. The payload
  // buffer grows as bytes arrive (64 KiB at a time), so a header announcing a large frame that
  // never comes costs no large allocation.
  template <AsyncRead R>
  Task<std::optional<std::vector<std::byte>>> read_frame(R& reader) const {
    std::array<std::byte, kHeaderSize> header;
    const std::size_t got = co_await read_up_to(reader, std::span<std::byte>(header));
    if (got == 0) co_return std::nullopt;
    if (got < kHeaderSize) {
      throw UnexpectedEof(got, kHeaderSize, fmt::format("deja::net: read_frame: the stream ended inside a frame header ({} of 4 bytes)", got));
    }
    const std::size_t size = size_of(std::span<const std::byte, kHeaderSize>(header));
    check_size(size, "read_frame");
    constexpr std::size_t kGrowth = 64 * 1024;
    std::vector<std::byte> payload;
    while (payload.size() < size) {
      const std::size_t done = payload.size();
      payload.resize(done + std::min(kGrowth, size - done));
      const std::size_t n = co_await read_up_to(reader, std::span<std::byte>(payload).subspan(done));
      if (done + n < payload.size()) {
        throw UnexpectedEof(done + n, size,
                            fmt::format("deja::net: read_frame: the stream ended inside a frame ({} of {} payload bytes)", done + n, size));
      }
    }
    co_return std::move(payload);
  }

  // Writes one frame. MessageTooLarge (nothing written) if payload exceeds max_frame_size.
  template <AsyncWrite W>
  Task<void> write_frame(W& writer, std::span<const std::byte> payload) const {
    check_size(payload.size(), "write_frame");
    // Small frames go out in one write (one packet with TCP_NODELAY); large ones skip the copy.
    constexpr std::size_t kCopyLimit = 4096;
    if (payload.size() <= kCopyLimit) {
      std::array<std::byte, kHeaderSize + kCopyLimit> frame;
      const auto header = header_of(payload.size());
      std::copy(header.begin(), header.end(), frame.begin());
      std::copy(payload.begin(), payload.end(), frame.begin() + kHeaderSize);
      co_await net::write_all(writer, std::span<const std::byte>(frame.data(), kHeaderSize + payload.size()));
    } else {
      const auto header = header_of(payload.size());
      co_await net::write_all(writer, std::span<const std::byte>(header));
      co_await net::write_all(writer, payload);
    }
  }

 private:
  void check_size(std::size_t size, const char* where) const {
    if (size > max_) {
      throw MessageTooLarge(size, max_, fmt::format("deja::net: {}: a frame of {} bytes exceeds the limit of {} bytes", where, size, max_));
    }
  }
  static std::array<std::byte, kHeaderSize> header_of(std::size_t size) noexcept {
    const auto n = static_cast<std::uint32_t>(size);
    return {std::byte(n >> 24), std::byte(n >> 16), std::byte(n >> 8), std::byte(n)};
  }
  static std::size_t size_of(std::span<const std::byte, kHeaderSize> header) noexcept {
    return (std::size_t(header[0]) << 24) | (std::size_t(header[1]) << 16) | (std::size_t(header[2]) << 8) | std::size_t(header[3]);
  }

  std::size_t max_;
};

}  // namespace deja::net
