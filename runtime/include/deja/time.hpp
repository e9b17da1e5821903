// The time seam: deja::Clock reads the current runtime's clock (monotonic in production, virtual
// in the simulator), and TimeDriver is what a runtime implements to arm and cancel timers.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstdint>

#include "deja/context.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/detail/timer_wheel.hpp"

namespace deja {

using Duration = std::chrono::nanoseconds;

// A std::chrono clock whose now() is the current runtime's time. Outside a runtime it reads the
// monotonic clock, so that the epoch is the same one the production runtime uses.
struct Clock {
  using duration = Duration;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<Clock, duration>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept;
};

using Instant = Clock::time_point;

namespace detail {

class TimerBranch;

// A pending timer, embedded in whatever waits for it. The wheel links `entry`; `fire` is called
// (on the runtime's thread) once the deadline has passed, after the node is unlinked.
struct TimerNode : TimerEntry {
  Instant when{};
  void (*fire)(TimerNode*) noexcept = nullptr;
  TaskHeader* task = nullptr;
  // Which of the driver's wheels holds it (the multi-thread runtime keeps one per worker).
  std::uint32_t shard = 0;
  bool armed = false;  // guarded by the driver (its wheel's lock, where it has several threads)
};

}  // namespace detail

class TimeDriver {
 public:
  virtual ~TimeDriver() = default;
  virtual Instant now() noexcept = 0;
  // Arms `node` for node.when (in the past means "as soon as possible"). The node stays put until
  // it fires or is cancelled.
  virtual void add_timer(detail::TimerNode& node) = 0;
  // Disarms `node` if it is still armed. O(1).
  virtual void cancel_timer(detail::TimerNode& node) noexcept = 0;
  // Arms `node` unless its deadline has already passed; returns whether it armed it. `lead` is how
  // far ahead of the clock the deadline was when it was computed (zero: unknown). A driver whose
  // clock read costs about as much as arming a timer may skip the look when the lead is long
  // against its resolution: a deadline that passed meanwhile (a sleep awaited late) then fires at
  // its next turn instead of at once, which is still never early.
  virtual bool add_timer_unless_due(detail::TimerNode& node, Duration lead) {
    (void)lead;
    if (node.when <= now()) return false;
    add_timer(node);
    return true;
  }
};

// The current runtime's time.
Instant now();

// Checked arithmetic for deadlines: throws UsageError for a negative (or NaN) duration and for a deadline
// that does not fit in an Instant.
Instant deadline_after(Duration d);

template <class Rep, class Period>
Duration to_duration(std::chrono::duration<Rep, Period> d) {
  using std::chrono::duration_cast;
  // Written as !(d >= 0) so that a floating-point NaN is refused too.
  if (!(d >= d.zero())) throw UsageError("deja: negative (or NaN) duration");
  // Convert in long double first so that overflow is caught instead of wrapped.
  const long double ns = std::chrono::duration<long double, std::nano>(d).count();
  if (ns > static_cast<long double>(Duration::max().count())) {
    throw UsageError("deja: duration overflows the clock's range");
  }
  return duration_cast<Duration>(d);
}

// Awaitable that completes at a deadline. Destroying it before then cancels the timer.
class [[nodiscard]] Sleep {
 public:
  explicit Sleep(Instant deadline) noexcept { node_.when = deadline; }
  // `lead`: how far ahead of the clock `deadline` was when it was computed (see add_timer_unless_due).
  Sleep(Instant deadline, Duration lead) noexcept : lead_(lead) { node_.when = deadline; }
  Sleep(Sleep&& other) noexcept : node_(), lead_(other.lead_) {
    node_.when = other.node_.when;
  }
  Sleep(const Sleep&) = delete;
  Sleep& operator=(const Sleep&) = delete;
  ~Sleep() {
    // Not `if (node_.armed)`: on a multi-thread runtime another worker may be firing the timer
    // right now, and only the driver may read `armed` (under its lock).
    if (added_) driver_->cancel_timer(node_);
  }

  Instant deadline() const noexcept { return node_.when; }

  // For a sleep(d) with d > 0, whether the deadline has passed is the driver's to decide, in
  // add_timer_unless_due: a production runtime arms it without reading the clock a second time.
  bool await_ready() {
    driver_ = require_runtime("deja::sleep").time;
    return lead_ == Duration::zero() && node_.when <= driver_->now();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    node_.task = detail::park_current(h, "sleep");
    node_.fire = &Sleep::on_fire;
    if (lead_ == Duration::zero()) {
      driver_->add_timer(node_);
    } else if (!driver_->add_timer_unless_due(node_, lead_)) {
      return false;  // due already: go on
    }
    added_ = true;
    return true;
  }
  void await_resume() const noexcept {}

 private:
  friend class detail::TimerBranch;  // race waits on a sleep in place (detail/timer_branch.hpp)

  static void on_fire(detail::TimerNode* n) noexcept { detail::wake(n->task); }

  detail::TimerNode node_;
  Duration lead_{0};
  TimeDriver* driver_ = nullptr;
  bool added_ = false;
};

template <class Rep, class Period>
Sleep sleep(std::chrono::duration<Rep, Period> d) {
  const Duration lead = to_duration(d);
  return Sleep(deadline_after(lead), lead);
}

inline Sleep sleep_until(Instant deadline) { return Sleep(deadline); }

}  // namespace deja
