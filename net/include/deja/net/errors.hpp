// The exceptions deja::net throws at its API boundary, so callers can catch exactly what they mean.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <system_error>

namespace deja::net {

// Text that is not a valid IP or socket address. what() quotes the input (escaped, truncated) and
// says what is wrong with it, e.g.
//   deja::net: invalid socket address "01.2.3.4:80": IPv4 octet "01" has a leading zero ...
// It derives from std::invalid_argument because the text came from outside (config, user input)
// rather than from a bug in the caller; the non-throwing try_parse variants exist for callers that
// expect bad input.
class AddrParseError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// SocketAddr::from_sockaddr was given a null pointer, a family other than AF_INET / AF_INET6
// (AF_UNIX, AF_PACKET, ...), or a length too short for the family it names.
class UnsupportedSockaddr : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// read_exact, or the frame codec reading a frame, met the end of the stream before it had the bytes
// it needed: the peer closed early, or a frame was cut short. code() is std::errc::no_message_available
// (ENODATA, "No data available"); bytes_read() says how far it got. A clean end of stream at a
// frame boundary is not an error (FrameCodec::read_frame returns nullopt).
class UnexpectedEof : public std::system_error {
 public:
  UnexpectedEof(std::size_t bytes_read, std::size_t bytes_wanted, const std::string& what)
      : std::system_error(std::make_error_code(std::errc::no_message_available), what), read_(bytes_read), wanted_(bytes_wanted) {}
  std::size_t bytes_read() const noexcept { return read_; }
  std::size_t bytes_wanted() const noexcept { return wanted_; }

 private:
  std::size_t read_;
  std::size_t wanted_;
};

// A line longer than BufReader::read_line's limit, or a frame whose length prefix exceeds the
// codec's max_frame_size (on read or on write). code() is std::errc::message_size (EMSGSIZE). Nothing
// past the limit was allocated; the stream's position is unspecified, so the caller should drop it.
class MessageTooLarge : public std::system_error {
 public:
  MessageTooLarge(std::size_t size, std::size_t limit, const std::string& what)
      : std::system_error(std::make_error_code(std::errc::message_size), what), size_(size), limit_(limit) {}
  // The size announced (a frame) or reached (a line) when the limit was crossed.
  std::size_t size() const noexcept { return size_; }
  std::size_t limit() const noexcept { return limit_; }

 private:
  std::size_t size_;
  std::size_t limit_;
};

}  // namespace deja::net
