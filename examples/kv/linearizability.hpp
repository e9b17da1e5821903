// A linearizability checker for one register (one key of the kv store), after Wing and Gong's
// search with Lowe's memoization of (linearized set, register value) pairs. The kv test records
// every client operation with its call and return times and checks each key's history: keys are
// independent registers, and linearizability is local (Herlihy and Wing), so the whole store is
// linearizable exactly when every key is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kv {

struct RegisterOp {
  enum class Kind : std::uint8_t { kRead, kWrite };
  Kind kind = Kind::kRead;
  // A write's value (nullopt: the key was deleted), or the value a read returned (nullopt: absent).
  std::optional<std::string> value;
  std::int64_t call = 0;  // when the client sent it (any monotonic clock; virtual time in tests)
  // When the client got the answer; nullopt when it never learned the outcome (timeout, broken
  // connection, crash). Such a write may have taken effect at any time after its call, or never;
  // such a read tells nothing and is ignored.
  std::optional<std::int64_t> ret;
  int client = 0;
};

struct LinearizabilityResult {
  enum class Verdict : std::uint8_t { kLinearizable, kNotLinearizable, kGaveUp };
  Verdict verdict = Verdict::kLinearizable;
  // For kNotLinearizable: the operations no order could place next after the longest explainable
  // prefix, and what that prefix had left in the register. For kGaveUp: the state bound.
  std::string explanation;
  std::size_t states_explored = 0;
};

// Checks the history of one register that starts as `initial`. Explores at most `max_states`
// (linearized set, value) states; past that the verdict is kGaveUp, never a wrong answer or an
// unbounded search. Operations are identified in explanations by their index in `ops`.
LinearizabilityResult check_register(const std::vector<RegisterOp>& ops, std::optional<std::string> initial = std::nullopt,
                                     std::size_t max_states = 2'000'000);

}  // namespace kv
