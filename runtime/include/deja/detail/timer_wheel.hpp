// Hierarchical timer wheel for deja's time drivers (runtime and simulator): intrusive, allocation-free,
// O(1) insert and remove, exact next deadline, firing in (deadline, insertion) order anywhere in
// the 64-bit tick range. The production runtime uses 1 ms ticks; the wheel does not care.
//
// One wheel. As in Tokio: levels of 64 slots (6 bits per level), a 64-bit occupancy bitmap per
// level. There are 11 levels, so the top one spans all 2^64 ticks and no deadline needs an
// overflow list. A wheel has a reference tick, its cursor. An entry lives at the level of the
// highest 6-bit group in which its deadline differs from the cursor, in the slot named by its own
// digit there: level-0 slots hold one tick each, a level-L slot one aligned block of 64^L ticks.
// No slot at level >= 1 has the cursor's digit; slots with a smaller digit ("below" slots) hold
// deadlines earlier than the cursor, the others later ones. The minimum is in the lowest below
// slot of the highest level that has one, else in the lowest level-0 slot, else in the lowest slot
// of the lowest occupied level: a few bitmap operations. A level-0 slot is exact. A bigger slot is
// scanned when it holds at most kScanLimit entries, otherwise split: the cursor moves to the
// slot's first tick and its entries are placed again, at lower levels (a cascade; the cursor only
// moves to where no other entry's placement changes, except in the last-resort case below).
//
// Ties. Placement is a function of (deadline, cursor) alone, so all entries with one deadline
// always share one list; lists are only appended to, or moved whole and in order. Hence within a
// deadline list order is insertion order, through every cascade.
//
// A stack of wheels. next_deadline() may move a wheel's cursor ahead of now() (splitting a big
// slot to find its exact minimum). A later insert earlier than that cursor must not disturb the
// work done, so it goes to a second wheel anchored at now(), whose entries are all earlier than
// the first wheel's cursor; and so on, up to kMaxDepth wheels with strictly decreasing cursors.
// Wheel i holds deadlines in [cursor(i), cursor(i-1)); the deepest holds the minimum. An entry
// never moves between wheels; empty wheels at the deep end are dropped. Only when all kMaxDepth
// wheels are in use does an even earlier insert go below the deepest cursor (a below slot); if
// such a slot grows past kScanLimit, the deepest wheel's cursor is pulled back to it, folding the
// entries near the old cursor into one slot (they cascade down again later).
//
// Costs. insert, remove: O(1) (at most kMaxDepth cursor comparisons). next_deadline: O(levels)
// bitmap work plus a scan of at most kScanLimit entries, or cascades. advance: O(levels) bitmap
// work per entry fired or slot cascaded; empty slots are skipped through the bitmaps, so the
// number of ticks crossed does not matter. Each cascade moves an entry at least one level down, so
// an entry moves at most kLevels - 1 times before it fires (plus the last-resort case above).
#pragma once

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>

namespace deja::detail {

// Intrusive node; lives inside the object that owns the timer (a sleep awaiter, say). It must not
// move while linked. Copying an unlinked entry copies its deadline only; copying a linked one is a
// bug (asserted in debug builds).
struct TimerEntry {
  static constexpr std::uint32_t kUnlinked = 0xffffffff;

  std::uint64_t deadline = 0;        // tick
  TimerEntry* prev = nullptr;        // intrusive links owned by the wheel (a circular list)
  TimerEntry* next = nullptr;
  std::uint32_t bucket = kUnlinked;  // index of the list holding it, or kUnlinked

  TimerEntry() noexcept = default;
  TimerEntry(const TimerEntry& other) noexcept : deadline(other.deadline) { assert(!other.linked()); }
  TimerEntry& operator=(const TimerEntry& other) noexcept {
    assert(!linked() && !other.linked());
    deadline = other.deadline;
    return *this;
  }
  ~TimerEntry() = default;

  bool linked() const noexcept { return bucket != kUnlinked; }
};

class TimerWheel {
 public:
  static constexpr unsigned kBitsPerLevel = 6;
  static constexpr unsigned kSlots = 1u << kBitsPerLevel;
  static constexpr unsigned kLevels = 11;  // 11 * 6 = 66 >= 64 bits
  static constexpr unsigned kMaxDepth = 4;  // wheels in the stack (see the header comment)
  // A slot with at most this many entries is scanned for its minimum instead of being split.
  static constexpr std::size_t kScanLimit = 32;

  explicit TimerWheel(std::uint64_t now_tick = 0) noexcept : now_(now_tick) {
    for (unsigned i = 0; i < kMaxDepth; ++i) wheels_[i].base = i * kBucketsPerWheel;
    wheels_[0].cursor = now_tick;
  }
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  // Entries still linked when the wheel is destroyed are left as they are (still marked linked).
  ~TimerWheel() = default;

