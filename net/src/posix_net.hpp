// The posix network: NetDriver over non-blocking sockets on the production reactor (AsyncFd,
// edge-triggered). Private to deja::net; the public classes reach it only through current_driver().
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "deja/io.hpp"
#include "deja/io_uring.hpp"
#include "deja/net/driver.hpp"

namespace deja::net::posix {

// A file descriptor that is closed exactly once, when its owner goes.
class OwnedFd {
 public:
  OwnedFd() noexcept = default;
  explicit OwnedFd(int fd) noexcept : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { reset(); }

  int get() const noexcept { return fd_; }
  void reset() noexcept {
    // close() is not retried on EINTR: on Linux the descriptor is released even then, and a
    // retry could close a descriptor another thread has just been given.
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_ = -1;
};

// std::system_error with errno's generic_category code and "deja::net: <what>".
[[noreturn]] void throw_errno(int error, const char* what);

// A non-blocking, close-on-exec socket; throws std::system_error.
OwnedFd open_socket(int family, int type);

// The address the kernel gave a socket (getsockname) or its peer (getpeername); throws std::system_error.
SocketAddr local_address_of(int fd);
SocketAddr peer_address_of(int fd);

// What both kinds of TCP stream share: the connected socket, the peer's address, the one-read-
// one-write rule (driver.hpp; a second concurrent one is a UsageError), and the socket options.
// The descriptor is a base-class member, so it is closed after everything a derived stream holds
// (a readiness registration is dropped, and its waiters woken, before the close).
class SocketStream : public StreamBackend {
 public:
  void shutdown_write() final;
  void set_nodelay(bool on) final;
  bool nodelay() const final;
  SocketAddr local_addr() const final { return local_address_of(fd_.get()); }
  SocketAddr peer_addr() const final { return peer_; }

 protected:
  SocketStream(OwnedFd fd, SocketAddr peer) noexcept : fd_(std::move(fd)), peer_(peer) {}
  OwnedFd fd_;
  SocketAddr peer_;
  // A read (write) is in flight. Atomic, since misuse on the multi-thread runtime starts the
  // second one on another thread: a load and a store, so the check costs no locked instruction;
  // it catches a second operation that starts while the first waits, which is the misuse there is.
  std::atomic<bool> reading_{false};
  std::atomic<bool> writing_{false};
};

// One end of a TCP connection on the epoll reactor: a non-blocking socket that waits for
// readiness when a system call says EAGAIN.
class PosixStream final : public SocketStream {
 public:
  PosixStream(OwnedFd fd, AsyncFd afd, SocketAddr peer) noexcept : SocketStream(std::move(fd), peer), afd_(std::move(afd)) {}
  Task<std::size_t> read(std::span<std::byte> buf) override;
  Task<std::size_t> write(std::span<const std::byte> buf) override;
  Task<void> write_all(std::span<const std::byte> buf) override;

 private:
  // One send, once the socket was seen writable: the bytes it took, or 0 when the send buffer is
  // full (readiness is then cleared: the caller waits for the next edge).
  std::size_t send_some(std::span<const std::byte> buf);
  AsyncFd afd_;
};

// One end of a TCP connection on the io_uring reactor: reads and writes are operations the kernel
// completes (submitted in batches by the runtime), so no readiness registration and no system call
// of its own per read or write. The socket is made blocking: io_uring never blocks the thread on
// it, and a non-blocking one would make the kernel fail operations with EAGAIN instead of waiting.
class UringStream final : public SocketStream {
 public:
  UringStream(OwnedFd fd, IoUring& ring, SocketAddr peer);
  Task<std::size_t> read(std::span<std::byte> buf) override;
  Task<std::size_t> write(std::span<const std::byte> buf) override;
  Task<void> write_all(std::span<const std::byte> buf) override;

 private:
  // Keeps what a cancelled recv took from the socket (bytes, or an error), for the next read
  // (driver.hpp's promise that a cancelled read loses nothing).
  static void keep_unread(void* self, const std::byte* data, std::int32_t count) noexcept;
  IoUring& ring_;
  std::vector<std::byte> unread_;
  std::size_t unread_offset_ = 0;
  // The error (errno) a cancelled recv took from the socket, reported by the next read: the
  // kernel reports a reset once, so dropping it would make the stream look cleanly ended.
  int unread_error_ = 0;
};

// The stream for a connected socket on the current runtime: a UringStream on io_uring, else a
// PosixStream registered with the reactor.
std::unique_ptr<StreamBackend> make_stream(OwnedFd fd, SocketAddr peer);

class PosixListener final : public ListenerBackend {
 public:
  PosixListener(OwnedFd fd, AsyncFd afd, SocketAddr local) noexcept
      : fd_(std::move(fd)), afd_(std::move(afd)), local_(local) {}
  Task<std::unique_ptr<StreamBackend>> accept() override;
  SocketAddr local_addr() const override { return local_; }

 private:
  OwnedFd fd_;
  AsyncFd afd_;
  SocketAddr local_;
};

class PosixDatagram final : public DatagramBackend {
 public:
  PosixDatagram(OwnedFd fd, AsyncFd afd, SocketAddr local) noexcept
      : fd_(std::move(fd)), afd_(std::move(afd)), local_(local) {}
  Task<std::size_t> send_to(std::span<const std::byte> data, SocketAddr to) override;
  Task<Received> recv_from(std::span<std::byte> buf) override;
  void connect(SocketAddr peer) override;
  Task<std::size_t> send(std::span<const std::byte> data) override;
  Task<std::size_t> recv(std::span<std::byte> buf) override;
  SocketAddr local_addr() const override { return local_; }

 private:
  // sendto() with `to` (or with no address once connected), waiting while the buffer is full.
  Task<std::size_t> send_impl(std::span<const std::byte> data, const SocketAddr* to);
  OwnedFd fd_;
  AsyncFd afd_;
  SocketAddr local_;
  bool connected_ = false;
};

class PosixNetDriver final : public NetDriver {
 public:
  Task<std::unique_ptr<StreamBackend>> connect(SocketAddr to) override;
  std::unique_ptr<ListenerBackend> listen(SocketAddr at, std::uint32_t backlog) override;
  std::unique_ptr<DatagramBackend> bind_udp(SocketAddr at) override;
  Task<std::vector<SocketAddr>> lookup(std::string host, std::uint16_t port) override;
};

}  // namespace deja::net::posix
