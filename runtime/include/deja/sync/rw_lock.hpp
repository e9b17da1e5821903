// deja::RwLock: an async reader-writer lock, fair (FIFO) like tokio::sync::RwLock: a waiting writer
// holds back readers that arrive after it, so writers do not starve.
//
//   deja::RwLock l;
//   { deja::ReadGuard r = co_await l.read(); ... }    // shared with other readers
//   { deja::WriteGuard w = co_await l.write(); ... }  // exclusive
//   if (auto r = l.try_read()) { ... }                // std::optional<ReadGuard>
//
// Requests are served in arrival order. When the lock is released the queue is granted from its
// head: a writer alone, or every reader up to the next writer, together. A request that finds
// anyone waiting queues behind them (try_read/try_write fail then).
//
// Cancellation: destroying a task suspended in read()/write() unlinks it (a writer leaving the head
// of the queue lets the readers behind it in); if the lock had been granted to it but it never ran,
// that hold is released and passed on. A task holding a guard releases it when destroyed (RAII).
//
// Lifetime: an RwLock must outlive its guards and the awaitables made from it (asserted in debug
// builds: destroying an RwLock that is held or awaited fails an assert). Thread-safe.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"

namespace deja {

class RwLock;

// A shared (Exclusive = false: ReadGuard) or exclusive (WriteGuard) hold on an RwLock, released on
// destruction or unlock(). Movable. Must not outlive its RwLock.
template <bool Exclusive>
class [[nodiscard]] RwLockGuard {
 public:
  RwLockGuard(RwLockGuard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)) {}
  RwLockGuard& operator=(RwLockGuard&& o) noexcept {
    if (this != &o) {
      unlock();
      lock_ = std::exchange(o.lock_, nullptr);
    }
    return *this;
  }
  RwLockGuard(const RwLockGuard&) = delete;
  RwLockGuard& operator=(const RwLockGuard&) = delete;
  ~RwLockGuard() { unlock(); }

  // Releases the hold now. Idempotent.
  inline void unlock() noexcept;
  // False after unlock() or a move.
  bool owns_lock() const noexcept { return lock_ != nullptr; }
  explicit operator bool() const noexcept { return owns_lock(); }

 private:
  friend class RwLock;
  explicit RwLockGuard(RwLock* l) noexcept : lock_(l) {}
  RwLock* lock_;
};

using ReadGuard = RwLockGuard<false>;
using WriteGuard = RwLockGuard<true>;

class RwLock {
 public:
  RwLock() = default;
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;
  ~RwLock() { assert(readers_ == 0 && !writer_ && waiters_.empty() && "deja::RwLock destroyed while held or awaited"); }

  // Awaitable of read() and write(). Movable until awaited (the combinators take awaitables by
  // value).
  template <bool Exclusive>
  class [[nodiscard]] Awaiter {
   public:
    explicit Awaiter(RwLock& l) noexcept : rw_(&l) { waiter_.exclusive = Exclusive; }
    Awaiter(Awaiter&& other) noexcept : rw_(other.rw_) {
      assert(!other.parked_);
      waiter_.exclusive = Exclusive;
    }
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    Awaiter& operator=(Awaiter&&) = delete;

    ~Awaiter() {
      if (!parked_) return;
      std::lock_guard lock(rw_->lock_);
      if (waiter_.linked) {
        rw_->waiters_.remove(waiter_);
        rw_->grant_locked();  // a writer leaving the head may let readers behind it in
      } else if (waiter_.granted) {
        rw_->release_locked(Exclusive);  // granted, destroyed before it ran: pass the hold on
      }
    }

    bool await_ready() noexcept {
      std::lock_guard lock(rw_->lock_);
      return rw_->try_take_locked(Exclusive);
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, Exclusive ? "RwLock::write" : "RwLock::read");
      std::lock_guard lock(rw_->lock_);
      if (rw_->try_take_locked(Exclusive)) return false;
      rw_->waiters_.push_back(waiter_);
      parked_ = true;
      return true;
    }
    RwLockGuard<Exclusive> await_resume() noexcept {
      // Resumed only once granted: the hold is already counted.
      assert(!parked_ || waiter_.granted);
      parked_ = false;
      return RwLockGuard<Exclusive>(rw_);
    }

   private:
    RwLock* rw_;
    detail::GrantWaiter waiter_;
    bool parked_ = false;
  };

  // Completes with shared access, once no writer holds the lock or is queued ahead of this task.
  Awaiter<false> read() noexcept { return Awaiter<false>{*this}; }
  // Completes with exclusive access, once every earlier request has been served and released.
  Awaiter<true> write() noexcept { return Awaiter<true>{*this}; }

  // Shared access if no writer holds the lock and nobody waits, else nullopt.
  std::optional<ReadGuard> try_read() noexcept {
    std::lock_guard lock(lock_);
    if (!try_take_locked(false)) return std::nullopt;
    return ReadGuard(this);
  }
  // Exclusive access if the lock is free and nobody waits, else nullopt.
  std::optional<WriteGuard> try_write() noexcept {
    std::lock_guard lock(lock_);
    if (!try_take_locked(true)) return std::nullopt;
    return WriteGuard(this);
  }

 private:
  template <bool>
  friend class RwLockGuard;

  // With lock_ held. Anyone waiting means the lock is not free for a newcomer (FIFO).
  bool try_take_locked(bool exclusive) noexcept {
    if (!waiters_.empty() || writer_) return false;
    if (exclusive) {
      if (readers_ != 0) return false;
      writer_ = true;
    } else {
      ++readers_;
    }
    return true;
  }

  // With lock_ held: grants the lock to the head of the queue (a writer alone, or the run of
  // readers before the next writer) and wakes them. Wakes under lock_, so that a woken task cannot
  // be destroyed before the wake is done.
  void grant_locked() noexcept {
    while (auto* head = static_cast<detail::GrantWaiter*>(waiters_.front())) {
      if (writer_) return;
      if (head->exclusive) {
        if (readers_ != 0) return;
        writer_ = true;
      } else {
        ++readers_;
      }
      waiters_.remove(*head);
      head->granted = true;
      const bool exclusive = head->exclusive;
      head->notify();  // the last access to that awaiter
      if (exclusive) return;
    }
  }

  void release_locked(bool exclusive) noexcept {
    if (exclusive) {
      assert(writer_);
      writer_ = false;
    } else {
      assert(readers_ != 0);
      --readers_;
    }
    grant_locked();
  }

  void release(bool exclusive) noexcept {
    std::lock_guard lock(lock_);
    release_locked(exclusive);
  }

  mutable std::mutex lock_;
  std::size_t readers_ = 0;  // shared holds, granted waiters included
  bool writer_ = false;      // an exclusive hold, granted waiter included
  detail::WaitList waiters_;
};

template <bool Exclusive>
inline void RwLockGuard<Exclusive>::unlock() noexcept {
  if (lock_) std::exchange(lock_, nullptr)->release(Exclusive);
}

}  // namespace deja
