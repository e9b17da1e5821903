// Load: 10,000 concurrent loopback TCP connections on the production runtime, each echoing, then
// every file descriptor released and no memory kept. Bounded in count and time; it stops by itself.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
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
  explicit Load(std::size_t n) : connections(n), all_connected(n) {}
  std::size_t connections;
  deja::Barrier all_connected;        // every client holds its connection open until all are open
  deja::Semaphore connecting{256};    // handshakes in flight, well under the listen backlog
  std::size_t server_live = 0;
  std::size_t server_peak = 0;
  std::size_t server_closed = 0;
  std::size_t clients_ok = 0;
};

deja::Task<void> serve_one(TcpStream stream, std::shared_ptr<Load> load) {
  load->server_live++;
  load->server_peak = std::max(load->server_peak, load->server_live);
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
  REQUIRE(echoed == message);
  stream->shutdown();
  std::array<std::byte, 8> tail;
  const std::size_t n = co_await stream->read(tail);
  REQUIRE(n == 0);
  load->clients_ok++;
}

deja::Task<void> run_load(std::shared_ptr<Load> load) {
  TcpListener listener = TcpListener::bind(net_test::kLoopbackAnyPort, 4096);
  auto acceptor = deja::spawn(accept_all(&listener, load));
  deja::JoinSet<void> clients;
  for (std::size_t i = 0; i < load->connections; ++i) clients.spawn(client(listener.local_addr(), i, load));
  while (co_await clients.join_next()) {
  }
  co_await acceptor;
  // The server side closes once it has read each client's end of stream.
  for (int i = 0; i < 1000 && load->server_closed < load->connections; ++i) co_await deja::sleep(1ms);
}

}  // namespace

TEST_CASE("ten thousand concurrent loopback connections each echo and then release every file descriptor", "[net]") {
  std::size_t connections = 10000;
  // Each connection is two descriptors in this process (client and server end).
  const std::size_t fds_before = open_fd_count();
  const rlim_t needed = static_cast<rlim_t>(2 * connections + fds_before + 64);
  rlimit original{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &original) == 0);
  rlimit raised = original;
  if (raised.rlim_max < needed) {
    // Only a privileged process may raise the hard limit; try, and scale down if refused.
    rlimit wanted{needed, needed};
    if (::setrlimit(RLIMIT_NOFILE, &wanted) == 0) raised = wanted;
  }
  raised.rlim_cur = raised.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &raised) == 0);
  if (raised.rlim_cur < needed) {
    const std::size_t fit = (static_cast<std::size_t>(raised.rlim_cur) - fds_before - 64) / 2;
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
    auto load = std::make_shared<Load>(connections);
    net_test::run(run_load(load), 50s);
    CHECK(load->clients_ok == connections);
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
