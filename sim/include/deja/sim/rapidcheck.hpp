// Property tests whose schedule is a rapidcheck-generated decision list: when a run fails,
// rapidcheck shrinks the list, so the failure is reported with the fewest decisions that still
// break the code. Header-only, so that only users of it link rapidcheck.
#pragma once

#include <rapidcheck.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "deja/sim/replay_token.hpp"
#include "deja/sim/simulator.hpp"

namespace deja::sim {

struct ScheduleCheckResult {
  bool passed = true;
  std::vector<std::uint64_t> first_failing;   // the first failing schedule rapidcheck found
  std::vector<std::uint64_t> shrunk;          // what it shrank that to
  std::optional<Outcome> shrunk_outcome;      // the run of the shrunk schedule
};

// Checks `body` over rapidcheck-generated schedules (decision lists replayed through
// ReplaySource: values out of range wrap, a short list continues with zeros). On failure the
// schedule is shrunk; the result holds the first and the shrunk schedules, and the shrunk run,
// whose report's replay line replays it by token.
inline ScheduleCheckResult check_schedules(const std::string& name, const std::function<Task<void>()>& body, Config base = {}) {
  ScheduleCheckResult result;
  result.passed = rc::check(name, [&] {
    const auto schedule = *rc::gen::container<std::vector<std::uint64_t>>(rc::gen::inRange<std::uint64_t>(0, 64));
    Config c = base;
    c.replay = schedule;
    Outcome o = run(c, body);
    if (o.failed()) {
      if (result.first_failing.empty()) result.first_failing = schedule;
      result.shrunk = schedule;
      result.shrunk_outcome = std::move(o);
      RC_FAIL("simulated run failed");
    }
  });
  return result;
}

}  // namespace deja::sim
