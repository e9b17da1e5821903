// deja::yield_now(): lets every other ready task run before the current one continues.
#pragma once

#include <coroutine>

#include "deja/detail/task_header.hpp"

namespace deja {

struct [[nodiscard]] YieldNow {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept {
    // The scheduler requeues it once it has suspended, behind the others.
    detail::TaskHeader* t = detail::park_current(h, "yield");
    t->scheduler->yield_current(t);
  }
  void await_resume() const noexcept {}
};

inline YieldNow yield_now() noexcept { return {}; }

}  // namespace deja
