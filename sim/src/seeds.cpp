// The seed sweep behind simulated tests.
#include "deja/sim/seeds.hpp"

#include <cerrno>
#include <cstdlib>

#include "deja/errors.hpp"
#include "deja/sim/replay_token.hpp"

namespace deja::sim {

namespace {

std::optional<std::uint64_t> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v, &end, 0);
  if (errno != 0 || end == v || *end != '\0') throw UsageError(std::string(name) + " must be a number, not \"" + v + "\"");
  return n;
}

}  // namespace

SweepResult sweep(const std::function<Task<void>()>& body, const SweepOptions& options) {
  SweepResult result;
  Config config = options.base;
  config.replay_args = options.replay_args;
  if (env_number("DEJA_CHECK_DETERMINISM").value_or(0) != 0) config.check_determinism = true;
  auto run_one = [&](Config c) {
    ++result.runs;
    Outcome o = run(c, body);
    if (o.failed()) result.first_failure = std::move(o);
    return !result.first_failure;
  };
  if (const char* token = std::getenv("DEJA_REPLAY"); token && *token) {
    config.replay = decode_replay_token(token);
    run_one(config);
    return result;
  }
  if (auto seed = env_number("DEJA_SEED")) {
    config.seed = *seed;
    run_one(config);
    return result;
  }
  const std::uint64_t count = env_number("DEJA_SEEDS").value_or(options.default_seeds);
  const std::uint64_t shards = env_number("TEST_TOTAL_SHARDS").value_or(1);
  const std::uint64_t shard = env_number("TEST_SHARD_INDEX").value_or(0);
  if (shards == 0 || shard >= shards) throw UsageError("TEST_SHARD_INDEX must be below TEST_TOTAL_SHARDS");
  for (std::uint64_t i = shard; i < count; i += shards) {
    config.seed = options.first_seed + i;
    if (!run_one(config)) break;
  }
  return result;
}

}  // namespace deja::sim
