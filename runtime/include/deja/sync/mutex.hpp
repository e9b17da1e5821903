// deja::Mutex: an async, FIFO-fair mutual exclusion lock. unlock hands the lock straight to the
// oldest waiter, so a newcomer can never barge ahead of tasks already waiting.
#pragma once

#include <cassert>
#include <coroutine>
#include <mutex>
#include <optional>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"

namespace deja {

class Mutex;

// Holds the lock until destroyed or unlock()ed. Must not outlive its Mutex.
class [[nodiscard]] MutexGuard {
 public:
  MutexGuard(MutexGuard&& other) noexcept : mutex_(std::exchange(other.mutex_, nullptr)) {}
  MutexGuard& operator=(MutexGuard&& other) noexcept {
    if (this != &other) {
      unlock();
      mutex_ = std::exchange(other.mutex_, nullptr);
    }
    return *this;
  }
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;
  ~MutexGuard() { unlock(); }

  inline void unlock() noexcept;
  bool owns_lock() const noexcept { return mutex_ != nullptr; }

 private:
  friend class Mutex;
  explicit MutexGuard(Mutex* m) noexcept : mutex_(m) {}
  Mutex* mutex_;
};

class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  ~Mutex() { assert(!locked_ && waiters_.empty() && "deja::Mutex destroyed while locked or awaited"); }

  class LockAwaiter {
   public:
    explicit LockAwaiter(Mutex& m) noexcept : mutex_(m) {}
    LockAwaiter(const LockAwaiter&) = delete;
    LockAwaiter& operator=(const LockAwaiter&) = delete;
    ~LockAwaiter() {
      if (!parked_) return;  // never waited: nobody else knows this awaiter
      std::unique_lock lock(mutex_.lock_);
      if (waiter_.linked) {
        mutex_.waiters_.remove(waiter_);
      } else if (waiter_.granted) {
        // Woken with the lock but destroyed before it ran: pass the lock on.
        detail::TaskHeader* next = mutex_.release_locked();
        lock.unlock();
        if (next) detail::wake(next);
      }
    }
    bool await_ready() noexcept {
      std::lock_guard lock(mutex_.lock_);
      if (mutex_.locked_) return false;
      mutex_.locked_ = true;
      return true;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "Mutex::lock");
      std::lock_guard lock(mutex_.lock_);
      if (!mutex_.locked_) {
        mutex_.locked_ = true;
        return false;
      }
      mutex_.waiters_.push_back(waiter_);
      parked_ = true;
      return true;
    }
    MutexGuard await_resume() noexcept {
      // Resumed only once granted (the grant happened before the wake): the lock is ours.
      parked_ = false;
      waiter_.granted = false;
      return MutexGuard(&mutex_);
    }

   private:
    Mutex& mutex_;
    detail::GrantWaiter waiter_;
    bool parked_ = false;
  };

  // Completes once this task holds the lock (FIFO among waiters).
  LockAwaiter lock() noexcept { return LockAwaiter{*this}; }

  std::optional<MutexGuard> try_lock() noexcept {
    std::lock_guard lock(lock_);
    if (locked_) return std::nullopt;
    locked_ = true;
    return MutexGuard(this);
  }

  bool is_locked() const noexcept {
    std::lock_guard lock(lock_);
    return locked_;
  }

 private:
  friend class MutexGuard;

  // With lock_ held: hands the lock to the oldest waiter, whose task is returned to be woken
  // after lock_ is released, or marks the mutex free.
  detail::TaskHeader* release_locked() noexcept {
    auto* next = static_cast<detail::GrantWaiter*>(waiters_.pop_front());
    if (next == nullptr) {
      locked_ = false;
      return nullptr;
    }
    next->granted = true;
    return next->task;
  }

  void unlock() noexcept {
    std::unique_lock lock(lock_);
    detail::TaskHeader* next = release_locked();
    lock.unlock();
    if (next) detail::wake(next);
  }

  mutable std::mutex lock_;
  bool locked_ = false;
  detail::WaitList waiters_;
};

inline void MutexGuard::unlock() noexcept {
  if (mutex_) std::exchange(mutex_, nullptr)->unlock();
}

}  // namespace deja
