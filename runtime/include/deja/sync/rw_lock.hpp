// deja::RwLock: an async reader-writer lock, fair (FIFO): a waiting writer holds back readers that
// arrive after it, so writers do not starve; readers at the head are admitted together.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"

namespace deja {

class RwLock;

// A shared (read) or exclusive (write) hold on an RwLock; released on destruction. Must not
// outlive its RwLock.
class [[nodiscard]] RwLockGuard {
 public:
  RwLockGuard(RwLockGuard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)), exclusive_(o.exclusive_) {}
  RwLockGuard& operator=(RwLockGuard&& o) noexcept {
    if (this != &o) {
      unlock();
      lock_ = std::exchange(o.lock_, nullptr);
      exclusive_ = o.exclusive_;
    }
    return *this;
  }
  RwLockGuard(const RwLockGuard&) = delete;
  RwLockGuard& operator=(const RwLockGuard&) = delete;
  ~RwLockGuard() { unlock(); }

  bool exclusive() const noexcept { return exclusive_; }
  inline void unlock() noexcept;

 private:
  friend class RwLock;
  RwLockGuard(RwLock* l, bool exclusive) noexcept : lock_(l), exclusive_(exclusive) {}
  RwLock* lock_;
  bool exclusive_;
};

using ReadGuard = RwLockGuard;
using WriteGuard = RwLockGuard;

class RwLock {
 public:
  RwLock() = default;
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;
  ~RwLock() { assert(readers_ == 0 && !writer_ && waiters_.empty() && "deja::RwLock destroyed while held or awaited"); }

  class Awaiter {
   public:
    Awaiter(RwLock& l, bool exclusive) noexcept : rw_(l) { waiter_.exclusive = exclusive; }
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (!parked_) return;
      std::unique_lock lock(rw_.lock_);
      std::vector<detail::TaskHeader*> wake;
      if (waiter_.linked) {
        rw_.waiters_.remove(waiter_);
        wake = rw_.grant_locked();  // a writer leaving the head may admit readers behind it
      } else if (waiter_.granted) {
        wake = rw_.release_locked(waiter_.exclusive);
      }
      lock.unlock();
      for (auto* t : wake) detail::wake(t);
    }
    bool await_ready() noexcept {
      std::lock_guard lock(rw_.lock_);
      return rw_.try_take_locked(waiter_.exclusive);
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, waiter_.exclusive ? "RwLock::write" : "RwLock::read");
      std::lock_guard lock(rw_.lock_);
      if (rw_.try_take_locked(waiter_.exclusive)) return false;
      rw_.waiters_.push_back(waiter_);
      parked_ = true;
      return true;
    }
    RwLockGuard await_resume() noexcept {
      parked_ = false;
      waiter_.granted = false;
      return RwLockGuard(&rw_, waiter_.exclusive);
    }

   private:
    RwLock& rw_;
    detail::GrantWaiter waiter_;
    bool parked_ = false;
  };

  Awaiter read() noexcept { return Awaiter{*this, false}; }
  Awaiter write() noexcept { return Awaiter{*this, true}; }

  std::optional<RwLockGuard> try_read() noexcept { return try_take(false); }
  std::optional<RwLockGuard> try_write() noexcept { return try_take(true); }

 private:
  friend class RwLockGuard;

  std::optional<RwLockGuard> try_take(bool exclusive) noexcept {
    std::lock_guard lock(lock_);
    if (!try_take_locked(exclusive)) return std::nullopt;
    return RwLockGuard(this, exclusive);
  }

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

  std::vector<detail::TaskHeader*> grant_locked() {
    std::vector<detail::TaskHeader*> wake;
    while (auto* head = static_cast<detail::GrantWaiter*>(waiters_.front())) {
      if (writer_) break;
      if (head->exclusive) {
        if (readers_ != 0) break;
        writer_ = true;
      } else {
        ++readers_;
      }
      waiters_.remove(*head);
      head->granted = true;
      wake.push_back(head->task);
      if (head->exclusive) break;
    }
    return wake;
  }

  std::vector<detail::TaskHeader*> release_locked(bool exclusive) {
    if (exclusive) writer_ = false;
    else --readers_;
    return grant_locked();
  }

  void release(bool exclusive) noexcept {
    std::unique_lock lock(lock_);
    auto wake = release_locked(exclusive);
    lock.unlock();
    for (auto* t : wake) detail::wake(t);
  }

  std::mutex lock_;
  std::size_t readers_ = 0;
  bool writer_ = false;
  detail::WaitList waiters_;
};

inline void RwLockGuard::unlock() noexcept {
  if (lock_) std::exchange(lock_, nullptr)->release(exclusive_);
}

}  // namespace deja
