// deja::JoinHandle<T>: the owner's view of a spawned task. Await it for the value (or the task's
// exception), abort() it, or detach() it; dropping it detaches, as in Tokio.
#pragma once

#include <coroutine>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/errors.hpp"
#include "deja/task.hpp"

namespace deja {

template <class T>
class [[nodiscard]] JoinHandle {
 public:
  using Cell = detail::TaskHeader;

  JoinHandle() noexcept = default;
  explicit JoinHandle(Cell* cell) noexcept : cell_(cell) {}
  JoinHandle(JoinHandle&& other) noexcept : cell_(std::exchange(other.cell_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& other) noexcept {
    if (this != &other) {
      detach();
      cell_ = std::exchange(other.cell_, nullptr);
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  ~JoinHandle() { detach(); }

  // False once the result was taken, or after detach() or a move.
  bool valid() const noexcept { return cell_ != nullptr; }

  // True once the task has finished (value, exception or cancellation). False for an empty handle.
  bool is_finished() const noexcept { return cell_ && cell_->is_complete(); }

  // Requests cancellation; the task is destroyed at its current suspension point. Awaiting the
  // handle afterwards throws TaskCancelled unless the task had already finished. No-op on a
  // finished task or an empty handle.
  void abort() noexcept {
    if (cell_ && !cell_->is_complete()) cell_->scheduler->abort(cell_);
  }

  // Lets the task run on without an owner. Idempotent.
  void detach() noexcept {
    if (cell_) std::exchange(cell_, nullptr)->release();
  }

  // Takes the result of a finished task without awaiting: the value, or rethrows the task's
  // exception (TaskCancelled if it was aborted). Empties the handle. Throws UsageError if the task
  // has not finished or the handle is empty.
  T take_finished() {
    if (!cell_) throw UsageError("deja: take_finished on an empty JoinHandle");
    if (!cell_->is_complete()) throw UsageError("deja: take_finished on a task that has not finished");
    Cell* cell = std::exchange(cell_, nullptr);
    struct Release {
      Cell* c;
      ~Release() { c->release(); }
    } release{cell};
    if (cell->was_destroyed()) throw TaskCancelled();
    auto* slot = std::launder(static_cast<detail::ResultSlot<detail::StoredType<T>>*>(detail::dead_result(cell->frame_address())));
    if constexpr (std::is_void_v<T>) {
      slot->take();
    } else {
      return slot->take();
    }
  }

  // A stable id, unique within the runtime that spawned the task.
  std::uint64_t id() const noexcept { return cell_ ? cell_->id : 0; }

  class Awaiter {
   public:
    explicit Awaiter(JoinHandle& h) noexcept : handle_(h) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (registered_) detail::unregister_join_waiter(handle_.cell_);
    }

    bool await_ready() const {
      if (!handle_.cell_) throw UsageError("deja: awaiting an empty JoinHandle (already joined, detached or moved from)");
      return handle_.cell_->is_complete();
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "join");
      registered_ = detail::register_join_waiter(handle_.cell_, &waiter_);
      return registered_;
    }
    T await_resume() {
      registered_ = false;
      return handle_.take_finished();
    }

   private:
    JoinHandle& handle_;
    detail::Waiter waiter_;
    bool registered_ = false;
  };

  Awaiter operator co_await() & noexcept { return Awaiter{*this}; }
  Awaiter operator co_await() && noexcept { return Awaiter{*this}; }

  Cell* cell() const noexcept { return cell_; }

 private:
  Cell* cell_ = nullptr;
};

}  // namespace deja
