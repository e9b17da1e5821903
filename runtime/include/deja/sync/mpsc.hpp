// deja::mpsc: multi-producer, single-consumer channels, like tokio::sync::mpsc. channel(capacity)
// is bounded (senders wait for room); unbounded_channel(limit = kMaxCapacity) never makes a sender
// wait, up to a hard limit of `limit` queued messages past which sending reports
// ChannelErrc::kFull rather than growing the queue forever.
//
//   auto [tx, rx] = deja::mpsc::channel<int>(16);
//   std::error_code ec = co_await tx.send(1);        // kClosed once the receiver is gone
//   while (std::optional<int> v = co_await rx.recv()) use(*v);  // nullopt: all senders gone
//
// Cancellation: destroying a task suspended in send() or recv() (JoinHandle::abort, race) loses
// nothing. A send that did not complete never enqueued its value; a send that completed can be
// received while the receiver lives. A woken sender owns a reserved slot until it resumes; if it
// is destroyed first, the slot passes to the next waiting sender.
//
// Wakes are grants, so resumes are exact: a woken receiver has a queued message claimed for it,
// a woken sender a reserved slot. Several tasks may receive through one Receiver (by reference);
// each message goes to one of them, in queue order.
//
// A Sender or Receiver must outlive the send()/recv() awaitables made from it.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <mutex>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/sync/channel_error.hpp"
#include "deja/sync/ring_buffer.hpp"

namespace deja::mpsc {

// The largest capacity of a bounded channel, and the most messages an unbounded channel queues.
inline constexpr std::size_t kMaxCapacity = std::size_t{1} << 26;

template <class T>
class Sender;
template <class T>
class Receiver;
template <class T>
std::pair<Sender<T>, Receiver<T>> channel(std::size_t capacity);
template <class T>
std::pair<Sender<T>, Receiver<T>> unbounded_channel(std::size_t limit = kMaxCapacity);

namespace detail {

using deja::detail::GrantWaiter;
using deja::detail::WaitList;
using deja::detail::Waiter;

template <class T>
struct Chan {
  Chan(std::size_t cap, bool is_bounded) noexcept : queue(cap), capacity(cap), bounded(is_bounded) {}

  std::mutex lock;
  deja::detail::RingBuffer<T> queue;
  const std::size_t capacity;  // queued + reserved never exceeds it
  std::size_t reserved = 0;    // slots granted to woken senders that have not pushed yet
  std::size_t claimed = 0;     // queued messages granted to woken receivers not yet resumed
  std::size_t senders = 1;
  const bool bounded;
  bool closed = false;  // Receiver::close() or the receiver is gone: sends fail
  bool receiver_alive = true;
  WaitList recv_waiters;   // GrantWaiters of suspended receives, FIFO
  WaitList send_waiters;   // GrantWaiters of suspended sends, FIFO

  bool has_room() const noexcept { return queue.size() + reserved < capacity; }
  bool has_unclaimed() const noexcept { return queue.size() > claimed; }
  bool finished() const noexcept { return closed || senders == 0; }
  // Finished, and no message is claimed for a woken receive: a claimed message comes back to the
  // queue if its task is destroyed before it runs, so until then a receive may not end.
  bool drained() const noexcept { return finished() && claimed == 0; }

  template <class U>
  void push_locked(U&& v) {
    queue.emplace_back(std::forward<U>(v));
    if (!recv_waiters.empty()) grant_receivers_locked();
  }

  // Claims unclaimed messages for waiting receivers, first come first served, and wakes them.
  void grant_receivers_locked() noexcept {
    while (!recv_waiters.empty() && has_unclaimed()) {
      auto* w = static_cast<GrantWaiter*>(recv_waiters.pop_front());
      w->granted = true;
      ++claimed;
      w->notify();
    }
  }

  // Reserves free room for waiting senders, first come first served, and wakes them.
  void grant_senders_locked() noexcept {
    while (!closed && !send_waiters.empty() && has_room()) {
      auto* w = static_cast<GrantWaiter*>(send_waiters.pop_front());
      w->granted = true;
      ++reserved;
      w->notify();
    }
  }

