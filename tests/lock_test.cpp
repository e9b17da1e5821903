// Mutex, RwLock, Semaphore, Notify and Barrier: fairness, and the state they keep when a waiting
// task is aborted (before and after it was granted what it waited for).
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

using Log = std::shared_ptr<std::vector<int>>;

deja::Task<void> lock_and_log(deja::Mutex* m, Log log, int id) {
  auto guard = co_await m->lock();
  log->push_back(id);
  co_await deja::yield_now();
}

deja::Task<void> hold_lock(deja::Mutex* m, bool* got) {
  auto guard = co_await m->lock();
  *got = true;
  co_await deja::sleep(1h);
}

deja::Task<void> read_and_log(deja::RwLock* l, Log log, int id) {
  auto g = co_await l->read();
  log->push_back(id);
  co_await deja::yield_now();
}

deja::Task<void> write_and_log(deja::RwLock* l, Log log, int id) {
  auto g = co_await l->write();
  log->push_back(id);
  co_await deja::yield_now();
}

deja::Task<void> acquire_and_log(deja::Semaphore* s, std::uint64_t n, Log log, int id) {
  auto permit = co_await s->acquire(n);
  log->push_back(id);
  co_await deja::yield_now();
}

deja::Task<void> wait_notified(deja::Notify* n, Log log, int id) {
  co_await n->notified();
  log->push_back(id);
}

deja::Task<void> barrier_wait(deja::Barrier* b, std::shared_ptr<int> leaders, Log log, int id) {
  auto r = co_await b->wait();
  if (r.is_leader()) ++*leaders;
  log->push_back(id);
}

}  // namespace

TEST_CASE("mutex hands the lock to waiters in FIFO order") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto log = std::make_shared<std::vector<int>>();
    std::vector<deja::JoinHandle<void>> hs;
    {
      auto guard = co_await m.lock();
      for (int i = 0; i < 5; ++i) hs.push_back(deja::spawn(lock_and_log(&m, log, i)));
      co_await deja::yield_now();
      REQUIRE(log->empty());
      // A newcomer's try_lock cannot barge ahead of the waiters.
    }
    REQUIRE_FALSE(m.try_lock().has_value());
    for (auto& h : hs) co_await h;
    REQUIRE(*log == std::vector<int>{0, 1, 2, 3, 4});
    REQUIRE_FALSE(m.is_locked());
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task waiting for a mutex leaves the lock usable") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto log = std::make_shared<std::vector<int>>();
    auto guard = co_await m.lock();
    auto waiter = deja::spawn(lock_and_log(&m, log, 1));
    co_await deja::yield_now();
    waiter.abort();
    REQUIRE(waiter.is_finished());
    guard.unlock();
    REQUIRE_FALSE(m.is_locked());
    auto g2 = m.try_lock();
    REQUIRE(g2.has_value());
    REQUIRE(log->empty());
  };
  deja::block_on(body());
}

TEST_CASE("a task aborted after the mutex was handed to it passes the lock on") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    auto log = std::make_shared<std::vector<int>>();
    auto guard = co_await m.lock();
    auto a = deja::spawn(lock_and_log(&m, log, 1));
    auto b = deja::spawn(lock_and_log(&m, log, 2));
    co_await deja::yield_now();
    guard.unlock();  // the lock goes to a, which has not run yet
    a.abort();       // a is queued: it is destroyed when the scheduler reaches it
    co_await b;
    REQUIRE(*log == std::vector<int>{2});
    REQUIRE_FALSE(m.is_locked());
  };
  deja::block_on(body());
}

TEST_CASE("a task holding a mutex releases it when aborted") {
  auto body = []() -> deja::Task<void> {
    deja::Mutex m;
    bool got = false;
    auto holder = deja::spawn(hold_lock(&m, &got));
    co_await deja::yield_now();
    REQUIRE(got);
    REQUIRE(m.is_locked());
    holder.abort();
    REQUIRE_FALSE(m.is_locked());
  };
  deja::block_on(body());
}

TEST_CASE("rwlock admits readers together and a waiting writer holds back later readers") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto log = std::make_shared<std::vector<int>>();
    std::vector<deja::JoinHandle<void>> hs;
    {
      auto r = co_await l.read();
      auto r2 = l.try_read();
      REQUIRE(r2.has_value());  // readers share
      REQUIRE_FALSE(l.try_write().has_value());
      hs.push_back(deja::spawn(write_and_log(&l, log, 1)));
      co_await deja::yield_now();
      REQUIRE_FALSE(l.try_read().has_value());  // a writer waits: no new readers
      hs.push_back(deja::spawn(read_and_log(&l, log, 2)));
      hs.push_back(deja::spawn(read_and_log(&l, log, 3)));
      co_await deja::yield_now();
    }
    for (auto& h : hs) co_await h;
    REQUIRE(*log == std::vector<int>{1, 2, 3});
    REQUIRE(l.try_write().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("aborting a writer waiting on an rwlock lets the readers behind it in") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto log = std::make_shared<std::vector<int>>();
    auto r = co_await l.read();
    auto w = deja::spawn(write_and_log(&l, log, 1));
    co_await deja::yield_now();
    auto rd = deja::spawn(read_and_log(&l, log, 2));
    co_await deja::yield_now();
    REQUIRE(log->empty());
    w.abort();
    co_await rd;
    REQUIRE(*log == std::vector<int>{2});
  };
  deja::block_on(body());
}

