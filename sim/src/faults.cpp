// Faults as data (run_fault_plan, parse_fault_plan) and the nemesis that mixes them at random.
// Both only call the public world API, so what they do is exactly what a test could do by hand.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

#include "deja/errors.hpp"
#include "deja/random.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/simulator.hpp"
#include "sim_network.hpp"

namespace deja::sim {

namespace {

using Kind = FaultStep::Kind;

std::size_t needs_a(Kind k) { return k == Kind::kHeal ? 0 : 1; }
bool needs_b(Kind k) {
  return k == Kind::kPartition || k == Kind::kPartitionOneWay || k == Kind::kClogLink || k == Kind::kUnclogLink;
}

void validate(const FaultPlan& plan) {
  Duration last{};
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const FaultStep& s = plan[i];
    const std::string where = "deja::sim::run_fault_plan: step " + std::to_string(i);
    if (s.at < last) throw UsageError(where + " is earlier than the step before it (a plan is sorted by time)");
    last = s.at;
    if (s.a.size() < needs_a(s.kind)) throw UsageError(where + " names no node");
    if (needs_b(s.kind) && s.b.empty()) throw UsageError(where + " needs a second node set (b)");
    for (NodeId n : s.a) {
      if (n.value == 0 && (s.kind == Kind::kCrash || s.kind == Kind::kRestart)) {
        throw UsageError(where + ": NodeId{0} (the main task) cannot crash or restart");
      }
    }
    // Every node must exist now: checked only when the step applies, a bad id threw after the
    // earlier steps had already partitioned or crashed nodes.
    for (const std::vector<NodeId>* side : {&s.a, &s.b}) {
      for (NodeId n : *side) {
        try {
          (void)node_ip(n);
        } catch (const UsageError&) {
          throw UsageError(where + ": no node has id " + std::to_string(n.value));
        }
      }
    }
  }
}

void apply(const FaultStep& s) {
  switch (s.kind) {
    case Kind::kPartition: partition(s.a, s.b); break;
    case Kind::kPartitionOneWay: partition_one_way(s.a, s.b); break;
    case Kind::kIsolate: isolate(s.a[0]); break;
    case Kind::kClogNode: clog_node(s.a[0]); break;
    case Kind::kUnclogNode: unclog_node(s.a[0]); break;
    case Kind::kClogLink: clog_link(s.a[0], s.b[0]); break;
    case Kind::kUnclogLink: unclog_link(s.a[0], s.b[0]); break;
    case Kind::kHeal: heal(); break;
    case Kind::kCrash: crash(s.a[0]); break;
    case Kind::kRestart:
      if (!node_is_up(s.a[0])) restart(s.a[0]);
      break;
  }
}

Duration between(Duration lo, Duration hi) {
  if (hi <= lo) return lo;
  const auto span = std::chrono::duration_cast<std::chrono::microseconds>(hi - lo).count();
  return lo + std::chrono::microseconds(deja::random_below(static_cast<std::uint64_t>(span) + 1));
}

}  // namespace

Task<void> run_fault_plan(FaultPlan plan) {
  validate(plan);
  const Instant start = deja::now();
  // A step whose instant does not fit in the clock would wrap into the past and apply at once.
  for (std::size_t i = 0; i < plan.size(); ++i) {
    if (plan[i].at > Instant::max() - start) {
      throw UsageError("deja::sim::run_fault_plan: step " + std::to_string(i) + " is too far in the future for the clock");
    }
  }
  for (const FaultStep& s : plan) {
    co_await deja::sleep_until(start + s.at);
    apply(s);
  }
}

