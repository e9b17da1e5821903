// A combinator's branch: a task spawned for when_all, race or timeout, aborted if the combinator is
// dropped before it finishes (cancellation flows down, as dropping a future does in Rust).
#pragma once

#include <utility>

#include "deja/join_handle.hpp"
#include "deja/spawn.hpp"
#include "deja/task.hpp"

namespace deja::detail {

template <class T>
class Branch {
 public:
  Branch() noexcept = default;
  explicit Branch(JoinHandle<T> h) noexcept : handle_(std::move(h)) {}
  Branch(Branch&&) noexcept = default;
  Branch& operator=(Branch&& other) noexcept {
    if (this != &other) {
      drop();
      handle_ = std::move(other.handle_);
    }
    return *this;
  }
  ~Branch() { drop(); }

  JoinHandle<T>& handle() noexcept { return handle_; }
  TaskHeader* header() const noexcept { return handle_.cell(); }

 private:
  // An unfinished branch is destroyed before this returns, wherever it is (queued, or running on
  // another worker): its frame refers to the parent's, which is going (the parent was aborted, or
  // the combinator is unwinding).
  void drop() noexcept {
    TaskHeader* t = handle_.cell();
    if (t != nullptr && !t->is_complete()) t->scheduler->abort_now(t);
  }

  JoinHandle<T> handle_;
};

// The result of a finished branch, with Unit for void.
template <class T>
StoredType<T> take_stored(JoinHandle<T>& h) {
  if constexpr (std::is_void_v<T>) {
    h.take_finished();
    return Unit{};
  } else {
    return h.take_finished();
  }
}

// Spawns `task` as a branch of the current task, running its first step right away.
template <class T>
Branch<T> start_branch(Task<T>&& task) {
  return Branch<T>(spawn_on(require_runtime("deja combinators").scheduler, std::move(task), true));
}

}  // namespace deja::detail
