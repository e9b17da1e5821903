// deja::net::IpAddr and SocketAddr: text forms (RFC 5952 canonical output, strict input with a
// reason for every rejection), sockaddr conversions, ordering, hashing and fmt formatting; checked
// against glibc's inet_pton / inet_ntop by rapidcheck and by a loop over random text.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <rapidcheck.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "deja/errors.hpp"
#include "deja/net/ip_addr.hpp"
#include "deja/net/socket_addr.hpp"

using deja::net::AddrParseError;
using deja::net::IpAddr;
using deja::net::SocketAddr;
using deja::net::UnsupportedSockaddr;

namespace {

// The message of the AddrParseError that parse throws, or "" when it parses.
template <typename Addr>
std::string parse_error(const std::string& text) {
  try {
    (void)Addr::parse(text);
  } catch (const AddrParseError& e) {
    return e.what();
  }
  return "";
}

std::string ntop(const IpAddr& ip) {
  char text[INET6_ADDRSTRLEN];
  if (ip.is_v4()) {
    const auto octets = ip.v4_octets();
    REQUIRE(inet_ntop(AF_INET, octets.data(), text, sizeof text) != nullptr);
  } else {
    const auto octets = ip.v6_octets();
    REQUIRE(inet_ntop(AF_INET6, octets.data(), text, sizeof text) != nullptr);
  }
  return text;
}

// What glibc's inet_pton makes of the text, as an IpAddr; nullopt when it rejects it.
std::optional<IpAddr> pton(const std::string& text) {
  std::array<std::uint8_t, 4> v4{};
  if (inet_pton(AF_INET, text.c_str(), v4.data()) == 1) return IpAddr::v4(v4);
  std::array<std::uint8_t, 16> v6{};
  if (inet_pton(AF_INET6, text.c_str(), v6.data()) == 1) return IpAddr::v6_from_octets(v6);
  return std::nullopt;
}

// glibc's inet_ntop still prints the deprecated IPv4-compatible form ::a.b.c.d for ::/96 (with
// non-zero group 6); deja prints hex there, as RFC 5952 section 5 and Rust, Go and Python do.
bool is_ipv4_compatible(const IpAddr& ip) {
  if (!ip.is_v6()) return false;
  const auto groups = ip.v6_segments();
  return std::all_of(groups.begin(), groups.begin() + 6, [](std::uint16_t g) { return g == 0; }) && groups[6] != 0;
}

}  // namespace

TEST_CASE("SocketAddr round-trips IPv4 addresses through text", "[net][addr]") {
  for (const char* text : {"0.0.0.0:0", "1.2.3.4:80", "127.0.0.1:8080", "192.0.2.1:443", "10.0.0.1:1",
                           "255.255.255.255:65535", "100.64.0.0:53", "8.8.8.8:0"}) {
    INFO(text);
    const SocketAddr addr = SocketAddr::parse(text);
    CHECK(addr.is_v4());
    CHECK(addr.to_string() == text);
    CHECK(SocketAddr::try_parse(text) == addr);
  }
  const SocketAddr addr = SocketAddr::parse("192.0.2.1:443");
  CHECK(addr.ip() == IpAddr::v4(192, 0, 2, 1));
  CHECK(addr.port() == 443);
  CHECK(addr.scope_id() == 0);
}

