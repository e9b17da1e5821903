// when_all, race and JoinSet on the current-thread runtime.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

deja::Task<int> after_yields(int value, int yields) {
  for (int i = 0; i < yields; ++i) co_await deja::yield_now();
  co_return value;
}

deja::Task<void> void_after_yields(int yields, int* counter) {
  for (int i = 0; i < yields; ++i) co_await deja::yield_now();
  ++*counter;
}

deja::Task<int> fail_after_yields(int yields) {
  for (int i = 0; i < yields; ++i) co_await deja::yield_now();
  throw std::runtime_error("branch failed");
}

struct DestroyCounter {
  int* count;
  ~DestroyCounter() { ++*count; }
};

deja::Task<int> sleeps_forever(int* destroyed) {
  DestroyCounter guard{destroyed};
  co_await deja::sleep(24h);
  co_return -1;
}

deja::Task<int> notified_then_sleeps(deja::Notify* woken, int* destroyed) {
  DestroyCounter guard{destroyed};
  co_await woken->notified();
  co_await deja::sleep(24h);
  co_return 1;
}

// Races a branch that waits on a Notify of this frame; publishes the Notify through `woken`.
deja::Task<void> races_a_notified_branch(deja::Notify** woken, int* destroyed) {
  deja::Notify n;
  *woken = &n;
  co_await deja::race(notified_then_sleeps(&n, destroyed), sleeps_forever(destroyed));
}

}  // namespace

TEST_CASE("when_all returns every result in argument order") {
  auto body = []() -> deja::Task<void> {
    int counter = 0;
    auto [a, b, c] = co_await deja::when_all(after_yields(1, 3), void_after_yields(1, &counter), after_yields(3, 0));
    REQUIRE(a == 1);
    REQUIRE(b == deja::detail::Unit{});
    REQUIRE(c == 3);
    REQUIRE(counter == 1);
  };
  deja::block_on(body());
}

TEST_CASE("when_all runs its branches concurrently") {
  auto body = []() -> deja::Task<int> {
    auto started = co_await deja::when_all(deja::sleep(20ms), deja::sleep(20ms), deja::sleep(20ms));
    (void)started;
    co_return 0;
  };
  const auto start = std::chrono::steady_clock::now();
  deja::block_on(body());
  // Concurrent: 3 x 20 ms sequentially would be 60 ms; this only checks it finished, the lower
  // bound is the real assertion (no upper bound: shared machines are noisy).
  REQUIRE(std::chrono::steady_clock::now() - start >= 20ms);
}

