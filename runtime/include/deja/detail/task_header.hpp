// The part of a spawned task that the scheduler sees: state, reference count, where to resume.
// It sits in a fixed prefix in front of every Task coroutine frame, so spawning costs no allocation
// of its own and a task is one block: prefix + frame. The frame holds the result until it is joined.
#pragma once

#include <atomic>
#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "deja/detail/frame_allocator.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/scheduler.hpp"

namespace deja::detail {

// Task state bits. kScheduled/kRunning/kNotified belong to the owning scheduler; the others record
// how the task ended and the join handshake, which is safe across threads.
enum TaskStateBits : std::uint32_t {
  kScheduled = 1u << 0,      // in a ready queue
  kRunning = 1u << 1,        // being resumed right now
  kNotified = 1u << 2,       // woken while running: run again once it suspends
  kComplete = 1u << 3,       // finished: the outcome below is final
  kCancelled = 1u << 4,      // abort requested
  kJoinWaiter = 1u << 5,     // a join waiter is registered
  kJoinNotifying = 1u << 6,  // the completer is notifying the join waiter right now
  kStarted = 1u << 7,        // has been resumed at least once
  kSpawned = 1u << 8,        // the prefix is a live task header (the frame is a spawned root)
  kFailed = 1u << 9,         // finished by throwing
  kDestroyed = 1u << 10,     // destroyed before it finished (abort, crash, shutdown)
  kFrameGone = 1u << 11,     // the coroutine frame was destroyed; only the prefix block remains
  // In its first step, run at once by spawn_inline: its JoinHandle is not returned yet, so no
  // other thread can register a join waiter, abort it or take a reference. At most a wake marks
  // it (kNotified), which completion makes moot. Its scheduler clears the bit when that step
  // suspends (in the read-modify-write that ends it); a task that finishes within it completes,
  // and is released, without an atomic read-modify-write.
  kUnpublished = 1u << 12,
};

// Unit stands for "no value" where a type is needed (Task<void> results in when_all and race).
struct Unit {
  friend bool operator==(Unit, Unit) = default;
};

// A value, an exception, or nothing yet. Kept small: it lives in every task frame.
template <class T>
class ResultSlot {
 public:
  ResultSlot() noexcept {}
  ResultSlot(const ResultSlot&) = delete;
  ResultSlot& operator=(const ResultSlot&) = delete;
  ~ResultSlot() { reset(); }

  template <class... A>
  void set_value(A&&... a) {
    reset();
    ::new (static_cast<void*>(&value_)) T(std::forward<A>(a)...);
    kind_ = Kind::kValue;
  }
  void set_exception(std::exception_ptr e) noexcept {
    reset();
    ::new (static_cast<void*>(&error_)) std::exception_ptr(std::move(e));
    kind_ = Kind::kError;
  }
  bool has_value() const noexcept { return kind_ == Kind::kValue; }
  bool has_exception() const noexcept { return kind_ == Kind::kError; }
  bool empty() const noexcept { return kind_ == Kind::kEmpty; }
  std::exception_ptr exception() const noexcept { return kind_ == Kind::kError ? error_ : std::exception_ptr{}; }

  // Moves the value out (or rethrows the exception); leaves the slot empty.
  T take() {
    if (kind_ == Kind::kError) {
      std::exception_ptr e = std::move(error_);
      reset();
      std::rethrow_exception(std::move(e));
    }
    assert(kind_ == Kind::kValue);
    T v = std::move(value_);
    reset();
    return v;
  }

  // Moves whatever `other` holds into this (empty) slot; `other` is left empty.
  // (Constructs in place rather than through set_value: no reset of an empty slot, which g++ 12
  // at -O1 mistakes for a read of an uninitialized member.)
  void take_from(ResultSlot& other) {
    assert(kind_ == Kind::kEmpty);
    if (other.kind_ == Kind::kValue) {
      ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
      kind_ = Kind::kValue;
    } else if (other.kind_ == Kind::kError) {
      ::new (static_cast<void*>(&error_)) std::exception_ptr(std::move(other.error_));
      kind_ = Kind::kError;
    }
    other.reset();
  }

  void reset() noexcept {
    if (kind_ == Kind::kValue) value_.~T();
    else if (kind_ == Kind::kError) error_.~exception_ptr();
    kind_ = Kind::kEmpty;
  }

 private:
  enum class Kind : std::uint8_t { kEmpty, kValue, kError };
  union {
    T value_;
    std::exception_ptr error_;
  };
  Kind kind_ = Kind::kEmpty;

