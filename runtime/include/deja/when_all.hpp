// deja::when_all: runs tasks concurrently and returns all their results. If one throws (or is
// cancelled) the others are cancelled and that first failure is rethrown.
#pragma once

#include <array>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "deja/detail/awaitable_traits.hpp"
#include "deja/detail/branch.hpp"
#include "deja/detail/group_wait.hpp"
#include "deja/task.hpp"

namespace deja {

namespace detail {

template <class... Ts, std::size_t... I>
Task<std::tuple<StoredType<Ts>...>> when_all_impl(std::index_sequence<I...>, Task<Ts>... tasks) {
  std::tuple<Branch<Ts>...> branches{start_branch(std::move(tasks))...};
  std::array<BranchWaiter, sizeof...(Ts)> waiters;
  ((waiters[I].branch = std::get<I>(branches).header()), ...);
  std::size_t failed = GroupWait::npos;
  {
    GroupWait group(waiters, GroupMode::kAllFailFast, "when_all");
    co_await group;
    failed = group.first_failed();
  }
  if (failed != GroupWait::npos) {
    // The other branches are gone before the first failure is rethrown.
    abort_unfinished(waiters);
    if (!all_finished(waiters)) {
      GroupWait gone(waiters, GroupMode::kAll, "when_all (cancelling the other branches)");
      co_await gone;
    }
    ((I == failed ? (void)std::get<I>(branches).handle().take_finished() : (void)0), ...);
  }
  co_return std::tuple<StoredType<Ts>...>{take_stored<Ts>(std::get<I>(branches).handle())...};
}

}  // namespace detail

// Awaits every argument (Tasks or any awaitables) concurrently; returns their results in order,
// with Unit standing for void.
template <class... As>
auto when_all(As&&... awaitables) {
  return detail::when_all_impl(std::index_sequence_for<As...>{}, detail::into_task(std::forward<As>(awaitables))...);
}

// Awaits every task of `tasks` concurrently; returns their results in order.
template <class T>
Task<std::vector<detail::StoredType<T>>> when_all(std::vector<Task<T>> tasks) {
  std::vector<detail::Branch<T>> branches;
  branches.reserve(tasks.size());
  for (Task<T>& t : tasks) branches.push_back(detail::start_branch(std::move(t)));
  std::vector<detail::BranchWaiter> waiters(branches.size());
  for (std::size_t i = 0; i < branches.size(); ++i) waiters[i].branch = branches[i].header();
  std::size_t failed = detail::GroupWait::npos;
  {
    detail::GroupWait group(waiters, detail::GroupMode::kAllFailFast, "when_all");
    co_await group;
    failed = group.first_failed();
  }
  if (failed != detail::GroupWait::npos) {
    detail::abort_unfinished(waiters);
    if (!detail::all_finished(waiters)) {
      detail::GroupWait gone(waiters, detail::GroupMode::kAll, "when_all (cancelling the other branches)");
      co_await gone;
    }
    branches[failed].handle().take_finished();
  }
  std::vector<detail::StoredType<T>> results;
  results.reserve(branches.size());
  for (auto& b : branches) results.push_back(detail::take_stored<T>(b.handle()));
  co_return results;
}

}  // namespace deja
