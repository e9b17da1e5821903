// detail::RingBuffer<T>: the FIFO under the mpsc channels. Power-of-two slots, allocated on the
// first push and doubled when full up to a fixed limit, so a channel costs no allocation per
// message once warm. Not synchronised: the channel's lock guards it.
#pragma once

#include <cassert>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <utility>

namespace deja::detail {

template <class T>
class RingBuffer {
 public:
  // `max_items` bounds the slots ever allocated (the caller never holds more items than that).
  explicit RingBuffer(std::size_t max_items = 1) noexcept : max_slots_(round_up_pow2(max_items)) {}
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;
  ~RingBuffer() {
    clear();
    if (slots_) std::allocator<T>().deallocate(slots_, cap_);
  }

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  template <class... A>
  void emplace_back(A&&... args) {
    if (size_ == cap_) grow();
    ::new (static_cast<void*>(slots_ + ((head_ + size_) & (cap_ - 1)))) T(std::forward<A>(args)...);
    ++size_;
  }

  // Moves the oldest item into `out` and removes it. Precondition: not empty.
  void pop_front_into(std::optional<T>& out) {
    assert(size_ != 0);
    T& front = slots_[head_];
    out.emplace(std::move(front));
    front.~T();
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
  }

  // Exchanges contents (the limit too): a channel swaps its queue out to destroy the items after
  // it has released its lock.
  void swap(RingBuffer& other) noexcept {
    std::swap(slots_, other.slots_);
    std::swap(cap_, other.cap_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
    std::swap(max_slots_, other.max_slots_);
  }

 private:
  static constexpr std::size_t kFirstSlots = 16;

  static std::size_t round_up_pow2(std::size_t n) noexcept {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
  }

  void clear() noexcept {
    for (; size_ != 0; --size_) {
      slots_[head_].~T();
      head_ = (head_ + 1) & (cap_ - 1);
    }
    head_ = 0;
  }

  void grow() {
    const std::size_t cap = cap_ == 0 ? (max_slots_ < kFirstSlots ? max_slots_ : kFirstSlots) : cap_ * 2;
    assert(cap <= max_slots_ && "RingBuffer pushed past its limit");
    T* slots = std::allocator<T>().allocate(cap);
    std::size_t moved = 0;
    try {
      for (; moved < size_; ++moved) {
        ::new (static_cast<void*>(slots + moved)) T(std::move_if_noexcept(slots_[(head_ + moved) & (cap_ - 1)]));
      }
    } catch (...) {
      for (std::size_t i = 0; i < moved; ++i) slots[i].~T();
      std::allocator<T>().deallocate(slots, cap);
      throw;
    }
    if (slots_) {
      clear();
      std::allocator<T>().deallocate(slots_, cap_);
    }
    slots_ = slots;
    cap_ = cap;
    head_ = 0;
    size_ = moved;
  }

  T* slots_ = nullptr;
  std::size_t cap_ = 0;  // a power of two, or 0 before the first push
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t max_slots_;
};

}  // namespace deja::detail