TEST_CASE("SocketAddr formats IPv6 addresses in RFC 5952 canonical form", "[net][addr]") {
  struct Case {
    const char* input;
    const char* canonical;
  };
  const Case cases[] = {
      {"[2001:db8:0:0:1:0:0:1]:80", "[2001:db8::1:0:0:1]:80"},  // longest run; the first on a tie
      {"[0:0:0:0:0:0:0:1]:80", "[::1]:80"},
      {"[::1]:80", "[::1]:80"},
      {"[::]:0", "[::]:0"},
      {"[0:0:0:0:0:0:0:0]:0", "[::]:0"},
      {"[2001:0DB8:0000:0000:0000:0000:0000:0001]:443", "[2001:db8::1]:443"},  // lowercase, no leading zeros
      {"[2001:DB8::A]:1", "[2001:db8::a]:1"},
      {"[2001:db8:0:1:1:1:1:1]:1", "[2001:db8:0:1:1:1:1:1]:1"},  // a single zero group stays
      {"[1:2:3:4:5:6:7::]:1", "[1:2:3:4:5:6:7:0]:1"},
      {"[1:2:3:4:5:6::8]:1", "[1:2:3:4:5:6:0:8]:1"},
      {"[2001:0:0:1:0:0:0:1]:1", "[2001:0:0:1::1]:1"},  // the longer run wins
      {"[1:0:0:0:0:0:0:0]:1", "[1::]:1"},
      {"[a:b:c:d:e:f:0:0]:1", "[a:b:c:d:e:f::]:1"},
      {"[::2:3:4:5:6:7:8]:1", "[0:2:3:4:5:6:7:8]:1"},
      {"[fe80::1:2]:1", "[fe80::1:2]:1"},
      {"[::ffff:192.0.2.1]:80", "[::ffff:192.0.2.1]:80"},  // IPv4-mapped keeps the dotted form
      {"[::ffff:c000:0201]:80", "[::ffff:192.0.2.1]:80"},
      {"[0:0:0:0:0:ffff:0.0.0.0]:80", "[::ffff:0.0.0.0]:80"},
      {"[::1.2.3.4]:1", "[::102:304]:1"},  // deprecated IPv4-compatible: hex, unlike glibc
      {"[64:ff9b::192.0.2.33]:1", "[64:ff9b::c000:221]:1"},
      {"[1:2:3:4:5:6:1.2.3.4]:1", "[1:2:3:4:5:6:102:304]:1"},
      {"[::ffff:0:1.2.3.4]:1", "[::ffff:0:102:304]:1"},
      {"[fe80::1%2]:80", "[fe80::1%2]:80"},
      {"[fe80::1%0]:80", "[fe80::1]:80"},  // zone 0 is "no zone"
      {"[fe80::1%4294967295]:80", "[fe80::1%4294967295]:80"},
  };
  for (const Case& c : cases) {
    INFO(c.input);
    const SocketAddr addr = SocketAddr::parse(c.input);
    CHECK(addr.is_v6());
    CHECK(addr.to_string() == c.canonical);
    // The canonical text is a fixed point and names the same address.
    CHECK(SocketAddr::parse(c.canonical) == addr);
    CHECK(SocketAddr::parse(c.canonical).to_string() == c.canonical);
  }
  CHECK(SocketAddr::parse("[fe80::1%2]:80").scope_id() == 2);
}

TEST_CASE("SocketAddr accepts ports with leading zeros, which are unambiguously decimal", "[net][addr]") {
  CHECK(SocketAddr::parse("1.2.3.4:0080").port() == 80);
  CHECK(SocketAddr::parse("[::1]:00000").port() == 0);
  CHECK(SocketAddr::parse("1.2.3.4:0080").to_string() == "1.2.3.4:80");
}

