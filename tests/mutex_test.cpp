// deja::Mutex: exclusion, FIFO hand-off (no barging), guards, and the lock's state when a waiting
// task is aborted before or after the lock was handed to it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

using Log = std::shared_ptr<std::vector<int>>;

Log make_log() { return std::make_shared<std::vector<int>>(); }

// Waits for the lock and hands the guard to whoever joins the task.
deja::Task<deja::MutexGuard> lock_task(deja::Mutex* m) { co_return co_await m->lock(); }

deja::Task<void> lock_and_log(deja::Mutex* m, Log log, int id) {
  auto guard = co_await m->lock();
  log->push_back(id);
  co_await deja::yield_now();
}

deja::Task<void> hold_forever(deja::Mutex* m, Log log, int id) {
  auto guard = co_await m->lock();
  log->push_back(id);
  co_await deja::sleep(1h);
}

struct Exclusion {
  int inside = 0;
  int peak = 0;
  std::vector<int> order;
};

deja::Task<void> contend(deja::Mutex* m, std::shared_ptr<Exclusion> ex, int id, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto guard = co_await m->lock();
    ex->order.push_back(id);
    ex->peak = std::max(ex->peak, ++ex->inside);
    co_await deja::yield_now();
    --ex->inside;
  }
}

deja::Task<void> count_under_lock(deja::Mutex* m, long* counter, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto guard = co_await m->lock();
    const long v = *counter;
    if (i % 4 == 0) co_await deja::yield_now();  // hold it across a suspension now and then
    *counter = v + 1;
  }
}

}  // namespace

static_assert(!std::is_copy_constructible_v<deja::MutexGuard>);
static_assert(std::is_nothrow_move_constructible_v<deja::MutexGuard>);

TEST_CASE("mutex try_lock takes a free lock and fails while a guard holds it") {
  deja::Mutex m;
  REQUIRE_FALSE(m.is_locked());
  auto g = m.try_lock();
  REQUIRE(g.has_value());
  REQUIRE(g->owns_lock());
  REQUIRE(m.is_locked());
  REQUIRE_FALSE(m.try_lock().has_value());
  g->unlock();
  REQUIRE_FALSE(g->owns_lock());
  REQUIRE_FALSE(m.is_locked());
  g->unlock();  // idempotent
  REQUIRE_FALSE(m.is_locked());
  REQUIRE(m.try_lock().has_value());  // and released again at the end of the statement
  REQUIRE_FALSE(m.is_locked());
}

TEST_CASE("a moved mutex guard releases the lock exactly once, from its new owner") {
  deja::Mutex m;
  deja::Mutex other;
  auto g = m.try_lock();
  REQUIRE(g.has_value());
  deja::MutexGuard moved = std::move(*g);
  REQUIRE_FALSE(g->owns_lock());
  g.reset();
  REQUIRE(m.is_locked());
  auto g2 = other.try_lock();
  REQUIRE(g2.has_value());
  moved = std::move(*g2);  // releases m, takes over other
  REQUIRE_FALSE(m.is_locked());
  REQUIRE(other.is_locked());
  moved.unlock();
  REQUIRE_FALSE(other.is_locked());
}

TEST_CASE("mutex lock completes at once when the mutex is free") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    {
      auto g = co_await m.lock();
      REQUIRE(g.owns_lock());
      REQUIRE(m.is_locked());
    }
    REQUIRE_FALSE(m.is_locked());
  };
  deja::block_on(body());
}

TEST_CASE("mutex hands the lock to waiters in arrival order and try_lock cannot barge in between") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto guard = co_await m.lock();
    std::vector<deja::JoinHandle<deja::MutexGuard>> hs;
    for (int i = 0; i < 4; ++i) hs.push_back(deja::spawn(lock_task(&m)));
    co_await deja::yield_now();
    for (auto& h : hs) REQUIRE_FALSE(h.is_finished());
    guard.unlock();
    // Handed to the first waiter, which has not run yet: still locked for a newcomer.
    REQUIRE(m.is_locked());
    REQUIRE_FALSE(m.try_lock().has_value());
    for (std::size_t i = 0; i < hs.size(); ++i) {
      co_await deja::yield_now();
      REQUIRE(hs[i].is_finished());
      for (std::size_t j = i + 1; j < hs.size(); ++j) REQUIRE_FALSE(hs[j].is_finished());
      auto g = co_await hs[i];  // the holder's guard, moved out of the finished task
      REQUIRE(g.owns_lock());
      REQUIRE_FALSE(m.try_lock().has_value());
    }  // each guard dies here, handing the lock to the next
    REQUIRE_FALSE(m.is_locked());
  };
  deja::block_on(body());
}

