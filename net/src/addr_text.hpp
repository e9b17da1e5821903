// Internal to deja::net: the text parsers and formatters shared by IpAddr and SocketAddr.
//
// Each parser returns false on bad input and, only when `why` is non-null, stores the reason there,
// so that try_parse (why == nullptr) neither allocates nor throws while parse reports precisely.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "deja/net/ip_addr.hpp"

namespace deja::net::detail {

bool parse_ipv4(std::string_view text, std::array<std::uint8_t, 4>& out, std::string* why);
bool parse_ipv6(std::string_view text, std::array<std::uint16_t, 8>& out, std::string* why);
// Chooses the family by whether the text contains ':'.
bool parse_ip(std::string_view text, IpAddr& out, std::string* why);

// The text quoted for an error message: non-printable bytes escaped as \xNN, so hostile input
// cannot forge log lines, and cut to a bounded length with "...".
std::string quote(std::string_view text);

// Records the reason only when one was asked for; always returns false so that parsers can write
// `return fail(why, ...)`.
template <typename... Args>
bool fail(std::string* why, fmt::format_string<Args...> format, Args&&... args) {
  if (why != nullptr) *why = fmt::format(format, std::forward<Args>(args)...);
  return false;
}

// Long enough for any IpAddr text: 39 characters of full IPv6 hex.
inline constexpr std::size_t kMaxIpText = 48;
// Writes the canonical text of `ip` into `out` and returns its length (no terminator).
std::size_t format_ip(const IpAddr& ip, char* out) noexcept;

// Mixes 64 bits into a well-spread hash (the splitmix64 finalizer).
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace deja::net::detail
