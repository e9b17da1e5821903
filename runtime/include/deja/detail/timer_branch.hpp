// A race's sleep arm, waited on in place instead of spawned as a task of its own (which is what
// into_task makes of any other awaitable). Starting it arms its timer, as polling a sleep first
// registers it in Tokio's biased select; losing disarms it. No task is spawned, run, aborted or
// freed for it, and an arm that never starts (timeout's deadline, when the work finished in its
// first step) never touches the time driver at all.
//
// The timer can fire before the race waits (on the multi-thread runtime another worker fires it
// while the race is still starting its other arms): the group's waiter is attached when the race
// suspends, and whichever of the firing and the attach comes second sees the other (state_).
#pragma once

#include <atomic>
#include <cstdint>

#include "deja/context.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/time.hpp"

namespace deja::detail {

class TimerBranch {
 public:
  TimerBranch() noexcept = default;
  TimerBranch(const TimerBranch&) = delete;
  TimerBranch& operator=(const TimerBranch&) = delete;
  ~TimerBranch() { disarm(); }

  // Arms the timer for the sleep's deadline, on behalf of the running task. Returns true, arming
  // nothing, if the deadline has passed: the arm has finished at once (by Sleep's own rule, a
  // sleep(d) with d > 0 reads no clock for this in production).
  bool start(Sleep&& sleep) {
    TimeDriver* driver = require_runtime("deja::race").time;
    node_.when = sleep.deadline();
    node_.task = current_task();
    node_.fire = &TimerBranch::on_fire;
    node_.branch = this;
    const Duration lead = sleep.lead_;
    if (lead == Duration::zero()) {
      if (node_.when <= driver->now()) return fire_now();
      driver->add_timer(node_);
    } else if (!driver->add_timer_unless_due(node_, lead)) {
      return fire_now();
    }
    driver_ = driver;
    return false;
  }

  // Has a firing notify `w`. Returns false if it fired already (the caller counts it finished).
  // w must stay put until disarm().
  bool attach(Waiter& w) noexcept {
    waiter_ = &w;
    std::uint8_t expected = kWaiting;
    // A compare-exchange, not an exchange: a firing that came first must stay seen (fired()).
    return state_.compare_exchange_strong(expected, kAttached, std::memory_order_acq_rel, std::memory_order_acquire);
  }

  // After it returns the timer cannot fire any more, and a firing in progress on another worker
  // (which holds the driver's lock while it notifies) has ended. Idempotent.
  void disarm() noexcept {
    if (driver_ != nullptr) {
      driver_->cancel_timer(node_);
      driver_ = nullptr;
    }
    settled_ = true;
  }

  // Fired, or disarmed: nothing more will come of it. For the task that owns the race.
  bool settled() const noexcept { return settled_ || fired(); }
  bool fired() const noexcept { return state_.load(std::memory_order_acquire) == kFired; }

 private:
  static constexpr std::uint8_t kWaiting = 0, kAttached = 1, kFired = 2;

  struct Node : TimerNode {
    TimerBranch* branch = nullptr;
  };

  bool fire_now() noexcept {
    state_.store(kFired, std::memory_order_relaxed);
    return true;
  }

  static void on_fire(TimerNode* n) noexcept {
    TimerBranch* self = static_cast<Node*>(n)->branch;
    if (self->state_.exchange(kFired, std::memory_order_acq_rel) == kAttached) self->waiter_->notify();
  }

  Node node_;
  TimeDriver* driver_ = nullptr;  // set while armed
  Waiter* waiter_ = nullptr;
  std::atomic<std::uint8_t> state_{kWaiting};
  bool settled_ = false;
};

}  // namespace deja::detail
