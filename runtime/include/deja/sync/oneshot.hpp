// deja::oneshot: a channel for exactly one value, from one Sender to one Receiver, like
// tokio::sync::oneshot.
//
//   auto [tx, rx] = deja::oneshot::channel<int>();
//   std::error_code ec = tx.send(42);  // kClosed if the receiver is gone (the value is dropped)
//   int v = co_await rx;               // or co_await rx.recv()
//
// Awaiting the receiver returns the value, or throws std::system_error with ChannelErrc::kClosed
// if the sender was dropped without sending. Awaiting it again after the value was received
// throws UsageError. Destroying a task suspended in the receive (abort) loses nothing: the value,
// once sent, stays in the channel until a receive takes it or the Receiver is dropped.
//
// One allocation per channel: the shared state, freed by whichever end leaves last. The Receiver
// must outlive the awaitables made from it.
#pragma once

#include <cassert>
#include <coroutine>
#include <mutex>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/sync/channel_error.hpp"

namespace deja::oneshot {

template <class T>
class Sender;
template <class T>
class Receiver;

namespace detail {

template <class T>
struct State {
  std::mutex lock;
  std::optional<T> value;  // sent and not yet received
  bool taken = false;      // a receive took the value
  bool sender_alive = true;
  bool receiver_alive = true;
  deja::detail::WaitList waiters;  // receives suspended on this channel

