// The multi-thread runtime: scheduling across workers, stealing, parking, cross-thread wakes and
// aborts, shutdown, timers and I/O, and every sync primitive used from tasks on several workers.
// Every test is bounded in count and time; run them under ThreadSanitizer with `make tsan`.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "deja/deja.hpp"
#include "deja/detail/steal_queue.hpp"
#include "deja/sync/barrier.hpp"
#include "deja/sync/broadcast.hpp"
#include "deja/sync/cancellation_token.hpp"
#include "deja/sync/mpsc.hpp"
#include "deja/sync/mutex.hpp"
#include "deja/sync/notify.hpp"
#include "deja/sync/oneshot.hpp"
#include "deja/sync/rw_lock.hpp"
#include "deja/sync/semaphore.hpp"
#include "deja/sync/watch.hpp"

using namespace std::chrono_literals;

namespace {

deja::MultiThreadOptions with_workers(std::size_t n) {
  deja::MultiThreadOptions o;
  o.workers = n;
  return o;
}

deja::Task<int> add(int a, int b) { co_return a + b; }

deja::Task<std::uint64_t> value_of(std::uint64_t i) { co_return i; }

deja::Task<std::uint64_t> spawn_and_sum(std::uint64_t n) {
  std::vector<deja::JoinHandle<std::uint64_t>> handles;
  handles.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) handles.push_back(deja::spawn(value_of(i)));
  std::uint64_t sum = 0;
  for (auto& h : handles) sum += co_await h;
  co_return sum;
}

// Increments `counter` when destroyed: shows where RAII unwound a task.
struct DropCounter {
  std::atomic<int>* counter;
  explicit DropCounter(std::atomic<int>* c) : counter(c) {}
  DropCounter(const DropCounter&) = delete;
  DropCounter& operator=(const DropCounter&) = delete;
  ~DropCounter() { counter->fetch_add(1); }
};

deja::Task<void> sleep_forever(std::atomic<int>* dropped, std::atomic<int>* started) {
  DropCounter guard(dropped);
  started->fetch_add(1);
  co_await deja::sleep(1h);
}

deja::Task<void> yield_forever(std::atomic<int>* dropped, std::atomic<int>* started) {
  DropCounter guard(dropped);
  started->fetch_add(1);
  for (;;) co_await deja::yield_now();
}

void wait_until(const std::atomic<int>& v, int target) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (v.load() < target && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
}

// The root's worker drops its task a moment after block_on has seen it complete.
bool settles_to_no_tasks(const deja::MultiThreadRuntime& rt) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (rt.live_tasks() != 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(100us);
  return rt.live_tasks() == 0;
}

// Leaves its parent's step, then runs one step of `busy` (no await) on whichever worker took it.
deja::Task<void> busy_step_then_sleep(std::atomic<int>* entered, std::atomic<int>* dropped,
                                      std::chrono::milliseconds busy) {
  DropCounter guard(dropped);
  co_await deja::yield_now();
  entered->fetch_add(1);
  const auto until = std::chrono::steady_clock::now() + busy;
  while (std::chrono::steady_clock::now() < until) {
  }
  co_await deja::sleep(1h);
}

deja::Task<void> races_a_busy_branch(std::atomic<int>* entered, std::atomic<int>* dropped) {
  std::atomic<int> started{0};
  co_await deja::race(busy_step_then_sleep(entered, dropped, 30ms), sleep_forever(dropped, &started));
}

// Aborts a task whose race branch is running a step on another worker; returns how many of the
// branches' frames were gone when abort() returned.
deja::Task<int> abort_while_a_branch_runs() {
  std::atomic<int> entered{0};
  std::atomic<int> dropped{0};
  auto h = deja::spawn(races_a_busy_branch(&entered, &dropped));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (entered.load() == 0 && std::chrono::steady_clock::now() < deadline) co_await deja::yield_now();
  h.abort();
  co_return dropped.load();
}

struct BranchCounts {
  std::atomic<int> started{0};
  std::atomic<int> dropped{0};
};

deja::Task<void> races_two_yielders(BranchCounts* c) {
  co_await deja::race(yield_forever(&c->dropped, &c->started), yield_forever(&c->dropped, &c->started));
}

// Aborts tasks whose race branches keep yielding, so that they are queued or running on either
// worker at any moment. Returns how many parents, once aborted, still had a branch alive.
deja::Task<int> abort_storm_of_racing_tasks(int parents) {
  std::vector<BranchCounts> counts(static_cast<std::size_t>(parents));
  std::vector<deja::JoinHandle<void>> handles;
  for (auto& c : counts) handles.push_back(deja::spawn(races_two_yielders(&c)));
  int outlived = 0;
  for (std::size_t i = 0; i < handles.size(); ++i) {
    if (i % 8 == 0) co_await deja::yield_now();
    handles[i].abort();
    // A parent that was suspended is gone now, and so are its branches. (One still queued or
    // running goes later, with them: that is checked at the end.)
    if (handles[i].is_finished() && counts[i].started.load() != counts[i].dropped.load()) ++outlived;
  }
  for (auto& h : handles) {
    try {
      co_await h;
    } catch (const deja::TaskCancelled&) {
    }
  }
  for (auto& c : counts) outlived += c.started.load() != c.dropped.load();
  co_return outlived;
}

