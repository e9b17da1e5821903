// The lifecycle of tasks owned by a single-threaded scheduler (the current-thread runtime and the
// simulator): admission, the wake/run/abort state transitions, and destruction at shutdown. The
// owner keeps the ready queue; this decides when a task goes into it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "deja/detail/task_header.hpp"

namespace deja::detail {

class LocalTasks {
 public:
  explicit LocalTasks(std::size_t max_tasks) noexcept : max_tasks_(max_tasks) {}
  LocalTasks(const LocalTasks&) = delete;
  LocalTasks& operator=(const LocalTasks&) = delete;

  std::size_t size() const noexcept { return count_; }
  // Live tasks, newest first.
  TaskHeader* newest() const noexcept { return head_; }

  // Takes a new task into the live list. Throws CapacityExceeded past the limit.
  void admit(TaskHeader* t) {
    if (count_ >= max_tasks_) throw CapacityExceeded("deja: the runtime's task limit is reached");
    t->id = next_id_++;
    t->live_prev = nullptr;
    t->live_next = head_;
    if (head_) head_->live_prev = t;
    head_ = t;
    ++count_;
  }

  // Marks a new or woken task ready. Returns true if the caller must put it in its ready queue
  // (false: already queued, finished, or running and now marked to run again).
  bool make_ready(TaskHeader* t) noexcept {
    const std::uint32_t s = t->state.load(std::memory_order_relaxed);
    if (s & (kComplete | kScheduled)) return false;
    if (s & kRunning) {
      t->state.fetch_or(kNotified, std::memory_order_relaxed);
      return false;
    }
    t->state.fetch_or(kScheduled, std::memory_order_relaxed);
    return true;
  }

  // Requests cancellation. A suspended task that is not queued is destroyed now; otherwise it is
  // marked, and the caller must queue it when this returns true. `branch`: Scheduler::abort_branch
  // (no other thread can touch the state then, so it is claimed, and completes, with plain stores).
  bool abort(TaskHeader* t, bool branch = false) noexcept {
    const std::uint32_t s = t->state.load(std::memory_order_relaxed);
    if (s & (kComplete | kCancelled)) return false;
    if (!(s & (kRunning | kScheduled))) {
      if (branch) t->state.store(s | kCancelled | kRunning | kUnpublished, std::memory_order_relaxed);
      else t->state.fetch_or(kCancelled | kRunning, std::memory_order_relaxed);
      destroy_unfinished(t);
      finish(t);
      return false;
    }
    t->state.fetch_or(kCancelled, std::memory_order_relaxed);
    return make_ready(t);
  }

  // Scheduler::abort_now: like abort, but a queued task is destroyed now as well. It leaves the
  // live tasks at once, but stays in the caller's ready queue, finished, with a reference of the
  // queue's own: run() (or the owner's drop_queued) only releases it. No search of the queue. A
  // running task (the caller itself, on one thread) is only marked.
  bool abort_now(TaskHeader* t) noexcept {
    const std::uint32_t s = t->state.load(std::memory_order_relaxed);
    if (s & kComplete) return false;
    if ((s & kScheduled) && !(s & kRunning)) {
      t->retain();
      t->state.fetch_or(kCancelled | kRunning, std::memory_order_relaxed);
      destroy_unfinished(t);
      finish(t);
      return false;
    }
    return abort(t);
  }

  // A task the owner takes out of its ready queue without running it (shutdown).
  static void drop_queued(TaskHeader* t) noexcept {
    if (t->is_complete()) t->release();  // destroyed in the queue by abort_now
  }

  // Marks a task that admit() just took ready (the caller queues it). Nobody else can see it yet
  // (its JoinHandle is not returned), so a plain store does, where a wake needs an atomic step.
  static void schedule_new(TaskHeader* t) noexcept {
    t->state.store(t->state.load(std::memory_order_relaxed) | kScheduled, std::memory_order_relaxed);
  }

  // Runs a ready task until it suspends or finishes (a cancelled one is destroyed instead).
  // Returns true if it must be queued again.
  bool run(TaskHeader* t) noexcept {
    // Read-modify-write throughout: another thread may be registering a join waiter meanwhile.
    std::uint32_t s = t->state.load(std::memory_order_relaxed);
    while (!t->state.compare_exchange_weak(s, (s & ~kScheduled) | kRunning | kStarted, std::memory_order_acq_rel)) {
    }
    if (s & kComplete) {  // destroyed in its queue by abort_now, which left the queue's reference
      t->release();
      return false;
    }
    if (s & kCancelled) {
      destroy_unfinished(t);
      finish(t);
      return false;
    }
    return step(t);
  }

  // Runs the first step of a task that admit() just took, at once (spawn_inline). Unseen by
  // anyone else, it is claimed with a plain store instead of run()'s exchange.
  bool run_new(TaskHeader* t) noexcept {
    t->state.store(t->state.load(std::memory_order_relaxed) | kRunning | kStarted | kUnpublished, std::memory_order_relaxed);
    return step(t);
  }

  // The running task yields (Scheduler::yield_current): run() requeues it when its step ends, as
  // if it had been woken, without the read-modify-write of its state that a wake costs. Only on
  // the owner's thread, during run().
  void request_yield() noexcept { yield_requested_ = true; }

  // Destroys `t` if it has not finished (a crash or shutdown) and drops it.
  void destroy(TaskHeader* t) noexcept {
    if (!t->is_complete()) {
      t->state.fetch_or(kRunning, std::memory_order_relaxed);
      destroy_unfinished(t);
    }
    finish(t);
  }

 private:
  // Resumes a claimed (kRunning) task until it suspends or finishes. Returns true if it must be
  // queued again.
  bool step(TaskHeader* t) noexcept {
    TaskHeader* saved = tls_current_task;
    const bool saved_yield = yield_requested_;  // a nested step (a branch's first) has its own
    tls_current_task = t;
    yield_requested_ = false;
    t->resume_point.resume();
    tls_current_task = saved;
    const bool yielded = std::exchange(yield_requested_, saved_yield);
    std::uint32_t s = t->state.load(std::memory_order_acquire);
    if (s & kComplete) {
      finish(t);
      return false;
    }
    if (yielded || (s & kNotified)) {
      // Woken (or yielded) while running: back in the queue, in one atomic step.
      while (!t->state.compare_exchange_weak(s, (s & ~(kRunning | kNotified | kUnpublished)) | kScheduled, std::memory_order_relaxed)) {
      }
      return true;
    }
    t->state.fetch_and(~(kRunning | kNotified | kUnpublished), std::memory_order_relaxed);
    return false;
  }

  // Takes a finished task off the live list and drops the scheduler's reference. Its scheduling
  // bits may stay set: every transition (here and in the simulator) looks at kComplete first,
  // and clearing them cost an atomic step per task.
  void finish(TaskHeader* t) noexcept {
    if (t->live_prev) t->live_prev->live_next = t->live_next; else head_ = t->live_next;
    if (t->live_next) t->live_next->live_prev = t->live_prev;
    t->live_prev = t->live_next = nullptr;
    --count_;
    t->release();
  }

  std::size_t max_tasks_;
  std::size_t count_ = 0;
  TaskHeader* head_ = nullptr;
  std::uint32_t next_id_ = 1;
  bool yield_requested_ = false;
};

}  // namespace deja::detail
