// deja::Semaphore: permits, FIFO fairness (a large acquire at the head blocks smaller later ones),
// close, bounds, and the permit count when a waiting task is aborted before or after its grant.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

using Log = std::shared_ptr<std::vector<int>>;

Log make_log() { return std::make_shared<std::vector<int>>(); }

// Waits for n permits and hands them to whoever joins the task.
deja::Task<deja::SemaphorePermit> acquire_task(deja::Semaphore* s, std::uint64_t n) { co_return co_await s->acquire(n); }

deja::Task<void> acquire_and_log(deja::Semaphore* s, std::uint64_t n, Log log, int id) {
  auto p = co_await s->acquire(n);
  log->push_back(id);
}

// The error an acquire ends with (empty if it got its permits).
deja::Task<std::error_code> acquire_error(deja::Semaphore* s, std::uint64_t n) {
  try {
    auto p = co_await s->acquire(n);
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  co_return std::error_code{};
}

struct Concurrency {
  int inside = 0;
  int peak = 0;
};

deja::Task<void> limited_work(deja::Semaphore* s, std::shared_ptr<Concurrency> c) {
  auto p = co_await s->acquire();
  c->peak = std::max(c->peak, ++c->inside);
  co_await deja::yield_now();
  co_await deja::yield_now();
  --c->inside;
}

deja::Task<void> count_with_one_permit(deja::Semaphore* s, long* counter, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto p = co_await s->acquire();
    const long v = *counter;
    if (i % 4 == 0) co_await deja::yield_now();
    *counter = v + 1;
  }
}

}  // namespace

static_assert(!std::is_copy_constructible_v<deja::SemaphorePermit>);
static_assert(std::is_nothrow_move_constructible_v<deja::SemaphorePermit>);

TEST_CASE("semaphore try_acquire takes permits that come back when the permit is dropped") {
  deja::Semaphore s(3);
  REQUIRE(s.available_permits() == 3);
  auto two = s.try_acquire(2);
  REQUIRE(two.has_value());
  REQUIRE(two->count() == 2);
  REQUIRE(s.available_permits() == 1);
  REQUIRE_FALSE(s.try_acquire(2).has_value());
  {
    auto one = s.try_acquire();
    REQUIRE(one.has_value());
    REQUIRE(s.available_permits() == 0);
    deja::SemaphorePermit moved = std::move(*one);
    REQUIRE(one->count() == 0);
    REQUIRE(moved.count() == 1);
  }
  REQUIRE(s.available_permits() == 1);
  two->release();
  REQUIRE(two->count() == 0);
  REQUIRE(s.available_permits() == 3);
  two.reset();  // already released: nothing more comes back
  REQUIRE(s.available_permits() == 3);
}

TEST_CASE("a forgotten semaphore permit never comes back") {
  deja::Semaphore s(3);
  {
    auto p = s.try_acquire(2);
    REQUIRE(p.has_value());
    p->forget();
    REQUIRE(p->count() == 0);
  }
  REQUIRE(s.available_permits() == 1);
  s.add_permits(4);
  REQUIRE(s.available_permits() == 5);
}

TEST_CASE("semaphore serves acquires in arrival order and a large one at the head blocks smaller later ones") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(3);
    auto held = co_await s.acquire(3);
    auto a = deja::spawn(acquire_task(&s, 2));
    auto b = deja::spawn(acquire_task(&s, 3));
    auto c = deja::spawn(acquire_task(&s, 1));
    co_await deja::yield_now();
    held.release();  // 3 free: a takes 2; b needs 3; c would fit but must not pass b
    co_await deja::yield_now();
    REQUIRE(a.is_finished());
    REQUIRE_FALSE(b.is_finished());
    REQUIRE_FALSE(c.is_finished());
    REQUIRE(s.available_permits() == 1);
    REQUIRE_FALSE(s.try_acquire(1).has_value());  // nor may a newcomer
    auto pa = co_await a;
    REQUIRE(pa.count() == 2);
    pa.release();  // 3 free: b
    co_await deja::yield_now();
    REQUIRE(b.is_finished());
    REQUIRE_FALSE(c.is_finished());
    REQUIRE(s.available_permits() == 0);
    auto pb = co_await b;
    pb.release();  // c at last
    auto pc = co_await c;
    REQUIRE(pc.count() == 1);
    REQUIRE(s.available_permits() == 2);
  };
  deja::block_on(body());
}

TEST_CASE("semaphore add_permits serves waiters as soon as there are enough for the head") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(0);
    auto log = make_log();
    auto a = deja::spawn(acquire_and_log(&s, 2, log, 1));
    auto b = deja::spawn(acquire_and_log(&s, 1, log, 2));
    co_await deja::yield_now();
    s.add_permits(1);
    co_await deja::yield_now();
    REQUIRE(log->empty());
    REQUIRE(s.available_permits() == 1);
    s.add_permits(2);  // 3: a takes 2, b takes 1
    co_await a;
    co_await b;
    REQUIRE(*log == std::vector<int>{1, 2});
    REQUIRE(s.available_permits() == 3);
  };
  deja::block_on(body());
}

