// The schedule fuzzer's program, shared by the libFuzzer target (sim_schedule_fuzz.cpp) and the
// smoke test that runs it over fixed inputs in the normal build (fuzz_smoke.cpp).
//
// The fuzzer's input bytes are the simulator's decisions: byte 0 picks the strategy (odd: PCT),
// the rest feed a deja::sim::ByteSource, so every input is a valid schedule and libFuzzer's
// coverage feedback steers the interleavings. The program exercises Mutex, Semaphore and a bounded
// mpsc channel with producers, workers and holders, aborts one of each at a schedule-chosen point,
// and checks invariants that must hold for every schedule (mutual exclusion, the permit bound,
// per-producer FIFO without loss, no lost update under the lock, no deadlock). With the planted
// bug on, a worker sometimes skips the lock (when a buggify decision fires): a lost update that
// needs both that decision and an overlapping interleaving, which the fuzzer finds in seconds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "deja/sim/simulator.hpp"

namespace deja_fuzz {

// The planted-bug flag of the libFuzzer target (set by --planted-bug on its command line).
extern bool g_planted_bug;

// One run of the program with the schedule given by `bytes`.
deja::sim::Outcome run_bytes(std::span<const std::uint8_t> bytes, bool planted_bug);

// One run replaying a recorded decision log (a failed run's DEJA_REPLAY token) under `pct` or the
// random walk, so that a report's replay line reproduces it exactly.
deja::sim::Outcome run_replay(std::vector<std::uint64_t> decisions, bool pct, bool planted_bug);

// Handles the harness's own command line: --planted-bug, and DEJA_REPLAY=<token> with
// --strategy=pct|walk (what a failure's replay line runs). Returns -1 to go on, or an exit code
// after a replay (0: it passed, 1: it failed; the report is printed).
int handle_command_line(int argc, char** argv);

}  // namespace deja_fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
