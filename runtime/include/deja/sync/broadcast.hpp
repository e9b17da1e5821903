// deja::broadcast: multi-producer, multi-consumer channel where every receiver gets a copy of
// every message sent after it subscribed, like tokio::sync::broadcast.
//
//   auto [tx, rx] = deja::broadcast::channel<int>(16);
//   auto rx2 = tx.subscribe();
//   tx.send(1);                                // kClosed if there are no receivers
//   deja::broadcast::RecvResult<int> r = co_await rx.recv();
//
// The channel keeps the last `capacity` messages in a ring. A receiver that fell further behind
// gets one ChannelErrc::kLagged result whose `missed` says how many messages it lost, then goes on
// from the oldest message kept. Once every sender is gone and a receiver has read everything, it
// gets kClosed. Senders never wait.
//
// Destroying a task suspended in recv() (abort) loses nothing: the receiver's position is only
// advanced by a receive that returns (not by one that throws copying or moving the message). A Receiver must outlive the awaitables made from it, and is
// used by one task at a time.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/sync/channel_error.hpp"

namespace deja::broadcast {

// The largest capacity of a channel (its ring is allocated up front).
inline constexpr std::size_t kMaxCapacity = std::size_t{1} << 26;

// What a receive gives: a value, or an error: kLagged (with `missed`), kClosed, or (try_recv
// only) kEmpty.
template <class T>
struct RecvResult {
  std::optional<T> value;
  std::error_code error;
  std::uint64_t missed = 0;  // with kLagged: how many messages this receiver lost

  bool has_value() const noexcept { return value.has_value(); }
  explicit operator bool() const noexcept { return value.has_value(); }
  T& operator*() & { return *value; }
  T&& operator*() && { return std::move(*value); }
  T* operator->() { return &*value; }
};

template <class T>
class Sender;
template <class T>
class Receiver;

namespace detail {

template <class T>
struct Chan {
  explicit Chan(std::size_t cap) : slots(std::make_unique<std::optional<T>[]>(cap)), capacity(cap) {}

  std::mutex lock;
  std::unique_ptr<std::optional<T>[]> slots;  // message `seq` lives in slots[seq % capacity]
  const std::size_t capacity;
  std::uint64_t tail = 0;  // sequence number of the next message
  std::size_t senders = 1;
  std::size_t receivers = 1;
  deja::detail::WaitList waiters;  // suspended receives

  std::uint64_t oldest() const noexcept { return tail > capacity ? tail - capacity : 0; }

  // A receive at position `next`: fills `out` and advances `next`, or returns false (nothing new).
  bool take_locked(std::uint64_t& next, RecvResult<T>& out) {
    if (next < tail) {
      if (next < oldest()) {
        out.missed = oldest() - next;
        out.error = make_error_code(ChannelErrc::kLagged);
        next = oldest();
        return true;
      }
      out.value = slots[next % capacity];  // a copy per receiver
      ++next;
      return true;
    }
    if (senders == 0) {
      out.error = make_error_code(ChannelErrc::kClosed);
      return true;
    }
    return false;
  }

