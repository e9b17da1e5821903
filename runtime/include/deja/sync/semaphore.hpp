// deja::Semaphore: an async counting semaphore, fair (FIFO): a large acquire at the head of the
// queue blocks smaller later ones, so nobody starves (Tokio's acquire_many semantics).
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/sync/channel_error.hpp"

namespace deja {

class Semaphore;

// Holds `count()` permits, given back on destruction unless forget()ten. Must not outlive its
// Semaphore.
class [[nodiscard]] SemaphorePermit {
 public:
  SemaphorePermit(SemaphorePermit&& o) noexcept : sem_(std::exchange(o.sem_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  SemaphorePermit& operator=(SemaphorePermit&& o) noexcept {
    if (this != &o) {
      release();
      sem_ = std::exchange(o.sem_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  SemaphorePermit(const SemaphorePermit&) = delete;
  SemaphorePermit& operator=(const SemaphorePermit&) = delete;
  ~SemaphorePermit() { release(); }

  std::uint64_t count() const noexcept { return count_; }
  // Keeps the permits out of the semaphore for good.
  void forget() noexcept {
    sem_ = nullptr;
    count_ = 0;
  }
  inline void release() noexcept;

 private:
  friend class Semaphore;
  SemaphorePermit(Semaphore* s, std::uint64_t n) noexcept : sem_(s), count_(n) {}
  Semaphore* sem_;
  std::uint64_t count_;
};

class Semaphore {
 public:
  // The most permits a semaphore holds, or one acquire asks for.
  static constexpr std::uint64_t kMaxPermits = std::uint64_t{1} << 61;

  explicit Semaphore(std::uint64_t permits) : permits_(permits) {
    if (permits > kMaxPermits) throw UsageError("deja::Semaphore: more than kMaxPermits permits");
  }
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore() { assert(waiters_.empty() && "deja::Semaphore destroyed while awaited"); }

  class AcquireAwaiter {
   public:
    AcquireAwaiter(Semaphore& s, std::uint64_t n) noexcept : sem_(s) { waiter_.amount = n; }
    AcquireAwaiter(const AcquireAwaiter&) = delete;
    AcquireAwaiter& operator=(const AcquireAwaiter&) = delete;
    ~AcquireAwaiter() {
      if (!parked_) return;
      std::unique_lock lock(sem_.lock_);
      if (waiter_.linked) {
        sem_.waiters_.remove(waiter_);
        // A large request leaving the head may let smaller ones behind it through.
        auto wake = sem_.grant_locked();
        lock.unlock();
        for (auto* t : wake) detail::wake(t);
      } else if (waiter_.granted) {
        sem_.permits_ += waiter_.amount;
        auto wake = sem_.grant_locked();
        lock.unlock();
        for (auto* t : wake) detail::wake(t);
      }
    }
    bool await_ready() {
      if (waiter_.amount > kMaxPermits) throw UsageError("deja::Semaphore::acquire: more than kMaxPermits permits");
      std::lock_guard lock(sem_.lock_);
      if (sem_.closed_) return true;
      acquired_ = sem_.try_take_locked(waiter_.amount);
      return acquired_;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "Semaphore::acquire");
      std::lock_guard lock(sem_.lock_);
      if (sem_.closed_) return false;
      acquired_ = sem_.try_take_locked(waiter_.amount);
      if (acquired_) return false;
      sem_.waiters_.push_back(waiter_);
      parked_ = true;
      return true;
    }
    // The permits, or std::system_error(ChannelErrc::kClosed) if the semaphore was closed.
    SemaphorePermit await_resume() {
      // Resumed after a grant, or woken by close() without one.
      const bool acquired = acquired_ || waiter_.granted;
      parked_ = false;
      waiter_.granted = false;
      if (!acquired) throw std::system_error(make_error_code(ChannelErrc::kClosed), "deja::Semaphore::acquire");
      return SemaphorePermit(&sem_, waiter_.amount);
    }

   private:
    Semaphore& sem_;
    detail::GrantWaiter waiter_;
    bool parked_ = false;
    bool acquired_ = false;
  };

  // Waits for `n` permits (FIFO). Throws UsageError for n > kMaxPermits and std::system_error
  // (ChannelErrc::kClosed) once the semaphore is closed.
  AcquireAwaiter acquire(std::uint64_t n = 1) noexcept { return AcquireAwaiter{*this, n}; }

  std::optional<SemaphorePermit> try_acquire(std::uint64_t n = 1) {
    if (n > kMaxPermits) throw UsageError("deja::Semaphore::try_acquire: more than kMaxPermits permits");
    std::lock_guard lock(lock_);
    if (closed_ || !try_take_locked(n)) return std::nullopt;
    return SemaphorePermit(this, n);
  }

  // Adds permits (waking waiters in order). Throws UsageError past kMaxPermits.
  void add_permits(std::uint64_t n) {
    std::unique_lock lock(lock_);
    if (n > kMaxPermits - permits_) throw UsageError("deja::Semaphore::add_permits: more than kMaxPermits permits");
    permits_ += n;
    auto wake = grant_locked();
    lock.unlock();
    for (auto* t : wake) detail::wake(t);
  }

  std::uint64_t available_permits() const noexcept {
    std::lock_guard lock(lock_);
    return permits_;
  }

  // Fails every pending and future acquire with ChannelErrc::kClosed. Permits held stay valid.
  void close() noexcept {
    std::unique_lock lock(lock_);
    closed_ = true;
    std::vector<detail::TaskHeader*> wake;
    while (auto* w = waiters_.pop_front()) wake.push_back(w->task);
    lock.unlock();
    for (auto* t : wake) detail::wake(t);
  }
  bool is_closed() const noexcept {
    std::lock_guard lock(lock_);
    return closed_;
  }

 private:
  friend class SemaphorePermit;

  bool try_take_locked(std::uint64_t n) noexcept {
    if (!waiters_.empty() || permits_ < n) return false;
    permits_ -= n;
    return true;
  }

  // Grants permits to waiters from the head while they fit; returns their tasks to wake.
  std::vector<detail::TaskHeader*> grant_locked() {
    std::vector<detail::TaskHeader*> wake;
    while (auto* head = static_cast<detail::GrantWaiter*>(waiters_.front())) {
      if (head->amount > permits_) break;
      permits_ -= head->amount;
      waiters_.remove(*head);
      head->granted = true;
      wake.push_back(head->task);
    }
    return wake;
  }

  void release(std::uint64_t n) noexcept {
    std::unique_lock lock(lock_);
    permits_ += n;
    auto wake = grant_locked();
    lock.unlock();
    for (auto* t : wake) detail::wake(t);
  }

  mutable std::mutex lock_;
  std::uint64_t permits_;
  bool closed_ = false;
  detail::WaitList waiters_;
};

inline void SemaphorePermit::release() noexcept {
  if (sem_ && count_) std::exchange(sem_, nullptr)->release(std::exchange(count_, 0));
  sem_ = nullptr;
}

}  // namespace deja