  // The last tick advanced to. Inside an on_fire callback: the deadline of the entry being fired
  // (or the previous now(), if that deadline was already in the past).
  std::uint64_t now() const noexcept { return now_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // O(1). Any deadline is accepted; one <= now() fires on the next advance() (or later in the
  // current one, if called from a callback), in (deadline, insertion) order with everything else.
  // Throws std::logic_error if `e` is already linked (and leaves it as it was).
  void insert(TimerEntry& e, std::uint64_t deadline_tick) {
    if (e.linked()) throw std::logic_error("deja: TimerWheel::insert of an entry that is already linked");
    e.deadline = deadline_tick;
    Wheel& w = wheel_for(deadline_tick);
    w.place(e);
    ++w.size;
    ++size_;
  }

  // O(1). Returns false (and does nothing) if `e` is not linked.
  bool remove(TimerEntry& e) noexcept {
    if (!e.linked()) return false;
    unlink(e);
    return true;
  }

  // The smallest deadline of any linked entry (exact), or nullopt when empty. This is less than
  // now() when an entry was inserted with a past deadline (advance(now()) fires it). May cascade
  // internally, which is not observable except through cost.
  std::optional<std::uint64_t> next_deadline() {
    for (;;) {
      Wheel& w = wheels_[depth_ - 1];
      const Pick p = w.pick();
      if (!p.found) return std::nullopt;
      if (p.level == 0) {
        assert(w.heads[p.slot]->deadline == w.slot_start(0, p.slot));
        return w.heads[p.slot]->deadline;
      }
      if (const TimerEntry* e = w.scan_min(p.level, p.slot)) return e->deadline;
      w.split(p);
    }
  }

  // Moves time to `now_tick` and calls on_fire(TimerEntry&) for every entry whose deadline is
  // <= now_tick, smallest (deadline, insertion order) first. Each entry is unlinked before its
  // callback runs. Callbacks may insert and remove entries, including the one being fired: what
  // is linked and due when a callback returns is what fires next, so a removed entry never fires
  // and an inserted one fires in this advance if its deadline is <= now_tick. Returns how many
  // fired. Throws std::invalid_argument if now_tick < now(), and std::logic_error if called from
  // a callback. If a callback throws, the exception propagates: the entry it was given stays
  // unlinked, the others stay linked, and now() is the last fired deadline.
  template <class F>
  std::size_t advance(std::uint64_t now_tick, F&& on_fire) {
    if (now_tick < now_) throw std::invalid_argument("deja: TimerWheel::advance to a tick before now()");
    if (advancing_) throw std::logic_error("deja: TimerWheel::advance called from an on_fire callback");
    struct Guard {
      bool& flag;
      ~Guard() { flag = false; }
    } guard{advancing_};
    advancing_ = true;
    std::size_t fired = 0;
    for (;;) {
      Wheel& w = wheels_[depth_ - 1];  // holds the minimum
      const Pick p = w.pick();
      if (!p.found) break;
      TimerEntry* e = nullptr;
      if (p.level == 0) {
        e = w.heads[p.slot];
        if (e->deadline > now_tick) break;
      } else {
        if (w.slot_start(p.level, p.slot) > now_tick) break;  // all of the slot is later
        if (!p.below || (e = w.scan_min(p.level, p.slot)) == nullptr) {
          w.split(p);
          continue;
        }
        if (e->deadline > now_tick) break;
      }
      unlink(*e);
      if (e->deadline > now_) now_ = e->deadline;
      ++fired;
      on_fire(*e);
    }
    now_ = now_tick;
    Wheel& w = wheels_[depth_ - 1];
    if (w.cursor < now_tick) {
      // Nothing is below this cursor (it would have been due) and its earliest slot starts after
      // now_tick, so moving the cursor there changes no entry's placement. Shallower wheels all
      // have cursors above the deepest's entries, which are > now_tick.
      assert(!w.pick().found || w.slot_start(w.pick().level, w.pick().slot) > now_tick);
      w.cursor = now_tick;
    }
    return fired;
  }

  // Checks every structural invariant; O(size). For tests and debugging.
  bool check_invariants() const noexcept {
    if (depth_ < 1 || depth_ > kMaxDepth) return false;
    if (depth_ > 1 && wheels_[depth_ - 1].size == 0) return false;
    std::size_t total = 0;
    for (unsigned i = 0; i < kMaxDepth; ++i) {
      const Wheel& w = wheels_[i];
      if (i >= depth_) {
        if (w.size != 0) return false;
        continue;
      }
      if (i > 0 && w.cursor >= wheels_[i - 1].cursor) return false;
      // Wheel i holds [cursor(i), cursor(i-1)); only the deepest may hold deadlines below its
      // cursor, and only once the stack is full.
      const std::uint64_t lo = (i + 1 < depth_ || depth_ < kMaxDepth) ? w.cursor : 0;
      const std::uint64_t hi = i > 0 ? wheels_[i - 1].cursor - 1 : ~std::uint64_t{0};
      if (!w.check(lo, hi)) return false;
      total += w.size;
    }
    return total == size_;
  }

 private:
  static constexpr std::uint32_t kBucketsPerWheel = kLevels * kSlots;

  struct Pick {
    bool found = false;
    bool below = false;  // a slot of deadlines earlier than the cursor
    unsigned level = 0;
    unsigned slot = 0;
  };

  static unsigned level_of(std::uint64_t cursor, std::uint64_t deadline) noexcept {
    const std::uint64_t differing = (cursor ^ deadline) | (kSlots - 1);
    return static_cast<unsigned>(63 - std::countl_zero(differing)) / kBitsPerLevel;
  }
  static unsigned digit(std::uint64_t tick, unsigned level) noexcept {
    return static_cast<unsigned>(tick >> (kBitsPerLevel * level)) & (kSlots - 1);
  }
  static unsigned lowest(std::uint64_t bits) noexcept { return static_cast<unsigned>(std::countr_zero(bits)); }

  // One wheel of the stack: the levels, relative to its cursor.
  struct Wheel {
    std::uint64_t cursor = 0;
    std::size_t size = 0;                // entries linked here
    std::uint32_t base = 0;              // global index of its first list
    std::uint32_t nonempty_levels = 0;   // bit L set iff occupied[L] != 0
    std::array<std::uint64_t, kLevels> occupied{};
    std::array<TimerEntry*, kBucketsPerWheel> heads{};

    // First tick of `slot` at `level`, relative to the cursor.
    std::uint64_t slot_start(unsigned level, unsigned slot) const noexcept {
      const unsigned shift = kBitsPerLevel * level;
      const unsigned above = shift + kBitsPerLevel;
      const std::uint64_t prefix = above >= 64 ? 0 : (cursor >> above) << above;
      return prefix | (static_cast<std::uint64_t>(slot) << shift);
    }

    // The slot holding this wheel's minimum (see the header comment for why this order is right).
    Pick pick() const noexcept {
      if (size == 0) return {};
      for (std::uint32_t levels = nonempty_levels & ~1u; levels != 0;) {
        const unsigned level = static_cast<unsigned>(31 - std::countl_zero(levels));
        levels &= ~(1u << level);
        const std::uint64_t below = occupied[level] & ((std::uint64_t{1} << digit(cursor, level)) - 1);
        if (below != 0) return {true, true, level, lowest(below)};
      }
      assert(nonempty_levels != 0);
      const unsigned level = static_cast<unsigned>(std::countr_zero(nonempty_levels));
      return {true, false, level, lowest(occupied[level])};
    }

    // The earliest entry of a slot (the first in list order among equal deadlines), or nullptr
    // if the slot holds more than kScanLimit entries.
    TimerEntry* scan_min(unsigned level, unsigned slot) const noexcept {
      TimerEntry* const head = heads[level * kSlots + slot];
      TimerEntry* best = head;
      std::size_t seen = 1;
      for (TimerEntry* e = head->next; e != head; e = e->next) {
        if (++seen > kScanLimit) return nullptr;
        if (e->deadline < best->deadline) best = e;
      }
      return best;
    }

    void mark_occupied(unsigned level, unsigned slot) noexcept {
      occupied[level] |= std::uint64_t{1} << slot;
      nonempty_levels |= 1u << level;
    }
    void mark_empty(unsigned level, unsigned slot) noexcept {
      occupied[level] &= ~(std::uint64_t{1} << slot);
      if (occupied[level] == 0) nonempty_levels &= ~(1u << level);
    }

    // Appends `e` to the list for its (deadline, cursor). Does not count it (see `size`).
    void place(TimerEntry& e) noexcept {
      const unsigned level = level_of(cursor, e.deadline);
      const unsigned slot = digit(e.deadline, level);
      assert(level == 0 || slot != digit(cursor, level));
      const std::uint32_t local = level * kSlots + slot;
      TimerEntry*& head = heads[local];
      if (head == nullptr) {
        e.prev = e.next = &e;
        head = &e;
        mark_occupied(level, slot);
      } else {
        TimerEntry* tail = head->prev;
        e.prev = tail;
        e.next = head;
        tail->next = &e;
        head->prev = &e;
      }
      e.bucket = base + local;
    }

    void unlink(TimerEntry& e) noexcept {
      assert(e.bucket >= base && e.bucket - base < kBucketsPerWheel);
      const std::uint32_t local = e.bucket - base;
      TimerEntry*& head = heads[local];
      assert(head != nullptr && size > 0);
      if (e.next == &e) {
        assert(head == &e);
        head = nullptr;
        mark_empty(local / kSlots, local % kSlots);
      } else {
        e.prev->next = e.next;
        e.next->prev = e.prev;
        if (head == &e) head = e.next;
      }
      e.prev = e.next = nullptr;
      e.bucket = TimerEntry::kUnlinked;
      --size;
    }

    // Empties a slot; returns its entries as a nullptr-terminated chain in list order. They stay
    // counted in `size`: every caller places them again.
    TimerEntry* take(unsigned level, unsigned slot) noexcept {
      TimerEntry*& head = heads[level * kSlots + slot];
      TimerEntry* chain = head;
      assert(chain != nullptr);
      chain->prev->next = nullptr;
      head = nullptr;
      mark_empty(level, slot);
      return chain;
    }

    // Places a chain again (relative to the current cursor), in order.
    void replace_chain(TimerEntry* chain, [[maybe_unused]] unsigned expect_below_level,
                       [[maybe_unused]] unsigned expect_level) noexcept {
      while (chain != nullptr) {
        TimerEntry* next = chain->next;
        place(*chain);
        assert((chain->bucket - base) / kSlots < expect_below_level || (chain->bucket - base) / kSlots == expect_level);
        chain = next;
      }
    }

    // Moves the cursor to the first tick of the picked slot (level >= 1) and places its entries
    // again, at lower levels.
    void split(const Pick& p) noexcept {
      assert(p.found && p.level > 0);
      const std::uint64_t start = slot_start(p.level, p.slot);
      TimerEntry* chain = take(p.level, p.slot);
      if (p.below) {
        // The cursor moves back (last resort, see the header comment). Everything at lower
        // levels shares the old cursor's digit at p.level, so relative to `start` it all belongs
        // in that one slot of p.level. Below slots of higher levels are empty: p is the highest.
        assert(start < cursor);
        cursor = start;
        for (unsigned level = 0; level < p.level; ++level) {
          while (occupied[level] != 0) replace_chain(take(level, lowest(occupied[level])), 0, p.level);
        }
      } else {
        // The cursor moves forward. p is the lowest occupied level and nothing is below the
        // cursor, so no other entry's placement changes.
        assert(start > cursor);
        cursor = start;
      }
      replace_chain(chain, p.level, kLevels);
    }

    // Structure, placement, and every deadline within [lo, hi].
    bool check(std::uint64_t lo, std::uint64_t hi) const noexcept {
      std::size_t count = 0;
      for (unsigned level = 0; level < kLevels; ++level) {
        if (((nonempty_levels >> level) & 1u) != (occupied[level] != 0 ? 1u : 0u)) return false;
        for (unsigned slot = 0; slot < kSlots; ++slot) {
          const TimerEntry* head = heads[level * kSlots + slot];
          if ((head != nullptr) != (((occupied[level] >> slot) & 1u) != 0)) return false;
          if (head == nullptr) continue;
          if (level > 0 && slot == digit(cursor, level)) return false;
          const TimerEntry* e = head;
          do {
            if (e->bucket != base + level * kSlots + slot || e->next->prev != e || e->prev->next != e) return false;
            if (level_of(cursor, e->deadline) != level || digit(e->deadline, level) != slot) return false;
            if (e->deadline < lo || e->deadline > hi) return false;
            ++count;
            e = e->next;
          } while (e != head);
        }
      }
      return count == size;
    }
  };

  // The wheel that takes `deadline`: the shallowest whose cursor is <= it; otherwise a new wheel
  // anchored at now() (or at the deadline, if that is earlier); otherwise the deepest.
  Wheel& wheel_for(std::uint64_t deadline) noexcept {
    const std::uint64_t anchor = deadline < now_ ? deadline : now_;
    if (size_ == 0) {
      assert(depth_ == 1);
      wheels_[0].cursor = anchor;
      return wheels_[0];
    }
    for (unsigned i = 0; i < depth_; ++i) {
      if (deadline >= wheels_[i].cursor) return wheels_[i];
    }
    if (depth_ == kMaxDepth) return wheels_[depth_ - 1];
    Wheel& w = wheels_[depth_++];
    assert(w.size == 0 && w.nonempty_levels == 0);
    w.cursor = anchor;
    return w;
  }

  void unlink(TimerEntry& e) noexcept {
    assert(e.bucket / kBucketsPerWheel < depth_);
    wheels_[e.bucket / kBucketsPerWheel].unlink(e);
    --size_;
    while (depth_ > 1 && wheels_[depth_ - 1].size == 0) --depth_;
  }

  std::uint64_t now_;
  std::size_t size_ = 0;
  unsigned depth_ = 1;  // wheels_[0, depth_) in use
  bool advancing_ = false;
  std::array<Wheel, kMaxDepth> wheels_{};
};

}  // namespace deja::detail