  void wake_all_locked() noexcept {
    while (deja::detail::Waiter* w = waiters.pop_front()) w->notify();
  }
};

inline void require(const void* chan, const char* what) {
  if (chan == nullptr) throw UsageError(what);
}

}  // namespace detail

// Awaitable of Receiver::recv.
template <class T>
class [[nodiscard]] RecvAwaiter {
 public:
  explicit RecvAwaiter(Receiver<T>& rx) noexcept : rx_(&rx) {}
  // Movable until awaited (the combinators take awaitables by value).
  RecvAwaiter(RecvAwaiter&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : rx_(other.rx_), result_(std::move(other.result_)) {
    assert(!other.suspended_);
  }
  RecvAwaiter(const RecvAwaiter&) = delete;
  RecvAwaiter& operator=(const RecvAwaiter&) = delete;
  RecvAwaiter& operator=(RecvAwaiter&&) = delete;

  ~RecvAwaiter() {
    if (!suspended_) return;
    // Linked: unlink. Woken but destroyed before it ran: the message stays for the next recv.
    std::lock_guard guard(rx_->chan_->lock);
    if (waiter_.linked) rx_->chan_->waiters.remove(waiter_);
  }

  bool await_ready() {
    detail::require(rx_->chan_, "deja::broadcast: recv on an empty Receiver");
    std::lock_guard guard(rx_->chan_->lock);
    return rx_->chan_->take_locked(rx_->next_, result_);
  }

  bool await_suspend(std::coroutine_handle<> h) {
    waiter_.task = deja::detail::park_current(h, "broadcast recv");
    std::lock_guard guard(rx_->chan_->lock);
    if (rx_->chan_->take_locked(rx_->next_, result_)) return false;
    suspended_ = true;
    rx_->chan_->waiters.push_back(waiter_);
    return true;
  }

  RecvResult<T> await_resume() {
    if (suspended_) {
      // Woken by a send (a message past next_ exists, or was overwritten: lagged) or by the last
      // sender's drop: either way there is an answer.
      std::lock_guard guard(rx_->chan_->lock);
      suspended_ = false;
      // (Only a second task receiving through the same Receiver at once, a misuse, can find
      // nothing: it gets kEmpty.)
      if (!rx_->chan_->take_locked(rx_->next_, result_)) result_.error = make_error_code(ChannelErrc::kEmpty);
    }
    if (!result_.value) return std::move(result_);
    try {
      return std::move(result_);
    } catch (...) {
      // The message could not be handed over (T's move, or its copy if it has no move, threw):
      // the next receive gets it again, or counts it as missed if the ring overwrote it since.
      std::lock_guard guard(rx_->chan_->lock);
      --rx_->next_;
      throw;
    }
  }

 private:
  Receiver<T>* rx_;
  RecvResult<T> result_;
  deja::detail::Waiter waiter_;
  bool suspended_ = false;
};

// A subscription: move-only. Sees every message sent after it was created.
template <class T>
class Receiver {
 public:
  Receiver() noexcept = default;  // empty: every operation but assignment throws UsageError
  Receiver(Receiver&& other) noexcept : chan_(std::exchange(other.chan_, nullptr)), next_(other.next_) {}
  Receiver& operator=(Receiver&& other) noexcept {
    if (this != &other) {
      reset();
      chan_ = std::exchange(other.chan_, nullptr);
      next_ = other.next_;
    }
    return *this;
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() { reset(); }

  bool valid() const noexcept { return chan_ != nullptr; }

  // The next message; kLagged (once, with the count) if this receiver fell behind the ring, then
  // it continues from the oldest message kept; kClosed once every sender is gone and all is read.
  RecvAwaiter<T> recv() noexcept { return RecvAwaiter<T>(*this); }

  // Like recv, without waiting: kEmpty when there is nothing new.
  RecvResult<T> try_recv() {
    detail::require(chan_, "deja::broadcast: try_recv on an empty Receiver");
    RecvResult<T> out;
    std::lock_guard guard(chan_->lock);
    if (!chan_->take_locked(next_, out)) out.error = make_error_code(ChannelErrc::kEmpty);
    return out;
  }

  // A new receiver of the same channel that sees the messages sent from now on.
  Receiver resubscribe() {
    detail::require(chan_, "deja::broadcast: resubscribe on an empty Receiver");
    std::lock_guard guard(chan_->lock);
    ++chan_->receivers;
    return Receiver(chan_, chan_->tail);
  }

  // Messages sent that this receiver has not read yet (including any it will be told it missed).
  std::uint64_t pending() const {
    detail::require(chan_, "deja::broadcast: pending on an empty Receiver");
    std::lock_guard guard(chan_->lock);
    return chan_->tail - next_;
  }

 private:
  friend class Sender<T>;
  friend class RecvAwaiter<T>;
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> channel(std::size_t capacity);

  Receiver(detail::Chan<T>* chan, std::uint64_t next) noexcept : chan_(chan), next_(next) {}

  void reset() noexcept {
    if (chan_ == nullptr) return;
    bool last;
    {
      std::lock_guard guard(chan_->lock);
      --chan_->receivers;
      last = chan_->receivers == 0 && chan_->senders == 0;
    }
    if (last) delete chan_;
    chan_ = nullptr;
  }

  detail::Chan<T>* chan_ = nullptr;
  std::uint64_t next_ = 0;  // sequence number of the next message to read
};

// The sending half: copyable. The channel closes (for receivers) once every copy is gone.
template <class T>
class Sender {
 public:
  Sender() noexcept = default;  // empty: every operation but assignment throws UsageError
  Sender(const Sender& other) : chan_(other.chan_) {
    if (chan_) {
      std::lock_guard guard(chan_->lock);
      ++chan_->senders;
    }
  }
  Sender(Sender&& other) noexcept : chan_(std::exchange(other.chan_, nullptr)) {}
  Sender& operator=(Sender other) noexcept {
    std::swap(chan_, other.chan_);
    return *this;
  }
  ~Sender() { reset(); }

