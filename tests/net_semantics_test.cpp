// deja::net semantics that must hold on every backend: what cancellation keeps, what a reset
// reports, and the same calls giving the same results on real sockets and the simulated network.
#include <catch2/catch.hpp>

#include <array>
#include <string>

#include "net_test_support.hpp"

#include <poll.h>
#include <sys/socket.h>

using namespace std::chrono_literals;
using deja::net::TcpListener;
using deja::net::TcpStream;
using net_test::error_of;
using net_test::kLoopbackAnyPort;

namespace {

// The descriptor of a connected stream, found by its two addresses (the API hides it).
int fd_of(const TcpStream& stream) {
  for (int fd = 0; fd < 4096; ++fd) {
    sockaddr_storage local{}, peer{};
    socklen_t local_length = sizeof local, peer_length = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0) continue;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0) continue;
    if (deja::net::SocketAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&local), local_length) == stream.local_addr() &&
        deja::net::SocketAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), peer_length) == stream.peer_addr()) {
      return fd;
    }
  }
  return -1;
}

// Whether the socket still holds an error nobody has taken (poll reports it without taking it).
bool error_pending(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

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
  const int fd = fd_of(server);
  REQUIRE(fd >= 0);
  co_await server.write_all(deja::net::as_bytes("never read by the client"));
  co_await deja::sleep(20ms);
  client.reset();                // unread bytes: the kernel sends an RST, not a FIN
  co_await deja::sleep(20ms);    // on loopback the RST has reached the server by now
  std::array<std::byte, 64> buf{};
  REQUIRE(error_pending(fd));
  auto reader = deja::spawn(read_some(&server, buf));
  // The reader starts its read. Abort it once its read has taken the error from the socket (its
  // recv completed and woke it), before it runs again to see it; else at once.
  for (int i = 0; i < 100000 && !reader.is_finished() && error_pending(fd); ++i) co_await deja::yield_now();
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

TEST_CASE("a read cancelled on a reset stream does not turn the reset into end of stream", "[net]") {
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

TEST_CASE("after a peer reset, the simulated network reads and writes what real sockets do", "[net][sim]") {
  // Real sockets (Linux): the bytes that arrived before the RST are read, the reset is reported
  // once, then reads say end of stream and writes broken_pipe.
  const std::string real = on_real(&probe_reset_semantics, net_test::Runtime::kEpoll);
  REQUIRE(real == on_real(&probe_reset_semantics, net_test::Runtime::kUring));
  CHECK(on_sim(&probe_reset_semantics) == real);
}

TEST_CASE("UdpSocket::recv before connect behaves the same on the simulated network and on real sockets", "[net][sim]") {
  const std::string real = on_real(&probe_udp_recv_unconnected, net_test::Runtime::kEpoll);
  CHECK(on_sim(&probe_udp_recv_unconnected) == real);
}

TEST_CASE("an empty write after shutdown returns 0 on the simulated network as on real sockets", "[net][sim]") {
  const std::string real = on_real(&probe_empty_ops, net_test::Runtime::kEpoll);
  CHECK(on_sim(&probe_empty_ops) == real);
}

namespace {

deja::Task<void> flush_of(deja::net::BufWriter<deja::net::OwnedWriteHalf>* writer) { co_await writer->flush(); }

// A flush is cancelled right after it started, and retried. BufWriter keeps what it has not
// written "so a retry may still send them"; every byte must reach the peer once: on epoll and on
// the simulated network a cancelled write wrote nothing, and it must not be different on io_uring.
deja::Task<void> cancelled_flush_then_retry() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  auto halves = std::move(client).into_split();
  deja::net::BufWriter<deja::net::OwnedWriteHalf> writer(std::move(halves.second));
  co_await writer.write(deja::net::as_bytes("once"));
  auto flushing = deja::spawn(flush_of(&writer));
  co_await deja::yield_now();  // the flush starts its write
  flushing.abort();
  try {
    co_await flushing;
  } catch (const deja::TaskCancelled&) {
  }
  co_await writer.flush();  // the retry sends whatever the cancelled flush did not
  writer.get_ref().shutdown();
  std::string got;
  std::array<std::byte, 64> buf{};
  for (;;) {
    const std::size_t n = co_await accepted.stream.read(buf);
    if (n == 0) break;
    got += net_test::text_of(std::span<const std::byte>(buf.data(), n));
  }
  CHECK(got == "once");
}

}  // namespace

TEST_CASE("a cancelled then retried BufWriter flush delivers each byte once", "[net]") {
  net_test::run(cancelled_flush_then_retry());
}
