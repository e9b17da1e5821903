// deja::mpsc: multi-producer, single-consumer channels, bounded (senders wait for room, FIFO) and
// unbounded (up to a hard limit). The channel closes when every Sender or the Receiver is gone.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/sync/channel_error.hpp"

namespace deja::mpsc {

// An unbounded channel refuses sends (ChannelErrc::kFull) past this many queued messages rather
// than grow without limit.
inline constexpr std::size_t kUnboundedLimit = std::size_t{1} << 26;

namespace detail {

template <class T>
struct Channel {
  Channel(std::size_t cap, bool is_unbounded) : capacity(cap), unbounded(is_unbounded) {}

  std::mutex lock;
  std::deque<T> queue;
  std::size_t capacity;
  bool unbounded;
  std::size_t reserved = 0;  // slots granted to woken senders that have not filled them yet
  std::size_t senders = 1;
  bool receiver_alive = true;
  bool closed = false;  // by the receiver (close() or drop)
  deja::detail::WaitList send_waiters;
  deja::detail::Waiter* recv_waiter = nullptr;

  bool has_room() const noexcept { return queue.size() + reserved < capacity; }

  // With lock held: the receiver's task to wake after a push, if it waits.
  deja::detail::TaskHeader* take_receiver() noexcept {
    deja::detail::Waiter* w = std::exchange(recv_waiter, nullptr);
    return w ? w->task : nullptr;
  }

  // With lock held: grants free slots to waiting senders in order; returns tasks to wake.
  void grant(std::vector<deja::detail::TaskHeader*>& wake) {
    while (!send_waiters.empty() && has_room()) {
      auto* w = static_cast<deja::detail::GrantWaiter*>(send_waiters.pop_front());
      w->granted = true;
      ++reserved;
      wake.push_back(w->task);
    }
  }

  deja::detail::TaskHeader* grant_one() noexcept {
    if (send_waiters.empty() || !has_room()) return nullptr;
    auto* w = static_cast<deja::detail::GrantWaiter*>(send_waiters.pop_front());
    w->granted = true;
    ++reserved;
    return w->task;
  }
};

}  // namespace detail

template <class T>
class Sender {
 public:
  explicit Sender(std::shared_ptr<detail::Channel<T>> c) noexcept : chan_(std::move(c)) {}
  Sender(const Sender& o) : chan_(o.chan_) {
    if (chan_) {
      std::lock_guard lock(chan_->lock);
      ++chan_->senders;
    }
  }
  Sender& operator=(const Sender& o) {
    if (this != &o) *this = Sender(o);
    return *this;
  }
  Sender(Sender&&) noexcept = default;
  Sender& operator=(Sender&& o) noexcept {
    if (this != &o) {
      drop();
      chan_ = std::move(o.chan_);
    }
    return *this;
  }
  ~Sender() { drop(); }

  class SendAwaiter {
   public:
    SendAwaiter(detail::Channel<T>* c, T value) : chan_(c), value_(std::move(value)) {}
    SendAwaiter(const SendAwaiter&) = delete;
    SendAwaiter& operator=(const SendAwaiter&) = delete;
    ~SendAwaiter() {
      if (!parked_) return;
      std::unique_lock lock(chan_->lock);
      if (waiter_.linked) {
        chan_->send_waiters.remove(waiter_);
      } else if (waiter_.granted) {
        // Granted a slot but destroyed before filling it: the slot goes to the next sender.
        --chan_->reserved;
        deja::detail::TaskHeader* next = chan_->grant_one();
        lock.unlock();
        if (next) deja::detail::wake(next);
      }
    }
    bool await_ready() {
      if (!chan_) {
        result_ = ChannelErrc::kClosed;
        return true;
      }
      std::unique_lock lock(chan_->lock);
      if (chan_->closed) {
        result_ = ChannelErrc::kClosed;
        return true;
      }
      if (!chan_->has_room() || !chan_->send_waiters.empty()) {
        if (!chan_->unbounded) return false;
        result_ = ChannelErrc::kFull;
        return true;
      }
      push_locked(lock);
      return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      waiter_.task = deja::detail::park_current(h, "mpsc::send");
      std::unique_lock lock(chan_->lock);
      if (chan_->closed) {
        result_ = ChannelErrc::kClosed;
        return false;
      }
      if (chan_->has_room() && chan_->send_waiters.empty()) {
        push_locked(lock);
        return false;
      }
      chan_->send_waiters.push_back(waiter_);
      parked_ = true;
      return true;
    }
    // Empty on success; ChannelErrc::kClosed if the receiver is gone (the value was not sent).
    std::error_code await_resume() {
      if (!parked_) return result_;
      parked_ = false;
      std::unique_lock lock(chan_->lock);
      if (!waiter_.granted) return ChannelErrc::kClosed;  // woken by close
      waiter_.granted = false;
      --chan_->reserved;
      if (chan_->closed) return ChannelErrc::kClosed;
      push_locked(lock);
      return {};
    }

   private:
    void push_locked(std::unique_lock<std::mutex>& lock) {
      chan_->queue.push_back(std::move(value_));
      deja::detail::TaskHeader* rx = chan_->take_receiver();
      lock.unlock();
      if (rx) deja::detail::wake(rx);
    }

    detail::Channel<T>* chan_;
    T value_;
    deja::detail::GrantWaiter waiter_;
    std::error_code result_;
    bool parked_ = false;
  };

  // Sends `value`, waiting for room on a bounded channel (senders are served in order).
  // Returns ChannelErrc::kClosed if the receiver is gone, or kFull on an unbounded channel at
  // kUnboundedLimit.
  [[nodiscard]] SendAwaiter send(T value) { return SendAwaiter{chan_.get(), std::move(value)}; }

