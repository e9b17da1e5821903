#include "deja/net/socket_addr.hpp"

#include <charconv>
#include <cstddef>
#include <cstring>
#include <ostream>

#include <fmt/format.h>

#include "addr_text.hpp"
#include "deja/errors.hpp"

namespace deja::net {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool parse_port(std::string_view text, std::uint16_t& out, std::string* why) {
  if (text.empty()) return detail::fail(why, "missing port after ':'");
  unsigned value = 0;
  for (char c : text) {
    if (!is_digit(c)) return detail::fail(why, "port {} is not a decimal number", detail::quote(text));
    // Stop accumulating past the range so that a long run of digits cannot overflow.
    if (value <= 65535) value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return detail::fail(why, "port {} is out of range (0-65535)", detail::quote(text));
  out = static_cast<std::uint16_t>(value);
  return true;
}

bool parse_zone(std::string_view text, std::uint32_t& out, std::string* why) {
  if (text.empty()) return detail::fail(why, "empty zone id after '%'");
  std::uint64_t value = 0;
  for (char c : text) {
    if (!is_digit(c)) {
      return detail::fail(why,
                          "zone id {} is not a numeric interface index; interface names are not "
                          "resolved when parsing (look the index up with if_nametoindex and build "
                          "SocketAddr(ip, port, index))",
                          detail::quote(text));
    }
    if (value <= 0xffffffffULL) value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 0xffffffffULL) return detail::fail(why, "zone id {} is out of range (0-4294967295)", detail::quote(text));
  out = static_cast<std::uint32_t>(value);
  return true;
}

struct ParsedSocketAddr {
  IpAddr ip;
  std::uint16_t port = 0;
  std::uint32_t scope_id = 0;
};

bool parse_bracketed(std::string_view text, ParsedSocketAddr& out, std::string* why) {
  const std::size_t close = text.find(']');
  if (close == std::string_view::npos) return detail::fail(why, "missing ']' after the IPv6 address");
  const std::string_view inside = text.substr(1, close - 1);
  const std::string_view rest = text.substr(close + 1);
  const std::size_t percent = inside.find('%');
  const std::string_view address = inside.substr(0, percent);
  if (!address.empty() && address.find(':') == std::string_view::npos) {
    return detail::fail(why, "brackets are only for IPv6 addresses; an IPv4 address is written as \"192.0.2.1:80\"");
  }
  std::array<std::uint16_t, 8> groups{};
  if (!detail::parse_ipv6(address, groups, why)) return false;
  out.ip = IpAddr::v6(groups);
  if (percent != std::string_view::npos && !parse_zone(inside.substr(percent + 1), out.scope_id, why)) return false;
  if (rest.empty()) return detail::fail(why, "missing port after ']' (expected \"[ipv6]:port\")");
  if (rest.front() != ':') {
    return detail::fail(why, "expected ':' and a port after ']', found {}", detail::quote(rest));
  }
  return parse_port(rest.substr(1), out.port, why);
}

bool parse_socket_addr(std::string_view text, ParsedSocketAddr& out, std::string* why) {
  if (text.empty()) return detail::fail(why, "empty string");
  if (text.front() == '[') return parse_bracketed(text, out, why);
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return detail::fail(why, "missing port (expected \"ipv4:port\" or \"[ipv6]:port\", as \"192.0.2.1:80\")");
  }
  if (text.find(':', colon + 1) != std::string_view::npos) {
    // Without brackets the port cannot be told apart from the last group: "2001:db8::1:80".
    return detail::fail(why, "an IPv6 address must be in brackets and followed by ':' and the port, as \"[::1]:80\"");
  }
  const std::string_view host = text.substr(0, colon);
  if (host.empty()) return detail::fail(why, "missing IP address before ':'");
  if (host.find('%') != std::string_view::npos) {
    return detail::fail(why, "zone ids apply only to IPv6 addresses, as \"[fe80::1%2]:80\"");
  }
  std::array<std::uint8_t, 4> octets{};
  if (!detail::parse_ipv4(host, octets, why)) return false;
  out.ip = IpAddr::v4(octets);
  return parse_port(text.substr(colon + 1), out.port, why);
}

std::string family_name(sa_family_t family) {
  switch (family) {
    case AF_UNSPEC: return "AF_UNSPEC";
    case AF_UNIX: return "AF_UNIX";
    case AF_PACKET: return "AF_PACKET";
    case AF_NETLINK: return "AF_NETLINK";
    default: return fmt::format("family {}", family);
  }
}

// Network byte order without htons/ntohs, whose glibc macro forms differ between compilers.
void store_port(std::uint16_t port, in_port_t& out) noexcept {
  const std::uint8_t bytes[2] = {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port & 0xff)};
  std::memcpy(&out, bytes, sizeof bytes);
}

std::uint16_t load_port(const in_port_t& in) noexcept {
  std::uint8_t bytes[2];
  std::memcpy(bytes, &in, sizeof bytes);
  return static_cast<std::uint16_t>(bytes[0] << 8 | bytes[1]);
}

}  // namespace

SocketAddr::SocketAddr(IpAddr ip, std::uint16_t port, std::uint32_t scope_id) : ip_(ip), port_(port), scope_id_(scope_id) {
  if (ip.is_v4() && scope_id != 0) {
    throw UsageError(fmt::format("deja::net::SocketAddr: scope id {} given for IPv4 address {}; zone ids are IPv6 only",
                                 scope_id, ip.to_string()));
  }
}

