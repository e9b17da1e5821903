// Catch2 (v2) integration of the simulator: a simulated test body swept over DEJA_SEEDS seeds from
// inside a TEST_CASE, whose failure report ends with a replay line that selects exactly this test.
//
//   TEST_CASE("transfers keep the total (100 seeds)") {
//     deja::sim::check_seeds([] { return bank::run(); });
//   }
//
// Header-only, so deja::sim itself does not depend on Catch2; include it from test code that does.
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <string_view>

#include "deja/sim/seeds.hpp"
#include "deja/sim/simulator.hpp"

namespace deja::sim {

// `name` as one shell word that Catch2's command line reads back as exactly that test name: Catch's
// specials (`,` separates alternatives, `[` starts a tag, `*` is a wildcard, `\` escapes) are
// escaped with a backslash, and the result is single-quoted for the shell.
inline std::string catch2_test_filter(std::string_view name) {
  std::string spec;
  spec.reserve(name.size() + 8);
  for (const char c : name) {
    if (c == ',' || c == '[' || c == ']' || c == '*' || c == '\\') spec.push_back('\\');
    spec.push_back(c);
  }
  std::string word(1, '\'');
  for (const char c : spec) {
    if (c == '\'') {
      word.append("'\\''");
    } else {
      word.push_back(c);
    }
  }
  word.push_back('\'');
  return word;
}

// The running Catch2 test's name as a filter for the replay line.
inline std::string current_catch2_test_filter() {
  return catch2_test_filter(Catch::getResultCapture().getCurrentTestName());
}

// Sweeps `body` over the seeds of this shard (SweepOptions, DEJA_SEEDS, DEJA_SEED, DEJA_REPLAY,
// TEST_TOTAL_SHARDS / TEST_SHARD_INDEX, DEJA_CHECK_DETERMINISM) and fails the current test with the
// first failing run's report, whose last line replays it. The replay arguments default to this
// test's name. Returns the sweep for tests that want to look further.
inline SweepResult check_seeds(const std::function<Task<void>()>& body, SweepOptions options = {}) {
  if (options.replay_args.empty()) options.replay_args = current_catch2_test_filter();
  SweepResult result = sweep(body, options);
  if (result.first_failure) FAIL(result.first_failure->report());
  return result;
}

}  // namespace deja::sim
