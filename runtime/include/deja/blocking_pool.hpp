// deja::BlockingPool: threads for work that blocks (file I/O, a blocking library call, heavy CPU),
// so that it does not stall the runtime's thread, like Tokio's blocking pool. Threads start on
// demand up to a bound, and exit after sitting idle for a while.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace deja {

struct BlockingPoolOptions {
  // Threads at most (Tokio's default is 512). Jobs beyond them wait in the queue.
  std::size_t max_threads = 512;
  // Jobs waiting for a thread at most; execute() past it throws CapacityExceeded.
  std::size_t max_queued = std::size_t{1} << 20;
  // A thread with nothing to do for this long exits.
  std::chrono::milliseconds idle_timeout{10'000};
};

class BlockingPool {
 public:
  // Throws UsageError if max_threads or max_queued is 0, or idle_timeout is negative.
  explicit BlockingPool(BlockingPoolOptions options = {});
  // Runs every job already queued, then joins the threads (as Tokio's runtime waits for its
  // blocking tasks when dropped).
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Runs `job` on a pool thread. Thread-safe. Throws CapacityExceeded when max_queued jobs are
  // waiting, and std::system_error if no thread could be started and none is running. A job must
  // not throw (spawn_blocking catches for it); if one does, std::terminate is called.
  void execute(std::function<void()> job);

  std::size_t threads() const;  // running now
  std::size_t idle_threads() const;
  std::size_t queued() const;

 private:
  friend class LazyBlockingPool;
  void worker() noexcept;
  // Runs the queued jobs (and any they queue) and joins every thread.
  void join_all() noexcept;

  BlockingPoolOptions options_;
  mutable std::mutex lock_;
  std::condition_variable work_ready_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;  // joined by the destructor; exited ones are reaped on start
  std::vector<std::thread::id> exited_;
  std::size_t running_ = 0;
  std::size_t idle_ = 0;
  bool shutting_down_ = false;
};

// The pool a production runtime holds: started by the first job, so a program that never calls
// spawn_blocking starts no thread.
class LazyBlockingPool {
 public:
  explicit LazyBlockingPool(BlockingPoolOptions options) noexcept : options_(options) {}
  // As BlockingPool::execute, starting the pool first if need be. Thread-safe.
  void execute(std::function<void()> job);
  // Runs the queued jobs and joins the threads, if the pool was started; the destructor does too.
  void shutdown() noexcept;

 private:
  BlockingPoolOptions options_;
  std::mutex lock_;
  std::unique_ptr<BlockingPool> pool_;
};

}  // namespace deja
