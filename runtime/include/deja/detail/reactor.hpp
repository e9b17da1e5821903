// The reactor under the current-thread runtime: what waits for the kernel. Two implement it, epoll
// (readiness) and io_uring (readiness for AsyncFd, plus completions for IoUring's operations), so
// the runtime's loop, timers and remote wake-ups are written once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "deja/io.hpp"

namespace deja {
class IoUring;
}

namespace deja::detail {

class Reactor {
 public:
  virtual ~Reactor() = default;
  // As IoDriver::register_fd / deregister (the runtime enforces the registration limit).
  virtual IoRegistration* register_fd(int fd) = 0;
  virtual void deregister(IoRegistration* reg) noexcept = 0;
  // Hands what the kernel has to the kernel and reports what it gives back: readiness to
  // registrations, completions to operations. Waits up to `timeout_ms` (-1: until something
  // happens) when nothing is there yet. Returns true if notify() was called since the last poll.
  // Throws UsageError where the reactor cannot be driven from this thread (io_uring's single issuer).
  virtual bool poll(int timeout_ms) = 0;
  // From any thread: makes a blocked poll return, and the next one if none is blocked.
  virtual void notify() noexcept = 0;
  // Whether poll(0) could report anything: registrations, or operations in flight or queued.
  virtual bool has_io() const noexcept = 0;
  // The completion interface of an io_uring reactor; null for epoll.
  virtual IoUring* uring() noexcept { return nullptr; }
};

// Throws std::system_error if the kernel refuses an epoll instance or an eventfd.
std::unique_ptr<Reactor> make_epoll_reactor(std::uint32_t max_events);

// An io_uring reactor with `entries` submission slots, or null where io_uring cannot be used (no
// kernel support, disabled by sysctl, refused by seccomp, an operation missing), with the reason
// in `why_not`.
std::unique_ptr<Reactor> make_uring_reactor(std::uint32_t entries, std::string& why_not);

// The multi-thread runtime's io_uring: one ring per worker, so that submitting takes no lock
// another worker wants. An operation goes to the ring of the worker whose task awaits it; any
// thread may cancel it or reap its completion. Each ring's descriptor is readable while
// completions wait, so the runtime's epoll watches them and its driver collects what sleeping
// workers' rings received.
class WorkerRings {
 public:
  virtual ~WorkerRings() = default;
  // What RuntimeContext::uring points to.
  virtual IoUring* uring() noexcept = 0;
  virtual int ring_fd(std::uint32_t worker) const noexcept = 0;
  // Hands `worker`'s queued submissions to the kernel and collects its completions (its own worker).
  virtual void flush(std::uint32_t worker) noexcept = 0;
  // Collects `worker`'s completions unless another thread is doing it (any thread).
  virtual void reap(std::uint32_t worker) noexcept = 0;
};

// Rings for `workers` workers, `entries` slots each; `current_worker(context)` tells which worker
// the calling thread is (any value >= workers: none). Null where io_uring cannot be used, with why.
std::unique_ptr<WorkerRings> make_worker_rings(std::uint32_t workers, std::uint32_t entries,
                                               std::uint32_t (*current_worker)(const void*) noexcept, const void* context,
                                               std::string& why_not);

// Says on stderr, once per process, that io_uring was asked for and epoll is used instead, and why.
void report_uring_fallback(const std::string& why_not) noexcept;

}  // namespace deja::detail
