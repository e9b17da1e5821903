// The determinism check (Config::check_determinism, DEJA_CHECK_DETERMINISM=1 in sweep): a body
// that reads something the simulator does not control is caught at the first event that differs.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sim/node.hpp"
#include "deja/sim/seeds.hpp"
#include "deja/sim/catch2.hpp"
#include "deja/sim/simulator.hpp"

using namespace std::chrono_literals;

namespace {

// Sets an environment variable for a scope, then restores what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    ::setenv(name, value, 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (saved_) ::setenv(name_, saved_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

// The index the check reports: "... diverged at event #<n>".
std::optional<std::uint64_t> diverging_index(const std::string& failure) {
  const std::string key = "diverged at event #";
  const auto at = failure.find(key);
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(failure.c_str() + at + key.size(), nullptr, 10);
}

// The line of the report that shows one run's side ("first run:  ..." or "second run: ...").
std::string side(const std::string& failure, const std::string& label) {
  const auto at = failure.find(label);
  if (at == std::string::npos) return {};
  return failure.substr(at, failure.find('\n', at) - at);
}

// Events of these bodies: #0 spawn of the main task, #1 its first run, #2 the first log line.
deja::Task<void> reads_the_clock() {
  deja::sim::log("before");
  const auto ns = std::chrono::steady_clock::now().time_since_epoch().count();
  deja::sim::log("clock " + std::to_string(ns));  // #3: differs in every run
  if (ns % 2 == 0) co_await deja::yield_now();
}

deja::Task<void> reads_an_address() {
  // Every run allocates anew while earlier runs' blocks are still held, so the address differs.
  static std::vector<std::unique_ptr<int>> kept;
  kept.push_back(std::make_unique<int>(0));
  const auto address = reinterpret_cast<std::uintptr_t>(kept.back().get());
  deja::sim::log("before");
  deja::sim::log("address " + std::to_string(address));  // #3
  if ((address >> 4) % 2 == 0) co_await deja::yield_now();
}

// State that outlives a run: every other run yields once more.
int runs_so_far = 0;
deja::Task<void> remembers_earlier_runs() {
  if (++runs_so_far % 2 == 0) co_await deja::yield_now();
  deja::sim::log("a");
  deja::sim::log("b");
}

deja::Task<void> lost_update() {
  auto counter = std::make_shared<int>(0);
  auto bump = [](std::shared_ptr<int> c) -> deja::Task<void> {
    const int seen = *c;
    co_await deja::yield_now();
    *c = seen + 1;
  };
  auto a = deja::spawn(bump(counter));
  auto b = deja::spawn(bump(counter));
  co_await a;
  co_await b;
  DEJA_ASSERT(*counter == 2);
}

// Deterministic: timers, random values, buggify, a node that crashes and restarts.
deja::Task<void> busy_but_deterministic() {
  auto total = std::make_shared<int>(0);
  const deja::sim::NodeId n = deja::sim::add_node("worker", [total]() -> deja::Task<void> {
    for (;;) {
      co_await deja::sleep(std::chrono::milliseconds(1 + deja::random_below(5)));
      *total += deja::buggify(0.3) ? 2 : 1;
      deja::sim::log("total " + std::to_string(*total));
    }
  });
  std::vector<deja::JoinHandle<void>> hs;
  for (int i = 0; i < 4; ++i) {
    hs.push_back(deja::spawn([](int k) -> deja::Task<void> {
      for (int j = 0; j < 3; ++j) co_await deja::sleep(std::chrono::milliseconds(k + j));
    }(i)));
  }
  co_await deja::sleep(20ms);
  deja::sim::crash(n);
  deja::sim::restart(n);
  for (auto& h : hs) co_await h;
  co_await deja::sleep(10ms);
}

}  // namespace

TEST_CASE("determinism check: a body that reads the real clock is caught at the first diverging event (1 seed)") {
  deja::sim::Config c;
  c.seed = 1;
  c.check_determinism = true;
  c.replay_args = deja::sim::current_catch2_test_filter();
  const auto o = deja::sim::run(c, reads_the_clock);
  INFO(o.report());
  REQUIRE(o.failed());
  REQUIRE(o.failure().rfind("the run is not deterministic", 0) == 0);
  REQUIRE(diverging_index(o.failure()) == std::optional<std::uint64_t>(3));
  const std::string first = side(o.failure(), "first run:");
  const std::string second = side(o.failure(), "second run:");
  REQUIRE(first.find("#3 step 1 t=0.000000000s node=main: log \"clock ") != std::string::npos);
  REQUIRE(second.find("#3 step 1 t=0.000000000s node=main: log \"clock ") != std::string::npos);
  REQUIRE(first.substr(first.find('#')) != second.substr(second.find('#')));  // two different readings
  REQUIRE(o.report().find("\nreplay: DEJA_SEED=0x1 ") != std::string::npos);
}

