// The multi-thread production runtime: workers, work stealing, parking, and the shared driver.
//
// Scheduling follows Tokio's multi-thread scheduler. Each worker owns a bounded StealQueue and a
// LIFO slot (a task woken by the running task runs next, on the same worker, while its data is
// still in cache: what makes message passing cheap); tasks from outside the runtime and queue
// overflow go to one injection queue. An idle worker becomes "searching" and steals half of a
// victim's queue; at most half the workers search at once, and a worker that stops searching
// wakes another if it was the last searcher, so that queued work always has someone looking
// for it without every push waking a thread.
//
// Time and I/O: each worker has its own timer wheel (with its own lock, nearly always taken by
// that worker alone), and there is one epoll instance. The first worker to park takes the driver
// (a try-lock) and sleeps in epoll_wait until the earliest deadline of all wheels; the others
// sleep on a condition variable. Running workers fire due timers every event_interval tasks.
// So no lock is shared by every timer or every wake-up.
//
// On io_uring (RuntimeOptions::io), each worker also has a ring (WorkerRings, reactor.hpp) for
// IoUring's operations: a task's operation goes to its worker's ring, which that worker hands to
// the kernel in one batch when its queue runs dry (and every event_interval tasks), and reaps at
// the same points. The rings' descriptors are in the epoll set, so a sleeping worker's
// completions wake the driver, which collects them. AsyncFd readiness stays on epoll.
//
// Live tasks (for shutdown, which destroys every unfinished one): a task is on the list of the
// worker that spawned it, which only that worker touches, so spawning and finishing there take no
// lock and no atomic; one that finishes elsewhere is handed back to its home worker through a
// lock-free stack. Admission against max_tasks is reserved from one counter in batches.
#include "deja/multi_thread_runtime.hpp"

#include "deja/detail/reactor.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <system_error>
#include <thread>

#include "deja/detail/ready_queue.hpp"
#include "deja/detail/spin_lock.hpp"
#include "deja/detail/steal_queue.hpp"
#include "deja/detail/timer_wheel.hpp"

namespace deja::detail {

namespace {

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

constexpr std::int64_t kNsPerTick = 1'000'000;  // the wheels' resolution: 1 ms
constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
// epoll data: 0 is the eventfd, an odd value (worker << 1 | 1) a worker's ring, else a registration.
constexpr std::uint64_t kRingTag = 1;
// Consecutive runs from the LIFO slot before its task goes to the back of the queue, so that two
// tasks waking each other cannot starve the rest (Tokio uses 3).
constexpr std::uint32_t kMaxLifoRuns = 3;

constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t os_seed() noexcept {
  std::uint64_t seed = 0;
  if (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
    seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return seed;
}

// xoshiro256**
struct Xoshiro {
  std::uint64_t s[4] = {};
  void seed(std::uint64_t seed) noexcept {
    for (auto& word : s) word = splitmix64(seed);
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s[1] * 5, 7) * 9;
    const std::uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
};

std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point since) noexcept {
  return static_cast<std::uint64_t>((std::chrono::steady_clock::now() - since).count());
}

}  // namespace

struct TimerShard {
  SpinLock lock;
  TimerWheel wheel{0};
  // The earliest deadline in the wheel, or kNever; may be early (a cancelled timer's), never late.
  std::atomic<std::uint64_t> next_tick{kNever};
  std::atomic<std::size_t> count{0};
};

// Admissions a worker reserves from MtShared::live_count at a time.
constexpr std::size_t kAdmissionBatch = 32;

// An intrusive list of live tasks through TaskHeader::live_prev/live_next.
struct LiveList {
  TaskHeader* head = nullptr;
  void push(TaskHeader* t) noexcept {
    t->live_prev = nullptr;
    t->live_next = head;
    if (head) head->live_prev = t;
    head = t;
  }
  void unlink(TaskHeader* t) noexcept {
    if (t->live_prev) t->live_prev->live_next = t->live_next; else head = t->live_next;
    if (t->live_next) t->live_next->live_prev = t->live_prev;
    t->live_prev = t->live_next = nullptr;
  }
};

struct MtShared {
  MultiThreadRuntime* rt = nullptr;
  RuntimeContext* context = nullptr;
  MultiThreadOptions options;
  std::vector<std::unique_ptr<MtWorker>> workers;
  std::uint32_t n = 0;
  std::atomic<bool> shutdown{false};
  std::atomic<bool> workers_joined{false};  // set by the destructor once the workers have exited

  // The injection queue. Bounded by max_tasks: a task is in at most one queue.
  std::mutex inject_lock;
  ReadyQueue inject;
  std::atomic<std::size_t> inject_len{0};

  // Idle workers: unparked count in the high half, searching count in the low half.
  std::mutex idle_lock;
  std::vector<std::uint32_t> sleepers;
  std::atomic<std::uint64_t> idle_state{0};

  // Tasks spawned from outside the workers (TaskHeader::owner 0); the workers' own lists are
  // theirs (owner i + 1).
  SpinLock outside_lock;
  LiveList outside;
  // Admissions reserved against max_tasks: live tasks, plus the workers' unspent reservations
  // (MtWorker::admission_credit), plus tasks finished but not yet taken off their home list.
  std::atomic<std::size_t> live_count{0};
  std::atomic<std::size_t> finished_pending{0};  // that last kind
  std::atomic<std::uint32_t> next_id{1};  // the outside threads' id stream

  // The driver: held (try_lock) by the worker sleeping in epoll_wait or polling it.
  std::mutex driver_lock;
  int epoll_fd = -1;
  int event_fd = -1;
  // The tick at which the parked driver will wake (kNever: only when signalled); 0 while nobody
  // is parked in it, or once somebody has signalled it. A new timer earlier than it signals.
  std::atomic<std::uint64_t> driver_deadline{0};
  std::atomic<std::size_t> io_registrations{0};
  std::unique_ptr<WorkerRings> rings;  // io_uring's operations, one ring per worker; or null
  // Deregistered fds, freed by the driver at its next turn: an event for one may still be in the
  // batch being processed right now.
  std::mutex released_lock;
  std::vector<IoRegistration*> released;
  std::vector<std::unique_ptr<TimerShard>> timers;
  std::chrono::steady_clock::time_point epoch;

  std::mutex rng_lock;
  Xoshiro rng;  // entropy for threads that are not workers

  // --- idle protocol (Tokio's idle.rs) ---
  static std::uint32_t searching(std::uint64_t s) noexcept { return static_cast<std::uint32_t>(s); }
  static std::uint32_t unparked(std::uint64_t s) noexcept { return static_cast<std::uint32_t>(s >> 32); }
  static constexpr std::uint64_t kOneUnparked = std::uint64_t{1} << 32;

