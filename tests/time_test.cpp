// Time on the current-thread runtime: sleep, sleep_until, deadline checks, timeout, race, timers
// of cancelled work, and Interval with each MissedTickBehavior. Only lower bounds on elapsed time
// are asserted: machines are noisy.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

using deja::Instant;
using deja::detail::TimerNode;
using SteadyClock = std::chrono::steady_clock;

// A time driver in front of a CurrentThreadRuntime that keeps the set of armed timers, so a test
// can assert that cancelled work leaves no timer behind. Every fire goes through trampoline(),
// which removes the node from the set before calling the original callback.
class AuditedRuntime final : public deja::TimeDriver {
 public:
  AuditedRuntime() {
    tls_audit = this;
    rt_.context()->time = this;
  }
  ~AuditedRuntime() override = default;  // rt_ goes first; its shutdown may still cancel through us
  AuditedRuntime(const AuditedRuntime&) = delete;
  AuditedRuntime& operator=(const AuditedRuntime&) = delete;

  template <class T>
  T block_on(deja::Task<T> task) {
    return rt_.block_on(std::move(task));
  }
  std::size_t armed_timers() const noexcept { return originals_.size(); }
  std::size_t live_tasks() const noexcept { return rt_.live_tasks(); }

  Instant now() noexcept override { return rt_.now(); }
  void add_timer(TimerNode& node) override {
    originals_[&node] = node.fire;
    node.fire = &trampoline;
    try {
      rt_.add_timer(node);
    } catch (...) {
      node.fire = originals_[&node];
      originals_.erase(&node);
      throw;
    }
  }
  void cancel_timer(TimerNode& node) noexcept override {
    if (node.armed) originals_.erase(&node);
    rt_.cancel_timer(node);
  }
  // Fires every armed timer now, whatever its deadline, as a firing on another worker of the
  // multi-thread runtime would at any instant. Returns how many fired.
  std::size_t fire_all_now() {
    std::vector<TimerNode*> nodes;
    for (const auto& [node, fire] : originals_) nodes.push_back(node);
    for (TimerNode* node : nodes) {
      const FireFn original = originals_.at(node);
      cancel_timer(*node);
      original(node);
    }
    return nodes.size();
  }

 private:
  using FireFn = decltype(TimerNode::fire);
  static void trampoline(TimerNode* node) noexcept {
    auto it = tls_audit->originals_.find(node);
    const FireFn original = it->second;
    tls_audit->originals_.erase(it);
    original(node);
  }

  static inline thread_local AuditedRuntime* tls_audit = nullptr;
  std::unordered_map<TimerNode*, FireFn> originals_;
  deja::CurrentThreadRuntime rt_;
};

struct DestroyFlag {
  bool* destroyed;
  ~DestroyFlag() { *destroyed = true; }
};

deja::Task<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

deja::Task<int> value_after(std::chrono::milliseconds d, int value) {
  co_await deja::sleep(d);
  co_return value;
}

deja::Task<int> sleeps_for_an_hour(bool* destroyed) {
  DestroyFlag guard{destroyed};
  co_await deja::sleep(1h);
  co_return -1;
}

deja::Task<int> fast_value(int v) {
  co_await deja::yield_now();
  co_return v;
}

}  // namespace

TEST_CASE("sleep waits at least its duration") {
  auto body = []() -> deja::Task<void> {
    for (const auto d : {0us, 300us, 1000us, 2500us, 6000us}) {
      const auto wall_before = SteadyClock::now();
      const Instant before = deja::now();
      co_await deja::sleep(d);
      const Instant after = deja::now();
      const auto wall_after = SteadyClock::now();
      CAPTURE(d.count());
      REQUIRE(wall_after - wall_before >= d);
      REQUIRE(after - before >= d);
    }
  };
  deja::block_on(body());
}

