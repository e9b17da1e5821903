// rapidcheck drives the simulator's schedule and shrinks a failing one.
#include <catch2/catch.hpp>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sim/rapidcheck.hpp"
#include "deja/sim/replay_token.hpp"
#include "deja/sim/shrink.hpp"

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

deja::Task<void> noop() { co_return; }

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

TEST_CASE("a failure found by a seed sweep shrinks to the decisions that matter and replays by token") {
  // Seeds 1..200 of random walk; the first failing one is shrunk.
  std::optional<deja::sim::Outcome> failing;
  deja::sim::Config config;
  for (std::uint64_t seed = 1; seed <= 200 && !failing; ++seed) {
    config.seed = seed;
    auto o = deja::sim::run(config, write_before_read);
    if (o.failed()) failing = std::move(o);
  }
  REQUIRE(failing.has_value());
  const auto s = deja::sim::shrink(config, write_before_read, *failing);
  std::printf("seed %llu: %zu decisions, %zu not the default: %s\nshrunk in %zu replays to %zu decisions, %zu not the default: %s\n",
              static_cast<unsigned long long>(failing->seed()), s.original.size(), deja::sim::count_nondefault(s.original),
              deja::sim::format_schedule(s.original).c_str(), s.runs, s.shrunk.size(),
              deja::sim::count_nondefault(s.shrunk), deja::sim::format_schedule(s.shrunk).c_str());
  INFO(s.outcome.report());
  REQUIRE(s.outcome.failed());
  REQUIRE_FALSE(s.exhausted_budget);
  REQUIRE(s.shrunk.size() <= s.original.size());
  REQUIRE(deja::sim::count_nondefault(s.shrunk) >= 1);
  REQUIRE(deja::sim::count_nondefault(s.shrunk) <= deja::sim::count_nondefault(s.original));
  // 1-minimal: every remaining non-default decision is needed.
  for (std::size_t i = 0; i < s.shrunk.size(); ++i) {
    if (s.shrunk[i] == 0) continue;
    auto without = s.shrunk;
    without[i] = 0;
    deja::sim::Config c = config;
    c.replay = without;
    INFO("resetting decision " << i << " of " << deja::sim::format_schedule(s.shrunk));
    REQUIRE_FALSE(deja::sim::run(c, write_before_read).failed());
  }
  // The report's token replays the shrunk run exactly.
  const std::string report = s.outcome.report();
  const auto at = report.find("DEJA_REPLAY=");
  REQUIRE(at != std::string::npos);
  const auto end = report.find(' ', at);
  deja::sim::Config by_token = config;
  by_token.replay = deja::sim::decode_replay_token(report.substr(at + 12, end - at - 12));
  const auto again = deja::sim::run(by_token, write_before_read);
  REQUIRE(again.failed());
  REQUIRE(again.trace_hash() == s.outcome.trace_hash());
}

TEST_CASE("shrinking a run that did not fail is a usage error") {
  deja::sim::Config config;
  const auto passing = deja::sim::run(config, [] { return noop(); });
  REQUIRE_THROWS_AS(deja::sim::shrink(config, write_before_read, passing), deja::UsageError);
}

TEST_CASE("shrinking with a budget of no replays returns the failing run itself, not a nondeterminism error") {
  const auto body = []() -> deja::Task<void> {
    DEJA_ASSERT(deja::random_below(4) != 3);
    co_return;
  };
  deja::sim::Config c;
  deja::sim::Outcome failing;
  for (std::uint64_t s = 1; s < 200 && !failing.failed(); ++s) {
    c.seed = s;
    failing = deja::sim::run(c, body);
  }
  REQUIRE(failing.failed());
  deja::sim::ShrinkOptions options;
  options.max_runs = 0;
  deja::sim::ShrinkResult r;
  try {
    r = deja::sim::shrink(c, body, failing, options);
  } catch (const deja::UsageError& e) {
    FAIL("shrink threw: " << e.what());
  }
  CHECK(r.exhausted_budget);
  CHECK(r.runs == 0);
  CHECK(r.shrunk == r.original);
  CHECK(r.outcome.failure() == failing.failure());
}
