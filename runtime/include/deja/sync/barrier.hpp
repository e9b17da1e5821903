// deja::Barrier: n tasks wait until all n have arrived; one of each generation is the leader.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"

namespace deja {

class BarrierWaitResult {
 public:
  explicit BarrierWaitResult(bool leader) noexcept : leader_(leader) {}
  // Exactly one task of each generation is the leader (the last to arrive).
  bool is_leader() const noexcept { return leader_; }

 private:
  bool leader_;
};

class Barrier {
 public:
  // n == 0 throws UsageError.
  explicit Barrier(std::size_t n) : n_(n) {
    if (n == 0) throw UsageError("deja::Barrier needs at least one task");
  }
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  ~Barrier() { assert(waiters_.empty() && "deja::Barrier destroyed while awaited"); }

  class WaitAwaiter {
   public:
    explicit WaitAwaiter(Barrier& b) noexcept : barrier_(b) {}
    WaitAwaiter(const WaitAwaiter&) = delete;
    WaitAwaiter& operator=(const WaitAwaiter&) = delete;
    ~WaitAwaiter() {
      if (!parked_) return;
      std::lock_guard lock(barrier_.lock_);
      if (waiter_.linked) {
        // A task destroyed while waiting no longer counts as arrived.
        barrier_.waiters_.remove(waiter_);
        --barrier_.arrived_;
      }
    }
    bool await_ready() noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      waiter_.task = detail::park_current(h, "Barrier::wait");
      std::unique_lock lock(barrier_.lock_);
      if (++barrier_.arrived_ < barrier_.n_) {
        barrier_.waiters_.push_back(waiter_);
        parked_ = true;
        return true;
      }
      barrier_.arrived_ = 0;
      ++barrier_.generation_;
      std::vector<detail::TaskHeader*> wake;
      while (auto* w = static_cast<detail::GrantWaiter*>(barrier_.waiters_.pop_front())) {
        w->granted = true;
        wake.push_back(w->task);
      }
      lock.unlock();
      for (auto* t : wake) detail::wake(t);
      leader_ = true;
      return false;
    }
    BarrierWaitResult await_resume() noexcept {
      parked_ = false;
      return BarrierWaitResult(leader_);
    }

   private:
    Barrier& barrier_;
    detail::GrantWaiter waiter_;
    bool parked_ = false;
    bool leader_ = false;
  };

  // Waits until n tasks (this one included) have called wait() in this generation.
  WaitAwaiter wait() noexcept { return WaitAwaiter{*this}; }

  std::uint64_t generation() const noexcept {
    std::lock_guard lock(lock_);
    return generation_;
  }

 private:
  mutable std::mutex lock_;
  std::size_t n_;
  std::size_t arrived_ = 0;
  std::uint64_t generation_ = 0;
  detail::WaitList waiters_;
};

}  // namespace deja
