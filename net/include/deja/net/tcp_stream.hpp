// deja::net::TcpStream: a connected TCP byte stream (like tokio::net::TcpStream), and its owned read
// and write halves for using one connection from two tasks at once.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "deja/net/async_io.hpp"
#include "deja/net/driver.hpp"
#include "deja/net/socket_addr.hpp"
#include "deja/task.hpp"

namespace deja::net {

class OwnedReadHalf;
class OwnedWriteHalf;

// Errors are std::system_error with std::errc codes (driver.hpp lists them). One read and one
// write may be in flight at once; a second concurrent read (or write) is a UsageError. Using a
// moved-from stream is a UsageError. Destroying a task blocked in read or write is safe.
class TcpStream {
 public:
  // Connects to `addr`. Fails with connection_refused when nobody listens there.
  static Task<TcpStream> connect(SocketAddr addr);
  // Connects to "host:port" ("localhost:80", "192.0.2.1:80", "[::1]:80"), trying each address
  // lookup_host gives in order; throws the last address's error if none accepts.
  static Task<TcpStream> connect(std::string host_port);

  // Adopts a connected backend (what NetDriver::connect and accept return).
  explicit TcpStream(std::unique_ptr<StreamBackend> backend) noexcept : backend_(std::move(backend)) {}

  // Reads at most buf.size() bytes, waiting for at least one; 0 at end of stream.
  Task<std::size_t> read(std::span<std::byte> buf) { return backend().read(buf); }
  // Fills buf; UnexpectedEof (std::errc::no_message_available) if the stream ends first.
  Task<void> read_exact(std::span<std::byte> buf) { return net::read_exact(*this, buf); }
  // Writes a non-empty prefix of buf and returns its length (0 for an empty buf).
  Task<std::size_t> write(std::span<const std::byte> buf) { return backend().write(buf); }
  // Writes all of buf, completing partial writes.
  Task<void> write_all(std::span<const std::byte> buf) { return backend().write_all(buf); }
  // Shuts down the write half: the peer reads end of stream after the bytes already written, and
  // a later write here fails with broken_pipe. Reading goes on.
  void shutdown() { backend().shutdown_write(); }

  void set_nodelay(bool on) { backend().set_nodelay(on); }
  bool nodelay() const { return backend().nodelay(); }
  SocketAddr peer_addr() const { return backend().peer_addr(); }
  SocketAddr local_addr() const { return backend().local_addr(); }

  // Splits the stream into a read half and a write half that two tasks may use at once. The
  // connection closes when both halves are gone; dropping the write half does not shut it down.
  std::pair<OwnedReadHalf, OwnedWriteHalf> into_split() &&;

 private:
  StreamBackend& backend() const;
  std::unique_ptr<StreamBackend> backend_;
};

// The read half of a split TcpStream.
class OwnedReadHalf {
 public:
  Task<std::size_t> read(std::span<std::byte> buf) { return backend().read(buf); }
  Task<void> read_exact(std::span<std::byte> buf) { return net::read_exact(*this, buf); }
  SocketAddr peer_addr() const { return backend().peer_addr(); }
  SocketAddr local_addr() const { return backend().local_addr(); }

 private:
  friend class TcpStream;
  explicit OwnedReadHalf(std::shared_ptr<StreamBackend> backend) noexcept : backend_(std::move(backend)) {}
  StreamBackend& backend() const;
  std::shared_ptr<StreamBackend> backend_;
};

// The write half of a split TcpStream.
class OwnedWriteHalf {
 public:
  Task<std::size_t> write(std::span<const std::byte> buf) { return backend().write(buf); }
  Task<void> write_all(std::span<const std::byte> buf) { return backend().write_all(buf); }
  void shutdown() { backend().shutdown_write(); }
  void set_nodelay(bool on) { backend().set_nodelay(on); }
  SocketAddr peer_addr() const { return backend().peer_addr(); }
  SocketAddr local_addr() const { return backend().local_addr(); }

 private:
  friend class TcpStream;
  explicit OwnedWriteHalf(std::shared_ptr<StreamBackend> backend) noexcept : backend_(std::move(backend)) {}
  StreamBackend& backend() const;
  std::shared_ptr<StreamBackend> backend_;
};

}  // namespace deja::net
