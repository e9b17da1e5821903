// deja-kv: the kv example as a Redis-compatible server (PING, GET, SET, DEL, pipelining).
//   deja-kv [--bind 127.0.0.1] [--port 6380]
// A single node; the replicated form runs in the simulator tests (tests/examples/kv_sim_test.cpp).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "deja/current_thread_runtime.hpp"
#include "deja/net/socket_addr.hpp"
#include "replica.hpp"

namespace {

deja::Task<void> serve(deja::net::SocketAddr at) {
  kv::ReplicaOptions options;
  options.client_address = at;
  kv::Replica replica = kv::Replica::bind(options);
  std::printf("kv listening %s\n", replica.client_addr()->to_string().c_str());
  std::fflush(stdout);
  co_await replica.run();
}

}  // namespace

int main(int argc, char** argv) {
  std::string bind = "127.0.0.1";
  unsigned long port = 6380;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
      bind = argv[++i];
    } else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      char* end = nullptr;
      port = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || port > 65535) {
        std::fprintf(stderr, "deja-kv: --port needs a number from 0 to 65535\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: deja-kv [--bind ADDRESS] [--port PORT]\n");
      return 2;
    }
  }
  const auto ip = deja::net::IpAddr::try_parse(bind);
  if (!ip) {
    std::fprintf(stderr, "deja-kv: --bind needs an IP address, got \"%s\"\n", bind.c_str());
    return 2;
  }
  try {
    deja::block_on(serve(deja::net::SocketAddr(*ip, static_cast<std::uint16_t>(port))));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deja-kv: %s\n", e.what());
    return 1;
  }
}