TEST_CASE("a sleep completes no earlier than its deadline, even with sub-millisecond deadlines") {
  auto body = []() -> deja::Task<void> {
    for (int i = 0; i < 5; ++i) {
      const Instant deadline = deja::now() + std::chrono::microseconds(700 + 450 * i);
      co_await deja::sleep_until(deadline);
      const Instant woke = deja::now();
      REQUIRE(woke >= deadline);
    }
  };
  deja::block_on(body());
}

TEST_CASE("sleep_until an instant in the past, and sleep(0), complete without suspending") {
  auto body = []() -> deja::Task<void> {
    bool other_ran = false;
    auto other = deja::spawn(set_flag(&other_ran));
    co_await deja::sleep_until(deja::now() - 1h);
    co_await deja::sleep_until(Instant::min());
    co_await deja::sleep_until(deja::now());
    co_await deja::sleep(0ms);
    // Had any of them suspended, the spawned task would have run.
    REQUIRE_FALSE(other_ran);
    co_await other;
    REQUIRE(other_ran);
  };
  deja::block_on(body());
}

TEST_CASE("timers fire in deadline order across tasks, ties in the order they were armed") {
  auto body = []() -> deja::Task<void> {
    // The lead keeps every deadline in the future while the tasks arm their timers; a deadline
    // already past completes at once (as it should), which would make the order meaningless.
    const Instant base = deja::now() + 30ms;
    const std::vector<int> offsets_ms{9, 2, 6, 2, 0, 4, 6};
    std::vector<int> woke;  // task indices, in wake order
    bool all_armed_in_time = true;
    auto sleeper = [](Instant deadline, int index, std::vector<int>* order, bool* in_time) -> deja::Task<void> {
      if (deja::now() >= deadline) *in_time = false;
      co_await deja::sleep_until(deadline);
      REQUIRE(deja::now() >= deadline);
      order->push_back(index);
    };
    std::vector<deja::JoinHandle<void>> handles;
    for (std::size_t i = 0; i < offsets_ms.size(); ++i) {
      handles.push_back(deja::spawn(sleeper(base + std::chrono::milliseconds(offsets_ms[i]), static_cast<int>(i), &woke, &all_armed_in_time)));
    }
    for (auto& h : handles) co_await h;
    REQUIRE(woke.size() == offsets_ms.size());
    if (all_armed_in_time) {
      REQUIRE(woke == std::vector<int>{4, 1, 3, 5, 2, 6, 0});
    } else {
      WARN("the machine stalled for 30 ms while arming timers; order not checked");
    }
  };
  deja::block_on(body());
}

TEST_CASE("a negative duration throws UsageError") {
  auto body = []() -> deja::Task<void> {
    REQUIRE_THROWS_AS(deja::sleep(-1ms), deja::UsageError);
    REQUIRE_THROWS_AS(deja::sleep(-1ns), deja::UsageError);
    REQUIRE_THROWS_AS(deja::timeout(-1ms, fast_value(1)), deja::UsageError);
    REQUIRE_THROWS_AS(deja::Interval(-5ms), deja::UsageError);
    REQUIRE_THROWS_AS(deja::Interval(0ms), deja::UsageError);
    co_return;
  };
  deja::block_on(body());
}

TEST_CASE("a duration that overflows the clock throws UsageError") {
  auto body = []() -> deja::Task<void> {
    REQUIRE_THROWS_AS(deja::sleep(std::chrono::hours::max()), deja::UsageError);
    REQUIRE_THROWS_AS(deja::sleep(std::chrono::seconds::max()), deja::UsageError);
    // Fits in nanoseconds, but now() + d does not fit in an Instant.
    REQUIRE_THROWS_AS(deja::sleep(deja::Duration::max()), deja::UsageError);
    REQUIRE_THROWS_AS(deja::timeout(std::chrono::hours::max(), fast_value(1)), deja::UsageError);
    REQUIRE_THROWS_AS(deja::Interval(std::chrono::hours::max()), deja::UsageError);
    // A century fits.
    const int v = co_await deja::timeout(std::chrono::hours(24 * 365 * 100), fast_value(5));
    REQUIRE(v == 5);
  };
  deja::block_on(body());
}

