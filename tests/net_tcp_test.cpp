// deja::net TCP on the production runtime over 127.0.0.1: echo, halves, shutdown, the POSIX
// errors users expect, and cancellation of blocked reads and accepts.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

#include "net_test_support.hpp"

using namespace std::chrono_literals;
using deja::net::SocketAddr;
using deja::net::TcpListener;
using deja::net::TcpStream;
using net_test::error_of;
using net_test::kLoopbackAnyPort;

namespace {

// Echoes one connection until its peer shuts down, then closes it.
deja::Task<void> echo_connection(TcpStream stream) {
  std::array<std::byte, 4096> buf;
  for (;;) {
    const std::size_t n = co_await stream.read(buf);
    if (n == 0) co_return;
    co_await stream.write_all(std::span<const std::byte>(buf.data(), n));
  }
}

deja::Task<void> echo_server(TcpListener* listener, int connections) {
  for (int i = 0; i < connections; ++i) {
    auto accepted = co_await listener->accept();
    deja::spawn(echo_connection(std::move(accepted.stream))).detach();
  }
}

deja::Task<void> echo_round_trips() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  REQUIRE(listener.local_addr().port() != 0);
  auto server = deja::spawn(echo_server(&listener, 1));
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  REQUIRE(client.peer_addr() == listener.local_addr());
  REQUIRE(client.local_addr().ip() == deja::net::IpAddr::v4_loopback());
  // Sizes around the buffer size, and one far larger than the socket buffers (partial writes).
  for (std::size_t size : {std::size_t{1}, std::size_t{64}, std::size_t{4096}, std::size_t{4097}, std::size_t{3} << 20}) {
    std::vector<std::byte> sent(size);
    for (std::size_t i = 0; i < size; ++i) sent[i] = static_cast<std::byte>((i * 131 + size) & 0xff);
    auto writer = deja::spawn(client.write_all(sent));
    std::vector<std::byte> received(size);
    co_await client.read_exact(received);
    co_await writer;
    REQUIRE(received == sent);
  }
  co_await server;
}

}  // namespace

TEST_CASE("tcp echo round trips bytes of every size on 127.0.0.1", "[net]") { net_test::run(echo_round_trips()); }

namespace {

deja::Task<void> write_numbers(deja::net::OwnedWriteHalf* writer, int count) {
  for (int i = 0; i < count; ++i) {
    const std::string line = std::to_string(i) + "\n";
    co_await writer->write_all(deja::net::as_bytes(line));
  }
  writer->shutdown();
}

deja::Task<std::string> read_all(deja::net::OwnedReadHalf* reader) {
  std::string all;
  std::array<std::byte, 1000> buf;
  for (;;) {
    const std::size_t n = co_await reader->read(buf);
    if (n == 0) co_return all;
    all += net_test::text_of(std::span<const std::byte>(buf.data(), n));
  }
}

deja::Task<void> halves_from_two_tasks() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  auto server = deja::spawn(echo_server(&listener, 1));
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  auto [reader, writer] = std::move(client).into_split();
  REQUIRE(reader.peer_addr() == listener.local_addr());
  constexpr int kLines = 20000;  // ~110 KB, more than one socket buffer, so both tasks wait on each other
  auto read_task = deja::spawn(read_all(&reader));
  auto write_task = deja::spawn(write_numbers(&writer, kLines));
  const std::string echoed = co_await read_task;
  co_await write_task;
  std::string expected;
  for (int i = 0; i < kLines; ++i) expected += std::to_string(i) + "\n";
  REQUIRE(echoed == expected);
  co_await server;
}

}  // namespace

TEST_CASE("tcp stream halves read and write from two tasks at once", "[net]") { net_test::run(halves_from_two_tasks()); }

namespace {

deja::Task<void> shutdown_gives_end_of_stream() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  REQUIRE(accepted.peer == client.local_addr());
  co_await client.write_all(deja::net::as_bytes("last words"));
  client.shutdown();
  std::string got(10, '\0');
  co_await accepted.stream.read_exact(net_test::writable_bytes(got));
  REQUIRE(got == "last words");
  std::array<std::byte, 16> buf;
  // End of stream, and it stays so on every later read.
  for (int i = 0; i < 3; ++i) {
    const std::size_t n = co_await accepted.stream.read(buf);
    REQUIRE(n == 0);
  }
  // The shut-down side can still read what its peer writes.
  co_await accepted.stream.write_all(deja::net::as_bytes("reply"));
  std::string reply(5, '\0');
  co_await client.read_exact(net_test::writable_bytes(reply));
  REQUIRE(reply == "reply");
  // But it can no longer write.
  const std::error_code ec = co_await error_of(client.write(deja::net::as_bytes("more")));
  REQUIRE(ec == std::errc::broken_pipe);
}

}  // namespace