TEST_CASE("determinism check: DEJA_CHECK_DETERMINISM=1 makes sweep catch a body that logs an address (3 seeds)") {
  ScopedEnv check("DEJA_CHECK_DETERMINISM", "1");
  deja::sim::SweepOptions opts;
  opts.default_seeds = 3;
  opts.replay_args = deja::sim::current_catch2_test_filter();
  const auto sweep = deja::sim::sweep(reads_an_address, opts);
  REQUIRE(sweep.first_failure.has_value());
  INFO(sweep.first_failure->report());
  REQUIRE(sweep.runs == 1);  // the first seed already fails
  REQUIRE(diverging_index(sweep.first_failure->failure()) == std::optional<std::uint64_t>(3));
  REQUIRE(side(sweep.first_failure->failure(), "first run:").find("log \"address ") != std::string::npos);
  REQUIRE(side(sweep.first_failure->failure(), "second run:").find("log \"address ") != std::string::npos);
}

TEST_CASE("determinism check: state left over from an earlier run shows both sides of the divergence (1 seed)") {
  // The first run's side comes from its trace ring, or, when the ring no longer holds the event
  // (capacity 1), from a third run that reproduces the first up to it.
  for (const std::size_t capacity : {std::size_t{4096}, std::size_t{1}}) {
    deja::sim::Config c;
    c.check_determinism = true;
    c.trace_capacity = capacity;
    c.replay_args = deja::sim::current_catch2_test_filter();
    runs_so_far = 0;  // the first run does not yield
    const auto o = deja::sim::run(c, remembers_earlier_runs);
    INFO("trace capacity " << capacity << "\n" << o.report());
    REQUIRE(o.failed());
    // The first run logs in its first step; the second yields and runs again instead.
    REQUIRE(diverging_index(o.failure()) == std::optional<std::uint64_t>(2));
    REQUIRE(side(o.failure(), "first run:").find("#2 step 1 t=0.000000000s node=main: log \"a\"") != std::string::npos);
    REQUIRE(side(o.failure(), "second run:").find("#2 step 2 t=0.000000000s node=main: run task #1") != std::string::npos);
  }
}

TEST_CASE("determinism check: deterministic bodies pass it, and a failing one fails the same way (30 seeds)") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 30;
  opts.base.check_determinism = true;
  opts.replay_args = deja::sim::current_catch2_test_filter();
  const auto passing = deja::sim::sweep(busy_but_deterministic, opts);
  if (passing.first_failure) FAIL(passing.first_failure->report());
  REQUIRE(passing.runs == 30);

  opts.default_seeds = 200;
  const auto checked = deja::sim::sweep(lost_update, opts);
  REQUIRE(checked.first_failure.has_value());
  INFO(checked.first_failure->report());
  REQUIRE(checked.first_failure->failure().rfind("DEJA_ASSERT(*counter == 2) failed", 0) == 0);
  deja::sim::Config plain;
  plain.seed = checked.first_failure->seed();
  const auto unchecked = deja::sim::run(plain, lost_update);
  REQUIRE(unchecked.failure() == checked.first_failure->failure());
  REQUIRE(unchecked.trace_hash() == checked.first_failure->trace_hash());

  // A caller's decision source is read once; the check reruns the decisions it gave.
  const std::vector<std::uint8_t> bytes = {7, 1, 200, 3, 9, 44, 0, 5, 61, 2, 8, 13, 21, 34, 55, 89};
  deja::sim::ByteSource checked_source(bytes);
  deja::sim::Config with_source;
  with_source.source = &checked_source;
  with_source.check_determinism = true;
  const auto from_bytes = deja::sim::run(with_source, busy_but_deterministic);
  INFO(from_bytes.report());
  REQUIRE_FALSE(from_bytes.failed());
  deja::sim::ByteSource fresh(bytes);
  with_source.source = &fresh;
  with_source.check_determinism = false;
  REQUIRE(deja::sim::run(with_source, busy_but_deterministic).trace_hash() == from_bytes.trace_hash());
}
