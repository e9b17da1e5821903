// deja::Mutex: an async, FIFO-fair mutual exclusion lock, like tokio::sync::Mutex without the data.
//
//   deja::Mutex m;
//   {
//     deja::MutexGuard g = co_await m.lock();   // FIFO among waiters
//     ...                                       // g.unlock() releases early
//   }
//   if (auto g = m.try_lock()) { ... }          // std::optional<MutexGuard>
//
// Unlocking hands the lock straight to the oldest waiter (it is granted before it is woken), so a
// newcomer, try_lock included, can never barge ahead of tasks already waiting.
//
// Cancellation: destroying a task suspended in lock() (abort, a lost race, a timeout) unlinks it;
// if the lock had already been handed to it but it never ran, the lock passes to the next waiter.
// A task holding a guard releases the lock when it is destroyed (RAII).
//
// Lifetime: a Mutex must outlive its guards and the awaitables made from it (asserted in debug
// builds: destroying a Mutex that is locked or awaited fails an assert). Thread-safe.
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

// Holds a Mutex until destroyed or unlock()ed. Movable. Must not outlive its Mutex.
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

  // Releases the lock now (handing it to the oldest waiter). Idempotent.
  inline void unlock() noexcept;
  // False after unlock() or a move.
  bool owns_lock() const noexcept { return mutex_ != nullptr; }
  explicit operator bool() const noexcept { return owns_lock(); }

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

  // Awaitable of lock(). Movable until awaited (the combinators take awaitables by value).
  class [[nodiscard]] LockAwaiter {
   public:
    explicit LockAwaiter(Mutex& m) noexcept : mutex_(&m) {}
    LockAwaiter(LockAwaiter&& other) noexcept : mutex_(other.mutex_) { assert(!other.parked_); }
    LockAwaiter(const LockAwaiter&) = delete;
    LockAwaiter& operator=(const LockAwaiter&) = delete;
    LockAwaiter& operator=(LockAwaiter&&) = delete;

    ~LockAwaiter() {
      if (!parked_) return;  // never suspended, or resumed with the lock: nobody else knows us
      std::lock_guard lock(mutex_->lock_);
      if (waiter_.linked) {
        mutex_->waiters_.remove(waiter_);  // still waiting: just leave the queue
      } else if (waiter_.granted) {
        mutex_->release_locked();  // handed the lock, destroyed before it ran: pass it on
      }
    }

    bool await_ready() noexcept {
      std::lock_guard lock(mutex_->lock_);
      return mutex_->try_take_locked();
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "Mutex::lock");
      std::lock_guard lock(mutex_->lock_);
      if (mutex_->try_take_locked()) return false;
      mutex_->waiters_.push_back(waiter_);
      parked_ = true;
      return true;
    }
    MutexGuard await_resume() noexcept {
      // Resumed only once granted (the grant happens before the wake): the lock is ours.
      assert(!parked_ || waiter_.granted);
      parked_ = false;
      return MutexGuard(mutex_);
    }

   private:
    Mutex* mutex_;
    detail::GrantWaiter waiter_;
    bool parked_ = false;  // linked into the queue at some point and not resumed yet
  };

  // Completes once this task holds the lock; waiters are served in FIFO order.
  LockAwaiter lock() noexcept { return LockAwaiter{*this}; }

  // The lock if it is free and nobody waits for it, else nullopt.
  std::optional<MutexGuard> try_lock() noexcept {
    std::lock_guard lock(lock_);
    if (!try_take_locked()) return std::nullopt;
    return MutexGuard(this);
  }

  // A snapshot: held by a guard (or handed to a waiter that has not run yet).
  bool is_locked() const noexcept {
    std::lock_guard lock(lock_);
    return locked_;
  }

 private:
  friend class MutexGuard;

  // With lock_ held. The mutex stays locked while it is handed from waiter to waiter, so a free
  // mutex has no waiters and this cannot barge.
  bool try_take_locked() noexcept {
    if (locked_) return false;
    locked_ = true;
    return true;
  }

  // With lock_ held: grants the lock to the oldest waiter and wakes it, or marks the mutex free.
  // The wake happens under lock_ so that the waiter's task cannot be destroyed meanwhile.
  void release_locked() noexcept {
    auto* next = static_cast<detail::GrantWaiter*>(waiters_.pop_front());
    if (next == nullptr) {
      locked_ = false;
      return;
    }
    next->granted = true;
    next->notify();  // the last access to that awaiter
  }

  void unlock() noexcept {
    std::lock_guard lock(lock_);
    assert(locked_);
    release_locked();
  }

  mutable std::mutex lock_;
  bool locked_ = false;
  detail::WaitList waiters_;
};

inline void MutexGuard::unlock() noexcept {
  if (mutex_) std::exchange(mutex_, nullptr)->unlock();
}

}  // namespace deja