TEST_CASE("semaphore serves acquires in order, a large one blocking smaller later ones") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(2);
    auto log = std::make_shared<std::vector<int>>();
    auto held = co_await s.acquire(2);
    REQUIRE(s.available_permits() == 0);
    auto big = deja::spawn(acquire_and_log(&s, 2, log, 1));
    co_await deja::yield_now();
    auto small = deja::spawn(acquire_and_log(&s, 1, log, 2));
    co_await deja::yield_now();
    held.release();
    co_await big;
    co_await small;
    REQUIRE(*log == std::vector<int>{1, 2});
    REQUIRE(s.available_permits() == 2);
  };
  deja::block_on(body());
}

TEST_CASE("semaphore permits return when a waiter is aborted before or after its grant") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(1);
    auto log = std::make_shared<std::vector<int>>();
    auto held = co_await s.acquire();
    auto a = deja::spawn(acquire_and_log(&s, 1, log, 1));
    auto b = deja::spawn(acquire_and_log(&s, 1, log, 2));
    co_await deja::yield_now();
    a.abort();  // aborted while waiting
    auto c = deja::spawn(acquire_and_log(&s, 1, log, 3));
    co_await deja::yield_now();
    held.release();  // granted to b
    b.abort();       // b is aborted after the grant, before it ran: the permit goes to c
    co_await c;
    REQUIRE(*log == std::vector<int>{3});
    REQUIRE(s.available_permits() == 1);
  };
  deja::block_on(body());
}

TEST_CASE("closing a semaphore fails pending and later acquires") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(0);
    auto log = std::make_shared<std::vector<int>>();
    auto waiter = deja::spawn(acquire_and_log(&s, 1, log, 1));
    co_await deja::yield_now();
    s.close();
    const bool threw = co_await deja_test::throws_as<std::system_error>(waiter);
    REQUIRE(threw);
    auto later = s.acquire();
    const bool threw_later = co_await deja_test::throws_as<std::system_error>(later);
    REQUIRE(threw_later);
    REQUIRE_THROWS_AS(s.try_acquire(deja::Semaphore::kMaxPermits + 1), deja::UsageError);
  };
  deja::block_on(body());
}

TEST_CASE("notify_one wakes one waiter or stores a permit - notify_waiters wakes all") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = std::make_shared<std::vector<int>>();
    n.notify_one();  // stored permit
    co_await n.notified();
    auto a = deja::spawn(wait_notified(&n, log, 1));
    auto b = deja::spawn(wait_notified(&n, log, 2));
    co_await deja::yield_now();
    n.notify_one();
    co_await a;
    REQUIRE(*log == std::vector<int>{1});
    REQUIRE_FALSE(b.is_finished());
    auto c = deja::spawn(wait_notified(&n, log, 3));
    co_await deja::yield_now();
    n.notify_waiters();
    co_await b;
    co_await c;
    REQUIRE(*log == std::vector<int>{1, 2, 3});
  };
  deja::block_on(body());
}

TEST_CASE("a notify_one that reached an aborted waiter is passed on") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = std::make_shared<std::vector<int>>();
    auto a = deja::spawn(wait_notified(&n, log, 1));
    auto b = deja::spawn(wait_notified(&n, log, 2));
    co_await deja::yield_now();
    n.notify_one();  // reaches a
    a.abort();       // before a ran: b gets it
    co_await b;
    REQUIRE(*log == std::vector<int>{2});
  };
  deja::block_on(body());
}

TEST_CASE("barrier releases every task of a generation with exactly one leader") {
  auto body = []() -> deja::Task<void> {
    deja::Barrier barrier(3);
    auto leaders = std::make_shared<int>(0);
    auto log = std::make_shared<std::vector<int>>();
    for (int gen = 0; gen < 2; ++gen) {
      auto a = deja::spawn(barrier_wait(&barrier, leaders, log, 1));
      auto b = deja::spawn(barrier_wait(&barrier, leaders, log, 2));
      co_await deja::yield_now();
      REQUIRE(log->size() == static_cast<std::size_t>(gen * 3));
      auto c = deja::spawn(barrier_wait(&barrier, leaders, log, 3));
      co_await a;
      co_await b;
      co_await c;
    }
    REQUIRE(log->size() == 6);
    REQUIRE(*leaders == 2);
    REQUIRE(barrier.generation() == 2);
    REQUIRE_THROWS_AS(deja::Barrier(0), deja::UsageError);
  };
  deja::block_on(body());
}

TEST_CASE("a task aborted while waiting at a barrier no longer counts as arrived") {
  auto body = []() -> deja::Task<void> {
    deja::Barrier barrier(2);
    auto leaders = std::make_shared<int>(0);
    auto log = std::make_shared<std::vector<int>>();
    auto a = deja::spawn(barrier_wait(&barrier, leaders, log, 1));
    co_await deja::yield_now();
    a.abort();
    auto b = deja::spawn(barrier_wait(&barrier, leaders, log, 2));
    co_await deja::yield_now();
    REQUIRE(log->empty());  // b waits for a second arrival
    auto c = deja::spawn(barrier_wait(&barrier, leaders, log, 3));
    co_await b;
    co_await c;
    REQUIRE(log->size() == 2);
    REQUIRE(*leaders == 1);
  };
  deja::block_on(body());
}
