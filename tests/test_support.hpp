// Helpers for tests. Never put co_await inside a Catch2 macro: Catch v2 wraps the expression in
// __builtin_constant_p, and g++ 12 then runs the co_await twice. Await first, then REQUIRE.
#pragma once

#include <type_traits>
#include <utility>

#include "deja/join_handle.hpp"
#include "deja/task.hpp"
#include "deja/time.hpp"

namespace deja_test {

// What `co_await a` yields, for an lvalue `a` (co_await may not appear in decltype).
template <class A>
auto await_result_of(A& a) {
  if constexpr (requires { a.operator co_await(); }) {
    return std::type_identity<decltype(a.operator co_await().await_resume())>{};
  } else {
    return std::type_identity<decltype(a.await_resume())>{};
  }
}
template <class A>
using await_result_t = typename decltype(await_result_of(std::declval<A&>()))::type;

// True if awaiting `a` (kept by reference: await it right away) throws E. A result is bound and
// dropped, so awaitables whose result is [[nodiscard]] (a guard, a permit) work too.
template <class E, class A>
deja::Task<bool> throws_as(A& a) {
  try {
    if constexpr (std::is_void_v<await_result_t<A>>) {
      co_await a;
    } else {
      auto result = co_await a;
      (void)result;
    }
  } catch (const E&) {
    co_return true;
  } catch (...) {
    co_return false;
  }
  co_return false;
}

// Yields until `h` has finished, at most `rounds` times; false if it has not, so that a lost
// wake-up fails the test instead of hanging it.
template <class T>
deja::Task<bool> settles(deja::JoinHandle<T>* h, int rounds = 16) {
  for (int i = 0; i < rounds && !h->is_finished(); ++i) co_await deja::yield_now();
  co_return h->is_finished();
}

}  // namespace deja_test
