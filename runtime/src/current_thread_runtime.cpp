// The current-thread production runtime: run loop, epoll reactor, timer wheel driver.
#include "deja/current_thread_runtime.hpp"

#include <sys/random.h>

#include <cerrno>
#include <system_error>

namespace deja {

namespace {

using detail::TaskHeader;

constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr std::int64_t kNsPerTick = 1'000'000;  // the wheel's resolution: 1 ms

}  // namespace

CurrentThreadRuntime::CurrentThreadRuntime(RuntimeOptions options)
    : options_(options), tasks_(options.max_tasks), epoch_(std::chrono::steady_clock::now()), wheel_(0) {
  if (options_.event_interval == 0) throw UsageError("deja: RuntimeOptions::event_interval must be at least 1");
  if (options_.max_events == 0) throw UsageError("deja: RuntimeOptions::max_events must be at least 1");
  context_.scheduler = this;
  context_.time = this;
  context_.io = this;
  context_.entropy = this;
  context_.blocking = this;

  std::uint64_t seed = 0;
  if (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
    seed = static_cast<std::uint64_t>(epoch_.time_since_epoch().count());
  }
  for (auto& word : rng_) word = splitmix64(seed);

  if (options_.io == IoBackend::kUring) {
    if (options_.uring_entries == 0 || options_.uring_entries > 32768) {
      throw UsageError("deja: RuntimeOptions::uring_entries must be between 1 and 32768");
    }
    std::string why_not;
    reactor_ = detail::make_uring_reactor(options_.uring_entries, why_not);
    if (reactor_) {
      backend_ = IoBackend::kUring;
      context_.uring = reactor_->uring();
    } else {
      detail::report_uring_fallback(why_not);
    }
  }
  if (!reactor_) reactor_ = detail::make_epoll_reactor(options_.max_events);
}

CurrentThreadRuntime::~CurrentThreadRuntime() {
  shutdown();
}

// --- scheduling -----------------------------------------------------------------------------

void CurrentThreadRuntime::spawn(TaskHeader* t) {
  if (!on_owner_thread()) {
    std::lock_guard lock(remote_lock_);
    remote_.push_back({t, RemoteOp::kSpawn});
    signal_remote();
    return;
  }
  tasks_.admit(t);
  detail::LocalTasks::schedule_new(t);
  ready_.push(t);
}

void CurrentThreadRuntime::make_ready(TaskHeader* t) {
  if (tasks_.make_ready(t)) ready_.push(t);
}

void CurrentThreadRuntime::spawn_inline(TaskHeader* t) {
  if (!on_owner_thread()) {
    spawn(t);
    return;
  }
  tasks_.admit(t);
  if (tasks_.run_new(t)) ready_.push(t);
}

void CurrentThreadRuntime::wake(TaskHeader* t) noexcept {
  if (!on_owner_thread()) {
    t->retain();
    {
      std::lock_guard lock(remote_lock_);
      remote_.push_back({t, RemoteOp::kWake});
    }
    signal_remote();
    return;
  }
  make_ready(t);
}

void CurrentThreadRuntime::yield_current(TaskHeader* t) noexcept {
  // Its tasks run only on the owner's thread, inside tasks_.run.
  if (on_owner_thread()) {
    tasks_.request_yield();
    return;
  }
  wake(t);
}

void CurrentThreadRuntime::abort(TaskHeader* t) noexcept {
  if (!on_owner_thread()) {
    t->retain();
    {
      std::lock_guard lock(remote_lock_);
      remote_.push_back({t, RemoteOp::kAbort});
    }
    signal_remote();
    return;
  }
  if (tasks_.abort(t)) ready_.push(t);
}

void CurrentThreadRuntime::abort_branch(TaskHeader* t) noexcept {
  if (!on_owner_thread()) {
    abort(t);
    return;
  }
  if (tasks_.abort(t, true)) ready_.push(t);
}

void CurrentThreadRuntime::abort_now(TaskHeader* t) noexcept {
  if (!on_owner_thread()) {
    abort(t);
    return;
  }
  if (tasks_.abort_now(t)) ready_.push(t);
}

void CurrentThreadRuntime::run_until(TaskHeader* root) {
  for (;;) {
    for (std::uint32_t budget = options_.event_interval; budget != 0 && !ready_.empty(); --budget) {
      TaskHeader* t = ready_.pop();
      if (tasks_.run(t)) ready_.push(t);
      if (root->is_complete()) return;
    }
    if (root->is_complete()) return;
    if (!ready_.empty()) {
      // Fairness: between batches, look at I/O and timers without blocking. The syscall is
      // skipped when nothing could have arrived.
      if (reactor_->has_io() || remote_pending_.load(std::memory_order_acquire)) turn(0);
      else fire_timers();
      continue;
    }
    int timeout_ms = -1;
    if (auto next = wheel_.next_deadline()) {
      const std::int64_t deadline_ns = static_cast<std::int64_t>(*next) * kNsPerTick;
      const std::int64_t elapsed_ns = (std::chrono::steady_clock::now() - epoch_).count();
      const std::int64_t wait_ns = deadline_ns - elapsed_ns;
      timeout_ms = wait_ns <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>((wait_ns + kNsPerTick - 1) / kNsPerTick, 1 << 30));
    }
    turn(timeout_ms);
  }
}