// Once told to go, aborts the task that is racing it (its parent), then suspends: it is destroyed
// there. The abort destroys the parent in place, whose race drops this branch as it runs.
deja::Task<void> aborts_its_parent(deja::Notify* go, deja::JoinHandle<void>* parent, std::atomic<int>* dropped) {
  DropCounter guard(dropped);
  co_await go->notified();
  parent->abort();
  co_await deja::sleep(1h);
}

deja::Task<void> races_its_own_aborter(deja::Notify* go, deja::JoinHandle<void>* self, std::atomic<int>* dropped,
                                       std::atomic<int>* started) {
  co_await deja::race(aborts_its_parent(go, self, dropped), sleep_forever(dropped, started));
}

deja::Task<int> a_branch_aborts_its_parent() {
  std::atomic<int> dropped{0};
  std::atomic<int> started{0};
  deja::Notify go;
  deja::JoinHandle<void> parent;
  parent = deja::spawn(races_its_own_aborter(&go, &parent, &dropped, &started));
  // Once the second branch has started the parent is about to suspend in its race; a moment
  // later it has, and the first branch's abort destroys it in place, inside the branch's step.
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (started.load() == 0 && std::chrono::steady_clock::now() < until) co_await deja::yield_now();
  co_await deja::sleep(2ms);
  go.notify_one();
  try {
    co_await parent;
  } catch (const deja::TaskCancelled&) {
  }
  // The aborting branch ends when its step does, after the parent is gone.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (dropped.load() < 2 && std::chrono::steady_clock::now() < deadline) co_await deja::yield_now();
  co_return dropped.load();
}

}  // namespace

TEST_CASE("multi thread runtime runs a task to completion and returns its value", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(4));
  REQUIRE(rt.workers() == 4);
  REQUIRE(rt.block_on(add(2, 3)) == 5);
  REQUIRE(rt.block_on(add(4, 5)) == 9);
}

TEST_CASE("multi thread runtime defaults to one worker per hardware thread", "[mt]") {
  deja::MultiThreadRuntime rt;
  REQUIRE(rt.workers() == std::max(1u, std::thread::hardware_concurrency()));
}

TEST_CASE("block_on from inside a multi thread runtime is refused", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  auto nested = [](deja::MultiThreadRuntime* r) -> deja::Task<bool> {
    try {
      r->block_on(add(1, 1));
    } catch (const deja::UsageError&) {
      co_return true;
    }
    co_return false;
  };
  REQUIRE(rt.block_on(nested(&rt)));
}

TEST_CASE("a spawn storm inside the runtime joins every task with the right sum", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(4));
  constexpr std::uint64_t n = 20'000;
  REQUIRE(rt.block_on(spawn_and_sum(n)) == n * (n - 1) / 2);
  REQUIRE(settles_to_no_tasks(rt));
}

TEST_CASE("a spawn storm from many outside threads runs every task exactly once", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(3));
  constexpr int threads = 6;
  constexpr std::uint64_t per = 2'000;
  std::vector<std::vector<deja::JoinHandle<std::uint64_t>>> handles(threads);
  std::vector<std::thread> spawners;
  for (int t = 0; t < threads; ++t) {
    spawners.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < per; ++i) handles[static_cast<std::size_t>(t)].push_back(rt.spawn(value_of(static_cast<std::uint64_t>(t) * per + i)));
    });
  }
  for (auto& s : spawners) s.join();
  auto join_all = [](std::vector<std::vector<deja::JoinHandle<std::uint64_t>>>* all) -> deja::Task<std::uint64_t> {
    std::uint64_t sum = 0;
    for (auto& v : *all) {
      for (auto& h : v) sum += co_await h;
    }
    co_return sum;
  };
  const std::uint64_t total = threads * per;
  REQUIRE(rt.block_on(join_all(&handles)) == total * (total - 1) / 2);
}

namespace {

deja::Task<void> record_thread(std::mutex* lock, std::set<std::thread::id>* seen) {
  // Long enough that one worker cannot drain the queue before the others come to steal.
  const auto until = std::chrono::steady_clock::now() + 200us;
  while (std::chrono::steady_clock::now() < until) {
  }
  {
    std::lock_guard guard(*lock);
    seen->insert(std::this_thread::get_id());
  }
  co_return;
}

deja::Task<void> spawn_recorders(int n, std::mutex* lock, std::set<std::thread::id>* seen) {
  std::vector<deja::JoinHandle<void>> handles;
  for (int i = 0; i < n; ++i) handles.push_back(deja::spawn(record_thread(lock, seen)));
  for (auto& h : handles) co_await h;
}

}  // namespace

TEST_CASE("work spawned on one worker is stolen by the others", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(3));
  std::mutex lock;
  std::set<std::thread::id> seen;
  // Fewer than a local queue holds, so nothing overflows to the injection queue: the other
  // workers can only get these by stealing.
  rt.block_on(spawn_recorders(200, &lock, &seen));
  REQUIRE(seen.size() >= 2);
  const deja::MultiThreadMetrics m = rt.metrics();
  std::uint64_t steals = 0;
  std::uint64_t run = 0;
  for (const auto& w : m.per_worker) {
    steals += w.steals;
    run += w.tasks_run;
  }
  REQUIRE(steals > 0);
  REQUIRE(run >= 201);
}

