// Task<T>, spawn, JoinHandle, block_on and yield_now on the current-thread runtime.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

deja::Task<int> forty_two() { co_return 42; }

deja::Task<int> add_one(int x) { co_return x + 1; }

deja::Task<void> throws() {
  throw std::runtime_error("boom");
  co_return;
}

deja::Task<int> immediate(int i) { co_return i; }

deja::Task<long> million_awaits() {
  long sum = 0;
  for (int i = 0; i < 1'000'000; ++i) sum += co_await immediate(1);
  co_return sum;
}

deja::Task<int> nested(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await nested(depth - 1);
}

deja::Task<int> value_after_yields(int i, int yields) {
  for (int k = 0; k < yields; ++k) co_await deja::yield_now();
  co_return i;
}

}  // namespace

TEST_CASE("block_on returns the value of the task") { REQUIRE(deja::block_on(forty_two()) == 42); }

TEST_CASE("awaiting a task runs it and returns its value") {
  auto body = []() -> deja::Task<int> { co_return co_await add_one(co_await forty_two()); };
  REQUIRE(deja::block_on(body()) == 43);
}

TEST_CASE("an exception propagates to the awaiter") {
  auto body = []() -> deja::Task<std::string> {
    try {
      co_await throws();
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  REQUIRE(deja::block_on(body()) == "boom");
  REQUIRE_THROWS_AS(deja::block_on(throws()), std::runtime_error);
}

TEST_CASE("a million synchronously completing awaits use no stack") {
  REQUIRE(deja::block_on(million_awaits()) == 1'000'000);
}

TEST_CASE("a million awaits of tasks that suspend use no stack") {
  auto body = []() -> deja::Task<long> {
    long sum = 0;
    for (int i = 0; i < 1'000'000; ++i) sum += co_await value_after_yields(1, 1);
    co_return sum;
  };
  REQUIRE(deja::block_on(body()) == 1'000'000);
}

TEST_CASE("deeply nested awaits return through every level") { REQUIRE(deja::block_on(nested(10'000)) == 10'000); }

TEST_CASE("awaiting a moved-from task throws UsageError") {
  auto body = []() -> deja::Task<void> {
    deja::Task<int> t = forty_two();
    deja::Task<int> moved = std::move(t);
    const bool threw = co_await deja_test::throws_as<deja::UsageError>(t);  // NOLINT(bugprone-use-after-move)
    REQUIRE(threw);
    const int v = co_await moved;
    REQUIRE(v == 42);
  };
  deja::block_on(body());
}

TEST_CASE("awaiting a task twice throws UsageError") {
  auto body = []() -> deja::Task<void> {
    deja::Task<int> t = forty_two();
    const int v = co_await t;
    REQUIRE(v == 42);
    const bool threw = co_await deja_test::throws_as<deja::UsageError>(t);
    REQUIRE(threw);
  };
  deja::block_on(body());
}

TEST_CASE("spawned tasks run concurrently and their handles return their values") {
  auto body = []() -> deja::Task<long> {
    std::vector<deja::JoinHandle<int>> handles;
    for (int i = 0; i < 1000; ++i) handles.push_back(deja::spawn(value_after_yields(i, i % 7)));
    long sum = 0;
    for (auto& h : handles) sum += co_await h;
    co_return sum;
  };
  REQUIRE(deja::block_on(body()) == 999L * 1000 / 2);
}

TEST_CASE("awaiting a join handle rethrows the task's exception") {
  auto body = []() -> deja::Task<void> {
    auto h = deja::spawn(throws());
    std::string what;
    try {
      co_await h;
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    REQUIRE(what == "boom");
  };
  deja::block_on(body());
}

TEST_CASE("awaiting a join handle twice throws UsageError") {
  auto body = []() -> deja::Task<void> {
    auto h = deja::spawn(forty_two());
    const int v = co_await h;
    REQUIRE(v == 42);
    REQUIRE_FALSE(h.valid());
    const bool threw = co_await deja_test::throws_as<deja::UsageError>(h);
    REQUIRE(threw);
  };
  deja::block_on(body());
}

TEST_CASE("spawning with no runtime current throws UsageError") {
  REQUIRE_THROWS_AS(deja::spawn(forty_two()), deja::UsageError);
  REQUIRE_THROWS_AS(deja::now(), deja::UsageError);
  REQUIRE_THROWS_AS(deja::random(), deja::UsageError);
}

TEST_CASE("block_on inside a runtime throws UsageError") {
  auto body = []() -> deja::Task<void> {
    REQUIRE_THROWS_AS(deja::block_on(forty_two()), deja::UsageError);
    co_return;
  };
  deja::block_on(body());
}

TEST_CASE("an aborted task is destroyed at its suspension point and its handle reports cancellation") {
  struct Flag {
    bool* destroyed;
    ~Flag() { *destroyed = true; }
  };
  auto sleeper = [](bool* destroyed, bool* finished) -> deja::Task<int> {
    Flag f{destroyed};
    co_await deja::sleep(1h);
    *finished = true;
    co_return 1;
  };
  auto body = [&]() -> deja::Task<void> {
    bool destroyed = false, finished = false;
    auto h = deja::spawn(sleeper(&destroyed, &finished));
    co_await deja::yield_now();  // let it reach the sleep
    REQUIRE_FALSE(h.is_finished());
    h.abort();
    co_await deja::yield_now();
    REQUIRE(destroyed);
    REQUIRE_FALSE(finished);
    REQUIRE(h.is_finished());
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(h);
    REQUIRE(cancelled);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task that never started destroys it unstarted") {
  auto body = []() -> deja::Task<void> {
    bool ran = false;
    auto task = [](bool* r) -> deja::Task<void> {
      *r = true;
      co_return;
    };
    auto h = deja::spawn(task(&ran));
    h.abort();
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(h);
    REQUIRE(cancelled);
    REQUIRE_FALSE(ran);
  };
  deja::block_on(body());
}

TEST_CASE("a dropped join handle detaches: the task still runs to completion") {
  auto body = []() -> deja::Task<int> {
    auto counter = std::make_shared<int>(0);
    auto bump = [](std::shared_ptr<int> c) -> deja::Task<void> {
      co_await deja::yield_now();
      ++*c;
    };
    { auto h = deja::spawn(bump(counter)); }
    deja::spawn(bump(counter)).detach();
    for (int i = 0; i < 5; ++i) co_await deja::yield_now();
    co_return *counter;
  };
  REQUIRE(deja::block_on(body()) == 2);
}

TEST_CASE("yield_now lets the other ready tasks run first") {
  auto body = []() -> deja::Task<std::vector<int>> {
    auto order = std::make_shared<std::vector<int>>();
    auto worker = [](std::shared_ptr<std::vector<int>> o, int id) -> deja::Task<void> {
      for (int i = 0; i < 3; ++i) {
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
  REQUIRE(deja::block_on(body()) == std::vector<int>{1, 2, 1, 2, 1, 2});
}

TEST_CASE("destroying the runtime destroys unfinished tasks") {
  struct Flag {
    int* destroyed;
    ~Flag() { ++*destroyed; }
  };
  int destroyed = 0;
  auto forever = [](int* d) -> deja::Task<void> {
    Flag f{d};
    co_await deja::sleep(24h);
  };
  {
    deja::CurrentThreadRuntime rt;
    auto body = [&]() -> deja::Task<void> {
      for (int i = 0; i < 10; ++i) deja::spawn(forever(&destroyed)).detach();
      co_await deja::yield_now();
    };
    rt.block_on(body());
    REQUIRE(rt.live_tasks() == 10);
    REQUIRE(destroyed == 0);
  }
  REQUIRE(destroyed == 10);
}

TEST_CASE("a task spawned from another thread runs on the runtime") {
  deja::CurrentThreadRuntime rt;
  auto body = [&]() -> deja::Task<int> {
    deja::JoinHandle<int> handle;
    std::thread t([&] { handle = rt.spawn(forty_two()); });
    t.join();
    co_return co_await handle;
  };
  REQUIRE(rt.block_on(body()) == 42);
}
