// UDP on the reactor: sendto/recvfrom that wait for readiness on EAGAIN.
#include <sys/socket.h>

#include "posix_net.hpp"

namespace deja::net::posix {

Task<std::size_t> PosixDatagram::send_impl(std::span<const std::byte> data, const SocketAddr* to) {
  sockaddr_storage storage;
  socklen_t length = 0;
  if (to != nullptr) length = to->to_sockaddr(storage);
  for (;;) {
    const std::uint32_t tick = afd_.ready_tick();
    const ssize_t n = ::sendto(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL,
                               to != nullptr ? reinterpret_cast<const sockaddr*>(&storage) : nullptr, length);
    if (n >= 0) co_return static_cast<std::size_t>(n);
    const int error = errno;
    if (error == EINTR) continue;
    if (error != EAGAIN && error != EWOULDBLOCK) throw_errno(error, to != nullptr ? "send_to" : "send");
    afd_.clear_ready(Interest::kWritable, tick);
    co_await afd_.writable();
  }
}

Task<std::size_t> PosixDatagram::send_to(std::span<const std::byte> data, SocketAddr to) {
  // A coroutine, so that `to` lives in this frame while send_impl points at it.
  co_return co_await send_impl(data, &to);
}

Task<DatagramBackend::Received> PosixDatagram::recv_from(std::span<std::byte> buf) {
  for (;;) {
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    const std::uint32_t tick = afd_.ready_tick();
    const ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&storage), &length);
    if (n >= 0) co_return Received{static_cast<std::size_t>(n), SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length)};
    const int error = errno;
    if (error == EINTR) continue;
    if (error != EAGAIN && error != EWOULDBLOCK) throw_errno(error, "recv_from");
    afd_.clear_ready(Interest::kReadable, tick);
    co_await afd_.readable();
  }
}

void PosixDatagram::connect(SocketAddr peer) {
  sockaddr_storage storage;
  const socklen_t length = peer.to_sockaddr(storage);
  if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&storage), length) < 0) throw_errno(errno, "connect (UDP)");
  connected_ = true;
}

Task<std::size_t> PosixDatagram::send(std::span<const std::byte> data) {
  // Thrown from the coroutine, so the caller sees it where it awaits, as every other error.
  if (!connected_) throw std::system_error(std::make_error_code(std::errc::not_connected), "deja::net: UdpSocket::send before connect");
  co_return co_await send_impl(data, nullptr);
}

Task<std::size_t> PosixDatagram::recv(std::span<std::byte> buf) {
  for (;;) {
    const std::uint32_t tick = afd_.ready_tick();
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n >= 0) co_return static_cast<std::size_t>(n);
    const int error = errno;
    if (error == EINTR) continue;
    if (error != EAGAIN && error != EWOULDBLOCK) throw_errno(error, "recv");
    afd_.clear_ready(Interest::kReadable, tick);
    co_await afd_.readable();
  }
}

}  // namespace deja::net::posix