  bool notify_should_wake() const noexcept {
    const std::uint64_t s = idle_state.load(std::memory_order_seq_cst);
    return searching(s) == 0 && unparked(s) < n;
  }
  // notify_should_wake without the fence: may miss a worker that parked a moment ago.
  bool maybe_idle() const noexcept {
    const std::uint64_t s = idle_state.load(std::memory_order_relaxed);
    return searching(s) == 0 && unparked(s) < n;
  }
  inline void notify_parked() noexcept;
  bool transition_to_searching() noexcept {
    const std::uint64_t s = idle_state.load(std::memory_order_seq_cst);
    if (2 * searching(s) >= n) return false;
    idle_state.fetch_add(1, std::memory_order_seq_cst);
    return true;
  }
  // True if the caller was the last searcher.
  bool transition_from_searching() noexcept { return searching(idle_state.fetch_sub(1, std::memory_order_seq_cst)) == 1; }
  bool transition_to_parked(std::uint32_t index, bool is_searching) {
    std::lock_guard lock(idle_lock);
    const std::uint64_t prev = idle_state.fetch_sub(kOneUnparked + (is_searching ? 1 : 0), std::memory_order_seq_cst);
    sleepers.push_back(index);
    return is_searching && searching(prev) == 1;
  }
  inline void notify_if_work_pending(std::uint32_t except) noexcept;

  // --- injection queue ---
  void push_inject(TaskHeader* const* tasks, std::size_t count) {
    std::lock_guard lock(inject_lock);
    for (std::size_t i = 0; i < count; ++i) inject.push(tasks[i]);
    inject_len.store(inject.size(), std::memory_order_seq_cst);
  }

  // --- live tasks ---
  // Task ids come from n + 1 interleaved streams (one per worker, one shared by outside threads),
  // so that spawning on a worker touches no shared counter for them.
  std::uint32_t outside_id() noexcept { return next_id.fetch_add(1, std::memory_order_relaxed) * (n + 1) + n; }
  // Reserves up to `want` admissions (at least one); throws CapacityExceeded if none is left.
  std::size_t reserve_admissions(std::size_t want) {
    std::size_t cur = live_count.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t take = cur >= options.max_tasks ? 0 : std::min(want, options.max_tasks - cur);
      if (take == 0) throw CapacityExceeded("deja: the runtime's task limit (RuntimeOptions::max_tasks) is reached");
      if (live_count.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed)) return take;
    }
  }
  // Puts `t` on a live list: `w`'s (the calling worker's) or the outside one.
  inline void admit(TaskHeader* t, MtWorker* w);
  // Takes a finished (or destroyed) task off the live lists and drops the scheduler's reference;
  // `w` is the calling worker, or null.
  // `unpublished`: it finished in its first step, run by spawn_inline on `w` (kUnpublished), so
  // nobody else holds or can take a reference: the scheduler's goes without an atomic step.
  inline void finish(TaskHeader* t, MtWorker* w, bool unpublished = false) noexcept;
  // finish() away from the task's home worker, or of a task spawned from outside.
  [[gnu::noinline]] void finish_elsewhere(TaskHeader* t, MtWorker* w) noexcept;
  std::size_t live_tasks() const noexcept;

  // --- time ---
  std::uint64_t now_tick() const noexcept {
    const std::int64_t ns = (std::chrono::steady_clock::now() - epoch).count();
    return ns <= 0 ? 0 : static_cast<std::uint64_t>(ns / kNsPerTick);
  }
  std::uint64_t min_next_tick() const noexcept {
    std::uint64_t m = kNever;
    for (const auto& shard : timers) m = std::min(m, shard->next_tick.load(std::memory_order_seq_cst));
    return m;
  }
  void fire_timers() noexcept {
    std::uint64_t now = 0;
    for (auto& shard : timers) {
      if (shard->next_tick.load(std::memory_order_acquire) == kNever) continue;
      if (now == 0) now = now_tick();
      if (shard->next_tick.load(std::memory_order_acquire) > now) continue;
      std::lock_guard lock(shard->lock);
      // Another thread may have advanced this wheel further with a later clock reading.
      shard->wheel.advance(std::max(now, shard->wheel.now()), [&](TimerEntry& e) {
        auto& node = static_cast<TimerNode&>(e);
        node.armed = false;
        shard->count.store(shard->count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        node.fire(&node);  // under the lock: cancel_timer of this node waits until it is done
      });
      const auto next = shard->wheel.next_deadline();
      shard->next_tick.store(next ? *next : kNever, std::memory_order_seq_cst);
    }
  }
  void signal_driver() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(event_fd, &one, sizeof one);
  }
  // One turn of the reactor and the timers; the caller holds driver_lock. Blocks until the
  // earliest timer, an event or a signal when `block`.
  void drive(bool block) noexcept;
};

struct MtWorker {
  enum ParkState : std::uint32_t { kParkEmpty, kParkedCondvar, kParkedDriver, kParkNotified };

  MtShared* shared = nullptr;
  std::uint32_t index = 0;
  StealQueue queue;
  // Owner-only state.
  TaskHeader* lifo = nullptr;
  std::uint32_t lifo_runs = 0;
  bool searching = false;
  // Collecting wakes from timers and I/O (maintenance, or the driver while parked): they go to
  // this worker's queue without waking a sibling each; once done, one notification if more than
  // one task is queued (as Tokio does: its core's parker is taken while it polls the driver).
  bool collecting = false;
  std::uint32_t tick = 0;
  TaskHeader* running = nullptr;
  // `running` yielded during its step (yield_current): requeue it once the step ends. Only this
  // worker's thread reads or writes it, so a yield costs no atomic step of its own.
  bool yield_requested = false;
  std::uint32_t spawned = 1;  // this worker's id stream
  Xoshiro rng;
  TaskHeader* overflow[StealQueue::kCapacity / 2 + 1] = {};
  TaskHeader* batch[StealQueue::kCapacity / 2] = {};

  // Live tasks spawned here (owner-only), and those of them that finished on other threads,
  // handed back to be taken off the list (and released) by this worker.
  LiveList live;
  std::atomic<TaskHeader*> finished_elsewhere{nullptr};
  // Tasks of other homes that finished here, collected per home (owner-only) and handed back
  // kHandBackBatch at a time, or when this worker goes idle or runs maintenance: one atomic push
  // per batch instead of two locked instructions per task. Each still counts as live meanwhile.
  struct HandBack {
    TaskHeader* first = nullptr;
    TaskHeader* last = nullptr;
    std::uint32_t count = 0;
  };
  static constexpr std::uint32_t kHandBackBatch = 32;
  std::vector<HandBack> hand_back;  // indexed by home worker
  void hand_back_later(TaskHeader* t, std::uint32_t home) noexcept;
  void flush_hand_back() noexcept;
  // Admissions reserved from MtShared::live_count and not used yet: owner-written, read by metrics.
  std::atomic<std::size_t> admission_credit{0};

