// The simulator: virtual time, determinism, replay by seed and by token, failure detection.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sim/replay_token.hpp"
#include "deja/sim/seeds.hpp"
#include "deja/sim/catch2.hpp"
#include "deja/sim/simulator.hpp"

using namespace std::chrono_literals;

namespace {

// Two tasks increment a shared counter with a read, an await, and a write: a lost update that only
// some interleavings show.
deja::Task<void> increment(std::shared_ptr<int> counter) {
  const int seen = *counter;
  co_await deja::yield_now();
  *counter = seen + 1;
}

deja::Task<void> lost_update() {
  auto counter = std::make_shared<int>(0);
  auto a = deja::spawn(increment(counter));
  auto b = deja::spawn(increment(counter));
  co_await a;
  co_await b;
  DEJA_ASSERT(*counter == 2);
}

deja::Task<void> sleepy_workers() {
  std::vector<deja::JoinHandle<void>> hs;
  for (int i = 0; i < 10; ++i) {
    hs.push_back(deja::spawn([](int k) -> deja::Task<void> {
      for (int j = 0; j < 5; ++j) {
        co_await deja::sleep(std::chrono::milliseconds(1 + deja::random_below(50)));
        deja::sim::log("worker " + std::to_string(k) + " woke");
      }
    }(i)));
  }
  for (auto& h : hs) co_await h;
}

// Counts the frames alive that hold one.
struct LiveFrame {
  int* live;
  explicit LiveFrame(int* l) : live(l) { ++*live; }
  LiveFrame(const LiveFrame&) = delete;
  LiveFrame& operator=(const LiveFrame&) = delete;
  ~LiveFrame() { --*live; }
};

deja::Task<void> notified_then_sleeps(deja::Notify* woken, int* live) {
  LiveFrame frame(live);
  co_await woken->notified();
  co_await deja::sleep(24h);
}

deja::Task<void> races_a_notified_branch(deja::Notify** woken, int* live) {
  deja::Notify n;
  *woken = &n;
  co_await deja::race(notified_then_sleeps(&n, live), notified_then_sleeps(&n, live));
}

// A task is aborted while its race branches are in any state the schedule gives: not started,
// waiting, or woken and queued. None may outlive the abort: their frames refer to the parent's.
deja::Task<void> abort_a_racing_task() {
  int live = 0;
  deja::Notify* woken = nullptr;
  auto h = deja::spawn(races_a_notified_branch(&woken, &live));
  for (std::uint64_t i = deja::random_below(4); i > 0; --i) co_await deja::yield_now();
  if (woken != nullptr) woken->notify_waiters();
  if (woken != nullptr && deja::random_below(2) == 0) woken->notify_one();
  for (std::uint64_t i = deja::random_below(2); i > 0; --i) co_await deja::yield_now();
  h.abort();
  // A parent that was suspended is gone now, and so must its branches be. (One that was queued
  // goes when the scheduler picks it, with its branches.)
  if (h.is_finished()) DEJA_ASSERT(live == 0);
  try {
    co_await h;
  } catch (const deja::TaskCancelled&) {
  }
  DEJA_ASSERT(live == 0);
}

// Sleeps raced against sleeps and a channel: the earliest deadline wins at exactly its instant, a
// tie goes to the first in argument order whatever order the simulator fires the timers in, and a
// sender that comes first beats any sleep.
deja::Task<void> sleeps_race_in_virtual_time() {
  const auto start = deja::now();
  auto first = co_await deja::race(deja::sleep(2s), deja::sleep(1s), deja::sleep(3s));
  DEJA_ASSERT(first.index() == 1);
  DEJA_ASSERT(deja::now() - start == 1s);
  auto tie = co_await deja::race(deja::sleep(1s), deja::sleep(1s));
  DEJA_ASSERT(tie.index() == 0);
  DEJA_ASSERT(deja::now() - start == 2s);
  auto [tx, rx] = deja::oneshot::channel<int>();
  auto sender = deja::spawn([](deja::oneshot::Sender<int> s, std::uint64_t delay_ms) -> deja::Task<void> {
    co_await deja::sleep(std::chrono::milliseconds(delay_ms));
    s.send(7);
  }(std::move(tx), 2 * deja::random_below(1000) + 1));  // odd: never a tie with the 1 s
  auto got = co_await deja::race(rx.recv(), deja::sleep(1s));
  const auto waited = deja::now() - start - 2s;
  DEJA_ASSERT(got.index() == (waited < 1s ? 0u : 1u));
  DEJA_ASSERT(waited <= 1s);
  co_await sender;
}

// A receive raced against a sleep that is due at the very instant the message is sent. Whichever
// the schedule lets finish, nothing is lost: if the receive took the message it wins over the
// sleep, and if the sleep won the message is still in the channel. Counts the outcomes.
int g_sleep_won = 0, g_receive_won = 0;
deja::Task<void> receive_against_a_sleep_due_with_the_message() {
  auto [tx, rx] = deja::oneshot::channel<int>();
  auto sender = deja::spawn([](deja::oneshot::Sender<int> s) -> deja::Task<void> {
    co_await deja::sleep(1s);
    s.send(7);
  }(std::move(tx)));
  auto got = co_await deja::race(deja::sleep(1s), rx.recv());
  co_await sender;
  if (got.index() == 1) {
    DEJA_ASSERT(std::get<1>(got) == 7);
    ++g_receive_won;
  } else {
    DEJA_ASSERT(rx.try_recv() == std::optional<int>(7));
    ++g_sleep_won;
  }
}

// Work that fails at the instant its race's sleep fires: if it threw before it was cancelled, the
// race rethrows it rather than answer with the sleep (the simulator fails a run whose exception
// nobody observed). Counts the outcomes.
int g_failure_rethrown = 0, g_sleep_won_over_failure = 0;
deja::Task<int> fails_after_a_second() {
  co_await deja::sleep(1s);
  throw std::runtime_error("work failed");
}

deja::Task<void> failing_work_against_a_sleep_due_with_it() {
  try {
    auto got = co_await deja::race(deja::sleep(1s), fails_after_a_second());
    DEJA_ASSERT(got.index() == 0);
    ++g_sleep_won_over_failure;
  } catch (const std::runtime_error&) {
    ++g_failure_rethrown;
  }
}

}  // namespace