TEST_CASE("when_all over a vector returns the results in order") {
  auto body = []() -> deja::Task<std::vector<int>> {
    std::vector<deja::Task<int>> tasks;
    for (int i = 0; i < 100; ++i) tasks.push_back(after_yields(i, 100 - i));
    co_return co_await deja::when_all(std::move(tasks));
  };
  const std::vector<int> results = deja::block_on(body());
  REQUIRE(results.size() == 100);
  for (int i = 0; i < 100; ++i) REQUIRE(results[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("when_all rethrows the first failure and cancels the other branches") {
  auto body = []() -> deja::Task<void> {
    int destroyed = 0;
    std::string what;
    try {
      co_await deja::when_all(sleeps_forever(&destroyed), fail_after_yields(2), sleeps_forever(&destroyed));
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    REQUIRE(what == "branch failed");
    REQUIRE(destroyed == 2);
  };
  deja::block_on(body());
}

TEST_CASE("race returns the first to finish and cancels the rest before returning") {
  auto body = []() -> deja::Task<void> {
    int destroyed = 0;
    auto result = co_await deja::race(sleeps_forever(&destroyed), after_yields(7, 3), sleeps_forever(&destroyed));
    REQUIRE(result.index() == 1);
    REQUIRE(std::get<1>(result) == 7);
    REQUIRE(destroyed == 2);
  };
  deja::block_on(body());
}

TEST_CASE("race does not start later branches once an earlier one finished at once") {
  auto body = []() -> deja::Task<void> {
    int counter = 0;
    auto result = co_await deja::race(after_yields(1, 0), void_after_yields(0, &counter));
    REQUIRE(result.index() == 0);
    REQUIRE(counter == 0);
  };
  deja::block_on(body());
}

TEST_CASE("race rethrows the exception of a branch that fails first") {
  auto body = []() -> deja::Task<void> {
    int destroyed = 0;
    auto r = deja::race(fail_after_yields(1), sleeps_forever(&destroyed));
    const bool threw = co_await deja_test::throws_as<std::runtime_error>(r);
    REQUIRE(threw);
    REQUIRE(destroyed == 1);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task suspended in a race cancels every branch") {
  auto racer = [](int* destroyed) -> deja::Task<void> {
    co_await deja::race(sleeps_forever(destroyed), sleeps_forever(destroyed));
  };
  auto body = [&]() -> deja::Task<void> {
    int destroyed = 0;
    auto h = deja::spawn(racer(&destroyed));
    co_await deja::yield_now();
    REQUIRE(destroyed == 0);
    h.abort();
    co_await deja::yield_now();
    REQUIRE(destroyed == 2);
    REQUIRE(h.is_finished());
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task whose race branch is woken but has not run destroys the branch before abort returns") {
  // The branch's frame refers to its parent's (the Notify): it must not outlive it in the ready
  // queue. Before abort_now it was destroyed only when the scheduler reached it. It leaves the live
  // tasks at once too, though its queue entry stays until the scheduler reaches it (or shutdown:
  // the runtime is destroyed with it still queued in the last round, which must free it).
  deja::CurrentThreadRuntime rt;
  auto body = [](deja::CurrentThreadRuntime* runtime, int rounds) -> deja::Task<void> {
    for (int round = 0; round < rounds; ++round) {
      int destroyed = 0;
      deja::Notify* woken = nullptr;
      const std::size_t before = runtime->live_tasks();
      auto h = deja::spawn(races_a_notified_branch(&woken, &destroyed));
      co_await deja::yield_now();
      REQUIRE(woken != nullptr);
      REQUIRE(destroyed == 0);
      REQUIRE(runtime->live_tasks() == before + 3);
      woken->notify_one();  // the branch is queued to run now
      h.abort();
      REQUIRE(destroyed == 2);
      REQUIRE(runtime->live_tasks() == before);
      REQUIRE(h.is_finished());
      if (round + 1 < rounds) co_await deja::yield_now();
    }
  };
  rt.block_on(body(&rt, 3));
}

TEST_CASE("join set returns results in the order the tasks finish") {
  auto body = []() -> deja::Task<std::vector<int>> {
    deja::JoinSet<int> set;
    set.spawn(after_yields(3, 30));
    set.spawn(after_yields(1, 10));
    set.spawn(after_yields(2, 20));
    REQUIRE(set.size() == 3);
    std::vector<int> order;
    while (auto v = co_await set.join_next()) order.push_back(*v);
    REQUIRE(set.empty());
    co_return order;
  };
  REQUIRE(deja::block_on(body()) == std::vector<int>{1, 2, 3});
}

TEST_CASE("join set reports a task's exception from join_next") {
  auto body = []() -> deja::Task<void> {
    deja::JoinSet<int> set;
    set.spawn(fail_after_yields(1));
    auto next = set.join_next();
    const bool threw = co_await deja_test::throws_as<std::runtime_error>(next);
    REQUIRE(threw);
    REQUIRE(set.empty());
  };
  deja::block_on(body());
}

TEST_CASE("join set abort_all cancels its tasks and dropping a set aborts them") {
  auto body = []() -> deja::Task<void> {
    int destroyed = 0;
    {
      deja::JoinSet<int> set;
      for (int i = 0; i < 5; ++i) set.spawn(sleeps_forever(&destroyed));
      co_await deja::yield_now();
      set.abort_all();
      REQUIRE(destroyed == 5);
      int cancelled = 0;
      while (!set.empty()) {
        auto next = set.join_next();
        if (co_await deja_test::throws_as<deja::TaskCancelled>(next)) ++cancelled;
      }
      REQUIRE(cancelled == 5);
    }
    {
      deja::JoinSet<int> set;
      for (int i = 0; i < 3; ++i) set.spawn(sleeps_forever(&destroyed));
      co_await deja::yield_now();
    }
    REQUIRE(destroyed == 8);
  };
  deja::block_on(body());
}

TEST_CASE("a join set with nothing in it returns nothing at once") {
  auto body = []() -> deja::Task<bool> {
    deja::JoinSet<int> set;
    auto v = co_await set.join_next();
    co_return v.has_value();
  };
  REQUIRE_FALSE(deja::block_on(body()));
}
