// Decision 0 is the default: with every decision 0 the ready tasks run oldest first and tied
// timers fire in insertion order (the plain FIFO run shrinking moves toward).
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/node.hpp"
#include "deja/sim/shrink.hpp"
#include "deja/sim/simulator.hpp"

using namespace std::chrono_literals;

namespace {

deja::Task<void> idle_node() {
  for (;;) co_await deja::sleep(1s);
}

}  // namespace

TEST_CASE("sim review: with every decision 0 the oldest ready task runs first (FIFO)") {
  std::vector<int> order;
  deja::sim::Config c;
  c.replay = std::vector<std::uint64_t>{};  // every decision is 0: the default schedule
  const auto o = deja::sim::run(c, [&]() -> deja::Task<void> {
    std::vector<deja::JoinHandle<void>> hs;
    for (int i = 0; i < 4; ++i) {
      hs.push_back(deja::spawn([](std::vector<int>* out, int k) -> deja::Task<void> {
        out->push_back(k);
        co_return;
      }(&order, i)));
    }
    for (auto& h : hs) co_await h;
  });
  REQUIRE_FALSE(o.failed());
  CHECK(order == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("sim review: with every decision 0 timers due at the same instant fire in insertion order") {
  std::vector<int> order;
  deja::sim::Config c;
  c.replay = std::vector<std::uint64_t>{};
  const auto o = deja::sim::run(c, [&]() -> deja::Task<void> {
    const deja::Instant at = deja::now() + 10ms;
    std::vector<deja::JoinHandle<void>> hs;
    for (int i = 0; i < 3; ++i) {
      hs.push_back(deja::spawn([](std::vector<int>* out, int k, deja::Instant when) -> deja::Task<void> {
        co_await deja::sleep_until(when);
        out->push_back(k);
      }(&order, i, at)));
      co_await deja::sleep(1ms);  // each arms its timer before the next is spawned
    }
    for (auto& h : hs) co_await h;
  });
  REQUIRE_FALSE(o.failed());
  CHECK(order == std::vector<int>{0, 1, 2});
}
