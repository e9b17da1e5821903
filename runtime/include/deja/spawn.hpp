// deja::spawn: hands a Task to the current runtime's scheduler and returns its JoinHandle.
#pragma once

#include "deja/context.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/join_handle.hpp"
#include "deja/task.hpp"

namespace deja {

namespace detail {

// Wraps the frame of `task` in a cell owned by `scheduler`; the caller then spawns it.
template <class T>
TaskCell<T>* make_task_cell(Task<T>&& task, Scheduler* scheduler) {
  if (!task.valid()) throw UsageError("deja: spawning a moved-from or empty Task");
  auto h = task.release();
  if (h.promise().inline_state != InlineState::kIdle) {
    h.destroy();
    throw UsageError("deja: spawning a Task that was already started");
  }
  TaskCell<T>* cell;
  try {
    cell = TaskCell<T>::create();
  } catch (...) {
    h.destroy();
    throw;
  }
  h.promise().header = cell;
  cell->root = h;
  cell->resume_point = h;
  cell->scheduler = scheduler;
  return cell;
}

// Undoes make_task_cell when the scheduler refused the task.
inline void discard_unspawned(TaskHeader* cell) noexcept {
  if (cell->root) std::exchange(cell->root, nullptr).destroy();
  cell->vtable->destroy_cell(cell);
}

template <class T>
JoinHandle<T> spawn_on(Scheduler* scheduler, Task<T>&& task, bool inline_start) {
  TaskCell<T>* cell = make_task_cell(std::move(task), scheduler);
  try {
    if (inline_start) scheduler->spawn_inline(cell);
    else scheduler->spawn(cell);
  } catch (...) {
    discard_unspawned(cell);
    throw;
  }
  return JoinHandle<T>(cell);
}

}  // namespace detail

// Spawns `task` on the current runtime. Throws UsageError with no runtime current, and
// CapacityExceeded when the runtime's task limit is reached.
template <class T>
JoinHandle<T> spawn(Task<T> task) {
  return detail::spawn_on(require_runtime("deja::spawn").scheduler, std::move(task), false);
}

}  // namespace deja
