// Load: 10,000 concurrent loopback TCP connections on the production runtime, each echoing, then
// every file descriptor released and no memory kept. Bounded in count and time; it stops by itself.
// The clients run in a child process, so each process holds 10,000 descriptors (machines whose
// hard RLIMIT_NOFILE is 20,000 could not hold both ends in one).
#include <catch2/catch.hpp>

#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "deja/sync/barrier.hpp"
#include "deja/sync/semaphore.hpp"
#include "net_test_support.hpp"

using namespace std::chrono_literals;
using deja::net::TcpListener;
using deja::net::TcpStream;

namespace {

std::size_t open_fd_count() {
  std::size_t count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;  // includes the descriptor of `dir` itself, the same every time
}

struct Load {
  explicit Load(std::size_t n) : connections(n), all_connected(n), all_accepted(n) {}
  std::size_t connections;
  deja::Barrier all_connected;        // every client holds its connection open until all are open
  // And the server echoes on none until it has accepted all: otherwise the first echoed clients
  // may close before the last connections leave the listen backlog, and the server never holds
  // all of them at once.
  deja::Barrier all_accepted;
  deja::Semaphore connecting{256};    // handshakes in flight, well under the listen backlog
  // Atomic: the server also runs on the multi-thread runtime.
  std::atomic<std::size_t> server_live{0};
  std::atomic<std::size_t> server_peak{0};
  std::atomic<std::size_t> server_closed{0};
  std::size_t clients_ok = 0;
};

deja::Task<void> serve_one(TcpStream stream, std::shared_ptr<Load> load) {
  const std::size_t live = ++load->server_live;
  std::size_t peak = load->server_peak.load();
  while (peak < live && !load->server_peak.compare_exchange_weak(peak, live)) {
  }
  (void)co_await load->all_accepted.wait();
  std::array<std::byte, 256> buf;
  try {
    for (;;) {
      const std::size_t n = co_await stream.read(buf);
      if (n == 0) break;
      co_await stream.write_all(std::span<const std::byte>(buf.data(), n));
    }
  } catch (...) {
    load->server_live--;
    throw;
  }
  load->server_live--;
  load->server_closed++;
}

deja::Task<void> accept_all(TcpListener* listener, std::shared_ptr<Load> load) {
  for (std::size_t i = 0; i < load->connections; ++i) {
    auto accepted = co_await listener->accept();
    deja::spawn(serve_one(std::move(accepted.stream), load)).detach();
  }
}

deja::Task<void> client(deja::net::SocketAddr server, std::size_t id, std::shared_ptr<Load> load) {
  std::optional<TcpStream> stream;
  {
    deja::SemaphorePermit permit = co_await load->connecting.acquire();
    stream.emplace(co_await TcpStream::connect(server));
  }
  co_await load->all_connected.wait();
  const std::string message = fmt::format("{:064}", id);
  co_await stream->write_all(deja::net::as_bytes(message));
  std::string echoed(message.size(), '\0');
  co_await stream->read_exact(net_test::writable_bytes(echoed));
  stream->shutdown();
  std::array<std::byte, 8> tail;
  const std::size_t n = co_await stream->read(tail);
  // Counted, not asserted: this may run in the child process, which reports by exit status.
  if (echoed == message && n == 0) load->clients_ok++;
}

// The server side, in the test's process: accepts every connection and echoes on each.
deja::Task<void> run_server(std::shared_ptr<Load> load, int port_pipe) {
  TcpListener listener = TcpListener::bind(net_test::kLoopbackAnyPort, 4096);
  const std::uint16_t port = listener.local_addr().port();
  REQUIRE(::write(port_pipe, &port, sizeof port) == static_cast<ssize_t>(sizeof port));
  co_await accept_all(&listener, load);
  // The server side closes once it has read each client's end of stream.
  for (int i = 0; i < 30000 && load->server_closed < load->connections; ++i) co_await deja::sleep(1ms);
}

deja::Task<void> run_clients(std::shared_ptr<Load> load, std::uint16_t port) {
  deja::JoinSet<void> clients;
  const deja::net::SocketAddr server(deja::net::IpAddr::v4_loopback(), port);
  for (std::size_t i = 0; i < load->connections; ++i) clients.spawn(client(server, i, load));
  while (co_await clients.join_next()) {
  }
}

// The child: reads the port, runs every client, and exits 0 only if each echo matched and its
// descriptors are back where they started. Never returns (no Catch teardown in the child).
[[noreturn]] void client_process(std::size_t connections, int port_pipe) {
  int status = 3;
  try {
    std::uint16_t port = 0;
    if (::read(port_pipe, &port, sizeof port) == static_cast<ssize_t>(sizeof port)) {
      const std::size_t fds_before = open_fd_count();
      auto load = std::make_shared<Load>(connections);
      deja::block_on(deja::timeout(50s, run_clients(load, port)));
      status = load->clients_ok != connections ? 1 : open_fd_count() != fds_before ? 2 : 0;
    }
  } catch (...) {
    status = 4;
  }
  ::_exit(status);
}

}  // namespace

TEST_CASE("ten thousand concurrent loopback connections each echo and then release every file descriptor", "[net]") {
  std::size_t connections = 10000;
  // Each process holds one end of every connection.
  const std::size_t fds_before = open_fd_count();
  const rlim_t needed = static_cast<rlim_t>(connections + fds_before + 64);
  rlimit original{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &original) == 0);
  rlimit raised = original;
  raised.rlim_cur = raised.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &raised) == 0);
  if (raised.rlim_cur < needed) {
    const std::size_t fit = static_cast<std::size_t>(raised.rlim_cur) - fds_before - 64;
    WARN(fmt::format("RLIMIT_NOFILE hard limit {} is below the {} descriptors 10,000 connections need: running {} connections instead",
                     raised.rlim_max, needed, fit));
    connections = fit;
  }
  // Twice: the first run may grow pools to their high-water mark (task frames are pooled and
  // reused, never handed back to malloc), so memory "returning to where it started" means the
  // second run ends with no more heap in use than the first. (Under ASan, mallinfo2 reports
  // nothing and LeakSanitizer checks instead.)
  std::size_t heap_after_first = 0;
  for (int run = 0; run < 2; ++run) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(pipe_fds[1]);
      client_process(connections, pipe_fds[0]);
    }
    ::close(pipe_fds[0]);
    auto load = std::make_shared<Load>(connections);
    net_test::run(run_server(load, pipe_fds[1]), 60s);
    ::close(pipe_fds[1]);
    int status = -1;
    REQUIRE(::waitpid(child, &status, 0) == child);
    INFO("client process status " << status << " (1: an echo differed, 2: descriptors leaked, 3: no port, 4: threw)");
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(load->server_peak == connections);  // all were open at once
    CHECK(load->server_closed == connections);
    const std::size_t fds_after = open_fd_count();
    CHECK(fds_after == fds_before);
    const std::size_t heap = ::mallinfo2().uordblks;
    if (run == 0) {
      heap_after_first = heap;
    } else {
      INFO("heap in use after the first run " << heap_after_first << " bytes, after the second " << heap);
      CHECK(heap <= heap_after_first + (std::size_t{1} << 20));
    }
  }
  ::setrlimit(RLIMIT_NOFILE, &original);
}
