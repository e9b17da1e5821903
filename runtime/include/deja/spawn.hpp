// deja::spawn: hands a Task to the current runtime's scheduler and returns its JoinHandle.
#pragma once

#include "deja/context.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/join_handle.hpp"
#include "deja/task.hpp"

namespace deja {

namespace detail {

// Makes the frame of `task` a spawned root owned by `scheduler` (not yet handed to it): the
// header in the frame's prefix comes alive with two references, the scheduler's and the handle's.
template <class T>
TaskHeader* make_spawned(Task<T>&& task, Scheduler* scheduler) {
  if (!task.valid()) throw UsageError("deja: spawning a moved-from or empty Task");
  auto h = task.release();
  if (h.promise().inline_state() != InlineState::kIdle || h.done()) {
    h.destroy();
    throw UsageError("deja: spawning a Task that was already started");
  }
  h.promise().set_inline_state(InlineState::kSpawnedRoot);
  TaskHeader* t = header_of_frame(h.address());
  t->state.store(kSpawned, std::memory_order_relaxed);
  t->refs.store(2, std::memory_order_relaxed);
  t->resume_point = h;
  t->scheduler = scheduler;
  return t;
}

// Undoes make_spawned when the scheduler refused the task: the frame is destroyed unstarted.
inline void discard_unspawned(TaskHeader* t) noexcept {
  t->refs.store(0, std::memory_order_relaxed);
  t->state.store(0, std::memory_order_relaxed);
  std::coroutine_handle<>::from_address(t->frame_address()).destroy();
}

template <class T>
JoinHandle<T> spawn_on(Scheduler* scheduler, Task<T>&& task, bool inline_start) {
  TaskHeader* t = make_spawned(std::move(task), scheduler);
  try {
    if (inline_start) scheduler->spawn_inline(t);
    else scheduler->spawn(t);
  } catch (...) {
    discard_unspawned(t);
    throw;
  }
  return JoinHandle<T>(t);
}

}  // namespace detail

// Spawns `task` on the current runtime. Throws UsageError with no runtime current, and
// CapacityExceeded when the runtime's task limit is reached.
template <class T>
JoinHandle<T> spawn(Task<T> task) {
  return detail::spawn_on(require_runtime("deja::spawn").scheduler, std::move(task), false);
}

}  // namespace deja
