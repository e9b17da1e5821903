// The kv example under the simulator: linearizable under partitions, clogs and crashes within its
// fault model, and the demo's bug (acknowledging before replicating) found with a replay line.
#include <string>

#include <catch2/catch.hpp>

#include "deja/sim/catch2.hpp"
#include "deja/sim/simulator.hpp"
#include "scenario.hpp"

TEST_CASE("kv stays linearizable under partitions and clogs and crashes (8 seeds)", "[kv][sim]") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 8;
  deja::sim::check_seeds([] { return kv::simulated_cluster({}); }, opts);
}

TEST_CASE("kv acknowledging writes before replicating them loses one when the primary crashes (up to 30 seeds)", "[kv][sim]") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 30;
  opts.replay_args = deja::sim::current_catch2_test_filter();
  kv::ScenarioOptions buggy;
  buggy.acknowledge_before_replication = true;
  const auto sweep = deja::sim::sweep([buggy] { return kv::simulated_cluster(buggy); }, opts);
  REQUIRE(sweep.first_failure.has_value());
  const std::string report = sweep.first_failure->report();
  INFO(report);
  CHECK(report.find("is not linearizable") != std::string::npos);
  CHECK(report.find("\nreplay: DEJA_SEED=") != std::string::npos);
  // The same seed fails the same way.
  deja::sim::Config again;
  again.seed = sweep.first_failure->seed();
  const auto replayed = deja::sim::run(again, [buggy] { return kv::simulated_cluster(buggy); });
  CHECK(replayed.failed());
  CHECK(replayed.trace_hash() == sweep.first_failure->trace_hash());
}
