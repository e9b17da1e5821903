// The networking seam: NetDriver is what a network implements (the posix sockets of the production
// reactor, or the simulator's world of nodes), and TcpListener, TcpStream, UdpSocket and
// lookup_host are written once on top of it, so a server and its simulated test share every line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "deja/net/socket_addr.hpp"
#include "deja/task.hpp"

namespace deja::net {

// Errors. Every operation below reports failure by throwing std::system_error whose code() is a
// std::generic_category (errno) code with its POSIX meaning, so callers compare it with std::errc:
//   connection_refused   nobody listens at the address (TCP connect)
//   connection_reset     the peer reset the connection (it crashed, or closed with unread data)
//   broken_pipe          writing after the write half was shut down, or after the peer went away
//   timed_out            the network did not answer (a partitioned or clogged peer)
//   address_in_use       bind to an address that is taken
//   address_not_available bind to an address that is not this host's (or this node's)
//   host_unreachable, network_unreachable, not_connected, invalid_argument, too_many_files_open
// End of stream is not an error: read returns 0. Cancellation (destroying the awaiting task) is
// always safe: nothing read is lost to a cancelled read that had not returned it, and a cancelled
// write has written a prefix of its buffer (the count is unknown to the caller, as with Tokio).

// One end of a connected TCP stream. One read and one write may be in flight at once, from two
// different tasks (a stream split into halves); two concurrent reads (or writes) are a UsageError.
class StreamBackend {
 public:
  virtual ~StreamBackend() = default;
  // Reads at most buf.size() bytes, waiting until at least one is available. Returns 0 at end of
  // stream (the peer shut down its write half or closed) and for an empty buf.
  virtual Task<std::size_t> read(std::span<std::byte> buf) = 0;
  // Writes a non-empty prefix of buf, waiting while the send buffer is full (back-pressure), and
  // returns its length; 0 only for an empty buf.
  virtual Task<std::size_t> write(std::span<const std::byte> buf) = 0;
  // Writes all of buf, however many writes that takes (net::write_all over write() unless a
  // backend does it in one frame, as the epoll and io_uring streams do: a coroutine less per call).
  virtual Task<void> write_all(std::span<const std::byte> buf);
  // Shuts down the write half: the peer reads end of stream once it has read everything before it.
  virtual void shutdown_write() = 0;
  virtual void set_nodelay(bool on) = 0;
  virtual bool nodelay() const = 0;
  virtual SocketAddr local_addr() const = 0;
  virtual SocketAddr peer_addr() const = 0;
};

class ListenerBackend {
 public:
  virtual ~ListenerBackend() = default;
  // Waits for the next incoming connection.
  virtual Task<std::unique_ptr<StreamBackend>> accept() = 0;
  virtual SocketAddr local_addr() const = 0;
};

// A bound UDP socket. Datagrams larger than the buffer given to recv are truncated to it (recv
// returns the truncated length), as POSIX does.
class DatagramBackend {
 public:
  virtual ~DatagramBackend() = default;
  virtual Task<std::size_t> send_to(std::span<const std::byte> data, SocketAddr to) = 0;
  struct Received {
    std::size_t size;
    SocketAddr from;
  };
  virtual Task<Received> recv_from(std::span<std::byte> buf) = 0;
  // Sets the default destination of send and the only source recv accepts.
  virtual void connect(SocketAddr peer) = 0;
  // send throws std::system_error(not_connected) before connect; recv then takes a datagram from
  // any source.
  virtual Task<std::size_t> send(std::span<const std::byte> data) = 0;
  virtual Task<std::size_t> recv(std::span<std::byte> buf) = 0;
  virtual SocketAddr local_addr() const = 0;
};

class NetDriver {
 public:
  virtual ~NetDriver() = default;
  virtual Task<std::unique_ptr<StreamBackend>> connect(SocketAddr to) = 0;
  // Port 0 picks a free port (local_addr tells which). `backlog` bounds connections not yet accepted.
  virtual std::unique_ptr<ListenerBackend> listen(SocketAddr at, std::uint32_t backlog) = 0;
  virtual std::unique_ptr<DatagramBackend> bind_udp(SocketAddr at) = 0;
  // Resolves "host" or a literal address to addresses with `port`; throws std::system_error
  // (host_unreachable for an unknown name) or AddrParseError for a malformed host.
  virtual Task<std::vector<SocketAddr>> lookup(std::string host, std::uint16_t port) = 0;
};

// The network of the current runtime: RuntimeContext::net when a runtime installed one (the
// simulator does), otherwise the posix sockets of the production reactor. Throws UsageError
// outside any runtime.
NetDriver& current_driver();

}  // namespace deja::net
