// deja::JoinSet<T>: a set of spawned tasks awaited in the order they finish, as Tokio's JoinSet.
// Dropping the set aborts every task still in it.
#pragma once

#include <coroutine>
#include <cstddef>
#include <list>
#include <optional>
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
  std::size_t size() const noexcept { return running_.size() + done_.size(); }
  bool empty() const noexcept { return size() == 0; }

  // Aborts every task in the set; they stay in it (join_next reports them as TaskCancelled).
  void abort_all() noexcept {
    // Aborting can finish a task synchronously and move its entry, so walk a snapshot of handles.
    for (auto it = running_.begin(); it != running_.end();) {
      auto next = std::next(it);
      it->handle.abort();
      it = next;
    }
  }

  class NextAwaiter {
   public:
    explicit NextAwaiter(JoinSet& set) noexcept : set_(set) {}
    NextAwaiter(const NextAwaiter&) = delete;
    NextAwaiter& operator=(const NextAwaiter&) = delete;
    ~NextAwaiter() {
      if (set_.waiter_ == &waiter_) set_.waiter_ = nullptr;
    }
    bool await_ready() const noexcept { return !set_.done_.empty() || set_.running_.empty(); }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "JoinSet::join_next");
      set_.waiter_ = &waiter_;
    }
    // The next finished task's value (rethrowing its exception, or TaskCancelled), or nullopt
    // when the set is empty.
    std::optional<Result> await_resume() {
      if (set_.done_.empty()) return std::nullopt;
      auto it = set_.done_.begin();
      JoinHandle<T> handle = std::move(it->handle);
      set_.done_.erase(it);
      return detail::take_stored<T>(handle);
    }

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
    if (done_.empty()) return std::nullopt;
    auto it = done_.begin();
    JoinHandle<T> handle = std::move(it->handle);
    done_.erase(it);
    return detail::take_stored<T>(handle);
  }

 private:
  static void on_finished(detail::Waiter* base) noexcept {
    auto* e = static_cast<Entry*>(base);
    e->registered = false;
    JoinSet* set = e->set;
    set->done_.splice(set->done_.end(), set->running_, e->self);
    if (detail::Waiter* w = std::exchange(set->waiter_, nullptr)) w->notify();
  }

  void clear() noexcept {
    for (Entry& e : running_) {
      if (e.registered) detail::unregister_join_waiter(e.handle.cell());
    }
    running_.clear();
    done_.clear();
  }

  std::list<Entry> running_;
  std::list<Entry> done_;
  detail::Waiter* waiter_ = nullptr;
};

}  // namespace deja
