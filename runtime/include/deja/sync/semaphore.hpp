// deja::Semaphore: an async counting semaphore, fair (FIFO) like tokio::sync::Semaphore: a large
// acquire at the head of the queue blocks smaller later ones, so nobody starves.
//
//   deja::Semaphore s(4);
//   deja::SemaphorePermit p = co_await s.acquire(2);  // returns the 2 permits when destroyed
//   if (auto q = s.try_acquire()) { ... }            // std::optional<SemaphorePermit>
//   s.add_permits(1);
//   s.close();  // pending and later acquires throw std::system_error(ChannelErrc::kClosed)
//
// Acquires are served in arrival order: permits go to the head of the queue as soon as there are
// enough for it, and a request that finds anyone waiting queues behind them (try_acquire fails).
// An acquire of n permits takes them all at once or none (Tokio's acquire_many).
//
// Bounds: a semaphore holds at most kMaxPermits permits (the available ones plus those held by
// permits and granted waiters). Constructing with more, acquiring more at once, or add_permits
// past it throws deja::UsageError. An acquire of more permits than will ever be available waits
// forever, as in Tokio.
//
// Closing: close() fails every pending acquire, and every later one, with
// std::system_error(make_error_code(ChannelErrc::kClosed)); try_acquire returns nullopt. Permits
// already held stay valid and are returned as usual.
//
// Cancellation: destroying a task suspended in acquire() unlinks it (a large request leaving the
// head lets the smaller ones behind it through); if permits had been granted to it but it never
// ran, they are returned and passed on. A task holding a permit returns it when destroyed (RAII).
//
// Lifetime: a Semaphore must outlive its permits and the awaitables made from it (asserted in
// debug builds: destroying a Semaphore with permits out or acquires pending fails an assert).
// Thread-safe.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/sync/channel_error.hpp"

namespace deja {

class Semaphore;

// Holds count() permits of a Semaphore, returned on destruction (or release()) unless forget()ten.
// Movable. Must not outlive its Semaphore.
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
  // Returns the permits to the semaphore now (serving waiters in order). Idempotent.
  inline void release() noexcept;
  // Keeps the permits out of the semaphore for good: its total shrinks by count().
  inline void forget() noexcept;

 private:
  friend class Semaphore;
  SemaphorePermit(Semaphore* s, std::uint64_t n) noexcept : sem_(s), count_(n) {}
  Semaphore* sem_;
  std::uint64_t count_;
};

class Semaphore {
 public:
  // The most permits a semaphore holds in all (as Tokio's MAX_PERMITS), or one acquire asks for.
  static constexpr std::uint64_t kMaxPermits = std::uint64_t{1} << 61;

  // Throws UsageError if permits > kMaxPermits.
  explicit Semaphore(std::uint64_t permits) : permits_(permits), total_(permits) {
    if (permits > kMaxPermits) throw UsageError("deja::Semaphore: more than Semaphore::kMaxPermits permits");
  }
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore() {
    assert(waiters_.empty() && "deja::Semaphore destroyed while acquires are pending");
    assert(permits_ == total_ && "deja::Semaphore destroyed while permits are out");
  }

  // Awaitable of acquire(n). Movable until awaited (the combinators take awaitables by value).
  class [[nodiscard]] AcquireAwaiter {
   public:
    AcquireAwaiter(Semaphore& s, std::uint64_t n) noexcept : sem_(&s) { waiter_.amount = n; }
    AcquireAwaiter(AcquireAwaiter&& other) noexcept : sem_(other.sem_) {
      assert(!other.parked_);
      waiter_.amount = other.waiter_.amount;
    }
    AcquireAwaiter(const AcquireAwaiter&) = delete;
    AcquireAwaiter& operator=(const AcquireAwaiter&) = delete;
    AcquireAwaiter& operator=(AcquireAwaiter&&) = delete;

    ~AcquireAwaiter() {
      if (!parked_) return;
      std::lock_guard lock(sem_->lock_);
      if (waiter_.linked) {
        sem_->waiters_.remove(waiter_);
        sem_->grant_locked();  // a large request leaving the head may let smaller ones through
      } else if (waiter_.granted) {
        sem_->release_locked(waiter_.amount);  // granted, destroyed before it ran: give them back
      }
      // Neither: woken by close() without a grant; nothing to give back.
    }

