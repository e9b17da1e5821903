// What co_await on a value yields, and turning any awaitable into a Task, for the combinators.
#pragma once

#include <type_traits>
#include <utility>

#include "deja/task.hpp"

namespace deja::detail {

template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
    return std::forward<A>(a).operator co_await();
  } else {
    return std::forward<A>(a);
  }
}

template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

template <class T>
struct IsTask : std::false_type {};
template <class T>
struct IsTask<Task<T>> : std::true_type {};

template <class A>
Task<await_result_t<A>> awaitable_task(A a) {
  if constexpr (std::is_void_v<await_result_t<A>>) {
    co_await std::move(a);
  } else {
    co_return co_await std::move(a);
  }
}

// A Task passes through; any other awaitable is wrapped in one (taken by value).
template <class A>
auto into_task(A&& a) {
  using D = std::remove_cvref_t<A>;
  if constexpr (IsTask<D>::value) {
    return D(std::forward<A>(a));
  } else {
    return awaitable_task<D>(D(std::forward<A>(a)));
  }
}

template <class A>
using into_task_t = decltype(into_task(std::declval<A>()));

}  // namespace deja::detail
