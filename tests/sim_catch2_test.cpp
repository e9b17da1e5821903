// deja::sim::check_seeds and the replay line it prints: escaped for Catch2 and the shell, and
// reproducing the failure when pasted.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "deja/assert.hpp"
#include "deja/sim/catch2.hpp"
#include "deja/sim/simulator.hpp"
#include "deja/spawn.hpp"
#include "deja/yield_now.hpp"

namespace {

deja::Task<void> increment(std::shared_ptr<int> counter) {
  const int seen = *counter;
  co_await deja::yield_now();
  *counter = seen + 1;
}

// A lost update: two read-yield-write increments; some interleavings lose one.
deja::Task<void> racy_counter() {
  auto counter = std::make_shared<int>(0);
  auto a = deja::spawn(increment(counter));
  auto b = deja::spawn(increment(counter));
  co_await a;
  co_await b;
  DEJA_ASSERT(*counter == 2);
}

deja::Task<void> quiet_counter() {
  auto counter = std::make_shared<int>(0);
  auto a = deja::spawn(increment(counter));
  co_await a;
  auto b = deja::spawn(increment(counter));
  co_await b;
  DEJA_ASSERT(*counter == 2);
}

// Runs a shell command and returns its output (stdout and stderr) and exit status.
struct CommandResult {
  std::string output;
  int status = -1;
};

CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  std::size_t n = 0;
  // Bounded: a runaway child cannot fill memory.
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0 && r.output.size() < (std::size_t{8} << 20)) r.output.append(buf, n);
  const int raw = ::pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

}  // namespace

TEST_CASE("catch2_test_filter escapes Catch's specials and quotes for the shell") {
  CHECK(deja::sim::catch2_test_filter("plain name") == "'plain name'");
  CHECK(deja::sim::catch2_test_filter("a, b") == "'a\\, b'");
  CHECK(deja::sim::catch2_test_filter("[x] *y\\") == "'\\[x\\] \\*y\\\\'");
  CHECK(deja::sim::catch2_test_filter("it's") == "'it'\\''s'");
}

TEST_CASE("check_seeds runs a correct body over every seed and passes (50 seeds)") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 50;
  const auto result = deja::sim::check_seeds(quiet_counter, opts);
  // DEJA_SEEDS or DEJA_SEED in the environment change the count, but never to zero.
  CHECK(result.runs >= 1);
  CHECK_FALSE(result.first_failure.has_value());
  if (std::getenv("DEJA_SEEDS") == nullptr && std::getenv("DEJA_SEED") == nullptr &&
      std::getenv("DEJA_REPLAY") == nullptr && std::getenv("TEST_TOTAL_SHARDS") == nullptr) {
    CHECK(result.runs == 50);
  }
}

// The replay line of a failure is run in a shell as a user would paste it. The test re-runs itself
// (the line names it); the child, seeing DEJA_CATCH2_CHILD, runs check_seeds and fails.
TEST_CASE("check_seeds prints a replay line that reproduces the failure with the same trace hash, even for names with commas (up to 200 seeds)") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 200;
  if (std::getenv("DEJA_CATCH2_CHILD") != nullptr) {
    deja::sim::check_seeds(racy_counter, opts);  // fails this (child) run with the report
    return;
  }
  opts.replay_args = deja::sim::current_catch2_test_filter();
  const auto sweep = deja::sim::sweep(racy_counter, opts);
  REQUIRE(sweep.first_failure.has_value());
  const deja::sim::Outcome& failure = *sweep.first_failure;
  const std::string line = failure.replay_command();
  INFO("replay: " << line);
  REQUIRE(failure.report().find("\nreplay: " + line) != std::string::npos);

  char hash[32];
  std::snprintf(hash, sizeof hash, "trace_hash=0x%016llx", static_cast<unsigned long long>(failure.trace_hash()));
  // The child must not inherit a sweep's environment that would select other seeds.
  const CommandResult child =
      run_command("env -u DEJA_SEEDS -u DEJA_REPLAY -u TEST_TOTAL_SHARDS -u TEST_SHARD_INDEX DEJA_CATCH2_CHILD=1 " + line);
  INFO(child.output);
  CHECK(child.status == 1);  // Catch2 exits with the number of failed tests
  CHECK(child.output.find("DEJA_ASSERT(*counter == 2)") != std::string::npos);
  CHECK(child.output.find(hash) != std::string::npos);
  CHECK(child.output.find("test cases: 1 | 1 failed") != std::string::npos);  // the filter selected exactly this test
}
