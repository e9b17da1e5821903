// deja::net UDP sockets and name lookup on the production runtime.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <string>

#include "net_test_support.hpp"

using namespace std::chrono_literals;
using deja::net::SocketAddr;
using deja::net::UdpSocket;
using net_test::error_of;
using net_test::kLoopbackAnyPort;

namespace {

deja::Task<void> udp_round_trip() {
  UdpSocket a = UdpSocket::bind(kLoopbackAnyPort);
  UdpSocket b = UdpSocket::bind(kLoopbackAnyPort);
  REQUIRE(a.local_addr().port() != 0);
  const std::size_t sent = co_await a.send_to(deja::net::as_bytes("ping"), b.local_addr());
  REQUIRE(sent == 4);
  std::array<std::byte, 64> buf;
  const UdpSocket::Received got = co_await b.recv_from(buf);
  REQUIRE(got.from == a.local_addr());
  REQUIRE(net_test::text_of(std::span<const std::byte>(buf.data(), got.size)) == "ping");
  // A datagram longer than the buffer is cut to it.
  co_await b.send_to(deja::net::as_bytes("a longer reply"), a.local_addr());
  std::array<std::byte, 4> small;
  const UdpSocket::Received cut = co_await a.recv_from(small);
  REQUIRE(cut.size == 4);
  REQUIRE(net_test::text_of(small) == "a lo");
}

}  // namespace

TEST_CASE("udp send_to and recv_from round trip a datagram and truncate one longer than the buffer", "[net]") {
  net_test::run(udp_round_trip());
}

namespace {

deja::Task<void> udp_connect_filters() {
  UdpSocket server = UdpSocket::bind(kLoopbackAnyPort);
  UdpSocket peer = UdpSocket::bind(kLoopbackAnyPort);
  UdpSocket stranger = UdpSocket::bind(kLoopbackAnyPort);
  const std::error_code before = co_await error_of(server.send(deja::net::as_bytes("x")));
  REQUIRE(before == std::errc::not_connected);
  server.connect(peer.local_addr());
  // The stranger's datagram arrives first but is dropped by the kernel's filter.
  co_await stranger.send_to(deja::net::as_bytes("from stranger"), server.local_addr());
  co_await peer.send_to(deja::net::as_bytes("from peer"), server.local_addr());
  std::array<std::byte, 64> buf;
  const std::size_t n = co_await server.recv(buf);
  REQUIRE(net_test::text_of(std::span<const std::byte>(buf.data(), n)) == "from peer");
  co_await server.send(deja::net::as_bytes("to peer"));
  const UdpSocket::Received got = co_await peer.recv_from(buf);
  REQUIRE(got.from == server.local_addr());
  REQUIRE(net_test::text_of(std::span<const std::byte>(buf.data(), got.size)) == "to peer");
}

}  // namespace

TEST_CASE("udp send before connect fails with not_connected and connect filters other sources", "[net]") {
  net_test::run(udp_connect_filters());
}

namespace {

deja::Task<void> lookup_localhost() {
  const std::vector<SocketAddr> addrs = co_await deja::net::lookup_host("localhost", 8080);
  REQUIRE_FALSE(addrs.empty());
  for (const SocketAddr& addr : addrs) {
    REQUIRE(addr.ip().is_loopback());
    REQUIRE(addr.port() == 8080);
  }
  const std::vector<SocketAddr> by_text = co_await deja::net::lookup_host("localhost:80");
  REQUIRE_FALSE(by_text.empty());
  REQUIRE(by_text.front().port() == 80);
  // Literal addresses resolve to themselves.
  const std::vector<SocketAddr> v6 = co_await deja::net::lookup_host("[::1]:443");
  REQUIRE(v6 == std::vector<SocketAddr>{SocketAddr::parse("[::1]:443")});
  const std::vector<SocketAddr> v4 = co_await deja::net::lookup_host("192.0.2.7", 9);
  REQUIRE(v4 == std::vector<SocketAddr>{SocketAddr::parse("192.0.2.7:9")});
}

}  // namespace

TEST_CASE("lookup_host resolves localhost to loopback addresses and literals to themselves", "[net]") {
  net_test::run(lookup_localhost());
}

namespace {

deja::Task<void> lookup_bad_name() {
  // .invalid never resolves (RFC 6761).
  const std::error_code ec = co_await error_of(deja::net::lookup_host("no-such-host.invalid", 80));
  REQUIRE(ec == std::errc::host_unreachable);
}

deja::Task<bool> parse_error(std::string text) {
  try {
    (void)co_await deja::net::lookup_host(std::move(text));
  } catch (const deja::net::AddrParseError&) {
    co_return true;
  }
  co_return false;
}

deja::Task<void> lookup_malformed() {
  for (const char* text : {"localhost", "localhost:", ":80", "localhost:65536", "::1:80", "[::1:80", "bad host:80", "a/b:80"}) {
    const bool rejected = co_await parse_error(text);
    INFO(text);
    REQUIRE(rejected);
  }
  bool rejected_empty = false;
  try {
    (void)co_await deja::net::lookup_host("", 80);
  } catch (const deja::net::AddrParseError&) {
    rejected_empty = true;
  }
  REQUIRE(rejected_empty);
}

}  // namespace

TEST_CASE("lookup_host of a name that does not exist fails with host_unreachable", "[net]") { net_test::run(lookup_bad_name()); }

TEST_CASE("lookup_host rejects malformed host and port text with AddrParseError", "[net]") { net_test::run(lookup_malformed()); }
