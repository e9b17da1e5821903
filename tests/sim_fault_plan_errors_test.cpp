// Fault plans refuse what they cannot apply as written, before applying any step: a step time
// that does not fit in the clock (never a wrapped instant), a step naming an unknown node.
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

TEST_CASE("sim: parse_fault_plan refuses a time that overflows the clock instead of wrapping it") {
  std::string error;
  std::vector<std::int64_t> ats;
  const auto o = deja::sim::run({}, [&]() -> deja::Task<void> {
    deja::sim::add_node("a", [] { return idle_node(); });
    // 18446744074 s is 2^64 ns + 0.29 s: it wrapped to a plan step 0.29 s from the start.
    try {
      for (const auto& s : deja::sim::parse_fault_plan("18446744074s crash a")) ats.push_back(s.at.count());
    } catch (const deja::UsageError& e) {
      error = e.what();
    }
    co_return;
  });
  REQUIRE_FALSE(o.failed());
  INFO("parse error: " << error);
  INFO("parsed steps at (ns): " << (ats.empty() ? std::string("-") : std::to_string(ats[0])));
  CHECK(ats.empty());
  CHECK(error.find("step 1") != std::string::npos);
}

TEST_CASE("sim: run_fault_plan refuses a step whose instant overflows the clock instead of applying it at once") {
  bool threw = false;
  bool a_up_after = false;
  const auto o = deja::sim::run({}, [&]() -> deja::Task<void> {
    const auto a = deja::sim::add_node("a", [] { return idle_node(); });
    deja::sim::FaultPlan plan;
    plan.push_back({deja::Duration::max(), deja::sim::FaultStep::Kind::kCrash, {a}, {}});
    try {
      co_await deja::sim::run_fault_plan(plan);
    } catch (const deja::UsageError&) {
      threw = true;
    }
    a_up_after = deja::sim::node_is_up(a);
  });
  REQUIRE_FALSE(o.failed());
  CHECK(threw);
  CHECK(a_up_after);
}

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
