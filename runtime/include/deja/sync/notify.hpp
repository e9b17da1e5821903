// deja::Notify: wakes one waiting task (or stores a permit for the next one), or every task waiting
// right now, like tokio::sync::Notify.
//
//   deja::Notify n;
//   co_await n.notified();  // completes at a notify_one, a notify_waiters, or a stored permit
//   n.notify_one();         // wakes the oldest waiter; with none, stores one permit
//   n.notify_waiters();     // wakes everyone waiting now; stores nothing
//
// At most one permit is stored: several notify_one() calls with nobody waiting let exactly one
// later notified() through at once. Waiters are woken in FIFO order.
//
// Cancellation: destroying a task suspended in notified() unlinks it. If a notify_one had reached
// it but it never ran, that notification passes to the next waiter (or is stored as the permit),
// so it is never lost. A notify_waiters that reached it is simply dropped.
//
// Lifetime: a Notify must outlive the awaitables made from it (asserted in debug builds). A task
// woken by notify_one may destroy the Notify at once: the notifier is done with it by then.
// Thread-safe.
#pragma once

#include <cassert>
#include <coroutine>
#include <mutex>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"

namespace deja {

class Notify {
 public:
  Notify() = default;
  Notify(const Notify&) = delete;
  Notify& operator=(const Notify&) = delete;
  ~Notify() { assert(waiters_.empty() && "deja::Notify destroyed while awaited"); }

  // Awaitable of notified(). Movable until awaited (the combinators take awaitables by value).
  class [[nodiscard]] NotifiedAwaiter {
   public:
    explicit NotifiedAwaiter(Notify& n) noexcept : notify_(&n) {}
    NotifiedAwaiter(NotifiedAwaiter&& other) noexcept : notify_(other.notify_) { assert(!other.parked_); }
    NotifiedAwaiter(const NotifiedAwaiter&) = delete;
    NotifiedAwaiter& operator=(const NotifiedAwaiter&) = delete;
    NotifiedAwaiter& operator=(NotifiedAwaiter&&) = delete;

    ~NotifiedAwaiter() {
      if (!parked_) return;
      std::lock_guard lock(notify_->lock_);
      if (waiter_.linked) {
        notify_->waiters_.remove(waiter_);
      } else if (waiter_.granted && waiter_.exclusive) {
        notify_->notify_one_locked();  // a notify_one reached us, destroyed before we ran: pass it on
      }
    }

    bool await_ready() noexcept {
      std::lock_guard lock(notify_->lock_);
      return std::exchange(notify_->permit_, false);
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "Notify::notified");
      std::lock_guard lock(notify_->lock_);
      if (std::exchange(notify_->permit_, false)) return false;
      notify_->waiters_.push_back(waiter_);
      parked_ = true;
      return true;
    }
    void await_resume() noexcept {
      assert(!parked_ || waiter_.granted);
      if (std::exchange(parked_, false)) detail::wait_for_waker(notify_->lock_);
    }

   private:
    Notify* notify_;
    // granted: released by a notification; exclusive: by notify_one (which must not be lost).
    detail::GrantWaiter waiter_;
    bool parked_ = false;
  };

  // Completes at the next notify_one (or at once if a permit is stored), or notify_waiters.
  NotifiedAwaiter notified() noexcept { return NotifiedAwaiter{*this}; }

  // Wakes the oldest waiter; with none, stores one permit for the next notified().
  void notify_one() noexcept {
    std::lock_guard lock(lock_);
    notify_one_locked();
  }

  // Wakes every task waiting now; stores no permit (a stored one stays).
  void notify_waiters() noexcept {
    std::lock_guard lock(lock_);
    // Woken under lock_, so that a woken task cannot be destroyed before the wake is done.
    while (auto* w = static_cast<detail::GrantWaiter*>(waiters_.pop_front())) {
      w->granted = true;
      w->exclusive = false;
      w->notify();  // the last access to that awaiter
    }
  }

 private:
  void notify_one_locked() noexcept {
    auto* w = static_cast<detail::GrantWaiter*>(waiters_.pop_front());
    if (!w) {
      permit_ = true;
      return;
    }
    w->granted = true;
    w->exclusive = true;
    w->notify();  // the last access to that awaiter
  }

  std::mutex lock_;
  bool permit_ = false;
  detail::WaitList waiters_;
};

}  // namespace deja
