// Socket plumbing shared by the posix streams, listeners and datagram sockets, and the posix
// driver's connect, listen and bind.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <string>

#include <fmt/format.h>

#include "posix_net.hpp"

namespace deja::net::posix {

void throw_errno(int error, const char* what) {
  throw std::system_error(error, std::generic_category(), fmt::format("deja::net: {}", what));
}

namespace {

[[noreturn]] void throw_errno_at(int error, const char* what, const SocketAddr& addr) {
  throw std::system_error(error, std::generic_category(), fmt::format("deja::net: {} {}", what, addr));
}

int family_of(const SocketAddr& addr) noexcept { return addr.is_v4() ? AF_INET : AF_INET6; }

}  // namespace

OwnedFd open_socket(int family, int type) {
  const int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "socket");
  return OwnedFd(fd);
}

SocketAddr local_address_of(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) < 0) throw_errno(errno, "getsockname");
  return SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length);
}

SocketAddr peer_address_of(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &length) < 0) throw_errno(errno, "getpeername");
  return SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length);
}

Task<std::unique_ptr<StreamBackend>> PosixNetDriver::connect(SocketAddr to) {
  sockaddr_storage storage;
  const socklen_t length = to.to_sockaddr(storage);
  OwnedFd fd = open_socket(family_of(to), SOCK_STREAM);
  bool in_progress = false;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) < 0) {
    const int error = errno;
    // EINTR on a non-blocking connect leaves the connection going on asynchronously, exactly
    // as EINPROGRESS does; calling connect again would report EALREADY.
    if (error != EINPROGRESS && error != EINTR) throw_errno_at(error, "connect to", to);
    in_progress = true;
  }
  AsyncFd afd(fd.get());
  if (in_progress) {
    // The kernel reports the socket writable (or in error) once the handshake ends either way;
    // SO_ERROR then says which.
    co_await afd.writable();
    int error = 0;
    socklen_t error_length = sizeof error;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &error_length) < 0) throw_errno(errno, "getsockopt(SO_ERROR)");
    if (error != 0) throw_errno_at(error, "connect to", to);
  }
  if (IoUring* ring = current_uring()) {
    // Connected: the readiness registration goes, since the stream completes its I/O on the ring.
    { AsyncFd done = std::move(afd); }
    co_return std::make_unique<UringStream>(std::move(fd), *ring, to);
  }
  co_return std::make_unique<PosixStream>(std::move(fd), std::move(afd), to);
}

std::unique_ptr<ListenerBackend> PosixNetDriver::listen(SocketAddr at, std::uint32_t backlog) {
  sockaddr_storage storage;
  const socklen_t length = at.to_sockaddr(storage);
  OwnedFd fd = open_socket(family_of(at), SOCK_STREAM);
  // A restarted server can bind its port while old connections sit in TIME_WAIT; a port that
  // another socket listens on is still refused (EADDRINUSE) on Linux.
  const int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) throw_errno(errno, "setsockopt(SO_REUSEADDR)");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) < 0) throw_errno_at(errno, "bind", at);
  // The kernel caps the backlog at net.core.somaxconn itself.
  const int queue = static_cast<int>(std::min<std::uint32_t>(backlog, INT_MAX));
  if (::listen(fd.get(), queue) < 0) throw_errno_at(errno, "listen on", at);
  const SocketAddr local = local_address_of(fd.get());
  AsyncFd afd(fd.get());
  return std::make_unique<PosixListener>(std::move(fd), std::move(afd), local);
}

std::unique_ptr<DatagramBackend> PosixNetDriver::bind_udp(SocketAddr at) {
  sockaddr_storage storage;
  const socklen_t length = at.to_sockaddr(storage);
  OwnedFd fd = open_socket(family_of(at), SOCK_DGRAM);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) < 0) throw_errno_at(errno, "bind", at);
  const SocketAddr local = local_address_of(fd.get());
  AsyncFd afd(fd.get());
  return std::make_unique<PosixDatagram>(std::move(fd), std::move(afd), local);
}

}  // namespace deja::net::posix
