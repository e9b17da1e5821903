// deja::net::IpAddr: an IPv4 or IPv6 address as a value (no port, no zone id), with the textual
// forms of RFC 791 dotted quads and RFC 5952 canonical IPv6.
#pragma once

#include <array>
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

namespace deja::net {

class IpAddr {
 public:
  enum class Family : std::uint8_t { v4, v6 };

  // 0.0.0.0, so that SocketAddr and containers of addresses can be default-constructed.
  constexpr IpAddr() noexcept = default;

  static constexpr IpAddr v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) noexcept {
    return v4(std::array<std::uint8_t, 4>{a, b, c, d});
  }
  // Octets in network order: {127, 0, 0, 1} is 127.0.0.1.
  static constexpr IpAddr v4(const std::array<std::uint8_t, 4>& octets) noexcept {
    IpAddr ip;
    ip.family_ = Family::v4;
    for (std::size_t i = 0; i < 4; ++i) ip.bytes_[i] = octets[i];
    return ip;
  }
  // The eight 16-bit groups as written: {0x2001, 0xdb8, 0, 0, 0, 0, 0, 1} is 2001:db8::1.
  static constexpr IpAddr v6(const std::array<std::uint16_t, 8>& segments) noexcept {
    IpAddr ip;
    ip.family_ = Family::v6;
    for (std::size_t i = 0; i < 8; ++i) {
      ip.bytes_[2 * i] = static_cast<std::uint8_t>(segments[i] >> 8);
      ip.bytes_[2 * i + 1] = static_cast<std::uint8_t>(segments[i] & 0xff);
    }
    return ip;
  }
  // The sixteen bytes in network order, as in in6_addr::s6_addr.
  static constexpr IpAddr v6_from_octets(const std::array<std::uint8_t, 16>& octets) noexcept {
    IpAddr ip;
    ip.family_ = Family::v6;
    ip.bytes_ = octets;
    return ip;
  }

  static constexpr IpAddr v4_loopback() noexcept { return v4(127, 0, 0, 1); }
  static constexpr IpAddr v4_unspecified() noexcept { return v4(0, 0, 0, 0); }
  static constexpr IpAddr v6_loopback() noexcept { return v6({0, 0, 0, 0, 0, 0, 0, 1}); }
  static constexpr IpAddr v6_unspecified() noexcept { return v6({0, 0, 0, 0, 0, 0, 0, 0}); }

  // Parses "192.0.2.1" or an IPv6 address in any RFC 4291 form ("2001:db8::1", "::ffff:1.2.3.4",
  // leading zeros within a group allowed). Rejects, with the reason in the message: IPv4 octets
  // with a leading zero ("01.2.3.4"; see socket_addr.hpp for why), brackets, ports and zone ids
  // ("fe80::1%2": a zone id belongs to a socket address, see SocketAddr). Throws AddrParseError.
  static IpAddr parse(std::string_view text);
  // As parse, but returns nullopt instead of throwing, and allocates nothing.
  static std::optional<IpAddr> try_parse(std::string_view text) noexcept;

  constexpr Family family() const noexcept { return family_; }
  constexpr bool is_v4() const noexcept { return family_ == Family::v4; }
  constexpr bool is_v6() const noexcept { return family_ == Family::v6; }

  // 127.0.0.0/8 or ::1. An IPv4-mapped ::ffff:127.0.0.1 is not loopback: it is a distinct IPv6
  // address that the kernel only treats as 127.0.0.1 on dual-stack sockets (as Rust and Go agree).
  constexpr bool is_loopback() const noexcept {
    if (is_v4()) return bytes_[0] == 127;
    return *this == v6_loopback();
  }
  // 0.0.0.0 or ::, the "any address" a listener binds to.
  constexpr bool is_unspecified() const noexcept {
    for (std::uint8_t b : bytes_) {
      if (b != 0) return false;
    }
    return true;
  }
  // ::ffff:a.b.c.d, how a dual-stack IPv6 socket presents an IPv4 peer.
  constexpr bool is_ipv4_mapped() const noexcept {
    if (!is_v6()) return false;
    for (std::size_t i = 0; i < 10; ++i) {
      if (bytes_[i] != 0) return false;
    }
    return bytes_[10] == 0xff && bytes_[11] == 0xff;
  }

  // Throw deja::UsageError when called on the other family: asking a v6 address for its four
  // octets is a bug in the caller, not something to truncate silently.
  std::array<std::uint8_t, 4> v4_octets() const;
  std::array<std::uint8_t, 16> v6_octets() const;
  std::array<std::uint16_t, 8> v6_segments() const;

  // "192.0.2.1", or RFC 5952 canonical IPv6: lowercase hex without leading zeros, the longest run
  // (the first, on a tie) of two or more zero groups written "::", and "::ffff:a.b.c.d" for an
  // IPv4-mapped address. Unlike glibc's inet_ntop, the deprecated IPv4-compatible ::a.b.c.d form
  // is not used: ::102:304 is printed as such (as Rust, Go and Python print it), because only the
  // ::ffff:0:0/96 prefix says that the low 32 bits are an IPv4 address (RFC 5952 section 5).
  std::string to_string() const;

  std::size_t hash() const noexcept;

  // IPv4 orders before IPv6; within a family addresses order as their bytes in network order.
  friend constexpr auto operator<=>(const IpAddr&, const IpAddr&) = default;
  friend constexpr bool operator==(const IpAddr&, const IpAddr&) = default;

 private:
  Family family_ = Family::v4;
  // Network order; an IPv4 address uses the first four bytes and keeps the rest zero, so that the
  // defaulted comparisons and the hash see only the address.
  std::array<std::uint8_t, 16> bytes_{};
};

// So that test frameworks (Catch2) and logs print addresses readably.
std::ostream& operator<<(std::ostream& out, const IpAddr& ip);

}  // namespace deja::net

template <>
struct std::hash<deja::net::IpAddr> {
  std::size_t operator()(const deja::net::IpAddr& ip) const noexcept { return ip.hash(); }
};

// fmt::format("{}", ip) prints to_string(); string format specs apply to it, as "{:>15}".
template <>
struct fmt::formatter<deja::net::IpAddr> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const deja::net::IpAddr& ip, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<std::string_view>::format(ip.to_string(), ctx);
  }
};