TEST_CASE("semaphore admits at most its permit count of tasks at a time") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(3);
    auto c = std::make_shared<Concurrency>();
    std::vector<deja::JoinHandle<void>> hs;
    for (int i = 0; i < 10; ++i) hs.push_back(deja::spawn(limited_work(&s, c)));
    for (auto& h : hs) co_await h;
    REQUIRE(c->peak == 3);
    REQUIRE(s.available_permits() == 3);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a large semaphore acquire at the head of the queue lets smaller ones behind it through") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(2);
    auto held = co_await s.acquire(1);
    auto big = deja::spawn(acquire_task(&s, 2));
    auto small = deja::spawn(acquire_task(&s, 1));
    co_await deja::yield_now();
    REQUIRE_FALSE(small.is_finished());  // 1 is free, but big is first
    big.abort();
    REQUIRE(big.is_finished());
    const bool small_settled = co_await deja_test::settles(&small);
    REQUIRE(small_settled);
    auto p = co_await small;
    REQUIRE(p.count() == 1);
    REQUIRE(s.available_permits() == 0);
    held.release();
    p.release();
    REQUIRE(s.available_permits() == 2);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task suspended in semaphore acquire takes no permits") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(1);
    auto log = make_log();
    auto held = co_await s.acquire();
    auto a = deja::spawn(acquire_and_log(&s, 1, log, 1));
    co_await deja::yield_now();
    a.abort();
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    held.release();
    REQUIRE(s.available_permits() == 1);
    REQUIRE(s.try_acquire().has_value());
    REQUIRE(log->empty());
  };
  deja::block_on(body());
}

TEST_CASE("a semaphore waiter aborted after its grant returns the permits to the next waiter") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(2);
    auto log = make_log();
    auto held = co_await s.acquire(2);
    auto a = deja::spawn(acquire_and_log(&s, 2, log, 1));
    auto b = deja::spawn(acquire_and_log(&s, 2, log, 2));
    co_await deja::yield_now();
    held.release();  // granted to a, which has not run
    REQUIRE(s.available_permits() == 0);
    a.abort();
    REQUIRE_FALSE(a.is_finished());
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    const bool b_settled = co_await deja_test::settles(&b);
    REQUIRE(b_settled);
    co_await b;
    REQUIRE(*log == std::vector<int>{2});
    REQUIRE(s.available_permits() == 2);
  };
  deja::block_on(body());
}

TEST_CASE("a semaphore waiter aborted after its grant, with nobody behind it, leaves the permits available") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(0);
    auto log = make_log();
    auto a = deja::spawn(acquire_and_log(&s, 3, log, 1));
    co_await deja::yield_now();
    s.add_permits(3);
    REQUIRE(s.available_permits() == 0);
    a.abort();
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    REQUIRE(log->empty());
    REQUIRE(s.available_permits() == 3);
  };
  deja::block_on(body());
}

TEST_CASE("closing a semaphore fails pending and later acquires with ChannelErrc::kClosed") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(1);
    auto held = co_await s.acquire();
    auto pending = deja::spawn(acquire_error(&s, 1));
    co_await deja::yield_now();
    REQUIRE_FALSE(s.is_closed());
    s.close();
    REQUIRE(s.is_closed());
    const std::error_code pending_ec = co_await pending;
    REQUIRE(pending_ec == deja::make_error_code(deja::ChannelErrc::kClosed));
    const std::error_code later_ec = co_await acquire_error(&s, 0);
    REQUIRE(later_ec == deja::make_error_code(deja::ChannelErrc::kClosed));
    REQUIRE_FALSE(s.try_acquire().has_value());
    held.release();  // a permit held across close is still returned
    REQUIRE(s.available_permits() == 1);
    REQUIRE_FALSE(s.try_acquire().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("semaphore rejects more than kMaxPermits with UsageError") {
  REQUIRE_THROWS_AS(deja::Semaphore(deja::Semaphore::kMaxPermits + 1), deja::UsageError);
  deja::Semaphore s(deja::Semaphore::kMaxPermits);
  REQUIRE_THROWS_AS(s.try_acquire(deja::Semaphore::kMaxPermits + 1), deja::UsageError);
  REQUIRE_THROWS_AS(s.add_permits(1), deja::UsageError);
  {
    auto p = s.try_acquire(5);
    REQUIRE(p.has_value());
    REQUIRE_THROWS_AS(s.add_permits(1), deja::UsageError);  // held permits count towards the bound
    p->forget();
  }
  s.add_permits(5);  // forgotten ones left room
  REQUIRE(s.available_permits() == deja::Semaphore::kMaxPermits);
  REQUIRE_THROWS_AS(s.add_permits(1), deja::UsageError);
  auto body = [](deja::Semaphore* sem) -> deja::Task<bool> {
    auto too_many = sem->acquire(deja::Semaphore::kMaxPermits + 1);
    co_return co_await deja_test::throws_as<deja::UsageError>(too_many);
  };
  REQUIRE(deja::block_on(body(&s)));
  REQUIRE(s.available_permits() == deja::Semaphore::kMaxPermits);
}

TEST_CASE("a semaphore acquire that times out leaves the queue and the permits as they were") {
  auto body = []() -> deja::Task<void> {
    deja::Semaphore s(1);
    auto held = co_await s.acquire();
    auto timed = deja::timeout(5ms, s.acquire());
    const bool timed_out = co_await deja_test::throws_as<deja::TimedOut>(timed);
    REQUIRE(timed_out);
    REQUIRE(s.available_permits() == 0);
    held.release();
    REQUIRE(s.try_acquire().has_value());  // nobody queued any more
  };
  deja::block_on(body());
}

TEST_CASE("a one-permit semaphore excludes tasks running on different threads") {
  deja::Semaphore s(1);
  long counter = 0;
  constexpr int kRounds = 2000;
  std::thread other([&] { deja::block_on(count_with_one_permit(&s, &counter, kRounds)); });
  deja::block_on(count_with_one_permit(&s, &counter, kRounds));
  other.join();
  REQUIRE(counter == 2 * kRounds);
  REQUIRE(s.available_permits() == 1);
}
