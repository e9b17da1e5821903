// Shrinking a failing run to the few decisions that matter.
//
// A run's decisions replay through ReplaySource, where a missing decision is 0, and decision 0 is
// the default choice (the oldest ready task, the first of tied timers, buggify not firing, the
// smallest random value). So a schedule's "decisions that matter" are its non-zero entries, and
// shrinking searches for a shorter list with fewer, smaller non-zero entries that still fails the
// same way: chunks are removed (largest first, as in delta debugging), then single decisions are
// reset to 0, then lowered. Each candidate is one replay; the result is 1-minimal with respect to
// these steps unless the replay budget runs out first (ShrinkResult::exhausted_budget).
//
//   auto failing = deja::sim::run(config, body);
//   if (failing.failed()) {
//     auto s = deja::sim::shrink(config, body, failing);
//     std::puts(s.outcome.report().c_str());  // ends "replay: DEJA_REPLAY=d1.... <program>"
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "deja/sim/simulator.hpp"

namespace deja::sim {

struct ShrinkOptions {
  // At most this many replays; shrinking stops with the best schedule found so far.
  std::size_t max_runs = 5000;
};

struct ShrinkResult {
  std::vector<std::uint64_t> original;  // the failing run's decisions, trailing zeros dropped
  std::vector<std::uint64_t> shrunk;    // the smallest schedule found that fails the same way
  Outcome outcome;                      // the run of `shrunk` (its report replays it by token)
  std::size_t runs = 0;                 // replays tried
  bool exhausted_budget = false;        // stopped at max_runs, so perhaps not fully shrunk
};

// Shrinks `failing`, a failed run of `body` under `config` (same strategy and limits; the seed
// and any replay list in `config` are ignored). A candidate counts as failing the same way when
// the first line of its failure matches the original's with digits ignored (the same assertion,
// a deadlock, the same kind of exception). Throws UsageError if `failing` did not fail, or if its
// own decisions no longer reproduce the failure (the body is not deterministic).
ShrinkResult shrink(const Config& config, const std::function<Task<void>()>& body, const Outcome& failing,
                    const ShrinkOptions& options = {});

// "[0 0 3 0 1]".
std::string format_schedule(const std::vector<std::uint64_t>& schedule);

// How many decisions are not the default (non-zero).
std::size_t count_nondefault(const std::vector<std::uint64_t>& schedule) noexcept;

}  // namespace deja::sim
