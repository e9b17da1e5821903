// The part of a spawned task that the scheduler sees: state, reference count, where to resume, and
// the typed cell that outlives the coroutine frame to carry the result to the JoinHandle.
#pragma once

#include <atomic>
#include <cassert>
#include <coroutine>
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

// Task state bits. Only the owning scheduler's thread mutates kScheduled/kRunning/kNotified; the
// join bits follow a handshake that is safe across threads.
enum TaskStateBits : std::uint32_t {
  kScheduled = 1u << 0,   // in a ready queue
  kRunning = 1u << 1,     // being resumed right now
  kNotified = 1u << 2,    // woken while running: run again once it suspends
  kComplete = 1u << 3,    // finished: result, exception or cancellation is in the cell
  kCancelled = 1u << 4,   // abort requested
  kJoinWaiter = 1u << 5,  // a join waiter is registered
  kJoinNotifying = 1u << 6,  // the completer is notifying the join waiter right now
  kStarted = 1u << 7,     // has been resumed at least once
};

// Unit stands for "no value" where a type is needed (Task<void> results in when_all and race).
struct Unit {
  friend bool operator==(Unit, Unit) = default;
};

// A value, an exception, or nothing yet. Shared by task promises and task cells.
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
  std::exception_ptr exception() const noexcept {
    return kind_ == Kind::kError ? error_ : std::exception_ptr{};
  }

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

  void move_into(ResultSlot& other) {
    if (kind_ == Kind::kValue) other.set_value(std::move(value_));
    else if (kind_ == Kind::kError) other.set_exception(std::move(error_));
    reset();
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
};

struct TaskHeader;

struct TaskVTable {
  void (*destroy_cell)(TaskHeader*) noexcept;
};

// Where a runtime can hang per-task bookkeeping (e.g. the simulator's node), without the core
// knowing what it is.
struct TaskHeader {
  std::atomic<std::uint32_t> state{0};
  std::atomic<std::uint32_t> refs{2};  // one for the scheduler (until complete), one for the handle
  std::coroutine_handle<> resume_point;  // where the next run continues
  std::coroutine_handle<> root;           // the spawned frame; null once destroyed
  Scheduler* scheduler = nullptr;
  Waiter* join_waiter = nullptr;
  const TaskVTable* vtable = nullptr;
  // What the task waits on while suspended (a static string), for deadlock reports.
  const char* waiting_on = nullptr;
  std::uint64_t id = 0;
  // Intrusive list of the scheduler's live tasks (for shutdown and reports); owned by it.
  TaskHeader* live_prev = nullptr;
  TaskHeader* live_next = nullptr;
  // Opaque per-runtime tag (the simulator's node id); 0 in production.
  std::uint32_t owner = 0;
  // Set when the task was destroyed before it finished (abort, crash, shutdown).
  bool cancelled = false;
  // Set when the task finished by throwing.
  bool failed = false;

  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) vtable->destroy_cell(this);
  }
  void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }

  bool is_complete() const noexcept {
    return (state.load(std::memory_order_acquire) & kComplete) != 0;
  }
};

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

// Marks the task complete (its result or cancellation is already in the cell) and notifies the
// join waiter, if any.
inline void complete_task(TaskHeader* t) noexcept {
  std::uint32_t s = t->state.fetch_or(kComplete | kJoinNotifying, std::memory_order_acq_rel);
  if (s & kJoinWaiter) {
    Waiter* w = t->join_waiter;
    t->join_waiter = nullptr;
    w->notify();
  }
  t->state.fetch_and(~(kJoinNotifying | kJoinWaiter), std::memory_order_release);
}

// Called when a task cell is freed holding an exception nobody observed (a detached task threw).
void report_unobserved_exception(std::exception_ptr e) noexcept;

template <class T>
struct TaskCell final : TaskHeader {
  ResultSlot<std::conditional_t<std::is_void_v<T>, Unit, T>> result;

  static void destroy_cell(TaskHeader* h) noexcept {
    auto* cell = static_cast<TaskCell*>(h);
    assert(!cell->root && "a task cell freed while its frame is alive");
    if (cell->result.has_exception()) report_unobserved_exception(cell->result.exception());
    cell->~TaskCell();
    frame_deallocate(cell, sizeof(TaskCell));
  }
  static constexpr TaskVTable kVTable{&TaskCell::destroy_cell};

  static TaskCell* create() {
    void* mem = frame_allocate(sizeof(TaskCell));
    auto* cell = ::new (mem) TaskCell();
    cell->vtable = &kVTable;
    return cell;
  }
};

// Destroys the frame of a task that has not completed (abort, crash or shutdown): RAII unwinds it
// at its suspension point, then the task completes as cancelled. Called by schedulers only, with
// the task's runtime current, since awaiters' destructors talk to it.
inline void destroy_unfinished(TaskHeader* t) noexcept {
  assert(!t->is_complete());
  TaskHeader* saved = tls_current_task;
  tls_current_task = t;
  std::coroutine_handle<> frame = std::exchange(t->root, nullptr);
  if (frame) frame.destroy();
  tls_current_task = saved;
  t->cancelled = true;
  complete_task(t);
}

}  // namespace deja::detail