TEST_CASE("SocketAddr rejects malformed text with a message naming the problem", "[net][addr]") {
  struct Case {
    std::string input;
    const char* problem;
  };
  const std::vector<Case> cases = {
      {"", "empty string"},
      {"01.2.3.4:80", "\"01\" has a leading zero"},
      {"01.2.3.4:80", "octal"},
      {"1.2.3.010:80", "leading zero"},
      {"1.2.3.256:80", "\"256\" is out of range (0-255)"},
      {"1.2.3.99999999999999999999:80", "out of range (0-255)"},
      {"1.2.3.4:65536", "port \"65536\" is out of range (0-65535)"},
      {"1.2.3.4:99999999999999999999", "out of range (0-65535)"},
      {"1.2.3.4", "missing port"},
      {"1.2.3.4:", "missing port after ':'"},
      {"[::1]", "missing port after ']'"},
      {"[::1]80", "expected ':' and a port after ']'"},
      {"[::1]:", "missing port after ':'"},
      {"::1:80", "must be in brackets"},
      {"2001:db8::1", "must be in brackets"},
      {"[::1:80", "missing ']'"},
      {"[1.2.3.4]:80", "brackets are only for IPv6"},
      {"[fe80::1%eth0]:80", "\"eth0\" is not a numeric interface index"},
      {"[fe80::1%eth0]:80", "if_nametoindex"},
      {"[fe80::1%]:80", "empty zone id"},
      {"[fe80::1%4294967296]:80", "zone id \"4294967296\" is out of range"},
      {"1.2.3.4%2:80", "zone ids apply only to IPv6"},
      {"1.2.3:80", "has 3 dot-separated octets; 4 are needed"},
      {"1.2.3.4.5:80", "more than 4 dot-separated octets"},
      {"1..3.4:80", "empty octet"},
      {"1.2.3.4.:80", "ends with '.'"},
      {":80", "missing IP address before ':'"},
      {"1.2.3.4:8a", "port \"8a\" is not a decimal number"},
      {"1.2.3.4:-1", "not a decimal number"},
      {"1.2.3.4: 80", "not a decimal number"},
      {"1.2.3.a:80", "unexpected character \"a\""},
      {"localhost:80", "unexpected character \"l\""},
      {"[1::2::3]:80", "more than one '::'"},
      {"[1:::2]:80", "':::'"},
      {"[1:2:3:4:5:6:7]:80", "7 groups; 8 are needed"},
      {"[1:2:3:4:5:6:7:8:9]:80", "more than 8 groups"},
      {"[1:2:3:4:5:6:7:1.2.3.4]:80", "more than 8 groups"},
      {"[1:2:3:4::5:6:7:8]:80", "must stand for at least one"},
      {"[12345::]:80", "\"12345\" has more than 4 hex digits"},
      {"[00000::]:80", "more than 4 hex digits"},
      {"[g::]:80", "unexpected character \"g\""},
      {"[:1:2:3:4:5:6:7]:80", "starts with a single ':'"},
      {"[1:2:3:4:5:6:7:]:80", "ends with a single ':'"},
      {"[:1::]:80", "starts with a single ':'"},
      {"[::1:]:80", "ends with a single ':'"},
      {"[1.2.3.4::]:80", "must be the last 32 bits"},
      {"[::1.2.3.4:5]:80", "must be the last 32 bits"},
      {"[::1.2.3.04]:80", "leading zero"},
      {"[::1.2.3]:80", "embedded IPv4 address \"1.2.3\" is invalid"},
      {"[]:80", "empty IPv6 address"},
      {std::string("\x01\xff:80", 5), "\"\\x01\\xff:80\""},  // hostile bytes are escaped
      {std::string(200, '1'), "... (200 bytes)"},           // and long input is cut
  };
  for (const Case& c : cases) {
    INFO("input: " << c.input);
    const std::string message = parse_error<SocketAddr>(c.input);
    CHECK_THAT(message, Catch::Matchers::Contains(c.problem));
    CHECK_THAT(message, Catch::Matchers::StartsWith("deja::net: invalid socket address \""));
    CHECK_FALSE(SocketAddr::try_parse(c.input).has_value());
  }
}

TEST_CASE("SocketAddr::parse throws AddrParseError, an std::invalid_argument", "[net][addr]") {
  CHECK_THROWS_AS(SocketAddr::parse("01.2.3.4:80"), AddrParseError);
  CHECK_THROWS_AS(SocketAddr::parse("01.2.3.4:80"), std::invalid_argument);
}

TEST_CASE("IpAddr parses and formats bare addresses and rejects ports, brackets and zones", "[net][addr]") {
  CHECK(IpAddr::parse("192.0.2.1") == IpAddr::v4(192, 0, 2, 1));
  CHECK(IpAddr::parse("2001:db8::1") == IpAddr::v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}));
  CHECK(IpAddr::parse("2001:DB8:0:0:1:0:0:1").to_string() == "2001:db8::1:0:0:1");
  CHECK(IpAddr::parse("::ffff:192.0.2.1").to_string() == "::ffff:192.0.2.1");
  CHECK(IpAddr::try_parse("::") == IpAddr::v6_unspecified());

  CHECK_THAT(parse_error<IpAddr>("1.2.3.4:80"), Catch::Matchers::Contains("has no port"));
  CHECK_THAT(parse_error<IpAddr>("[::1]"), Catch::Matchers::Contains("without brackets"));
  CHECK_THAT(parse_error<IpAddr>("fe80::1%2"), Catch::Matchers::Contains("zone ids"));
  CHECK_THAT(parse_error<IpAddr>("01.2.3.4"), Catch::Matchers::Contains("leading zero"));
  CHECK_THAT(parse_error<IpAddr>(""), Catch::Matchers::Contains("empty string"));
  CHECK_THAT(parse_error<IpAddr>("1.2.3.4"), Catch::Matchers::Equals(""));
  CHECK_THAT(parse_error<IpAddr>("1::2::3"), Catch::Matchers::StartsWith("deja::net: invalid IP address \"1::2::3\": "));
}