TEST_CASE("tcp shutdown makes the peer read end of stream and later writes fail with broken_pipe", "[net]") {
  net_test::run(shutdown_gives_end_of_stream());
}

namespace {

deja::Task<void> read_exact_at_end() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  co_await client.write_all(deja::net::as_bytes("abc"));
  client.shutdown();
  std::array<std::byte, 8> buf;
  bool thrown = false;
  try {
    co_await accepted.stream.read_exact(buf);
  } catch (const deja::net::UnexpectedEof& e) {
    thrown = true;
    REQUIRE(e.code() == std::errc::no_message_available);
    REQUIRE(e.bytes_read() == 3);
    REQUIRE(e.bytes_wanted() == 8);
  }
  REQUIRE(thrown);
  REQUIRE(net_test::text_of(std::span<const std::byte>(buf.data(), 3)) == "abc");
}

}  // namespace

TEST_CASE("tcp read_exact at end of stream throws UnexpectedEof with the bytes it got", "[net]") {
  net_test::run(read_exact_at_end());
}

namespace {

deja::Task<void> connect_refused() {
  // Bind a port then close it, so nothing listens there.
  SocketAddr closed;
  {
    TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
    closed = listener.local_addr();
  }
  const std::error_code ec = co_await error_of(TcpStream::connect(closed));
  REQUIRE(ec == std::errc::connection_refused);
}

}  // namespace

TEST_CASE("tcp connect to a closed port fails with connection_refused", "[net]") { net_test::run(connect_refused()); }

namespace {

deja::Task<void> bind_errors() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  std::error_code in_use;
  try {
    TcpListener second = TcpListener::bind(listener.local_addr());
  } catch (const std::system_error& e) {
    in_use = e.code();
  }
  REQUIRE(in_use == std::errc::address_in_use);
  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this host.
  std::error_code not_here;
  try {
    TcpListener foreign = TcpListener::bind(SocketAddr::parse("192.0.2.1:0"));
  } catch (const std::system_error& e) {
    not_here = e.code();
  }
  REQUIRE(not_here == std::errc::address_not_available);
  co_return;
}

}  // namespace

TEST_CASE("tcp bind to a used port fails with address_in_use and to a foreign address with address_not_available", "[net]") {
  net_test::run(bind_errors());
}

namespace {

deja::Task<void> reset_mid_write() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  {
    auto accepted = co_await listener.accept();
    co_await client.write_all(deja::net::as_bytes("unread"));
    co_await deja::sleep(10ms);
    // Closing with unread data in the receive buffer makes the kernel send a reset.
  }
  std::vector<std::byte> chunk(64 * 1024, std::byte{7});
  std::error_code ec;
  for (int i = 0; i < 1000 && !ec; ++i) ec = co_await error_of(client.write_all(chunk));
  // The process is still alive: MSG_NOSIGNAL kept SIGPIPE away.
  REQUIRE((ec == std::errc::connection_reset || ec == std::errc::broken_pipe));
}

}  // namespace

TEST_CASE("tcp peer reset mid write fails with connection_reset or broken_pipe and no SIGPIPE", "[net]") {
  net_test::run(reset_mid_write());
}

namespace {

deja::Task<void> read_into(TcpStream* stream, std::string* out) {
  std::array<std::byte, 64> buf;
  const std::size_t n = co_await stream->read(buf);
  *out = net_test::text_of(std::span<const std::byte>(buf.data(), n));
}

deja::Task<void> abort_blocked_read() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  std::string first = "untouched";
  auto blocked = deja::spawn(read_into(&accepted.stream, &first));
  co_await deja::sleep(5ms);
  REQUIRE_FALSE(blocked.is_finished());
  blocked.abort();
  bool cancelled = false;
  try {
    co_await blocked;
  } catch (const deja::TaskCancelled&) {
    cancelled = true;
  }
  REQUIRE(cancelled);
  REQUIRE(first == "untouched");
  // Nothing was lost: the next read gets the bytes written after the abort.
  co_await client.write_all(deja::net::as_bytes("after"));
  std::string second;
  co_await read_into(&accepted.stream, &second);
  REQUIRE(second == "after");
}

}  // namespace

TEST_CASE("aborting a task blocked in read leaves the stream usable", "[net]") { net_test::run(abort_blocked_read()); }

namespace {

deja::Task<void> accept_one(TcpListener* listener, SocketAddr* peer) {
  auto accepted = co_await listener->accept();
  *peer = accepted.peer;
}

deja::Task<void> abort_blocked_accept() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  SocketAddr peer;
  auto blocked = deja::spawn(accept_one(&listener, &peer));
  co_await deja::sleep(5ms);
  REQUIRE_FALSE(blocked.is_finished());
  blocked.abort();
  co_await deja::yield_now();
  REQUIRE(blocked.is_finished());
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  co_await accept_one(&listener, &peer);
  REQUIRE(peer == client.local_addr());
}

}  // namespace