  std::atomic<std::uint32_t> park_state{kParkEmpty};
  std::mutex park_lock;
  std::condition_variable park_cv;
  std::thread thread;

  // Metrics: written by the owner only, read by anyone.
  std::atomic<std::uint64_t> tasks_run{0}, steals{0}, stolen_tasks{0}, parks{0}, busy_ns{0}, overflows{0};
  // The owner is the only writer, so a plain load and store do (a locked add would cost every poll).
  static void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }

  void run() noexcept;
  void maintenance() noexcept;
  TaskHeader* next_task() noexcept;
  TaskHeader* pop_inject_batch() noexcept;
  TaskHeader* steal_work() noexcept;
  void run_task(TaskHeader* t) noexcept;
  // Runs `t` until it suspends or finishes. `claimed`: the caller already set kRunning (a task
  // no other thread can see yet).
  void poll(TaskHeader* t, bool claimed = false) noexcept;
  void park() noexcept;
  void park_once() noexcept;
  void unpark() noexcept;
  void push_local(TaskHeader* t) noexcept;
  void schedule_local(TaskHeader* t, bool use_lifo) noexcept;
  bool has_tasks() const noexcept { return lifo != nullptr || !queue.empty(); }
  void use_admission() {
    std::size_t credit = admission_credit.load(std::memory_order_relaxed);
    if (credit == 0) {
      credit = shared->reserve_admissions(kAdmissionBatch);
      admission_credit.store(credit, std::memory_order_relaxed);
    }
    admission_credit.store(credit - 1, std::memory_order_relaxed);
  }
  void return_admission() noexcept {
    const std::size_t credit = admission_credit.load(std::memory_order_relaxed) + 1;
    if (credit <= 2 * kAdmissionBatch) {
      admission_credit.store(credit, std::memory_order_relaxed);
      return;
    }
    // Credit first, then the shared count: a concurrent live_tasks() errs high, not low.
    admission_credit.store(credit - kAdmissionBatch, std::memory_order_relaxed);
    shared->live_count.fetch_sub(kAdmissionBatch, std::memory_order_relaxed);
  }
  void drain_finished_elsewhere() noexcept;
  std::uint32_t next_task_id() noexcept { return spawned++ * (shared->n + 1) + index; }
};

namespace {
thread_local constinit MtWorker* tls_mt_worker = nullptr;

// The tasks this thread holds in kRunning, innermost first: the one it resumed, those it is
// destroying, and those further up its stack (a step that aborts a suspended task destroys it
// there and then, and a branch's first step runs nested in its parent's). abort_now must not wait
// for one of them: it would wait for itself. A node lives in the frame that pushed it.
struct HeldHere {
  TaskHeader* task;
  HeldHere* outer;
};
thread_local constinit HeldHere* tls_held = nullptr;

class HoldHere {
 public:
  explicit HoldHere(TaskHeader* t) noexcept : node_{t, tls_held} { tls_held = &node_; }
  HoldHere(const HoldHere&) = delete;
  HoldHere& operator=(const HoldHere&) = delete;
  ~HoldHere() { tls_held = node_.outer; }

 private:
  HeldHere node_;
};

bool held_here(const TaskHeader* t) noexcept {
  for (const HeldHere* h = tls_held; h != nullptr; h = h->outer) {
    if (h->task == t) return true;
  }
  return false;
}

void destroy_held_here(TaskHeader* t) noexcept {
  HoldHere hold(t);
  detail::destroy_unfinished(t);
}

// For WorkerRings: the calling thread's worker index on the runtime `shared`, or past the end.
std::uint32_t current_worker_index(const void* shared) noexcept {
  const MtWorker* w = tls_mt_worker;
  return w != nullptr && w->shared == shared ? w->index : std::numeric_limits<std::uint32_t>::max();
}
}  // namespace

inline void MtShared::admit(TaskHeader* t, MtWorker* w) {
  if (w != nullptr) {
    w->use_admission();
    t->id = w->next_task_id();
    t->owner = w->index + 1;
    w->live.push(t);
    return;
  }
  reserve_admissions(1);
  t->id = outside_id();
  t->owner = 0;
  std::lock_guard lock(outside_lock);
  outside.push(t);
}

