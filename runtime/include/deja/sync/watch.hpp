// deja::watch: one value that a Sender updates and any number of Receivers observe, like
// tokio::sync::watch. Only the latest value is kept; receivers wait for it to change.
//
//   auto [tx, rx] = deja::watch::channel<Config>(initial);
//   tx.send(next);                            // kClosed if no receiver exists (still stored)
//   std::error_code ec = co_await rx.changed();  // kClosed once the sender is gone
//   Config c = rx.borrow_and_update();
//
// Each Receiver remembers the version it last saw (the initial value counts as seen). changed()
// completes, marking the newest version seen, once a version newer than that exists; if there is
// none and the sender is gone it completes with kClosed. borrow() returns a copy of the value,
// taken under the channel's lock. Destroying a task suspended in changed() (abort) leaves the
// receiver's seen version untouched. A Receiver must outlive the awaitables made from it.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <type_traits>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/sync/channel_error.hpp"

namespace deja::watch {

template <class T>
class Sender;
template <class T>
class Receiver;

namespace detail {

template <class T>
struct State {
  template <class U>
  explicit State(U&& v) : value(std::forward<U>(v)) {}

  std::mutex lock;
  T value;
  std::uint64_t version = 0;  // bumped by every send
  bool sender_alive = true;
  std::size_t receivers = 1;
  deja::detail::WaitList waiters;  // suspended changed() calls

  void wake_all_locked() noexcept {
    while (deja::detail::Waiter* w = waiters.pop_front()) w->notify();
  }
};

inline void require(const void* state, const char* what) {
  if (state == nullptr) throw UsageError(what);
}

}  // namespace detail

// Awaitable of Receiver::changed.
template <class T>
class [[nodiscard]] ChangedAwaiter {
 public:
  explicit ChangedAwaiter(Receiver<T>& rx) noexcept : rx_(&rx) {}
  // Movable until awaited (the combinators take awaitables by value).
  ChangedAwaiter(ChangedAwaiter&& other) noexcept : rx_(other.rx_), result_(other.result_) { assert(!other.suspended_); }
  ChangedAwaiter(const ChangedAwaiter&) = delete;
  ChangedAwaiter& operator=(const ChangedAwaiter&) = delete;
  ChangedAwaiter& operator=(ChangedAwaiter&&) = delete;

  ~ChangedAwaiter() {
    if (!suspended_) return;
    // Linked: unlink. Woken but destroyed before it ran: the new version stays unseen.
    std::lock_guard guard(rx_->state_->lock);
    if (waiter_.linked) rx_->state_->waiters.remove(waiter_);
  }

  bool await_ready() {
    detail::require(rx_->state_, "deja::watch: changed on an empty Receiver");
    std::lock_guard guard(rx_->state_->lock);
    return try_locked();
  }

  bool await_suspend(std::coroutine_handle<> h) noexcept {
    waiter_.task = deja::detail::park_current(h, "watch changed");
    std::lock_guard guard(rx_->state_->lock);
    if (try_locked()) return false;
    suspended_ = true;
    rx_->state_->waiters.push_back(waiter_);
    return true;
  }

  // {} once a newer version exists (now marked seen); kClosed if the sender is gone and there is
  // nothing newer.
  std::error_code await_resume() noexcept {
    if (suspended_) {
      // Woken by a send (a newer version exists) or by the sender's drop.
      std::lock_guard guard(rx_->state_->lock);
      suspended_ = false;
      [[maybe_unused]] const bool done = try_locked();
      assert(done);
    }
    return result_;
  }

 private:
  bool try_locked() noexcept {
    auto& s = *rx_->state_;
    if (s.version != rx_->seen_) {
      rx_->seen_ = s.version;
      result_.clear();
      return true;
    }
    if (!s.sender_alive) {
      result_ = make_error_code(ChannelErrc::kClosed);
      return true;
    }
    return false;
  }

  Receiver<T>* rx_;
  std::error_code result_;
  deja::detail::Waiter waiter_;
  bool suspended_ = false;
};

// An observer: copyable (a copy starts with the same seen version).
template <class T>
class Receiver {
 public:
  Receiver() noexcept = default;  // empty: every operation but assignment throws UsageError
  Receiver(const Receiver& other) : state_(other.state_), seen_(other.seen_) {
    if (state_) {
      std::lock_guard guard(state_->lock);
      ++state_->receivers;
    }
  }
  Receiver(Receiver&& other) noexcept : state_(std::exchange(other.state_, nullptr)), seen_(other.seen_) {}
  Receiver& operator=(Receiver other) noexcept {
    std::swap(state_, other.state_);
    std::swap(seen_, other.seen_);
    return *this;
  }
  ~Receiver() { reset(); }

