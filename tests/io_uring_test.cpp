// The io_uring reactor: completions, cancellation that loses nothing, misuse from another runtime.
// The networking suite also runs every TCP test on it (net_test_support.hpp); these are the parts
// only io_uring has. Where the kernel refuses io_uring the runtime falls back to epoll and these
// cases say so (WARN) instead of checking what they cannot.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <memory>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "deja/deja.hpp"
#include "deja/net.hpp"
#include "net_test_support.hpp"

using namespace std::chrono_literals;

namespace {

deja::RuntimeOptions uring_options() {
  deja::RuntimeOptions options;
  options.io = deja::IoBackend::kUring;
  return options;
}

bool uring_refused(const deja::CurrentThreadRuntime& rt) {
  if (rt.io_backend() == deja::IoBackend::kUring) return false;
  WARN("io_uring is unavailable on this machine: the runtime fell back to epoll, and this case checks nothing of io_uring's");
  return true;
}

std::span<const std::byte> bytes_of(const std::string& text) { return {reinterpret_cast<const std::byte*>(text.data()), text.size()}; }

deja::Task<void> file_round_trip() {
  deja::IoUring* ring = deja::current_uring();
  REQUIRE(ring != nullptr);
  char path[] = "/tmp/deja-uring-test-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  const std::string text = "written and read back by the kernel's io_uring";
  const std::int32_t written = co_await ring->write(fd, bytes_of(text), 0);
  CHECK(written == static_cast<std::int32_t>(text.size()));
  std::string back(text.size(), '\0');
  const std::int32_t read = co_await ring->read(fd, net_test::writable_bytes(back), 0);
  CHECK(read == static_cast<std::int32_t>(text.size()));
  CHECK(back == text);
  // An error comes back as a negated errno, not an exception.
  const std::int32_t bad = co_await ring->read(-1, net_test::writable_bytes(back), 0);
  CHECK(bad == -EBADF);
  ::close(fd);
}

// The recv is queued (not yet handed to the kernel) when its task is aborted, and the bytes are
// already in the socket: the cancellation turns the queued recv into a no-op, so the bytes stay
// in the socket and the next read returns them: a cancelled read loses nothing. (A recv the kernel
// already has can win against its cancellation; "a stream read under repeated timeouts loses no
// byte" reaches that path, where the stream keeps what the recv took.)
// On the multi-thread runtime the reader may run on the other worker and finish before the abort
// (`must_cancel` false): then it has the bytes, and either way none is lost.
deja::Task<void> cancelled_read_keeps_its_bytes(bool must_cancel = true) {
  auto listener = deja::net::TcpListener::bind(net_test::kLoopbackAnyPort);
  auto client = co_await deja::net::TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  auto& server = accepted.stream;
  const std::string message = "kept across a cancelled read";
  co_await client.write_all(bytes_of(message));
  co_await deja::sleep(20ms);  // on loopback the bytes are in the server's socket by now
  std::array<std::byte, 64> first_buf{};
  auto reader = deja::spawn([](deja::net::TcpStream* stream, std::span<std::byte> buf) -> deja::Task<std::size_t> {
    co_return co_await stream->read(buf);
  }(&server, first_buf));
  co_await deja::yield_now();  // the reader runs up to its recv, queued for the next submission
  reader.abort();
  std::size_t first = 0;
  bool cancelled = false;
  try {
    first = co_await reader;
  } catch (const deja::TaskCancelled&) {
    cancelled = true;
  }
  if (must_cancel) CHECK(cancelled);
  std::string got = net_test::text_of(std::span<const std::byte>(first_buf).first(first));
  std::string rest(message.size() - got.size(), '\0');
  co_await server.read_exact(net_test::writable_bytes(rest));
  CHECK(got + rest == message);
}

// What a recv aborted after it completed, before its task resumed, hands back.
struct Kept {
  std::string bytes;
  static void keep(void* self, const std::byte* data, std::int32_t count) noexcept {
    if (count <= 0) return;  // an error the recv reported: not bytes
    static_cast<Kept*>(self)->bytes.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(count));
  }
};

// A recv completes (the kernel took the bytes from the socket: a peek finds none left) and wakes
// its task, which is aborted before it runs to take them. Its operation hands the bytes to
// on_abandoned_completion, so nothing is lost. Returns whether that window was hit (else the
// reader finished first, with the bytes).
deja::Task<bool> read_completed_then_aborted(int fd, int peer) {
  const std::string message = "taken by the kernel, kept by the operation";
  REQUIRE(::write(peer, message.data(), message.size()) == static_cast<ssize_t>(message.size()));
  Kept kept;
  std::array<std::byte, 64> buf{};
  auto reader = deja::spawn([](int socket, std::span<std::byte> into, Kept* keeper) -> deja::Task<std::int32_t> {
    deja::IoUring::Operation recv = deja::current_uring()->recv(socket, into, 0);
    recv.on_abandoned_completion(&Kept::keep, keeper);
    co_return co_await recv;
  }(fd, buf, &kept));
  char probe = 0;
  for (int i = 0; i < 100000 && !reader.is_finished(); ++i) {
    if (::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN) break;  // the recv has them
    co_await deja::yield_now();
  }
  reader.abort();
  std::string got;
  bool window = false;
  try {
    const std::int32_t n = co_await reader;
    REQUIRE(n > 0);
    got.assign(reinterpret_cast<const char*>(buf.data()), static_cast<std::size_t>(n));
  } catch (const deja::TaskCancelled&) {
    window = true;
    got = kept.bytes;
  }
  CHECK(got == message);
  co_return window;
}

