// deja::net::UdpSocket: a bound UDP socket sending and receiving datagrams (like tokio::net::UdpSocket).
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "deja/net/driver.hpp"
#include "deja/net/socket_addr.hpp"
#include "deja/task.hpp"

namespace deja::net {

class UdpSocket {
 public:
  // Binds at `addr` (port 0 picks a free port). Throws as TcpListener::bind does.
  static UdpSocket bind(SocketAddr addr);

  explicit UdpSocket(std::unique_ptr<DatagramBackend> backend) noexcept : backend_(std::move(backend)) {}

  using Received = DatagramBackend::Received;

  // Sends one datagram; returns its length.
  Task<std::size_t> send_to(std::span<const std::byte> data, SocketAddr to) { return backend().send_to(data, to); }
  // Receives one datagram; one longer than buf is truncated to buf.size() (the rest is lost).
  Task<Received> recv_from(std::span<std::byte> buf) { return backend().recv_from(buf); }

  // Sets the destination of send and the only source recv (and recv_from) accepts.
  void connect(SocketAddr peer) { backend().connect(peer); }
  // Sends to the connected peer; std::system_error(not_connected) before connect.
  Task<std::size_t> send(std::span<const std::byte> data) { return backend().send(data); }
  // Receives one datagram (from the connected peer only, once connected).
  Task<std::size_t> recv(std::span<std::byte> buf) { return backend().recv(buf); }

  SocketAddr local_addr() const { return backend().local_addr(); }

 private:
  DatagramBackend& backend() const;
  std::unique_ptr<DatagramBackend> backend_;
};

}  // namespace deja::net
