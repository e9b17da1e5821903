// The simulator's runtime: the scheduling, time and entropy seams implemented over one decision
// source, with a hashed trace of every event.
#include "deja/sim/simulator.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <limits>
#include <memory>

#include "deja/context.hpp"
#include "deja/detail/local_tasks.hpp"
#include "deja/detail/timer_wheel.hpp"
#include "deja/random.hpp"
#include "deja/scheduler.hpp"
#include "deja/sim/replay_token.hpp"
#include "deja/spawn.hpp"

namespace deja::sim {

namespace {

using detail::TaskHeader;

// Virtual time starts at a fixed instant, the same in every run.
constexpr Instant kEpoch{std::chrono::seconds(1'000'000)};

std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 29);
}

std::uint64_t hash_text(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

std::string self_program() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("<program>");
}

enum class EventKind : std::uint8_t { kSpawn, kRun, kComplete, kTimerFire, kDecision, kLog, kAbort };

const char* kind_name(EventKind k) noexcept {
  switch (k) {
    case EventKind::kSpawn: return "spawn";
    case EventKind::kRun: return "run";
    case EventKind::kComplete: return "complete";
    case EventKind::kTimerFire: return "timer";
    case EventKind::kDecision: return "decision";
    case EventKind::kLog: return "log";
    case EventKind::kAbort: return "abort";
  }
  return "?";
}

struct Event {
  std::uint64_t step;
  std::int64_t at_ns;  // virtual time since the epoch
  EventKind kind;
  std::uint32_t task;
  std::uint64_t a;
  std::uint64_t b;
};

}  // namespace

class Simulator final : public Scheduler, public TimeDriver, public Entropy {
 public:
  explicit Simulator(const Config& config)
      : config_(config), tasks_(std::numeric_limits<std::size_t>::max()), seeded_(config.seed) {
    if (config.source) source_ = config.source;
    else if (config.replay) {
      replay_.emplace(*config.replay);
      source_ = &*replay_;
    } else {
      source_ = &seeded_;
    }
    context_.scheduler = this;
    context_.time = this;
    context_.io = nullptr;
    context_.entropy = this;
    if (config_.strategy == Strategy::kPct) {
      if (config_.pct_depth == 0) throw UsageError("deja::sim: pct_depth must be at least 1");
      for (std::uint32_t i = 1; i < config_.pct_depth; ++i) {
        change_points_.push_back(1 + choose(std::max<std::uint64_t>(config_.pct_steps, 2)));
      }
    }
  }

  Outcome run(std::function<Task<void>()> main) {
    RuntimeGuard guard(&context_);
    Simulator* saved = tls_simulator;
    tls_simulator = this;
    JoinHandle<void> root;
    try {
      root = detail::spawn_on(static_cast<Scheduler*>(this), main(), false);
      loop(root.cell());
      if (failure_.empty() && root.is_finished()) {
        try {
          root.take_finished();
        } catch (const std::exception& e) {
          fail(std::string("the main task threw: ") + e.what());
        } catch (...) {
          fail("the main task threw a non-standard exception");
        }
      }
    } catch (const std::exception& e) {
      fail(std::string("the simulation could not start the main task: ") + e.what());
    }
    root = JoinHandle<void>();
    shutdown();
    tls_simulator = saved;
    return outcome();
  }

