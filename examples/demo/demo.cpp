// `make demo`: deja's main job in one run. A bank service with a check-then-act race is swept over
// seeds under the simulator until a seed breaks it; the failure is printed with the line that
// replays it, its schedule is shrunk to the few decisions that matter, it is replayed to show the
// identical trace hash, then the fixed service passes every seed, and the same code runs on the
// production runtime. Then a replicated key-value store (examples/kv) meets a faulty network: a
// bug that only shows when the primary crashes at the wrong moment is found, replayed and
// explained, the fixed store passes, and the same store serves Redis clients on 127.0.0.1.
//
//   deja-demo                       the whole tour
//   DEJA_SEED=<n> deja-demo         replay one seed of the racy service (what the replay line runs)
//   DEJA_REPLAY=<token> deja-demo   replay a recorded decision log
//   DEJA_SEED=<n> deja-demo kv      replay one seed of the buggy kv store
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../bank/bank.hpp"
#include "../kv/client.hpp"
#include "../kv/replica.hpp"
#include "../kv/scenario.hpp"
#include "deja/blocking.hpp"
#include "deja/current_thread_runtime.hpp"
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

deja::Task<void> buggy_kv() {
  kv::ScenarioOptions o;
  o.acknowledge_before_replication = true;
  return kv::simulated_cluster(o);
}
deja::Task<void> fixed_kv() { return kv::simulated_cluster({}); }

int replay_from_environment(bool kv) {
  deja::sim::SweepOptions opts;
  if (kv) opts.replay_args = "kv";
  const auto result = deja::sim::sweep(kv ? buggy_kv : racy, opts);
  if (!result.first_failure) {
    std::puts("deja-demo: that run passed");
    return 0;
  }
  std::fputs(result.first_failure->report().c_str(), stdout);
  return 1;
}

int kv_chapter();

}  // namespace

int main(int argc, char** argv) {
  const bool kv_only = argc == 2 && std::strcmp(argv[1], "kv") == 0;
  if (argc > 2 || (argc == 2 && !kv_only)) {
    std::fprintf(stderr, "usage: deja-demo [kv]   (with DEJA_SEED or DEJA_REPLAY set: replay that run)\n");
    return 2;
  }
  if (std::getenv("DEJA_SEED") || std::getenv("DEJA_REPLAY")) {
    try {
      return replay_from_environment(kv_only);
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
  return kv_chapter();
}

namespace {

// The store serving real clients on 127.0.0.1: deja's own client, then redis-cli if installed.
deja::Task<void> serve_real_clients() {
  kv::ReplicaOptions options;
  options.client_address = deja::net::SocketAddr(deja::net::IpAddr::v4_loopback(), 0);
  kv::Replica replica = kv::Replica::bind(options);
  const auto addr = *replica.client_addr();
  auto server = deja::spawn(replica.run());
  std::printf("   deja-kv serving on %s\n", addr.to_string().c_str());
  kv::Client client = co_await kv::Client::connect(addr);
  co_await client.set("greeting", "hello from deja");
  const auto value = co_await client.get("greeting");
  std::printf("   SET greeting, then GET greeting -> \"%s\"\n", value.value_or("(absent)").c_str());
  // redis-cli blocks, so it runs on the blocking pool while the runtime keeps serving it.
  const std::string command = "redis-cli -p " + std::to_string(addr.port()) + " GET greeting 2>/dev/null";
  auto cli = [command] {
    std::string out;
    if (FILE* p = ::popen(command.c_str(), "r")) {
      char buf[256];
      while (std::fgets(buf, sizeof buf, p) != nullptr && out.size() < 4096) out += buf;
      ::pclose(p);
    }
    return out;
  };
  const std::string from_cli = co_await deja::spawn_blocking(std::move(cli));
  if (from_cli.empty()) {
    std::puts("   (redis-cli is not installed: `make kv-bench` installs it and benchmarks against redis-server)");
  } else {
    std::printf("   redis-cli GET greeting -> %s", from_cli.c_str());
  }
  server.abort();
}

int kv_chapter() {
  std::puts("\n6. A replicated key-value store (examples/kv) on a simulated network with partitions, clogs");
  std::puts("   and crashes. This version acknowledges a write before its backups have it.");
  const std::uint64_t max_seeds = 200;
  std::optional<deja::sim::Outcome> failure;
  for (std::uint64_t seed = 1; seed <= max_seeds && !failure; ++seed) {
    deja::sim::Config c;
    c.seed = seed;
    c.replay_args = "kv";
    c.trace_capacity = std::size_t{1} << 17;  // the whole run, so the crash that caused it is in the trace
    auto o = deja::sim::run(c, buggy_kv);
    progress(seed, max_seeds, "seeds");
    if (o.failed()) failure = std::move(o);
  }
  std::puts("");
  if (!failure) {
    std::puts("   no seed failed (unexpected: the bug is real)");
    return 1;
  }
  std::printf("   seed %llu fails after %.1f s of virtual time:\n   %s\n", static_cast<unsigned long long>(failure->seed()),
              std::chrono::duration<double>(failure->virtual_elapsed()).count(), failure->failure().c_str());
  std::printf("   replay: %s\n", failure->replay_command().c_str());

  std::puts("\n7. Replaying it and reading its trace: what the network and the replicas did");
  deja::sim::Config again;
  again.seed = failure->seed();
  again.trace_capacity = std::size_t{1} << 17;
  const auto replayed = deja::sim::run(again, buggy_kv);
  std::printf("   trace hash 0x%016llx, replayed 0x%016llx (%s)\n", static_cast<unsigned long long>(failure->trace_hash()),
              static_cast<unsigned long long>(replayed.trace_hash()),
              replayed.trace_hash() == failure->trace_hash() ? "identical" : "DIFFERENT");
  std::size_t shown = 0;
  for (const std::string& line : failure->trace_tail()) {
    if (line.find("crash replica") != std::string::npos || line.find("restart replica") != std::string::npos ||
        line.find("recovers write") != std::string::npos) {
      std::printf("   %s\n", line.c_str());
      if (++shown == 12) break;
    }
  }
  std::puts("   The primary acknowledged a write and crashed before any backup had it; restarted, it");
  std::puts("   recovered a backup's state without that write, and a later read saw the state before it.");
  for (const std::string& path : failure->trace_files()) std::printf("   full trace: %s\n", path.c_str());

  std::puts("\n8. The fixed store (a write is acknowledged once every backup has it) over 100 seeds");
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    deja::sim::Config c;
    c.seed = seed;
    const auto o = deja::sim::run(c, fixed_kv);
    progress(seed, 100, "seeds");
    if (o.failed()) {
      std::printf("\n   seed %llu failed:\n%s", static_cast<unsigned long long>(seed), o.report().c_str());
      return 1;
    }
  }
  std::puts("\n   every kv seed passed");

  std::puts("\n9. The same store serving real Redis clients on the production runtime");
  deja::block_on(serve_real_clients());
  std::puts("   served");
  return 0;
}

}  // namespace