TEST_CASE("simulated time jumps to the next timer instead of waiting") {
  auto body = []() -> deja::Task<void> {
    const auto start = deja::now();
    co_await deja::sleep(1h);
    DEJA_ASSERT(deja::now() - start >= 1h);
  };
  const auto wall = std::chrono::steady_clock::now();
  deja::sim::Outcome o = deja::sim::run({}, body);
  REQUIRE_FALSE(o.failed());
  REQUIRE(o.virtual_elapsed() >= 1h);
  REQUIRE(std::chrono::steady_clock::now() - wall < 10min);  // not waiting for real (a generous bound)
}

TEST_CASE("the same seed gives the same trace hash and decisions (20 seeds)") {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    deja::sim::Config c;
    c.seed = seed;
    const auto a = deja::sim::run(c, sleepy_workers);
    const auto b = deja::sim::run(c, sleepy_workers);
    INFO("seed " << seed);
    REQUIRE_FALSE(a.failed());
    REQUIRE(a.trace_hash() == b.trace_hash());
    REQUIRE(a.decisions() == b.decisions());
  }
  deja::sim::Config c1, c2;
  c1.seed = 1;
  c2.seed = 2;
  REQUIRE(deja::sim::run(c1, sleepy_workers).trace_hash() != deja::sim::run(c2, sleepy_workers).trace_hash());
}

TEST_CASE("the simulator finds a lost update and the replay line reproduces it (up to 200 seeds)") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 200;
  opts.replay_args = deja::sim::current_catch2_test_filter();
  const auto sweep = deja::sim::sweep(lost_update, opts);
  REQUIRE(sweep.first_failure.has_value());
  const deja::sim::Outcome& failure = *sweep.first_failure;
  REQUIRE(failure.failure().find("DEJA_ASSERT(*counter == 2)") != std::string::npos);
  const std::string report = failure.report();
  REQUIRE(report.find("replay: DEJA_SEED=") != std::string::npos);

  // Replay by seed and by token: same failure, same trace hash.
  deja::sim::Config by_seed;
  by_seed.seed = failure.seed();
  const auto again = deja::sim::run(by_seed, lost_update);
  REQUIRE(again.failed());
  REQUIRE(again.trace_hash() == failure.trace_hash());

  deja::sim::Config by_token;
  by_token.replay = deja::sim::decode_replay_token(failure.replay_token());
  const auto replayed = deja::sim::run(by_token, lost_update);
  REQUIRE(replayed.failed());
  REQUIRE(replayed.trace_hash() == failure.trace_hash());
  REQUIRE(replayed.replay_command().find("DEJA_REPLAY=d1.") != std::string::npos);
}