  void pop_locked(std::optional<T>& out) {
    queue.pop_front_into(out);
    if (!send_waiters.empty()) grant_senders_locked();
  }

  // Once the channel is drained (finished, nothing claimed), wakes every waiting receiver without a
  // grant: each resumes with nullopt. Called when the channel finishes (closed, or the last sender
  // gone) and when a claim ends (taken, or handed back by a destroyed receive).
  void release_receivers_locked() noexcept {
    if (!drained()) return;
    while (Waiter* w = recv_waiters.pop_front()) w->notify();
  }

  // Senders waiting resume with kClosed (no grant); receivers waiting are released.
  void close_locked() noexcept {
    closed = true;
    while (Waiter* w = send_waiters.pop_front()) w->notify();
    release_receivers_locked();
  }
};

inline void require(const void* chan, const char* what) {
  if (chan == nullptr) throw UsageError(what);
}

}  // namespace detail

// Awaitable of Sender::send: completes with {} once the value is queued, or kClosed (the value is
// then dropped). On an unbounded channel it never suspends and reports kFull past kMaxCapacity.
template <class T>
class [[nodiscard]] SendAwaiter {
 public:
  template <class U>
  SendAwaiter(detail::Chan<T>* chan, U&& value) : chan_(chan), value_(std::forward<U>(value)) {}
  // Movable until awaited (the combinators take awaitables by value).
  SendAwaiter(SendAwaiter&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : chan_(other.chan_), value_(std::move(other.value_)), result_(other.result_) {
    assert(!other.suspended_);
  }
  SendAwaiter(const SendAwaiter&) = delete;
  SendAwaiter& operator=(const SendAwaiter&) = delete;
  SendAwaiter& operator=(SendAwaiter&&) = delete;

  ~SendAwaiter() {
    if (!suspended_) return;
    std::lock_guard guard(chan_->lock);
    if (waiter_.linked) {
      chan_->send_waiters.remove(waiter_);
    } else if (waiter_.granted) {
      // Woken with a reserved slot but destroyed before it ran: the slot goes to the next sender.
      --chan_->reserved;
      chan_->grant_senders_locked();
    }
  }

  bool await_ready() {
    std::lock_guard guard(chan_->lock);
    return try_locked();
  }

  bool await_suspend(std::coroutine_handle<> h) {
    waiter_.task = deja::detail::park_current(h, "mpsc send");
    std::lock_guard guard(chan_->lock);
    if (try_locked()) return false;
    suspended_ = true;
    waiter_.granted = false;
    chan_->send_waiters.push_back(waiter_);
    return true;
  }

  std::error_code await_resume() {
    if (suspended_) {
      suspended_ = false;
      if (!waiter_.granted) return make_error_code(ChannelErrc::kClosed);  // woken by close
      waiter_.granted = false;
      std::lock_guard guard(chan_->lock);
      --chan_->reserved;
      if (chan_->closed) return make_error_code(ChannelErrc::kClosed);
      try {
        chan_->push_locked(std::move(value_));
      } catch (...) {
        chan_->grant_senders_locked();
        throw;
      }
    }
    return result_;
  }

 private:
  bool try_locked() {
    if (chan_->closed) {
      result_ = make_error_code(ChannelErrc::kClosed);
      return true;
    }
    if (chan_->has_room()) {
      chan_->push_locked(std::move(value_));
      return true;
    }
    if (!chan_->bounded) {
      result_ = make_error_code(ChannelErrc::kFull);
      return true;
    }
    return false;
  }

  detail::Chan<T>* chan_;
  T value_;
  std::error_code result_;
  detail::GrantWaiter waiter_;
  bool suspended_ = false;
};

// Awaitable of Receiver::recv: the next message, or nullopt once the channel is closed (every
// sender gone, or Receiver::close() called) and nothing is left: a receive that finds only
// messages claimed for other woken receives waits until they are taken (or handed back).
template <class T>
class [[nodiscard]] RecvAwaiter {
 public:
  explicit RecvAwaiter(detail::Chan<T>* chan) noexcept : chan_(chan) {}
  // Movable until awaited (the combinators take awaitables by value).
  RecvAwaiter(RecvAwaiter&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : chan_(other.chan_), result_(std::move(other.result_)) {
    assert(!other.suspended_);
  }
  RecvAwaiter(const RecvAwaiter&) = delete;
  RecvAwaiter& operator=(const RecvAwaiter&) = delete;
  RecvAwaiter& operator=(RecvAwaiter&&) = delete;

  ~RecvAwaiter() {
    if (!suspended_) return;
    std::lock_guard guard(chan_->lock);
    if (waiter_.linked) {
      chan_->recv_waiters.remove(waiter_);
    } else if (waiter_.granted) {
      // Woken with a message claimed for it but destroyed before it ran: the message stays
      // queued, and the claim passes to the next waiting receiver, if any.
      --chan_->claimed;
      chan_->grant_receivers_locked();
      chan_->release_receivers_locked();
    }
  }

  bool await_ready() {
    std::lock_guard guard(chan_->lock);
    return try_locked();
  }

  bool await_suspend(std::coroutine_handle<> h) {
    waiter_.task = deja::detail::park_current(h, "mpsc recv");
    std::lock_guard guard(chan_->lock);
    if (try_locked()) return false;
    suspended_ = true;
    waiter_.granted = false;
    chan_->recv_waiters.push_back(waiter_);
    return true;
  }

  std::optional<T> await_resume() {
    if (suspended_) {
      std::lock_guard guard(chan_->lock);
      suspended_ = false;
      if (waiter_.granted) {
        // The message claimed for this receiver is still queued: nobody takes claimed messages.
        waiter_.granted = false;
        --chan_->claimed;
        try {
          chan_->pop_locked(result_);
        } catch (...) {
          // T's move threw: the message stays queued, unclaimed, for the next waiting receive.
          chan_->grant_receivers_locked();
          chan_->release_receivers_locked();
          throw;
        }
        chan_->release_receivers_locked();
      } else {
        // Released because the channel was drained.
        [[maybe_unused]] const bool done = try_locked();
        assert(done);
      }
    }
    return std::move(result_);
  }

 private:
  bool try_locked() {
    if (chan_->has_unclaimed()) {
      chan_->pop_locked(result_);
      return true;
    }
    return chan_->drained();
  }

  detail::Chan<T>* chan_;
  std::optional<T> result_;
  detail::GrantWaiter waiter_;
  bool suspended_ = false;
};

// The sending half. Copy it for more producers; the channel closes when every copy is gone.
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