  void wake_all_locked() noexcept {
    while (deja::detail::Waiter* w = waiters.pop_front()) w->notify();
  }
};

}  // namespace detail

// Awaitable of Receiver::recv (and of co_await on the Receiver).
template <class T>
class [[nodiscard]] RecvAwaiter {
 public:
  explicit RecvAwaiter(detail::State<T>* state) noexcept : state_(state) {}
  // Movable until awaited (the combinators take awaitables by value).
  RecvAwaiter(RecvAwaiter&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : state_(other.state_), result_(std::move(other.result_)) {
    assert(!other.suspended_);
  }
  RecvAwaiter(const RecvAwaiter&) = delete;
  RecvAwaiter& operator=(const RecvAwaiter&) = delete;
  RecvAwaiter& operator=(RecvAwaiter&&) = delete;

  ~RecvAwaiter() {
    if (!suspended_) return;
    // Linked: unlink. Woken but destroyed before it ran: the value is still in the channel.
    std::lock_guard guard(state_->lock);
    if (waiter_.linked) state_->waiters.remove(waiter_);
  }

  bool await_ready() {
    if (state_ == nullptr) throw UsageError("deja::oneshot: receiving on an empty Receiver");
    std::lock_guard guard(state_->lock);
    return try_locked();
  }

  bool await_suspend(std::coroutine_handle<> h) {
    waiter_.task = deja::detail::park_current(h, "oneshot recv");
    std::lock_guard guard(state_->lock);
    if (try_locked()) return false;
    suspended_ = true;
    state_->waiters.push_back(waiter_);
    return true;
  }

  // The value; throws std::system_error(ChannelErrc::kClosed) if the sender was dropped without
  // sending.
  T await_resume() {
    if (suspended_) {
      // Woken by the send or by the sender's drop: either way there is an answer now.
      std::lock_guard guard(state_->lock);
      suspended_ = false;
      [[maybe_unused]] const bool done = try_locked();
      assert(done);
    }
    if (!result_) {
      throw std::system_error(make_error_code(ChannelErrc::kClosed), "deja::oneshot: the sender was dropped without sending");
    }
    return std::move(*result_);
  }

 private:
  bool try_locked() {
    if (state_->taken) throw UsageError("deja::oneshot: the value was already received");
    if (state_->value) {
      result_.emplace(std::move(*state_->value));
      state_->value.reset();
      state_->taken = true;
      return true;
    }
    return !state_->sender_alive;
  }

  detail::State<T>* state_;
  std::optional<T> result_;
  deja::detail::Waiter waiter_;
  bool suspended_ = false;
};

// The sending half: move-only, used once.
template <class T>
class Sender {
 public:
  Sender() noexcept = default;  // empty: send throws UsageError
  Sender(Sender&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Sender& operator=(Sender&& other) noexcept {
    if (this != &other) {
      reset();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;
  ~Sender() { reset(); }

  // False once it has sent, or after a move.
  bool valid() const noexcept { return state_ != nullptr; }

  // Delivers `value` and empties this Sender. {} on success; kClosed if the receiver is gone (the
  // value is not taken from the argument and is dropped with it). Throws UsageError on an empty
  // Sender (one that already sent, or was moved from). If constructing the value throws, the
  // exception propagates and nothing was sent: the Sender still holds the channel.
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  std::error_code send(U&& value) {
    if (state_ == nullptr) throw UsageError("deja::oneshot: send on an empty Sender (already sent, or moved from)");
    detail::State<T>* s = std::exchange(state_, nullptr);
    std::error_code result;
    bool last;
    {
      std::lock_guard guard(s->lock);
      if (s->receiver_alive) {
        try {
          s->value.emplace(std::forward<U>(value));
        } catch (...) {
          state_ = s;  // nothing was sent: the Sender keeps the channel (and is dropped as usual)
          throw;
        }
        s->wake_all_locked();
      } else {
        result = make_error_code(ChannelErrc::kClosed);
      }
      s->sender_alive = false;
      last = !s->receiver_alive;
    }
    if (last) delete s;
    return result;
  }

  // True once the Receiver is gone: a send would fail.
  bool is_closed() const {
    if (state_ == nullptr) throw UsageError("deja::oneshot: is_closed on an empty Sender");
    std::lock_guard guard(state_->lock);
    return !state_->receiver_alive;
  }

 private:
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> channel();

  explicit Sender(detail::State<T>* s) noexcept : state_(s) {}

  void reset() noexcept {
    if (state_ == nullptr) return;
    detail::State<T>* s = std::exchange(state_, nullptr);
    bool last;
    {
      std::lock_guard guard(s->lock);
      s->sender_alive = false;
      s->wake_all_locked();  // they resume with kClosed
      last = !s->receiver_alive;
    }
    if (last) delete s;
  }

  detail::State<T>* state_ = nullptr;
};

// The receiving half: move-only. Await it (or recv()) for the value.
template <class T>
class Receiver {
 public:
  Receiver() noexcept = default;  // empty: receiving throws UsageError
  Receiver(Receiver&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Receiver& operator=(Receiver&& other) noexcept {
    if (this != &other) {
      reset();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() { reset(); }

  bool valid() const noexcept { return state_ != nullptr; }

  RecvAwaiter<T> recv() noexcept { return RecvAwaiter<T>(state_); }
  RecvAwaiter<T> operator co_await() & noexcept { return recv(); }
  RecvAwaiter<T> operator co_await() && noexcept { return recv(); }

  // The value if it has arrived. Otherwise nullopt, and `ec` says why: kEmpty (not yet) or
  // kClosed (the sender was dropped without sending, or the value was already received).
  std::optional<T> try_recv(std::error_code& ec) {
    if (state_ == nullptr) throw UsageError("deja::oneshot: try_recv on an empty Receiver");
    std::optional<T> out;
    std::lock_guard guard(state_->lock);
    if (state_->value) {
      out.emplace(std::move(*state_->value));
      state_->value.reset();
      state_->taken = true;
      ec.clear();
    } else {
      ec = make_error_code(state_->sender_alive && !state_->taken ? ChannelErrc::kEmpty : ChannelErrc::kClosed);
    }
    return out;
  }
  std::optional<T> try_recv() {
    std::error_code ec;
    return try_recv(ec);
  }

 private:
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> channel();

  explicit Receiver(detail::State<T>* s) noexcept : state_(s) {}

  void reset() noexcept {
    if (state_ == nullptr) return;
    detail::State<T>* s = std::exchange(state_, nullptr);
    std::optional<T> dropped;  // destroyed after the lock is released
    bool last;
    {
      std::lock_guard guard(s->lock);
      s->receiver_alive = false;
      dropped.swap(s->value);
      last = !s->sender_alive;
    }
    if (last) delete s;
  }

  detail::State<T>* state_ = nullptr;
};

template <class T>
std::pair<Sender<T>, Receiver<T>> channel() {
  auto* s = new detail::State<T>();
  return {Sender<T>(s), Receiver<T>(s)};
}

}  // namespace deja::oneshot