FaultPlan parse_fault_plan(const std::string& text) {
  current_network("deja::sim::parse_fault_plan");  // names resolve in the running world
  FaultPlan plan;
  std::string normalized = text;
  std::replace(normalized.begin(), normalized.end(), '|', '\n');
  std::istringstream lines(normalized);
  std::string line;
  std::size_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.empty()) continue;
    const std::string where = "deja::sim::parse_fault_plan: step " + std::to_string(number) + " \"" + line + "\": ";
    FaultStep s;
    // The time: a number with a unit.
    const std::string& t = w[0];
    std::size_t digits = 0;
    while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
    std::uint64_t value = 0;
    if (digits == 0 || std::from_chars(t.data(), t.data() + digits, value).ec != std::errc{} || value > (1ull << 40)) {
      throw UsageError(where + "it must start with a time such as 1500ms");
    }
    const std::string unit = t.substr(digits);
    std::uint64_t unit_ns = 0;
    if (unit == "s") unit_ns = 1'000'000'000;
    else if (unit == "ms") unit_ns = 1'000'000;
    else if (unit == "us") unit_ns = 1'000;
    else throw UsageError(where + "a time takes the unit s, ms or us");
    // Checked before converting: 2^40 s does not fit in the clock's nanoseconds, and a wrapped
    // time would schedule the step at some unrelated (even negative) instant.
    if (value > static_cast<std::uint64_t>(Duration::max().count()) / unit_ns) {
      throw UsageError(where + "the time does not fit in the clock's range");
    }
    s.at = Duration(static_cast<Duration::rep>(value * unit_ns));
    if (w.size() < 2) throw UsageError(where + "no fault after the time");
    const std::string& verb = w[1];
    if (verb == "partition") s.kind = Kind::kPartition;
    else if (verb == "one-way") s.kind = Kind::kPartitionOneWay;
    else if (verb == "isolate") s.kind = Kind::kIsolate;
    else if (verb == "clog") s.kind = Kind::kClogNode;
    else if (verb == "unclog") s.kind = Kind::kUnclogNode;
    else if (verb == "clog-link") s.kind = Kind::kClogLink;
    else if (verb == "unclog-link") s.kind = Kind::kUnclogLink;
    else if (verb == "heal") s.kind = Kind::kHeal;
    else if (verb == "crash") s.kind = Kind::kCrash;
    else if (verb == "restart") s.kind = Kind::kRestart;
    else throw UsageError(where + "unknown fault \"" + verb + "\"");
    bool second = false;
    const bool link = s.kind == Kind::kClogLink || s.kind == Kind::kUnclogLink;
    for (std::size_t i = 2; i < w.size(); ++i) {
      if (w[i] == "/") {
        second = true;
        continue;
      }
      const std::optional<NodeId> id = node_named(w[i]);
      if (!id) throw UsageError(where + "no node is named \"" + w[i] + "\"");
      // A link names its two ends without a '/'.
      (second || (link && !s.a.empty()) ? s.b : s.a).push_back(*id);
    }
    if (s.a.size() < needs_a(s.kind)) throw UsageError(where + "it names no node");
    if (needs_b(s.kind) && s.b.empty()) throw UsageError(where + "it needs a second node (after '/' for a partition)");
    if (!plan.empty() && s.at < plan.back().at) throw UsageError(where + "it is earlier than the step before it");
    plan.push_back(std::move(s));
  }
  return plan;
}

Task<void> nemesis(NemesisOptions o) {
  if (o.min_pause > o.max_pause) throw UsageError("deja::sim::nemesis: min_pause is more than max_pause");
  const std::vector<NodeId> nodes = o.nodes;
  if (nodes.empty()) co_return;
  for (NodeId n : nodes) {
    if (n.value == 0) throw UsageError("deja::sim::nemesis: NodeId{0} (the main task) is not a node it may touch");
  }
  // 0 partition, 1 one-way, 2 isolate, 3 swizzle, 4 clogged link, 5 crash. Pushed one by one: g++ 12
  // at -O3 warns falsely (-Wstringop-overflow) on inserting an initializer list here.
  std::vector<int> kinds;
  kinds.reserve(6);
  for (int k = 0; k < 6; ++k) {
    if ((k <= 2 && o.partitions) || ((k == 3 || k == 4) && o.clogs) || (k == 5 && o.crashes)) kinds.push_back(k);
  }
  if (kinds.empty()) co_return;
  std::vector<NodeId> crashed;
  const Instant end = deja::now() + o.duration;
  auto pick = [&] { return nodes[deja::random_below(nodes.size())]; };
  auto pause = [&] { return between(o.min_pause, o.max_pause); };
  while (deja::now() < end) {
    co_await deja::sleep(pause());
    if (deja::now() >= end) break;
    switch (kinds[deja::random_below(kinds.size())]) {
      case 0: {  // a random split into two non-empty sides (when there are two nodes)
        std::vector<NodeId> a, b;
        for (NodeId n : nodes) (deja::random_below(2) ? a : b).push_back(n);
        if (a.empty() || b.empty()) break;
        partition(a, b);
        break;
      }
      case 1: {
        const NodeId x = pick(), y = pick();
        if (x != y) partition_one_way({x}, {y});
        break;
      }
      case 2: isolate(pick()); break;
      case 3: {  // swizzle: clog a random subset one by one, then unclog in a random order
        std::vector<NodeId> subset;
        for (NodeId n : nodes) {
          if (deja::random_below(2)) subset.push_back(n);
        }
        for (NodeId n : subset) {
          clog_node(n);
          co_await deja::sleep(between(Duration::zero(), o.max_hold / 4));
        }
        for (std::size_t i = subset.size(); i > 1; --i) std::swap(subset[i - 1], subset[deja::random_below(i)]);
        for (NodeId n : subset) {
          co_await deja::sleep(between(Duration::zero(), o.max_hold / 4));
          unclog_node(n);
        }
        break;
      }
      case 4: {
        const NodeId x = pick(), y = pick();
        if (x != y) clog_link(x, y);
        break;
      }
      case 5: {
        const NodeId x = pick();
        if (node_is_up(x)) {
          crash(x);
          crashed.push_back(x);
        }
        break;
      }
    }
    co_await deja::sleep(between(Duration::zero(), o.max_hold));
    heal();
    for (NodeId n : crashed) {
      if (!node_is_up(n)) restart(n);
    }
    crashed.clear();
  }
  heal();
}

}  // namespace deja::sim