  // Queues `value`, waiting for room on a bounded channel. Completes with {} or kClosed (the
  // receiver is gone or closed the channel; the value is dropped); kFull only from an unbounded
  // channel holding kMaxCapacity messages.
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  SendAwaiter<T> send(U&& value) {
    detail::require(chan_, "deja::mpsc: send on an empty Sender");
    return SendAwaiter<T>(chan_, std::forward<U>(value));
  }

  // Queues `value` if there is room now: {} or kFull or kClosed. On failure `value` is untouched.
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  std::error_code try_send(U&& value) {
    detail::require(chan_, "deja::mpsc: try_send on an empty Sender");
    std::lock_guard guard(chan_->lock);
    if (chan_->closed) return make_error_code(ChannelErrc::kClosed);
    if (!chan_->has_room()) return make_error_code(ChannelErrc::kFull);
    chan_->push_locked(std::forward<U>(value));
    return {};
  }

  // True once the receiver is gone or has closed the channel.
  bool is_closed() const {
    detail::require(chan_, "deja::mpsc: is_closed on an empty Sender");
    std::lock_guard guard(chan_->lock);
    return chan_->closed;
  }

 private:
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> channel(std::size_t capacity);
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> unbounded_channel(std::size_t limit);

  explicit Sender(detail::Chan<T>* chan) noexcept : chan_(chan) {}

  void reset() noexcept {
    if (!chan_) return;
    bool last;
    {
      std::lock_guard guard(chan_->lock);
      if (--chan_->senders == 0) chan_->release_receivers_locked();
      last = chan_->senders == 0 && !chan_->receiver_alive;
    }
    if (last) delete chan_;
    chan_ = nullptr;
  }

