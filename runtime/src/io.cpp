// AsyncFd: waiting for readiness of a file descriptor through the current runtime's IoDriver.
#include <utility>

#include "deja/io.hpp"

#include <sys/epoll.h>

namespace deja {

AsyncFd::AsyncFd(int fd) {
  if (fd < 0) throw UsageError("deja::AsyncFd: invalid file descriptor");
  IoDriver* driver = require_runtime("deja::AsyncFd").io;
  if (driver == nullptr) throw UsageError("deja::AsyncFd: the current runtime has no I/O driver");
  reg_ = driver->register_fd(fd);
  driver_ = driver;
}

AsyncFd::AsyncFd(AsyncFd&& other) noexcept
    : driver_(std::exchange(other.driver_, nullptr)), reg_(std::exchange(other.reg_, nullptr)), seen_{other.seen_[0], other.seen_[1]} {}

AsyncFd& AsyncFd::operator=(AsyncFd&& other) noexcept {
  if (this != &other) {
    if (reg_) driver_->deregister(reg_);
    driver_ = std::exchange(other.driver_, nullptr);
    reg_ = std::exchange(other.reg_, nullptr);
    seen_[0] = other.seen_[0];
    seen_[1] = other.seen_[1];
  }
  return *this;
}

AsyncFd::~AsyncFd() {
  if (reg_) driver_->deregister(reg_);
}

void AsyncFd::clear_ready(Interest interest) noexcept {
  if (!reg_) return;
  std::lock_guard lock(reg_->lock);
  std::uint8_t clear = 0;
  if ((static_cast<std::uint8_t>(interest) & static_cast<std::uint8_t>(Interest::kReadable)) && reg_->tick.load(std::memory_order_relaxed) == seen_[0]) {
    clear |= static_cast<std::uint8_t>(Interest::kReadable);
  }
  if ((static_cast<std::uint8_t>(interest) & static_cast<std::uint8_t>(Interest::kWritable)) && reg_->tick.load(std::memory_order_relaxed) == seen_[1]) {
    clear |= static_cast<std::uint8_t>(Interest::kWritable);
  }
  reg_->ready.store(reg_->ready.load(std::memory_order_relaxed) & static_cast<std::uint8_t>(~clear), std::memory_order_relaxed);
}

void AsyncFd::clear_ready(Interest interest, std::uint32_t tick) noexcept {
  if (!reg_) return;
  std::lock_guard lock(reg_->lock);
  if (reg_->tick.load(std::memory_order_relaxed) != tick) return;
  reg_->ready.store(reg_->ready.load(std::memory_order_relaxed) & static_cast<std::uint8_t>(~static_cast<std::uint8_t>(interest)), std::memory_order_relaxed);
}

namespace {

// The bits that let a wait for `interest` complete: the interest itself, or its side closed.
std::uint8_t ready_mask(Interest interest) noexcept {
  const auto bits = static_cast<std::uint8_t>(interest);
  return static_cast<std::uint8_t>(bits | (interest == Interest::kWritable ? detail::kWriteClosed : detail::kReadClosed));
}

}  // namespace

detail::WaitList& AsyncFd::ReadyAwaiter::list() noexcept {
  return interest_ == Interest::kWritable ? reg_->writers : reg_->readers;
}

// The fast path takes no lock: the reactor sets `ready` and then bumps `tick` (both under the lock,
// with release), so a tick loaded with acquire comes with every readiness bit set before it. A
// reader that misses a bit just set goes on to await_suspend, which looks again under the lock.
bool AsyncFd::ReadyAwaiter::await_ready() noexcept {
  if (!reg_) return true;  // a moved-from AsyncFd: the caller's syscall reports EBADF
  *seen_ = reg_->tick.load(std::memory_order_acquire);
  return (reg_->ready.load(std::memory_order_acquire) & ready_mask(interest_)) != 0;
}

void AsyncFd::ReadyAwaiter::await_resume() noexcept {
  if (!reg_) return;
  *seen_ = reg_->tick.load(std::memory_order_acquire);
}

bool AsyncFd::ReadyAwaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  waiter_.task = detail::park_current(h, interest_ == Interest::kWritable ? "fd writable" : "fd readable");
  std::lock_guard lock(reg_->lock);
  *seen_ = reg_->tick.load(std::memory_order_relaxed);
  if (reg_->ready.load(std::memory_order_relaxed) & ready_mask(interest_)) return false;
  list().push_back(waiter_);
  return true;
}

AsyncFd::ReadyAwaiter::~ReadyAwaiter() {
  // Woken waiters were unlinked by the reactor; only a cancelled wait is still linked.
  if (waiter_.linked) {
    std::lock_guard lock(reg_->lock);
    if (waiter_.linked) list().remove(waiter_);
  }
}

namespace detail {

void report_epoll_event(IoRegistration& reg, std::uint32_t e) noexcept {
  std::uint8_t bits = 0;
  if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) bits |= static_cast<std::uint8_t>(Interest::kReadable);
  if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) bits |= static_cast<std::uint8_t>(Interest::kWritable);
  // Not EPOLLERR: on a UDP socket it reports one ICMP error, which the next call consumes.
  if (e & (EPOLLRDHUP | EPOLLHUP)) bits |= kReadClosed;
  if (e & EPOLLHUP) bits |= kWriteClosed;
  std::lock_guard lock(reg.lock);
  // Every writer holds the lock: plain stores, the tick last (release) for the lock-free readers.
  reg.ready.store(reg.ready.load(std::memory_order_relaxed) | bits, std::memory_order_release);
  reg.tick.store(reg.tick.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  if (bits & static_cast<std::uint8_t>(Interest::kReadable)) {
    while (Waiter* w = reg.readers.pop_front()) w->notify();
  }
  if (bits & static_cast<std::uint8_t>(Interest::kWritable)) {
    while (Waiter* w = reg.writers.pop_front()) w->notify();
  }
}

}  // namespace detail

}  // namespace deja