// --- reactor --------------------------------------------------------------------------------

void CurrentThreadRuntime::turn(int timeout_ms) {
  if (remote_pending_.load(std::memory_order_acquire)) {
    drain_remote();
    if (!ready_.empty()) timeout_ms = 0;
  }
  if (reactor_->poll(timeout_ms)) drain_remote();
  fire_timers();
}

void CurrentThreadRuntime::signal_remote() noexcept {
  if (!remote_pending_.exchange(true, std::memory_order_acq_rel)) reactor_->notify();
}

void CurrentThreadRuntime::drain_remote() {
  std::vector<RemoteOp> ops;
  {
    std::lock_guard lock(remote_lock_);
    remote_pending_.store(false, std::memory_order_release);
    ops.swap(remote_);
  }
  for (const RemoteOp& op : ops) {
    switch (op.kind) {
      case RemoteOp::kWake:
        wake(op.task);
        op.task->release();
        break;
      case RemoteOp::kAbort:
        abort(op.task);
        op.task->release();
        break;
      case RemoteOp::kSpawn:
        try {
          tasks_.admit(op.task);
          make_ready(op.task);
        } catch (const CapacityExceeded&) {
          // The spawner is on another thread and already has its handle: the task completes as
          // cancelled, which is what awaiting that handle reports.
          detail::destroy_unfinished(op.task);
          op.task->release();  // the scheduler's reference
        }
        break;
    }
  }
}

detail::IoRegistration* CurrentThreadRuntime::register_fd(int fd) {
  if (io_registrations_ >= options_.max_io_registrations) {
    throw CapacityExceeded("deja: the runtime's I/O registration limit (RuntimeOptions::max_io_registrations) is reached");
  }
  detail::IoRegistration* reg = reactor_->register_fd(fd);
  ++io_registrations_;
  return reg;
}

void CurrentThreadRuntime::deregister(detail::IoRegistration* reg) noexcept {
  reactor_->deregister(reg);
  --io_registrations_;
}

// --- time -----------------------------------------------------------------------------------

Instant CurrentThreadRuntime::now() noexcept {
  return Instant(std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now().time_since_epoch()));
}

std::uint64_t CurrentThreadRuntime::now_tick() noexcept {
  const std::int64_t ns = (std::chrono::steady_clock::now() - epoch_).count();
  return ns <= 0 ? 0 : static_cast<std::uint64_t>(ns / kNsPerTick);
}

void CurrentThreadRuntime::add_timer(detail::TimerNode& node) {
  const std::int64_t epoch_ns = std::chrono::duration_cast<Duration>(epoch_.time_since_epoch()).count();
  const std::int64_t when_ns = node.when.time_since_epoch().count();
  std::uint64_t tick = 0;
  if (when_ns > epoch_ns) {
    // Round up: a timer never fires before its deadline.
    const auto since = static_cast<std::uint64_t>(when_ns - epoch_ns);
    tick = since / kNsPerTick + (since % kNsPerTick != 0);
  }
  wheel_.insert(node, tick);
  node.armed = true;
  ++timers_;
}

// A sleep of at least one tick was not due a moment ago: it is armed without a second clock read
// (which costs as much as the rest of arming it). Awaited late, it fires at the next turn.
bool CurrentThreadRuntime::add_timer_unless_due(detail::TimerNode& node, Duration lead) {
  if (lead.count() < kNsPerTick && node.when <= now()) return false;
  add_timer(node);
  return true;
}

void CurrentThreadRuntime::cancel_timer(detail::TimerNode& node) noexcept {
  if (!node.armed) return;
  wheel_.remove(node);
  node.armed = false;
  --timers_;
}

void CurrentThreadRuntime::fire_timers() {
  if (timers_ == 0) return;
  wheel_.advance(now_tick(), [this](detail::TimerEntry& e) {
    auto& node = static_cast<detail::TimerNode&>(e);
    node.armed = false;
    --timers_;
    node.fire(&node);
  });
}

// --- entropy --------------------------------------------------------------------------------

std::uint64_t CurrentThreadRuntime::next_u64() noexcept {
  const std::uint64_t result = rotl(rng_[1] * 5, 7) * 9;
  const std::uint64_t t = rng_[1] << 17;
  rng_[2] ^= rng_[0];
  rng_[3] ^= rng_[1];
  rng_[1] ^= rng_[2];
  rng_[0] ^= rng_[3];
  rng_[2] ^= t;
  rng_[3] = rotl(rng_[3], 45);
  return result;
}

// --- shutdown -------------------------------------------------------------------------------

void CurrentThreadRuntime::shutdown() noexcept {
  RuntimeGuard guard(&context_);
  // Tasks spawned or woken from other threads are taken in first, so nothing is left behind.
  try {
    drain_remote();
  } catch (...) {
  }
  while (TaskHeader* t = tasks_.newest()) {
    // Destroying a frame can wake or spawn others; they are destroyed in later rounds.
    drop_ready_queue();
    tasks_.destroy(t);
  }
  drop_ready_queue();
}

void CurrentThreadRuntime::drop_ready_queue() noexcept {
  while (!ready_.empty()) detail::LocalTasks::drop_queued(ready_.pop());
}

void CurrentThreadRuntime::execute(std::function<void()> job) { blocking_.execute(std::move(job)); }

}  // namespace deja
