// Completion-based I/O on the io_uring reactor: an operation is handed to the kernel, which does
// it and reports the result, instead of the task waiting for readiness and then making the system
// call itself. Submissions are batched: the runtime hands everything queued to the kernel in one
// io_uring_enter per turn of its loop, which is where io_uring saves system calls over epoll.
//
// Reach it with current_uring(): non-null on a runtime built with RuntimeOptions::io =
// IoBackend::kUring that got it (deja::net uses it for TCP streams by itself). The current-thread
// runtime has one ring; the multi-thread runtime has one per worker, and an operation goes to the
// ring of the worker its task runs on when it is awaited.
#pragma once

#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>

#include "deja/context.hpp"
#include "deja/detail/waiter.hpp"

namespace deja {

namespace detail {
class UringReactor;
}

class IoUring {
 public:
  // One operation, awaited once. co_await yields the kernel's result: a count or value (>= 0), or
  // a negated errno (-ECONNRESET, ...). Destroying the awaiting task while the operation is in
  // flight cancels it and waits for the kernel to let go of the buffer before the frame goes, so
  // cancellation by destruction is safe as everywhere else in deja. Awaiting it anywhere but on a
  // task of the ring's own runtime completes at once with -EXDEV.
  class Operation {
   public:
    Operation(const Operation&) = delete;
    Operation& operator=(const Operation&) = delete;
    ~Operation() {
      // In flight: cancelled, or completed by the reaper meanwhile (which may wake the task as
      // it is being destroyed); either way it is idle on return.
      if (state_.load(std::memory_order_acquire) != kIdle) ring_->cancel_and_wait(*this);
      if (undelivered_ && worth_handing_back(result_) && abandoned_fn_ != nullptr) {
        // Completed and woken, but its task was destroyed before it resumed to take the result.
        abandoned_fn_(abandoned_context_, static_cast<const std::byte*>(data_), result_);
      }
    }

    // Called if the operation completes with a result its task never takes: the task was
    // destroyed while the operation was in flight, or after it completed but before the task
    // resumed. The result is a count (> 0), or an error (a negated errno other than the
    // cancellation's own -ECANCELED / -EINTR / -EAGAIN) that the kernel reported once and will
    // not report again (a recv's -ECONNRESET: the socket's next recv says end of stream). A
    // stream keeps the bytes such a recv took from the socket, or its error, for its next read
    // instead of losing them. `fn` gets `context`, the buffer and the result; it must not throw.
    void on_abandoned_completion(void (*fn)(void* context, const std::byte* data, std::int32_t count) noexcept, void* context) noexcept {
      abandoned_fn_ = fn;
      abandoned_context_ = context;
    }

    bool await_ready() const noexcept { return false; }
    // Queues the operation; false (not suspending, with the error as the result) if it cannot be.
    bool await_suspend(std::coroutine_handle<> h) noexcept;
    std::int32_t await_resume() noexcept {
      undelivered_ = false;
      return result_;
    }

   private:
    friend class IoUring;
    friend class detail::UringReactor;
    enum class Kind : std::uint8_t { kRecv, kSend, kRead, kWrite };
    // Who may touch the operation. The ring's reaper can be another thread than the awaiting
    // task's (multi-thread runtime): it moves kInFlight or kAbandoned to kNotifying, wakes the
    // task (or keeps an abandoned recv's bytes), then stores kIdle and never looks at the
    // operation again. A destructor that finds it in flight moves it to kAbandoned, has it
    // cancelled, and waits for kIdle, so neither frees what the other still uses.
    static constexpr std::uint8_t kIdle = 0, kInFlight = 1, kAbandoned = 2, kNotifying = 3;
    // Whether a result nobody took goes to on_abandoned_completion: bytes, or a real error.
    static bool worth_handing_back(std::int32_t result) noexcept {
      return result > 0 || (result < 0 && result != -ECANCELED && result != -EINTR && result != -EAGAIN);
    }
    Operation(IoUring* ring, Kind kind, int fd, void* data, std::uint32_t size, std::uint64_t offset, int flags) noexcept
        : ring_(ring), kind_(kind), fd_(fd), flags_(flags), data_(data), size_(size), offset_(offset) {}

    IoUring* ring_;  // the ring it is queued on once awaited
    Kind kind_;
    std::atomic<std::uint8_t> state_{kIdle};
    bool undelivered_ = false;  // completed and its task woken, result not taken yet
    int fd_;
    int flags_;
    void* data_;
    std::uint32_t size_;
    std::uint64_t offset_;
    std::int32_t result_ = 0;
    std::uint32_t sqe_pos_ = 0;  // its submission slot (liburing's count), to tell whether the kernel has seen it
    detail::Waiter waiter_;
    void (*abandoned_fn_)(void*, const std::byte*, std::int32_t) noexcept = nullptr;
    void* abandoned_context_ = nullptr;
  };

  // recv(2) / send(2) with `flags` (MSG_NOSIGNAL is the caller's to add). Buffers longer than
  // 2^32 - 1 bytes are cut to that (a short count, as the system calls allow).
  Operation recv(int fd, std::span<std::byte> buf, int flags) noexcept {
    return {this, Operation::Kind::kRecv, fd, buf.data(), clamp(buf.size()), 0, flags};
  }
  Operation send(int fd, std::span<const std::byte> buf, int flags) noexcept {
    return {this, Operation::Kind::kSend, fd, const_cast<std::byte*>(buf.data()), clamp(buf.size()), 0, flags};
  }
  // pread(2) / pwrite(2) at `offset`; the offset -1 (as u64) means the file position.
  Operation read(int fd, std::span<std::byte> buf, std::uint64_t offset) noexcept {
    return {this, Operation::Kind::kRead, fd, buf.data(), clamp(buf.size()), offset, 0};
  }
  Operation write(int fd, std::span<const std::byte> buf, std::uint64_t offset) noexcept {
    return {this, Operation::Kind::kWrite, fd, const_cast<std::byte*>(buf.data()), clamp(buf.size()), offset, 0};
  }

 protected:
  IoUring() = default;
  ~IoUring() = default;
  // Queues `op` for the next submission; returns 0, or the negated errno that fails it.
  virtual std::int32_t submit(Operation& op) noexcept = 0;
  // Cancels `op` (in flight) and returns once the kernel has completed it either way.
  virtual void cancel_and_wait(Operation& op) noexcept = 0;

 private:
  static std::uint32_t clamp(std::size_t n) noexcept { return n > 0xFFFFFFFFu ? 0xFFFFFFFFu : static_cast<std::uint32_t>(n); }
};

// The io_uring of the runtime current on this thread, or null (no runtime, or another backend).
IoUring* current_uring() noexcept;

}  // namespace deja
