// The thread-local current runtime: the seams (scheduler, time, I/O, entropy) that free functions
// such as deja::spawn, deja::sleep and deja::random reach, like tokio::runtime::Handle::current.
#pragma once

#include "deja/errors.hpp"
#include "deja/scheduler.hpp"

namespace deja::net {
class NetDriver;
}

namespace deja {

class TimeDriver;
class IoDriver;
class Entropy;
class BlockingExecutor;
class IoUring;

struct RuntimeContext {
  Scheduler* scheduler = nullptr;
  TimeDriver* time = nullptr;
  IoDriver* io = nullptr;  // null where the runtime has no I/O
  Entropy* entropy = nullptr;
  BlockingExecutor* blocking = nullptr;  // null: spawn_blocking runs the job inline (the simulator)
  // The network (net/driver.hpp). Null: deja::net uses posix sockets on `io`. Only declared here, so
  // the runtime does not depend on net; the simulator installs its simulated network.
  net::NetDriver* net = nullptr;
  // Completion-based I/O (io_uring.hpp) where the reactor is io_uring; null on epoll.
  IoUring* uring = nullptr;
};

namespace detail {
extern thread_local constinit RuntimeContext* tls_runtime;
}

// The runtime current on this thread, or nullptr outside any runtime.
inline RuntimeContext* current_runtime() noexcept { return detail::tls_runtime; }

// The current runtime; throws UsageError naming `what` when there is none.
inline RuntimeContext& require_runtime(const char* what) {
  if (RuntimeContext* rt = detail::tls_runtime) return *rt;
  throw UsageError(std::string("deja: ") + what + " needs a runtime, and none is current on this thread");
}

// Makes `rt` current for the guard's lifetime (runtimes use it around their run loops).
class RuntimeGuard {
 public:
  explicit RuntimeGuard(RuntimeContext* rt) noexcept : saved_(detail::tls_runtime) { detail::tls_runtime = rt; }
  ~RuntimeGuard() { detail::tls_runtime = saved_; }
  RuntimeGuard(const RuntimeGuard&) = delete;
  RuntimeGuard& operator=(const RuntimeGuard&) = delete;

 private:
  RuntimeContext* saved_;
};

}  // namespace deja