TEST_CASE("sleep with no runtime current throws UsageError") {
  REQUIRE_THROWS_AS(deja::sleep(1ms), deja::UsageError);
}

TEST_CASE("timeout returns the value when the work finishes first and leaves no timer") {
  AuditedRuntime rt;
  auto body = [&]() -> deja::Task<void> {
    const int v = co_await deja::timeout(20ms, fast_value(42));
    REQUIRE(v == 42);
    REQUIRE(rt.armed_timers() == 0);  // the timeout's own timer was cancelled
    const int w = co_await deja::timeout(1h, value_after(2ms, 7));
    REQUIRE(w == 7);
    co_await deja::timeout(1h, deja::sleep(1ms));  // any awaitable, void result
    REQUIRE(rt.armed_timers() == 0);
    // Past the first timeout's deadline: a stale timer there would fire into freed memory.
    co_await deja::sleep(25ms);
  };
  rt.block_on(body());
  REQUIRE(rt.armed_timers() == 0);
  REQUIRE(rt.live_tasks() == 0);
}

TEST_CASE("timeout throws TimedOut when the work is slow, after destroying the work") {
  AuditedRuntime rt;
  auto body = [&]() -> deja::Task<void> {
    bool destroyed = false;
    bool timed_out = false;
    const auto start = SteadyClock::now();
    try {
      const int v = co_await deja::timeout(5ms, sleeps_for_an_hour(&destroyed));
      FAIL("timeout returned " << v);
    } catch (const deja::TimedOut& e) {
      timed_out = true;
      REQUIRE(destroyed);
      REQUIRE(e.code() == std::errc::timed_out);
    }
    REQUIRE(timed_out);
    REQUIRE(SteadyClock::now() - start >= 5ms);
    REQUIRE(rt.armed_timers() == 0);  // the work's one-hour timer went with it
    // Waiting on a far-future instant can be timed out too.
    bool far_timed_out = false;
    try {
      co_await deja::timeout(2ms, deja::sleep_until(Instant::max()));
    } catch (const deja::TimedOut&) {
      far_timed_out = true;
    }
    REQUIRE(far_timed_out);
    REQUIRE(rt.armed_timers() == 0);
  };
  rt.block_on(body());
  REQUIRE(rt.live_tasks() == 0);
}

TEST_CASE("race returns the index of the first finisher and destroys the losers before returning") {
  AuditedRuntime rt;
  auto body = [&]() -> deja::Task<void> {
    bool first_destroyed = false, third_destroyed = false;
    auto result = co_await deja::race(sleeps_for_an_hour(&first_destroyed), value_after(3ms, 99), sleeps_for_an_hour(&third_destroyed));
    REQUIRE(result.index() == 1);
    REQUIRE(std::get<1>(result) == 99);
    REQUIRE(first_destroyed);
    REQUIRE(third_destroyed);
    REQUIRE(rt.armed_timers() == 0);
    // The earliest deadline wins whatever its position.
    auto second = co_await deja::race(value_after(20ms, 1), value_after(10ms, 2), deja::sleep(2ms));
    REQUIRE(second.index() == 2);
    REQUIRE(rt.armed_timers() == 0);
  };
  rt.block_on(body());
  REQUIRE(rt.live_tasks() == 0);
}

