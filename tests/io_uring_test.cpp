// The io_uring reactor: completions, cancellation that loses nothing, misuse from another runtime.
// The networking suite also runs every TCP test on it (net_test_support.hpp); these are the parts
// only io_uring has. Where the kernel refuses io_uring the runtime falls back to epoll and these
// cases say so (WARN) instead of checking what they cannot.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

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
// already in the socket: the kernel completes the recv before the cancellation reaches it. The
// stream keeps those bytes, so the next read returns them: a cancelled read loses nothing.
deja::Task<void> cancelled_read_keeps_its_bytes() {
  auto listener = deja::net::TcpListener::bind(net_test::kLoopbackAnyPort);
  auto client = co_await deja::net::TcpStream::connect(listener.local_addr());
  auto accepted = co_await listener.accept();
  auto& server = accepted.stream;
  const std::string message = "kept across a cancelled read";
  co_await client.write_all(bytes_of(message));
  co_await deja::sleep(20ms);  // on loopback the bytes are in the server's socket by now
  std::array<std::byte, 64> lost_buf{};
  auto reader = deja::spawn([](deja::net::TcpStream* stream, std::span<std::byte> buf) -> deja::Task<std::size_t> {
    co_return co_await stream->read(buf);
  }(&server, lost_buf));
  co_await deja::yield_now();  // the reader runs up to its recv, queued for the next submission
  reader.abort();
  bool cancelled = false;
  try {
    (void)co_await reader;
  } catch (const deja::TaskCancelled&) {
    cancelled = true;
  }
  CHECK(cancelled);
  std::string got(message.size(), '\0');
  co_await server.read_exact(net_test::writable_bytes(got));
  CHECK(got == message);
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