  bool valid() const noexcept { return state_ != nullptr; }

  // Completes once there is a version this receiver has not seen (and marks it seen), or with
  // kClosed when the sender is gone and there is none.
  ChangedAwaiter<T> changed() noexcept { return ChangedAwaiter<T>(*this); }

  // A copy of the current value; does not mark it seen.
  T borrow() const {
    detail::require(state_, "deja::watch: borrow on an empty Receiver");
    std::lock_guard guard(state_->lock);
    return state_->value;
  }

  // A copy of the current value, which is marked seen.
  T borrow_and_update() {
    detail::require(state_, "deja::watch: borrow_and_update on an empty Receiver");
    std::lock_guard guard(state_->lock);
    seen_ = state_->version;
    return state_->value;
  }

  // True if a version this receiver has not seen exists.
  bool has_changed() const {
    detail::require(state_, "deja::watch: has_changed on an empty Receiver");
    std::lock_guard guard(state_->lock);
    return state_->version != seen_;
  }

 private:
  friend class Sender<T>;
  friend class ChangedAwaiter<T>;
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> channel(U initial);

  Receiver(detail::State<T>* state, std::uint64_t seen) noexcept : state_(state), seen_(seen) {}

  void reset() noexcept {
    if (state_ == nullptr) return;
    bool last;
    {
      std::lock_guard guard(state_->lock);
      --state_->receivers;
      last = state_->receivers == 0 && !state_->sender_alive;
    }
    if (last) delete state_;
    state_ = nullptr;
  }

  detail::State<T>* state_ = nullptr;
  std::uint64_t seen_ = 0;
};

// The one writer: move-only. Dropping it closes the channel (changed() reports kClosed).
template <class T>
class Sender {
 public:
  Sender() noexcept = default;  // empty: every operation but assignment throws UsageError
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

  bool valid() const noexcept { return state_ != nullptr; }

  // Replaces the value (the old one is destroyed outside the lock), makes it a new version and
  // wakes every waiting receiver. Returns kClosed if no receiver exists right now; the value is
  // stored anyway, for borrow() and for receivers subscribed later.
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  std::error_code send(U&& value) {
    detail::require(state_, "deja::watch: send on an empty Sender");
    T incoming(std::forward<U>(value));  // after the swap: the old value, destroyed unlocked
    std::lock_guard guard(state_->lock);
    using std::swap;
    swap(state_->value, incoming);
    ++state_->version;
    state_->wake_all_locked();
    return state_->receivers == 0 ? make_error_code(ChannelErrc::kClosed) : std::error_code{};
  }

  // A copy of the current value.
  T borrow() const {
    detail::require(state_, "deja::watch: borrow on an empty Sender");
    std::lock_guard guard(state_->lock);
    return state_->value;
  }

  // A new receiver, which has seen the current value.
  Receiver<T> subscribe() {
    detail::require(state_, "deja::watch: subscribe on an empty Sender");
    std::lock_guard guard(state_->lock);
    ++state_->receivers;
    return Receiver<T>(state_, state_->version);
  }

  std::size_t receiver_count() const {
    detail::require(state_, "deja::watch: receiver_count on an empty Sender");
    std::lock_guard guard(state_->lock);
    return state_->receivers;
  }

 private:
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> channel(U initial);

  explicit Sender(detail::State<T>* state) noexcept : state_(state) {}

  void reset() noexcept {
    if (state_ == nullptr) return;
    bool last;
    {
      std::lock_guard guard(state_->lock);
      state_->sender_alive = false;
      state_->wake_all_locked();  // they resume with kClosed, unless a version is unseen
      last = state_->receivers == 0;
    }
    if (last) delete state_;
    state_ = nullptr;
  }

  detail::State<T>* state_ = nullptr;
};

// A channel holding `initial`, and its first receiver (which has seen `initial`).
template <class T>
std::pair<Sender<T>, Receiver<T>> channel(T initial) {
  auto* state = new detail::State<T>(std::move(initial));
  return {Sender<T>(state), Receiver<T>(state, state->version)};
}

}  // namespace deja::watch
