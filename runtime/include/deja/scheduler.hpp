// The scheduling seam: how tasks are spawned, woken, aborted and run. The production runtimes and
// the simulator implement it; application code reaches it through deja::spawn and friends.
#pragma once

#include <cstdint>
#include <exception>
#include <string>

namespace deja::detail {
struct TaskHeader;
}

namespace deja {

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Takes ownership of a new task (not yet started) and makes it ready. Throws CapacityExceeded
  // when the scheduler's task limit is reached (the task is then destroyed).
  virtual void spawn(detail::TaskHeader* task) = 0;

  // Like spawn, but the scheduler may run the task's first step right now, nested in the caller
  // (the combinators' first poll). The simulator may prefer to make it ready and decide later.
  virtual void spawn_inline(detail::TaskHeader* task) = 0;

  // Makes a suspended task ready. Called once per suspension by whoever releases it; a wake of a
  // task that is running marks it to run again once it has suspended. Thread-safe.
  virtual void wake(detail::TaskHeader* task) noexcept = 0;

  // The running task `task` (this thread's current one) yields: it runs again once every task
  // already ready has had a turn. Called from the yield's await_suspend, so the task suspends
  // right after. The default is wake(), which marks a running task to run again; a scheduler may
  // record the request where only its own thread looks instead (the multi-thread runtime does, and
  // so spares an atomic read-modify-write of the task's state).
  virtual void yield_current(detail::TaskHeader* task) noexcept { wake(task); }

  // Requests cancellation: the task is destroyed at its current suspension point (RAII unwinds
  // it), or never started if it had not started. A suspended task that is not queued is destroyed
  // before abort returns when called on the scheduler's thread; otherwise when the scheduler next
  // reaches it. Thread-safe.
  virtual void abort(detail::TaskHeader* task) noexcept = 0;

  // abort() of a combinator's branch by its parent, which is running and holds the branch's only
  // JoinHandle, with no join waiter registered: nobody else can wait on the branch or take a
  // reference to it, so a suspended one may be completed and released without atomic steps. The
  // default is abort().
  virtual void abort_branch(detail::TaskHeader* task) noexcept { abort(task); }

  // Aborts `task` and returns once its frame is gone: also when it is queued to run (it is
  // destroyed in place and its queue only drops it) or running on another worker (its current
  // step ends first, and this waits for that). Combinators drop their unfinished branches this
  // way, since a branch's frame refers to its parent's. Where it cannot wait it is abort(): called
  // off the scheduler's threads while they run, or for a task that this thread is itself running
  // further up its stack (a branch whose step aborted its own parent). The default is abort().
  virtual void abort_now(detail::TaskHeader* task) noexcept { abort(task); }

  // A spawned task's exception was never observed (it was detached, or its handle dropped). The
  // production runtimes print it; the simulator fails the run.
  virtual void on_unobserved_exception(std::exception_ptr e) noexcept;

  // A DEJA_ASSERT failed in one of this scheduler's tasks (the assertion then throws
  // deja::AssertionFailed). The simulator fails the run even if the exception is caught.
  virtual void on_assertion_failed(const std::string& what) noexcept;
};

}  // namespace deja