  // Sends without waiting: kFull when there is no room, kClosed when the receiver is gone.
  [[nodiscard]] std::error_code try_send(T value) {
    if (!chan_) return ChannelErrc::kClosed;
    std::unique_lock lock(chan_->lock);
    if (chan_->closed) return ChannelErrc::kClosed;
    if (!chan_->has_room() || !chan_->send_waiters.empty()) return ChannelErrc::kFull;
    chan_->queue.push_back(std::move(value));
    deja::detail::TaskHeader* rx = chan_->take_receiver();
    lock.unlock();
    if (rx) deja::detail::wake(rx);
    return {};
  }

  bool is_closed() const noexcept {
    if (!chan_) return true;
    std::lock_guard lock(chan_->lock);
    return chan_->closed;
  }

 private:
  void drop() noexcept {
    if (!chan_) return;
    std::unique_lock lock(chan_->lock);
    deja::detail::TaskHeader* rx = --chan_->senders == 0 ? chan_->take_receiver() : nullptr;
    lock.unlock();
    chan_.reset();
    if (rx) deja::detail::wake(rx);
  }

  std::shared_ptr<detail::Channel<T>> chan_;
};

template <class T>
class Receiver {
 public:
  explicit Receiver(std::shared_ptr<detail::Channel<T>> c) noexcept : chan_(std::move(c)) {}
  Receiver(Receiver&&) noexcept = default;
  Receiver& operator=(Receiver&& o) noexcept {
    if (this != &o) {
      drop();
      chan_ = std::move(o.chan_);
    }
    return *this;
  }
  ~Receiver() { drop(); }

  class RecvAwaiter {
   public:
    explicit RecvAwaiter(detail::Channel<T>* c) noexcept : chan_(c) {}
    RecvAwaiter(const RecvAwaiter&) = delete;
    RecvAwaiter& operator=(const RecvAwaiter&) = delete;
    ~RecvAwaiter() {
      if (!parked_) return;
      std::lock_guard lock(chan_->lock);
      if (chan_->recv_waiter == &waiter_) chan_->recv_waiter = nullptr;
    }
    bool await_ready() const {
      if (!chan_) throw UsageError("deja::mpsc: receiving on a moved-from Receiver");
      std::lock_guard lock(chan_->lock);
      return !chan_->queue.empty() || chan_->senders == 0 || chan_->closed;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = deja::detail::park_current(h, "mpsc::recv");
      std::lock_guard lock(chan_->lock);
      if (!chan_->queue.empty() || chan_->senders == 0 || chan_->closed) return false;
      chan_->recv_waiter = &waiter_;
      parked_ = true;
      return true;
    }
    // The next value, or nullopt once every sender is gone (or the channel was closed) and the
    // queue is drained.
    std::optional<T> await_resume() {
      parked_ = false;
      return pop(*chan_);
    }

   private:
    detail::Channel<T>* chan_;
    deja::detail::Waiter waiter_;
    bool parked_ = false;
  };

  RecvAwaiter recv() noexcept { return RecvAwaiter{chan_.get()}; }

  // A value if one is queued; otherwise nullopt with `ec` kEmpty (senders remain) or kClosed.
  std::optional<T> try_recv(std::error_code& ec) {
    if (!chan_) {
      ec = ChannelErrc::kClosed;
      return std::nullopt;
    }
    std::optional<T> v = pop(*chan_);
    if (v) {
      ec.clear();
      return v;
    }
    std::lock_guard lock(chan_->lock);
    ec = (chan_->senders == 0 || chan_->closed) ? ChannelErrc::kClosed : ChannelErrc::kEmpty;
    return std::nullopt;
  }

  // Closes the channel for senders; values already queued can still be received.
  void close() noexcept {
    if (chan_) close_channel(*chan_);
  }

 private:
  static std::optional<T> pop(detail::Channel<T>& c) {
    std::unique_lock lock(c.lock);
    if (c.queue.empty()) return std::nullopt;
    std::optional<T> v(std::move(c.queue.front()));
    c.queue.pop_front();
    deja::detail::TaskHeader* sender = c.grant_one();
    lock.unlock();
    if (sender) deja::detail::wake(sender);
    return v;
  }

  static void close_channel(detail::Channel<T>& c) noexcept {
    std::unique_lock lock(c.lock);
    c.closed = true;
    std::vector<deja::detail::TaskHeader*> wake;
    while (auto* w = c.send_waiters.pop_front()) wake.push_back(w->task);
    lock.unlock();
    for (auto* t : wake) deja::detail::wake(t);
  }

  void drop() noexcept {
    if (!chan_) return;
    close_channel(*chan_);
    {
      std::lock_guard lock(chan_->lock);
      chan_->receiver_alive = false;
    }
    chan_.reset();
  }

  std::shared_ptr<detail::Channel<T>> chan_;
};

// A bounded channel of `capacity` messages (capacity 0 throws UsageError).
template <class T>
std::pair<Sender<T>, Receiver<T>> channel(std::size_t capacity) {
  if (capacity == 0) throw UsageError("deja::mpsc::channel: capacity must be at least 1");
  if (capacity > kUnboundedLimit) throw UsageError("deja::mpsc::channel: capacity above kUnboundedLimit");
  auto c = std::make_shared<detail::Channel<T>>(capacity, false);
  return {Sender<T>(c), Receiver<T>(c)};
}

// An unbounded channel: send never waits, and fails with kFull past kUnboundedLimit messages.
template <class T>
std::pair<Sender<T>, Receiver<T>> unbounded_channel() {
  auto c = std::make_shared<detail::Channel<T>>(kUnboundedLimit, true);
  return {Sender<T>(c), Receiver<T>(c)};
}

}  // namespace deja::mpsc
