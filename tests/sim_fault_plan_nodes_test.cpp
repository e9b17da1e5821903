// Fault plans: a step naming an unknown node is refused before any step is applied.
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

TEST_CASE("sim: run_fault_plan refuses a plan naming an unknown node before applying any step") {
  bool threw = false;
  bool a_up_after = false;
  const auto o = deja::sim::run({}, [&]() -> deja::Task<void> {
    const auto a = deja::sim::add_node("a", [] { return idle_node(); });
    deja::sim::FaultPlan plan;
    plan.push_back({0ms, deja::sim::FaultStep::Kind::kCrash, {a}, {}});
    plan.push_back({1s, deja::sim::FaultStep::Kind::kIsolate, {deja::sim::NodeId{42}}, {}});
    try {
      co_await deja::sim::run_fault_plan(plan);
    } catch (const deja::UsageError&) {
      threw = true;
    }
    a_up_after = deja::sim::node_is_up(a);
  });
  REQUIRE_FALSE(o.failed());
  CHECK(threw);
  CHECK(a_up_after);  // the plan was malformed: nothing of it may have been applied
}
