// deja::net::lookup_host: resolves a host name to socket addresses, off the event loop (the
// production resolver runs on the blocking pool; the simulator resolves node names).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "deja/net/socket_addr.hpp"
#include "deja/task.hpp"

namespace deja::net {

// The addresses of `host` with `port`, in the resolver's order, without duplicates. A literal
// address ("127.0.0.1", "::1", "[::1]") resolves to itself without a lookup. Throws
// std::system_error(host_unreachable) for a name that does not resolve, AddrParseError for text
// that cannot be a host name (empty, longer than 253 characters, characters outside letters,
// digits, '-', '.', '_').
Task<std::vector<SocketAddr>> lookup_host(std::string host, std::uint16_t port);

// The same for "host:port" text: "localhost:8080", "192.0.2.1:80", "[::1]:443". A missing or
// out-of-range port, or an IPv6 address without brackets, is an AddrParseError.
Task<std::vector<SocketAddr>> lookup_host(std::string host_port);

}  // namespace deja::net
