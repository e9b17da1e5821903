// deja::race (select) and deja::timeout: the first branch to finish wins and the others are
// cancelled (destroyed at their suspension points) before the race returns.
#pragma once

#include <array>
#include <optional>
#include <tuple>
#include <utility>
#include <variant>

#include "deja/detail/awaitable_traits.hpp"
#include "deja/detail/branch.hpp"
#include "deja/detail/group_wait.hpp"
#include "deja/errors.hpp"
#include "deja/task.hpp"
#include "deja/time.hpp"

namespace deja {

namespace detail {

template <class... Ts, std::size_t... I>
Task<std::variant<StoredType<Ts>...>> race_impl(std::index_sequence<I...>, Task<Ts>... tasks) {
  std::tuple<Task<Ts>...> pending{std::move(tasks)...};
  std::tuple<Branch<Ts>...> branches;
  std::array<BranchWaiter, sizeof...(Ts)> waiters;
  // Branches start in argument order; once one has finished, the rest are never started (a
  // biased select, as Tokio's `biased;`).
  std::size_t winner = GroupWait::npos;
  (
      [&] {
        if (winner != GroupWait::npos) return;
        std::get<I>(branches) = start_branch(std::move(std::get<I>(pending)));
        waiters[I].branch = std::get<I>(branches).header();
        if (waiters[I].branch->is_complete()) winner = I;
      }(),
      ...);
  // A branch that finished in its first step decides the race without a wait (timeout's work
  // that needed no suspension, a select whose ready arm comes early: the common case).
  if (winner == GroupWait::npos) {
    GroupWait group(waiters, GroupMode::kAny, "race");
    co_await group;
    winner = group.first_finished();
  }
  // The losers are gone before race returns, even those running on another worker right now.
  // Those suspended where they are aborted are destroyed at once, and then nothing is awaited.
  abort_unfinished(waiters);
  if (!all_finished(waiters)) {
    GroupWait gone(waiters, GroupMode::kAll, "race (cancelling the losers)");
    co_await gone;
  }
  // Several may have finished by themselves before the rest were cancelled (on the multi-thread
  // runtime they run at once): the first in argument order wins, so that timeout, which puts the
  // work before its deadline, never drops work that finished (bytes a read took) for a deadline
  // that fired at the same moment.
  for (std::size_t i = 0; i < waiters.size(); ++i) {
    TaskHeader* t = waiters[i].branch;
    if (t != nullptr && t->is_complete() && !t->was_destroyed()) {
      winner = i;
      break;
    }
  }
  std::optional<std::variant<StoredType<Ts>...>> result;
  ((I == winner ? (void)result.emplace(std::in_place_index<I>, take_stored<Ts>(std::get<I>(branches).handle())) : (void)0), ...);
  co_return std::move(*result);
}

template <class T>
Task<T> timeout_impl(Duration limit, Task<T> task) {
  auto result = co_await race_impl(std::index_sequence<0, 1>{}, std::move(task), awaitable_task(sleep(limit)));
  if (result.index() == 1) throw TimedOut();
  if constexpr (!std::is_void_v<T>) co_return std::get<0>(std::move(result));
}

}  // namespace detail

// Runs the arguments (Tasks or any awaitables) concurrently; the first to finish wins. Returns a
// variant whose index is the winner's position (Unit stands for void). If the winner threw, its
// exception is rethrown. The losers are cancelled, and gone, before race returns. Where several
// finish before the others are cancelled (threads run them at once), the first in argument order
// wins and the others' results are dropped.
template <class... As>
  requires(sizeof...(As) >= 1)
auto race(As&&... awaitables) {
  return detail::race_impl(std::index_sequence_for<As...>{}, detail::into_task(std::forward<As>(awaitables))...);
}

// Runs `awaitable` for at most `limit`: its result, or TimedOut once the limit passes (the work
// is then cancelled). A negative or overflowing limit throws UsageError.
template <class Rep, class Period, class A>
auto timeout(std::chrono::duration<Rep, Period> limit, A&& awaitable) {
  return detail::timeout_impl(to_duration(limit), detail::into_task(std::forward<A>(awaitable)));
}

}  // namespace deja