 public:
  // Spare byte in the padding after kind_, used by the promise (see task.hpp) to keep frames small.
  std::uint8_t spare = 0;
};

struct TaskHeader {
  std::atomic<std::uint32_t> state{0};
  // References: one for the scheduler (until the task completes), one for the JoinHandle, one
  // per pending cross-thread operation. The last one destroys the frame and frees the block.
  std::atomic<std::uint32_t> refs{0};
  std::coroutine_handle<> resume_point;  // where the next run continues
  Scheduler* scheduler = nullptr;
  Waiter* join_waiter = nullptr;
  union {
    // What the task waits on while suspended (a static string), for deadlock reports.
    const char* waiting_on = nullptr;
    // Once it has finished: the link of a scheduler's list of tasks handed back to their home
    // worker (the multi-thread runtime).
    TaskHeader* finished_next;
  };
  // Intrusive list of the scheduler's live tasks (for shutdown and reports); owned by it.
  TaskHeader* live_prev = nullptr;
  TaskHeader* live_next = nullptr;
  std::uint32_t id = 0;     // unique within a runtime (wraps after 2^32 spawns)
  std::uint32_t owner = 0;  // opaque per-runtime tag (the simulator's node id, the multi-thread runtime's home list)

  std::uint32_t load_state() const noexcept { return state.load(std::memory_order_acquire); }
  bool is_complete() const noexcept { return (load_state() & kComplete) != 0; }
  bool was_destroyed() const noexcept { return (load_state() & kDestroyed) != 0; }
  bool has_failed() const noexcept { return (load_state() & kFailed) != 0; }

