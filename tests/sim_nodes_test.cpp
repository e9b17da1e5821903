// Simulated nodes: tasks belong to the node that spawned them, a crash destroys them all where
// they wait (locks pass on, timers are cancelled, joiners see TaskCancelled), restart runs main again.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "deja/deja.hpp"
#include "deja/sim/node.hpp"
#include "deja/sim/seeds.hpp"
#include "deja/sim/catch2.hpp"
#include "deja/sim/simulator.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

// Runs `body` over `seeds` seeds, with the determinism check on, and fails the test with the
// first failing run's report (which ends with its replay line).
void sweep_or_fail(const std::function<deja::Task<void>()>& body, std::uint64_t seeds) {
  deja::sim::SweepOptions opts;
  opts.default_seeds = seeds;
  opts.base.check_determinism = true;
  opts.replay_args = deja::sim::current_catch2_test_filter();
  const auto result = deja::sim::sweep(body, opts);
  if (result.first_failure) FAIL(result.first_failure->report());
  REQUIRE(result.runs > 0);
}

// Counts its destruction: proof that a crashed task's frame was unwound.
struct Unwound {
  int* count;
  explicit Unwound(int* c) : count(c) {}
  Unwound(const Unwound&) = delete;
  Unwound& operator=(const Unwound&) = delete;
  ~Unwound() { ++*count; }
};

struct Bank {
  deja::Mutex mutex;
  bool a_inside = false;     // node a holds the lock, mid critical section
  int a_unwound = 0;         // destructors of a's critical-section locals that ran
  int balance = 100;         // a moves 10 out and back in, under the lock
  int b_rounds = 0;          // rounds node b completed under the lock
  int c_unwound = 0;         // destructors of c's waiting task
  std::optional<deja::JoinHandle<void>> a_worker;  // a task of node a, joined by the main task
};

// Node a: takes the lock and, in the middle of a transfer, waits for 10 ms holding it.
deja::Task<void> node_a(std::shared_ptr<Bank> bank) {
  bank->a_worker = deja::spawn([]() -> deja::Task<void> {
    for (;;) co_await deja::sleep(1ms);  // runs until its node dies
  }());
  for (;;) {
    deja::MutexGuard guard = co_await bank->mutex.lock();
    Unwound unwound(&bank->a_unwound);
    bank->a_inside = true;
    bank->balance -= 10;
    co_await deja::sleep(10ms);
    bank->balance += 10;
    bank->a_inside = false;
  }
}

// Node b: five short rounds under the same lock.
deja::Task<void> node_b(std::shared_ptr<Bank> bank) {
  for (int i = 0; i < 5; ++i) {
    deja::MutexGuard guard = co_await bank->mutex.lock();
    co_await deja::sleep(1ms);
    ++bank->b_rounds;
  }
}

// Node c: waits for the lock behind a timeout (the wait runs as a branch task of c's).
deja::Task<void> node_c(std::shared_ptr<Bank> bank) {
  Unwound unwound(&bank->c_unwound);
  deja::MutexGuard guard = co_await deja::timeout(1h, bank->mutex.lock());
  DEJA_ASSERT(false && "node c got the lock after it crashed");
}

deja::Task<void> crash_in_critical_section() {
  auto bank = std::make_shared<Bank>();
  const deja::sim::NodeId a = deja::sim::add_node("a", [bank] { return node_a(bank); });
  const deja::sim::NodeId b = deja::sim::add_node("b", [bank] { return node_b(bank); });
  // Wait until a is inside its critical section (b may have had the lock first).
  while (!bank->a_inside) co_await deja::sleep(100us);
  // c queues behind a, then crashes while waiting.
  const deja::sim::NodeId c = deja::sim::add_node("c", [bank] { return node_c(bank); });
  co_await deja::sleep(100us);
  DEJA_ASSERT(bank->mutex.is_locked());
  deja::sim::crash(c);
  DEJA_ASSERT(bank->c_unwound == 1);

  deja::sim::crash(a);
  DEJA_ASSERT(!deja::sim::node_is_up(a));
  DEJA_ASSERT(bank->a_unwound == 1);   // the guard's scope unwound: its locals were destroyed
  DEJA_ASSERT(bank->balance == 90);    // the crash interrupted the transfer (state is ours to fix)
  deja::JoinHandle<void> worker = std::move(*bank->a_worker);
  const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(worker);
  DEJA_ASSERT(cancelled);

  // b goes on: the lock a held passed on, and nobody hands it to the dead c.
  co_await deja::sleep(1s);
  DEJA_ASSERT(bank->b_rounds == 5);
  DEJA_ASSERT(!bank->mutex.is_locked());
  auto relock = bank->mutex.try_lock();
  DEJA_ASSERT(relock.has_value());
  DEJA_ASSERT(deja::sim::node_is_up(b));
}

