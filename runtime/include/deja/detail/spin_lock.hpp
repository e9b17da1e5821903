// A lock for short critical sections that one thread nearly always takes alone (a worker's timer
// wheel, a file descriptor's readiness): unlocking is a plain store, where a pthread mutex pays an
// atomic read-modify-write and a call. Contention backs off to yield, so a preempted holder on an
// oversubscribed machine costs time slices, not a spinning core. Not for sections that block.
#pragma once

#include <atomic>
#include <thread>

namespace deja::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

class SpinLock {
 public:
  void lock() noexcept {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire); ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins < 64) {
          cpu_relax();
          ++spins;
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  bool try_lock() noexcept { return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace deja::detail
