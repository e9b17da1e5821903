// The FIFO of ready tasks of a single-threaded scheduler: a growable ring buffer. A task is in it
// at most once (the kScheduled bit), so its size is bounded by the runtime's task limit.
#pragma once

#include <cassert>
#include <cstddef>
#include <memory>

namespace deja::detail {

struct TaskHeader;

class ReadyQueue {
 public:
  ReadyQueue() { grow(); }

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }

  void push(TaskHeader* t) {
    if (tail_ - head_ == capacity_) grow();
    slots_[tail_++ & (capacity_ - 1)] = t;
  }

  TaskHeader* pop() noexcept {
    assert(!empty());
    return slots_[head_++ & (capacity_ - 1)];
  }

  void clear() noexcept { head_ = tail_ = 0; }

 private:
  void grow() {
    const std::size_t cap = capacity_ ? capacity_ * 2 : 1024;
    auto slots = std::make_unique<TaskHeader*[]>(cap);
    for (std::size_t i = 0; i < size(); ++i) slots[i] = slots_[(head_ + i) & (capacity_ - 1)];
    tail_ = size();
    head_ = 0;
    slots_ = std::move(slots);
    capacity_ = cap;
  }

  std::unique_ptr<TaskHeader*[]> slots_;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace deja::detail