TEST_CASE("a sleep raced in place costs no task: armed when its turn comes, cancelled when it loses") {
  AuditedRuntime rt;
  auto body = [&]() -> deja::Task<void> {
    const std::size_t before = rt.live_tasks();
    // The second arm sees what the first left: one armed timer, and no task but itself.
    auto look = [&]() -> deja::Task<std::size_t> { co_return 100 * rt.armed_timers() + (rt.live_tasks() - before); };
    auto seen = co_await deja::race(deja::sleep(1h), look());
    REQUIRE(seen.index() == 1);
    REQUIRE(std::get<1>(seen) == 101);
    REQUIRE(rt.armed_timers() == 0);
    // An arm after a ready one never starts: the sleep's timer is never armed.
    auto never = co_await deja::race(look(), deja::sleep(1h));
    REQUIRE(never.index() == 0);
    REQUIRE(std::get<0>(never) == 1);
    REQUIRE(rt.armed_timers() == 0);
    // A sleep already due wins at once, ahead of a ready arm after it.
    auto due = co_await deja::race(deja::sleep(0ms), fast_value(1));
    REQUIRE(due.index() == 0);
    auto past = co_await deja::race(deja::sleep_until(deja::now() - 1ms), fast_value(1));
    REQUIRE(past.index() == 0);
    // Sleeps against sleeps: the earliest deadline wins whatever its position.
    const auto start = SteadyClock::now();
    auto two = co_await deja::race(deja::sleep(1h), deja::sleep(3ms), deja::sleep(2h));
    REQUIRE(two.index() == 1);
    REQUIRE(SteadyClock::now() - start >= 3ms);
    REQUIRE(rt.armed_timers() == 0);
    REQUIRE(rt.live_tasks() == before);
  };
  rt.block_on(body());
  REQUIRE(rt.armed_timers() == 0);
  REQUIRE(rt.live_tasks() == 0);
}

TEST_CASE("a race's sleep arm that fires before the race attaches to it counts as finished, and one that fires after wakes it") {
  // On the multi-thread runtime another worker can fire the sleep between the race's look at its
  // arms and its attach (GroupWait::await_suspend); this drives both orders by hand.
  struct CountingWaiter : deja::detail::Waiter {
    int notified = 0;
    CountingWaiter() { notify_fn = [](deja::detail::Waiter* w) noexcept { ++static_cast<CountingWaiter*>(w)->notified; }; }
  };
  AuditedRuntime rt;
  rt.block_on([](AuditedRuntime& audit) -> deja::Task<void> {
    {  // fires first: the attach says so, and nothing is notified
      deja::detail::TimerBranch arm;
      REQUIRE_FALSE(arm.start(deja::sleep(1h)));
      REQUIRE(audit.armed_timers() == 1);
      REQUIRE_FALSE(arm.settled());
      REQUIRE(audit.fire_all_now() == 1);
      REQUIRE(arm.fired());
      CountingWaiter w;
      REQUIRE_FALSE(arm.attach(w));
      CHECK(arm.fired());
      CHECK(w.notified == 0);
    }
    {  // attached first: the firing notifies exactly once
      deja::detail::TimerBranch arm;
      REQUIRE_FALSE(arm.start(deja::sleep(1h)));
      CountingWaiter w;
      REQUIRE(arm.attach(w));
      CHECK(w.notified == 0);
      REQUIRE(audit.fire_all_now() == 1);
      CHECK(w.notified == 1);
      CHECK(arm.settled());
      arm.disarm();  // after a firing: nothing left to cancel
      CHECK(w.notified == 1);
    }
    {  // attached, then disarmed (the race lost it): never notified, no timer left
      deja::detail::TimerBranch arm;
      REQUIRE_FALSE(arm.start(deja::sleep(1h)));
      CountingWaiter w;
      REQUIRE(arm.attach(w));
      arm.disarm();
      CHECK(arm.settled());
      CHECK_FALSE(arm.fired());
      CHECK(audit.armed_timers() == 0);
      CHECK(audit.fire_all_now() == 0);
      CHECK(w.notified == 0);
    }
    {  // a deadline already passed: finished at start, nothing armed
      deja::detail::TimerBranch arm;
      REQUIRE(arm.start(deja::sleep(0ms)));
      CHECK(arm.fired());
      CHECK(audit.armed_timers() == 0);
    }
    co_return;
  }(rt));
  CHECK(rt.armed_timers() == 0);
}

