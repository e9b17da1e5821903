// TcpStream, its halves and TcpListener: thin wrappers over whichever NetDriver is current.
#include <exception>

#include "deja/errors.hpp"
#include "deja/net/async_io.hpp"
#include "deja/net/lookup_host.hpp"
#include "deja/net/tcp_listener.hpp"
#include "deja/net/tcp_stream.hpp"

namespace deja::net {

namespace {

[[noreturn]] void throw_moved_from(const char* what) {
  throw UsageError(std::string("deja::net: use of a moved-from ") + what);
}

}  // namespace

Task<void> StreamBackend::write_all(std::span<const std::byte> buf) { return net::write_all(*this, buf); }

Task<TcpStream> TcpStream::connect(SocketAddr addr) {
  co_return TcpStream(co_await current_driver().connect(addr));
}

Task<TcpStream> TcpStream::connect(std::string host_port) {
  const std::vector<SocketAddr> addrs = co_await lookup_host(std::move(host_port));
  std::exception_ptr last_error;
  for (const SocketAddr& addr : addrs) {
    try {
      co_return co_await connect(addr);
    } catch (const std::system_error&) {
      last_error = std::current_exception();
    }
  }
  // lookup_host never returns an empty list, so some address was tried and failed.
  std::rethrow_exception(last_error);
}

StreamBackend& TcpStream::backend() const {
  if (!backend_) throw_moved_from("TcpStream");
  return *backend_;
}

std::pair<OwnedReadHalf, OwnedWriteHalf> TcpStream::into_split() && {
  std::shared_ptr<StreamBackend> shared(std::move(backend_));
  if (!shared) throw_moved_from("TcpStream");
  return {OwnedReadHalf(shared), OwnedWriteHalf(shared)};
}

StreamBackend& OwnedReadHalf::backend() const {
  if (!backend_) throw_moved_from("OwnedReadHalf");
  return *backend_;
}

StreamBackend& OwnedWriteHalf::backend() const {
  if (!backend_) throw_moved_from("OwnedWriteHalf");
  return *backend_;
}

TcpListener TcpListener::bind(SocketAddr addr, std::uint32_t backlog) {
  return TcpListener(current_driver().listen(addr, backlog));
}

Task<TcpListener::Accepted> TcpListener::accept() {
  std::unique_ptr<StreamBackend> stream = co_await backend().accept();
  const SocketAddr peer = stream->peer_addr();
  co_return Accepted{TcpStream(std::move(stream)), peer};
}

SocketAddr TcpListener::local_addr() const { return backend().local_addr(); }

ListenerBackend& TcpListener::backend() const {
  if (!backend_) throw_moved_from("TcpListener");
  return *backend_;
}

}  // namespace deja::net
