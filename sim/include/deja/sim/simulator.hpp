// The deterministic simulator: runs unchanged deja code on one thread, with virtual time, and
// every nondeterministic choice (which ready task runs, timer ties, random values, buggify) drawn
// from one decision source and recorded, so any run replays exactly from its seed or its log.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "deja/sim/decision_source.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/node.hpp"
#include "deja/task.hpp"
#include "deja/time.hpp"

namespace deja::sim {

enum class Strategy {
  kRandomWalk,  // every step runs a uniformly chosen ready task
  kPct,         // probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010)
};

struct Config {
  std::uint64_t seed = 0;
  Strategy strategy = Strategy::kRandomWalk;
  // PCT: bug depth d (d - 1 priority change points) and the step count the change points are
  // spread over.
  std::uint32_t pct_depth = 3;
  std::uint64_t pct_steps = 1000;
  // A run that takes more task steps, or more virtual time, fails.
  std::uint64_t max_steps = 10'000'000;
  Duration max_virtual_time = std::chrono::hours(24 * 365);
  // Replays this decision log instead of drawing from the seed (DEJA_REPLAY).
  std::optional<std::vector<std::uint64_t>> replay;
  // Draws decisions from here instead (a fuzzer's bytes, a rapidcheck generator). Not owned.
  DecisionSource* source = nullptr;
  // How many trace events the report and the trace files keep (the hash covers all of them).
  std::size_t trace_capacity = 4096;
  // What the replay line runs: defaults to this program and no arguments.
  std::string replay_program;
  std::string replay_args;
  // A failed run writes its trace (what the ring holds) as <stem>.txt and as Chrome/Perfetto
  // trace-event JSON, <stem>.json, the first time its Outcome is reported (report() or
  // trace_files()), so the failing runs a shrinker tries and drops cost nothing. Nothing is
  // written with trace_capacity 0, and at most 64 sets per process.
  bool write_trace_files = true;
  // Where the trace files go: this folder if set, else $DEJA_TRACE_DIR, else ./deja-traces.
  std::string trace_dir;
  // Runs the schedule twice (replaying the first run's decisions) and fails if the two traces
  // differ anywhere, naming the first event that differs. sweep() turns it on for
  // DEJA_CHECK_DETERMINISM=1.
  bool check_determinism = false;
  // The simulated network's defaults: link latency and loss, timeouts, buffer bounds.
  NetworkConfig network;
};

struct TraceRecord;

class Outcome {
 public:
  bool failed() const noexcept { return !failure_.empty(); }
  // Why the run failed ("" if it did not).
  const std::string& failure() const noexcept { return failure_; }
  // A readable account: the failure, the last trace events, and a final line starting "replay: ".
  std::string report() const;
  // The shell command that reproduces this run exactly.
  std::string replay_command() const;
  std::uint64_t trace_hash() const noexcept { return trace_hash_; }
  // The recorded decisions, in order (each is a value in [0, bound) of the choice it answered).
  std::vector<std::uint64_t> decisions() const;
  std::size_t decision_count() const noexcept { return decision_count_; }
  std::string replay_token() const;
  std::uint64_t steps() const noexcept { return steps_; }
  Duration virtual_elapsed() const noexcept { return virtual_elapsed_; }
  std::uint64_t seed() const noexcept { return seed_; }
  // The events the trace ring held at the end, oldest first, one readable line each:
  // "#12 step 3 t=0.001000000s node=main: log "hello"".
  const std::vector<std::string>& trace_tail() const noexcept { return trace_tail_; }
  // The trace files of a failed run (written by the first call of this or report()); empty for a
  // run that passed, with Config::write_trace_files off, or when writing failed.
  std::vector<std::string> trace_files() const;
  // Why the trace files could not be written ("" if they were, or were not asked for).
  std::string trace_file_error() const;

 private:
  friend class Simulator;
  std::string failure_;
  std::uint64_t trace_hash_ = 0;
  std::vector<std::uint8_t> decision_log_;  // varint-encoded values: a few bytes per decision
  std::size_t decision_count_ = 0;
  std::uint64_t steps_ = 0;
  Duration virtual_elapsed_{};
  std::uint64_t seed_ = 0;
  bool seeded_ = true;
  std::string replay_program_;
  std::string replay_args_;
  std::vector<std::string> trace_tail_;
  std::uint64_t event_count_ = 0;
  // Shared by copies, so that the files are written once.
  std::shared_ptr<TraceRecord> trace_record_;
};

// Runs `main()` to completion under the simulator. Throws UsageError if called inside a runtime.
Outcome run(const Config& config, std::function<Task<void>()> main);

// Records a line in the simulator's trace (and its hash); does nothing outside the simulator.
void log(std::string_view line);

// True while the current thread runs a simulation.
bool in_simulation() noexcept;

}  // namespace deja::sim