struct Counters {
  int boots = 0;
  int ticks = 0;
  bool long_timer_fired = false;
  deja::sim::NodeId seen_by_main;
  deja::sim::NodeId seen_by_child;
};

deja::Task<void> ticking_node(std::shared_ptr<Counters> c) {
  ++c->boots;
  c->seen_by_main = deja::sim::current_node();
  auto child = deja::spawn([](std::shared_ptr<Counters> k) -> deja::Task<void> {
    k->seen_by_child = deja::sim::current_node();
    co_await deja::sleep(1h);
    k->long_timer_fired = true;
  }(c));
  child.detach();
  for (;;) {
    co_await deja::sleep(10ms);
    ++c->ticks;
  }
}

}  // namespace

TEST_CASE("sim nodes: a crash in a critical section releases the mutex, unwinds the tasks, and other nodes go on (100 seeds)") {
  sweep_or_fail(crash_in_critical_section, 100);
}

TEST_CASE("sim nodes: tasks belong to the node that spawned them - restart runs main again (50 seeds)") {
  auto body = []() -> deja::Task<void> {
    auto c = std::make_shared<Counters>();
    DEJA_ASSERT(deja::sim::current_node() == deja::sim::NodeId{});
    const deja::sim::NodeId n = deja::sim::add_node("ticker", [c] { return ticking_node(c); });
    co_await deja::sleep(25ms);
    DEJA_ASSERT(c->boots == 1);
    DEJA_ASSERT(c->seen_by_main == n);
    DEJA_ASSERT(c->seen_by_child == n);
    deja::sim::crash(n);
    deja::sim::crash(n);  // a crashed node crashing again: nothing happens
    DEJA_ASSERT(!deja::sim::node_is_up(n));
    c->seen_by_main = c->seen_by_child = deja::sim::NodeId{};
    deja::sim::restart(n);
    DEJA_ASSERT(deja::sim::node_is_up(n));
    co_await deja::sleep(25ms);
    DEJA_ASSERT(c->boots == 2);
    DEJA_ASSERT(c->ticks == 4);  // two before the crash, two after the restart
    DEJA_ASSERT(c->seen_by_main == n);
    DEJA_ASSERT(c->seen_by_child == n);
    deja::sim::log("done");
  };
  sweep_or_fail(body, 50);

  // crash and restart are trace events.
  const auto o = deja::sim::run({}, body);
  REQUIRE_FALSE(o.failed());
  int crashes = 0, restarts = 0;
  for (const std::string& line : o.trace_tail()) {
    crashes += line.find("crash node \"ticker\"") != std::string::npos ? 1 : 0;
    restarts += line.find("restart node \"ticker\" (boot 2)") != std::string::npos ? 1 : 0;
  }
  REQUIRE(crashes == 1);  // the second crash of a crashed node records nothing
  REQUIRE(restarts == 1);
}

TEST_CASE("sim nodes: a crashed node's timers never fire (50 seeds)") {
  auto body = []() -> deja::Task<void> {
    auto c = std::make_shared<Counters>();
    const deja::sim::NodeId n = deja::sim::add_node("ticker", [c] { return ticking_node(c); });
    co_await deja::sleep(35ms);
    DEJA_ASSERT(c->ticks == 3);
    deja::sim::crash(n);
    const auto crashed_at = deja::now();
    co_await deja::sleep(2h);  // past the child's 1 h timer and hundreds of 10 ms ticks
    DEJA_ASSERT(c->ticks == 3);
    DEJA_ASSERT(!c->long_timer_fired);
    DEJA_ASSERT(deja::now() - crashed_at == 2h);
  };
  sweep_or_fail(body, 50);

  // With nothing else pending, the run ends when the main task does: no timer of the dead node is
  // left to advance virtual time past it.
  auto short_body = []() -> deja::Task<void> {
    auto c = std::make_shared<Counters>();
    const deja::sim::NodeId n = deja::sim::add_node("ticker", [c] { return ticking_node(c); });
    co_await deja::sleep(35ms);
    deja::sim::crash(n);
  };
  const auto o = deja::sim::run({}, short_body);
  REQUIRE_FALSE(o.failed());
  REQUIRE(o.virtual_elapsed() == 35ms);
}

