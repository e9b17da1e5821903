// A hierarchical timer wheel (as Tokio's): O(1) insert and cancel, firing in exact (deadline,
// insertion) order, for deadlines anywhere in the 64-bit tick range. The production runtime uses
// 1 ms ticks; the wheel itself does not care what a tick is.
#pragma once

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>

namespace deja::detail {

// Intrusive node; lives inside whatever owns the timer (a sleep awaiter, say). Must not move while
// linked.
struct TimerEntry {
  static constexpr std::uint32_t kUnlinked = 0xffffffff;

  std::uint64_t deadline = 0;
  TimerEntry* prev = nullptr;
  TimerEntry* next = nullptr;
  std::uint32_t bucket = kUnlinked;  // which list of the wheel holds it

  bool linked() const noexcept { return bucket != kUnlinked; }
};

class TimerWheel {
 public:
  static constexpr unsigned kBitsPerLevel = 6;
  static constexpr unsigned kSlots = 1u << kBitsPerLevel;
  // 11 levels of 6 bits cover all 64 bits of a tick.
  static constexpr unsigned kLevels = 11;

  explicit TimerWheel(std::uint64_t now_tick = 0) noexcept : now_(now_tick) {}
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  std::uint64_t now() const noexcept { return now_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // O(1), except that a deadline already due (<= now()) is placed in order among other due entries
  // (O(1) when due deadlines arrive in order, the common case). Throws std::logic_error if `e` is
  // already linked.
  void insert(TimerEntry& e, std::uint64_t deadline_tick) {
    if (e.linked()) throw std::logic_error("deja: TimerWheel::insert of a linked entry");
    e.deadline = deadline_tick;
    place(e);
    ++size_;
  }

  // O(1). Returns false if `e` was not linked.
  bool remove(TimerEntry& e) noexcept {
    if (!e.linked()) return false;
    unlink(e);
    --size_;
    return true;
  }

  // The earliest deadline among the entries, or nullopt when empty. Costs a bitmap scan plus a
  // walk of one slot.
  std::optional<std::uint64_t> next_deadline() const noexcept {
    if (!due_.empty()) return due_.head->deadline;
    for (unsigned level = 0; level < kLevels; ++level) {
      if (occupied_[level] == 0) continue;
      const unsigned slot = static_cast<unsigned>(std::countr_zero(occupied_[level]));
      const List& list = slots_[level * kSlots + slot];
      std::uint64_t best = list.head->deadline;
      for (const TimerEntry* e = list.head->next; e; e = e->next) best = e->deadline < best ? e->deadline : best;
      return best;
    }
    return std::nullopt;
  }

  // Moves time to `now_tick` and calls on_fire(TimerEntry&) for every entry whose deadline is
  // <= now_tick, in (deadline, insertion) order. Each entry is unlinked before its callback, and
  // callbacks may insert and remove entries (a removed entry does not fire). The cost is the
  // entries fired or cascaded plus one bitmap scan per occupied slot reached, not the ticks
  // elapsed. Throws std::invalid_argument if now_tick < now().
  template <class F>
  std::size_t advance(std::uint64_t now_tick, F&& on_fire) {
    if (now_tick < now_) throw std::invalid_argument("deja: TimerWheel::advance backwards");
    std::size_t fired = 0;
    for (;;) {
      while (TimerEntry* e = due_.head) {
        unlink(*e);
        --size_;
        ++fired;
        on_fire(*e);
      }
      unsigned level = 0;
      while (level < kLevels && occupied_[level] == 0) ++level;
      if (level == kLevels) break;
      const unsigned slot = static_cast<unsigned>(std::countr_zero(occupied_[level]));
      const std::uint64_t start = slot_start(level, slot);
      if (start > now_tick) break;
      assert(start >= now_);
      now_ = start;
      // Re-place the slot's entries relative to the new time, in order: the level-0 ones (and
      // any at exactly `start`) become due, the rest fall to lower levels.
      List taken = take(level * kSlots + slot);
      while (TimerEntry* e = taken.head) {
        taken.pop_front();
        e->bucket = TimerEntry::kUnlinked;
        place(*e);
      }
    }
    now_ = now_tick;
    return fired;
  }

 private:
  struct List {
    TimerEntry* head = nullptr;
    TimerEntry* tail = nullptr;

    bool empty() const noexcept { return head == nullptr; }
    void push_back(TimerEntry& e) noexcept {
      e.prev = tail;
      e.next = nullptr;
      if (tail) tail->next = &e; else head = &e;
      tail = &e;
    }
    void insert_after(TimerEntry* pos, TimerEntry& e) noexcept {
      if (pos == nullptr) {
        e.prev = nullptr;
        e.next = head;
        if (head) head->prev = &e; else tail = &e;
        head = &e;
        return;
      }
      e.prev = pos;
      e.next = pos->next;
      if (pos->next) pos->next->prev = &e; else tail = &e;
      pos->next = &e;
    }
    void erase(TimerEntry& e) noexcept {
      if (e.prev) e.prev->next = e.next; else head = e.next;
      if (e.next) e.next->prev = e.prev; else tail = e.prev;
      e.prev = e.next = nullptr;
    }
    void pop_front() noexcept { erase(*head); }
  };

  static constexpr std::uint32_t kDueBucket = kLevels * kSlots;

  static unsigned level_for(std::uint64_t now, std::uint64_t deadline) noexcept {
    const std::uint64_t masked = (now ^ deadline) | (kSlots - 1);
    return static_cast<unsigned>(63 - std::countl_zero(masked)) / kBitsPerLevel;
  }

  std::uint64_t slot_start(unsigned level, unsigned slot) const noexcept {
    const unsigned low_bits = kBitsPerLevel * (level + 1);
    const std::uint64_t prefix = low_bits >= 64 ? 0 : now_ & ~((std::uint64_t{1} << low_bits) - 1);
    return prefix | (static_cast<std::uint64_t>(slot) << (kBitsPerLevel * level));
  }

  void place(TimerEntry& e) noexcept {
    if (e.deadline <= now_) {
      // Due already: keep the due list sorted by deadline, ties in insertion order.
      TimerEntry* pos = due_.tail;
      while (pos && pos->deadline > e.deadline) pos = pos->prev;
      due_.insert_after(pos, e);
      e.bucket = kDueBucket;
      return;
    }
    const unsigned level = level_for(now_, e.deadline);
    const unsigned slot = static_cast<unsigned>(e.deadline >> (kBitsPerLevel * level)) & (kSlots - 1);
    const std::uint32_t bucket = level * kSlots + slot;
    slots_[bucket].push_back(e);
    occupied_[level] |= std::uint64_t{1} << slot;
    e.bucket = bucket;
  }

  void unlink(TimerEntry& e) noexcept {
    assert(e.linked());
    if (e.bucket == kDueBucket) {
      due_.erase(e);
    } else {
      List& list = slots_[e.bucket];
      list.erase(e);
      if (list.empty()) occupied_[e.bucket / kSlots] &= ~(std::uint64_t{1} << (e.bucket % kSlots));
    }
    e.bucket = TimerEntry::kUnlinked;
  }

  List take(std::uint32_t bucket) noexcept {
    List taken = slots_[bucket];
    slots_[bucket] = List{};
    occupied_[bucket / kSlots] &= ~(std::uint64_t{1} << (bucket % kSlots));
    return taken;
  }

  std::uint64_t now_;
  std::size_t size_ = 0;
  std::array<std::uint64_t, kLevels> occupied_{};
  std::array<List, kLevels * kSlots> slots_{};
  List due_;
};

}  // namespace deja::detail
