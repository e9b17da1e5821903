// deja::net::SocketAddr: an IP address and a port (and, for IPv6, a numeric zone id), the value
// every deja::net socket binds, connects and reports peers as. Text forms: "192.0.2.1:80",
// "[2001:db8::1]:443", "[fe80::1%2]:80".
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/core.h>

#include "deja/net/errors.hpp"
#include "deja/net/ip_addr.hpp"

namespace deja::net {

class SocketAddr {
 public:
  // 0.0.0.0:0, "any address, any port".
  constexpr SocketAddr() noexcept = default;
  constexpr SocketAddr(IpAddr ip, std::uint16_t port) noexcept : ip_(ip), port_(port) {}
  // An IPv6 address scoped to an interface index (sin6_scope_id), as link-local fe80::/10
  // addresses need to be usable. A non-zero scope_id with an IPv4 address throws deja::UsageError.
  SocketAddr(IpAddr ip, std::uint16_t port, std::uint32_t scope_id);

  // Parses "a.b.c.d:port", "[ipv6]:port" or "[ipv6%zone]:port"; throws AddrParseError saying what
  // is wrong. Accepted:
  //  - IPv6 in any RFC 4291 form: "::" anywhere, 1-4 hex digits per group in either case, an
  //    embedded dotted IPv4 address as the last 32 bits ("[::ffff:192.0.2.1]:80").
  //  - Zone ids only as a decimal interface index ("[fe80::1%2]:80"), stored as scope_id().
  //    Interface names ("%eth0") are rejected: resolving one needs if_nametoindex against this
  //    host's interfaces, so parsing would stop being a pure function of the text. Callers that
  //    want names resolve them and build SocketAddr(ip, port, index).
  //  - Ports as decimal digits, 0-65535; leading zeros are allowed because no port parser reads
  //    them as anything but decimal (getaddrinfo uses base 10).
  // Rejected: empty text, a missing port or ':', an IPv6 address without brackets, brackets
  // around IPv4, out-of-range octets or ports, and IPv4 octets with a leading zero ("01.2.3.4"):
  // inet_aton and glibc's getaddrinfo (so ping, curl and most C programs) read "010.0.0.1" as
  // octal, 8.0.0.1, while other parsers read 10.0.0.1; text that names a different host depending
  // on who reads it is how address allow-lists get bypassed (CVE-2021-29922, CVE-2021-28918).
  static SocketAddr parse(std::string_view text);
  // As parse, but returns nullopt instead of throwing, and allocates nothing.
  static std::optional<SocketAddr> try_parse(std::string_view text) noexcept;

  // From what accept(), recvfrom() or getpeername() filled in. Throws UnsupportedSockaddr for a
  // null pointer, a family other than AF_INET / AF_INET6, or a length too short for the family.
  // IPv6 flow info (sin6_flowinfo) is not kept: nothing in deja uses flow labels.
  static SocketAddr from_sockaddr(const sockaddr* addr, socklen_t length);
  static SocketAddr from_sockaddr(const sockaddr_in& addr) noexcept;
  static SocketAddr from_sockaddr(const sockaddr_in6& addr) noexcept;

  // Fills `out` (zeroing it first) as a sockaddr_in or sockaddr_in6 and returns its length, ready
  // for bind(), connect() or sendto().
  socklen_t to_sockaddr(sockaddr_storage& out) const noexcept;

  constexpr const IpAddr& ip() const noexcept { return ip_; }
  constexpr std::uint16_t port() const noexcept { return port_; }
  // The IPv6 zone (interface index); always 0 for IPv4.
  constexpr std::uint32_t scope_id() const noexcept { return scope_id_; }
  constexpr bool is_v4() const noexcept { return ip_.is_v4(); }
  constexpr bool is_v6() const noexcept { return ip_.is_v6(); }

  constexpr void set_port(std::uint16_t port) noexcept { port_ = port; }

  // "192.0.2.1:80", "[2001:db8::1]:443", "[fe80::1%2]:80", the address part as IpAddr::to_string.
  // parse(a.to_string()) == a for every SocketAddr a.
  std::string to_string() const;

  std::size_t hash() const noexcept;

  // By address (IPv4 before IPv6, then bytes), then port, then scope id.
  friend constexpr auto operator<=>(const SocketAddr&, const SocketAddr&) = default;
  friend constexpr bool operator==(const SocketAddr&, const SocketAddr&) = default;

 private:
  IpAddr ip_;
  std::uint16_t port_ = 0;
  std::uint32_t scope_id_ = 0;
};

// So that test frameworks (Catch2) and logs print addresses readably.
std::ostream& operator<<(std::ostream& out, const SocketAddr& addr);

}  // namespace deja::net

template <>
struct std::hash<deja::net::SocketAddr> {
  std::size_t operator()(const deja::net::SocketAddr& addr) const noexcept { return addr.hash(); }
};

// fmt::format("{}", addr) prints to_string(); string format specs apply to it, as "{:<21}".
template <>
struct fmt::formatter<deja::net::SocketAddr> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const deja::net::SocketAddr& addr, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<std::string_view>::format(addr.to_string(), ctx);
  }
};
