// deja::watch: one value that a Sender updates and any number of Receivers observe, waking them
// when it changes (only the latest value is kept).
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/sync/channel_error.hpp"

namespace deja::watch {

namespace detail {
template <class T>
struct State {
  explicit State(T v) : value(std::move(v)) {}
  std::mutex lock;
  T value;
  std::uint64_t version = 1;
  bool sender_alive = true;
  deja::detail::WaitList waiters;
};
}  // namespace detail

template <class T>
class Receiver {
 public:
  Receiver(std::shared_ptr<detail::State<T>> s, std::uint64_t seen) noexcept : state_(std::move(s)), seen_(seen) {}

  class ChangedAwaiter {
   public:
    explicit ChangedAwaiter(Receiver& r) noexcept : rx_(r) {}
    ChangedAwaiter(const ChangedAwaiter&) = delete;
    ChangedAwaiter& operator=(const ChangedAwaiter&) = delete;
    ~ChangedAwaiter() {
      if (!parked_) return;
      std::lock_guard lock(rx_.state_->lock);
      if (waiter_.linked) rx_.state_->waiters.remove(waiter_);
    }
    bool await_ready() {
      std::lock_guard lock(rx_.state_->lock);
      return ready_locked();
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = deja::detail::park_current(h, "watch::changed");
      std::lock_guard lock(rx_.state_->lock);
      if (ready_locked()) return false;
      rx_.state_->waiters.push_back(waiter_);
      parked_ = true;
      return true;
    }
    // Empty once a newer value exists (marked seen); kClosed if the sender is gone and nothing
    // newer was sent.
    std::error_code await_resume() {
      parked_ = false;
      std::lock_guard lock(rx_.state_->lock);
      if (rx_.state_->version != rx_.seen_) {
        rx_.seen_ = rx_.state_->version;
        return {};
      }
      return ChannelErrc::kClosed;
    }

   private:
    bool ready_locked() const noexcept { return rx_.state_->version != rx_.seen_ || !rx_.state_->sender_alive; }
    Receiver& rx_;
    deja::detail::Waiter waiter_;
    bool parked_ = false;
  };

  // Waits for a value newer than the last one this receiver saw.
  ChangedAwaiter changed() noexcept { return ChangedAwaiter{*this}; }

  // A copy of the current value.
  T borrow() const {
    std::lock_guard lock(state_->lock);
    return state_->value;
  }
  // A copy of the current value, which also counts as seen.
  T borrow_and_update() {
    std::lock_guard lock(state_->lock);
    seen_ = state_->version;
    return state_->value;
  }
  bool has_changed() const {
    std::lock_guard lock(state_->lock);
    return state_->version != seen_;
  }

 private:
  std::shared_ptr<detail::State<T>> state_;
  std::uint64_t seen_;
};

template <class T>
class Sender {
 public:
  explicit Sender(std::shared_ptr<detail::State<T>> s) noexcept : state_(std::move(s)) {}
  Sender(Sender&&) noexcept = default;
  Sender& operator=(Sender&& o) noexcept {
    if (this != &o) {
      drop();
      state_ = std::move(o.state_);
    }
    return *this;
  }
  ~Sender() { drop(); }

  // Replaces the value and wakes every receiver waiting for a change.
  void send(T value) {
    std::unique_lock lock(state_->lock);
    state_->value = std::move(value);
    ++state_->version;
    auto wake = take_waiters();
    lock.unlock();
    for (auto* t : wake) deja::detail::wake(t);
  }
  T borrow() const {
    std::lock_guard lock(state_->lock);
    return state_->value;
  }
  Receiver<T> subscribe() {
    std::lock_guard lock(state_->lock);
    return Receiver<T>(state_, state_->version);
  }

 private:
  std::vector<deja::detail::TaskHeader*> take_waiters() {
    std::vector<deja::detail::TaskHeader*> wake;
    while (auto* w = state_->waiters.pop_front()) wake.push_back(w->task);
    return wake;
  }
  void drop() noexcept {
    if (!state_) return;
    std::unique_lock lock(state_->lock);
    state_->sender_alive = false;
    auto wake = take_waiters();
    lock.unlock();
    state_.reset();
    for (auto* t : wake) deja::detail::wake(t);
  }
  std::shared_ptr<detail::State<T>> state_;
};

// A watch channel holding `initial`; the receiver has seen it already.
template <class T>
std::pair<Sender<T>, Receiver<T>> channel(T initial) {
  auto s = std::make_shared<detail::State<T>>(std::move(initial));
  return {Sender<T>(s), Receiver<T>(s, s->version)};
}

}  // namespace deja::watch
