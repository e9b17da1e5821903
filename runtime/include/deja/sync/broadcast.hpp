// deja::broadcast: every receiver sees every message sent after it subscribed, from a ring of
// `capacity` messages; a receiver that falls behind is told how many it missed (kLagged).
#pragma once

#include <coroutine>
#include <cstdint>
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

namespace deja::broadcast {

// What a receive gives: a value, or an error (kLagged with `missed`, or kClosed).
template <class T>
struct RecvResult {
  std::optional<T> value;
  std::error_code error;
  std::uint64_t missed = 0;  // with kLagged: how many messages this receiver lost
  explicit operator bool() const noexcept { return value.has_value(); }
};

namespace detail {
template <class T>
struct Channel {
  explicit Channel(std::size_t cap) : slots(cap) {}
  std::mutex lock;
  std::vector<std::optional<T>> slots;
  std::uint64_t tail = 0;  // sequence number of the next message
  std::size_t senders = 1;
  std::size_t receivers = 0;
  deja::detail::WaitList waiters;

  std::uint64_t oldest() const noexcept { return tail > slots.size() ? tail - slots.size() : 0; }
};
}  // namespace detail

template <class T>
class Receiver {
 public:
  Receiver(std::shared_ptr<detail::Channel<T>> c, std::uint64_t next) noexcept : chan_(std::move(c)), next_(next) {}
  Receiver(Receiver&& o) noexcept : chan_(std::move(o.chan_)), next_(o.next_) {}
  Receiver& operator=(Receiver&& o) noexcept {
    if (this != &o) {
      drop();
      chan_ = std::move(o.chan_);
      next_ = o.next_;
    }
    return *this;
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() { drop(); }

  class RecvAwaiter {
   public:
    explicit RecvAwaiter(Receiver& r) noexcept : rx_(r) {}
    RecvAwaiter(const RecvAwaiter&) = delete;
    RecvAwaiter& operator=(const RecvAwaiter&) = delete;
    ~RecvAwaiter() {
      if (!parked_) return;
      std::lock_guard lock(rx_.chan_->lock);
      if (waiter_.linked) rx_.chan_->waiters.remove(waiter_);
    }
    bool await_ready() {
      if (!rx_.chan_) throw UsageError("deja::broadcast: receiving on a moved-from Receiver");
      std::lock_guard lock(rx_.chan_->lock);
      return ready_locked();
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = deja::detail::park_current(h, "broadcast::recv");
      std::lock_guard lock(rx_.chan_->lock);
      if (ready_locked()) return false;
      rx_.chan_->waiters.push_back(waiter_);
      parked_ = true;
      return true;
    }
    RecvResult<T> await_resume() {
      parked_ = false;
      return rx_.take();
    }

   private:
    bool ready_locked() const noexcept { return rx_.next_ < rx_.chan_->tail || rx_.chan_->senders == 0; }
    Receiver& rx_;
    deja::detail::Waiter waiter_;
    bool parked_ = false;
  };

  // The next message; kLagged (once, with the count) if this receiver fell behind the ring, then
  // it continues from the oldest message kept; kClosed once every sender is gone and all is read.
  RecvAwaiter recv() noexcept { return RecvAwaiter{*this}; }

  // Like recv without waiting: kEmpty when nothing is new.
  RecvResult<T> try_recv() {
    RecvResult<T> r = take();
    return r;
  }

 private:
  template <class>
  friend class Sender;

  RecvResult<T> take() {
    RecvResult<T> r;
    std::lock_guard lock(chan_->lock);
    auto& c = *chan_;
    if (next_ < c.oldest()) {
      r.missed = c.oldest() - next_;
      r.error = ChannelErrc::kLagged;
      next_ = c.oldest();
      return r;
    }
    if (next_ < c.tail) {
      r.value = *c.slots[next_ % c.slots.size()];
      ++next_;
      return r;
    }
    r.error = c.senders == 0 ? ChannelErrc::kClosed : ChannelErrc::kEmpty;
    return r;
  }

  void drop() noexcept {
    if (!chan_) return;
    std::lock_guard lock(chan_->lock);
    --chan_->receivers;
  }

  std::shared_ptr<detail::Channel<T>> chan_;
  std::uint64_t next_;
};

template <class T>
class Sender {
 public:
  explicit Sender(std::shared_ptr<detail::Channel<T>> c) noexcept : chan_(std::move(c)) {}
  Sender(const Sender& o) : chan_(o.chan_) {
    std::lock_guard lock(chan_->lock);
    ++chan_->senders;
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

  // Sends a copy to every receiver. kClosed if there are no receivers (the value is dropped).
  [[nodiscard]] std::error_code send(T value) {
    std::unique_lock lock(chan_->lock);
    auto& c = *chan_;
    if (c.receivers == 0) return ChannelErrc::kClosed;
    c.slots[c.tail % c.slots.size()] = std::move(value);
    ++c.tail;
    std::vector<deja::detail::TaskHeader*> wake;
    while (auto* w = c.waiters.pop_front()) wake.push_back(w->task);
    lock.unlock();
    for (auto* t : wake) deja::detail::wake(t);
    return {};
  }

  // A receiver that sees the messages sent from now on.
  Receiver<T> subscribe() {
    std::lock_guard lock(chan_->lock);
    ++chan_->receivers;
    return Receiver<T>(chan_, chan_->tail);
  }

  std::size_t receiver_count() const noexcept {
    std::lock_guard lock(chan_->lock);
    return chan_->receivers;
  }

 private:
  void drop() noexcept {
    if (!chan_) return;
    std::unique_lock lock(chan_->lock);
    std::vector<deja::detail::TaskHeader*> wake;
    if (--chan_->senders == 0) {
      while (auto* w = chan_->waiters.pop_front()) wake.push_back(w->task);
    }
    lock.unlock();
    chan_.reset();
    for (auto* t : wake) deja::detail::wake(t);
  }

  std::shared_ptr<detail::Channel<T>> chan_;
};

// A channel keeping the last `capacity` messages (0 throws UsageError), with one receiver.
template <class T>
std::pair<Sender<T>, Receiver<T>> channel(std::size_t capacity) {
  if (capacity == 0) throw UsageError("deja::broadcast::channel: capacity must be at least 1");
  auto c = std::make_shared<detail::Channel<T>>(capacity);
  c->receivers = 1;
  return {Sender<T>(c), Receiver<T>(c, 0)};
}

}  // namespace deja::broadcast