TEST_CASE("mutex is fair: a task that unlocks and locks again goes behind the waiters") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto ex = std::make_shared<Exclusion>();
    std::vector<deja::JoinHandle<void>> hs;
    for (int i = 0; i < 3; ++i) hs.push_back(deja::spawn(contend(&m, ex, i, 4)));
    for (auto& h : hs) co_await h;
    REQUIRE(ex->peak == 1);
    REQUIRE(ex->order == std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2});
    REQUIRE_FALSE(m.is_locked());
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task suspended in mutex lock removes it from the queue") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto log = make_log();
    auto guard = co_await m.lock();
    auto a = deja::spawn(lock_and_log(&m, log, 1));
    auto b = deja::spawn(lock_and_log(&m, log, 2));
    auto c = deja::spawn(lock_and_log(&m, log, 3));
    co_await deja::yield_now();
    b.abort();  // suspended and not queued: destroyed right away
    REQUIRE(b.is_finished());
    guard.unlock();
    co_await a;
    const bool c_settled = co_await deja_test::settles(&c);
    REQUIRE(c_settled);
    co_await c;
    REQUIRE(*log == std::vector<int>{1, 3});
    REQUIRE_FALSE(m.is_locked());
    REQUIRE(m.try_lock().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("aborting the only task waiting for a mutex leaves it acquirable once unlocked") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto log = make_log();
    auto guard = co_await m.lock();
    auto a = deja::spawn(lock_and_log(&m, log, 1));
    co_await deja::yield_now();
    a.abort();
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    REQUIRE(m.is_locked());  // still ours
    guard.unlock();
    REQUIRE_FALSE(m.is_locked());
    auto again = co_await m.lock();
    REQUIRE(again.owns_lock());
    REQUIRE(log->empty());
  };
  deja::block_on(body());
}

TEST_CASE("a task aborted after unlock granted it the mutex passes the lock to the next waiter") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto log = make_log();
    auto guard = co_await m.lock();
    auto a = deja::spawn(lock_and_log(&m, log, 1));
    auto b = deja::spawn(lock_and_log(&m, log, 2));
    co_await deja::yield_now();
    guard.unlock();  // granted to a, which is woken but has not run
    a.abort();       // queued: destroyed when the scheduler reaches it, with the lock in hand
    REQUIRE_FALSE(a.is_finished());
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    const bool b_settled = co_await deja_test::settles(&b);
    REQUIRE(b_settled);
    co_await b;
    REQUIRE(*log == std::vector<int>{2});
    REQUIRE_FALSE(m.is_locked());
  };
  deja::block_on(body());
}

TEST_CASE("a task aborted after unlock granted it the mutex, with nobody behind it, leaves it unlocked") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto log = make_log();
    auto guard = co_await m.lock();
    auto a = deja::spawn(lock_and_log(&m, log, 1));
    co_await deja::yield_now();
    guard.unlock();
    REQUIRE(m.is_locked());  // a holds it now
    a.abort();
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    REQUIRE(log->empty());
    REQUIRE_FALSE(m.is_locked());
    REQUIRE(m.try_lock().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task that holds a mutex guard hands the lock to the next waiter") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto log = make_log();
    auto holder = deja::spawn(hold_forever(&m, log, 1));
    co_await deja::yield_now();
    auto next = deja::spawn(lock_task(&m));
    co_await deja::yield_now();
    REQUIRE_FALSE(next.is_finished());
    holder.abort();
    const bool next_settled = co_await deja_test::settles(&next);
    REQUIRE(next_settled);
    auto g = co_await next;
    REQUIRE(g.owns_lock());
    REQUIRE(*log == std::vector<int>{1});
  };
  deja::block_on(body());
}

TEST_CASE("a mutex lock that times out leaves the queue and the lock as they were") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto guard = co_await m.lock();
    auto timed = deja::timeout(5ms, m.lock());
    const bool timed_out = co_await deja_test::throws_as<deja::TimedOut>(timed);
    REQUIRE(timed_out);
    REQUIRE(m.is_locked());
    guard.unlock();
    REQUIRE_FALSE(m.is_locked());
    auto won = co_await deja::timeout(1h, m.lock());
    REQUIRE(won.owns_lock());
  };
  deja::block_on(body());
}

TEST_CASE("mutex excludes tasks running on different threads") {
  deja::Mutex m;
  long counter = 0;
  constexpr int kRounds = 2000;
  std::thread other([&] { deja::block_on(count_under_lock(&m, &counter, kRounds)); });
  deja::block_on(count_under_lock(&m, &counter, kRounds));
  other.join();
  REQUIRE(counter == 2 * kRounds);
  REQUIRE_FALSE(m.is_locked());
}