deja::Task<void> from_another_runtime(deja::IoUring* foreign) {
  std::array<std::byte, 8> buf{};
  const std::int32_t result = co_await foreign->recv(0, buf, 0);
  CHECK(result == -EXDEV);
}

}  // namespace

TEST_CASE("io_uring reads and writes a file with completions and reports errors as negated errno", "[uring]") {
  deja::CurrentThreadRuntime rt(uring_options());
  if (uring_refused(rt)) return;
  CHECK(rt.context()->uring != nullptr);
  rt.block_on(deja::timeout(10s, file_round_trip()));
}

TEST_CASE("io_uring keeps the bytes a cancelled read took from the socket for the next read", "[uring]") {
  deja::CurrentThreadRuntime rt(uring_options());
  if (uring_refused(rt)) return;
  rt.block_on(deja::timeout(10s, cancelled_read_keeps_its_bytes()));
}

TEST_CASE("io_uring hands back the bytes of a recv whose task was aborted after it completed", "[uring]") {
  deja::CurrentThreadRuntime rt(uring_options());
  if (uring_refused(rt)) return;
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  int windows = 0;
  for (int round = 0; round < 20; ++round) windows += rt.block_on(deja::timeout(10s, read_completed_then_aborted(fds[0], fds[1]))) ? 1 : 0;
  ::close(fds[0]);
  ::close(fds[1]);
  // On one thread the completion is reaped between two runs of the aborting task: every round
  // hits the window, so the test fails if those bytes are dropped.
  CHECK(windows == 20);
}

TEST_CASE("an io_uring operation awaited from another runtime completes at once with EXDEV", "[uring]") {
  deja::CurrentThreadRuntime owner(uring_options());
  if (uring_refused(owner)) return;
  deja::CurrentThreadRuntime other;
  other.block_on(deja::timeout(10s, from_another_runtime(owner.context()->uring)));
}

TEST_CASE("a runtime on io_uring run from a second thread is a usage error, not a hang", "[uring]") {
  deja::CurrentThreadRuntime rt(uring_options());
  if (uring_refused(rt)) return;
  auto nap = []() -> deja::Task<void> { co_await deja::sleep(1ms); };
  rt.block_on(nap());  // this thread is the ring's from now on
  bool usage_error = false;
  std::thread other([&] {
    try {
      rt.block_on(nap());
    } catch (const deja::UsageError&) {
      usage_error = true;
    }
  });
  other.join();
  CHECK(usage_error);
  rt.block_on(nap());  // still fine on its own thread
}

TEST_CASE("a runtime on epoll offers no IoUring", "[uring]") {
  deja::CurrentThreadRuntime rt;
  CHECK(rt.io_backend() == deja::IoBackend::kEpoll);
  CHECK(rt.context()->uring == nullptr);
  rt.block_on([]() -> deja::Task<void> {
    CHECK(deja::current_uring() == nullptr);
    co_return;
  }());
}

// --- the multi-thread runtime: a ring per worker ---------------------------------------------

namespace {

deja::MultiThreadOptions mt_uring_options() {
  deja::MultiThreadOptions options;
  options.workers = 2;
  options.io = deja::IoBackend::kUring;
  return options;
}

bool uring_refused(const deja::MultiThreadRuntime& rt) {
  if (rt.io_backend() == deja::IoBackend::kUring) return false;
  WARN("io_uring is unavailable on this machine: the runtime fell back to epoll, and this case checks nothing of io_uring's");
  return true;
}

// Readers on idle connections, each cut short by a timeout: their recvs are cancelled by
// whichever worker runs the timeout, often not the one whose ring holds the recv. Then every
// connection still carries its bytes, in order, to a fresh reader.
deja::Task<void> timed_out_reads_across_workers(int connections) {
  auto listener = deja::net::TcpListener::bind(net_test::kLoopbackAnyPort);
  std::vector<deja::net::TcpStream> clients;
  std::vector<deja::net::TcpStream> servers;
  for (int i = 0; i < connections; ++i) {
    clients.push_back(co_await deja::net::TcpStream::connect(listener.local_addr()));
    servers.push_back((co_await listener.accept()).stream);
  }
  deja::JoinSet<int> timed_out;
  for (auto& server : servers) {
    timed_out.spawn([](deja::net::TcpStream* stream) -> deja::Task<int> {
      std::array<std::byte, 16> buf{};
      int cancelled = 0;
      for (int round = 0; round < 5; ++round) {
        try {
          (void)co_await deja::timeout(1ms, stream->read(buf));
        } catch (const deja::TimedOut&) {
          ++cancelled;
        }
      }
      co_return cancelled;
    }(&server));
  }
  int cancelled = 0;
  while (auto n = co_await timed_out.join_next()) cancelled += *n;
  CHECK(cancelled == 5 * connections);  // nobody wrote: every read timed out
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::string message = "connection " + std::to_string(i);
    co_await clients[i].write_all(bytes_of(message));
    std::string got(message.size(), '\0');
    co_await servers[i].read_exact(net_test::writable_bytes(got));
    CHECK(got == message);
  }
}