TEST_CASE("IpAddr helpers name loopback and unspecified addresses of both families", "[net][addr]") {
  CHECK(IpAddr::v4_loopback().to_string() == "127.0.0.1");
  CHECK(IpAddr::v6_loopback().to_string() == "::1");
  CHECK(IpAddr::v4_unspecified().to_string() == "0.0.0.0");
  CHECK(IpAddr::v6_unspecified().to_string() == "::");
  CHECK(IpAddr() == IpAddr::v4_unspecified());
  CHECK(SocketAddr().to_string() == "0.0.0.0:0");

  CHECK(IpAddr::v4_loopback().is_loopback());
  CHECK(IpAddr::v4(127, 255, 0, 9).is_loopback());
  CHECK(IpAddr::v6_loopback().is_loopback());
  CHECK_FALSE(IpAddr::v4(128, 0, 0, 1).is_loopback());
  CHECK_FALSE(IpAddr::parse("::ffff:127.0.0.1").is_loopback());  // mapped is not loopback
  CHECK_FALSE(IpAddr::v6_unspecified().is_loopback());

  CHECK(IpAddr::v4_unspecified().is_unspecified());
  CHECK(IpAddr::v6_unspecified().is_unspecified());
  CHECK_FALSE(IpAddr::v6_loopback().is_unspecified());

  CHECK(IpAddr::v4_loopback().is_v4());
  CHECK_FALSE(IpAddr::v4_loopback().is_v6());
  CHECK(IpAddr::v6_loopback().is_v6());
  CHECK(IpAddr::v6_loopback().family() == IpAddr::Family::v6);
  CHECK(IpAddr::parse("::ffff:1.2.3.4").is_ipv4_mapped());
  CHECK_FALSE(IpAddr::v4(1, 2, 3, 4).is_ipv4_mapped());
  // 0.0.0.0 and :: are different addresses even though both are all zero bits.
  CHECK(IpAddr::v4_unspecified() != IpAddr::v6_unspecified());

  static_assert(IpAddr::v4(10, 0, 0, 1).is_v4());
  static_assert(IpAddr::v6_loopback().is_loopback());
}

TEST_CASE("IpAddr accessors of the other family are usage errors", "[net][addr]") {
  CHECK_THROWS_AS(IpAddr::v6_loopback().v4_octets(), deja::UsageError);
  CHECK_THROWS_AS(IpAddr::v4_loopback().v6_octets(), deja::UsageError);
  CHECK_THROWS_AS(IpAddr::v4_loopback().v6_segments(), deja::UsageError);
  CHECK(IpAddr::v4(1, 2, 3, 4).v4_octets() == std::array<std::uint8_t, 4>{1, 2, 3, 4});
  CHECK(IpAddr::parse("1:2::ff").v6_segments() == std::array<std::uint16_t, 8>{1, 2, 0, 0, 0, 0, 0, 0xff});
  CHECK_THROWS_AS(SocketAddr(IpAddr::v4_loopback(), 80, 3), deja::UsageError);
  CHECK(SocketAddr(IpAddr::v6_loopback(), 80, 3).scope_id() == 3);
}