TEST_CASE("sim nodes: misuse is a UsageError") {
  auto idle = []() -> deja::Task<void> { co_await deja::sleep(1s); };
  REQUIRE_THROWS_AS(deja::sim::add_node("outside", idle), deja::UsageError);
  REQUIRE_THROWS_AS(deja::sim::crash(deja::sim::NodeId{1}), deja::UsageError);
  REQUIRE_THROWS_AS(deja::sim::restart(deja::sim::NodeId{1}), deja::UsageError);
  REQUIRE_THROWS_AS(deja::sim::current_node(), deja::UsageError);

  auto body = [idle]() -> deja::Task<void> {
    auto expect_usage_error = [](auto&& f, const char* needle) {
      try {
        f();
      } catch (const deja::UsageError& e) {
        DEJA_ASSERT(std::string(e.what()).find(needle) != std::string::npos);
        return;
      }
      DEJA_ASSERT(false && "no UsageError");
    };
    const deja::sim::NodeId n = deja::sim::add_node("n", idle);
    expect_usage_error([&] { deja::sim::add_node("n", idle); }, "exists already");
    expect_usage_error([&] { deja::sim::add_node("", idle); }, "needs a name");
    expect_usage_error([&] { deja::sim::add_node("x", {}); }, "no main function");
    expect_usage_error([&] { deja::sim::crash(deja::sim::NodeId{7}); }, "no node has id 7");
    expect_usage_error([&] { deja::sim::crash(deja::sim::NodeId{}); }, "not a node");
    expect_usage_error([&] { deja::sim::restart(n); }, "is running");
    expect_usage_error([&] { (void)deja::sim::node_is_up(deja::sim::NodeId{9}); }, "no node has id 9");
    // A node cannot crash itself from its own task.
    auto self_crash = std::make_shared<bool>(false);
    deja::sim::add_node("suicidal", [self_crash]() -> deja::Task<void> {
      try {
        deja::sim::crash(deja::sim::current_node());
      } catch (const deja::UsageError&) {
        *self_crash = true;
      }
      co_return;
    });
    co_await deja::sleep(1ms);
    DEJA_ASSERT(*self_crash);
  };
  const auto o = deja::sim::run({}, body);
  INFO(o.report());
  REQUIRE_FALSE(o.failed());
}

// A node's main may be a coroutine lambda with captures: the simulator keeps the lambda in place
// while nodes are added (and its storage grows) and across restarts. The captures here are small
// and trivially copyable, which std::function stores inline, where a move would relocate them.
TEST_CASE("sim nodes: a coroutine lambda with captures works as a node main across many nodes and a restart (10 seeds)") {
  auto body = []() -> deja::Task<void> {
    std::vector<int> boots(40, 0);
    std::vector<deja::sim::NodeId> nodes;
    for (int i = 0; i < 40; ++i) {
      int* counter = &boots[static_cast<std::size_t>(i)];
      nodes.push_back(deja::sim::add_node("n" + std::to_string(i), [counter, i]() -> deja::Task<void> {
        co_await deja::sleep(std::chrono::milliseconds(1 + i));
        DEJA_ASSERT(i >= 0 && i < 40);
        ++*counter;
        co_await deja::sleep(std::chrono::hours(1));
      }));
    }
    co_await deja::sleep(std::chrono::seconds(1));
    deja::sim::crash(nodes[0]);
    deja::sim::restart(nodes[0]);
    co_await deja::sleep(std::chrono::seconds(1));
    DEJA_ASSERT(boots[0] == 2);
    for (std::size_t i = 1; i < 40; ++i) DEJA_ASSERT(boots[i] == 1);
    for (const auto n : nodes) deja::sim::crash(n);
  };
  deja::sim::SweepOptions opts;
  opts.default_seeds = 10;
  deja::sim::check_seeds(body, opts);
}
