#include "deja/net/ip_addr.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ostream>

#include <fmt/format.h>

#include "addr_text.hpp"
#include "deja/errors.hpp"

namespace deja::net {
namespace detail {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string quote_char(char c) { return quote(std::string_view(&c, 1)); }

// Parses one IPv6 group (1-4 hex digits) that the caller has already cut at ':' boundaries.
bool parse_group(std::string_view group, std::uint16_t& out, std::string* why) {
  unsigned value = 0;
  for (char c : group) {
    const int digit = hex_value(c);
    if (digit < 0) {
      if (c == '.') return fail(why, "embedded IPv4 address {} must be the last 32 bits", quote(group));
      return fail(why, "unexpected character {} in IPv6 group {}", quote_char(c), quote(group));
    }
    value = value * 16 + static_cast<unsigned>(digit);
    if (value > 0xffff) return fail(why, "IPv6 group {} has more than 4 hex digits", quote(group));
  }
  // A run of leading zeros ("00000") never exceeds 0xffff, yet is still more than 4 digits.
  if (group.size() > 4) return fail(why, "IPv6 group {} has more than 4 hex digits", quote(group));
  out = static_cast<std::uint16_t>(value);
  return true;
}

// Parses the ':'-separated groups on one side of "::" (or of a whole address without "::") into
// groups[0..count). The last piece of the whole address may be a dotted IPv4 address, which fills
// two groups; `ipv4_allowed` says whether this side ends the address.
bool parse_groups(std::string_view text, bool ipv4_allowed, std::array<std::uint16_t, 8>& groups,
                  std::size_t& count, std::string* why) {
  count = 0;
  if (text.empty()) return true;
  std::size_t start = 0;
  while (true) {
    const std::size_t colon = text.find(':', start);
    const std::string_view piece = text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    const bool last = colon == std::string_view::npos;
    if (piece.empty()) return fail(why, "empty IPv6 group (only one '::' may stand for zero groups)");
    if (last && ipv4_allowed && piece.find('.') != std::string_view::npos) {
      std::array<std::uint8_t, 4> v4{};
      std::string v4_why;
      if (!parse_ipv4(piece, v4, why == nullptr ? nullptr : &v4_why)) {
        return fail(why, "embedded IPv4 address {} is invalid: {}", quote(piece), v4_why);
      }
      if (count + 2 > 8) return fail(why, "IPv6 address has more than 8 groups");
      groups[count++] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
      groups[count++] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
      return true;
    }
    if (count == 8) return fail(why, "IPv6 address has more than 8 groups");
    if (!parse_group(piece, groups[count], why)) return false;
    ++count;
    if (last) return true;
    start = colon + 1;
  }
}

void append(char*& out, std::string_view text) noexcept {
  std::memcpy(out, text.data(), text.size());
  out += text.size();
}

void append_decimal(char*& out, unsigned value) noexcept {
  // Three digits at most for an octet; to_chars cannot fail into a 3-byte buffer for 0-255.
  char digits[10];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  append(out, std::string_view(digits, static_cast<std::size_t>(result.ptr - digits)));
}

void append_ipv4(char*& out, const std::uint8_t* octets) noexcept {
  for (int i = 0; i < 4; ++i) {
    if (i != 0) *out++ = '.';
    append_decimal(out, octets[i]);
  }
}

void append_hex_group(char*& out, std::uint16_t value) noexcept {
  char digits[4];
  const auto result = std::to_chars(digits, digits + sizeof digits, value, 16);  // lowercase
  append(out, std::string_view(digits, static_cast<std::size_t>(result.ptr - digits)));
}

}  // namespace

std::string quote(std::string_view text) {
  // Long enough to show any address in full; hostile input beyond it is noise in a message.
  constexpr std::size_t kMaxShown = 80;
  std::string quoted = "\"";
  const std::size_t shown = std::min(text.size(), kMaxShown);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      quoted += static_cast<char>(c);
    } else {
      quoted += fmt::format("\\x{:02x}", c);
    }
  }
  quoted += '"';
  if (shown < text.size()) quoted += fmt::format("... ({} bytes)", text.size());
  return quoted;
}

