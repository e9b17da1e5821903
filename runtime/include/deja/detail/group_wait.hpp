// Waiting on several branches at once, the plumbing under when_all, race and timeout: one waiter
// per branch, and the parent is woken once the group's condition holds. A branch is a spawned
// task (joined), or a race's sleep waited on in place (a TimerBranch, which the group attaches to
// and disarms).
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <mutex>
#include <span>

#include "deja/detail/task_header.hpp"
#include "deja/detail/timer_branch.hpp"

namespace deja::detail {

enum class GroupMode : unsigned char {
  kAll,          // every branch finished
  kAllFailFast,  // every branch finished, or one failed (threw or was cancelled)
  kAny,          // one branch finished
};

class GroupWait;

// The flags come first, so that they sit in the padding at the end of Waiter: two of these fit in
// 128 bytes, which the compiler zeroes with a few vector stores where more took a `rep stos`, a
// cost race pays on every call.
struct BranchWaiter : Waiter {
  // Its branch's position is its offset in the group's span.
  bool registered = false;  // joined, or (a timer) attached
  bool finished = false;
  GroupWait* group = nullptr;
  TaskHeader* branch = nullptr;  // a task branch; or
  TimerBranch* timer = nullptr;  // a timer branch (race's sleep), armed when it started

  bool started() const noexcept { return branch != nullptr || timer != nullptr; }
  // Finished or gone (a task complete, destroyed included; a timer fired or disarmed). For a
  // timer on another worker's wheel, only the owner's reads after a disarm are exact.
  bool settled() const noexcept { return branch != nullptr ? branch->is_complete() : timer != nullptr && timer->settled(); }
};
static_assert(sizeof(BranchWaiter) <= 64, "BranchWaiter's flags no longer share Waiter's padding");

// Awaitable. `waiters[i].branch` (a task) or `waiters[i].timer` (a race's sleep) must be set for
// every branch started; both null for one not started.
class GroupWait {
 public:
  GroupWait(std::span<BranchWaiter> waiters, GroupMode mode, const char* what) noexcept
      : waiters_(waiters), mode_(mode), what_(what) {
    for (const BranchWaiter& w : waiters_) remaining_ += w.started();
  }
  GroupWait(const GroupWait&) = delete;
  GroupWait& operator=(const GroupWait&) = delete;
  ~GroupWait() { unregister_all(); }

  bool await_ready() noexcept {
    for (BranchWaiter& w : waiters_) {
      if (w.settled()) note_finished(w);
    }
    return satisfied();
  }

  bool await_suspend(std::coroutine_handle<> h) noexcept {
    parent_ = park_current(h, what_);
    // Timers first, outside the lock: one firing on another worker holds its wheel's lock while
    // it takes this group's (on_branch_finished), and the lock below is not needed for them. One
    // that fired already counts as finished.
    for (BranchWaiter& w : waiters_) {
      if (w.timer == nullptr || w.finished || w.timer->settled()) continue;
      w.group = this;
      w.task = parent_;
      w.notify_fn = &GroupWait::on_branch_finished;
      w.registered = w.timer->attach(w);
    }
    // On a multi-thread runtime branches finish on other workers while this registers: the lock
    // orders their notes with these. It is released before unregister_all, which waits for a
    // completer that may itself be waiting for the lock.
    std::unique_lock lock(lock_);
    for (BranchWaiter& w : waiters_) {
      if (!w.started() || w.finished) continue;
      if (w.timer != nullptr) {
        if (!w.registered) note_finished(w);  // fired before it was attached, or settled before
        continue;
      }
      if (w.branch->is_complete()) {
        note_finished(w);
        continue;
      }
      w.group = this;
      w.task = parent_;
      w.notify_fn = &GroupWait::on_branch_finished;
      w.registered = register_join_waiter(w.branch, &w);
      if (!w.registered) note_finished(w);
    }
    if (satisfied()) {
      lock.unlock();
      unregister_all();
      return false;
    }
    armed_ = true;
    return true;
  }

  void await_resume() noexcept { unregister_all(); }

  // The first branch seen to finish (in notification order), or npos.
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  std::size_t first_finished() const noexcept { return first_; }
  // The first branch seen to fail (throw or be cancelled), or npos.
  std::size_t first_failed() const noexcept { return first_failed_; }

 private:
  static void on_branch_finished(Waiter* base) noexcept {
    // `registered` stays set: the parent owns it, and unregistering a notified waiter is a no-op.
    auto* w = static_cast<BranchWaiter*>(base);
    GroupWait* g = w->group;
    bool wake_parent = false;
    {
      std::lock_guard lock(g->lock_);
      g->note_finished(*w);
      if (g->armed_ && g->satisfied()) {
        g->armed_ = false;
        wake_parent = true;
      }
    }
    // The group outlives this call: destroying it unregisters this waiter, which waits for the
    // notification in progress to end.
    if (wake_parent) wake(g->parent_);
  }

  void note_finished(BranchWaiter& w) noexcept {
    if (w.finished) return;
    w.finished = true;
    --remaining_;
    const auto index = static_cast<std::size_t>(&w - waiters_.data());
    if (first_ == npos) first_ = index;
    if (w.branch != nullptr && (w.branch->was_destroyed() || w.branch->has_failed()) && first_failed_ == npos) first_failed_ = index;
  }

  bool satisfied() const noexcept {
    if (mode_ == GroupMode::kAny) return first_ != npos;
    if (mode_ == GroupMode::kAllFailFast && first_failed_ != npos) return true;
    return remaining_ == 0;
  }

  void unregister_all() noexcept {
    for (BranchWaiter& w : waiters_) {
      if (w.registered) {
        if (w.timer != nullptr) w.timer->disarm();
        else unregister_join_waiter(w.branch);
        w.registered = false;
      }
    }
  }

  std::mutex lock_;
  std::span<BranchWaiter> waiters_;
  GroupMode mode_;
  const char* what_;
  TaskHeader* parent_ = nullptr;
  std::size_t remaining_ = 0;
  std::size_t first_ = npos;
  std::size_t first_failed_ = npos;
  bool armed_ = false;
};

// Aborts every unfinished branch among `waiters` and readies the same waiters for
// `GroupWait(waiters, GroupMode::kAll, ...)`, which the combinator then awaits before it returns.
// The GroupWait that used them before must be gone (destroyed: its waiters unregistered). On the
// multi-thread runtime an aborted branch that is running on another worker (or queued to run) is
// destroyed only when it next suspends (or is dequeued), and a combinator must not return before
// that: the branch's frame refers to its caller's objects (a stream whose one-reader flag it holds,
// a buffer it reads into). On one thread the aborts destroy the suspended ones at once; a queued
// one goes when the scheduler reaches it, which the wait awaits. Reusing the waiters spares
// zeroing a second array on race's hot path.
inline void abort_unfinished(std::span<BranchWaiter> waiters) noexcept {
  for (BranchWaiter& w : waiters) {
    assert(!w.registered && !w.linked);
    w.finished = false;
    w.group = nullptr;
    if (w.timer != nullptr) w.timer->disarm();
    TaskHeader* t = w.branch;
    if (t != nullptr && !t->is_complete()) t->scheduler->abort_branch(t);
  }
}

// Whether every started branch among `waiters` has finished (a GroupWait in kAll mode would not
// suspend): lets a combinator skip building one for the common case.
inline bool all_finished(std::span<const BranchWaiter> waiters) noexcept {
  for (const BranchWaiter& w : waiters) {
    if (w.started() && !w.settled()) return false;
  }
  return true;
}

}  // namespace deja::detail