TEST_CASE("metrics report workers and live tasks and queue depths while running", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  std::atomic<int> dropped{0};
  std::atomic<int> started{0};
  std::vector<deja::JoinHandle<void>> handles;
  for (int i = 0; i < 10; ++i) handles.push_back(rt.spawn(sleep_forever(&dropped, &started)));
  wait_until(started, 10);
  // A task counts itself started just before it arms its timer: wait (bounded) for the last one.
  deja::MultiThreadMetrics m = rt.metrics();
  for (int i = 0; i < 10'000 && m.timers != 10; ++i) {
    std::this_thread::sleep_for(1ms);
    m = rt.metrics();
  }
  REQUIRE(m.workers == 2);
  REQUIRE(m.per_worker.size() == 2);
  REQUIRE(m.live_tasks == 10);
  REQUIRE(m.timers == 10);
  for (const auto& w : m.per_worker) REQUIRE(w.local_queue_depth <= deja::detail::StealQueue::kCapacity);
  std::this_thread::sleep_for(20ms);  // every worker parks: nothing is ready
  std::uint64_t parks = 0;
  for (const auto& w : rt.metrics().per_worker) parks += w.parks;
  REQUIRE(parks >= 2);
  for (auto& h : handles) h.abort();
}

namespace {

deja::Task<int> wait_for_values(deja::mpsc::Receiver<int> rx, int expected) {
  int sum = 0;
  for (int i = 0; i < expected; ++i) {
    auto v = co_await rx.recv();
    if (!v) break;
    sum += *v;
  }
  co_return sum;
}

}  // namespace

TEST_CASE("a wake storm from outside threads loses no wake-up", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  constexpr int receivers = 16;
  constexpr int threads = 4;
  constexpr int per = 500;  // per thread and receiver
  std::vector<deja::mpsc::Sender<int>> senders;
  std::vector<deja::JoinHandle<int>> handles;
  for (int r = 0; r < receivers; ++r) {
    auto [tx, rx] = deja::mpsc::unbounded_channel<int>();
    senders.push_back(std::move(tx));
    handles.push_back(rt.spawn(wait_for_values(std::move(rx), threads * per)));
  }
  // Catch2's assertions are not thread-safe: the threads count failures instead.
  std::atomic<int> failed_sends{0};
  std::vector<std::thread> wakers;
  for (int t = 0; t < threads; ++t) {
    std::vector<deja::mpsc::Sender<int>> mine(senders.begin(), senders.end());
    wakers.emplace_back([&failed_sends, mine = std::move(mine)]() mutable {
      for (int i = 0; i < per; ++i) {
        // Sleeping receivers are woken from here, racing with their workers.
        for (auto& tx : mine) failed_sends += static_cast<bool>(tx.try_send(1));
        if (i % 50 == 0) std::this_thread::sleep_for(100us);
      }
    });
  }
  senders.clear();
  for (auto& w : wakers) w.join();
  REQUIRE(failed_sends.load() == 0);
  auto join_all = [](std::vector<deja::JoinHandle<int>>* hs) -> deja::Task<int> {
    int sum = 0;
    for (auto& h : *hs) sum += co_await h;
    co_return sum;
  };
  REQUIRE(rt.block_on(join_all(&handles)) == receivers * threads * per);
}

TEST_CASE("yield_now on the multi thread runtime requeues the task behind the other ready ones", "[mt]") {
  // One worker, so the order is the scheduler's alone. A yield is a flag the worker reads when the
  // step ends: were it lost, the yielder would never run again (the test would hang); were it run
  // at once instead of requeued, one id would repeat.
  deja::MultiThreadRuntime rt(with_workers(1));
  auto body = []() -> deja::Task<std::vector<int>> {
    auto order = std::make_shared<std::vector<int>>();
    auto worker = [](std::shared_ptr<std::vector<int>> o, int id) -> deja::Task<void> {
      for (int i = 0; i < 50; ++i) {
        o->push_back(id);
        co_await deja::yield_now();
      }
    };
    auto a = deja::spawn(worker(order, 1));
    auto b = deja::spawn(worker(order, 2));
    co_await a;
    co_await b;
    co_return *order;
  };
  const std::vector<int> order = rt.block_on(body());
  REQUIRE(order.size() == 100);
  for (std::size_t i = 1; i < order.size(); ++i) {
    INFO("position " << i);
    REQUIRE(order[i] != order[i - 1]);
  }
}

