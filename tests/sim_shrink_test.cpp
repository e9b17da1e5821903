// rapidcheck drives the simulator's schedule and shrinks a failing one.
#include <catch2/catch.hpp>

#include <cstdio>
#include <memory>

#include "deja/deja.hpp"
#include "deja/sim/rapidcheck.hpp"

namespace {

deja::Task<void> increment(std::shared_ptr<int> counter) {
  const int seen = *counter;
  co_await deja::yield_now();
  *counter = seen + 1;
}

// Four tasks increment with a read and a write separated by an await: a lost update.
deja::Task<void> lost_update() {
  auto counter = std::make_shared<int>(0);
  std::vector<deja::JoinHandle<void>> hs;
  for (int i = 0; i < 4; ++i) hs.push_back(deja::spawn(increment(counter)));
  for (auto& h : hs) co_await h;
  DEJA_ASSERT(*counter == 4);
}

std::string show(const std::vector<std::uint64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

TEST_CASE("a failing schedule shrinks to the few decisions that matter") {
  const auto r = deja::sim::check_schedules("lost update schedules", lost_update);
  REQUIRE_FALSE(r.passed);
  REQUIRE(r.shrunk_outcome.has_value());
  REQUIRE(r.shrunk_outcome->failed());
  std::printf("first failing schedule (%zu decisions): %s\nshrunk schedule (%zu decisions): %s\n", r.first_failing.size(),
              show(r.first_failing).c_str(), r.shrunk.size(), show(r.shrunk).c_str());
  REQUIRE(r.shrunk.size() <= r.first_failing.size());
  // Shrunk all the way: no decision can be dropped or lowered and still fail.
  for (std::size_t i = 0; i < r.shrunk.size(); ++i) {
    auto fewer = r.shrunk;
    fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(i));
    deja::sim::Config c;
    c.replay = fewer;
    INFO("dropping decision " << i << " of " << show(r.shrunk));
    REQUIRE_FALSE(deja::sim::run(c, lost_update).failed());
  }
  // The shrunk run replays by token to the same trace.
  deja::sim::Config by_token;
  by_token.replay = deja::sim::decode_replay_token(r.shrunk_outcome->replay_token());
  const auto again = deja::sim::run(by_token, lost_update);
  REQUIRE(again.failed());
  REQUIRE(again.trace_hash() == r.shrunk_outcome->trace_hash());
}
