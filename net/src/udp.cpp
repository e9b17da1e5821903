// UdpSocket and lookup_host: thin wrappers over whichever NetDriver is current.
#include <charconv>

#include <fmt/format.h>

#include "addr_text.hpp"
#include "deja/errors.hpp"
#include "deja/net/lookup_host.hpp"
#include "deja/net/udp_socket.hpp"

namespace deja::net {

UdpSocket UdpSocket::bind(SocketAddr addr) { return UdpSocket(current_driver().bind_udp(addr)); }

DatagramBackend& UdpSocket::backend() const {
  if (!backend_) throw UsageError("deja::net: use of a moved-from UdpSocket");
  return *backend_;
}

Task<std::vector<SocketAddr>> lookup_host(std::string host, std::uint16_t port) {
  return current_driver().lookup(std::move(host), port);
}

Task<std::vector<SocketAddr>> lookup_host(std::string host_port) {
  const auto bad = [&](const char* why) {
    return AddrParseError(fmt::format("deja::net: invalid host:port {}: {}", detail::quote(host_port), why));
  };
  const std::size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) throw bad("missing ':port'");
  std::string_view host = std::string_view(host_port).substr(0, colon);
  const std::string_view port_text = std::string_view(host_port).substr(colon + 1);
  if (host.empty()) throw bad("missing host");
  if (host.front() == '[') {
    if (host.back() != ']') throw bad("'[' without a closing ']' before the port");
  } else if (host.find(':') != std::string_view::npos) {
    throw bad("an IPv6 address needs brackets, as in [::1]:80");
  }
  unsigned port = 0;
  const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    throw bad("the port is not a number from 0 to 65535");
  }
  return current_driver().lookup(std::string(host), static_cast<std::uint16_t>(port));
}

}  // namespace deja::net
