// deja-fuzz-smoke: runs the schedule fuzzer's entry point over fixed and pseudo-random inputs in
// the normal build (no libFuzzer needed), so `make test` covers the harness:
//   1. the real invariants hold for every input (LLVMFuzzerTestOneInput aborts if one breaks);
//   2. the planted bug is found among a few hundred random inputs, and its report's replay token
//      reproduces the failing run exactly.
// Also replays a failure's report line: DEJA_REPLAY=<token> deja-fuzz-smoke --strategy=walk|pct.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "deja/sim/decision_source.hpp"
#include "deja/sim/replay_token.hpp"
#include "schedule_fuzz.hpp"

namespace {

constexpr int kRandomInputs = 400;
constexpr int kPlantedInputs = 400;

std::vector<std::uint8_t> random_input(deja::sim::SeededSource& rng) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(rng.next(300)));
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng.next(256));
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (const int code = deja_fuzz::handle_command_line(argc, argv); code >= 0) return code;

  // 1. Invariants over fixed edge-case inputs, then pseudo-random ones.
  std::vector<std::vector<std::uint8_t>> inputs = {
      {}, {0}, {1}, std::vector<std::uint8_t>(64, 0xff), std::vector<std::uint8_t>(257, 0x00), std::vector<std::uint8_t>(257, 0x01),
  };
  deja::sim::SeededSource rng(0xdeca);
  for (int i = 0; i < kRandomInputs; ++i) inputs.push_back(random_input(rng));
  for (const auto& in : inputs) LLVMFuzzerTestOneInput(in.data(), in.size());
  std::printf("deja-fuzz-smoke: invariants held over %zu inputs\n", inputs.size());

  // 2. The planted bug is found, and replays by token.
  deja::sim::SeededSource planted_rng(42);
  for (int i = 0; i < kPlantedInputs; ++i) {
    const std::vector<std::uint8_t> in = random_input(planted_rng);
    const deja::sim::Outcome o = deja_fuzz::run_bytes(in, true);
    if (!o.failed()) continue;
    const std::string report = o.report();
    const bool pct = !in.empty() && (in[0] & 1) != 0;
    const deja::sim::Outcome again = deja_fuzz::run_replay(deja::sim::decode_replay_token(o.replay_token()), pct, true);
    if (report.find("\nreplay: DEJA_REPLAY=d1.") == std::string::npos || report.find("--planted-bug") == std::string::npos ||
        !again.failed() || again.failure() != o.failure() || again.trace_hash() != o.trace_hash()) {
      std::printf("deja-fuzz-smoke: the planted failure did not replay exactly\n%s", report.c_str());
      return 1;
    }
    std::printf("deja-fuzz-smoke: the planted bug was found by input %d of %d and replays exactly:\n%s", i + 1,
                kPlantedInputs, report.c_str());
    return 0;
  }
  std::printf("deja-fuzz-smoke: the planted bug was not found in %d inputs\n", kPlantedInputs);
  return 1;
}