TEST_CASE("PCT also finds the lost update (up to 200 seeds)") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 200;
  opts.base.strategy = deja::sim::Strategy::kPct;
  opts.base.pct_depth = 2;
  opts.base.pct_steps = 10;
  opts.replay_args = deja::sim::current_catch2_test_filter();
  const auto sweep = deja::sim::sweep(lost_update, opts);
  REQUIRE(sweep.first_failure.has_value());
}

TEST_CASE("a task aborted with race branches queued leaves none behind (200 seeds)") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 200;
  REQUIRE(deja::sim::check_seeds(abort_a_racing_task, opts).runs > 0);
}

TEST_CASE("race waits on sleeps in place, exactly in virtual time (100 seeds)") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 100;
  REQUIRE(deja::sim::check_seeds(sleeps_race_in_virtual_time, opts).runs > 0);
}

// Sweeps `body` over 200 seeds (every run must pass) and, on a full sweep rather than one replayed
// seed, requires both of the outcomes it counts to have occurred.
static void sweep_explores_both(deja::Task<void> (*body)(), int& first, int& second) {
  first = second = 0;
  deja::sim::SweepOptions opts;
  opts.default_seeds = 200;
  opts.replay_args = deja::sim::current_catch2_test_filter();
  const auto result = deja::sim::check_seeds(body, opts);
  REQUIRE(result.runs > 0);
  if (result.runs >= 100) {
    REQUIRE(first > 0);
    REQUIRE(second > 0);
  }
}

TEST_CASE("a receive finished at the instant its race's sleep fires wins, and the schedule explores both outcomes (200 seeds)") {
  sweep_explores_both(receive_against_a_sleep_due_with_the_message, g_receive_won, g_sleep_won);
}

TEST_CASE("work that failed at the instant its race's sleep fires is rethrown, not dropped (200 seeds)") {
  sweep_explores_both(failing_work_against_a_sleep_due_with_it, g_failure_rethrown, g_sleep_won_over_failure);
}

TEST_CASE("a run past its virtual-time limit fails") {
  auto blocked = []() -> deja::Task<void> { co_await deja::sleep(24h * 400); };
  deja::sim::Config c;
  c.max_virtual_time = 24h;
  const auto o = deja::sim::run(c, blocked);
  REQUIRE(o.failed());
  REQUIRE(o.failure().find("virtual time limit") != std::string::npos);
}

TEST_CASE("a step limit stops a livelock") {
  auto spin = []() -> deja::Task<void> {
    for (;;) co_await deja::yield_now();
  };
  deja::sim::Config c;
  c.max_steps = 1000;
  const auto o = deja::sim::run(c, spin);
  REQUIRE(o.failed());
  REQUIRE(o.failure().find("step limit") != std::string::npos);
  REQUIRE(o.steps() == 1000);
}

TEST_CASE("an exception nobody observes fails the run") {
  auto body = []() -> deja::Task<void> {
    deja::spawn([]() -> deja::Task<void> {
      co_await deja::yield_now();
      throw std::runtime_error("lost in a detached task");
    }()).detach();
    co_await deja::sleep(1s);
  };
  const auto o = deja::sim::run({}, body);
  REQUIRE(o.failed());
  REQUIRE(o.failure().find("lost in a detached task") != std::string::npos);
}

TEST_CASE("a malformed or truncated replay token is a clear error") {
  const std::string token = deja::sim::encode_replay_token({1, 2, 3, 1000000, 7});
  REQUIRE(deja::sim::decode_replay_token(token) == std::vector<std::uint64_t>{1, 2, 3, 1000000, 7});
  REQUIRE_THROWS_WITH(deja::sim::decode_replay_token("x1.abc"), Catch::Contains("must start with"));
  REQUIRE_THROWS_WITH(deja::sim::decode_replay_token(token.substr(0, token.size() - 3)), Catch::Contains("truncated") || Catch::Contains("checksum"));
  REQUIRE_THROWS_WITH(deja::sim::decode_replay_token("d1.!!!"), Catch::Contains("invalid character"));
}

TEST_CASE("buggify never fires in production and fires by decision in the simulator") {
  auto count_fired = []() -> deja::Task<int> {
    int fired = 0;
    for (int i = 0; i < 1000; ++i) fired += deja::buggify(0.5) ? 1 : 0;
    co_return fired;
  };
  REQUIRE(deja::block_on(count_fired()) == 0);
  auto body = [&]() -> deja::Task<void> {
    const int fired = co_await count_fired();
    DEJA_ASSERT(fired > 300 && fired < 700);
  };
  deja::sim::Config c;
  c.seed = 7;
  REQUIRE_FALSE(deja::sim::run(c, body).failed());
}
