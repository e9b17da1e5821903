// The production runtime on one thread: a ready queue, a reactor (epoll, or io_uring when asked
// for) woken by an eventfd so that other threads can wake tasks and spawn, a hierarchical timer
// wheel and OS-seeded entropy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "deja/blocking.hpp"
#include "deja/blocking_pool.hpp"
#include "deja/context.hpp"
#include "deja/detail/local_tasks.hpp"
#include "deja/detail/reactor.hpp"
#include "deja/detail/ready_queue.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/detail/timer_wheel.hpp"
#include "deja/io.hpp"
#include "deja/random.hpp"
#include "deja/scheduler.hpp"
#include "deja/spawn.hpp"
#include "deja/task.hpp"
#include "deja/time.hpp"

namespace deja {

// The kernel interface a production runtime waits on.
enum class IoBackend : std::uint8_t {
  kEpoll,
  // io_uring: TCP streams' reads and writes as completions submitted in batches (IoUring,
  // io_uring.hpp). On the current-thread runtime AsyncFd readiness comes through multishot polls
  // on the same ring, and the runtime must be run (block_on) and destroyed on one thread. The
  // multi-thread runtime has a ring per worker for operations and keeps AsyncFd on its epoll.
  // Where the kernel cannot give it (too old, kernel.io_uring_disabled, seccomp), the runtime
  // uses epoll and says so once per process on stderr; io_backend() tells which it got.
  kUring,
};

struct RuntimeOptions {
  // Live tasks at most; spawn past it throws CapacityExceeded. (The multi-thread runtime's
  // workers reserve admissions in batches, so it may refuse up to 64 per worker early.)
  std::size_t max_tasks = std::size_t{1} << 24;
  // Registered file descriptors at most; AsyncFd past it throws CapacityExceeded.
  std::size_t max_io_registrations = std::size_t{1} << 20;
  // Tasks run between two looks at I/O and timers while tasks are ready (Tokio uses 61).
  std::uint32_t event_interval = 61;
  // Events taken from epoll per wait.
  std::uint32_t max_events = 1024;
  // The reactor: epoll, or io_uring with `uring_entries` submission slots (a power of two, at most
  // 32768; the kernel rounds up).
  IoBackend io = IoBackend::kEpoll;
  std::uint32_t uring_entries = 1024;
  // The pool that spawn_blocking uses, started on first use.
  BlockingPoolOptions blocking;
};

class CurrentThreadRuntime final : public Scheduler, public TimeDriver, public IoDriver, public Entropy, public BlockingExecutor {
 public:
  explicit CurrentThreadRuntime(RuntimeOptions options = {});
  ~CurrentThreadRuntime() override;
  CurrentThreadRuntime(const CurrentThreadRuntime&) = delete;
  CurrentThreadRuntime& operator=(const CurrentThreadRuntime&) = delete;

  // Runs `task` to completion on this thread, together with everything it spawns, and returns its
  // value (or rethrows its exception). Tasks still running when it returns stay in the runtime
  // and run again in the next block_on; destroying the runtime destroys them. Throws UsageError if
  // called from inside a runtime.
  template <class T>
  T block_on(Task<T> task) {
    if (current_runtime() != nullptr) throw UsageError("deja: block_on called from inside a runtime");
    RuntimeGuard guard(&context_);
    JoinHandle<T> handle = detail::spawn_on(static_cast<Scheduler*>(this), std::move(task), false);
    run_until(handle.cell());
    return handle.take_finished();
  }

  // Spawns from any thread (from outside the runtime too). The task runs in the next block_on.
  template <class T>
  JoinHandle<T> spawn(Task<T> task) {
    return detail::spawn_on(static_cast<Scheduler*>(this), std::move(task), false);
  }

  RuntimeContext* context() noexcept { return &context_; }
  // The reactor in use: options.io, unless io_uring was asked for and is unavailable.
  IoBackend io_backend() const noexcept { return backend_; }
  std::size_t live_tasks() const noexcept { return tasks_.size(); }

  // Scheduler
  void spawn(detail::TaskHeader* task) override;
  void spawn_inline(detail::TaskHeader* task) override;
  void wake(detail::TaskHeader* task) noexcept override;
  void yield_current(detail::TaskHeader* task) noexcept override;
  void abort_branch(detail::TaskHeader* task) noexcept override;
  void abort(detail::TaskHeader* task) noexcept override;
  void abort_now(detail::TaskHeader* task) noexcept override;
  // TimeDriver
  Instant now() noexcept override;
  void add_timer(detail::TimerNode& node) override;
  void cancel_timer(detail::TimerNode& node) noexcept override;
  bool add_timer_unless_due(detail::TimerNode& node, Duration lead) override;
  // IoDriver
  detail::IoRegistration* register_fd(int fd) override;
  void deregister(detail::IoRegistration* reg) noexcept override;
  // Entropy
  std::uint64_t next_u64() noexcept override;
  // BlockingExecutor
  void execute(std::function<void()> job) override;

 private:
  bool on_owner_thread() const noexcept { return detail::tls_runtime == &context_; }
  void make_ready(detail::TaskHeader* task);
  void run_until(detail::TaskHeader* root);
  // Polls the reactor (blocking up to `timeout_ms`, -1 forever) and fires due timers.
  void turn(int timeout_ms);
  void fire_timers();
  void drain_remote();
  void signal_remote() noexcept;
  void shutdown() noexcept;
  // Empties the ready queue at shutdown, releasing what branches destroyed in it still hold.
  void drop_ready_queue() noexcept;
  std::uint64_t now_tick() noexcept;

  RuntimeOptions options_;
  RuntimeContext context_;
  detail::ReadyQueue ready_;
  detail::LocalTasks tasks_;

  // Time: the wheel counts milliseconds since epoch_.
  std::chrono::steady_clock::time_point epoch_;
  detail::TimerWheel wheel_;
  std::size_t timers_ = 0;

  // Reactor.
  std::unique_ptr<detail::Reactor> reactor_;
  IoBackend backend_ = IoBackend::kEpoll;
  std::size_t io_registrations_ = 0;

  // Wakes, aborts and spawns from other threads land here and are applied by the owner thread.
  struct RemoteOp {
    detail::TaskHeader* task;
    enum Kind : std::uint8_t { kWake, kAbort, kSpawn } kind;
  };
  std::mutex remote_lock_;
  std::vector<RemoteOp> remote_;
  std::atomic<bool> remote_pending_{false};

  // xoshiro256** seeded from the OS.
  std::uint64_t rng_[4];

  // Started by the first spawn_blocking. Declared last, so it is joined first when the runtime is
  // destroyed (after shutdown() has destroyed the tasks, whose receivers then drop the results).
  LazyBlockingPool blocking_{options_.blocking};
};

// Runs `task` on a fresh current-thread runtime and returns its result: the usual entry point.
template <class T>
T block_on(Task<T> task) {
  CurrentThreadRuntime rt;
  return rt.block_on(std::move(task));
}

}  // namespace deja
