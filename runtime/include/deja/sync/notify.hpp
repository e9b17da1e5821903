// deja::Notify: wakes one waiting task (or stores a permit for the next one), or every task
// waiting right now, as Tokio's Notify.
#pragma once

#include <cassert>
#include <coroutine>
#include <mutex>
#include <vector>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"

namespace deja {

class Notify {
 public:
  Notify() = default;
  Notify(const Notify&) = delete;
  Notify& operator=(const Notify&) = delete;
  ~Notify() { assert(waiters_.empty() && "deja::Notify destroyed while awaited"); }

  class NotifiedAwaiter {
   public:
    explicit NotifiedAwaiter(Notify& n) noexcept : notify_(n) {}
    NotifiedAwaiter(const NotifiedAwaiter&) = delete;
    NotifiedAwaiter& operator=(const NotifiedAwaiter&) = delete;
    ~NotifiedAwaiter() {
      if (!parked_) return;
      std::unique_lock lock(notify_.lock_);
      if (waiter_.linked) {
        notify_.waiters_.remove(waiter_);
      } else if (waiter_.granted && waiter_.exclusive) {
        // A notify_one reached this task but it was destroyed before running: pass it on.
        detail::TaskHeader* next = notify_.notify_one_locked();
        lock.unlock();
        if (next) detail::wake(next);
      }
    }
    bool await_ready() noexcept {
      std::lock_guard lock(notify_.lock_);
      return std::exchange(notify_.permit_, false);
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "Notify::notified");
      std::lock_guard lock(notify_.lock_);
      if (std::exchange(notify_.permit_, false)) return false;
      notify_.waiters_.push_back(waiter_);
      parked_ = true;
      return true;
    }
    void await_resume() noexcept {
      parked_ = false;
      waiter_.granted = false;
    }

   private:
    Notify& notify_;
    detail::GrantWaiter waiter_;  // exclusive: woken by notify_one (a permit that must not be lost)
    bool parked_ = false;
  };

  // Completes at the next notify_one (or at once if a permit is stored), or notify_waiters.
  NotifiedAwaiter notified() noexcept { return NotifiedAwaiter{*this}; }

  // Wakes the oldest waiter; with none, stores one permit for the next notified().
  void notify_one() noexcept {
    std::unique_lock lock(lock_);
    detail::TaskHeader* t = notify_one_locked();
    lock.unlock();
    if (t) detail::wake(t);
  }

  // Wakes every task waiting now; stores no permit.
  void notify_waiters() {
    std::unique_lock lock(lock_);
    std::vector<detail::TaskHeader*> wake;
    while (auto* w = static_cast<detail::GrantWaiter*>(waiters_.pop_front())) {
      w->granted = true;
      w->exclusive = false;
      wake.push_back(w->task);
    }
    lock.unlock();
    for (auto* t : wake) detail::wake(t);
  }

 private:
  detail::TaskHeader* notify_one_locked() noexcept {
    auto* w = static_cast<detail::GrantWaiter*>(waiters_.pop_front());
    if (!w) {
      permit_ = true;
      return nullptr;
    }
    w->granted = true;
    w->exclusive = true;
    return w->task;
  }

  std::mutex lock_;
  bool permit_ = false;
  detail::WaitList waiters_;
};

}  // namespace deja
