// libFuzzer target: the input bytes are the simulator's scheduling decisions (see
// schedule_fuzz.hpp). A failed run (a broken invariant, a deadlock, an unobserved exception, the
// step limit) prints the simulator's report, whose last line replays the run, and aborts.
//
//   make fuzz                                              # builds build-fuzz, fuzzes for a while
//   build-fuzz/fuzz/deja-sim-schedule-fuzz -max_total_time=60 fuzz/corpus
//   build-fuzz/fuzz/deja-sim-schedule-fuzz --planted-bug   # the planted lost update: a crash
//   DEJA_REPLAY=d1... build-fuzz/fuzz/deja-sim-schedule-fuzz --strategy=walk   # a report's replay
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "deja/deja.hpp"
#include "deja/sim/replay_token.hpp"
#include "schedule_fuzz.hpp"

namespace deja_fuzz {

bool g_planted_bug = false;

namespace {

constexpr int kProducers = 3;
constexpr int kMessages = 4;
constexpr std::size_t kChannelCapacity = 2;
constexpr int kWorkers = 3;
constexpr int kRounds = 2;
constexpr std::uint64_t kPermits = 2;
constexpr int kHolders = 4;

struct Shared {
  deja::Mutex mutex;
  bool inside = false;  // a worker is in its critical section
  long counter = 0;     // read, awaited, written back: under the mutex
  long sections = 0;    // critical sections completed
  deja::Semaphore permits{kPermits};
  std::uint64_t holders = 0;  // tasks holding a permit
};

struct Message {
  int producer;
  int seq;
};

// Clears a flag or decrements a count when destroyed, so that an aborted task leaves the
// bookkeeping as its RAII guard leaves the primitive.
struct ClearOnExit {
  bool* flag;
  ~ClearOnExit() { *flag = false; }
};
struct DecrementOnExit {
  std::uint64_t* count;
  ~DecrementOnExit() { --*count; }
};

deja::Task<void> producer(deja::mpsc::Sender<Message> tx, int id) {
  for (int seq = 0; seq < kMessages; ++seq) {
    if (deja::buggify(0.25)) co_await deja::sleep(std::chrono::milliseconds(deja::random_below(3)));
    const std::error_code ec = co_await tx.send(Message{id, seq});
    DEJA_ASSERT(!ec);  // the receiver outlives every producer
  }
}

// Receives until every sender is gone; returns how many messages came from each producer, after
// checking that each producer's messages arrive in order with none missing.
deja::Task<std::array<int, kProducers>> consumer(deja::mpsc::Receiver<Message> rx) {
  std::array<int, kProducers> next{};
  for (;;) {
    std::optional<Message> m = co_await rx.recv();
    if (!m) break;
    DEJA_ASSERT(m->producer >= 0 && m->producer < kProducers);
    DEJA_ASSERT(m->seq == next[static_cast<std::size_t>(m->producer)]);
    ++next[static_cast<std::size_t>(m->producer)];
    if (deja::buggify(0.2)) co_await deja::yield_now();
  }
  co_return next;
}

deja::Task<void> worker(std::shared_ptr<Shared> s, bool planted_bug) {
  for (int round = 0; round < kRounds; ++round) {
    std::optional<deja::MutexGuard> guard;
    // The planted bug: now and then (a buggify decision the fuzzer has to find) a "fast path"
    // forgets the lock, and another worker's read-await-write can overlap this one.
    const bool forget_lock = planted_bug && deja::buggify(0.1);
    if (!forget_lock) {
      guard.emplace(co_await s->mutex.lock());
      DEJA_ASSERT(!s->inside);
    }
    s->inside = true;
    const ClearOnExit leave{&s->inside};
    const long seen = s->counter;
    co_await deja::yield_now();
    s->counter = seen + 1;
    ++s->sections;
  }
}

deja::Task<void> holder(std::shared_ptr<Shared> s) {
  const deja::SemaphorePermit permit = co_await s->permits.acquire();
  ++s->holders;
  const DecrementOnExit release{&s->holders};
  DEJA_ASSERT(s->holders <= kPermits);
  co_await deja::yield_now();
  if (deja::buggify(0.3)) co_await deja::sleep(std::chrono::milliseconds(1));
}

// True if `h` finished, false if it was aborted first.
deja::Task<bool> join(deja::JoinHandle<void>& h) {
  try {
    co_await h;
  } catch (const deja::TaskCancelled&) {
    co_return false;
  }
  co_return true;
}

deja::Task<void> program(bool planted_bug) {
  auto shared = std::make_shared<Shared>();
  deja::JoinHandle<std::array<int, kProducers>> receiving;
  std::vector<deja::JoinHandle<void>> producers;
  {
    auto chan = deja::mpsc::channel<Message>(kChannelCapacity);
    receiving = deja::spawn(consumer(std::move(chan.second)));
    for (int id = 0; id < kProducers; ++id) producers.push_back(deja::spawn(producer(chan.first, id)));
  }  // the last Sender is a producer's: the channel finishes when they are all done
  std::vector<deja::JoinHandle<void>> workers;
  for (int i = 0; i < kWorkers; ++i) workers.push_back(deja::spawn(worker(shared, planted_bug)));
  std::vector<deja::JoinHandle<void>> holders;
  for (int i = 0; i < kHolders; ++i) holders.push_back(deja::spawn(holder(shared)));

  // Abort the last of each kind at a point the schedule chooses (perhaps after it finished).
  for (std::uint64_t n = deja::random_below(8); n > 0; --n) co_await deja::yield_now();
  producers.back().abort();
  workers.back().abort();
  holders.back().abort();

  std::array<bool, kProducers> produced{};
  for (std::size_t i = 0; i < producers.size(); ++i) produced[i] = co_await join(producers[i]);
  for (auto& w : workers) co_await join(w);
  for (auto& h : holders) co_await join(h);
  const std::array<int, kProducers> received = co_await receiving;

  for (std::size_t i = 0; i < kProducers; ++i) {
    // Every message a finished producer sent arrived; an aborted one's sent messages too, in order.
    DEJA_ASSERT(produced[i] ? received[i] == kMessages : received[i] <= kMessages);
  }
  DEJA_ASSERT(shared->counter == shared->sections);  // no lost update under the lock
  DEJA_ASSERT(shared->sections >= static_cast<long>((kWorkers - 1) * kRounds));
  DEJA_ASSERT(!shared->inside && !shared->mutex.is_locked());
  DEJA_ASSERT(shared->holders == 0);
  const std::optional<deja::SemaphorePermit> all = shared->permits.try_acquire(kPermits);
  DEJA_ASSERT(all.has_value());  // every permit came back, aborted holder included
}

deja::sim::Config base_config(bool pct, bool planted_bug) {
  deja::sim::Config c;
  if (pct) {
    c.strategy = deja::sim::Strategy::kPct;
    c.pct_depth = 3;
    c.pct_steps = 150;
  }
  c.max_steps = 100'000;
  c.trace_capacity = 512;
  c.replay_args = pct ? "--strategy=pct" : "--strategy=walk";
  if (planted_bug) c.replay_args += " --planted-bug";
  return c;
}

deja::sim::Outcome run_config(const deja::sim::Config& c, bool planted_bug) {
  return deja::sim::run(c, [planted_bug] { return program(planted_bug); });
}

}  // namespace

deja::sim::Outcome run_bytes(std::span<const std::uint8_t> bytes, bool planted_bug) {
  const bool pct = !bytes.empty() && (bytes[0] & 1) != 0;
  deja::sim::ByteSource source(bytes.empty() ? bytes : bytes.subspan(1));
  deja::sim::Config c = base_config(pct, planted_bug);
  c.source = &source;
  return run_config(c, planted_bug);
}

deja::sim::Outcome run_replay(std::vector<std::uint64_t> decisions, bool pct, bool planted_bug) {
  deja::sim::Config c = base_config(pct, planted_bug);
  c.replay = std::move(decisions);
  return run_config(c, planted_bug);
}

int handle_command_line(int argc, char** argv) {
  bool pct = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--planted-bug") g_planted_bug = true;
    if (arg == "--strategy=pct") pct = true;
  }
  const char* token = std::getenv("DEJA_REPLAY");
  if (token == nullptr || *token == '\0') return -1;
  try {
    const deja::sim::Outcome o = run_replay(deja::sim::decode_replay_token(token), pct, g_planted_bug);
    std::fputs(o.report().c_str(), stdout);
    return o.failed() ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 2;
  }
}

}  // namespace deja_fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (const int code = deja_fuzz::handle_command_line(*argc, *argv); code >= 0) std::exit(code);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const deja::sim::Outcome o = deja_fuzz::run_bytes(std::span<const std::uint8_t>(data, size), deja_fuzz::g_planted_bug);
  if (o.failed()) {
    std::fputs(o.report().c_str(), stderr);
    std::abort();
  }
  return 0;
}