inline void MtShared::finish(TaskHeader* t, MtWorker* w, bool unpublished) noexcept {
  // kRunning and kScheduled may stay set: every transition looks at kComplete first.
  if (w == nullptr || t->owner != w->index + 1) {
    finish_elsewhere(t, w);
    return;
  }
  // At home, the common case, kept small enough to inline.
  w->live.unlink(t);
  w->return_admission();
  if (unpublished) {
    // The other reference is the JoinHandle's, held by the task running here now (the spawner,
    // or the parent aborting a branch): released later on this thread or, after the handle has
    // moved through a queue or a lock, on another.
    t->refs.store(t->refs.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    return;
  }
  t->release();
}

void MtShared::finish_elsewhere(TaskHeader* t, MtWorker* w) noexcept {
  if (t->owner == 0) {
    {
      std::lock_guard lock(outside_lock);
      outside.unlink(t);
    }
    if (w != nullptr) w->return_admission(); else live_count.fetch_sub(1, std::memory_order_relaxed);
    t->release();
    return;
  }
  // Away from home (finish() takes the home case, the destructor's sweep included, since it
  // passes the home worker). Only its home worker touches its list: hand it back, with the
  // scheduler's reference.
  MtWorker* home = workers[t->owner - 1].get();
  if (w != nullptr) {
    w->hand_back_later(t, t->owner - 1);
    return;
  }
  finished_pending.fetch_add(1, std::memory_order_relaxed);
  TaskHeader* head = home->finished_elsewhere.load(std::memory_order_relaxed);
  do {
    t->finished_next = head;
  } while (!home->finished_elsewhere.compare_exchange_weak(head, t, std::memory_order_release, std::memory_order_relaxed));
}

std::size_t MtShared::live_tasks() const noexcept {
  // Each term is read once, relaxed: a snapshot, exact once the counts stop moving.
  std::size_t credit = finished_pending.load(std::memory_order_relaxed);
  for (const auto& w : workers) credit += w->admission_credit.load(std::memory_order_relaxed);
  const std::size_t reserved = live_count.load(std::memory_order_relaxed);
  return reserved > credit ? reserved - credit : 0;
}

void MtWorker::hand_back_later(TaskHeader* t, std::uint32_t home) noexcept {
  HandBack& b = hand_back[home];
  t->finished_next = b.first;
  if (b.first == nullptr) b.last = t;
  b.first = t;
  if (++b.count == kHandBackBatch) flush_hand_back();
}

void MtWorker::flush_hand_back() noexcept {
  for (std::size_t i = 0; i < hand_back.size(); ++i) {
    HandBack& b = hand_back[i];
    if (b.count == 0) continue;
    // Counted as pending before the home can see them, so that live_tasks() never dips.
    shared->finished_pending.fetch_add(b.count, std::memory_order_relaxed);
    std::atomic<TaskHeader*>& list = shared->workers[i]->finished_elsewhere;
    TaskHeader* head = list.load(std::memory_order_relaxed);
    do {
      b.last->finished_next = head;
    } while (!list.compare_exchange_weak(head, b.first, std::memory_order_release, std::memory_order_relaxed));
    b = HandBack{};
  }
}

void MtWorker::drain_finished_elsewhere() noexcept {
  if (finished_elsewhere.load(std::memory_order_relaxed) == nullptr) return;
  TaskHeader* const first = finished_elsewhere.exchange(nullptr, std::memory_order_acquire);
  // Uncounted as pending before the admissions come back, so that live_tasks() does not dip.
  std::size_t n = 0;
  for (TaskHeader* t = first; t != nullptr; t = t->finished_next) ++n;
  shared->finished_pending.fetch_sub(n, std::memory_order_relaxed);
  for (TaskHeader *t = first, *next = nullptr; t != nullptr; t = next) {
    next = t->finished_next;
    live.unlink(t);
    return_admission();
    t->release();
  }
}

inline void MtShared::notify_parked() noexcept {
  // Orders the caller's push (a queue's tail, the injection queue) before the look at the idle
  // state, against the parking worker's update of the idle state before its look at the queues.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!notify_should_wake()) return;
  std::uint32_t id = 0;
  {
    std::lock_guard lock(idle_lock);
    if (!notify_should_wake() || sleepers.empty()) return;
    idle_state.fetch_add(kOneUnparked + 1, std::memory_order_seq_cst);
    id = sleepers.back();
    sleepers.pop_back();
  }
  workers[id]->unpark();
}

inline void MtShared::notify_if_work_pending(std::uint32_t except) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (i != except && !workers[i]->queue.empty()) {
      notify_parked();
      return;
    }
  }
  if (inject_len.load(std::memory_order_seq_cst) != 0) notify_parked();
}

void MtShared::drive(bool block) noexcept {
  {
    std::vector<IoRegistration*> gone;
    {
      std::lock_guard lock(released_lock);
      gone.swap(released);
    }
    for (IoRegistration* reg : gone) delete reg;
  }
  int timeout_ms = 0;
  if (block) {
    std::uint64_t deadline = min_next_tick();
    driver_deadline.store(deadline == 0 ? 1 : deadline, std::memory_order_seq_cst);
    // A timer added between the first look and the store above did not see us parked: look again.
    deadline = std::min(deadline, min_next_tick());
    if (deadline == kNever) {
      timeout_ms = -1;
    } else {
      const std::int64_t wait_ns = static_cast<std::int64_t>(deadline) * kNsPerTick - (std::chrono::steady_clock::now() - epoch).count();
      timeout_ms = wait_ns <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>((wait_ns + kNsPerTick - 1) / kNsPerTick, 1 << 30));
    }
  }
  epoll_event events[256];
  const int capacity = static_cast<int>(std::min<std::uint32_t>(options.max_events, 256));
  const int count = ::epoll_wait(epoll_fd, events, capacity, timeout_ms);
  driver_deadline.store(0, std::memory_order_seq_cst);
  for (int i = 0; i < count; ++i) {
    const std::uint64_t data = events[i].data.u64;
    if (data == 0) {
      std::uint64_t counter;
      [[maybe_unused]] ssize_t r = ::read(event_fd, &counter, sizeof counter);
      continue;
    }
    if (data & kRingTag) {
      rings->reap(static_cast<std::uint32_t>(data >> 1));
      continue;
    }
    detail::report_epoll_event(*static_cast<IoRegistration*>(events[i].data.ptr), events[i].events);
  }
  fire_timers();
}

// --- worker ---------------------------------------------------------------------------------

void MtWorker::run() noexcept {
  tls_mt_worker = this;
  RuntimeGuard guard(shared->context);
  auto busy_since = std::chrono::steady_clock::now();
  while (!shared->shutdown.load(std::memory_order_acquire)) {
    ++tick;
    if (tick % shared->options.event_interval == 0) maintenance();
    TaskHeader* t = next_task();
    if (t == nullptr && shared->rings) {
      // Out of work: what this worker's tasks queued goes to the kernel, in one batch. The
      // completions it reaps come back here, and only a second one wakes a sibling.
      collecting = true;
      shared->rings->flush(index);
      collecting = false;
      if (!searching && queue.size() > 1) shared->notify_parked();
      t = next_task();
    }
    if (t == nullptr) t = steal_work();
    if (t != nullptr) {
      run_task(t);
      continue;
    }
    bump(busy_ns, elapsed_ns(busy_since));
    park();
    busy_since = std::chrono::steady_clock::now();
  }
  flush_hand_back();  // the destructor takes what is left off the lists once the workers are joined
  bump(busy_ns, elapsed_ns(busy_since));
  tls_mt_worker = nullptr;
}

void MtWorker::maintenance() noexcept {
  flush_hand_back();
  drain_finished_elsewhere();
  collecting = true;
  shared->fire_timers();
  if (shared->rings) shared->rings->flush(index);
  // (With rings, the epoll set always has something: the other workers' rings, whose completions
  // wait for a reaper while those workers sleep.)
  if ((shared->rings || shared->io_registrations.load(std::memory_order_relaxed) != 0) && shared->driver_lock.try_lock()) {
    shared->drive(false);
    shared->driver_lock.unlock();
  }
  collecting = false;
  if (!searching && queue.size() > 1) shared->notify_parked();
}

TaskHeader* MtWorker::next_task() noexcept {
  if (tick % shared->options.global_queue_interval == 0 && shared->inject_len.load(std::memory_order_relaxed) != 0) {
    std::lock_guard lock(shared->inject_lock);
    if (!shared->inject.empty()) {
      TaskHeader* t = shared->inject.pop();
      shared->inject_len.store(shared->inject.size(), std::memory_order_relaxed);
      return t;
    }
  }
  if (lifo != nullptr) {
    if (lifo_runs < kMaxLifoRuns) {
      ++lifo_runs;
      return std::exchange(lifo, nullptr);
    }
    push_local(std::exchange(lifo, nullptr));
  }
  lifo_runs = 0;
  if (TaskHeader* t = queue.pop_front()) return t;
  return pop_inject_batch();
}

