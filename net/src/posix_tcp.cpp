// TCP on the reactor: reads and writes that wait for readiness on EAGAIN, and an accept loop that
// backs off when the process runs out of file descriptors.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "deja/errors.hpp"
#include "deja/time.hpp"
#include "posix_net.hpp"

namespace deja::net::posix {

namespace {

// Marks an operation in flight for its lifetime, including a cancelled one's (the frame is
// destroyed at its suspension point and this destructor runs).
class InFlight {
 public:
  InFlight(std::atomic<bool>& flag, const char* what) : flag_(flag) {
    if (flag_.load(std::memory_order_relaxed)) {
      throw UsageError(std::string("deja::net: two concurrent ") + what + "s on one TCP stream; split it and use one task per half");
    }
    flag_.store(true, std::memory_order_relaxed);
  }
  ~InFlight() { flag_.store(false, std::memory_order_relaxed); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<bool>& flag_;
};

bool would_block(int error) noexcept { return error == EAGAIN || error == EWOULDBLOCK; }

}  // namespace

Task<std::size_t> PosixStream::read(std::span<std::byte> buf) {
  if (buf.empty()) co_return 0;
  InFlight busy(reading_, "read");
  for (;;) {
    // Completes at once unless readiness was cleared (by EAGAIN or a short read): then the recv
    // would only fail, so wait for the next edge first.
    co_await afd_.readable();
    const std::uint32_t tick = afd_.ready_tick();
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n >= 0) {
      // Fewer bytes than asked: the kernel buffer is empty now, so the next read waits for the
      // next edge instead of spending a system call to learn EAGAIN (Tokio does the same).
      if (n > 0 && static_cast<std::size_t>(n) < buf.size()) afd_.clear_ready(Interest::kReadable, tick);
      co_return static_cast<std::size_t>(n);
    }
    const int error = errno;
    if (error == EINTR) continue;
    if (!would_block(error)) throw_errno(error, "read");
    afd_.clear_ready(Interest::kReadable, tick);
  }
}

std::size_t PosixStream::send_some(std::span<const std::byte> buf) {
  for (;;) {
    const std::uint32_t tick = afd_.ready_tick();
    // MSG_NOSIGNAL: a peer that went away is EPIPE here, not a SIGPIPE that kills the process.
    const ssize_t n = ::send(fd_.get(), buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n > 0) {
      // A short write filled the send buffer: the next write waits for space.
      if (static_cast<std::size_t>(n) < buf.size()) afd_.clear_ready(Interest::kWritable, tick);
      return static_cast<std::size_t>(n);
    }
    // A non-empty send never takes nothing; were it to, waiting for an edge could hang.
    if (n == 0) throw_errno(EIO, "write");
    const int error = errno;
    if (error == EINTR) continue;
    if (!would_block(error)) throw_errno(error, "write");
    afd_.clear_ready(Interest::kWritable, tick);
    return 0;
  }
}

Task<std::size_t> PosixStream::write(std::span<const std::byte> buf) {
  if (buf.empty()) co_return 0;
  InFlight busy(writing_, "write");
  for (;;) {
    co_await afd_.writable();
    if (const std::size_t n = send_some(buf); n != 0) co_return n;
  }
}

Task<void> PosixStream::write_all(std::span<const std::byte> buf) {
  if (buf.empty()) co_return;
  InFlight busy(writing_, "write");
  while (!buf.empty()) {
    co_await afd_.writable();
    buf = buf.subspan(send_some(buf));
  }
}

void SocketStream::shutdown_write() {
  // ENOTCONN: the connection is already gone (reset by the peer), so there is nothing to shut.
  if (::shutdown(fd_.get(), SHUT_WR) < 0 && errno != ENOTCONN) throw_errno(errno, "shutdown");
}

void SocketStream::set_nodelay(bool on) {
  const int value = on ? 1 : 0;
  if (::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &value, sizeof value) < 0) throw_errno(errno, "setsockopt(TCP_NODELAY)");
}

bool SocketStream::nodelay() const {
  int value = 0;
  socklen_t length = sizeof value;
  if (::getsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &value, &length) < 0) throw_errno(errno, "getsockopt(TCP_NODELAY)");
  return value != 0;
}

// --- io_uring ---------------------------------------------------------------------------------

UringStream::UringStream(OwnedFd fd, IoUring& ring, SocketAddr peer) : SocketStream(std::move(fd), peer), ring_(ring) {
  const int flags = ::fcntl(fd_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags & ~O_NONBLOCK) < 0) throw_errno(errno, "fcntl(F_SETFL)");
}

namespace {

// A stream made on one runtime's io_uring, used from a task of another.
[[noreturn]] void throw_wrong_runtime() {
  throw UsageError("deja::net: a TCP stream made on an io_uring runtime can only be used from that runtime's tasks");
}

}  // namespace

