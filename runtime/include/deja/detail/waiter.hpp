// The intrusive wait-list node every awaiter embeds, and the list that primitives keep of them.
// An awaiter links its node when it suspends and unlinks it in its destructor, which is what makes
// cancellation by destruction safe for every primitive.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>

namespace deja::detail {

struct TaskHeader;

struct Waiter {
  Waiter* prev = nullptr;
  Waiter* next = nullptr;
  // Called when the waiter is released; the default wakes `task`. Combinators install their own.
  void (*notify_fn)(Waiter*) noexcept = nullptr;
  TaskHeader* task = nullptr;
  bool linked = false;

  void notify() noexcept;  // defined in task_header.hpp
};

// A waiter that is handed what it waits for (a lock, permits, a slot) before it is woken, so that
// its resume is exact. If its task is destroyed between the grant and the resume, the awaiter's
// destructor gives the grant back.
struct GrantWaiter : Waiter {
  bool granted = false;
  bool exclusive = false;    // RwLock: a writer
  std::uint64_t amount = 0;  // Semaphore: permits asked for
};

// For an awaiter that was woken under its primitive's lock, as it resumes. The waker wakes under
// the lock so that the awaiter cannot be destroyed before the wake is done, and it may still be
// inside that locked section when the woken task runs on another thread. Taking the lock once
// waits for it to leave: after that nothing touches the primitive on the waker's behalf, and the
// woken task may destroy it (as a thread that has locked a std::mutex may destroy it once it
// unlocks). Without this, a task freeing a Notify that woke it raced with notify_one's unlock.
template <class Lock>
void wait_for_waker(Lock& lock) noexcept {
  lock.lock();
  lock.unlock();
}

// FIFO intrusive list of waiters. Not synchronised: the owning primitive holds its own lock.
class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  Waiter* front() const noexcept { return head_; }

  void push_back(Waiter& w) noexcept {
    assert(!w.linked);
    w.prev = tail_;
    w.next = nullptr;
    if (tail_) tail_->next = &w; else head_ = &w;
    tail_ = &w;
    w.linked = true;
    ++size_;
  }

  void remove(Waiter& w) noexcept {
    assert(w.linked);
    if (w.prev) w.prev->next = w.next; else head_ = w.next;
    if (w.next) w.next->prev = w.prev; else tail_ = w.prev;
    w.prev = w.next = nullptr;
    w.linked = false;
    --size_;
  }

  Waiter* pop_front() noexcept {
    Waiter* w = head_;
    if (w) remove(*w);
    return w;
  }

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace deja::detail