TEST_CASE("SocketAddr round-trips through sockaddr_storage, sockaddr_in and sockaddr_in6", "[net][addr]") {
  SECTION("IPv4") {
    const SocketAddr addr = SocketAddr::parse("192.0.2.1:8080");
    sockaddr_storage storage{};
    const socklen_t length = addr.to_sockaddr(storage);
    REQUIRE(length == sizeof(sockaddr_in));
    sockaddr_in in{};
    std::memcpy(&in, &storage, sizeof in);
    CHECK(in.sin_family == AF_INET);
    CHECK(in.sin_port == htons(8080));
    in_addr expected{};
    REQUIRE(inet_pton(AF_INET, "192.0.2.1", &expected) == 1);
    CHECK(in.sin_addr.s_addr == expected.s_addr);
    CHECK(SocketAddr::from_sockaddr(in) == addr);
    CHECK(SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length) == addr);
  }
  SECTION("IPv6 with a scope id") {
    const SocketAddr addr = SocketAddr::parse("[fe80::1:2%7]:443");
    sockaddr_storage storage{};
    const socklen_t length = addr.to_sockaddr(storage);
    REQUIRE(length == sizeof(sockaddr_in6));
    sockaddr_in6 in6{};
    std::memcpy(&in6, &storage, sizeof in6);
    CHECK(in6.sin6_family == AF_INET6);
    CHECK(in6.sin6_port == htons(443));
    CHECK(in6.sin6_scope_id == 7);
    CHECK(in6.sin6_flowinfo == 0);
    in6_addr expected{};
    REQUIRE(inet_pton(AF_INET6, "fe80::1:2", &expected) == 1);
    CHECK(std::memcmp(&in6.sin6_addr, &expected, sizeof expected) == 0);
    CHECK(SocketAddr::from_sockaddr(in6) == addr);
    CHECK(SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length) == addr);
  }
  SECTION("what the kernel reports for a bound socket") {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_storage storage{};
    const socklen_t bind_length = SocketAddr(IpAddr::v4_loopback(), 0).to_sockaddr(storage);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&storage), bind_length) == 0);
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof bound;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) == 0);
    ::close(fd);
    const SocketAddr local = SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&bound), bound_length);
    CHECK(local.ip() == IpAddr::v4_loopback());
    CHECK(local.port() != 0);  // the kernel chose one
  }
}

TEST_CASE("SocketAddr::from_sockaddr rejects other families, short lengths and null", "[net][addr]") {
  sockaddr_un unix_addr{};
  unix_addr.sun_family = AF_UNIX;
  CHECK_THROWS_WITH(SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&unix_addr), sizeof unix_addr),
                    Catch::Matchers::Contains("unsupported address AF_UNIX"));
  CHECK_THROWS_AS(SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&unix_addr), sizeof unix_addr),
                  UnsupportedSockaddr);

  sockaddr_storage storage{};
  (void)SocketAddr::parse("[::1]:80").to_sockaddr(storage);
  CHECK_THROWS_WITH(SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), sizeof(sockaddr_in)),
                    Catch::Matchers::Contains("too short for AF_INET6"));
  (void)SocketAddr::parse("1.2.3.4:80").to_sockaddr(storage);
  CHECK_THROWS_WITH(SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), 4),
                    Catch::Matchers::Contains("too short for AF_INET"));
  CHECK_THROWS_WITH(SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), 1),
                    Catch::Matchers::Contains("too short to hold an address family"));
  CHECK_THROWS_AS(SocketAddr::from_sockaddr(nullptr, sizeof storage), UnsupportedSockaddr);
}

