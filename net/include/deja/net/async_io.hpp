// The byte-stream concepts (AsyncRead, AsyncWrite) that TcpStream, its halves, BufReader and
// BufWriter model, and the read_exact / write_all loops written once over them.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "deja/net/errors.hpp"
#include "deja/task.hpp"

namespace deja::net {

// read(buf) waits for at least one byte and returns how many it stored; 0 means end of stream
// (or an empty buf).
template <class R>
concept AsyncRead = requires(R& reader, std::span<std::byte> buf) {
  { reader.read(buf) } -> std::same_as<Task<std::size_t>>;
};

// write(buf) writes a non-empty prefix of a non-empty buf and returns its length.
template <class W>
concept AsyncWrite = requires(W& writer, std::span<const std::byte> buf) {
  { writer.write(buf) } -> std::same_as<Task<std::size_t>>;
};

// Reads until `buf` is full or the stream ends; returns how many bytes it read.
template <AsyncRead R>
Task<std::size_t> read_up_to(R& reader, std::span<std::byte> buf) {
  std::size_t done = 0;
  while (done < buf.size()) {
    const std::size_t n = co_await reader.read(buf.subspan(done));
    if (n == 0) break;
    done += n;
  }
  co_return done;
}

// Fills `buf` completely. Throws UnexpectedEof (code std::errc::no_message_available) if the
// stream ends first; the bytes read so far are in buf, and bytes_read() says how many.
template <AsyncRead R>
Task<void> read_exact(R& reader, std::span<std::byte> buf) {
  const std::size_t done = co_await read_up_to(reader, buf);
  if (done < buf.size()) {
    throw UnexpectedEof(done, buf.size(),
                        fmt::format("deja::net: read_exact: the stream ended after {} of {} bytes", done, buf.size()));
  }
}

// Writes all of `buf`, however many partial writes that takes.
template <AsyncWrite W>
Task<void> write_all(W& writer, std::span<const std::byte> buf) {
  while (!buf.empty()) {
    const std::size_t n = co_await writer.write(buf);
    // A writer that accepts nothing would make this loop spin forever.
    if (n == 0) throw std::system_error(std::make_error_code(std::errc::io_error), "deja::net: write_all: the writer accepted 0 bytes");
    buf = buf.subspan(n);
  }
}

// The bytes of text, for the byte-span APIs: stream.write_all(as_bytes("hello")).
inline std::span<const std::byte> as_bytes(std::string_view text) noexcept {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

}  // namespace deja::net
