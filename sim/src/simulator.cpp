// The simulator's runtime: the scheduling, time and entropy seams implemented over one decision
// source, with a hashed trace of every event, simulated nodes that crash and restart, and the
// determinism check that runs a schedule twice.
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
#include "sim_network.hpp"
#include "trace_record.hpp"

namespace deja::sim {

namespace {

using detail::TaskHeader;

// Virtual time starts at a fixed instant, the same in every run.
constexpr Instant kEpoch{std::chrono::seconds(1'000'000)};

// The determinism check keeps 8 bytes per event of the first run; past this many events (128 MiB)
// it compares only the final trace hash and event count.
constexpr std::size_t kMaxCheckedEvents = std::size_t{1} << 24;

// Reruns that try to reproduce the first run's side of a divergence (see run_checked).
constexpr int kCaptureAttempts = 4;

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

// before + "name" + after (or before + after for an empty name), built by appending.
std::string quoted(std::string_view before, std::string_view name, std::string_view after) {
  std::string s(before);
  if (!name.empty()) {
    s += '"';
    s += name;
    s += '"';
  }
  s += after;
  return s;
}

std::string ended_at(std::uint64_t index) {
  std::string s = "#";
  s += std::to_string(index);
  s += " (the run had ended)";
  return s;
}

std::string hex(std::uint64_t v, int width) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%0*llx", width, static_cast<unsigned long long>(v));
  return buf;
}

// How a run takes part in the determinism check. The first run records the rolling hash after
// every event; a rerun compares its own as it goes and stops at the first difference (or, when
// `target` is set, once it has reproduced the first run up to that event).
struct DeterminismProbe {
  enum class Mode : std::uint8_t { kRecord, kCompare };
  Mode mode = Mode::kRecord;
  std::vector<std::uint64_t>* hashes = nullptr;  // kRecord: filled; kCompare: the reference
  bool reference_complete = true;  // the reference holds every event of the first run
  std::optional<std::uint64_t> target;

  std::optional<std::uint64_t> diverged_at;  // the first event that differs from the reference
  std::string diverged_event;                // this run's event there
  std::string target_event;                  // this run's event at `target`, reproduced exactly
  bool done = false;
};

struct Node {
  std::string name;
  // Held by pointer so it never moves while the simulation runs: a coroutine lambda's captures
  // live in the lambda object, and its frames keep pointing at them across restarts.
  std::unique_ptr<std::function<Task<void>()>> main;
  bool up = true;
  std::uint32_t boots = 1;
};

}  // namespace

