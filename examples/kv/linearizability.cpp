// The register checker: a depth-first search for an order of operations that respects real time
// (an operation that returned before another was called comes first) and register semantics (a
// read returns the last write before it), memoizing dead ends.
#include "linearizability.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <unordered_set>

namespace kv {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

struct Op {
  std::size_t index;  // in the caller's vector
  bool is_write;
  int value;  // interned: 0 is "absent"
  std::int64_t call;
  std::int64_t ret;  // kNever: outcome unknown
};

struct StateKey {
  std::vector<std::uint64_t> bits;
  int value;
  bool operator==(const StateKey&) const = default;
};

struct StateKeyHash {
  std::size_t operator()(const StateKey& k) const noexcept {
    std::uint64_t h = 0xcbf29ce484222325ull ^ static_cast<std::uint64_t>(k.value);
    for (const std::uint64_t w : k.bits) h = (h ^ w) * 0x100000001b3ull;
    return static_cast<std::size_t>(h);
  }
};

bool has(const std::vector<std::uint64_t>& bits, std::size_t i) { return (bits[i / 64] >> (i % 64)) & 1u; }
void set(std::vector<std::uint64_t>& bits, std::size_t i) { bits[i / 64] |= std::uint64_t{1} << (i % 64); }

std::string show_value(const std::vector<std::optional<std::string>>& values, int id) {
  const auto& v = values[static_cast<std::size_t>(id)];
  if (!v) return "(absent)";
  std::string s = "\"";
  s.append(v->substr(0, 64));
  if (v->size() > 64) s.append("...");
  s.push_back('"');
  return s;
}

std::string show_op(const Op& op, const std::vector<RegisterOp>& source, const std::vector<std::optional<std::string>>& values) {
  const RegisterOp& r = source[op.index];
  std::string s = "#" + std::to_string(op.index) + " client " + std::to_string(r.client) + (op.is_write ? " wrote " : " read ");
  s += show_value(values, op.value);
  s += " [" + std::to_string(op.call) + ", " + (op.ret == kNever ? std::string("unknown") : std::to_string(op.ret)) + "]";
  return s;
}

}  // namespace

LinearizabilityResult check_register(const std::vector<RegisterOp>& source, std::optional<std::string> initial, std::size_t max_states) {
  // Intern values in order of first appearance, so ids (and explanations) are deterministic.
  std::vector<std::optional<std::string>> values{std::nullopt};
  std::map<std::string, int> ids;
  auto intern = [&](const std::optional<std::string>& v) {
    if (!v) return 0;
    const auto [it, fresh] = ids.emplace(*v, static_cast<int>(values.size()));
    if (fresh) values.push_back(*v);
    return it->second;
  };
  const int initial_value = intern(initial);

  std::vector<Op> ops;
  for (std::size_t i = 0; i < source.size(); ++i) {
    const RegisterOp& r = source[i];
    const bool is_write = r.kind == RegisterOp::Kind::kWrite;
    if (!is_write && !r.ret) continue;  // a read with no answer constrains nothing
    ops.push_back({i, is_write, intern(r.value), r.call, r.ret.value_or(kNever)});
  }
  std::stable_sort(ops.begin(), ops.end(), [](const Op& a, const Op& b) { return a.call < b.call; });
  const std::size_t n = ops.size();
  std::size_t finite = 0;
  for (const Op& op : ops) finite += op.ret != kNever;

  LinearizabilityResult result;
  std::unordered_set<StateKey, StateKeyHash> dead;

  // Candidates to place next: unplaced operations called no later than the earliest return among
  // the unplaced ones (anything called after that return must follow it).
  auto candidates = [&](const std::vector<std::uint64_t>& bits) {
    std::int64_t min_ret = kNever;
    for (std::size_t i = 0; i < n; ++i) {
      if (!has(bits, i)) min_ret = std::min(min_ret, ops[i].ret);
    }
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < n && ops[i].call <= min_ret; ++i) {
      if (!has(bits, i)) out.push_back(i);
    }
    return out;
  };

  struct Frame {
    StateKey key;
    std::size_t placed_finite;
    std::vector<std::size_t> next;
    std::size_t at = 0;
  };
  std::vector<Frame> stack;
  stack.push_back({{std::vector<std::uint64_t>((n + 63) / 64, 0), initial_value}, 0, {}, 0});
  stack.back().next = candidates(stack.back().key.bits);
  std::size_t deepest = 0;
  StateKey deepest_key = stack.back().key;

  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.placed_finite == finite) return result;  // every answered operation is explained
    if (f.at == f.next.size()) {
      dead.insert(std::move(f.key));
      stack.pop_back();
      continue;
    }
    const Op& op = ops[f.next[f.at++]];
    if (!op.is_write && op.value != f.key.value) continue;  // the read saw something else
    StateKey child{f.key.bits, op.is_write ? op.value : f.key.value};
    set(child.bits, static_cast<std::size_t>(&op - ops.data()));
    if (dead.count(child) != 0) continue;
    if (++result.states_explored > max_states) {
      result.verdict = LinearizabilityResult::Verdict::kGaveUp;
      result.explanation = "gave up after exploring " + std::to_string(max_states) + " states";
      return result;
    }
    const std::size_t placed = f.placed_finite + (op.ret != kNever);
    if (placed > deepest) {
      deepest = placed;
      deepest_key = child;
    }
    std::vector<std::size_t> next = candidates(child.bits);
    stack.push_back({std::move(child), placed, std::move(next), 0});
  }

  result.verdict = LinearizabilityResult::Verdict::kNotLinearizable;
  std::string e = "no order of the " + std::to_string(finite) + " answered operations explains them: after the first " +
                  std::to_string(deepest) + " the register holds " + show_value(values, deepest_key.value) +
                  ", and none of these can come next:";
  std::size_t shown = 0;
  for (const std::size_t i : candidates(deepest_key.bits)) {
    if (ops[i].ret == kNever) continue;
    e += "\n  " + show_op(ops[i], source, values);
    if (++shown == 8) break;
  }
  result.explanation = std::move(e);
  return result;
}

}  // namespace kv
