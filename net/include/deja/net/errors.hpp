// The exceptions deja::net throws at its API boundary, so callers can catch exactly what they mean.
#pragma once

#include <stdexcept>

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

}  // namespace deja::net
