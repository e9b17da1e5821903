// deja::Task<T>: a lazy, move-only coroutine. Awaiting it runs it; its result or exception comes
// back to the awaiter. Spawning it (deja::spawn) makes it an independently scheduled task.
#pragma once

#include <cassert>
#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/errors.hpp"

namespace deja {

template <class T = void>
class Task;

namespace detail {

// How an awaited child and its awaiter agree on who continues the parent. The awaiter resumes the
// child inline; if the child finishes before that call returns, await_suspend returns false and the
// parent simply goes on, so a loop of a million synchronously completing awaits uses no stack,
// whatever the compiler does with symmetric transfer (g++ 12 under ASan does not tail-call it).
enum class InlineState : unsigned char { kIdle, kStarting, kFinishedInline, kSuspended, kSpawnedRoot };

template <class T>
using StoredType = std::conditional_t<std::is_void_v<T>, Unit, T>;

template <class T>
class Promise;

template <class T>
struct FinalAwaiter {
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise<T>> h) noexcept;
  void await_resume() const noexcept {}
};

// Every Task frame is allocated with a TaskHeader prefix (task_header.hpp), used if it is spawned.
template <class T>
class PromiseStorage {
 public:
  static void* operator new(std::size_t n) { return allocate_task_frame(n); }
  static void operator delete(void* p, std::size_t n) noexcept { deallocate_task_frame(p, n); }

  PromiseStorage() = default;
  PromiseStorage(const PromiseStorage&) = delete;
  PromiseStorage& operator=(const PromiseStorage&) = delete;
  ~PromiseStorage() = default;

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter<T> final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { result.set_exception(std::current_exception()); }

  InlineState inline_state() const noexcept { return static_cast<InlineState>(result.spare); }
  void set_inline_state(InlineState s) noexcept { result.spare = static_cast<std::uint8_t>(s); }

  std::coroutine_handle<> continuation;
  ResultSlot<StoredType<T>> result;
};

template <class T>
class Promise : public PromiseStorage<T> {
 public:
  Task<T> get_return_object() noexcept;

  template <class U = T>
    requires(std::is_convertible_v<U &&, T>)
  void return_value(U&& v) {
    this->result.set_value(std::forward<U>(v));
  }
};

template <>
class Promise<void> : public PromiseStorage<void> {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept { result.set_value(); }
};

template <class T>
std::coroutine_handle<> FinalAwaiter<T>::await_suspend(std::coroutine_handle<Promise<T>> h) noexcept {
  Promise<T>& p = h.promise();
  if (p.inline_state() == InlineState::kSpawnedRoot) {
    // The root of a spawned task (only spawned frames are known to have the header prefix: clang
    // may elide the allocation of a frame that is simply awaited). Its frame goes now, so that
    // what its locals and parameters hold is released as soon as it finishes; the result moves
    // into the dead frame's bytes, where the JoinHandle takes it.
    using Slot = ResultSlot<StoredType<T>>;
    static_assert(alignof(Slot) <= kDeadResultOffset, "a spawned task's result type is over-aligned");
    Slot result;
    result.take_from(p.result);
    const std::uint32_t outcome = result.has_exception() ? static_cast<std::uint32_t>(kFailed) : 0u;
    void* frame = h.address();
    TaskHeader* header = header_of_frame(frame);
    h.destroy();  // the header holds references, so the block stays (a DeadFrame)
    ::new (dead_result(frame)) Slot();
    std::launder(static_cast<Slot*>(dead_result(frame)))->take_from(result);
    dead_frame(frame)->destroy_result = [](void* slot) noexcept {
      auto* s = std::launder(static_cast<Slot*>(slot));
      if (s->has_exception()) report_unobserved_exception(s->exception());
      s->~Slot();
    };
    complete_task(header, outcome);
    return std::noop_coroutine();
  }
  if (p.inline_state() == InlineState::kStarting) {
    p.set_inline_state(InlineState::kFinishedInline);
    return std::noop_coroutine();
  }
  return p.continuation;
}

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  explicit Task(Handle h) noexcept : handle_(h) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  // False for a moved-from or default-constructed Task: awaiting one throws UsageError.
  bool valid() const noexcept { return static_cast<bool>(handle_); }
  explicit operator bool() const noexcept { return valid(); }

  class Awaiter {
   public:
    explicit Awaiter(Handle h) noexcept : handle_(h) {}

    bool await_ready() const {
      if (!handle_) throw UsageError("deja: awaiting a moved-from or empty Task");
      if (handle_.done() || handle_.promise().inline_state() != detail::InlineState::kIdle) {
        throw UsageError("deja: a Task can be awaited only once");
      }
      return false;
    }

    bool await_suspend(std::coroutine_handle<> parent) noexcept {
      auto& p = handle_.promise();
      p.continuation = parent;
      p.set_inline_state(detail::InlineState::kStarting);
      handle_.resume();
      if (p.inline_state() == detail::InlineState::kFinishedInline) return false;
      // The child suspended somewhere below; it transfers back to `parent` when it finishes.
      p.set_inline_state(detail::InlineState::kSuspended);
      return true;
    }

    T await_resume() {
      if constexpr (std::is_void_v<T>) {
        handle_.promise().result.take();
      } else {
        return handle_.promise().result.take();
      }
    }

   private:
    Handle handle_;
  };

  Awaiter operator co_await() && noexcept { return Awaiter{handle_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{handle_}; }

  // For the runtime: gives up ownership of the frame.
  Handle release() noexcept { return std::exchange(handle_, nullptr); }

 private:
  void reset() noexcept {
    if (handle_) std::exchange(handle_, nullptr).destroy();
  }

  Handle handle_;
};

namespace detail {

template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>{std::coroutine_handle<Promise<T>>::from_promise(*this)};
}

inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>{std::coroutine_handle<Promise<void>>::from_promise(*this)};
}

}  // namespace detail

}  // namespace deja
