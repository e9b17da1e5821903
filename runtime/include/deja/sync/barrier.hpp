// deja::Barrier: n tasks wait until all n have arrived, then all go on; reusable, one generation
// after another, like tokio::sync::Barrier.
//
//   deja::Barrier b(3);
//   deja::BarrierWaitResult r = co_await b.wait();  // the 3rd arrival releases all three
//   if (r.is_leader()) { ... }                      // exactly one per generation: the last arrival
//
// Cancellation: a task destroyed while waiting at the barrier (abort, a lost race, a timeout) no
// longer counts as arrived, so the generation still needs n live arrivals. A task destroyed after
// its generation was released but before it ran changes nothing: the generation is complete.
//
// Lifetime: a Barrier must outlive the awaitables made from it (asserted in debug builds).
// Thread-safe.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"

namespace deja {

class BarrierWaitResult {
 public:
  explicit BarrierWaitResult(bool leader) noexcept : leader_(leader) {}
  // Exactly one task of each generation is the leader: the last to arrive.
  bool is_leader() const noexcept { return leader_; }

 private:
  bool leader_;
};

class Barrier {
 public:
  // The barrier releases every n arrivals. n == 0 throws UsageError.
  explicit Barrier(std::size_t n) : n_(n) {
    if (n == 0) throw UsageError("deja::Barrier needs at least one task");
  }
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  ~Barrier() { assert(waiters_.empty() && "deja::Barrier destroyed while awaited"); }

  // Awaitable of wait(). Movable until awaited (the combinators take awaitables by value).
  class [[nodiscard]] WaitAwaiter {
   public:
    explicit WaitAwaiter(Barrier& b) noexcept : barrier_(&b) {}
    WaitAwaiter(WaitAwaiter&& other) noexcept : barrier_(other.barrier_) { assert(!other.parked_); }
    WaitAwaiter(const WaitAwaiter&) = delete;
    WaitAwaiter& operator=(const WaitAwaiter&) = delete;
    WaitAwaiter& operator=(WaitAwaiter&&) = delete;

    ~WaitAwaiter() {
      if (!parked_) return;
      std::lock_guard lock(barrier_->lock_);
      if (waiter_.linked) {
        // Destroyed while waiting: it no longer counts as arrived.
        barrier_->waiters_.remove(waiter_);
        --barrier_->arrived_;
      }
      // Released (granted) but destroyed before it ran: its generation is complete regardless.
    }

    // Arriving always takes the lock once, in await_suspend.
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "Barrier::wait");
      std::lock_guard lock(barrier_->lock_);
      if (++barrier_->arrived_ < barrier_->n_) {
        barrier_->waiters_.push_back(waiter_);
        parked_ = true;
        return true;
      }
      // The last arrival: a new generation begins, and this task is its leader.
      barrier_->arrived_ = 0;
      ++barrier_->generation_;
      // Woken under lock_, so that a woken task cannot be destroyed before the wake is done.
      while (auto* w = static_cast<detail::GrantWaiter*>(barrier_->waiters_.pop_front())) {
        w->granted = true;
        w->notify();  // the last access to that awaiter
      }
      leader_ = true;
      return false;
    }
    BarrierWaitResult await_resume() noexcept {
      assert(!parked_ || waiter_.granted);
      if (std::exchange(parked_, false)) detail::wait_for_waker(barrier_->lock_);
      return BarrierWaitResult(leader_);
    }

   private:
    Barrier* barrier_;
    detail::GrantWaiter waiter_;
    bool parked_ = false;
    bool leader_ = false;
  };

  // Waits until n tasks (this one included) have called wait() in this generation.
  WaitAwaiter wait() noexcept { return WaitAwaiter{*this}; }

  // How many generations have been released so far.
  std::uint64_t generation() const noexcept {
    std::lock_guard lock(lock_);
    return generation_;
  }
  // Tasks waiting in the current generation.
  std::size_t waiting() const noexcept {
    std::lock_guard lock(lock_);
    return arrived_;
  }

 private:
  mutable std::mutex lock_;
  std::size_t n_;
  std::size_t arrived_ = 0;  // in the current generation, all of them waiting
  std::uint64_t generation_ = 0;
  detail::WaitList waiters_;
};

}  // namespace deja
