// Running a simulated test body over many seeds: DEJA_SEEDS (count), DEJA_SEED (one seed, to
// replay), DEJA_REPLAY (a decision-log token), and sharding over TEST_TOTAL_SHARDS /
// TEST_SHARD_INDEX, the protocol Bazel and GoogleTest use, so a sweep splits across machines.
// DEJA_CHECK_DETERMINISM=1 runs every seed twice and fails a seed whose two traces differ
// (Config::check_determinism).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "deja/sim/simulator.hpp"

namespace deja::sim {

struct SweepOptions {
  // Seeds to run when DEJA_SEEDS is not set.
  std::uint64_t default_seeds = 100;
  // The first seed of the sweep; seed i is first_seed + i.
  std::uint64_t first_seed = 1;
  Config base;  // strategy, limits; seed and replay are set per run
  // The arguments that select this test in the replay line (e.g. the Catch2 test name).
  std::string replay_args;
};

struct SweepResult {
  std::uint64_t runs = 0;
  std::optional<Outcome> first_failure;
};

// Runs `body` once per seed of this shard (or once for DEJA_SEED / DEJA_REPLAY) and stops at the
// first failing run. Throws UsageError for a malformed DEJA_SEEDS, DEJA_SEED, DEJA_CHECK_DETERMINISM
// or shard variable, and BadReplayToken for a bad DEJA_REPLAY.
SweepResult sweep(const std::function<Task<void>()>& body, const SweepOptions& options = {});

}  // namespace deja::sim