TaskHeader* MtWorker::pop_inject_batch() noexcept {
  if (shared->inject_len.load(std::memory_order_seq_cst) == 0) return nullptr;
  std::size_t taken = 0;
  {
    std::lock_guard lock(shared->inject_lock);
    const std::size_t available = shared->inject.size();
    // A fair share, so that other workers find some too; the local queue is empty here.
    const std::size_t want = std::min<std::size_t>(available / shared->n + 1, StealQueue::kCapacity / 2);
    while (taken < want && !shared->inject.empty()) batch[taken++] = shared->inject.pop();
    shared->inject_len.store(shared->inject.size(), std::memory_order_relaxed);
  }
  if (taken == 0) return nullptr;
  for (std::size_t i = 1; i < taken; ++i) push_local(batch[i]);
  return batch[0];
}

TaskHeader* MtWorker::steal_work() noexcept {
  if (!searching) {
    if (!shared->transition_to_searching()) return nullptr;
    searching = true;
  }
  const std::uint32_t n = shared->n;
  const auto start = static_cast<std::uint32_t>(rng.next() % n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t victim = (start + i) % n;
    if (victim == index) continue;
    std::uint32_t stolen = 0;
    if (TaskHeader* t = shared->workers[victim]->queue.steal_into(queue, stolen)) {
      bump(steals);
      bump(stolen_tasks, stolen);
      return t;
    }
  }
  return pop_inject_batch();
}

void MtWorker::run_task(TaskHeader* t) noexcept {
  if (searching) {
    searching = false;
    // The last searcher found work: there may be more, so another worker starts looking.
    if (shared->transition_from_searching()) shared->notify_parked();
  }
  poll(t);
}

void MtWorker::poll(TaskHeader* t, bool claimed) noexcept {
  std::uint32_t s = 0;
  if (!claimed) {
    s = t->state.load(std::memory_order_relaxed);
    while (!t->state.compare_exchange_weak(s, (s & ~kScheduled) | kRunning | kStarted, std::memory_order_acq_rel)) {
    }
    if (s & kRunning) {
      // Queued, and claimed meanwhile by abort_now on another thread, which destroys and finishes
      // it in place and leaves the queue's reference to drop, once the destruction is done (as
      // long as its destructors take).
      while (!t->is_complete()) std::this_thread::yield();
      t->release();
      return;
    }
  }
  if (s & kCancelled) {
    destroy_held_here(t);
    shared->finish(t, this);
    return;
  }
  TaskHeader* const saved_task = tls_current_task;
  TaskHeader* const saved_running = running;
  const bool saved_yield = yield_requested;  // a nested step (a branch's first) has its own
  tls_current_task = t;
  running = t;
  yield_requested = false;
  {
    HoldHere hold(t);
    t->resume_point.resume();
  }
  const bool yielded = yield_requested;
  tls_current_task = saved_task;
  running = saved_running;
  yield_requested = saved_yield;
  bump(tasks_run);
  // The task has suspended (or finished). Wakes and aborts that arrived while it ran only marked
  // it; deciding what that means and leaving the running state is one atomic step, so none is lost.
  s = t->state.load(std::memory_order_acquire);
  for (;;) {
    // A yield reads as a wake that arrived while it ran; the request itself is never stored.
    const std::uint32_t seen = yielded ? s | kNotified : s;
    if (seen & kComplete) {
      shared->finish(t, this, (seen & kUnpublished) != 0);
      return;
    }
    if (seen & kCancelled) {
      destroy_held_here(t);
      shared->finish(t, this);
      return;
    }
    if (seen & kNotified) {
      if (t->state.compare_exchange_weak(s, (s & ~(kRunning | kNotified | kUnpublished)) | kScheduled, std::memory_order_acq_rel)) {
        // Woken while running (a yield among others): behind the tasks already queued. It was
        // runnable work already, so an idle sibling is woken only if the idle state, read without
        // the fence, shows one; one that parked just now is seen by maintenance's fenced look
        // (every event_interval ticks). Tokio fences here on every yield.
        push_local(t);
        if (!searching && queue.size() > 1 && shared->maybe_idle()) shared->notify_parked();
        return;
      }
      continue;
    }
    if (t->state.compare_exchange_weak(s, s & ~(kRunning | kUnpublished), std::memory_order_acq_rel)) return;
  }
}

void MtWorker::push_local(TaskHeader* t) noexcept {
  const std::uint32_t spilled = queue.push_back(t, overflow);
  if (spilled != 0) {
    if (spilled > 1) bump(overflows);
    try {
      shared->push_inject(overflow, spilled);
    } catch (...) {
      // The injection queue could not grow (out of memory): nothing sensible is left to do.
      std::terminate();
    }
  }
}

void MtWorker::schedule_local(TaskHeader* t, bool use_lifo) noexcept {
  if (use_lifo) {
    // The previous occupant (woken earlier in the same run) moves to the queue.
    t = std::exchange(lifo, t);
    if (t == nullptr) return;
  }
  push_local(t);
  // The fence of notify_parked only when the idle state, read relaxed, shows an idle sibling. A
  // sibling parking at this very moment can be missed: the task is still run (here), and the
  // sibling is woken by the next push that sees it or by maintenance's fenced look (every
  // event_interval tasks). Every spawn from a task pushes the LIFO slot's previous task, so this
  // fence was about an eighth of spawn_join.
  if (!searching && !collecting && shared->maybe_idle()) shared->notify_parked();
}

void MtWorker::park() noexcept {
  flush_hand_back();
  drain_finished_elsewhere();
  if (has_tasks()) return;
  const bool last_searcher = shared->transition_to_parked(index, searching);
  searching = false;
  if (last_searcher) shared->notify_if_work_pending(index);
  bump(parks);
  for (;;) {
    park_once();
    if (shared->shutdown.load(std::memory_order_acquire)) return;
    std::lock_guard lock(shared->idle_lock);
    const auto it = std::find(shared->sleepers.begin(), shared->sleepers.end(), index);
    if (it == shared->sleepers.end()) {
      // notify_parked took us out and counted us as searching.
      searching = true;
      return;
    }
    if (has_tasks()) {
      // The driver (this thread) woke tasks into our own queue.
      shared->sleepers.erase(it);
      shared->idle_state.fetch_add(MtShared::kOneUnparked, std::memory_order_seq_cst);
      return;
    }
  }
}

