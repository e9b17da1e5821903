// `make demo`: deja's main job in one run. A bank service with a check-then-act race is swept over
// seeds under the simulator until a seed breaks it; the failure is printed with the line that
// replays it, its schedule is shrunk to the few decisions that matter, it is replayed to show the
// identical trace hash, then the fixed service passes every seed,
// and the same code runs on the production runtime.
//
//   deja-demo                    the whole tour
//   DEJA_SEED=<n> deja-demo      replay one seed of the racy service (what the replay line runs)
//   DEJA_REPLAY=<token> deja-demo   replay a recorded decision log
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../bank/bank.hpp"
#include "deja/sim/replay_token.hpp"
#include "deja/sim/seeds.hpp"
#include "deja/sim/shrink.hpp"
#include "deja/sim/simulator.hpp"

namespace {

deja::Task<void> racy() { return bank::run_bank(false); }
deja::Task<void> fixed() { return bank::run_bank(true); }

void progress(std::uint64_t done, std::uint64_t total, const char* what) {
  const int width = 40;
  const int filled = static_cast<int>(done * width / total);
  std::printf("\r  %s [%s%s] %llu/%llu", what, std::string(static_cast<std::size_t>(filled), '#').c_str(),
              std::string(static_cast<std::size_t>(width - filled), '.').c_str(), static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(total));
  std::fflush(stdout);
}

int replay_from_environment() {
  deja::sim::SweepOptions opts;
  const auto result = deja::sim::sweep(racy, opts);
  if (!result.first_failure) {
    std::puts("deja-demo: that run passed");
    return 0;
  }
  std::fputs(result.first_failure->report().c_str(), stdout);
  return 1;
}

}  // namespace

int main() {
  if (std::getenv("DEJA_SEED") || std::getenv("DEJA_REPLAY")) {
    try {
      return replay_from_environment();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "deja-demo: %s\n", e.what());
      return 2;
    }
  }

  std::puts("1. Sweeping seeds over the racy bank service under the simulator");
  const std::uint64_t max_seeds = 2000;
  std::optional<deja::sim::Outcome> failure;
  for (std::uint64_t seed = 1; seed <= max_seeds && !failure; ++seed) {
    deja::sim::Config c;
    c.seed = seed;
    auto o = deja::sim::run(c, racy);
    if (seed % 10 == 0 || o.failed()) progress(seed, max_seeds, "seeds");
    if (o.failed()) failure = std::move(o);
  }
  std::puts("");
  if (!failure) {
    std::puts("   no seed failed (unexpected: the race is real)");
    return 1;
  }
  std::printf("   seed %llu fails after %llu steps and %zu decisions\n\n", static_cast<unsigned long long>(failure->seed()),
              static_cast<unsigned long long>(failure->steps()), failure->decision_count());
  std::fputs(failure->report().c_str(), stdout);

  std::puts("\n2. Shrinking its schedule to the decisions that matter (0 = the default choice)");
  deja::sim::Config shrink_config;
  const auto shrunk = deja::sim::shrink(shrink_config, racy, *failure);
  std::printf("   before: %zu decisions, %zu not the default\n   %s\n", shrunk.original.size(),
              deja::sim::count_nondefault(shrunk.original), deja::sim::format_schedule(shrunk.original).c_str());
  std::printf("   after %zu replays: %zu decisions, %zu not the default\n   %s\n", shrunk.runs, shrunk.shrunk.size(),
              deja::sim::count_nondefault(shrunk.shrunk), deja::sim::format_schedule(shrunk.shrunk).c_str());
  std::printf("   the shrunk run fails the same way: %s\n", shrunk.outcome.failure().c_str());
  std::printf("   replay: %s\n", shrunk.outcome.replay_command().c_str());

  std::puts("\n3. Replaying the original: by seed and by decision-log token");
  deja::sim::Config by_seed;
  by_seed.seed = failure->seed();
  const auto again = deja::sim::run(by_seed, racy);
  deja::sim::Config by_token;
  by_token.replay = deja::sim::decode_replay_token(failure->replay_token());
  const auto replayed = deja::sim::run(by_token, racy);
  std::printf("   original trace hash 0x%016llx\n   by seed        hash 0x%016llx (%s)\n   by token       hash 0x%016llx (%s)\n",
              static_cast<unsigned long long>(failure->trace_hash()), static_cast<unsigned long long>(again.trace_hash()),
              again.trace_hash() == failure->trace_hash() ? "identical" : "DIFFERENT",
              static_cast<unsigned long long>(replayed.trace_hash()),
              replayed.trace_hash() == failure->trace_hash() ? "identical" : "DIFFERENT");

  std::puts("\n4. The fixed service (a deja::Mutex held across check and act) over 500 seeds");
  for (std::uint64_t seed = 1; seed <= 500; ++seed) {
    deja::sim::Config c;
    c.seed = seed;
    const auto o = deja::sim::run(c, fixed);
    if (seed % 10 == 0) progress(seed, 500, "seeds");
    if (o.failed()) {
      std::printf("\n   seed %llu failed:\n%s", static_cast<unsigned long long>(seed), o.report().c_str());
      return 1;
    }
  }
  std::puts("\n   every seed passed");

  std::puts("\n5. The same fixed code on the production current-thread runtime (real clock, OS entropy)");
  const auto start = std::chrono::steady_clock::now();
  deja::block_on(fixed());
  std::printf("   ran to completion in %.1f ms of real time\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return 0;
}
