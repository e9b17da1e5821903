// The bounded run queue of one multi-thread worker, after Tokio's: a fixed ring that its owner
// pushes at the back and pops at the front, and that other workers steal half of at a time.
// When it is full the owner moves half of it to the runtime's injection queue (the caller does,
// from the batch that push_back hands back), so a queue never grows and never refuses a task.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace deja::detail {

struct TaskHeader;

class StealQueue {
 public:
  static constexpr std::uint32_t kCapacity = 256;
  static constexpr std::uint32_t kMask = kCapacity - 1;

  StealQueue() noexcept {
    for (auto& s : slots_) s.store(nullptr, std::memory_order_relaxed);
  }
  StealQueue(const StealQueue&) = delete;
  StealQueue& operator=(const StealQueue&) = delete;

  // Tasks the owner would still pop; exact for the owner, a snapshot for anyone else.
  std::uint32_t size() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    return tail_.load(std::memory_order_acquire) - real_part(head);
  }
  bool empty() const noexcept { return size() == 0; }

  // Owner only. Appends `t`. If the queue is full, takes half of it (kCapacity / 2 tasks) out in
  // FIFO order into `overflow` followed by `t`, and returns how many tasks it put there (the
  // caller moves them to the injection queue); returns 0 when `t` went into the queue.
  std::uint32_t push_back(TaskHeader* t, TaskHeader** overflow) noexcept {
    for (;;) {
      const std::uint64_t head = head_.load(std::memory_order_acquire);
      const std::uint32_t steal = steal_part(head);
      const std::uint32_t real = real_part(head);
      const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
      if (tail - steal < kCapacity) {
        slots_[tail & kMask].store(t, std::memory_order_relaxed);
        tail_.store(tail + 1, std::memory_order_release);
        return 0;
      }
      if (steal != real) {
        // A thief is copying half of the queue out right now: room is coming, but rather than
        // wait for it, this one task goes to the injection queue.
        overflow[0] = t;
        return 1;
      }
      // Full and nobody stealing: claim the older half, unless a thief got there first.
      constexpr std::uint32_t half = kCapacity / 2;
      std::uint64_t expected = head;
      if (!head_.compare_exchange_strong(expected, pack(real + half, real + half), std::memory_order_acq_rel)) continue;
      for (std::uint32_t i = 0; i < half; ++i) overflow[i] = slots_[(real + i) & kMask].load(std::memory_order_relaxed);
      overflow[half] = t;
      return half + 1;
    }
  }

  // Owner only. The oldest task, or null.
  TaskHeader* pop_front() noexcept {
    std::uint64_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t steal = steal_part(head);
      const std::uint32_t real = real_part(head);
      if (real == tail_.load(std::memory_order_relaxed)) return nullptr;
      const std::uint64_t next = steal == real ? pack(real + 1, real + 1) : pack(steal, real + 1);
      if (head_.compare_exchange_weak(head, next, std::memory_order_acq_rel)) {
        return slots_[real & kMask].load(std::memory_order_relaxed);
      }
    }
  }

  // Any thread but the owner of `this`; `dst` must be the caller's own queue, and empty. Moves
  // half of this queue (rounded up) into `dst` and returns one of the moved tasks to run now, or
  // null if there was nothing to steal (or another thief was busy here). `stolen` gets the count.
  TaskHeader* steal_into(StealQueue& dst, std::uint32_t& stolen) noexcept {
    stolen = 0;
    const std::uint32_t dst_tail = dst.tail_.load(std::memory_order_relaxed);
    std::uint64_t prev = head_.load(std::memory_order_acquire);
    std::uint32_t first = 0;
    std::uint32_t n = 0;
    std::uint64_t claimed = 0;
    for (;;) {
      const std::uint32_t steal = steal_part(prev);
      const std::uint32_t real = real_part(prev);
      if (steal != real) return nullptr;  // another thief
      const std::uint32_t tail = tail_.load(std::memory_order_acquire);
      n = tail - real;
      n -= n / 2;
      if (n == 0) return nullptr;
      claimed = pack(steal, real + n);
      first = real;
      if (head_.compare_exchange_weak(prev, claimed, std::memory_order_acq_rel)) break;
    }
    // The claimed slots [first, first + n) cannot be reused by the owner until the claim is
    // released below (push_back counts from the steal part).
    for (std::uint32_t i = 0; i < n; ++i) {
      dst.slots_[(dst_tail + i) & kMask].store(slots_[(first + i) & kMask].load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    prev = claimed;
    for (;;) {
      const std::uint32_t real = real_part(prev);
      if (head_.compare_exchange_weak(prev, pack(real, real), std::memory_order_acq_rel)) break;
    }
    stolen = n;
    TaskHeader* ret = dst.slots_[(dst_tail + n - 1) & kMask].load(std::memory_order_relaxed);
    if (n > 1) dst.tail_.store(dst_tail + n - 1, std::memory_order_release);
    return ret;
  }

 private:
  // head_ packs two indices: the steal part (where a thief's claim begins; equal to the real
  // part when nobody is stealing) and the real part (the owner's next pop).
  static constexpr std::uint64_t pack(std::uint32_t steal, std::uint32_t real) noexcept {
    return (static_cast<std::uint64_t>(steal) << 32) | real;
  }
  static constexpr std::uint32_t steal_part(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h >> 32); }
  static constexpr std::uint32_t real_part(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h); }

  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::array<std::atomic<TaskHeader*>, kCapacity> slots_;
};

}  // namespace deja::detail
