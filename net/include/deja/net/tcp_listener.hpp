// deja::net::TcpListener: a TCP socket listening for connections (like tokio::net::TcpListener).
#pragma once

#include <cstdint>
#include <memory>

#include "deja/net/driver.hpp"
#include "deja/net/socket_addr.hpp"
#include "deja/net/tcp_stream.hpp"
#include "deja/task.hpp"

namespace deja::net {

class TcpListener {
 public:
  // Binds and listens at `addr` (port 0: the system picks a free port; local_addr says which).
  // `backlog` bounds connections waiting to be accepted (the kernel may lower it further).
  // Throws std::system_error: address_in_use (someone listens there), address_not_available
  // (not an address of this host). Needs a runtime current on this thread.
  static TcpListener bind(SocketAddr addr, std::uint32_t backlog = 1024);

  explicit TcpListener(std::unique_ptr<ListenerBackend> backend) noexcept : backend_(std::move(backend)) {}

  struct Accepted {
    TcpStream stream;
    SocketAddr peer;
  };
  // Waits for the next connection. When the process runs out of file descriptors, waits (backing
  // off up to 200 ms between tries) instead of failing or spinning. Cancelling it is safe.
  Task<Accepted> accept();

  SocketAddr local_addr() const;

 private:
  ListenerBackend& backend() const;
  std::unique_ptr<ListenerBackend> backend_;
};

}  // namespace deja::net