  detail::Chan<T>* chan_ = nullptr;
};

// The receiving half (move-only). Dropping it closes the channel and drops what is queued.
template <class T>
class Receiver {
 public:
  Receiver() noexcept = default;  // empty: every operation but assignment throws UsageError
  Receiver(Receiver&& other) noexcept : chan_(std::exchange(other.chan_, nullptr)) {}
  Receiver& operator=(Receiver&& other) noexcept {
    if (this != &other) {
      reset();
      chan_ = std::exchange(other.chan_, nullptr);
    }
    return *this;
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() { reset(); }

  bool valid() const noexcept { return chan_ != nullptr; }

  // The next message; nullopt once every sender is gone (or close() was called) and the queue
  // is drained.
  RecvAwaiter<T> recv() {
    detail::require(chan_, "deja::mpsc: recv on an empty Receiver");
    return RecvAwaiter<T>(chan_);
  }

  // The next message if one is queued. Otherwise nullopt, and `ec` says why: kEmpty (try again
  // later) or kClosed (nothing more will come).
  std::optional<T> try_recv(std::error_code& ec) {
    detail::require(chan_, "deja::mpsc: try_recv on an empty Receiver");
    std::optional<T> out;
    std::lock_guard guard(chan_->lock);
    if (chan_->has_unclaimed()) {
      chan_->pop_locked(out);
      ec.clear();
    } else {
      ec = make_error_code(chan_->finished() && chan_->queue.empty() ? ChannelErrc::kClosed : ChannelErrc::kEmpty);
    }
    return out;
  }
  std::optional<T> try_recv() {
    std::error_code ec;
    return try_recv(ec);
  }

  // Stops further sends (they report kClosed, waiting senders included); what is already queued
  // can still be received, then recv returns nullopt.
  void close() {
    detail::require(chan_, "deja::mpsc: close on an empty Receiver");
    std::lock_guard guard(chan_->lock);
    chan_->close_locked();
  }

  // Messages queued right now.
  std::size_t size() const {
    detail::require(chan_, "deja::mpsc: size on an empty Receiver");
    std::lock_guard guard(chan_->lock);
    return chan_->queue.size();
  }

 private:
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> channel(std::size_t capacity);
  template <class U>
  friend std::pair<Sender<U>, Receiver<U>> unbounded_channel(std::size_t limit);

  explicit Receiver(detail::Chan<T>* chan) noexcept : chan_(chan) {}

  void reset() noexcept {
    if (!chan_) return;
    deja::detail::RingBuffer<T> dropped;  // destroyed after the lock is released
    bool last;
    {
      std::lock_guard guard(chan_->lock);
      chan_->receiver_alive = false;
      chan_->close_locked();
      dropped.swap(chan_->queue);
      last = chan_->senders == 0;
    }
    if (last) delete chan_;
    chan_ = nullptr;
  }

  detail::Chan<T>* chan_ = nullptr;
};

// A bounded channel: at most `capacity` messages queued (1..kMaxCapacity, else UsageError).
template <class T>
std::pair<Sender<T>, Receiver<T>> channel(std::size_t capacity) {
  if (capacity == 0) throw UsageError("deja::mpsc::channel: capacity must be at least 1");
  if (capacity > kMaxCapacity) throw UsageError("deja::mpsc::channel: capacity exceeds mpsc::kMaxCapacity");
  auto* chan = new detail::Chan<T>(capacity, true);
  return {Sender<T>(chan), Receiver<T>(chan)};
}

// An unbounded channel: send never waits. Its hard bound is `limit` queued messages (kMaxCapacity
// unless lowered; 0 or more than kMaxCapacity throws UsageError); past it send and try_send
// report kFull instead of growing the queue.
template <class T>
std::pair<Sender<T>, Receiver<T>> unbounded_channel(std::size_t limit) {
  if (limit == 0 || limit > kMaxCapacity) throw UsageError("deja::mpsc::unbounded_channel: limit must be in 1..mpsc::kMaxCapacity");
  auto* chan = new detail::Chan<T>(limit, false);
  return {Sender<T>(chan), Receiver<T>(chan)};
}

}  // namespace deja::mpsc