bool parse_ipv4(std::string_view text, std::array<std::uint8_t, 4>& out, std::string* why) {
  if (text.empty()) return fail(why, "empty IPv4 address");
  if (text.back() == '.') return fail(why, "IPv4 address {} ends with '.'", quote(text));
  std::size_t octet_index = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::string_view octet = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (octet_index == 4) {
      return fail(why, "IPv4 address {} has more than 4 dot-separated octets", quote(text));
    }
    if (octet.empty()) return fail(why, "IPv4 address {} has an empty octet", quote(text));
    unsigned value = 0;
    for (char c : octet) {
      if (!is_digit(c)) return fail(why, "unexpected character {} in IPv4 octet {}", quote_char(c), quote(octet));
      // Stop accumulating past 255 so that a long run of digits cannot overflow.
      if (value <= 255) value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 255) return fail(why, "IPv4 octet {} is out of range (0-255)", quote(octet));
    if (octet.size() > 1 && octet[0] == '0') {
      return fail(why,
                  "IPv4 octet {} has a leading zero, which inet_aton and glibc's getaddrinfo read as "
                  "octal (\"010\" is 8) and other parsers as decimal, so it is rejected as ambiguous",
                  quote(octet));
    }
    out[octet_index++] = static_cast<std::uint8_t>(value);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (octet_index != 4) {
    return fail(why, "IPv4 address {} has {} dot-separated octets; 4 are needed", quote(text), octet_index);
  }
  return true;
}

bool parse_ipv6(std::string_view text, std::array<std::uint16_t, 8>& out, std::string* why) {
  if (text.empty()) return fail(why, "empty IPv6 address");
  if (text.find(":::") != std::string_view::npos) return fail(why, "IPv6 address has ':::'");
  const std::size_t gap = text.find("::");
  std::array<std::uint16_t, 8> head{};
  std::array<std::uint16_t, 8> tail{};
  std::size_t head_count = 0;
  std::size_t tail_count = 0;
  if (gap == std::string_view::npos) {
    if (text.front() == ':') return fail(why, "IPv6 address starts with a single ':'");
    if (text.back() == ':') return fail(why, "IPv6 address ends with a single ':'");
    if (!parse_groups(text, true, head, head_count, why)) return false;
    if (head_count != 8) {
      return fail(why, "IPv6 address has {} groups; 8 are needed when there is no '::'", head_count);
    }
    out = head;
    return true;
  }
  if (text.find("::", gap + 2) != std::string_view::npos) return fail(why, "IPv6 address has more than one '::'");
  const std::string_view before = text.substr(0, gap);
  const std::string_view after = text.substr(gap + 2);
  if (!before.empty() && before.front() == ':') return fail(why, "IPv6 address starts with a single ':'");
  if (!after.empty() && after.back() == ':') return fail(why, "IPv6 address ends with a single ':'");
  if (!parse_groups(before, false, head, head_count, why)) return false;
  if (!parse_groups(after, true, tail, tail_count, why)) return false;
  // "::" stands for at least one zero group (RFC 4291 section 2.2).
  if (head_count + tail_count > 7) {
    return fail(why, "IPv6 address has {} groups besides '::', which must stand for at least one; 7 is the most",
                head_count + tail_count);
  }
  out = {};
  for (std::size_t i = 0; i < head_count; ++i) out[i] = head[i];
  for (std::size_t i = 0; i < tail_count; ++i) out[8 - tail_count + i] = tail[i];
  return true;
}

