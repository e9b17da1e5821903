// The production runtime on N worker threads, after Tokio's multi-thread scheduler: per-worker
// bounded run queues with a LIFO slot, a global injection queue, work stealing, and one shared
// epoll reactor + per-worker timer wheels driven by whichever worker parks first (and, on
// io_uring, a ring per worker for completion-based I/O).
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
#include "deja/current_thread_runtime.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/io.hpp"
#include "deja/random.hpp"
#include "deja/scheduler.hpp"
#include "deja/spawn.hpp"
#include "deja/task.hpp"
#include "deja/time.hpp"

namespace deja {

struct MultiThreadOptions : RuntimeOptions {
  // Worker threads; 0 means std::thread::hardware_concurrency() (at least 1).
  std::size_t workers = 0;
  // A worker takes a task from the injection queue before its own every this many tasks, so
  // that tasks spawned or woken from outside are not starved by a busy local queue (Tokio: 61).
  std::uint32_t global_queue_interval = 61;
};

// What the runtime is doing, read while it runs (every figure is a relaxed snapshot).
struct MultiThreadMetrics {
  struct Worker {
    std::uint32_t local_queue_depth = 0;  // tasks in its run queue (the LIFO slot not counted)
    std::uint64_t tasks_run = 0;          // task resumes
    std::uint64_t steals = 0;             // successful steals (operations, not tasks)
    std::uint64_t stolen_tasks = 0;       // tasks moved in by those steals
    std::uint64_t parks = 0;              // times it went to sleep
    std::uint64_t busy_ns = 0;            // time spent outside park
    std::uint64_t overflows = 0;          // times its full queue moved half to the injection queue
  };
  std::size_t workers = 0;
  std::size_t live_tasks = 0;
  std::size_t injection_queue_depth = 0;
  std::size_t timers = 0;
  std::vector<Worker> per_worker;
};

namespace detail {
struct MtWorker;
struct MtShared;
}  // namespace detail

class MultiThreadRuntime final : public Scheduler, public TimeDriver, public IoDriver, public Entropy, public BlockingExecutor {
 public:
  explicit MultiThreadRuntime(MultiThreadOptions options = {});
  // Stops the workers, then destroys every unfinished task at its suspension point.
  ~MultiThreadRuntime() override;
  MultiThreadRuntime(const MultiThreadRuntime&) = delete;
  MultiThreadRuntime& operator=(const MultiThreadRuntime&) = delete;

  // Runs `task` on the workers and blocks this thread until it finishes; returns its value (or
  // rethrows its exception). Tasks it spawned keep running. Throws UsageError from inside a
  // runtime (blocking a worker could deadlock it).
  template <class T>
  T block_on(Task<T> task) {
    if (current_runtime() != nullptr) throw UsageError("deja: block_on called from inside a runtime");
    JoinHandle<T> handle = detail::spawn_on(static_cast<Scheduler*>(this), std::move(task), false);
    wait_for(handle.cell());
    RuntimeGuard guard(&context_);  // an unobserved exception reports to this runtime
    return handle.take_finished();
  }

  // Spawns from any thread, inside the runtime or not.
  template <class T>
  JoinHandle<T> spawn(Task<T> task) {
    return detail::spawn_on(static_cast<Scheduler*>(this), std::move(task), false);
  }

  RuntimeContext* context() noexcept { return &context_; }
  // The reactor in use: options.io, unless io_uring was asked for and is unavailable (said once on
  // stderr). On io_uring, AsyncFd readiness still comes from epoll; IoUring's operations (and so
  // TCP streams' reads and writes) go to a ring per worker.
  IoBackend io_backend() const noexcept { return backend_; }
  std::size_t workers() const noexcept;
  std::size_t live_tasks() const noexcept;
  MultiThreadMetrics metrics() const;

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
  void abort_task(detail::TaskHeader* task, bool branch) noexcept;
  friend struct detail::MtWorker;
  // Blocks the calling (non-worker) thread until `task` has completed.
  void wait_for(detail::TaskHeader* task);

  MultiThreadOptions options_;
  IoBackend backend_ = IoBackend::kEpoll;
  RuntimeContext context_;
  std::unique_ptr<detail::MtShared> shared_;

  LazyBlockingPool blocking_{options_.blocking};
};

}  // namespace deja
