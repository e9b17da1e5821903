// deja::Barrier: release of n arrivals with one leader, reuse across generations, and what an
// aborted waiter does to the count (before and after its generation was released).
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <thread>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

deja::Task<bool> wait_is_leader(deja::Barrier* b) {
  auto r = co_await b->wait();
  co_return r.is_leader();
}

struct Rounds {
  std::vector<int> arrived;        // per round, arrivals before the wait
  std::vector<int> seen_on_leave;  // per round, the fewest arrivals a task saw on leaving
  std::vector<int> leaders;        // per round
};

deja::Task<void> run_rounds(deja::Barrier* b, std::shared_ptr<Rounds> r, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    ++r->arrived[i];
    auto result = co_await b->wait();
    r->seen_on_leave[i] = std::min(r->seen_on_leave[i], r->arrived[i]);
    if (result.is_leader()) ++r->leaders[i];
  }
}

deja::Task<void> wait_rounds(deja::Barrier* b, int rounds, int* leaders) {
  for (int i = 0; i < rounds; ++i) {
    auto r = co_await b->wait();
    if (r.is_leader()) ++*leaders;
  }
}

}  // namespace

TEST_CASE("a barrier for zero tasks is a usage error") {
  REQUIRE_THROWS_AS(deja::Barrier(0), deja::UsageError);
}

TEST_CASE("a barrier for one task releases every wait at once as its leader") {
  auto body = []() -> deja::Task<void> {
    deja::Barrier b(1);
    for (int i = 0; i < 3; ++i) {
      auto r = co_await b.wait();
      REQUIRE(r.is_leader());
    }
    REQUIRE(b.generation() == 3);
  };
  deja::block_on(body());
}

TEST_CASE("barrier holds tasks until n have arrived and makes the last arrival the leader") {
  auto body = []() -> deja::Task<void> {
    deja::Barrier b(3);
    auto first = deja::spawn(wait_is_leader(&b));
    auto second = deja::spawn(wait_is_leader(&b));
    co_await deja::yield_now();
    co_await deja::yield_now();
    REQUIRE_FALSE(first.is_finished());
    REQUIRE_FALSE(second.is_finished());
    REQUIRE(b.waiting() == 2);
    REQUIRE(b.generation() == 0);
    auto r = co_await b.wait();  // the third: releases all, without suspending
    REQUIRE(r.is_leader());
    REQUIRE(b.generation() == 1);
    REQUIRE(b.waiting() == 0);
    const bool first_led = co_await first;
    const bool second_led = co_await second;
    REQUIRE_FALSE(first_led);
    REQUIRE_FALSE(second_led);
  };
  deja::block_on(body());
}

TEST_CASE("barrier is reusable: every generation waits for all n and has exactly one leader") {
  auto body = []() -> deja::Task<void> {
    constexpr int kParties = 4;
    constexpr int kRounds = 5;
    deja::Barrier b(kParties);
    auto r = std::make_shared<Rounds>();
    r->arrived.assign(kRounds, 0);
    r->seen_on_leave.assign(kRounds, kParties + 1);
    r->leaders.assign(kRounds, 0);
    std::vector<deja::JoinHandle<void>> hs;
    for (int i = 0; i < kParties; ++i) hs.push_back(deja::spawn(run_rounds(&b, r, kRounds)));
    for (auto& h : hs) co_await h;
    for (int i = 0; i < kRounds; ++i) {
      REQUIRE(r->seen_on_leave[i] == kParties);  // nobody left a round before everyone arrived
      REQUIRE(r->leaders[i] == 1);
    }
    REQUIRE(b.generation() == kRounds);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task waiting at a barrier withdraws its arrival") {
  auto body = []() -> deja::Task<void> {
    deja::Barrier b(3);
    auto a = deja::spawn(wait_is_leader(&b));
    auto c = deja::spawn(wait_is_leader(&b));
    co_await deja::yield_now();
    REQUIRE(b.waiting() == 2);
    a.abort();
    REQUIRE(a.is_finished());
    REQUIRE(b.waiting() == 1);
    auto d = deja::spawn(wait_is_leader(&b));
    co_await deja::yield_now();
    REQUIRE(b.waiting() == 2);  // the generation still needs a third live arrival
    REQUIRE_FALSE(c.is_finished());
    REQUIRE(b.generation() == 0);
    auto r = co_await b.wait();
    REQUIRE(r.is_leader());
    const bool c_led = co_await c;
    const bool d_led = co_await d;
    REQUIRE_FALSE(c_led);
    REQUIRE_FALSE(d_led);
    REQUIRE(b.generation() == 1);
  };
  deja::block_on(body());
}

TEST_CASE("a task aborted after its barrier generation was released leaves the next generation intact") {
  auto body = []() -> deja::Task<void> {
    deja::Barrier b(2);
    auto a = deja::spawn(wait_is_leader(&b));
    co_await deja::yield_now();
    auto r = co_await b.wait();  // releases a, which has not run yet
    REQUIRE(r.is_leader());
    a.abort();
    REQUIRE_FALSE(a.is_finished());
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    REQUIRE(b.generation() == 1);
    REQUIRE(b.waiting() == 0);  // a's arrival belonged to the finished generation
    auto c = deja::spawn(wait_is_leader(&b));
    co_await deja::yield_now();
    REQUIRE_FALSE(c.is_finished());
    REQUIRE(b.waiting() == 1);
    auto r2 = co_await b.wait();
    REQUIRE(r2.is_leader());
    const bool c_led = co_await c;
    REQUIRE_FALSE(c_led);
    REQUIRE(b.generation() == 2);
  };
  deja::block_on(body());
}

TEST_CASE("a barrier wait that times out withdraws its arrival") {
  auto body = []() -> deja::Task<void> {
    deja::Barrier b(2);
    auto timed = deja::timeout(5ms, b.wait());
    const bool timed_out = co_await deja_test::throws_as<deja::TimedOut>(timed);
    REQUIRE(timed_out);
    REQUIRE(b.waiting() == 0);
    REQUIRE(b.generation() == 0);
  };
  deja::block_on(body());
}

TEST_CASE("barrier releases tasks waiting on different threads together") {
  constexpr int kRounds = 500;
  deja::Barrier b(2);
  int leaders_a = 0;
  int leaders_b = 0;
  std::thread other([&] { deja::block_on(wait_rounds(&b, kRounds, &leaders_a)); });
  deja::block_on(wait_rounds(&b, kRounds, &leaders_b));
  other.join();
  REQUIRE(leaders_a + leaders_b == kRounds);
  REQUIRE(b.generation() == kRounds);
}
