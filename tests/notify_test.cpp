// deja::Notify: notify_one (FIFO, or one stored permit), notify_waiters (everyone now, no permit),
// and notifications reaching a task that is aborted before it runs.
#include <catch2/catch.hpp>

#include <memory>
#include <thread>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

using Log = std::shared_ptr<std::vector<int>>;

Log make_log() { return std::make_shared<std::vector<int>>(); }

deja::Task<void> wait_and_log(deja::Notify* n, Log log, int id) {
  co_await n->notified();
  log->push_back(id);
}

// Passes a token back and forth with another thread `rounds` times.
deja::Task<void> ping(deja::Notify* mine, deja::Notify* theirs, int rounds, bool first) {
  for (int i = 0; i < rounds; ++i) {
    if (first) {
      theirs->notify_one();
      co_await mine->notified();
    } else {
      co_await mine->notified();
      theirs->notify_one();
    }
  }
}

}  // namespace

TEST_CASE("notify_one with nobody waiting stores a single permit for the next notified") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = make_log();
    n.notify_one();
    n.notify_one();  // permits do not accumulate
    co_await n.notified();  // completes at once
    auto a = deja::spawn(wait_and_log(&n, log, 1));
    co_await deja::yield_now();
    co_await deja::yield_now();
    REQUIRE_FALSE(a.is_finished());
    n.notify_one();
    co_await a;
    REQUIRE(*log == std::vector<int>{1});
  };
  deja::block_on(body());
}

TEST_CASE("notify_one wakes one waiter at a time in arrival order") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = make_log();
    std::vector<deja::JoinHandle<void>> hs;
    for (int i = 1; i <= 3; ++i) hs.push_back(deja::spawn(wait_and_log(&n, log, i)));
    co_await deja::yield_now();
    REQUIRE(log->empty());
    n.notify_one();
    co_await deja::yield_now();
    REQUIRE(*log == std::vector<int>{1});
    n.notify_one();
    co_await deja::yield_now();
    REQUIRE(*log == std::vector<int>{1, 2});
    REQUIRE_FALSE(hs[2].is_finished());
    n.notify_one();
    for (auto& h : hs) co_await h;
    REQUIRE(*log == std::vector<int>{1, 2, 3});
  };
  deja::block_on(body());
}

TEST_CASE("notify_waiters wakes every current waiter and stores no permit") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = make_log();
    auto a = deja::spawn(wait_and_log(&n, log, 1));
    auto b = deja::spawn(wait_and_log(&n, log, 2));
    co_await deja::yield_now();
    n.notify_waiters();
    co_await a;
    const bool b_settled = co_await deja_test::settles(&b);
    REQUIRE(b_settled);
    co_await b;
    REQUIRE(*log == std::vector<int>{1, 2});
    n.notify_waiters();  // nobody waits: nothing stored
    auto c = deja::spawn(wait_and_log(&n, log, 3));
    co_await deja::yield_now();
    co_await deja::yield_now();
    REQUIRE_FALSE(c.is_finished());
    n.notify_one();
    co_await c;
    REQUIRE(*log == std::vector<int>{1, 2, 3});
  };
  deja::block_on(body());
}

TEST_CASE("notify_waiters leaves a permit stored by an earlier notify_one in place") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    n.notify_one();
    n.notify_waiters();
    co_await n.notified();  // the stored permit
    auto log = make_log();
    auto a = deja::spawn(wait_and_log(&n, log, 1));
    co_await deja::yield_now();
    REQUIRE_FALSE(a.is_finished());  // and it was used up
    n.notify_one();
    co_await a;
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task suspended in notified leaves the next notify_one to the others") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = make_log();
    auto a = deja::spawn(wait_and_log(&n, log, 1));
    auto b = deja::spawn(wait_and_log(&n, log, 2));
    co_await deja::yield_now();
    a.abort();
    REQUIRE(a.is_finished());
    n.notify_one();
    co_await b;
    REQUIRE(*log == std::vector<int>{2});
    // Nothing was stored on a's behalf either.
    auto c = deja::spawn(wait_and_log(&n, log, 3));
    co_await deja::yield_now();
    REQUIRE_FALSE(c.is_finished());
    c.abort();
  };
  deja::block_on(body());
}

TEST_CASE("a notify_one delivered to a task aborted before it ran goes to the next waiter in line") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = make_log();
    auto a = deja::spawn(wait_and_log(&n, log, 1));
    auto b = deja::spawn(wait_and_log(&n, log, 2));
    auto c = deja::spawn(wait_and_log(&n, log, 3));
    co_await deja::yield_now();
    n.notify_one();  // reaches a
    a.abort();       // before a ran
    REQUIRE_FALSE(a.is_finished());
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    const bool b_settled = co_await deja_test::settles(&b);
    REQUIRE(b_settled);
    co_await b;
    REQUIRE(*log == std::vector<int>{2});
    co_await deja::yield_now();
    REQUIRE_FALSE(c.is_finished());  // one notification, one wake
    n.notify_one();
    co_await c;
    REQUIRE(*log == std::vector<int>{2, 3});
  };
  deja::block_on(body());
}

TEST_CASE("a notify_one delivered to a task aborted before it ran is stored when nobody else waits") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = make_log();
    auto a = deja::spawn(wait_and_log(&n, log, 1));
    co_await deja::yield_now();
    n.notify_one();
    a.abort();
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    co_await n.notified();  // the notification was kept as the permit
    REQUIRE(log->empty());
  };
  deja::block_on(body());
}

TEST_CASE("a notify_waiters delivered to a task aborted before it ran is not passed on") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto log = make_log();
    auto a = deja::spawn(wait_and_log(&n, log, 1));
    auto b = deja::spawn(wait_and_log(&n, log, 2));
    co_await deja::yield_now();
    n.notify_waiters();
    a.abort();
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
    const bool b_settled = co_await deja_test::settles(&b);
    REQUIRE(b_settled);
    co_await b;
    auto c = deja::spawn(wait_and_log(&n, log, 3));
    co_await deja::yield_now();
    REQUIRE_FALSE(c.is_finished());  // no permit was stored for a's share
    n.notify_one();
    co_await c;
    REQUIRE(*log == std::vector<int>{2, 3});
  };
  deja::block_on(body());
}

TEST_CASE("a notified that times out leaves no trace and a later notify_one is stored") {
  auto body = []() -> deja::Task<void> {
    deja::Notify n;
    auto timed = deja::timeout(5ms, n.notified());
    const bool timed_out = co_await deja_test::throws_as<deja::TimedOut>(timed);
    REQUIRE(timed_out);
    n.notify_one();  // nobody waits any more: stored
    co_await deja::timeout(1h, n.notified());
  };
  deja::block_on(body());
}

TEST_CASE("notify_one wakes a task waiting on another thread") {
  deja::Notify to_a;
  deja::Notify to_b;
  constexpr int kRounds = 1000;
  std::thread other([&] { deja::block_on(ping(&to_b, &to_a, kRounds, false)); });
  deja::block_on(ping(&to_a, &to_b, kRounds, true));
  other.join();
  SUCCEED("both sides completed every round");
}