    bool await_ready() {
      if (waiter_.amount > kMaxPermits) {
        throw UsageError("deja::Semaphore::acquire: more than Semaphore::kMaxPermits permits");
      }
      std::lock_guard lock(sem_->lock_);
      if (sem_->closed_) return true;
      acquired_ = sem_->try_take_locked(waiter_.amount);
      return acquired_;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      waiter_.task = detail::park_current(h, "Semaphore::acquire");
      std::lock_guard lock(sem_->lock_);
      if (sem_->closed_) return false;
      acquired_ = sem_->try_take_locked(waiter_.amount);
      if (acquired_) return false;
      sem_->waiters_.push_back(waiter_);
      parked_ = true;
      return true;
    }
    // The permits, or throws std::system_error(ChannelErrc::kClosed) if the semaphore was closed
    // before they were granted.
    SemaphorePermit await_resume() {
      // Resumed after a grant, or woken by close() without one.
      const bool acquired = acquired_ || waiter_.granted;
      if (std::exchange(parked_, false)) detail::wait_for_waker(sem_->lock_);
      if (!acquired) throw std::system_error(make_error_code(ChannelErrc::kClosed), "deja::Semaphore::acquire");
      return SemaphorePermit(sem_, waiter_.amount);
    }

   private:
    Semaphore* sem_;
    detail::GrantWaiter waiter_;  // amount: permits asked for
    bool parked_ = false;
    bool acquired_ = false;  // took them without waiting
  };

  // Waits for n permits, taken all at once (FIFO among acquires). Awaiting throws UsageError for
  // n > kMaxPermits, and std::system_error(ChannelErrc::kClosed) once the semaphore is closed.
  AcquireAwaiter acquire(std::uint64_t n = 1) noexcept { return AcquireAwaiter{*this, n}; }

  // n permits if they are available and nobody waits; nullopt otherwise or once closed. Throws
  // UsageError for n > kMaxPermits.
  std::optional<SemaphorePermit> try_acquire(std::uint64_t n = 1) {
    if (n > kMaxPermits) throw UsageError("deja::Semaphore::try_acquire: more than Semaphore::kMaxPermits permits");
    std::lock_guard lock(lock_);
    if (closed_ || !try_take_locked(n)) return std::nullopt;
    return SemaphorePermit(this, n);
  }

  // Adds n permits, serving waiters in order. Throws UsageError if the total would pass
  // kMaxPermits.
  void add_permits(std::uint64_t n) {
    std::lock_guard lock(lock_);
    if (n > kMaxPermits - total_) throw UsageError("deja::Semaphore::add_permits: more than Semaphore::kMaxPermits permits");
    total_ += n;
    release_locked(n);
  }

  // A snapshot of the permits not held by anyone.
  std::uint64_t available_permits() const noexcept {
    std::lock_guard lock(lock_);
    return permits_;
  }

  // Fails every pending and later acquire with std::system_error(ChannelErrc::kClosed).
  // Idempotent. Permits already held stay valid.
  void close() noexcept {
    std::lock_guard lock(lock_);
    closed_ = true;
    // Woken without a grant: their await_resume throws. Woken under lock_ (see grant_locked).
    while (detail::Waiter* w = waiters_.pop_front()) w->notify();
  }
  bool is_closed() const noexcept {
    std::lock_guard lock(lock_);
    return closed_;
  }

 private:
  friend class SemaphorePermit;

  // With lock_ held. Anyone waiting comes first (FIFO).
  bool try_take_locked(std::uint64_t n) noexcept {
    if (!waiters_.empty() || permits_ < n) return false;
    permits_ -= n;
    return true;
  }

  // With lock_ held: grants permits to waiters from the head while there are enough for it, and
  // wakes them. Wakes under lock_, so that a woken task cannot be destroyed before the wake is done.
  void grant_locked() noexcept {
    while (auto* head = static_cast<detail::GrantWaiter*>(waiters_.front())) {
      if (head->amount > permits_) return;
      permits_ -= head->amount;
      waiters_.remove(*head);
      head->granted = true;
      head->notify();  // the last access to that awaiter
    }
  }

  void release_locked(std::uint64_t n) noexcept {
    permits_ += n;
    assert(permits_ <= total_);
    grant_locked();
  }

  void release(std::uint64_t n) noexcept {
    std::lock_guard lock(lock_);
    release_locked(n);
  }

  void forget(std::uint64_t n) noexcept {
    std::lock_guard lock(lock_);
    total_ -= n;
  }

  mutable std::mutex lock_;
  std::uint64_t permits_;  // available
  std::uint64_t total_;    // available + held (by permits and granted waiters)
  bool closed_ = false;
  detail::WaitList waiters_;
};

inline void SemaphorePermit::release() noexcept {
  Semaphore* s = std::exchange(sem_, nullptr);
  const std::uint64_t n = std::exchange(count_, 0);
  if (s && n) s->release(n);
}

inline void SemaphorePermit::forget() noexcept {
  Semaphore* s = std::exchange(sem_, nullptr);
  const std::uint64_t n = std::exchange(count_, 0);
  if (s && n) s->forget(n);
}

}  // namespace deja
