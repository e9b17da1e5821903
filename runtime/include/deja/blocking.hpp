// deja::spawn_blocking(f): runs `f` where blocking is harmless and returns a JoinHandle for its
// result, like tokio::task::spawn_blocking.
//
//   auto h = deja::spawn_blocking([] { return read_whole_file("big.csv"); });
//   std::string text = co_await h;  // an exception thrown by f is rethrown here
//
// On the production runtime `f` runs on the runtime's BlockingPool. Under the simulator it runs
// in the spawned task's first step, on the simulator's thread, so it is ordered by the schedule
// like any other step and replays exactly (it must then not block for real, nor depend on
// anything outside the simulation). Aborting the handle does not stop `f` once it has started
// (no thread can be cancelled safely); its result is dropped.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "deja/context.hpp"
#include "deja/join_handle.hpp"
#include "deja/spawn.hpp"
#include "deja/sync/oneshot.hpp"
#include "deja/task.hpp"

namespace deja {

// Where a runtime runs blocking jobs (RuntimeContext::blocking; null means "here, inline").
class BlockingExecutor {
 public:
  virtual ~BlockingExecutor() = default;
  // Runs `job` on another thread, eventually. The job does not throw. May throw CapacityExceeded.
  virtual void execute(std::function<void()> job) = 0;
};

namespace detail {

template <class R>
struct BlockingResult {
  std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> value;
  std::exception_ptr error;
};

template <class R, class F>
Task<R> run_blocking(F f) {
  RuntimeContext& rt = require_runtime("deja::spawn_blocking");
  if (rt.blocking == nullptr) {
    if constexpr (std::is_void_v<R>) {
      f();
      co_return;
    } else {
      co_return f();
    }
  }
  auto [tx, rx] = oneshot::channel<BlockingResult<R>>();
  // std::function needs a copyable callable; the job is shared instead of copied.
  struct Job {
    F f;
    oneshot::Sender<BlockingResult<R>> tx;
  };
  auto job = std::make_shared<Job>(Job{std::move(f), std::move(tx)});
  rt.blocking->execute([job]() noexcept {
    BlockingResult<R> r;
    try {
      if constexpr (std::is_void_v<R>) {
        job->f();
        r.value.emplace(true);
      } else {
        r.value.emplace(job->f());
      }
    } catch (...) {
      r.error = std::current_exception();
    }
    (void)job->tx.send(std::move(r));  // kClosed: the task was aborted; the result is dropped
  });
  BlockingResult<R> r = co_await rx;
  if (r.error) std::rethrow_exception(r.error);
  if constexpr (!std::is_void_v<R>) co_return std::move(*r.value);
}

}  // namespace detail

// Throws UsageError with no runtime current, and CapacityExceeded when the pool's queue is full.
template <class F>
  requires std::is_invocable_v<F&>
JoinHandle<std::invoke_result_t<F&>> spawn_blocking(F f) {
  return spawn(detail::run_blocking<std::invoke_result_t<F&>>(std::move(f)));
}

}  // namespace deja