void MtWorker::park_once() noexcept {
  std::uint32_t expected = kParkNotified;
  if (park_state.compare_exchange_strong(expected, kParkEmpty, std::memory_order_acq_rel)) return;
  if (shared->driver_lock.try_lock()) {
    expected = kParkEmpty;
    if (park_state.compare_exchange_strong(expected, kParkedDriver, std::memory_order_acq_rel)) {
      collecting = true;
      shared->drive(true);
      collecting = false;
      park_state.exchange(kParkEmpty, std::memory_order_acq_rel);
      shared->driver_lock.unlock();
      // Wakes from the driver went to this worker's queue: others may help.
      if (queue.size() > 1) shared->notify_parked();
      return;
    }
    park_state.store(kParkEmpty, std::memory_order_release);
    shared->driver_lock.unlock();
    return;
  }
  std::unique_lock lock(park_lock);
  expected = kParkEmpty;
  if (!park_state.compare_exchange_strong(expected, kParkedCondvar, std::memory_order_acq_rel)) {
    park_state.store(kParkEmpty, std::memory_order_release);
    return;
  }
  for (;;) {
    park_cv.wait(lock);
    expected = kParkNotified;
    if (park_state.compare_exchange_strong(expected, kParkEmpty, std::memory_order_acq_rel)) return;
  }
}

void MtWorker::unpark() noexcept {
  switch (park_state.exchange(kParkNotified, std::memory_order_acq_rel)) {
    case kParkedCondvar: {
      { std::lock_guard lock(park_lock); }
      park_cv.notify_one();
      break;
    }
    case kParkedDriver:
      shared->signal_driver();
      break;
    default:
      break;
  }
}

}  // namespace deja::detail

