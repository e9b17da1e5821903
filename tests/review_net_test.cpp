// Review probes: deja::net semantics under cancellation, resets, and sim vs real sockets.
#include <catch2/catch.hpp>

#include <array>
#include <string>

#include "net_test_support.hpp"

using namespace std::chrono_literals;
using deja::net::TcpListener;
using deja::net::TcpStream;
using net_test::error_of;
using net_test::kLoopbackAnyPort;

namespace {

deja::Task<std::size_t> read_some(TcpStream* stream, std::span<std::byte> buf) { co_return co_await stream->read(buf); }

// The peer resets the connection (it closes with bytes it never read). A read of the reset stream
// is cancelled right after it started; the next read must still report the reset, as it does
// when no read was cancelled: a cancelled read loses nothing, and a reset must not turn into a
// clean end of stream.
deja::Task<void> cancelled_read_keeps_a_reset() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  std::optional<TcpStream> client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  TcpStream& server = accepted.stream;
  co_await server.write_all(deja::net::as_bytes("never read by the client"));
  co_await deja::sleep(20ms);
  client.reset();                // unread bytes: the kernel sends an RST, not a FIN
  co_await deja::sleep(20ms);    // on loopback the RST has reached the server by now
  std::array<std::byte, 64> buf{};
  auto reader = deja::spawn(read_some(&server, buf));
  co_await deja::yield_now();    // the reader starts its read
  reader.abort();
  std::error_code first;
  try {
    (void)co_await reader;
  } catch (const deja::TaskCancelled&) {
  } catch (const std::system_error& e) {
    first = e.code();            // (the multi-thread runtime may finish the read before the abort)
  }
  const std::error_code next = co_await error_of(server.read(buf));
  INFO("first: " << first.message() << ", next: " << next.message());
  CHECK((first == std::errc::connection_reset || next == std::errc::connection_reset));
}

}  // namespace

TEST_CASE("review: a read cancelled on a reset stream does not turn the reset into end of stream", "[net][review]") {
  net_test::run(cancelled_read_keeps_a_reset());
}

// ---- probes: the same calls on real sockets and on the simulated network ----------------------
#include "deja/sim/simulator.hpp"
#include "deja/sim/network.hpp"

namespace {

std::string outcome_of_read(std::size_t n, const std::byte* buf) {
  return "read " + std::to_string(n) + " '" + std::string(reinterpret_cast<const char*>(buf), n) + "'";
}

deja::Task<std::string> try_read(TcpStream& s) {
  std::array<std::byte, 64> buf{};
  try {
    const std::size_t n = co_await s.read(buf);
    co_return outcome_of_read(n, buf.data());
  } catch (const std::system_error& e) {
    co_return "error " + e.code().message();
  }
}

deja::Task<void> probe_reset_semantics(std::string* log) {
  TcpListener listener = TcpListener::bind(deja::net::SocketAddr(deja::net::IpAddr::v4_loopback(), 0));
  std::optional<TcpStream> client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  TcpStream& server = accepted.stream;
  co_await server.write_all(deja::net::as_bytes("x"));
  co_await client->write_all(deja::net::as_bytes("hello"));
  co_await deja::sleep(50ms);
  client.reset();  // RST: "x" is unread
  co_await deja::sleep(50ms);
  *log += "1: " + co_await try_read(server) + "\n";
  *log += "2: " + co_await try_read(server) + "\n";
  *log += "3: " + co_await try_read(server) + "\n";
  try {
    const std::size_t w = co_await server.write(deja::net::as_bytes("w"));
    *log += "write: " + std::to_string(w) + "\n";
  } catch (const std::system_error& e) {
    *log += "write: error " + e.code().message() + "\n";
  }
}

deja::Task<void> probe_udp_recv_unconnected(std::string* log) {
  auto a = deja::net::UdpSocket::bind(deja::net::SocketAddr(deja::net::IpAddr::v4_loopback(), 0));
  auto b = deja::net::UdpSocket::bind(deja::net::SocketAddr(deja::net::IpAddr::v4_loopback(), 0));
  co_await b.send_to(deja::net::as_bytes("dgram"), a.local_addr());
  std::array<std::byte, 64> buf{};
  try {
    const std::size_t n = co_await deja::timeout(1s, a.recv(buf));
    *log += "udp recv: " + std::to_string(n) + "\n";
  } catch (const std::system_error& e) {
    *log += "udp recv: error " + e.code().message() + "\n";
  }
}

deja::Task<void> probe_empty_ops(std::string* log) {
  TcpListener listener = TcpListener::bind(deja::net::SocketAddr(deja::net::IpAddr::v4_loopback(), 0));
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  client.shutdown();
  try {
    const std::size_t w = co_await client.write(std::span<const std::byte>());
    *log += "empty write after shutdown: " + std::to_string(w) + "\n";
  } catch (const std::system_error& e) {
    *log += "empty write after shutdown: error " + e.code().message() + "\n";
  }
}

std::string on_real(deja::Task<void> (*probe)(std::string*), net_test::Runtime rt) {
  std::string log;
  net_test::run_on(rt, probe(&log));
  return log;
}

std::string on_sim(deja::Task<void> (*probe)(std::string*)) {
  auto log = std::make_shared<std::string>();
  deja::sim::Config config;
  config.seed = 1;
  const auto outcome = deja::sim::run(config, [log, probe]() -> deja::Task<void> { co_await probe(log.get()); });
  if (outcome.failed()) *log += "SIM FAILED: " + outcome.failure();
  return *log;
}

}  // namespace

TEST_CASE("review: after a peer reset, the simulated network reads and writes what real sockets do", "[net][sim][review]") {
  // Real sockets (Linux): the bytes that arrived before the RST are read, the reset is reported
  // once, then reads say end of stream and writes broken_pipe.
  const std::string real = on_real(&probe_reset_semantics, net_test::Runtime::kEpoll);
  REQUIRE(real == on_real(&probe_reset_semantics, net_test::Runtime::kUring));
  CHECK(on_sim(&probe_reset_semantics) == real);
}

TEST_CASE("review: UdpSocket::recv before connect behaves the same on the simulated network and on real sockets", "[net][sim][review]") {
  const std::string real = on_real(&probe_udp_recv_unconnected, net_test::Runtime::kEpoll);
  CHECK(on_sim(&probe_udp_recv_unconnected) == real);
}

TEST_CASE("review: an empty write after shutdown returns 0 on the simulated network as on real sockets", "[net][sim][review]") {
  const std::string real = on_real(&probe_empty_ops, net_test::Runtime::kEpoll);
  CHECK(on_sim(&probe_empty_ops) == real);
}