TEST_CASE("aborting a task suspended in a race on a sleep disarms the sleep's timer") {
  AuditedRuntime rt;
  auto racer = [](bool* destroyed) -> deja::Task<void> {
    co_await deja::race(deja::sleep(3ms), sleeps_for_an_hour(destroyed));
  };
  auto body = [&]() -> deja::Task<void> {
    bool destroyed = false;
    auto h = deja::spawn(racer(&destroyed));
    co_await deja::yield_now();
    REQUIRE(rt.armed_timers() == 2);  // the race's 3 ms, the branch's hour
    h.abort();
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(h);
    REQUIRE(cancelled);
    REQUIRE(destroyed);
    REQUIRE(rt.armed_timers() == 0);
    // Past the 3 ms deadline: a stale timer would fire into the destroyed race.
    co_await deja::sleep(8ms);
  };
  rt.block_on(body());
  REQUIRE(rt.armed_timers() == 0);
  REQUIRE(rt.live_tasks() == 0);
}

TEST_CASE("a task aborted while sleeping leaves no timer behind, so block_on does not wait for its deadline") {
  AuditedRuntime rt;
  const auto start = SteadyClock::now();
  auto body = [&]() -> deja::Task<void> {
    bool long_destroyed = false, short_destroyed = false;
    auto long_sleeper = deja::spawn(sleeps_for_an_hour(&long_destroyed));
    auto short_sleeper = deja::spawn([](bool* destroyed) -> deja::Task<int> {
      DestroyFlag guard{destroyed};
      co_await deja::sleep(3ms);
      co_return 1;
    }(&short_destroyed));
    co_await deja::yield_now();  // both reach their sleeps
    REQUIRE(rt.armed_timers() == 2);
    long_sleeper.abort();
    short_sleeper.abort();
    const bool long_cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(long_sleeper);
    const bool short_cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(short_sleeper);
    REQUIRE(long_cancelled);
    REQUIRE(short_cancelled);
    REQUIRE(long_destroyed);
    REQUIRE(short_destroyed);
    REQUIRE(rt.armed_timers() == 0);
    // Run past the aborted 3 ms deadline: a stale timer would fire into a destroyed task.
    co_await deja::sleep(8ms);
  };
  rt.block_on(body());
  REQUIRE(rt.armed_timers() == 0);
  REQUIRE(rt.live_tasks() == 0);
  REQUIRE(SteadyClock::now() - start >= 8ms);
}

TEST_CASE("Interval: the first tick completes immediately at the start instant") {
  auto body = []() -> deja::Task<void> {
    bool other_ran = false;
    auto other = deja::spawn(set_flag(&other_ran));
    deja::Interval iv(1h);
    const Instant start = iv.next_tick();
    const Instant first = co_await iv.tick();
    REQUIRE_FALSE(other_ran);  // no suspension
    REQUIRE(first == start);
    REQUIRE(iv.next_tick() == start + 1h);
    REQUIRE(iv.period() == 1h);
    REQUIRE(iv.missed_tick_behavior() == deja::MissedTickBehavior::kBurst);
    co_await other;
  };
  deja::block_on(body());
}

TEST_CASE("Interval: ticks are one period apart and none completes before its instant") {
  auto body = []() -> deja::Task<void> {
    constexpr auto period = 4ms;
    deja::Interval iv(period);
    const auto wall_start = SteadyClock::now();
    const Instant start = co_await iv.tick();
    for (int k = 1; k <= 5; ++k) {
      const Instant t = co_await iv.tick();
      const Instant completed = deja::now();
      REQUIRE(t == start + k * period);
      REQUIRE(completed >= t);
    }
    REQUIRE(SteadyClock::now() - wall_start >= 5 * period);
  };
  deja::block_on(body());
}

TEST_CASE("Interval: a cancelled tick wait leaves the schedule unchanged") {
  auto body = []() -> deja::Task<void> {
    deja::Interval iv(30ms);
    const Instant start = co_await iv.tick();
    bool timed_out = false;
    try {
      co_await deja::timeout(1ms, iv.tick());
    } catch (const deja::TimedOut&) {
      timed_out = true;
    }
    REQUIRE(timed_out);
    REQUIRE(iv.next_tick() == start + 30ms);
  };
  deja::block_on(body());
}