namespace deja {

using detail::MtWorker;
using detail::TaskHeader;

MultiThreadRuntime::MultiThreadRuntime(MultiThreadOptions options) : options_(options), shared_(std::make_unique<detail::MtShared>()) {
  if (options_.event_interval == 0) throw UsageError("deja: RuntimeOptions::event_interval must be at least 1");
  if (options_.global_queue_interval == 0) throw UsageError("deja: MultiThreadOptions::global_queue_interval must be at least 1");
  if (options_.max_events == 0) throw UsageError("deja: RuntimeOptions::max_events must be at least 1");
  std::size_t n = options_.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  if (n > 1024) throw UsageError("deja: MultiThreadOptions::workers is at most 1024");
  if (options_.io == IoBackend::kUring && (options_.uring_entries == 0 || options_.uring_entries > 32768)) {
    throw UsageError("deja: RuntimeOptions::uring_entries must be between 1 and 32768");
  }
  context_.scheduler = this;
  context_.time = this;
  context_.io = this;
  context_.entropy = this;
  context_.blocking = this;

  detail::MtShared& sh = *shared_;
  sh.rt = this;
  sh.context = &context_;
  sh.options = options_;
  sh.n = static_cast<std::uint32_t>(n);
  sh.epoch = std::chrono::steady_clock::now();
  sh.rng.seed(detail::os_seed());
  sh.idle_state.store(static_cast<std::uint64_t>(n) << 32, std::memory_order_relaxed);
  sh.sleepers.reserve(n);

  sh.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (sh.epoll_fd < 0) detail::throw_errno("deja: epoll_create1");
  sh.event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (sh.event_fd < 0) {
    ::close(sh.epoll_fd);
    detail::throw_errno("deja: eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the eventfd; registrations are never null
  if (::epoll_ctl(sh.epoll_fd, EPOLL_CTL_ADD, sh.event_fd, &ev) < 0) {
    ::close(sh.event_fd);
    ::close(sh.epoll_fd);
    detail::throw_errno("deja: epoll_ctl(eventfd)");
  }
  if (options_.io == IoBackend::kUring) {
    std::string why_not;
    sh.rings = detail::make_worker_rings(sh.n, options_.uring_entries, &detail::current_worker_index, shared_.get(), why_not);
    for (std::uint32_t i = 0; sh.rings && i < sh.n; ++i) {
      ev.events = EPOLLIN;  // level-triggered: a driver that finds the ring being reaped looks again
      ev.data.u64 = (std::uint64_t{i} << 1) | detail::kRingTag;
      if (::epoll_ctl(sh.epoll_fd, EPOLL_CTL_ADD, sh.rings->ring_fd(i), &ev) < 0) {
        why_not = std::string("epoll cannot watch an io_uring: ") + std::strerror(errno);
        sh.rings.reset();
      }
    }
    if (sh.rings) {
      backend_ = IoBackend::kUring;
      context_.uring = sh.rings->uring();
    } else {
      detail::report_uring_fallback(why_not);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    auto w = std::make_unique<MtWorker>();
    w->shared = shared_.get();
    w->index = static_cast<std::uint32_t>(i);
    w->hand_back.resize(n);
    w->rng.seed(sh.rng.next());
    sh.workers.push_back(std::move(w));
    sh.timers.push_back(std::make_unique<detail::TimerShard>());
  }
  for (auto& w : sh.workers) {
    MtWorker* worker = w.get();
    worker->thread = std::thread([worker] { worker->run(); });
  }
}

MultiThreadRuntime::~MultiThreadRuntime() {
  detail::MtShared& sh = *shared_;
  sh.shutdown.store(true, std::memory_order_release);
  for (auto& w : sh.workers) w->unpark();
  for (auto& w : sh.workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  sh.workers_joined.store(true, std::memory_order_release);
  // The queues go first, before any task is freed: an entry is a live task (the sweep below
  // destroys it) or a branch that abort_now destroyed in its queue, whose entry holds a reference.
  {
    auto drop = [](TaskHeader* t) {
      if (t->is_complete()) t->release();
    };
    for (auto& w : sh.workers) {
      while (TaskHeader* t = w->queue.pop_front()) drop(t);
      if (TaskHeader* t = std::exchange(w->lifo, nullptr)) drop(t);
    }
    std::lock_guard lock(sh.inject_lock);
    while (!sh.inject.empty()) drop(sh.inject.pop());
    sh.inject_len.store(0, std::memory_order_relaxed);
  }
  // Every unfinished task is destroyed at its suspension point, with this runtime current, since
  // awaiters' destructors talk to it. Destroying one can spawn or wake others: they are in the
  // live lists too, and go in later rounds.
  {
    RuntimeGuard guard(&context_);
    // The workers are joined: this thread stands in for each of them on its own list.
    for (auto& w : sh.workers) w->drain_finished_elsewhere();
    for (;;) {
      TaskHeader* t = nullptr;
      {
        std::lock_guard lock(sh.outside_lock);
        t = sh.outside.head;
      }
      for (std::size_t i = 0; t == nullptr && i < sh.workers.size(); ++i) t = sh.workers[i]->live.head;
      if (t == nullptr) break;
      if (!t->is_complete()) {
        t->state.fetch_or(detail::kRunning, std::memory_order_relaxed);
        detail::destroy_held_here(t);
      }
      sh.finish(t, t->owner == 0 ? nullptr : sh.workers[t->owner - 1].get());
    }
  }
  {
    std::lock_guard lock(sh.inject_lock);
    sh.inject.clear();
  }
  for (detail::IoRegistration* reg : sh.released) delete reg;
  sh.released.clear();
  context_.uring = nullptr;  // (the blocking pool, joined after this body, may still look)
  sh.rings.reset();          // every operation was completed or cancelled with its task
  ::close(sh.event_fd);
  ::close(sh.epoll_fd);
  // The blocking pool is joined after this body (it is declared after shared_), before shared_ goes.
  blocking_.shutdown();
}

std::size_t MultiThreadRuntime::workers() const noexcept { return shared_->n; }

std::size_t MultiThreadRuntime::live_tasks() const noexcept { return shared_->live_tasks(); }

MultiThreadMetrics MultiThreadRuntime::metrics() const {
  const detail::MtShared& sh = *shared_;
  MultiThreadMetrics m;
  m.workers = sh.n;
  m.live_tasks = sh.live_tasks();
  m.injection_queue_depth = sh.inject_len.load(std::memory_order_relaxed);
  for (const auto& shard : sh.timers) m.timers += shard->count.load(std::memory_order_relaxed);
  m.per_worker.reserve(sh.n);
  for (const auto& w : sh.workers) {
    MultiThreadMetrics::Worker x;
    x.local_queue_depth = w->queue.size();
    x.tasks_run = w->tasks_run.load(std::memory_order_relaxed);
    x.steals = w->steals.load(std::memory_order_relaxed);
    x.stolen_tasks = w->stolen_tasks.load(std::memory_order_relaxed);
    x.parks = w->parks.load(std::memory_order_relaxed);
    x.busy_ns = w->busy_ns.load(std::memory_order_relaxed);
    x.overflows = w->overflows.load(std::memory_order_relaxed);
    m.per_worker.push_back(x);
  }
  return m;
}

namespace {
MtWorker* worker_of(detail::MtShared* shared) noexcept {
  MtWorker* w = detail::tls_mt_worker;
  return w != nullptr && w->shared == shared ? w : nullptr;
}
}  // namespace

// --- scheduling -----------------------------------------------------------------------------

void MultiThreadRuntime::spawn(TaskHeader* t) {
  MtWorker* w = worker_of(shared_.get());
  shared_->admit(t, w);
  // Nobody else can see the task yet (its JoinHandle is not returned); the queue push publishes it.
  t->state.store(t->state.load(std::memory_order_relaxed) | detail::kScheduled, std::memory_order_relaxed);
  if (w != nullptr) {
    // Spawned by the running task: the LIFO slot, as a wake is (Tokio does the same). Only a
    // task it displaces to the queue wakes an idle worker, so a chain of spawns (each task spawns
    // the next and ends) stays on this worker instead of handing every link to a sibling.
    w->schedule_local(t, w->running != nullptr);
    return;
  }
  shared_->push_inject(&t, 1);
  shared_->notify_parked();
}

void MultiThreadRuntime::spawn_inline(TaskHeader* t) {
  MtWorker* w = worker_of(shared_.get());
  if (w == nullptr) {
    spawn(t);
    return;
  }
  shared_->admit(t, w);
  // Nobody else can see the task yet (its JoinHandle is not returned): a plain store claims it.
  t->state.store(t->state.load(std::memory_order_relaxed) | detail::kRunning | detail::kStarted | detail::kUnpublished,
                 std::memory_order_relaxed);
  w->poll(t, true);
}

void MultiThreadRuntime::wake(TaskHeader* t) noexcept {
  std::uint32_t s = t->state.load(std::memory_order_relaxed);
  for (;;) {
    if (s & (detail::kComplete | detail::kScheduled)) return;
    if (s & detail::kRunning) {
      // Its worker requeues it once it has suspended.
      if ((s & detail::kNotified) || t->state.compare_exchange_weak(s, s | detail::kNotified, std::memory_order_acq_rel)) return;
      continue;
    }
    if (t->state.compare_exchange_weak(s, s | detail::kScheduled, std::memory_order_acq_rel)) break;
  }
  if (MtWorker* w = worker_of(shared_.get())) {
    // Woken by the running task: it runs next, here (the LIFO slot). Woken by a timer or I/O
    // between tasks: the queue.
    w->schedule_local(t, w->running != nullptr);
    return;
  }
  shared_->push_inject(&t, 1);
  shared_->notify_parked();
}

void MultiThreadRuntime::yield_current(TaskHeader* t) noexcept {
  MtWorker* w = worker_of(shared_.get());
  if (w != nullptr && w->running == t) {
    w->yield_requested = true;
    return;
  }
  wake(t);
}

void MultiThreadRuntime::abort(TaskHeader* t) noexcept { abort_task(t, false); }

void MultiThreadRuntime::abort_branch(TaskHeader* t) noexcept { abort_task(t, true); }

void MultiThreadRuntime::abort_task(TaskHeader* t, bool branch) noexcept {
  MtWorker* w = worker_of(shared_.get());
  // A branch's parent holds its only handle: claimed, it completes and is released (when its
  // home is this worker) without atomic steps (kUnpublished).
  const std::uint32_t claim = detail::kCancelled | detail::kRunning | (branch ? detail::kUnpublished : 0u);
  std::uint32_t s = t->state.load(std::memory_order_relaxed);
  for (;;) {
    if (s & (detail::kComplete | detail::kCancelled)) return;
    if (s & (detail::kRunning | detail::kScheduled)) {
      // Whoever runs or dequeues it next destroys it.
      if (t->state.compare_exchange_weak(s, s | detail::kCancelled, std::memory_order_acq_rel)) return;
      continue;
    }
    if (w != nullptr) {
      // Suspended and idle: claim it as running (wakes then only mark it) and destroy it now.
      if (t->state.compare_exchange_weak(s, s | claim, std::memory_order_acq_rel)) {
        detail::destroy_held_here(t);
        shared_->finish(t, w, branch);
        return;
      }
      continue;
    }
    if (t->state.compare_exchange_weak(s, s | detail::kCancelled | detail::kScheduled, std::memory_order_acq_rel)) break;
  }
  shared_->push_inject(&t, 1);
  shared_->notify_parked();
}

void MultiThreadRuntime::abort_now(TaskHeader* t) noexcept {
  detail::MtShared& sh = *shared_;
  MtWorker* w = worker_of(&sh);
  // Once the destructor has joined the workers its thread stands in for them, and nothing runs.
  const bool joined = sh.workers_joined.load(std::memory_order_acquire);
  if ((w == nullptr && !joined) || detail::held_here(t)) {
    abort(t);
    return;
  }
  // Acquire: a branch seen complete here finished on another thread, and the caller frees what
  // it used next.
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  for (;;) {
    if (s & detail::kComplete) return;
    if (s & detail::kRunning) {
      // Running on another worker: it is destroyed once its current step ends, waited for below.
      if ((s & detail::kCancelled) || t->state.compare_exchange_weak(s, s | detail::kCancelled, std::memory_order_acq_rel)) break;
      continue;
    }
    // Suspended, or queued: claim it as running, destroy it and finish it here (it leaves the live
    // tasks now). Wakes then only mark it. A queued one keeps a reference for its queue entry: a
    // worker that dequeues it finds it claimed and only releases that (MtWorker::poll). Once the
    // workers are joined the queues are gone (the destructor emptied them), so none is kept.
    if (t->state.compare_exchange_weak(s, s | detail::kCancelled | detail::kRunning, std::memory_order_acq_rel)) {
      if ((s & detail::kScheduled) && !joined) t->retain();
      detail::destroy_held_here(t);
      sh.finish(t, w != nullptr || t->owner == 0 ? w : sh.workers[t->owner - 1].get());
      return;
    }
  }
  if (joined) return;  // (unreachable: nothing runs once the workers are joined)
  // A step is short: tasks do not block. Yielding is a system call, which also lets io_uring
  // post this thread's completions meanwhile. The bound turns a cycle (two tasks each dropping
  // the other's parent at once) into a clear failure rather than a hang.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!t->is_complete()) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fputs("deja: a combinator's branch running on another worker did not end its step within 60 s of its "
                 "parent being destroyed (a task blocking its worker, or two tasks on two workers each destroying "
                 "the other's parent)\n", stderr);
      std::abort();
    }
    std::this_thread::yield();
  }
}

void MultiThreadRuntime::wait_for(TaskHeader* t) {
  struct BlockOnWaiter : detail::Waiter {
    std::atomic<bool> done{false};
  } waiter;
  waiter.notify_fn = [](detail::Waiter* base) noexcept {
    auto* w = static_cast<BlockOnWaiter*>(base);
    w->done.store(true, std::memory_order_release);
    w->done.notify_one();
  };
  if (!detail::register_join_waiter(t, &waiter)) return;
  while (!waiter.done.load(std::memory_order_acquire)) waiter.done.wait(false, std::memory_order_acquire);
  // The completer may still be inside notify_fn, touching `waiter`: wait until it has left.
  while (t->state.load(std::memory_order_acquire) & detail::kJoinNotifying) std::this_thread::yield();
}

// --- I/O ------------------------------------------------------------------------------------

detail::IoRegistration* MultiThreadRuntime::register_fd(int fd) {
  detail::MtShared& sh = *shared_;
  if (sh.io_registrations.fetch_add(1, std::memory_order_relaxed) >= options_.max_io_registrations) {
    sh.io_registrations.fetch_sub(1, std::memory_order_relaxed);
    throw CapacityExceeded("deja: the runtime's I/O registration limit (RuntimeOptions::max_io_registrations) is reached");
  }
  auto reg = std::make_unique<detail::IoRegistration>();
  reg->fd = fd;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = reg.get();
  if (::epoll_ctl(sh.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    sh.io_registrations.fetch_sub(1, std::memory_order_relaxed);
    detail::throw_errno("deja: epoll_ctl(ADD)");
  }
  return reg.release();
}

void MultiThreadRuntime::deregister(detail::IoRegistration* reg) noexcept {
  detail::MtShared& sh = *shared_;
  ::epoll_ctl(sh.epoll_fd, EPOLL_CTL_DEL, reg->fd, nullptr);
  {
    std::lock_guard lock(reg->lock);
    while (detail::Waiter* w = reg->readers.pop_front()) w->notify();
    while (detail::Waiter* w = reg->writers.pop_front()) w->notify();
  }
  sh.io_registrations.fetch_sub(1, std::memory_order_relaxed);
  try {
    std::lock_guard lock(sh.released_lock);
    sh.released.push_back(reg);
  } catch (...) {
    std::terminate();  // out of memory in a noexcept path
  }
}

// --- time -----------------------------------------------------------------------------------

Instant MultiThreadRuntime::now() noexcept {
  return Instant(std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now().time_since_epoch()));
}

void MultiThreadRuntime::add_timer(detail::TimerNode& node) {
  detail::MtShared& sh = *shared_;
  const std::int64_t epoch_ns = std::chrono::duration_cast<Duration>(sh.epoch.time_since_epoch()).count();
  const std::int64_t when_ns = node.when.time_since_epoch().count();
  std::uint64_t tick = 0;
  if (when_ns > epoch_ns) {
    // Round up: a timer never fires before its deadline.
    const auto since = static_cast<std::uint64_t>(when_ns - epoch_ns);
    tick = since / detail::kNsPerTick + (since % detail::kNsPerTick != 0);
  }
  MtWorker* w = worker_of(shared_.get());
  node.shard = w ? w->index : 0;
  detail::TimerShard& shard = *sh.timers[node.shard];
  {
    std::lock_guard lock(shard.lock);
    shard.wheel.insert(node, tick);
    node.armed = true;
    shard.count.store(shard.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // writers hold the lock
    if (tick < shard.next_tick.load(std::memory_order_relaxed)) shard.next_tick.store(tick, std::memory_order_seq_cst);
  }
  // A worker asleep in the driver with a later wake-up must look again.
  std::uint64_t parked_until = sh.driver_deadline.load(std::memory_order_seq_cst);
  if (parked_until != 0 && tick < parked_until && sh.driver_deadline.compare_exchange_strong(parked_until, 0, std::memory_order_seq_cst)) {
    sh.signal_driver();
  }
}

// A sleep of at least one tick was not due a moment ago: it is armed without a second clock read
// (which costs as much as the rest of arming it). Awaited late, it fires at the next turn.
bool MultiThreadRuntime::add_timer_unless_due(detail::TimerNode& node, Duration lead) {
  if (lead.count() < detail::kNsPerTick && node.when <= now()) return false;
  add_timer(node);
  return true;
}

void MultiThreadRuntime::cancel_timer(detail::TimerNode& node) noexcept {
  detail::TimerShard& shard = *shared_->timers[node.shard];
  std::lock_guard lock(shard.lock);
  if (!node.armed) return;
  shard.wheel.remove(node);
  node.armed = false;
  shard.count.store(shard.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

// --- entropy and blocking -------------------------------------------------------------------

std::uint64_t MultiThreadRuntime::next_u64() noexcept {
  if (MtWorker* w = worker_of(shared_.get())) return w->rng.next();
  std::lock_guard lock(shared_->rng_lock);
  return shared_->rng.next();
}

void MultiThreadRuntime::execute(std::function<void()> job) {
  blocking_.execute(std::move(job));
}

}  // namespace deja