bool parse_ip(std::string_view text, IpAddr& out, std::string* why) {
  if (text.empty()) return fail(why, "empty string");
  if (text.find('%') != std::string_view::npos) {
    return fail(why, "zone ids ('%...') belong to socket addresses, as \"[fe80::1%2]:80\"; an IpAddr has none");
  }
  if (text.front() == '[') return fail(why, "an IP address is written without brackets");
  const std::size_t colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos &&
      text.substr(0, colon).find('.') != std::string_view::npos) {
    return fail(why, "an IP address has no port; parse \"ip:port\" with SocketAddr");
  }
  if (colon != std::string_view::npos) {
    std::array<std::uint16_t, 8> groups{};
    if (!parse_ipv6(text, groups, why)) return false;
    out = IpAddr::v6(groups);
    return true;
  }
  std::array<std::uint8_t, 4> octets{};
  if (!parse_ipv4(text, octets, why)) return false;
  out = IpAddr::v4(octets);
  return true;
}

std::size_t format_ip(const IpAddr& ip, char* out) noexcept {
  char* const begin = out;
  if (ip.is_v4()) {
    const auto octets = ip.v4_octets();
    append_ipv4(out, octets.data());
    return static_cast<std::size_t>(out - begin);
  }
  const auto bytes = ip.v6_octets();
  if (ip.is_ipv4_mapped()) {
    append(out, "::ffff:");
    append_ipv4(out, bytes.data() + 12);
    return static_cast<std::size_t>(out - begin);
  }
  const auto groups = ip.v6_segments();
  // The longest run of zero groups, the first on a tie; a single zero group is not compressed
  // (RFC 5952 section 4.2).
  std::size_t best_start = 0;
  std::size_t best_length = 0;
  for (std::size_t i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < 8 && groups[end] == 0) ++end;
    if (end - i > best_length) {
      best_start = i;
      best_length = end - i;
    }
    i = end;
  }
  if (best_length < 2) best_length = 0;
  for (std::size_t i = 0; i < 8;) {
    if (best_length != 0 && i == best_start) {
      append(out, "::");
      i += best_length;
      continue;
    }
    if (i != 0 && !(best_length != 0 && i == best_start + best_length)) *out++ = ':';
    append_hex_group(out, groups[i]);
    ++i;
  }
  return static_cast<std::size_t>(out - begin);
}

}  // namespace detail

IpAddr IpAddr::parse(std::string_view text) {
  IpAddr ip;
  std::string why;
  if (!detail::parse_ip(text, ip, &why)) {
    throw AddrParseError(fmt::format("deja::net: invalid IP address {}: {}", detail::quote(text), why));
  }
  return ip;
}

std::optional<IpAddr> IpAddr::try_parse(std::string_view text) noexcept {
  IpAddr ip;
  if (!detail::parse_ip(text, ip, nullptr)) return std::nullopt;
  return ip;
}

std::array<std::uint8_t, 4> IpAddr::v4_octets() const {
  if (!is_v4()) throw UsageError("deja::net::IpAddr::v4_octets on an IPv6 address " + to_string());
  return {bytes_[0], bytes_[1], bytes_[2], bytes_[3]};
}

std::array<std::uint8_t, 16> IpAddr::v6_octets() const {
  if (!is_v6()) throw UsageError("deja::net::IpAddr::v6_octets on an IPv4 address " + to_string());
  return bytes_;
}

std::array<std::uint16_t, 8> IpAddr::v6_segments() const {
  if (!is_v6()) throw UsageError("deja::net::IpAddr::v6_segments on an IPv4 address " + to_string());
  std::array<std::uint16_t, 8> segments{};
  for (std::size_t i = 0; i < 8; ++i) {
    segments[i] = static_cast<std::uint16_t>(bytes_[2 * i] << 8 | bytes_[2 * i + 1]);
  }
  return segments;
}

std::string IpAddr::to_string() const {
  char text[detail::kMaxIpText];
  return std::string(text, detail::format_ip(*this, text));
}

std::size_t IpAddr::hash() const noexcept {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  std::memcpy(&high, bytes_.data(), 8);
  std::memcpy(&low, bytes_.data() + 8, 8);
  const std::uint64_t family = is_v4() ? 4 : 6;
  return static_cast<std::size_t>(detail::mix64(detail::mix64(high ^ family) ^ low));
}

std::ostream& operator<<(std::ostream& out, const IpAddr& ip) { return out << ip.to_string(); }

}  // namespace deja::net
