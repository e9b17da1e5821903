#include "deja/blocking_pool.hpp"

#include <algorithm>
#include <system_error>

#include "deja/errors.hpp"

namespace deja {

BlockingPool::BlockingPool(BlockingPoolOptions options) : options_(options) {
  if (options_.max_threads == 0) throw UsageError("deja::BlockingPool: max_threads must be at least 1");
  if (options_.max_queued == 0) throw UsageError("deja::BlockingPool: max_queued must be at least 1");
  if (options_.idle_timeout.count() < 0) throw UsageError("deja::BlockingPool: idle_timeout must not be negative");
}

BlockingPool::~BlockingPool() { join_all(); }

void BlockingPool::join_all() noexcept {
  // A job running meanwhile may queue another, and execute may start a thread for it: joined in a
  // later round (it runs the queue, then sees shutting_down_ and exits).
  for (;;) {
    std::vector<std::thread> threads;
    {
      std::lock_guard guard(lock_);
      shutting_down_ = true;
      threads.swap(threads_);
    }
    if (threads.empty()) break;
    work_ready_.notify_all();
    for (std::thread& t : threads) t.join();
  }
}

void BlockingPool::execute(std::function<void()> job) {
  std::thread reaped;  // an exited thread's handle, joined outside the lock
  {
    std::unique_lock guard(lock_);
    if (queue_.size() >= options_.max_queued) {
      throw CapacityExceeded("deja::BlockingPool: " + std::to_string(options_.max_queued) + " jobs are already queued");
    }
    queue_.push_back(std::move(job));
    if (idle_ > queue_.size() - 1) {
      // An idle thread takes it.
    } else if (running_ < options_.max_threads) {
      // Reap one thread that has exited, so threads_ stays bounded by max_threads.
      if (!exited_.empty()) {
        const auto id = exited_.back();
        exited_.pop_back();
        const auto it = std::find_if(threads_.begin(), threads_.end(), [&](const std::thread& t) { return t.get_id() == id; });
        if (it != threads_.end()) {
          reaped = std::move(*it);
          threads_.erase(it);
        }
      }
      try {
        threads_.emplace_back([this] { worker(); });
        ++running_;
      } catch (...) {
        // No thread: the job waits for a running one, unless there is none at all.
        if (running_ == 0) {
          queue_.pop_back();
          throw;
        }
      }
    }
  }
  work_ready_.notify_one();
  if (reaped.joinable()) reaped.join();
}

void BlockingPool::worker() noexcept {
  std::unique_lock guard(lock_);
  for (;;) {
    if (!queue_.empty()) {
      std::function<void()> job = std::move(queue_.front());
      queue_.pop_front();
      guard.unlock();
      job();  // noexcept context: a throwing job terminates, as documented
      job = nullptr;  // destroy captures outside the lock
      guard.lock();
      continue;
    }
    if (shutting_down_) break;
    ++idle_;
    const bool woke = work_ready_.wait_for(guard, options_.idle_timeout, [&] { return !queue_.empty() || shutting_down_; });
    --idle_;
    if (!woke) break;  // idle too long
  }
  --running_;
  if (!shutting_down_) exited_.push_back(std::this_thread::get_id());
}

std::size_t BlockingPool::threads() const {
  std::lock_guard guard(lock_);
  return running_;
}

std::size_t BlockingPool::idle_threads() const {
  std::lock_guard guard(lock_);
  return idle_;
}

std::size_t BlockingPool::queued() const {
  std::lock_guard guard(lock_);
  return queue_.size();
}

void LazyBlockingPool::execute(std::function<void()> job) {
  BlockingPool* pool = nullptr;
  {
    std::lock_guard guard(lock_);
    if (!pool_) pool_ = std::make_unique<BlockingPool>(options_);
    pool = pool_.get();
  }
  pool->execute(std::move(job));
}

void LazyBlockingPool::shutdown() noexcept {
  // Joined unlocked: a running job may queue another through execute, which takes the lock.
  BlockingPool* pool = nullptr;
  {
    std::lock_guard guard(lock_);
    pool = pool_.get();
  }
  if (pool == nullptr) return;
  pool->join_all();
  std::lock_guard guard(lock_);
  pool_.reset();  // no thread is left
}

}  // namespace deja
