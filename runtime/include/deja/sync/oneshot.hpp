// deja::oneshot: a channel for exactly one value, from one Sender to one Receiver.
#pragma once

#include <coroutine>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/sync/channel_error.hpp"

namespace deja::oneshot {

namespace detail {
template <class T>
struct State {
  std::mutex lock;
  std::optional<T> value;
  bool sender_alive = true;
  bool receiver_alive = true;
  deja::detail::Waiter* waiter = nullptr;
};
}  // namespace detail

template <class T>
class Sender {
 public:
  explicit Sender(std::shared_ptr<detail::State<T>> s) noexcept : state_(std::move(s)) {}
  Sender(Sender&&) noexcept = default;
  Sender& operator=(Sender&& o) noexcept {
    if (this != &o) {
      close();
      state_ = std::move(o.state_);
    }
    return *this;
  }
  ~Sender() { close(); }

  // Delivers the value. ChannelErrc::kClosed if the receiver is gone (the value is dropped) or
  // this sender was used or moved from.
  [[nodiscard]] std::error_code send(T value) {
    if (!state_) return ChannelErrc::kClosed;
    std::unique_lock lock(state_->lock);
    if (!state_->receiver_alive) return ChannelErrc::kClosed;
    state_->value.emplace(std::move(value));
    state_->sender_alive = false;
    deja::detail::Waiter* w = std::exchange(state_->waiter, nullptr);
    deja::detail::TaskHeader* t = w ? w->task : nullptr;
    lock.unlock();
    state_.reset();
    if (t) deja::detail::wake(t);
    return {};
  }

  bool is_closed() const noexcept {
    if (!state_) return true;
    std::lock_guard lock(state_->lock);
    return !state_->receiver_alive;
  }

 private:
  void close() noexcept {
    if (!state_) return;
    std::unique_lock lock(state_->lock);
    state_->sender_alive = false;
    deja::detail::Waiter* w = std::exchange(state_->waiter, nullptr);
    deja::detail::TaskHeader* t = w ? w->task : nullptr;
    lock.unlock();
    state_.reset();
    if (t) deja::detail::wake(t);
  }
  std::shared_ptr<detail::State<T>> state_;
};

template <class T>
class Receiver {
 public:
  explicit Receiver(std::shared_ptr<detail::State<T>> s) noexcept : state_(std::move(s)) {}
  Receiver(Receiver&&) noexcept = default;
  Receiver& operator=(Receiver&&) noexcept = default;
  ~Receiver() {
    if (!state_) return;
    std::lock_guard lock(state_->lock);
    state_->receiver_alive = false;
  }

  class Awaiter {
   public:
    explicit Awaiter(detail::State<T>* s) noexcept : state_(s) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (!parked_) return;
      std::lock_guard lock(state_->lock);
      if (state_->waiter == &waiter_) state_->waiter = nullptr;
    }
    bool await_ready() const {
      if (!state_) throw std::system_error(make_error_code(ChannelErrc::kClosed), "deja::oneshot: receiving on an empty Receiver");
      std::lock_guard lock(state_->lock);
      return state_->value.has_value() || !state_->sender_alive;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = deja::detail::park_current(h, "oneshot::recv");
      std::lock_guard lock(state_->lock);
      if (state_->value.has_value() || !state_->sender_alive) return false;
      state_->waiter = &waiter_;
      parked_ = true;
      return true;
    }
    // The value; std::system_error(ChannelErrc::kClosed) if the sender went away without one.
    T await_resume() {
      parked_ = false;
      std::lock_guard lock(state_->lock);
      if (!state_->value) throw std::system_error(make_error_code(ChannelErrc::kClosed), "deja::oneshot: the sender was dropped");
      T v = std::move(*state_->value);
      state_->value.reset();
      return v;
    }

   private:
    detail::State<T>* state_;
    deja::detail::Waiter waiter_;
    bool parked_ = false;
  };

  Awaiter recv() noexcept { return Awaiter{state_.get()}; }
  Awaiter operator co_await() noexcept { return recv(); }

  // The value if it has arrived; ChannelErrc::kEmpty if not yet, kClosed if it never will.
  std::optional<T> try_recv(std::error_code& ec) {
    if (!state_) {
      ec = ChannelErrc::kClosed;
      return std::nullopt;
    }
    std::lock_guard lock(state_->lock);
    if (state_->value) {
      ec.clear();
      std::optional<T> v = std::move(state_->value);
      state_->value.reset();
      return v;
    }
    ec = state_->sender_alive ? ChannelErrc::kEmpty : ChannelErrc::kClosed;
    return std::nullopt;
  }

 private:
  std::shared_ptr<detail::State<T>> state_;
};

template <class T>
std::pair<Sender<T>, Receiver<T>> channel() {
  auto state = std::make_shared<detail::State<T>>();
  return {Sender<T>(state), Receiver<T>(state)};
}

}  // namespace deja::oneshot