  bool valid() const noexcept { return chan_ != nullptr; }

  // Stores `value` for every current receiver and wakes those waiting. {} on success; kClosed if
  // there are no receivers (nothing is stored). Never waits: the oldest message is overwritten.
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  std::error_code send(U&& value) {
    detail::require(chan_, "deja::broadcast: send on an empty Sender");
    // Built before the lock; after the swap it holds the overwritten message, destroyed after
    // the lock is released.
    std::optional<T> incoming(std::in_place, std::forward<U>(value));
    std::lock_guard guard(chan_->lock);
    if (chan_->receivers == 0) return make_error_code(ChannelErrc::kClosed);
    chan_->slots[chan_->tail % chan_->capacity].swap(incoming);
    ++chan_->tail;
    chan_->wake_all_locked();
    return {};
  }

  // A receiver that sees the messages sent from now on.
  Receiver<T> subscribe() {
    detail::require(chan_, "deja::broadcast: subscribe on an empty Sender");
    std::lock_guard guard(chan_->lock);
    ++chan_->receivers;
    return Receiver<T>(chan_, chan_->tail);
  }

  std::size_t receiver_count() const {
    detail::require(chan_, "deja::broadcast: receiver_count on an empty Sender");
    std::lock_guard guard(chan_->lock);
    return chan_->receivers;
  }

 private:
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> channel(std::size_t capacity);

  explicit Sender(detail::Chan<T>* chan) noexcept : chan_(chan) {}

  void reset() noexcept {
    if (chan_ == nullptr) return;
    bool last;
    {
      std::lock_guard guard(chan_->lock);
      if (--chan_->senders == 0) chan_->wake_all_locked();  // they resume with kClosed
      last = chan_->senders == 0 && chan_->receivers == 0;
    }
    if (last) delete chan_;
    chan_ = nullptr;
  }

  detail::Chan<T>* chan_ = nullptr;
};

// A channel keeping the last `capacity` messages (1..kMaxCapacity, else UsageError), and its first
// receiver.
template <class T>
std::pair<Sender<T>, Receiver<T>> channel(std::size_t capacity) {
  static_assert(std::is_copy_constructible_v<T>, "deja::broadcast copies each message to every receiver");
  if (capacity == 0) throw UsageError("deja::broadcast::channel: capacity must be at least 1");
  if (capacity > kMaxCapacity) throw UsageError("deja::broadcast::channel: capacity exceeds broadcast::kMaxCapacity");
  auto* chan = new detail::Chan<T>(capacity);
  return {Sender<T>(chan), Receiver<T>(chan, 0)};
}

}  // namespace deja::broadcast
