// deja::Interval: ticks at a fixed period, with a choice of what to do about missed ticks, as
// Tokio's time::interval.
#pragma once

#include <chrono>

#include "deja/time.hpp"

namespace deja {

enum class MissedTickBehavior {
  kBurst,  // fire the missed ticks back to back until caught up (the schedule is kept)
  kDelay,  // the next tick is one period after the late one (the schedule shifts)
  kSkip,   // drop the missed ticks and continue at the next multiple of the period
};

class Interval {
 public:
  // The first tick completes immediately; then one every `period`. A zero or negative period
  // throws UsageError.
  template <class Rep, class Period>
  explicit Interval(std::chrono::duration<Rep, Period> period, MissedTickBehavior behavior = MissedTickBehavior::kBurst)
      : Interval(deja::now(), to_duration(period), behavior) {}
  Interval(Instant start, Duration period, MissedTickBehavior behavior = MissedTickBehavior::kBurst);

  Duration period() const noexcept { return period_; }
  MissedTickBehavior missed_tick_behavior() const noexcept { return behavior_; }
  void set_missed_tick_behavior(MissedTickBehavior b) noexcept { behavior_ = b; }
  Instant next_tick() const noexcept { return next_; }
  // Restarts the schedule: the next tick is one period from now.
  void reset();

  class TickAwaiter {
   public:
    explicit TickAwaiter(Interval& iv) : interval_(iv), sleep_(iv.next_) {}
    bool await_ready() { return sleep_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) { return sleep_.await_suspend(h); }
    // The instant the tick was scheduled for.
    Instant await_resume() { return interval_.advance(); }

   private:
    Interval& interval_;
    Sleep sleep_;
  };

  // Completes at the next tick. Cancelling the wait leaves the schedule as it was.
  TickAwaiter tick() { return TickAwaiter{*this}; }

 private:
  Instant advance();

  Instant next_;
  Duration period_;
  MissedTickBehavior behavior_;
};

}  // namespace deja
