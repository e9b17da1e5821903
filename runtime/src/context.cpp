// Thread-local current runtime and task, and the free functions of the seams.
#include <cstdio>
#include <limits>

#include "deja/context.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/random.hpp"
#include "deja/time.hpp"

namespace deja {

__extension__ typedef unsigned __int128 Uint128;

namespace detail {

void print_unobserved_exception(const std::exception_ptr& e) noexcept;

thread_local constinit RuntimeContext* tls_runtime = nullptr;
thread_local constinit TaskHeader* tls_current_task = nullptr;

void report_unobserved_exception(std::exception_ptr e) noexcept {
  if (RuntimeContext* rt = tls_runtime; rt && rt->scheduler) {
    rt->scheduler->on_unobserved_exception(std::move(e));
    return;
  }
  print_unobserved_exception(e);
}

void print_unobserved_exception(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "deja: a detached task failed and nobody observed it: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "deja: a detached task failed with a non-standard exception and nobody observed it\n");
  }
}

[[noreturn]] void assertion_failed(const char* expr, const char* file, int line) {
  std::string what = std::string("DEJA_ASSERT(") + expr + ") failed at " + file + ":" + std::to_string(line);
  if (RuntimeContext* rt = tls_runtime; rt && rt->scheduler) rt->scheduler->on_assertion_failed(what);
  throw AssertionFailed(what);
}

}  // namespace detail

void Scheduler::on_unobserved_exception(std::exception_ptr e) noexcept { detail::print_unobserved_exception(e); }

void Scheduler::on_assertion_failed(const std::string& what) noexcept { std::fprintf(stderr, "deja: %s\n", what.c_str()); }

Clock::time_point Clock::now() noexcept {
  if (RuntimeContext* rt = detail::tls_runtime; rt && rt->time) return rt->time->now();
  return time_point(std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now().time_since_epoch()));
}

Instant now() { return require_runtime("deja::now").time->now(); }

Instant deadline_after(Duration d) {
  if (d < Duration::zero()) throw UsageError("deja: negative duration");
  const Instant base = now();
  if (d > Instant::max() - base) throw UsageError("deja: deadline overflows the clock's range");
  return base + d;
}

std::uint64_t Entropy::next_below(std::uint64_t bound) noexcept {
  // Lemire's nearly divisionless method: unbiased, one multiplication in the common case.
  Uint128 m = static_cast<Uint128>(next_u64()) * bound;
  auto low = static_cast<std::uint64_t>(m);
  if (low < bound) {
    const std::uint64_t threshold = -bound % bound;
    while (low < threshold) {
      m = static_cast<Uint128>(next_u64()) * bound;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

std::uint64_t random_below(std::uint64_t bound) {
  if (bound == 0) throw UsageError("deja::random_below(0): the range is empty");
  return require_runtime("deja::random_below").entropy->next_below(bound);
}

bool buggify(double probability) {
  if (!(probability >= 0.0 && probability <= 1.0)) throw UsageError("deja::buggify: probability must be in [0, 1]");
  RuntimeContext* rt = detail::tls_runtime;
  return rt && rt->entropy && rt->entropy->buggify(probability);
}

}  // namespace deja
