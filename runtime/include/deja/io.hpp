// The I/O readiness seam: IoDriver is what a reactor implements (epoll, io_uring, or the
// simulator's network), and AsyncFd is how code waits for a file descriptor to become ready.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>

#include "deja/context.hpp"
#include "deja/detail/spin_lock.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"

namespace deja {

enum class Interest : std::uint8_t { kReadable = 1, kWritable = 2, kBoth = 3 };

namespace detail {

// One registered file descriptor. Readiness is edge-triggered: the reactor sets bits when the
// kernel reports them, and the user clears a bit when a syscall says EAGAIN.
struct IoRegistration {
  int fd = -1;
  // Taken three times per read-then-write round trip (the event, the wait, the EAGAIN), nearly
  // always by one thread: a pthread mutex there cost the echo server 160 instructions and three
  // more locked instructions per round trip.
  SpinLock lock;
  // Interest bits the kernel last reported (error/hangup as both), plus the closed bits below.
  // Written only under `lock` (so a load and a store update it); read without it on the fast path
  // of a wait (with `tick`, acquire).
  std::atomic<std::uint8_t> ready{0};
  // Counts the reactor's events for this fd (bumped under `lock`), so that a task can tell whether
  // one arrived while it was in a system call: clearing readiness after an event the call did not
  // see would lose that edge.
  std::atomic<std::uint32_t> tick{0};
  WaitList readers;
  WaitList writers;
};

// Sticky bits in IoRegistration::ready: the kernel reported the read side closed (the peer's FIN, or
// hangup) or both sides (hangup). An error (EPOLLERR) is not sticky: on a UDP socket it is one ICMP
// report that the next call consumes. clear_ready never clears them, since no
// further edge would come: once closed, a read or write returns at once (0 or the error).
inline constexpr std::uint8_t kReadClosed = 4;
inline constexpr std::uint8_t kWriteClosed = 8;

// What a reactor does with one epoll event for `reg`: sets the readiness bits it reports (and the
// sticky closed bits), counts it in `tick`, and wakes the waiters it satisfies. Both production
// runtimes call it, so they agree on what an event means.
void report_epoll_event(IoRegistration& reg, std::uint32_t epoll_events) noexcept;

}  // namespace detail

class IoDriver {
 public:
  virtual ~IoDriver() = default;
  // Registers `fd` (non-blocking, owned by the caller) for readiness events. Throws
  // std::system_error if the kernel refuses, CapacityExceeded past the driver's limit.
  virtual detail::IoRegistration* register_fd(int fd) = 0;
  // Stops watching; every task still waiting on it is woken. The fd is not closed.
  virtual void deregister(detail::IoRegistration* reg) noexcept = 0;
};

// Waits for readiness of a non-blocking file descriptor on the current runtime, like Tokio's
// AsyncFd. Does not own the descriptor.
class AsyncFd {
 public:
  explicit AsyncFd(int fd);
  AsyncFd(AsyncFd&& other) noexcept;
  AsyncFd& operator=(AsyncFd&& other) noexcept;
  AsyncFd(const AsyncFd&) = delete;
  AsyncFd& operator=(const AsyncFd&) = delete;
  ~AsyncFd();

  int fd() const noexcept { return reg_ ? reg_->fd : -1; }

  class ReadyAwaiter {
   public:
    ReadyAwaiter(detail::IoRegistration* reg, Interest interest, std::uint32_t* seen) noexcept : reg_(reg), interest_(interest), seen_(seen) {}
    ReadyAwaiter(const ReadyAwaiter&) = delete;
    ReadyAwaiter& operator=(const ReadyAwaiter&) = delete;
    ~ReadyAwaiter();
    bool await_ready() noexcept;
    bool await_suspend(std::coroutine_handle<> h) noexcept;
    void await_resume() noexcept;

   private:
    detail::WaitList& list() noexcept;
    detail::IoRegistration* reg_;
    Interest interest_;
    std::uint32_t* seen_;
    detail::Waiter waiter_;
  };

  // Completes once the kernel has reported the fd readable (or writable) since the last
  // clear_ready() of that interest.
  ReadyAwaiter readable() noexcept { return {reg_, Interest::kReadable, &seen_[0]}; }
  ReadyAwaiter writable() noexcept { return {reg_, Interest::kWritable, &seen_[1]}; }

  // Call when a syscall reports EAGAIN/EWOULDBLOCK, before waiting again. Keeps the readiness if
  // the reactor reported any since the last readable()/writable() completed.
  void clear_ready(Interest interest) noexcept;

  // The count of readiness events so far. Take it before a system call and pass it to
  // clear_ready(interest, tick) after: the conditional clear is what makes clearing safe where
  // another thread runs the reactor, and after a short read (fewer bytes than asked means the
  // kernel buffer was drained, so the next read can wait without a failing system call first).
  std::uint32_t ready_tick() const noexcept { return reg_ ? reg_->tick.load(std::memory_order_acquire) : 0; }
  // Clears `interest` only if no event arrived since `tick` was taken. Never clears the closed bits.
  void clear_ready(Interest interest, std::uint32_t tick) noexcept;

 private:
  IoDriver* driver_ = nullptr;
  detail::IoRegistration* reg_ = nullptr;
  std::uint32_t seen_[2] = {0, 0};  // IoRegistration::tick when readable()/writable() last completed
};

}  // namespace deja