// Reads cut short by timeouts again and again while the peer writes in bursts: on io_uring each
// timeout cancels a recv that may be completing at that moment, on any worker. Every byte still
// arrives, once and in order.
deja::Task<void> reads_under_timeouts_lose_nothing() {
  auto listener = deja::net::TcpListener::bind(net_test::kLoopbackAnyPort);
  auto client = co_await deja::net::TcpStream::connect(listener.local_addr());
  auto server = (co_await listener.accept()).stream;
  std::string expected;
  for (int i = 0; i < 6000; ++i) expected.push_back(static_cast<char>('a' + (i * 7) % 26));
  auto writer = deja::spawn([](deja::net::TcpStream* stream, const std::string* text) -> deja::Task<void> {
    std::uint32_t state = 12345;
    for (std::size_t at = 0; at < text->size();) {
      state = state * 1103515245u + 12345u;
      const std::size_t n = std::min<std::size_t>(1 + (state >> 16) % 48, text->size() - at);
      co_await stream->write_all(bytes_of(text->substr(at, n)));
      at += n;
      if ((state >> 8) % 4 == 0) co_await deja::sleep(1ms);
    }
  }(&client, &expected));
  std::string got;
  std::array<std::byte, 32> buf{};
  int timeouts = 0;
  while (got.size() < expected.size()) {
    try {
      const std::size_t n = co_await deja::timeout(1ms, server.read(buf));
      REQUIRE(n > 0);
      got.append(reinterpret_cast<const char*>(buf.data()), n);
    } catch (const deja::TimedOut&) {
      ++timeouts;
    }
  }
  co_await writer;
  CHECK(got == expected);
  CHECK(timeouts > 0);  // the race was there to lose
}

}  // namespace

TEST_CASE("the multi-thread runtime on io_uring does file I/O as completions on its workers' rings", "[uring][mt]") {
  deja::MultiThreadRuntime rt(mt_uring_options());
  if (uring_refused(rt)) return;
  CHECK(rt.context()->uring != nullptr);
  rt.block_on(deja::timeout(10s, file_round_trip()));
}

TEST_CASE("the multi-thread runtime on io_uring keeps the bytes of a read cancelled on any worker", "[uring][mt]") {
  deja::MultiThreadRuntime rt(mt_uring_options());
  if (uring_refused(rt)) return;
  for (int round = 0; round < 20; ++round) rt.block_on(deja::timeout(10s, cancelled_read_keeps_its_bytes(false)));
  rt.block_on(deja::timeout(20s, timed_out_reads_across_workers(64)));
}

TEST_CASE("an operation awaited off the multi-thread runtime's workers completes at once with EXDEV", "[uring][mt]") {
  deja::MultiThreadRuntime owner(mt_uring_options());
  if (uring_refused(owner)) return;
  deja::CurrentThreadRuntime other;
  other.block_on(deja::timeout(10s, from_another_runtime(owner.context()->uring)));
}

TEST_CASE("a stream read under repeated timeouts loses no byte, on every production runtime", "[net][uring]") {
  net_test::run(reads_under_timeouts_lose_nothing());
}

TEST_CASE("destroying a multi-thread runtime on io_uring cancels reads in flight from the destroying thread", "[uring][mt]") {
  // The readers' recvs are in the workers' rings, never completed; the destructor runs on this
  // thread once the workers are gone, and must cancel and wait for each before freeing its buffer
  // (ASan would see a late write; a lost cancellation would abort after its bound).
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  std::atomic<int> started{0};
  {
    deja::MultiThreadRuntime rt(mt_uring_options());
    if (uring_refused(rt)) {
      ::close(fds[0]);
      ::close(fds[1]);
      return;
    }
    for (int i = 0; i < 8; ++i) {
      (void)rt.spawn([](int fd, std::atomic<int>* count) -> deja::Task<void> {
        auto buf = std::make_unique<std::array<std::byte, 64>>();
        count->fetch_add(1);
        const std::int32_t n = co_await deja::current_uring()->recv(fd, *buf, 0);
        FAIL("a recv on a silent socket completed with " << n);
      }(fds[0], &started));
    }
    while (started.load() < 8) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(20ms);  // the workers ran dry and handed the recvs to the kernel
  }
  CHECK(started.load() == 8);
  // The socket still works and nothing read from it: the cancelled recvs took no bytes.
  const char byte = 'x';
  CHECK(::write(fds[1], &byte, 1) == 1);
  char back = 0;
  CHECK(::recv(fds[0], &back, 1, MSG_DONTWAIT) == 1);
  CHECK(back == 'x');
  ::close(fds[0]);
  ::close(fds[1]);
}
