// rapidcheck drives the simulator's schedule and shrinks a failing one.
#include <catch2/catch.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sim/rapidcheck.hpp"

namespace {

// An ordering bug: the reader assumes the writer has not written yet when it looks, which holds
// in FIFO order (the all-zero schedule) but not when the writer gets three turns first.
deja::Task<void> writer(std::shared_ptr<int> flag) {
  for (int i = 0; i < 3; ++i) co_await deja::yield_now();
  *flag = 1;
}

deja::Task<void> reader(std::shared_ptr<int> flag) {
  co_await deja::yield_now();
  co_await deja::yield_now();
  DEJA_ASSERT(*flag == 0);
}

deja::Task<void> write_before_read() {
  auto flag = std::make_shared<int>(0);
  auto w = deja::spawn(writer(flag));
  auto r = deja::spawn(reader(flag));
  co_await w;
  co_await r;
}

std::string show(const std::vector<std::uint64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) s.push_back(' ');
    s.append(std::to_string(v[i]));
  }
  s.push_back(']');
  return s;
}

}  // namespace

TEST_CASE("a failing schedule shrinks to the few decisions that matter") {
  // FIFO order (the empty schedule: every decision 0) passes, so the shrunk schedule is not empty.
  deja::sim::Config fifo;
  fifo.replay = std::vector<std::uint64_t>{};
  REQUIRE_FALSE(deja::sim::run(fifo, write_before_read).failed());
  const auto r = deja::sim::check_schedules("write-before-read schedules", write_before_read);
  REQUIRE_FALSE(r.passed);
  REQUIRE(r.shrunk_outcome.has_value());
  REQUIRE(r.shrunk_outcome->failed());
  std::printf("first failing schedule (%zu decisions): %s\nshrunk schedule (%zu decisions): %s\n", r.first_failing.size(),
              show(r.first_failing).c_str(), r.shrunk.size(), show(r.shrunk).c_str());
  REQUIRE(!r.shrunk.empty());
  REQUIRE(r.shrunk.size() <= r.first_failing.size());
  // Shrunk all the way: no decision can be dropped or lowered and still fail.
  for (std::size_t i = 0; i < r.shrunk.size(); ++i) {
    auto fewer = r.shrunk;
    fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(i));
    deja::sim::Config c;
    c.replay = fewer;
    INFO("dropping decision " << i << " of " << show(r.shrunk));
    REQUIRE_FALSE(deja::sim::run(c, write_before_read).failed());
  }
  // The shrunk run replays by token to the same trace.
  deja::sim::Config by_token;
  by_token.replay = deja::sim::decode_replay_token(r.shrunk_outcome->replay_token());
  const auto again = deja::sim::run(by_token, write_before_read);
  REQUIRE(again.failed());
  REQUIRE(again.trace_hash() == r.shrunk_outcome->trace_hash());
}