TEST_CASE("abort from another thread destroys a task at its suspension point", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  std::atomic<int> dropped{0};
  std::atomic<int> started{0};
  std::vector<deja::JoinHandle<void>> handles;
  for (int i = 0; i < 200; ++i) handles.push_back(rt.spawn(i % 2 ? sleep_forever(&dropped, &started) : yield_forever(&dropped, &started)));
  wait_until(started, 100);  // some are running or queued, some suspended
  std::thread aborter([&] {
    for (auto& h : handles) h.abort();
  });
  aborter.join();
  auto join_all = [](std::vector<deja::JoinHandle<void>>* hs) -> deja::Task<int> {
    int cancelled = 0;
    for (auto& h : *hs) {
      try {
        co_await h;
      } catch (const deja::TaskCancelled&) {
        ++cancelled;
      }
    }
    co_return cancelled;
  };
  REQUIRE(rt.block_on(join_all(&handles)) == 200);
  REQUIRE(dropped.load() == started.load());
  REQUIRE(settles_to_no_tasks(rt));
}

namespace {

deja::Task<int> produce(int i) {
  co_await deja::yield_now();
  co_return i;
}

// Each joiner awaits a task that runs (and completes) wherever the scheduler puts it.
deja::Task<int> join_one(int i) { co_return co_await deja::spawn(produce(i)); }

deja::Task<int> join_many(int n) {
  std::vector<deja::JoinHandle<int>> handles;
  for (int i = 0; i < n; ++i) handles.push_back(deja::spawn(join_one(i)));
  int sum = 0;
  for (auto& h : handles) sum += co_await h;
  co_return sum;
}

}  // namespace

TEST_CASE("a join handle awaited on one worker sees its task complete on another", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(4));
  constexpr int n = 5'000;
  REQUIRE(rt.block_on(join_many(n)) == n * (n - 1) / 2);
}

TEST_CASE("shutdown while busy destroys every unfinished task at its suspension point", "[mt]") {
  std::atomic<int> dropped{0};
  std::atomic<int> started{0};
  {
    deja::MultiThreadRuntime rt(with_workers(3));
    for (int i = 0; i < 300; ++i) (void)rt.spawn(i % 3 ? yield_forever(&dropped, &started) : sleep_forever(&dropped, &started));
    wait_until(started, 50);
  }
  // Started ones unwound their guard; the rest never ran and had nothing to unwind.
  REQUIRE(dropped.load() == started.load());
  REQUIRE(started.load() >= 50);
}

namespace {

deja::Task<bool> sleep_and_check(int ms) {
  const auto start = deja::now();
  co_await deja::sleep(std::chrono::milliseconds(ms));
  co_return deja::now() - start >= std::chrono::milliseconds(ms);
}

deja::Task<int> many_sleepers(int n) {
  std::vector<deja::JoinHandle<bool>> handles;
  for (int i = 0; i < n; ++i) handles.push_back(deja::spawn(sleep_and_check(1 + i % 20)));
  int on_time = 0;
  for (auto& h : handles) on_time += co_await h;
  co_return on_time;
}

deja::Task<void> ready_now() { co_return; }

deja::Task<int> timer_churn(int n) {
  int fired = 0;
  for (int i = 0; i < n; ++i) {
    auto winner = co_await deja::race(deja::sleep(10s), ready_now());
    fired += winner.index() == 0;
  }
  co_return fired;
}

// Races sleeps of 0 to 1.5 ms against work that sleeps 0 to 1.2 ms: the race's timers fire on
// whichever worker drives the timers, while the race waits or as it is woken by its work, and
// are cancelled when they lose.
deja::Task<int> work_for(std::chrono::microseconds d) {
  co_await deja::sleep(d);
  co_return 1;
}

deja::Task<int> short_sleeps_race_work(int n) {
  int slept = 0;
  for (int i = 0; i < n; ++i) {
    auto winner = co_await deja::race(deja::sleep(std::chrono::microseconds(500 * (i % 4))), work_for(std::chrono::microseconds(300 * (i % 5))));
    slept += winner.index() == 0;
  }
  co_return slept;
}

// A sleep raced against a receive whose message is sent about when the sleep is due, from a task
// on whichever worker: whichever arm wins, the message is never lost (finished work beats a fired
// sleep). Returns how many were lost.
deja::Task<void> send_after(deja::oneshot::Sender<int> tx, std::chrono::microseconds after, int value) {
  co_await deja::sleep(after);
  tx.send(value);
}

deja::Task<int> receives_against_sleeps(int n) {
  int lost = 0;
  for (int i = 0; i < n; ++i) {
    auto [tx, rx] = deja::oneshot::channel<int>();
    auto sender = deja::spawn(send_after(std::move(tx), std::chrono::microseconds(500 * (i % 3)), i));
    auto winner = co_await deja::race(deja::sleep(std::chrono::microseconds(500 * (i % 2))), rx.recv());
    co_await sender;
    if (winner.index() == 1) lost += std::get<1>(winner) != i;
    else lost += rx.try_recv() != std::optional<int>(i);
  }
  co_return lost;
}

// Runs `tasks` spawned copies of body(n), which the workers share out, and sums their results.
deja::Task<int> sum_of_spawned(deja::Task<int> (*body)(int), int tasks, int n) {
  std::vector<deja::JoinHandle<int>> hs;
  for (int t = 0; t < tasks; ++t) hs.push_back(deja::spawn(body(n)));
  int sum = 0;
  for (auto& h : hs) sum += co_await h;
  co_return sum;
}

}  // namespace