SocketAddr SocketAddr::parse(std::string_view text) {
  ParsedSocketAddr parsed;
  std::string why;
  if (!parse_socket_addr(text, parsed, &why)) {
    throw AddrParseError(fmt::format("deja::net: invalid socket address {}: {}", detail::quote(text), why));
  }
  SocketAddr addr(parsed.ip, parsed.port);
  addr.scope_id_ = parsed.scope_id;
  return addr;
}

std::optional<SocketAddr> SocketAddr::try_parse(std::string_view text) noexcept {
  ParsedSocketAddr parsed;
  if (!parse_socket_addr(text, parsed, nullptr)) return std::nullopt;
  SocketAddr addr(parsed.ip, parsed.port);
  addr.scope_id_ = parsed.scope_id;
  return addr;
}

SocketAddr SocketAddr::from_sockaddr(const sockaddr* addr, socklen_t length) {
  if (addr == nullptr) throw UnsupportedSockaddr("deja::net::SocketAddr::from_sockaddr: null sockaddr");
  constexpr std::size_t kFamilyEnd = offsetof(sockaddr, sa_family) + sizeof(sa_family_t);
  if (length < kFamilyEnd) {
    throw UnsupportedSockaddr(
        fmt::format("deja::net::SocketAddr::from_sockaddr: length {} is too short to hold an address family", length));
  }
  // Copied out rather than read through `addr`, which may point into a sockaddr_storage or a
  // byte buffer: reading it as another struct type would break strict aliasing.
  sa_family_t family = 0;
  std::memcpy(&family, reinterpret_cast<const char*>(addr) + offsetof(sockaddr, sa_family), sizeof family);
  if (family == AF_INET) {
    sockaddr_in in{};
    if (length < sizeof in) {
      throw UnsupportedSockaddr(fmt::format(
          "deja::net::SocketAddr::from_sockaddr: length {} is too short for AF_INET ({} bytes)", length, sizeof in));
    }
    std::memcpy(&in, addr, sizeof in);
    return from_sockaddr(in);
  }
  if (family == AF_INET6) {
    sockaddr_in6 in6{};
    if (length < sizeof in6) {
      throw UnsupportedSockaddr(fmt::format(
          "deja::net::SocketAddr::from_sockaddr: length {} is too short for AF_INET6 ({} bytes)", length, sizeof in6));
    }
    std::memcpy(&in6, addr, sizeof in6);
    return from_sockaddr(in6);
  }
  throw UnsupportedSockaddr(fmt::format(
      "deja::net::SocketAddr::from_sockaddr: unsupported address {}; only AF_INET and AF_INET6 are", family_name(family)));
}

SocketAddr SocketAddr::from_sockaddr(const sockaddr_in& addr) noexcept {
  std::array<std::uint8_t, 4> octets{};
  std::memcpy(octets.data(), &addr.sin_addr, octets.size());  // s_addr is already in network order
  return SocketAddr(IpAddr::v4(octets), load_port(addr.sin_port));
}

SocketAddr SocketAddr::from_sockaddr(const sockaddr_in6& addr) noexcept {
  std::array<std::uint8_t, 16> octets{};
  std::memcpy(octets.data(), addr.sin6_addr.s6_addr, octets.size());
  SocketAddr result(IpAddr::v6_from_octets(octets), load_port(addr.sin6_port));
  result.scope_id_ = addr.sin6_scope_id;
  return result;
}

socklen_t SocketAddr::to_sockaddr(sockaddr_storage& out) const noexcept {
  out = sockaddr_storage{};
  if (ip_.is_v4()) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    store_port(port_, in.sin_port);
    const auto octets = ip_.v4_octets();
    std::memcpy(&in.sin_addr, octets.data(), octets.size());
    std::memcpy(&out, &in, sizeof in);
    return static_cast<socklen_t>(sizeof in);
  }
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  store_port(port_, in6.sin6_port);
  const auto octets = ip_.v6_octets();
  std::memcpy(in6.sin6_addr.s6_addr, octets.data(), octets.size());
  in6.sin6_scope_id = scope_id_;
  std::memcpy(&out, &in6, sizeof in6);
  return static_cast<socklen_t>(sizeof in6);
}

std::string SocketAddr::to_string() const {
  // '[' + address + '%' + 10-digit zone + "]:" + 5-digit port.
  char text[detail::kMaxIpText + 20];
  char* out = text;
  if (is_v6()) *out++ = '[';
  out += detail::format_ip(ip_, out);
  if (is_v6()) {
    if (scope_id_ != 0) {
      *out++ = '%';
      out = std::to_chars(out, text + sizeof text, scope_id_).ptr;
    }
    *out++ = ']';
  }
  *out++ = ':';
  out = std::to_chars(out, text + sizeof text, port_).ptr;
  return std::string(text, static_cast<std::size_t>(out - text));
}

std::size_t SocketAddr::hash() const noexcept {
  const std::uint64_t rest = static_cast<std::uint64_t>(port_) << 32 | scope_id_;
  return static_cast<std::size_t>(detail::mix64(ip_.hash() ^ detail::mix64(rest)));
}

std::ostream& operator<<(std::ostream& out, const SocketAddr& addr) { return out << addr.to_string(); }

}  // namespace deja::net
