// deja::yield_now(): lets every other ready task run before the current one continues.
#pragma once

#include <coroutine>

#include "deja/detail/task_header.hpp"

namespace deja {

struct [[nodiscard]] YieldNow {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept {
    // Waking a running task marks it to run again once it has suspended, behind the others.
    detail::wake(detail::park_current(h, "yield"));
  }
  void await_resume() const noexcept {}
};

inline YieldNow yield_now() noexcept { return {}; }

}  // namespace deja