TEST_CASE("timers on every worker fire no earlier than their deadline", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(3));
  REQUIRE(rt.block_on(many_sleepers(300)) == 300);
  REQUIRE(rt.metrics().timers == 0);
}

TEST_CASE("a timer armed while the driver sleeps wakes it earlier", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  std::atomic<int> dropped{0};
  std::atomic<int> started{0};
  auto far = rt.spawn(sleep_forever(&dropped, &started));  // the driver sleeps towards this one
  wait_until(started, 1);
  std::this_thread::sleep_for(5ms);
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(rt.block_on(sleep_and_check(10)));
  REQUIRE(std::chrono::steady_clock::now() - start < 5s);
  far.abort();
}

TEST_CASE("race cancels its losing timers across workers", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  REQUIRE(rt.block_on(timer_churn(20'000)) == 0);
  REQUIRE(rt.metrics().timers == 0);
}

TEST_CASE("a race's sleeps fire on whichever worker drives the timers and none is left armed", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  constexpr int kTasks = 4, kRaces = 300;
  const int slept = rt.block_on(sum_of_spawned(short_sleeps_race_work, kTasks, kRaces));
  // sleep(0) is due at once and wins ahead of the work: one race in 4 at least. Work that needs
  // no wait (one in 5) wins against a sleep that is not due.
  REQUIRE(slept >= kTasks * kRaces / 4);
  REQUIRE(slept < kTasks * kRaces);
  REQUIRE(rt.metrics().timers == 0);
  REQUIRE(settles_to_no_tasks(rt));
}

TEST_CASE("a receive raced against a sleep across workers never loses its message", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  REQUIRE(rt.block_on(sum_of_spawned(receives_against_sleeps, 4, 300)) == 0);
  REQUIRE(rt.metrics().timers == 0);
  REQUIRE(settles_to_no_tasks(rt));
}

TEST_CASE("aborting a task waits for its race branch running on another worker to be destroyed", "[mt]") {
  // The branch's frame refers to its parent's: abort() must not return while the branch still
  // runs elsewhere. Without abort_now, abort returned with the branch spinning on the other worker.
  deja::MultiThreadRuntime rt(with_workers(2));
  for (int round = 0; round < 10; ++round) {
    INFO("round " << round);
    REQUIRE(rt.block_on(abort_while_a_branch_runs()) == 2);
  }
  REQUIRE(settles_to_no_tasks(rt));
}

TEST_CASE("an abort storm of tasks whose race branches run on every worker leaves no branch behind", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  for (int round = 0; round < 5; ++round) {
    INFO("round " << round);
    REQUIRE(rt.block_on(abort_storm_of_racing_tasks(400)) == 0);
  }
  REQUIRE(settles_to_no_tasks(rt));
}

TEST_CASE("a race branch that aborts its own parent is dropped without waiting for itself", "[mt]") {
  // The parent is destroyed inside the branch's step, and drops the branch as it goes: the branch
  // is running on this very thread, so it is only marked (waiting would wait forever).
  SECTION("multi thread") {
    deja::MultiThreadRuntime rt(with_workers(2));
    for (int round = 0; round < 20; ++round) REQUIRE(rt.block_on(a_branch_aborts_its_parent()) == 2);
    REQUIRE(settles_to_no_tasks(rt));
  }
  SECTION("current thread") {
    deja::CurrentThreadRuntime rt;
    for (int round = 0; round < 20; ++round) REQUIRE(rt.block_on(a_branch_aborts_its_parent()) == 2);
  }
}

TEST_CASE("spawn_blocking runs its job on the multi thread runtime", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  auto job = []() -> deja::Task<int> { co_return co_await deja::spawn_blocking([] { return 42; }); };
  REQUIRE(rt.block_on(job()) == 42);
}

namespace {

deja::Task<std::size_t> read_all(int fd, std::size_t expected) {
  deja::AsyncFd afd(fd);
  std::size_t got = 0;
  char buf[256];
  while (got < expected) {
    co_await afd.readable();
    for (;;) {
      const ssize_t r = ::read(fd, buf, sizeof buf);
      if (r > 0) {
        got += static_cast<std::size_t>(r);
        continue;
      }
      afd.clear_ready(deja::Interest::kReadable);
      break;
    }
  }
  co_return got;
}

}  // namespace

TEST_CASE("AsyncFd on the multi thread runtime is woken by data written from another thread", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  int fds[2];
  REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
  constexpr std::size_t total = 64 * 100;
  std::atomic<int> short_writes{0};
  std::thread writer([&] {
    char chunk[64] = {};
    for (int i = 0; i < 100; ++i) {
      short_writes += ::write(fds[1], chunk, sizeof chunk) != static_cast<ssize_t>(sizeof chunk);
      if (i % 10 == 0) std::this_thread::sleep_for(1ms);
    }
  });
  REQUIRE(rt.block_on(read_all(fds[0], total)) == total);
  writer.join();
  REQUIRE(short_writes.load() == 0);
  ::close(fds[0]);
  ::close(fds[1]);
}

// --- sync primitives across workers ---------------------------------------------------------

namespace {

deja::Task<void> locked_increments(deja::Mutex* m, std::uint64_t* counter, int n) {
  for (int i = 0; i < n; ++i) {
    auto guard = co_await m->lock();
    const std::uint64_t v = *counter;
    if (i % 8 == 0) co_await deja::yield_now();  // hold the lock across a suspension sometimes
    *counter = v + 1;
  }
}

template <class T>
deja::Task<void> join_all(std::vector<deja::JoinHandle<T>> handles) {
  for (auto& h : handles) co_await h;
}

}  // namespace

TEST_CASE("Mutex gives exclusive access to tasks on several workers", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(4));
  deja::Mutex m;
  std::uint64_t counter = 0;
  std::vector<deja::JoinHandle<void>> hs;
  for (int t = 0; t < 16; ++t) hs.push_back(rt.spawn(locked_increments(&m, &counter, 500)));
  rt.block_on(join_all(std::move(hs)));
  REQUIRE(counter == 16 * 500);
}

namespace {

deja::Task<int> rw_reader(deja::RwLock* l, const std::uint64_t* a, const std::uint64_t* b, int n) {
  int torn = 0;
  for (int i = 0; i < n; ++i) {
    auto guard = co_await l->read();
    torn += *a != *b;
  }
  co_return torn;
}

deja::Task<int> rw_writer(deja::RwLock* l, std::uint64_t* a, std::uint64_t* b, int n) {
  for (int i = 0; i < n; ++i) {
    auto guard = co_await l->write();
    ++*a;
    co_await deja::yield_now();  // a reader getting in now would see a != b
    ++*b;
  }
  co_return 0;
}

}  // namespace

TEST_CASE("RwLock readers on other workers never see a write half done", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(4));
  deja::RwLock l;
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  std::vector<deja::JoinHandle<int>> hs;
  for (int t = 0; t < 8; ++t) hs.push_back(rt.spawn(rw_reader(&l, &a, &b, 1'000)));
  for (int t = 0; t < 4; ++t) hs.push_back(rt.spawn(rw_writer(&l, &a, &b, 250)));
  auto sum = [](std::vector<deja::JoinHandle<int>> v) -> deja::Task<int> {
    int s = 0;
    for (auto& h : v) s += co_await h;
    co_return s;
  };
  REQUIRE(rt.block_on(sum(std::move(hs))) == 0);
  REQUIRE(a == 1'000);
  REQUIRE(b == 1'000);
}

namespace {

deja::Task<void> bounded_worker(deja::Semaphore* s, std::atomic<int>* inside, std::atomic<int>* peak, int n) {
  for (int i = 0; i < n; ++i) {
    auto permit = co_await s->acquire();
    const int now = inside->fetch_add(1) + 1;
    int p = peak->load();
    while (now > p && !peak->compare_exchange_weak(p, now)) {
    }
    co_await deja::yield_now();
    inside->fetch_sub(1);
  }
}

}  // namespace

TEST_CASE("Semaphore never lets more holders in than it has permits across workers", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(4));
  deja::Semaphore s(3);
  std::atomic<int> inside{0};
  std::atomic<int> peak{0};
  std::vector<deja::JoinHandle<void>> hs;
  for (int t = 0; t < 12; ++t) hs.push_back(rt.spawn(bounded_worker(&s, &inside, &peak, 300)));
  rt.block_on(join_all(std::move(hs)));
  REQUIRE(peak.load() <= 3);
  REQUIRE(peak.load() >= 1);
  REQUIRE(s.available_permits() == 3);
}

namespace {

// Two tasks take turns through two Notify objects; a lost notification hangs (the timeout fails it).
deja::Task<int> notify_turns(deja::Notify* mine, deja::Notify* theirs, int n, bool first) {
  int turns = 0;
  for (int i = 0; i < n; ++i) {
    if (!first || i > 0) co_await mine->notified();
    ++turns;
    theirs->notify_one();
  }
  co_return turns;
}

}  // namespace

TEST_CASE("Notify passes turns between tasks on different workers without losing one", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(3));
  constexpr int pairs = 8;
  constexpr int n = 1'000;
  std::vector<std::unique_ptr<deja::Notify>> notifies;
  std::vector<deja::JoinHandle<int>> hs;
  for (int p = 0; p < pairs; ++p) {
    notifies.push_back(std::make_unique<deja::Notify>());
    notifies.push_back(std::make_unique<deja::Notify>());
    deja::Notify* x = notifies[notifies.size() - 2].get();
    deja::Notify* y = notifies.back().get();
    hs.push_back(rt.spawn(notify_turns(x, y, n, true)));
    hs.push_back(rt.spawn(notify_turns(y, x, n, false)));
  }
  auto run = [](std::vector<deja::JoinHandle<int>> v) -> deja::Task<int> {
    int s = 0;
    for (auto& h : v) s += co_await deja::timeout(30s, std::move(h));
    co_return s;
  };
  REQUIRE(rt.block_on(run(std::move(hs))) == 2 * pairs * n);
}

namespace {

deja::Task<int> barrier_rounds(deja::Barrier* b, std::atomic<int>* arrived, int rounds, int parties) {
  int leaders = 0;
  for (int r = 0; r < rounds; ++r) {
    arrived->fetch_add(1);
    auto result = co_await b->wait();
    // Everyone of this round has arrived before anyone leaves it.
    if (arrived->load() < (r + 1) * parties) co_return -1;
    leaders += result.is_leader();
  }
  co_return leaders;
}

}  // namespace

TEST_CASE("Barrier releases a generation only once every task on every worker arrived", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(4));
  constexpr int parties = 6;
  constexpr int rounds = 200;
  deja::Barrier b(parties);
  std::atomic<int> arrived{0};
  std::vector<deja::JoinHandle<int>> hs;
  for (int t = 0; t < parties; ++t) hs.push_back(rt.spawn(barrier_rounds(&b, &arrived, rounds, parties)));
  auto sum = [](std::vector<deja::JoinHandle<int>> v) -> deja::Task<int> {
    int s = 0;
    bool bad = false;
    for (auto& h : v) {
      const int x = co_await h;
      bad |= x < 0;
      s += x;
    }
    co_return bad ? -1 : s;
  };
  REQUIRE(rt.block_on(sum(std::move(hs))) == rounds);  // one leader per generation
}

namespace {

deja::Task<void> oneshot_send(deja::oneshot::Sender<int> tx, int v) {
  co_await deja::yield_now();
  (void)tx.send(v);
}

deja::Task<int> oneshot_pairs(int n) {
  std::vector<deja::oneshot::Receiver<int>> rxs;
  for (int i = 0; i < n; ++i) {
    auto [tx, rx] = deja::oneshot::channel<int>();
    rxs.push_back(std::move(rx));
    deja::spawn(oneshot_send(std::move(tx), i)).detach();
  }
  int sum = 0;
  for (auto& rx : rxs) sum += co_await rx;
  co_return sum;
}

}  // namespace

TEST_CASE("oneshot delivers every value sent from another worker", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(3));
  constexpr int n = 5'000;
  REQUIRE(rt.block_on(oneshot_pairs(n)) == n * (n - 1) / 2);
}

namespace {

deja::Task<void> mpsc_producer(deja::mpsc::Sender<std::uint64_t> tx, std::uint64_t first, std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) {
    if (co_await tx.send(first + i)) co_return;
  }
}

deja::Task<bool> mpsc_consume(std::uint64_t producers, std::uint64_t per) {
  auto [tx, rx] = deja::mpsc::channel<std::uint64_t>(8);
  for (std::uint64_t p = 0; p < producers; ++p) deja::spawn(mpsc_producer(tx, p * per, per)).detach();
  { auto closing = std::move(tx); }
  std::vector<std::uint64_t> last(producers, 0);
  std::vector<bool> any(producers, false);
  std::uint64_t count = 0;
  bool ordered = true;
  while (auto v = co_await rx.recv()) {
    const std::uint64_t p = *v / per;
    // Each producer's values arrive in the order it sent them.
    if (any[p] && *v <= last[p]) ordered = false;
    any[p] = true;
    last[p] = *v;
    ++count;
  }
  co_return ordered && count == producers * per;
}

}  // namespace

TEST_CASE("mpsc from producers on several workers delivers everything in per producer order", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(4));
  REQUIRE(rt.block_on(mpsc_consume(6, 3'000)));
}

namespace {

deja::Task<bool> broadcast_receive(deja::broadcast::Receiver<int> rx, int n) {
  int expected = 0;
  for (;;) {
    auto r = co_await rx.recv();
    if (r.error == deja::make_error_code(deja::ChannelErrc::kLagged)) {
      expected += static_cast<int>(r.missed);
      continue;
    }
    if (!r) break;
    if (*r != expected) co_return false;  // in order with nothing skipped silently
    ++expected;
  }
  co_return expected == n;
}

deja::Task<void> broadcast_send(deja::broadcast::Sender<int> tx, int n) {
  for (int i = 0; i < n; ++i) {
    (void)tx.send(i);
    if (i % 16 == 0) co_await deja::yield_now();
  }
}

deja::Task<bool> broadcast_all(int receivers, int n) {
  auto [tx, rx] = deja::broadcast::channel<int>(64);
  std::vector<deja::JoinHandle<bool>> hs;
  for (int r = 0; r < receivers; ++r) hs.push_back(deja::spawn(broadcast_receive(rx.resubscribe(), n)));
  { auto drop = std::move(rx); }
  co_await deja::spawn(broadcast_send(std::move(tx), n));
  bool ok = true;
  for (auto& h : hs) ok &= co_await h;
  co_return ok;
}

}  // namespace

TEST_CASE("broadcast receivers on other workers see every value in order or a lag count", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(3));
  REQUIRE(rt.block_on(broadcast_all(6, 5'000)));
}

namespace {

deja::Task<bool> watch_observe(deja::watch::Receiver<int> rx, int last) {
  int seen = 0;
  for (;;) {
    const int v = rx.borrow_and_update();
    if (v < seen) co_return false;  // values only move forward
    seen = v;
    if (seen == last) co_return true;
    if (co_await rx.changed()) co_return seen == last;
  }
}

deja::Task<void> watch_publish(deja::watch::Sender<int> tx, int last) {
  for (int i = 1; i <= last; ++i) {
    (void)tx.send(i);
    if (i % 8 == 0) co_await deja::yield_now();
  }
}

deja::Task<bool> watch_all(int receivers, int last) {
  auto [tx, rx] = deja::watch::channel<int>(0);
  std::vector<deja::JoinHandle<bool>> hs;
  for (int r = 0; r < receivers; ++r) hs.push_back(deja::spawn(watch_observe(rx, last)));
  co_await deja::spawn(watch_publish(std::move(tx), last));
  bool ok = true;
  for (auto& h : hs) ok &= co_await h;
  co_return ok;
}

}  // namespace

TEST_CASE("watch receivers on other workers see values move forward to the last one", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(3));
  REQUIRE(rt.block_on(watch_all(8, 3'000)));
}

namespace {

deja::Task<int> wait_cancelled(deja::CancellationToken token) {
  co_await token.cancelled();
  co_return token.is_cancelled() ? 1 : 0;
}

}  // namespace

TEST_CASE("CancellationToken cancelled from an outside thread wakes waiters on every worker", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(3));
  deja::CancellationToken root;
  std::vector<deja::JoinHandle<int>> hs;
  for (int i = 0; i < 200; ++i) hs.push_back(rt.spawn(wait_cancelled(i % 2 ? root.child_token() : root)));
  std::thread canceller([root]() mutable {
    std::this_thread::sleep_for(5ms);
    root.cancel();
  });
  auto sum = [](std::vector<deja::JoinHandle<int>> v) -> deja::Task<int> {
    int s = 0;
    for (auto& h : v) s += co_await h;
    co_return s;
  };
  REQUIRE(rt.block_on(sum(std::move(hs))) == 200);
  canceller.join();
}

namespace {

// A task owns a primitive on the heap and waits on it; a thread outside the runtime wakes it (a
// notify, an unlock, a release), and the task frees the primitive at once. Having been woken, it
// may assume the waker is done with the primitive, as after locking a std::mutex; a waker that
// still touches it (unlocking the lock it woke the task under) is a use after free, which
// ThreadSanitizer reports as a race with the free. Returns how many rounds ran.
template <class Primitive, class Hold, class Wait>
int freed_by_the_woken(deja::MultiThreadRuntime& rt, Hold hold, Wait wait, int rounds) {
  int done = 0;
  for (int round = 0; round < rounds; ++round) {
    auto primitive = std::make_unique<Primitive>();
    auto held = hold(*primitive);  // what the outside thread will do to wake the task
    std::atomic<int> waiting{0};
    std::atomic<int> finished{0};
    rt.spawn([](std::unique_ptr<Primitive> p, Wait w, std::atomic<int>* started, std::atomic<int>* ended) -> deja::Task<void> {
      started->store(1);
      co_await w(*p);
      p.reset();
      ended->store(1);
    }(std::move(primitive), wait, &waiting, &finished)).detach();
    wait_until(waiting, 1);
    std::this_thread::sleep_for(200us);  // most rounds: the task is parked by now
    held();                              // wakes it, from outside the runtime
    wait_until(finished, 1);
    done += finished.load();
  }
  return done;
}

std::atomic<int> closed_acquires{0};

struct SemaphoreOfNone : deja::Semaphore {
  SemaphoreOfNone() : deja::Semaphore(0) {}
};

struct BarrierOfTwo : deja::Barrier {
  BarrierOfTwo() : deja::Barrier(2) {}
};

}  // namespace

TEST_CASE("a Notify or Semaphore or Barrier freed by the task it woke is not touched by its waker after", "[mt]") {
  deja::MultiThreadRuntime rt(with_workers(2));
  constexpr int kRounds = 100;
  SECTION("a notify_one") {
    CHECK(freed_by_the_woken<deja::Notify>(
              rt, [](deja::Notify& n) { return [&n] { n.notify_one(); }; },
              [](deja::Notify& n) -> deja::Task<void> { co_await n.notified(); }, kRounds) == kRounds);
  }
  SECTION("a close of a semaphore that a task waits on") {
    CHECK(freed_by_the_woken<SemaphoreOfNone>(
              rt, [](SemaphoreOfNone& s) { return [&s] { s.close(); }; },
              [](SemaphoreOfNone& s) -> deja::Task<void> {
                try {
                  auto permit = co_await s.acquire();
                } catch (const std::system_error& e) {
                  if (e.code() == deja::ChannelErrc::kClosed) closed_acquires.fetch_add(1);
                }
              },
              kRounds) == kRounds);
    CHECK(closed_acquires.load() == kRounds);
  }
  SECTION("the last arrival at a barrier, on a runtime of its own") {
    CHECK(freed_by_the_woken<BarrierOfTwo>(
              rt,
              [](BarrierOfTwo& b) {
                return [&b] {
                  deja::CurrentThreadRuntime leader;
                  leader.block_on([](deja::Barrier* barrier) -> deja::Task<void> { co_await barrier->wait(); }(&b));
                };
              },
              [](BarrierOfTwo& b) -> deja::Task<void> { co_await b.wait(); }, kRounds) == kRounds);
  }
}