  inline void* frame_address() noexcept;
  // Only with a reference held, by the caller or by someone who cannot drop it before this
  // returns and synchronizes with that (a lock both take): release() reads a count of one as its
  // own and frees without an atomic step, so an increment it cannot see would be overwritten.
  void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  inline void release() noexcept;
};

// The prefix is a multiple of the frame alignment, so the frame behind it stays aligned.
inline constexpr std::size_t kTaskPrefix = (sizeof(TaskHeader) + 15) / 16 * 16;
static_assert(kTaskPrefix == 64, "TaskHeader grew: every task frame pays for it");

inline void* TaskHeader::frame_address() noexcept { return reinterpret_cast<std::byte*>(this) + kTaskPrefix; }

inline TaskHeader* header_of_frame(void* frame) noexcept {
  return std::launder(reinterpret_cast<TaskHeader*>(static_cast<std::byte*>(frame) - kTaskPrefix));
}

// Allocation of task frames: every frame allocated through operator new gets the prefix (clang
// may elide the allocation of a frame that is only awaited; such a frame is never spawned, since
// spawning lets the handle escape). The header is constructed here, unused until spawned.
inline void* allocate_task_frame(std::size_t n) {
  void* block = frame_allocate(kTaskPrefix + n);
  ::new (block) TaskHeader();
  return static_cast<std::byte*>(block) + kTaskPrefix;
}

// When a spawned task finishes, its frame is destroyed at once (its locals and parameters go, as a
// finished Rust future is dropped) but its block stays while the header is referenced. The dead
// frame's bytes then hold: the frame size, a function that destroys the result, and the result.
struct DeadFrame {
  std::size_t frame_size;
  void (*destroy_result)(void* result) noexcept;
};
inline constexpr std::size_t kDeadResultOffset = 16;
static_assert(sizeof(DeadFrame) <= kDeadResultOffset);

inline DeadFrame* dead_frame(void* frame) noexcept { return static_cast<DeadFrame*>(frame); }
inline void* dead_result(void* frame) noexcept { return static_cast<std::byte*>(frame) + kDeadResultOffset; }

inline void deallocate_task_frame(void* frame, std::size_t n) noexcept {
  TaskHeader* h = header_of_frame(frame);
  if (h->refs.load(std::memory_order_acquire) == 0) {
    h->~TaskHeader();
    frame_deallocate(h, kTaskPrefix + n);
    return;
  }
  // A spawned frame goes only on the way to complete_task (final suspend, destroy_unfinished),
  // which sets kFrameGone in the same step as kComplete; until then the scheduler's reference
  // keeps release() from looking at it.
  ::new (frame) DeadFrame{n, nullptr};
}

// Called when a spawned task's result is destroyed holding an exception nobody observed.
void report_unobserved_exception(std::exception_ptr e) noexcept;

inline void TaskHeader::release() noexcept {
  // The last holder skips the atomic step (a locked instruction, the dearest part of a release):
  // taking a reference needs one already held, so a count of one, read by its holder, cannot
  // change under it. The acquire pairs with the other holders' releasing decrements.
  if (refs.load(std::memory_order_acquire) == 1) {
    refs.store(0, std::memory_order_relaxed);  // deallocate_task_frame reads it
  } else if (refs.fetch_sub(1, std::memory_order_acq_rel) != 1) {
    return;
  }
  if (!(load_state() & kFrameGone)) {
    // Nobody will read the result: destroying the frame frees the block (refs is 0 now).
    std::coroutine_handle<>::from_address(frame_address()).destroy();
    return;
  }
  DeadFrame* dead = dead_frame(frame_address());
  const std::size_t n = dead->frame_size;
  if (dead->destroy_result) dead->destroy_result(dead_result(frame_address()));
  this->~TaskHeader();
  frame_deallocate(this, kTaskPrefix + n);
}


// The current task of this thread: set by the scheduler around every resume.
extern thread_local constinit TaskHeader* tls_current_task;

inline TaskHeader* current_task() noexcept { return tls_current_task; }

// Records where the current task continues and what it waits on; every awaiter that can park a
// task calls this from await_suspend before it publishes its waiter.
inline TaskHeader* park_current(std::coroutine_handle<> h, const char* waiting_on) noexcept {
  TaskHeader* t = tls_current_task;
  assert(t != nullptr && "deja awaitable used outside a deja task");
  t->resume_point = h;
  t->waiting_on = waiting_on;
  return t;
}

inline void wake(TaskHeader* t) noexcept { t->scheduler->wake(t); }

inline void Waiter::notify() noexcept {
  if (notify_fn) notify_fn(this);
  else wake(task);
}

// Registers `w` to be notified when `t` completes. Returns false (and registers nothing) if `t`
// has already completed. One waiter at most.
inline bool register_join_waiter(TaskHeader* t, Waiter* w) noexcept {
  t->join_waiter = w;
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  for (;;) {
    if (s & kComplete) {
      t->join_waiter = nullptr;
      return false;
    }
    if (t->state.compare_exchange_weak(s, s | kJoinWaiter, std::memory_order_acq_rel)) return true;
  }
}

// Takes the waiter back; if the task is completing concurrently, waits until the completer is
// done with it, so `w` may be destroyed afterwards.
inline void unregister_join_waiter(TaskHeader* t) noexcept {
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  for (;;) {
    if (!(s & kJoinWaiter)) break;
    if (s & kComplete) {
      while (t->state.load(std::memory_order_acquire) & kJoinNotifying) {
      }
      break;
    }
    if (t->state.compare_exchange_weak(s, s & ~kJoinWaiter, std::memory_order_acq_rel)) break;
  }
  t->join_waiter = nullptr;
}

// Marks the task complete with `outcome` (kFailed, kDestroyed or 0) and notifies the join waiter.
// Its frame is gone already (kFrameGone is set here).
inline void complete_task(TaskHeader* t, std::uint32_t outcome) noexcept {
  const std::uint32_t done = kComplete | kFrameGone | outcome;
  std::uint32_t s = t->state.load(std::memory_order_relaxed);
  if (s & kUnpublished) {  // nobody waits or can start to: a plain store (release: the result)
    t->state.store(s | done, std::memory_order_release);
    return;
  }
  // Nobody waits (the common case for a detached task or a branch seen finished at once):
  // completing is one atomic step, and a waiter registering concurrently sees kComplete.
  while (!(s & kJoinWaiter)) {
    if (t->state.compare_exchange_weak(s, s | done, std::memory_order_acq_rel)) return;
  }
  s = t->state.fetch_or(done | kJoinNotifying, std::memory_order_acq_rel);
  if (s & kJoinWaiter) {  // not unregistered meanwhile
    Waiter* w = t->join_waiter;
    t->join_waiter = nullptr;
    w->notify();
  }
  t->state.fetch_and(~(kJoinNotifying | kJoinWaiter), std::memory_order_release);
}

// Destroys the frame of a task that has not completed (abort, crash or shutdown): RAII unwinds it
// at its suspension point, then the task completes as destroyed. Called by schedulers only, with
// the task's runtime current, since awaiters' destructors talk to it.
inline void destroy_unfinished(TaskHeader* t) noexcept {
  assert(!t->is_complete());
  TaskHeader* saved = tls_current_task;
  tls_current_task = t;
  std::coroutine_handle<>::from_address(t->frame_address()).destroy();
  tls_current_task = saved;
  complete_task(t, kDestroyed);
}

}  // namespace deja::detail