namespace {

constexpr auto kPeriod = 10ms;
constexpr auto kStall = 35ms;  // three and a half periods: ticks 1, 2 and 3 are missed

}  // namespace

TEST_CASE("Interval kBurst: after a stall the missed ticks come back to back on the original schedule") {
  auto body = []() -> deja::Task<void> {
    deja::Interval iv(kPeriod, deja::MissedTickBehavior::kBurst);
    const Instant start = co_await iv.tick();
    bool other_ran = false;
    auto other = deja::spawn(set_flag(&other_ran));
    std::this_thread::sleep_for(kStall);  // block the thread: the runtime cannot tick
    for (int k = 1; k <= 3; ++k) {
      const Instant t = co_await iv.tick();
      REQUIRE(t == start + k * kPeriod);
    }
    REQUIRE_FALSE(other_ran);  // the three were already due: no suspension between them
    // The schedule is kept: the next tick is the fourth period, not one period from now.
    REQUIRE(iv.next_tick() == start + 4 * kPeriod);
    const Instant fourth = co_await iv.tick();
    REQUIRE(fourth == start + 4 * kPeriod);
    REQUIRE(deja::now() >= fourth);
    co_await other;
  };
  deja::block_on(body());
}

TEST_CASE("Interval kDelay: after a stall the next tick is one period after the late one") {
  auto body = []() -> deja::Task<void> {
    deja::Interval iv(kPeriod, deja::MissedTickBehavior::kDelay);
    const Instant start = co_await iv.tick();
    std::this_thread::sleep_for(kStall);
    const Instant before = deja::now();
    const Instant late = co_await iv.tick();  // due long ago: completes at once
    const Instant after = deja::now();
    REQUIRE(late == start + kPeriod);
    const Instant next = iv.next_tick();
    REQUIRE(next >= before + kPeriod);
    REQUIRE(next <= after + kPeriod);
    REQUIRE(next > start + 4 * kPeriod);  // the missed ticks 2 and 3 are not replayed
    const Instant t = co_await iv.tick();
    REQUIRE(t == next);
    REQUIRE(deja::now() >= next);
  };
  deja::block_on(body());
}

TEST_CASE("Interval kSkip: after a stall the schedule resumes at the next multiple of the period") {
  auto body = []() -> deja::Task<void> {
    deja::Interval iv(kPeriod, deja::MissedTickBehavior::kSkip);
    const Instant start = co_await iv.tick();
    std::this_thread::sleep_for(kStall);
    const Instant before = deja::now();
    const Instant late = co_await iv.tick();
    const Instant after = deja::now();
    REQUIRE(late == start + kPeriod);
    const Instant next = iv.next_tick();
    // On the original grid, strictly after the moment of the late tick, and the first such.
    REQUIRE((next - start) % kPeriod == deja::Duration::zero());
    REQUIRE(next > before);
    REQUIRE(next - kPeriod <= after);
    REQUIRE(next >= start + 4 * kPeriod);
    const Instant t = co_await iv.tick();
    REQUIRE(t == next);
    REQUIRE(deja::now() >= next);
  };
  deja::block_on(body());
}

TEST_CASE("Interval kDelay and kSkip keep the schedule when a tick is less than a period late") {
  for (const auto behavior : {deja::MissedTickBehavior::kDelay, deja::MissedTickBehavior::kSkip}) {
    auto body = [](deja::MissedTickBehavior b) -> deja::Task<void> {
      deja::Interval iv(kPeriod, b);
      const Instant start = co_await iv.tick();
      std::this_thread::sleep_for(kPeriod + kPeriod / 4);  // tick 1 late by a quarter period
      const Instant late = co_await iv.tick();
      REQUIRE(late == start + kPeriod);
      const Instant now = deja::now();
      if (now < start + 2 * kPeriod) {
        REQUIRE(iv.next_tick() == start + 2 * kPeriod);
      } else {
        WARN("the machine stalled past a whole period; schedule-keeping not checked");
      }
    };
    deja::block_on(body(behavior));
  }
}