void UringStream::keep_unread(void* self, const std::byte* data, std::int32_t count) noexcept {
  auto& stream = *static_cast<UringStream*>(self);
  if (count < 0) {
    stream.unread_error_ = -count;
    return;
  }
  try {
    stream.unread_.insert(stream.unread_.end(), data, data + count);
  } catch (...) {
    // Out of memory while a task is being destroyed: nothing better can be done than to lose it.
  }
}

Task<std::size_t> UringStream::read(std::span<std::byte> buf) {
  if (buf.empty()) co_return 0;
  InFlight busy(reading_, "read");
  if (unread_offset_ < unread_.size()) {
    const std::size_t n = std::min(buf.size(), unread_.size() - unread_offset_);
    std::memcpy(buf.data(), unread_.data() + unread_offset_, n);
    unread_offset_ += n;
    if (unread_offset_ == unread_.size()) {
      unread_.clear();
      unread_offset_ = 0;
    }
    co_return n;
  }
  if (unread_error_ != 0) throw_errno(std::exchange(unread_error_, 0), "read");
  for (;;) {
    IoUring::Operation recv = ring_.recv(fd_.get(), buf, 0);
    recv.on_abandoned_completion(&UringStream::keep_unread, this);
    const std::int32_t n = co_await recv;
    if (n >= 0) co_return static_cast<std::size_t>(n);
    if (n == -EINTR || n == -EAGAIN) continue;
    if (n == -EXDEV) throw_wrong_runtime();
    throw_errno(-n, "read");
  }
}

namespace {

// What a send's completion means for a writer: the bytes it took, or 0 to submit it again (an
// interrupted or would-block send). Throws the error otherwise, and EIO for a send of a non-empty
// buffer that took nothing (retrying that could spin).
std::size_t uring_sent(std::int32_t n) {
  if (n > 0) return static_cast<std::size_t>(n);
  if (n == 0) throw_errno(EIO, "write");
  if (n == -EINTR || n == -EAGAIN) return 0;
  if (n == -EXDEV) throw_wrong_runtime();
  throw_errno(-n, "write");
}

}  // namespace

Task<std::size_t> UringStream::write(std::span<const std::byte> buf) {
  if (buf.empty()) co_return 0;
  InFlight busy(writing_, "write");
  for (;;) {
    // MSG_NOSIGNAL: a peer that went away is EPIPE here, not a SIGPIPE that kills the process.
    if (const std::size_t n = uring_sent(co_await ring_.send(fd_.get(), buf, MSG_NOSIGNAL)); n != 0) co_return n;
  }
}

Task<void> UringStream::write_all(std::span<const std::byte> buf) {
  if (buf.empty()) co_return;
  InFlight busy(writing_, "write");
  while (!buf.empty()) buf = buf.subspan(uring_sent(co_await ring_.send(fd_.get(), buf, MSG_NOSIGNAL)));
}

std::unique_ptr<StreamBackend> make_stream(OwnedFd fd, SocketAddr peer) {
  if (IoUring* ring = current_uring()) return std::make_unique<UringStream>(std::move(fd), *ring, peer);
  AsyncFd afd(fd.get());
  return std::make_unique<PosixStream>(std::move(fd), std::move(afd), peer);
}

Task<std::unique_ptr<StreamBackend>> PosixListener::accept() {
  // Out of descriptors (or kernel memory), accept fails at once for as long as the condition
  // lasts while the listener stays readable; retrying at once would spin a core. The wait doubles
  // from 1 ms up to a cap, so a server recovers within the cap once descriptors are freed.
  constexpr std::chrono::milliseconds kFirstBackoff{1};
  constexpr std::chrono::milliseconds kMaxBackoff{200};
  std::chrono::milliseconds backoff{0};
  for (;;) {
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    const std::uint32_t tick = afd_.ready_tick();
    const int fd = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&storage), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      OwnedFd connection(fd);
      const SocketAddr peer = SocketAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length);
      try {
        co_return make_stream(std::move(connection), peer);
      } catch (const CapacityExceeded&) {
        // The runtime's registration limit: drop this connection (its peer sees it closed) and
        // back off as for running out of descriptors.
      }
    } else {
      const int error = errno;
      switch (error) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
          backoff = std::chrono::milliseconds{0};
          afd_.clear_ready(Interest::kReadable, tick);
          co_await afd_.readable();
          continue;
        // A connection that was reset before we took it, or (accept(2), Linux) a network error
        // already pending on the new socket: neither concerns the listener, so take the next one.
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
        case ENETDOWN:
          continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          break;
        default:
          throw_errno(error, "accept");
      }
    }
    backoff = backoff.count() == 0 ? kFirstBackoff : std::min(backoff * 2, kMaxBackoff);
    co_await deja::sleep(backoff);
  }
}

}  // namespace deja::net::posix