TEST_CASE("SocketAddr orders by family, address, port, then scope, consistently with == and hash", "[net][addr]") {
  const std::vector<SocketAddr> ascending = {
      SocketAddr::parse("0.0.0.0:0"),      SocketAddr::parse("1.2.3.4:80"),    SocketAddr::parse("1.2.3.4:81"),
      SocketAddr::parse("1.2.3.5:0"),      SocketAddr::parse("9.0.0.0:0"),     SocketAddr::parse("10.0.0.0:0"),
      SocketAddr::parse("255.255.255.255:0"), SocketAddr::parse("[::]:0"),     SocketAddr::parse("[::1]:0"),
      SocketAddr::parse("[::1%1]:0"),      SocketAddr::parse("[::1]:1"),       SocketAddr::parse("[::ffff:0.0.0.0]:0"),
      SocketAddr::parse("[2001:db8::]:0"), SocketAddr::parse("[ffff::]:0"),
  };
  CHECK(std::is_sorted(ascending.begin(), ascending.end()));
  for (std::size_t i = 0; i < ascending.size(); ++i) {
    for (std::size_t j = 0; j < ascending.size(); ++j) {
      INFO(ascending[i] << " vs " << ascending[j]);
      CHECK(((ascending[i] <=> ascending[j]) == 0) == (i == j));
      CHECK((ascending[i] < ascending[j]) == (i < j));
      CHECK((ascending[i] == ascending[j]) == (i == j));
    }
  }
  // Different spellings of one address are equal and hash equally.
  const std::vector<std::string> spellings = {"[::1]:80", "[0:0:0:0:0:0:0:1]:80", "[0000::0001]:80",
                                              "[::0.0.0.1]:80", "[::1]:0080"};
  std::unordered_set<SocketAddr> set;
  for (const auto& text : spellings) set.insert(SocketAddr::parse(text));
  CHECK(set.size() == 1);
  std::unordered_set<SocketAddr> distinct(ascending.begin(), ascending.end());
  CHECK(distinct.size() == ascending.size());
  std::unordered_set<IpAddr> ips;
  for (const auto& addr : ascending) ips.insert(addr.ip());
  CHECK(ips.size() == ascending.size() - 3);  // 1.2.3.4 twice, ::1 four times
  CHECK(std::hash<IpAddr>{}(IpAddr::v4_unspecified()) != std::hash<IpAddr>{}(IpAddr::v6_unspecified()));
}

TEST_CASE("IpAddr and SocketAddr format with fmt and ostream", "[net][addr]") {
  const SocketAddr addr = SocketAddr::parse("[2001:db8:0:0:1:0:0:1]:80");
  CHECK(fmt::format("{}", addr) == "[2001:db8::1:0:0:1]:80");
  CHECK(fmt::format("{}", addr.ip()) == "2001:db8::1:0:0:1");
  CHECK(fmt::format("<{:>12}>", IpAddr::v4(1, 2, 3, 4)) == "<     1.2.3.4>");
  CHECK(fmt::format("<{:<14}>", SocketAddr(IpAddr::v4(1, 2, 3, 4), 5)) == "<1.2.3.4:5     >");
  std::ostringstream out;
  out << addr << ' ' << addr.ip();
  CHECK(out.str() == "[2001:db8::1:0:0:1]:80 2001:db8::1:0:0:1");
}

namespace {

// Random addresses biased towards zero groups, so that "::" compression, ties, the IPv4-mapped
// and IPv4-compatible forms come up often rather than once in 2^96 draws.
rc::Gen<IpAddr> arbitrary_ip() {
  const auto group = rc::gen::weightedOneOf<std::uint16_t>(
      {{4, rc::gen::just<std::uint16_t>(0)}, {1, rc::gen::just<std::uint16_t>(1)}, {4, rc::gen::arbitrary<std::uint16_t>()}});
  return rc::gen::exec([group] {
    const int shape = *rc::gen::inRange(0, 5);
    if (shape == 0) {
      std::array<std::uint8_t, 4> octets{};
      for (auto& o : octets) o = *rc::gen::arbitrary<std::uint8_t>();
      return IpAddr::v4(octets);
    }
    std::array<std::uint16_t, 8> groups{};
    for (auto& g : groups) g = *group;
    if (shape == 1) {  // IPv4-mapped
      std::fill(groups.begin(), groups.begin() + 5, std::uint16_t{0});
      groups[5] = 0xffff;
    } else if (shape == 2) {  // IPv4-compatible
      std::fill(groups.begin(), groups.begin() + 6, std::uint16_t{0});
    }
    return IpAddr::v6(groups);
  });
}

}  // namespace

