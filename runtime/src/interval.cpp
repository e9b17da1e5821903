// Interval's schedule arithmetic for missed ticks.
#include "deja/interval.hpp"

namespace deja {

Interval::Interval(Instant start, Duration period, MissedTickBehavior behavior)
    : next_(start), period_(period), behavior_(behavior) {
  if (period <= Duration::zero()) throw UsageError("deja::Interval: the period must be positive");
}

void Interval::reset() { next_ = deadline_after(period_); }

Instant Interval::advance() {
  const Instant scheduled = next_;
  const Instant current = deja::now();
  if (current < scheduled + period_ || behavior_ == MissedTickBehavior::kBurst) {
    next_ = scheduled + period_;
  } else if (behavior_ == MissedTickBehavior::kDelay) {
    next_ = current + period_;
  } else {
    const auto missed = (current - scheduled) / period_;
    next_ = scheduled + period_ * (missed + 1);
  }
  return scheduled;
}

}  // namespace deja
