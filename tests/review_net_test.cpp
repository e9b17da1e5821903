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