class Simulator final : public Scheduler, public TimeDriver, public Entropy, public NetHost {
 public:
  Simulator(const Config& config, DeterminismProbe* probe)
      : config_(config), tasks_(std::numeric_limits<std::size_t>::max()), seeded_(config.seed), probe_(probe),
        net_(std::make_unique<SimNetwork>(*this, config.network)) {
    nodes_.push_back(Node{"main", {}, true, 1});
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
    context_.net = net_.get();
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
      if (failure_.empty() && !halted_ && root.is_finished()) {
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
    // The network ends first, so that sockets destroyed with their tasks send nothing (and draw no
    // decisions) while the run is torn down.
    net_->end();
    shutdown();
    tls_simulator = saved;
    return outcome();
  }

  // Runs `main` under `config` twice (the second time replaying the first run's decisions) and
  // compares the traces event by event.
  static Outcome run_checked(const Config& config, const std::function<Task<void>()>& main);

  // --- Scheduler --------------------------------------------------------------------------
  void spawn(TaskHeader* t) override {
    tasks_.admit(t);
    t->owner = spawn_owner_ ? *spawn_owner_ : current_owner();
    spawn_owner_.reset();
    record(EventKind::kSpawn, t->owner, t->id, current_id(), 0);
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
    record(EventKind::kAbort, t->owner, t->id, 0, 0);
    if (tasks_.abort(t)) ready_.push_back(t);
  }
  void abort_now(TaskHeader* t) noexcept override {
    const std::uint32_t s = t->state.load(std::memory_order_relaxed);
    if ((s & detail::kScheduled) && !(s & (detail::kRunning | detail::kComplete))) {
      // Queued: taken out of the ready set (so no decision is spent on it) and destroyed here.
      record(EventKind::kAbort, t->owner, t->id, 0, 0);
      std::erase(ready_, t);
      tasks_.destroy(t);
      return;
    }
    abort(t);
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
  std::uint64_t next_below(std::uint64_t bound) noexcept override { return bound <= 1 ? 0 : choose(bound); }
  // --- NetHost (the simulated network) ------------------------------------------------------
  std::uint64_t net_choose(std::uint64_t bound) noexcept override { return bound == 1 ? 0 : choose(bound); }
  void net_record(EventKind kind, std::uint32_t node, std::uint64_t a, std::uint64_t b) noexcept override {
    record(kind, node, current_id(), a, b);
  }
  std::uint32_t net_current_node() const noexcept override { return current_owner(); }
  TimeDriver& net_time() noexcept override { return *this; }

  bool buggify(double p) noexcept override {
    if (p <= 0.0) return false;
    if (p >= 1.0) return true;
    // Fires for the top fraction p of the range, so that decision 0 (the default a shrunk
    // schedule falls back to) means "no fault".
    constexpr double kRange = static_cast<double>(1u << 24);
    return static_cast<double>(choose(1u << 24)) >= kRange - p * kRange;
  }

  void log_line(std::string_view line) {
    record(EventKind::kLog, current_owner(), current_id(), hash_text(line), log_count_, line);
    ++log_count_;
    if (config_.trace_capacity == 0) return;
    if (logs_.size() == config_.trace_capacity) logs_.pop_front();
    logs_.emplace_back(std::string(line));
  }

  // --- Nodes ------------------------------------------------------------------------------
  NodeId add_node(std::string name, std::function<Task<void>()> main) {
    if (!main) throw UsageError("deja::sim::add_node: no main function");
    if (name.empty()) throw UsageError("deja::sim::add_node: a node needs a name");
    for (const Node& n : nodes_) {
      if (n.name == name) throw UsageError(quoted("deja::sim::add_node: a node named ", name, " exists already"));
    }
    // Made before the node exists, so that a main function that throws leaves nothing behind; and
    // from its final place, so a coroutine lambda's frame refers to captures that stay put.
    auto stable = std::make_unique<std::function<Task<void>()>>(std::move(main));
    Task<void> first = (*stable)();
    if (!first.valid()) throw UsageError("deja::sim::add_node: the main function returned an empty Task");
    const auto id = static_cast<std::uint32_t>(nodes_.size());
    net_->on_node_added(id, name);
    nodes_.push_back(Node{std::move(name), std::move(stable), true, 1});
    record(EventKind::kNodeAdd, id, current_id(), 0, 0);
    spawn_node_main(id, std::move(first));
    return NodeId{id};
  }

  void crash(NodeId node) {
    Node& n = known_node(node, "deja::sim::crash");
    if (!n.up) return;
    if (current_owner() == node.value) {
      throw UsageError(quoted("deja::sim::crash: node ", n.name, " cannot crash itself from one of its own tasks"));
    }
    n.up = false;
    record(EventKind::kCrash, node.value, current_id(), tasks_of(node.value).size(), 0);
    // Its sockets die first, so that the peers are reset and the destructors of the dying tasks'
    // sockets find nothing left to close gracefully.
    net_->on_crash(node.value);
    // Destroying a task runs destructors, which may abort, complete or (rarely) spawn other tasks
    // of the node, so the victims are pinned while they go, and the sweep repeats until none is left.
    for (std::vector<TaskHeader*> victims = tasks_of(node.value); !victims.empty(); victims = tasks_of(node.value)) {
      for (TaskHeader* t : victims) t->retain();
      for (TaskHeader* t : victims) {
        if (t->is_complete()) continue;
        record(EventKind::kKilled, node.value, t->id, 0, 0);
        std::erase(ready_, t);
        tasks_.destroy(t);
      }
      for (TaskHeader* t : victims) t->release();
    }
  }

  void restart(NodeId node) {
    if (const Node& running = known_node(node, "deja::sim::restart"); running.up) {
      throw UsageError(quoted("deja::sim::restart: node ", running.name, " is running; crash it first"));
    }
    Task<void> first = (*nodes_[node.value].main)();
    if (!first.valid()) throw UsageError("deja::sim::restart: the main function returned an empty Task");
    Node& n = nodes_[node.value];  // looked up again: main() may have added nodes
    n.up = true;
    net_->on_restart(node.value);
    ++n.boots;
    record(EventKind::kRestart, node.value, current_id(), n.boots, 0);
    spawn_node_main(node.value, std::move(first));
  }

  NodeId current_node() const noexcept { return NodeId{current_owner()}; }

  bool node_is_up(NodeId node) { return known_node(node, "deja::sim::node_is_up").up; }

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
    record(EventKind::kDecision, current_owner(), current_id(), bound, v);
    return v;
  }

  static std::uint32_t current_owner() noexcept {
    TaskHeader* t = detail::current_task();
    return t ? t->owner : 0;
  }
  static std::uint32_t current_id() noexcept {
    TaskHeader* t = detail::current_task();
    return t ? t->id : 0;
  }

  Node& known_node(NodeId node, const char* what) {
    if (node.value == 0) throw UsageError(quoted(what, "", ": NodeId{0} is the run's main task, not a node"));
    if (node.value >= nodes_.size()) {
      std::string id = ": no node has id ";
      id += std::to_string(node.value);
      throw UsageError(quoted(what, "", id));
    }
    return nodes_[node.value];
  }

  // The live tasks of a node, oldest first (the live list's order is the spawn order, which is
  // deterministic).
  std::vector<TaskHeader*> tasks_of(std::uint32_t node) const {
    std::vector<TaskHeader*> found;
    for (TaskHeader* t = tasks_.newest(); t; t = t->live_next) {
      if (t->owner == node) found.push_back(t);
    }
    std::reverse(found.begin(), found.end());
    return found;
  }

  void spawn_node_main(std::uint32_t node, Task<void> first) {
    spawn_owner_ = node;
    // A node's main runs detached: a crash ends it without anyone to tell, and an exception it
    // lets out is unobserved, which fails the run.
    try {
      detail::spawn_on(static_cast<Scheduler*>(this), std::move(first), false).detach();
    } catch (...) {
      spawn_owner_.reset();
      throw;
    }
  }

  void make_ready(TaskHeader* t) {
    if (tasks_.make_ready(t)) ready_.push_back(t);
  }

  void record(EventKind kind, std::uint32_t node, std::uint32_t task, std::uint64_t a, std::uint64_t b,
              std::string_view log_text = {}) noexcept {
    const auto at_ns = static_cast<std::int64_t>(wheel_.now());
    hash_ = mix(mix(mix(mix(mix(mix(hash_, steps_), static_cast<std::uint64_t>(at_ns)), static_cast<std::uint64_t>(kind)), node), task),
                mix(a, b));
    const std::uint64_t index = event_count_++;
    if (probe_) check_event(index, TraceEvent{steps_, at_ns, kind, node, task, a, b}, log_text);
    if (config_.trace_capacity == 0) return;
    // The ring grows to its capacity, then overwrites. (Fields are stored one by one: g++ 12 warns
    // falsely of a dangling pointer when a local event is pushed.)
    if (trace_.size() < config_.trace_capacity) trace_.emplace_back();
    TraceEvent& slot = trace_[trace_next_ % config_.trace_capacity];  // while growing, the new back()
    slot.step = steps_;
    slot.at_ns = at_ns;
    slot.kind = kind;
    slot.node = node;
    slot.task = task;
    slot.a = a;
    slot.b = b;
    ++trace_next_;
  }

  void check_event(std::uint64_t index, const TraceEvent& e, std::string_view log_text) noexcept {
    DeterminismProbe& p = *probe_;
    if (p.mode == DeterminismProbe::Mode::kRecord) {
      if (index < kMaxCheckedEvents) p.hashes->push_back(hash_);
      return;
    }
    if (p.done) return;
    const std::vector<std::uint64_t>& reference = *p.hashes;
    const bool differs = index < reference.size() ? reference[index] != hash_ : p.reference_complete;
    try {
      if (differs) {
        p.diverged_at = index;
        p.diverged_event = describe_event(index, e, node_names(), log_text);
      } else if (p.target && index == *p.target) {
        p.target_event = describe_event(index, e, node_names(), log_text);
      } else {
        return;
      }
    } catch (...) {
      // Out of memory while describing: the index alone still tells where.
    }
    p.done = true;
    halted_ = true;  // the rest of this run tells nothing more
  }

  // The text of a log event while logs_ still holds it.
  std::string_view log_text(const TraceEvent& e) const noexcept {
    const std::uint64_t first = log_count_ - logs_.size();
    if (e.kind != EventKind::kLog || e.b < first || e.b - first >= logs_.size()) return {};
    return logs_[static_cast<std::size_t>(e.b - first)];
  }

  std::vector<std::string> node_names() const {
    std::vector<std::string> names;
    names.reserve(nodes_.size());
    for (const Node& n : nodes_) names.push_back(n.name);
    return names;
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
    while (failure_.empty() && !halted_ && !root->is_complete()) {
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
        record(EventKind::kRun, t->owner, t->id, 0, 0);
        const std::uint32_t id = t->id;
        // Pinned for the step, so that its completion can be recorded even if nobody holds it.
        t->retain();
        if (tasks_.run(t)) ready_.push_back(t);
        if (t->is_complete()) {
          const std::uint64_t how = t->was_destroyed() ? 2 : t->has_failed() ? 1 : 0;
          record(EventKind::kComplete, t->owner, id, how, 0);
        }
        t->release();
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
      record(EventKind::kTimerFire, n->task ? n->task->owner : 0, n->task ? n->task->id : 0, tick, 0);
      n->fire(n);
    }
  }

  std::string deadlock_report() const {
    std::string r = "deadlock: nothing is runnable, no timer is pending, and the main task has not finished. Blocked tasks:";
    std::vector<const TaskHeader*> blocked;
    for (const TaskHeader* t = tasks_.newest(); t; t = t->live_next) blocked.push_back(t);
    std::reverse(blocked.begin(), blocked.end());  // oldest first
    for (const TaskHeader* t : blocked) {
      r += "\n  task #";
      r += std::to_string(t->id);
      if (t->owner != 0) {
        r += " (node ";
        r += nodes_[t->owner].name;
        r += ")";
      }
      r += " waits on ";
      r += t->waiting_on ? t->waiting_on : "(not started)";
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
    o.event_count_ = event_count_;
    const std::size_t held = trace_.size();
    const std::vector<std::string> names = node_names();
    o.trace_tail_.reserve(held);
    for (std::size_t k = 0; k < held; ++k) {
      const TraceEvent& e = trace_[held < config_.trace_capacity ? k : (trace_next_ + k) % held];
      o.trace_tail_.push_back(describe_event(event_count_ - held + k, e, names, log_text(e)));
    }
    // The first run of a determinism check keeps its trace too: the check may fail it yet.
    const bool may_fail = !failure_.empty() || (probe_ && probe_->mode == DeterminismProbe::Mode::kRecord);
    if (may_fail && config_.write_trace_files && config_.trace_capacity > 0) o.trace_record_ = trace_record(o);
    return o;
  }

  std::shared_ptr<TraceRecord> trace_record(const Outcome& o) {
    auto r = std::make_shared<TraceRecord>();
    const std::size_t held = trace_.size();
    r->events.reserve(held);
    for (std::size_t k = 0; k < held; ++k) r->events.push_back(trace_[held < config_.trace_capacity ? k : (trace_next_ + k) % held]);
    r->first_index = event_count_ - held;
    r->node_names = node_names();
    r->logs.assign(logs_.begin(), logs_.end());
    r->first_log = log_count_ - logs_.size();
    r->dir = config_.trace_dir;
    // Named by seed and trace hash: different tests sweep the same seeds, and one test's runs of
    // one seed differ only when the trace does.
    if (o.seeded_) {
      r->stem = "deja-seed-0x";
      r->stem += hex(config_.seed, 1);
    } else {
      r->stem = config_.replay ? "deja-replay" : "deja-source";
    }
    r->stem += "-";
    r->stem += hex(hash_, 16);
    r->header = trace_header(failure_, o.replay_command());
    return r;
  }

 public:
  static std::string trace_header(const std::string& failure, const std::string& replay) {
    std::string h = "deja::sim: the run failed: ";
    h += failure;
    h += "\nreplay: ";
    h += replay;
    h += "\n";
    return h;
  }

 private:

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
  std::vector<TraceEvent> trace_;  // a ring once full; trace_next_ counts every event it took
  std::uint64_t trace_next_ = 0;
  std::uint64_t event_count_ = 0;  // every event recorded (the ring may hold fewer)
  std::deque<std::string> logs_;
  std::uint64_t log_count_ = 0;
  std::uint64_t hash_ = 0x5eed;
  std::uint64_t steps_ = 0;
  std::string failure_;
  std::vector<Node> nodes_;  // nodes_[0] stands for the run's main task
  std::optional<std::uint32_t> spawn_owner_;  // the node of the next spawned task, if not the spawner's
  DeterminismProbe* probe_ = nullptr;
  bool halted_ = false;  // stopped by the determinism check
  std::unique_ptr<SimNetwork> net_;  // after everything it uses (it is destroyed first)
};

thread_local Simulator* Simulator::tls_simulator = nullptr;

Outcome Simulator::run_checked(const Config& config, const std::function<Task<void>()>& main) {
  std::vector<std::uint64_t> reference;
  DeterminismProbe record_probe;
  record_probe.hashes = &reference;
  Outcome first = Simulator(config, &record_probe).run(main);

  // The reruns replay the first run's decisions: the same inputs as the seed gave, and the only
  // way to rerun a run whose decisions came from a caller's source (a fuzzer's bytes).
  Config again = config;
  again.source = nullptr;
  again.replay = first.decisions();
  again.trace_capacity = 0;
  again.write_trace_files = false;
  auto rerun = [&](std::optional<std::uint64_t> target) {
    DeterminismProbe p;
    p.mode = DeterminismProbe::Mode::kCompare;
    p.hashes = &reference;
    p.reference_complete = first.event_count_ <= kMaxCheckedEvents;
    p.target = target;
    Outcome o = Simulator(again, &p).run(main);
    if (!p.diverged_at && !target && o.event_count_ < reference.size()) {
      p.diverged_at = o.event_count_;  // ended early: the first run went on
      p.diverged_event = ended_at(o.event_count_);
    }
    if (!p.diverged_at && !target && o.trace_hash_ != first.trace_hash_) {
      // Past the prefix whose hashes were kept: only the end is known to differ.
      p.diverged_at = std::min(o.event_count_, first.event_count_);
      p.diverged_event = "(not recorded: the first run had more events than the check keeps)";
    }
    return p;
  };

  DeterminismProbe second = rerun(std::nullopt);
  if (!second.diverged_at) {
    if (!first.failed()) first.trace_record_.reset();  // kept only in case the check failed it
    return first;
  }

  // The second run's side of the divergence is known. The first run's is in its trace ring if the
  // event is recent enough (trace_tail_ holds the ring, one line per event). Otherwise a third run
  // reproduces it if it matches the first run up to that event; the body is not deterministic, so
  // that run may itself stray earlier: then that earlier event is the first divergence, and the
  // search goes on from there.
  std::uint64_t index = *second.diverged_at;
  std::string second_event = second.diverged_event;
  std::string first_event = "(could not be reproduced)";
  const std::uint64_t first_in_ring = first.event_count_ - first.trace_tail_.size();
  if (index >= first.event_count_) {
    first_event = ended_at(index);
  } else if (index >= first_in_ring) {
    first_event = first.trace_tail_[static_cast<std::size_t>(index - first_in_ring)];
  } else {
    for (int attempt = 0; attempt < kCaptureAttempts; ++attempt) {
      DeterminismProbe third = rerun(index);
      if (!third.target_event.empty()) {
        first_event = third.target_event;
        break;
      }
      if (third.diverged_at && *third.diverged_at < index) {
        index = *third.diverged_at;
        second_event = third.diverged_event;
      }
    }
  }
  std::string why = "the run is not deterministic: a rerun replaying its decisions diverged at event #";
  why += std::to_string(index);
  why += "\n  first run:  ";
  why += first_event;
  why += "\n  second run: ";
  why += second_event;
  why += "\n  (the simulator gave both runs the same inputs: the body reads something else, such as the real clock, an"
         " address, state left over from an earlier run, or the order of an unordered container)";
  if (!first.failure_.empty()) {
    why += "\n  the first run also failed: ";
    why += first.failure_;
  }
  first.failure_ = std::move(why);
  if (first.trace_record_) first.trace_record_->header = trace_header(first.failure_, first.replay_command());
  return first;
}

Outcome run(const Config& config, std::function<Task<void>()> main) {
  if (current_runtime() != nullptr) throw UsageError("deja::sim::run called from inside a runtime");
  if (!main) throw UsageError("deja::sim::run: no main function");
  if (config.check_determinism) return Simulator::run_checked(config, main);
  Simulator sim(config, nullptr);
  return sim.run(std::move(main));
}

void log(std::string_view line) {
  if (Simulator* s = Simulator::tls_simulator) s->log_line(line);
}

bool in_simulation() noexcept { return Simulator::tls_simulator != nullptr; }

namespace {
Simulator& require_simulator(const char* what) {
  if (Simulator* s = Simulator::tls_simulator) return *s;
  throw UsageError(std::string(what) + " called outside a simulation (deja::sim::run)");
}
}  // namespace

NodeId add_node(std::string name, std::function<Task<void>()> main) {
  return require_simulator("deja::sim::add_node").add_node(std::move(name), std::move(main));
}
void crash(NodeId node) { require_simulator("deja::sim::crash").crash(node); }
void restart(NodeId node) { require_simulator("deja::sim::restart").restart(node); }
NodeId current_node() { return require_simulator("deja::sim::current_node").current_node(); }
bool node_is_up(NodeId node) { return require_simulator("deja::sim::node_is_up").node_is_up(node); }

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

std::vector<std::string> Outcome::trace_files() const {
  if (!trace_record_) return {};
  write_trace_files(*trace_record_);
  return trace_record_->paths;
}

std::string Outcome::trace_file_error() const {
  if (!trace_record_) return {};
  write_trace_files(*trace_record_);
  return trace_record_->error;
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
  if (trace_record_) {
    const std::vector<std::string> files = trace_files();
    if (!files.empty()) {
      r += "trace files:";
      for (const std::string& f : files) {
        r += " ";
        r += f;
      }
      r += "\n";
    } else {
      r += "trace files not written: ";
      r += trace_record_->error;
      r += "\n";
    }
  }
  r += "replay: " + replay_command() + "\n";
  return r;
}

}  // namespace deja::sim
