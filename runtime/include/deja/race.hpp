// deja::race (select) and deja::timeout: the first branch to finish wins and the others are
// cancelled (destroyed at their suspension points) before the race returns.
#pragma once

#include <array>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "deja/detail/awaitable_traits.hpp"
#include "deja/detail/branch.hpp"
#include "deja/detail/group_wait.hpp"
#include "deja/detail/timer_branch.hpp"
#include "deja/errors.hpp"
#include "deja/task.hpp"
#include "deja/time.hpp"

namespace deja {

namespace detail {

// What race makes of an argument (an arm): a Sleep stays one, waited on in place (TimerBranch);
// anything else becomes a Task, spawned as a branch.
template <class Arm>
struct RaceArm;
template <class T>
struct RaceArm<Task<T>> {
  using Result = T;
  using Branch = detail::Branch<T>;
};
template <>
struct RaceArm<Sleep> {
  using Result = void;
  using Branch = TimerBranch;
};

template <class A>
auto into_race_arm(A&& a) {
  if constexpr (std::is_same_v<std::remove_cvref_t<A>, Sleep>) {
    return Sleep(std::forward<A>(a));
  } else {
    return into_task(std::forward<A>(a));
  }
}

template <class... Arms, std::size_t... I>
Task<std::variant<StoredType<typename RaceArm<Arms>::Result>...>> race_impl(std::index_sequence<I...>, Arms... arms) {
  std::tuple<Arms...> pending{std::move(arms)...};
  std::tuple<typename RaceArm<Arms>::Branch...> branches;
  std::array<BranchWaiter, sizeof...(Arms)> waiters;
  // Branches start in argument order; once one has finished, the rest are never started (a
  // biased select, as Tokio's `biased;`). Starting a sleep arms its timer, and no task.
  std::size_t winner = GroupWait::npos;
  (
      [&] {
        if (winner != GroupWait::npos) return;
        if constexpr (std::is_same_v<Arms, Sleep>) {
          waiters[I].timer = &std::get<I>(branches);
          if (waiters[I].timer->start(std::move(std::get<I>(pending)))) winner = I;
        } else {
          std::get<I>(branches) = start_branch(std::move(std::get<I>(pending)));
          waiters[I].branch = std::get<I>(branches).header();
          if (waiters[I].branch->is_complete()) winner = I;
        }
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
  // runtime they run at once; a timer fires whenever its driver gets to it). Finished work wins
  // over a fired sleep, which has nothing to lose, and among work the first in argument order:
  // so timeout, which puts the work before its deadline, and a race of a receive against a
  // sleep never drop what the work took (bytes read, a message) for a deadline that fired at the
  // same moment. Only when no work finished does the first fired sleep win.
  std::size_t first_work = GroupWait::npos, first_timer = GroupWait::npos;
  for (std::size_t i = 0; i < waiters.size(); ++i) {
    const BranchWaiter& w = waiters[i];
    if (w.branch != nullptr && w.branch->is_complete() && !w.branch->was_destroyed()) {
      first_work = i;
      break;
    }
    if (w.timer != nullptr && first_timer == GroupWait::npos && w.timer->fired()) first_timer = i;
  }
  if (first_work != GroupWait::npos) winner = first_work;
  else if (first_timer != GroupWait::npos) winner = first_timer;
  std::optional<std::variant<StoredType<typename RaceArm<Arms>::Result>...>> result;
  (
      [&] {
        if (I != winner) return;
        if constexpr (std::is_same_v<Arms, Sleep>) {
          result.emplace(std::in_place_index<I>, Unit{});
        } else {
          result.emplace(std::in_place_index<I>, take_stored<typename RaceArm<Arms>::Result>(std::get<I>(branches).handle()));
        }
      }(),
      ...);
  co_return std::move(*result);
}

template <class T>
Task<T> timeout_impl(Duration limit, Task<T> task) {
  auto result = co_await race_impl(std::index_sequence<0, 1>{}, std::move(task), sleep(limit));
  if (result.index() == 1) throw TimedOut();
  if constexpr (!std::is_void_v<T>) co_return std::get<0>(std::move(result));
}

}  // namespace detail

// Runs the arguments (Tasks or any awaitables) concurrently; the first to finish wins. Returns a
// variant whose index is the winner's position (Unit stands for void). If the winner threw, its
// exception is rethrown. The losers are cancelled, and gone, before race returns. Where several
// finish before the others are cancelled (threads run them at once, a timer fires meanwhile),
// finished work wins over a fired sleep, and otherwise the first in argument order; the others'
// results are dropped, which for work that finished (a message a receive took) is a loss: race
// two receives only where that is acceptable. A Sleep argument costs no task: its timer is
// waited on in place (a sleep wrapped in a task of its own counts as work).
template <class... As>
  requires(sizeof...(As) >= 1)
auto race(As&&... awaitables) {
  return detail::race_impl(std::index_sequence_for<As...>{}, detail::into_race_arm(std::forward<As>(awaitables))...);
}

// Runs `awaitable` for at most `limit`: its result, or TimedOut once the limit passes (the work
// is then cancelled). A negative or overflowing limit throws UsageError.
template <class Rep, class Period, class A>
auto timeout(std::chrono::duration<Rep, Period> limit, A&& awaitable) {
  return detail::timeout_impl(to_duration(limit), detail::into_task(std::forward<A>(awaitable)));
}

}  // namespace deja
