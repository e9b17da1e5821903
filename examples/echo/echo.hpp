// An echo server and client written only against deja::net's public API, so the same functions
// run on the production runtime (tests/net_echo_example_test.cpp, over 127.0.0.1) and under the
// simulator's network.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "deja/deja.hpp"
#include "deja/net.hpp"

namespace echo {

// Echoes everything one connection sends until it shuts down its write half, then closes.
// Returns the bytes echoed. A connection that fails (reset by its peer) ends only itself.
inline deja::Task<std::uint64_t> serve_connection(deja::net::TcpStream stream) {
  std::array<std::byte, 4096> buf;
  std::uint64_t echoed = 0;
  try {
    for (;;) {
      const std::size_t n = co_await stream.read(buf);
      if (n == 0) break;
      co_await stream.write_all(std::span<const std::byte>(buf.data(), n));
      echoed += n;
    }
  } catch (const std::system_error&) {
    // The peer went away mid-conversation: nothing to echo it any more.
  }
  co_return echoed;
}

// Accepts `connections` connections, serving each in a task of its own, and returns once every
// one of them has ended, with the total bytes echoed.
inline deja::Task<std::uint64_t> serve(deja::net::TcpListener& listener, std::size_t connections) {
  deja::JoinSet<std::uint64_t> served;
  for (std::size_t i = 0; i < connections; ++i) {
    auto accepted = co_await listener.accept();
    served.spawn(serve_connection(std::move(accepted.stream)));
  }
  std::uint64_t total = 0;
  while (auto echoed = co_await served.join_next()) total += *echoed;
  co_return total;
}

// The bytes of message `round` of client `client_id`: distinct per client and round, so a
// crossed or reordered reply is caught.
inline std::vector<std::byte> message_for(std::uint32_t client_id, std::uint32_t round, std::size_t size) {
  std::vector<std::byte> message(size);
  for (std::size_t i = 0; i < size; ++i) message[i] = static_cast<std::byte>((client_id * 31 + round * 7 + i) & 0xff);
  return message;
}

// Connects to `server`, sends `rounds` messages of `size` bytes one at a time, checks each echo,
// shuts down and checks that the server then closes. Returns the bytes echoed back; throws
// std::runtime_error naming the round if an echo differs, std::system_error on network errors.
inline deja::Task<std::uint64_t> run_client(deja::net::SocketAddr server, std::uint32_t client_id, std::uint32_t rounds, std::size_t size) {
  deja::net::TcpStream stream = co_await deja::net::TcpStream::connect(server);
  stream.set_nodelay(true);
  std::vector<std::byte> reply(size);
  for (std::uint32_t round = 0; round < rounds; ++round) {
    const std::vector<std::byte> message = message_for(client_id, round, size);
    co_await stream.write_all(message);
    co_await stream.read_exact(reply);
    if (reply != message) throw std::runtime_error(fmt::format("echo: client {} round {}: the reply differs from the message", client_id, round));
  }
  stream.shutdown();
  std::array<std::byte, 1> after;
  const std::size_t extra = co_await stream.read(after);
  if (extra != 0) throw std::runtime_error(fmt::format("echo: client {}: bytes after the last echo", client_id));
  co_return std::uint64_t{rounds} * size;
}

// A whole conversation on one host: a server on `at` (port 0 picks one) and `clients` clients
// running at once. Returns the bytes echoed, after checking that the server counted the same.
inline deja::Task<std::uint64_t> run_local(deja::net::SocketAddr at, std::uint32_t clients, std::uint32_t rounds, std::size_t size) {
  deja::net::TcpListener listener = deja::net::TcpListener::bind(at);
  auto server = deja::spawn(serve(listener, clients));
  deja::JoinSet<std::uint64_t> running;
  for (std::uint32_t id = 0; id < clients; ++id) running.spawn(run_client(listener.local_addr(), id, rounds, size));
  std::uint64_t total = 0;
  while (auto echoed = co_await running.join_next()) total += *echoed;
  const std::uint64_t served = co_await server;
  if (served != total) throw std::runtime_error(fmt::format("echo: the server echoed {} bytes, the clients got {}", served, total));
  co_return total;
}

}  // namespace echo
