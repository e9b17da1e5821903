// deja-echo: the echo example as a program.
//   deja-echo                    server and 8 clients on 127.0.0.1 in one process, checked
//   deja-echo serve ADDR [N]     serve N connections at ADDR (e.g. 127.0.0.1:7000), then exit
//   deja-echo client ADDR [R]    one client doing R round trips of 64 bytes
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "echo.hpp"

namespace {

deja::Task<void> serve_at(deja::net::SocketAddr at, std::size_t connections) {
  deja::net::TcpListener listener = deja::net::TcpListener::bind(at);
  std::printf("listening %s\n", listener.local_addr().to_string().c_str());
  std::fflush(stdout);
  const std::uint64_t bytes = co_await echo::serve(listener, connections);
  std::printf("echoed %llu bytes\n", static_cast<unsigned long long>(bytes));
}

int usage() {
  std::fprintf(stderr, "usage: deja-echo [serve ADDR [CONNECTIONS] | client ADDR [ROUNDS]]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode.empty()) {
      constexpr std::uint32_t kClients = 8, kRounds = 100;
      const std::uint64_t bytes = deja::block_on(echo::run_local(deja::net::SocketAddr::parse("127.0.0.1:0"), kClients, kRounds, 64));
      std::printf("echo: %u clients x %u round trips ok (%llu bytes)\n", kClients, kRounds, static_cast<unsigned long long>(bytes));
      return 0;
    }
    if (argc < 3) return usage();
    const deja::net::SocketAddr addr = deja::net::SocketAddr::parse(argv[2]);
    if (mode == "serve") {
      deja::block_on(serve_at(addr, argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 1));
    } else if (mode == "client") {
      const auto rounds = static_cast<std::uint32_t>(argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 100);
      const std::uint64_t bytes = deja::block_on(echo::run_client(addr, 0, rounds, 64));
      std::printf("echo: %llu bytes echoed\n", static_cast<unsigned long long>(bytes));
    } else {
      return usage();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deja-echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