TEST_CASE("aborting a task blocked in accept leaves the listener usable", "[net]") { net_test::run(abort_blocked_accept()); }

namespace {

deja::Task<void> stream_options() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  client.set_nodelay(true);
  REQUIRE(client.nodelay());
  client.set_nodelay(false);
  REQUIRE_FALSE(client.nodelay());
  auto accepted = co_await listener.accept();
  REQUIRE(accepted.stream.peer_addr() == client.local_addr());
  REQUIRE(accepted.stream.local_addr() == listener.local_addr());
}

}  // namespace

TEST_CASE("tcp set_nodelay is what nodelay reports and both ends agree on their addresses", "[net]") {
  net_test::run(stream_options());
}

namespace {

deja::Task<void> connect_by_name() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect("localhost:" + std::to_string(listener.local_addr().port()));
  auto accepted = co_await listener.accept();
  REQUIRE(accepted.peer == client.local_addr());
}

}  // namespace

TEST_CASE("tcp connect by host and port text reaches a listener on localhost", "[net]") { net_test::run(connect_by_name()); }

namespace {

deja::Task<void> concurrent_reads() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  std::string ignored;
  auto first = deja::spawn(read_into(&client, &ignored));
  co_await deja::sleep(2ms);
  bool usage_error = false;
  try {
    co_await read_into(&client, &ignored);
  } catch (const deja::UsageError&) {
    usage_error = true;
  }
  REQUIRE(usage_error);
  first.abort();
  // A moved-from stream is a usage error too, not a crash.
  TcpStream moved = std::move(client);
  bool moved_error = false;
  try {
    client.set_nodelay(true);
  } catch (const deja::UsageError&) {
    moved_error = true;
  }
  REQUIRE(moved_error);
}

}  // namespace

TEST_CASE("two concurrent reads on one stream and use of a moved from stream are usage errors", "[net]") {
  net_test::run(concurrent_reads());
}

namespace {

// write_all is one operation however many sends it takes: a write while it waits for send-buffer
// space is a second concurrent write, and the first still delivers every byte, in order.
deja::Task<void> write_during_write_all() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  constexpr std::size_t kSize = std::size_t{8} << 20;  // far more than both socket buffers hold
  std::vector<std::byte> sent(kSize);
  for (std::size_t i = 0; i < kSize; ++i) sent[i] = static_cast<std::byte>((i * 7 + i / 4096) & 0xff);
  auto writer = deja::spawn(client.write_all(sent));
  co_await deja::sleep(5ms);
  REQUIRE_FALSE(writer.is_finished());  // nobody reads yet: it waits for space
  bool usage_error = false;
  try {
    const std::array<std::byte, 1> one{std::byte{1}};
    co_await client.write(one);
  } catch (const deja::UsageError&) {
    usage_error = true;
  }
  REQUIRE(usage_error);
  std::vector<std::byte> received(kSize);
  co_await accepted.stream.read_exact(received);
  co_await writer;
  REQUIRE(received == sent);
}

}  // namespace

TEST_CASE("a write while write_all waits for send-buffer space is a usage error and write_all still delivers every byte", "[net]") {
  net_test::run(write_during_write_all());
}

namespace {

double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

deja::Task<void> accept_out_of_descriptors() {
  TcpListener listener = TcpListener::bind(kLoopbackAnyPort);
  // The handshake completes in the kernel: the connection waits in the backlog.
  TcpStream client = co_await TcpStream::connect(listener.local_addr());
  rlimit original{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &original) == 0);
  // Use up every descriptor the process may have.
  std::vector<int> hogs;
  rlimit tight = original;
  tight.rlim_cur = 64;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
  for (;;) {
    const int fd = ::dup(0);
    if (fd < 0) break;
    hogs.push_back(fd);
  }
  SocketAddr peer;
  auto accepting = deja::spawn(accept_one(&listener, &peer));
  const double cpu_before = process_cpu_seconds();
  co_await deja::sleep(300ms);
  const double cpu_used = process_cpu_seconds() - cpu_before;
  const bool finished_early = accepting.is_finished();
  for (int fd : hogs) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &original);
  REQUIRE_FALSE(finished_early);
  // Backing off, not spinning: well under the 0.3 s a busy loop would burn.
  CHECK(cpu_used < 0.1);
  // Once descriptors are free again the connection is accepted, within the backoff cap.
  co_await deja::timeout(2s, std::move(accepting));
  REQUIRE(peer == client.local_addr());
}

}  // namespace

TEST_CASE("accept waits with a backoff instead of spinning when the process is out of file descriptors", "[net]") {
  net_test::run(accept_out_of_descriptors());
}