  // --- Scheduler --------------------------------------------------------------------------
  void spawn(TaskHeader* t) override {
    tasks_.admit(t);
    t->owner = current_owner();
    record(EventKind::kSpawn, t->id, detail::current_task() ? detail::current_task()->id : 0, 0);
    if (config_.strategy == Strategy::kPct) {
      if (priorities_.size() <= t->id) priorities_.resize(t->id + 1);
      // Distinct random priorities above every change-point priority.
      priorities_[t->id] = (choose(1u << 30) << 20) + (t->id & 0xFFFFF) + config_.pct_depth + 1;
    }
    make_ready(t);
  }
  void spawn_inline(TaskHeader* t) override { spawn(t); }
  void wake(TaskHeader* t) noexcept override { make_ready(t); }
  void abort(TaskHeader* t) noexcept override {
    record(EventKind::kAbort, t->id, 0, 0);
    if (tasks_.abort(t)) ready_.push_back(t);
  }
  void on_unobserved_exception(std::exception_ptr e) noexcept override {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      fail(std::string("a task threw and nobody observed it: ") + ex.what());
    } catch (...) {
      fail("a task threw a non-standard exception and nobody observed it");
    }
  }
  void on_assertion_failed(const std::string& what) noexcept override { fail(what); }

  // --- TimeDriver -------------------------------------------------------------------------
  Instant now() noexcept override { return kEpoch + Duration(static_cast<std::int64_t>(wheel_.now())); }
  void add_timer(detail::TimerNode& node) override {
    const std::int64_t ns = (node.when - kEpoch).count();
    wheel_.insert(node, ns <= 0 ? 0 : static_cast<std::uint64_t>(ns));
    node.armed = true;
  }
  void cancel_timer(detail::TimerNode& node) noexcept override {
    if (!node.armed) return;
    wheel_.remove(node);
    node.armed = false;
  }

  // --- Entropy ----------------------------------------------------------------------------
  std::uint64_t next_u64() noexcept override { return choose(0); }
  bool buggify(double p) noexcept override {
    if (p <= 0.0) return false;
    if (p >= 1.0) return true;
    return static_cast<double>(choose(1u << 24)) < p * static_cast<double>(1u << 24);
  }

  void log_line(std::string_view line) {
    record(EventKind::kLog, detail::current_task() ? detail::current_task()->id : 0, hash_text(line), 0);
    if (logs_.size() == config_.trace_capacity) logs_.pop_front();
    logs_.emplace_back(std::string(line));
  }

  static thread_local Simulator* tls_simulator;

 private:
  std::uint64_t choose(std::uint64_t bound) noexcept {
    if (bound == 1) return 0;
    const std::uint64_t v = source_->next(bound);
    for (std::uint64_t x = v; ; x >>= 7) {
      if (x < 0x80) {
        decision_log_.push_back(static_cast<std::uint8_t>(x));
        break;
      }
      decision_log_.push_back(static_cast<std::uint8_t>(x | 0x80));
    }
    ++decision_count_;
    record(EventKind::kDecision, detail::current_task() ? detail::current_task()->id : 0, bound, v);
    return v;
  }

  std::uint32_t current_owner() const noexcept {
    TaskHeader* t = detail::current_task();
    return t ? t->owner : 0;
  }

  void make_ready(TaskHeader* t) {
    if (tasks_.make_ready(t)) ready_.push_back(t);
  }

  void record(EventKind kind, std::uint32_t task, std::uint64_t a, std::uint64_t b) noexcept {
    const auto at_ns = static_cast<std::int64_t>(wheel_.now());
    hash_ = mix(mix(mix(mix(mix(hash_, steps_), static_cast<std::uint64_t>(at_ns)), static_cast<std::uint64_t>(kind)), task), mix(a, b));
    if (config_.trace_capacity == 0) return;
    // The ring grows to its capacity, then overwrites. (Fields are stored one by one: g++ 12 warns
    // falsely of a dangling pointer when a local Event is pushed.)
    if (trace_.size() < config_.trace_capacity) trace_.emplace_back();
    Event& slot = trace_[trace_next_ % config_.trace_capacity];  // while growing, the new back()
    slot.step = steps_;
    slot.at_ns = at_ns;
    slot.kind = kind;
    slot.task = task;
    slot.a = a;
    slot.b = b;
    ++trace_next_;
  }

  std::size_t pick() {
    if (config_.strategy == Strategy::kRandomWalk) return static_cast<std::size_t>(choose(ready_.size()));
    std::size_t best = 0;
    for (std::size_t i = 1; i < ready_.size(); ++i) {
      if (priorities_[ready_[i]->id] > priorities_[ready_[best]->id]) best = i;
    }
    return best;
  }

  void loop(TaskHeader* root) {
    const auto max_ticks = static_cast<std::uint64_t>(config_.max_virtual_time.count());
    while (failure_.empty() && !root->is_complete()) {
      if (!ready_.empty()) {
        if (steps_ >= config_.max_steps) {
          fail("step limit reached (" + std::to_string(config_.max_steps) + " task steps): a livelock or an endless loop?");
          return;
        }
        const std::size_t i = pick();
        TaskHeader* t = ready_[i];
        ready_[i] = ready_.back();
        ready_.pop_back();
        ++steps_;
        record(EventKind::kRun, t->id, 0, 0);
        const std::uint32_t id = t->id;
        if (tasks_.run(t)) ready_.push_back(t);
        if (config_.strategy == Strategy::kPct) lower_priority_at_change_point(id);
        continue;
      }
      const auto next = wheel_.next_deadline();
      if (!next) {
        fail(deadlock_report());
        return;
      }
      if (*next > max_ticks) {
        fail("virtual time limit reached (" + std::to_string(config_.max_virtual_time.count() / 1'000'000'000) + " s of simulated time)");
        return;
      }
      fire_timers(*next);
    }
  }

  void lower_priority_at_change_point(std::uint32_t id) {
    for (std::size_t i = 0; i < change_points_.size(); ++i) {
      if (change_points_[i] == steps_ && id < priorities_.size()) priorities_[id] = i + 1;
    }
  }

  void fire_timers(std::uint64_t tick) {
    due_.clear();
    wheel_.advance(tick, [this](detail::TimerEntry& e) { due_.push_back(static_cast<detail::TimerNode*>(&e)); });
    // Timers due at the same instant fire in an order chosen by decision (Fisher-Yates).
    for (std::size_t i = due_.size(); i > 1; --i) std::swap(due_[i - 1], due_[static_cast<std::size_t>(choose(i))]);
    for (detail::TimerNode* n : due_) {
      n->armed = false;
      record(EventKind::kTimerFire, n->task ? n->task->id : 0, tick, 0);
      n->fire(n);
    }
  }

  std::string deadlock_report() const {
    std::string r = "deadlock: nothing is runnable, no timer is pending, and the main task has not finished. Blocked tasks:";
    std::vector<const TaskHeader*> blocked;
    for (const TaskHeader* t = tasks_.newest(); t; t = t->live_next) blocked.push_back(t);
    std::reverse(blocked.begin(), blocked.end());  // oldest first
    for (const TaskHeader* t : blocked) {
      r += "\n  task #" + std::to_string(t->id) + " waits on " + (t->waiting_on ? t->waiting_on : "(not started)");
    }
    return r;
  }

  void fail(std::string why) noexcept {
    if (failure_.empty()) failure_ = std::move(why);
  }

  void shutdown() noexcept {
    while (TaskHeader* t = tasks_.newest()) {
      ready_.clear();
      tasks_.destroy(t);
    }
    ready_.clear();
  }

  Outcome outcome() {
    Outcome o;
    o.failure_ = failure_;
    o.trace_hash_ = hash_;
    o.decision_log_ = std::move(decision_log_);
    o.decision_count_ = decision_count_;
    o.steps_ = steps_;
    o.virtual_elapsed_ = Duration(static_cast<std::int64_t>(wheel_.now()));
    o.seed_ = config_.seed;
    o.seeded_ = config_.source == nullptr && !config_.replay;
    o.replay_program_ = config_.replay_program.empty() ? self_program() : config_.replay_program;
    o.replay_args_ = config_.replay_args;
    const std::size_t held = trace_.size();
    for (std::size_t k = 0; k < held; ++k) {
      const Event& e = trace_[held < config_.trace_capacity ? k : (trace_next_ + k) % held];
      char line[160];
      std::snprintf(line, sizeof line, "step %llu t=%.6fs %s task=%u %llu %llu", static_cast<unsigned long long>(e.step),
                    static_cast<double>(e.at_ns) / 1e9, kind_name(e.kind), e.task, static_cast<unsigned long long>(e.a),
                    static_cast<unsigned long long>(e.b));
      o.trace_tail_.emplace_back(line);
    }
    for (const std::string& l : logs_) o.trace_tail_.push_back("log: " + l);
    return o;
  }

  Config config_;
  RuntimeContext context_;
  detail::LocalTasks tasks_;
  std::vector<TaskHeader*> ready_;
  detail::TimerWheel wheel_{0};
  std::vector<detail::TimerNode*> due_;
  SeededSource seeded_;
  std::optional<ReplaySource> replay_;
  DecisionSource* source_ = nullptr;
  std::vector<std::uint8_t> decision_log_;
  std::size_t decision_count_ = 0;
  std::vector<std::uint64_t> priorities_;
  std::vector<std::uint64_t> change_points_;
  std::vector<Event> trace_;  // a ring once full; trace_next_ counts every event recorded
  std::uint64_t trace_next_ = 0;
  std::deque<std::string> logs_;
  std::uint64_t hash_ = 0x5eed;
  std::uint64_t steps_ = 0;
  std::string failure_;
};

thread_local Simulator* Simulator::tls_simulator = nullptr;

Outcome run(const Config& config, std::function<Task<void>()> main) {
  if (current_runtime() != nullptr) throw UsageError("deja::sim::run called from inside a runtime");
  if (!main) throw UsageError("deja::sim::run: no main function");
  Simulator sim(config);
  return sim.run(std::move(main));
}

void log(std::string_view line) {
  if (Simulator* s = Simulator::tls_simulator) s->log_line(line);
}

bool in_simulation() noexcept { return Simulator::tls_simulator != nullptr; }

std::vector<std::uint64_t> Outcome::decisions() const {
  std::vector<std::uint64_t> values;
  values.reserve(decision_count_);
  std::uint64_t v = 0;
  int shift = 0;
  for (std::uint8_t b : decision_log_) {
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if (b & 0x80) {
      shift += 7;
      continue;
    }
    values.push_back(v);
    v = 0;
    shift = 0;
  }
  return values;
}

std::string Outcome::replay_token() const { return encode_replay_token(decisions()); }

std::string Outcome::replay_command() const {
  char seed[32];
  std::snprintf(seed, sizeof seed, "0x%llx", static_cast<unsigned long long>(seed_));
  std::string cmd = seeded_ ? std::string("DEJA_SEED=") + seed : "DEJA_REPLAY=" + replay_token();
  cmd += " " + replay_program_;
  if (!replay_args_.empty()) cmd += " " + replay_args_;
  return cmd;
}

std::string Outcome::report() const {
  std::string r;
  if (failed()) r += "deja::sim: the run failed: " + failure_ + "\n";
  else r += "deja::sim: the run passed\n";
  char line[200];
  std::snprintf(line, sizeof line, "steps=%llu virtual_time=%.6fs decisions=%zu trace_hash=0x%016llx\n",
                static_cast<unsigned long long>(steps_), std::chrono::duration<double>(virtual_elapsed_).count(),
                decision_count_, static_cast<unsigned long long>(trace_hash_));
  r += line;
  const std::size_t shown = std::min<std::size_t>(trace_tail_.size(), 20);
  if (shown) r += "last trace events:\n";
  for (std::size_t i = trace_tail_.size() - shown; i < trace_tail_.size(); ++i) r += "  " + trace_tail_[i] + "\n";
  r += "replay: " + replay_command() + "\n";
  return r;
}

}  // namespace deja::sim
