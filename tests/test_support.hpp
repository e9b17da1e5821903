// Helpers for tests. Never put co_await inside a Catch2 macro: Catch v2 wraps the expression in
// __builtin_constant_p, and g++ 12 then runs the co_await twice. Await first, then REQUIRE.
#pragma once

#include <utility>

#include "deja/task.hpp"

namespace deja_test {

// True if awaiting `a` (kept by reference: await it right away) throws E.
template <class E, class A>
deja::Task<bool> throws_as(A& a) {
  try {
    co_await a;
  } catch (const E&) {
    co_return true;
  } catch (...) {
    co_return false;
  }
  co_return false;
}

}  // namespace deja_test
