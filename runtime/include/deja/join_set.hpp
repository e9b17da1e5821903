// deja::JoinSet<T>: a set of spawned tasks awaited in the order they finish, as Tokio's JoinSet.
// Dropping the set aborts every task still in it.
//
// The set is used by one task at a time, but its tasks finish on any worker of a multi-thread
// runtime: `lock_` guards the two lists and the waiter against those completions. Nothing is
// called under it that could finish a task (abort) or wait for a completion (unregistering).
#pragma once

#include <coroutine>
#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <vector>
#include <utility>

#include "deja/detail/branch.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/join_handle.hpp"
#include "deja/spawn.hpp"
#include "deja/task.hpp"

namespace deja {

template <class T>
class JoinSet {
  struct Entry : detail::Waiter {
    JoinSet* set = nullptr;
    JoinHandle<T> handle;
    typename std::list<Entry>::iterator self;
    bool registered = false;
  };

 public:
  using Result = detail::StoredType<T>;

  JoinSet() = default;
  JoinSet(const JoinSet&) = delete;
  JoinSet& operator=(const JoinSet&) = delete;
  ~JoinSet() {
    abort_all();
    clear();
  }

  // Spawns `task` on the current runtime into the set. Same errors as deja::spawn.
  void spawn(Task<T> task) {
    JoinHandle<T> handle = deja::spawn(std::move(task));
    // Held across registration: a completion on another worker waits for the entry to be whole.
    std::lock_guard guard(lock_);
    running_.emplace_back();
    Entry& e = running_.back();
    e.self = std::prev(running_.end());
    e.set = this;
    e.handle = std::move(handle);
    e.notify_fn = &JoinSet::on_finished;
    e.registered = detail::register_join_waiter(e.handle.cell(), &e);
    if (!e.registered) done_.splice(done_.end(), running_, e.self);
  }

  // Tasks in the set, finished or not, that join_next has not returned yet.
  std::size_t size() const noexcept {
    std::lock_guard guard(lock_);
    return running_.size() + done_.size();
  }
  bool empty() const noexcept { return size() == 0; }

  // Aborts every task in the set; they stay in it (join_next reports them as TaskCancelled).
  void abort_all() noexcept {
    // Aborting can finish a task synchronously (its completion takes the lock and moves the
    // entry), so abort a snapshot, unlocked. Entries are erased only by the set's own user.
    for (Entry* e : snapshot_running()) e->handle.abort();
  }

  class NextAwaiter {
   public:
    explicit NextAwaiter(JoinSet& set) noexcept : set_(set) {}
    NextAwaiter(const NextAwaiter&) = delete;
    NextAwaiter& operator=(const NextAwaiter&) = delete;
    ~NextAwaiter() {
      std::lock_guard guard(set_.lock_);
      if (set_.waiter_ == &waiter_) set_.waiter_ = nullptr;
    }
    bool await_ready() const noexcept {
      std::lock_guard guard(set_.lock_);
      return !set_.done_.empty() || set_.running_.empty();
    }
    // Looks again under the lock: a task may have finished since await_ready.
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "JoinSet::join_next");
      std::lock_guard guard(set_.lock_);
      if (!set_.done_.empty() || set_.running_.empty()) return false;
      set_.waiter_ = &waiter_;
      return true;
    }
    // The next finished task's value (rethrowing its exception, or TaskCancelled), or nullopt
    // when the set is empty.
    std::optional<Result> await_resume() { return set_.try_join_next(); }

   private:
    JoinSet& set_;
    detail::Waiter waiter_;
  };

  // Waits for the next task to finish.
  NextAwaiter join_next() noexcept { return NextAwaiter{*this}; }

  // A finished task's value (rethrowing its exception, or TaskCancelled) without waiting, or
  // nullopt when none has finished. A server reaps its finished connection tasks with it, so the
  // set holds only live ones.
  std::optional<Result> try_join_next() {
    JoinHandle<T> handle;
    {
      std::lock_guard guard(lock_);
      if (done_.empty()) return std::nullopt;
      auto it = done_.begin();
      handle = std::move(it->handle);
      done_.erase(it);
    }
    return detail::take_stored<T>(handle);
  }

 private:
  // Runs on the thread where the task finished. The waiter is notified under the lock, so the
  // awaiting task cannot destroy it (~NextAwaiter takes the lock) while it is being notified.
  static void on_finished(detail::Waiter* base) noexcept {
    auto* e = static_cast<Entry*>(base);
    JoinSet* set = e->set;
    std::lock_guard guard(set->lock_);
    e->registered = false;
    set->done_.splice(set->done_.end(), set->running_, e->self);
    if (detail::Waiter* w = std::exchange(set->waiter_, nullptr)) w->notify();
  }

  std::vector<Entry*> snapshot_running() {
    std::vector<Entry*> entries;
    std::lock_guard guard(lock_);
    entries.reserve(running_.size());
    for (Entry& e : running_) entries.push_back(&e);
    return entries;
  }

  void clear() noexcept {
    // Unregistering waits for a completion in progress on another thread, which takes the lock:
    // so it is done unlocked. Afterwards no completion can touch the lists.
    for (Entry* e : snapshot_running()) detail::unregister_join_waiter(e->handle.cell());
    std::lock_guard guard(lock_);
    running_.clear();
    done_.clear();
  }

  mutable std::mutex lock_;
  std::list<Entry> running_;
  std::list<Entry> done_;
  detail::Waiter* waiter_ = nullptr;
};

}  // namespace deja