TEST_CASE("SocketAddr property: parse(to_string(a)) == a, and the address text is inet_ntop's", "[net][addr]") {
  const bool ok = rc::check("socket address text round trip", [] {
    const IpAddr ip = *arbitrary_ip();
    const auto port = *rc::gen::arbitrary<std::uint16_t>();
    const std::uint32_t scope =
        ip.is_v6() ? *rc::gen::weightedOneOf<std::uint32_t>({{3, rc::gen::just<std::uint32_t>(0)},
                                                              {1, rc::gen::arbitrary<std::uint32_t>()}})
                   : 0;
    const SocketAddr addr(ip, port, scope);
    const std::string text = addr.to_string();
    RC_ASSERT(SocketAddr::parse(text) == addr);
    RC_ASSERT(SocketAddr::try_parse(text) == addr);
    RC_ASSERT(IpAddr::parse(ip.to_string()) == ip);

    if (is_ipv4_compatible(ip)) {
      // Where glibc prints ::a.b.c.d, deja prints hex; both must name the same address.
      RC_ASSERT(ip.to_string().find('.') == std::string::npos);
      RC_ASSERT(pton(ip.to_string()) == ip);
    } else {
      RC_ASSERT(ip.to_string() == ntop(ip));
    }

    sockaddr_storage storage{};
    const socklen_t length = addr.to_sockaddr(storage);
    RC_ASSERT(SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length) == addr);
  });
  REQUIRE(ok);
}

TEST_CASE("SocketAddr and IpAddr parse random text without crashing, agreeing with inet_pton", "[net][addr]") {
  // Half the inputs are valid addresses with a few random edits, so that they get deep into the
  // parsers and often still parse; the rest are random strings of address characters and bytes.
  const std::vector<std::string> seeds = {"1.2.3.4:80",      "0.0.0.0:0",         "255.255.255.255:65535",
                                          "[::1]:80",        "[::]:0",            "[2001:db8::1:0:0:1]:443",
                                          "[::ffff:1.2.3.4]:8", "[fe80::1%2]:80", "[1:2:3:4:5:6:7:8]:9",
                                          "::1",             "1::",               "1:2:3:4:5:6:1.2.3.4"};
  constexpr std::string_view kAlphabet = "0123456789abcdefABCDEF:::...[]%fFxg ";
  std::mt19937_64 random(20240611);
  const auto random_char = [&] {
    return random() % 4 != 0 ? kAlphabet[random() % kAlphabet.size()] : static_cast<char>(random() % 256);
  };
  std::size_t parsed_sockets = 0;
  std::size_t parsed_ips = 0;
  for (int iteration = 0; iteration < 100000; ++iteration) {
    std::string text;
    if (random() % 2 == 0) {
      text = seeds[random() % seeds.size()];
      for (std::uint64_t edits = 1 + random() % 3; edits > 0; --edits) {
        const std::size_t at = random() % (text.size() + 1);
        switch (random() % 3) {
          case 0: text.insert(at, 1, random_char()); break;
          case 1: if (at < text.size()) text.erase(at, 1); break;
          default: if (at < text.size()) text[at] = random_char(); break;
        }
      }
    } else {
      for (std::size_t length = random() % 48; length > 0; --length) text += random_char();
    }
    INFO("input bytes: " << fmt::format("{}", fmt::join(std::vector<unsigned char>(text.begin(), text.end()), ",")));

    const std::optional<SocketAddr> socket = SocketAddr::try_parse(text);
    try {
      const SocketAddr thrown = SocketAddr::parse(text);
      REQUIRE(socket == thrown);
    } catch (const AddrParseError&) {
      REQUIRE_FALSE(socket.has_value());
    }
    if (socket) {
      ++parsed_sockets;
      REQUIRE(SocketAddr::parse(socket->to_string()) == *socket);
    }

    const std::optional<IpAddr> ip = IpAddr::try_parse(text);
    try {
      const IpAddr thrown = IpAddr::parse(text);
      REQUIRE(ip == thrown);
    } catch (const AddrParseError&) {
      REQUIRE_FALSE(ip.has_value());
    }
    if (ip) ++parsed_ips;
    // glibc's inet_pton is the reference for bare addresses; it stops at a NUL, so skip those.
    if (text.find('\0') == std::string::npos) REQUIRE(ip == pton(text));
  }
  // The inputs must reach the accepting paths too, or the loop proves little.
  CHECK(parsed_sockets > 1000);
  CHECK(parsed_ips > 1000);
}
