// deja::detail::TimerWheel on its own: exact firing ticks at every level boundary, deadlines up to
// the end of the 64-bit range, cancellation and re-insertion from callbacks, ties through
// cascades, next_deadline looking ahead and then earlier inserts (nested past the wheel stack),
// misuse, and rapidcheck model checks (callbacks included) against a sorted reference.
#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "deja/detail/timer_wheel.hpp"

using deja::detail::TimerEntry;
using deja::detail::TimerWheel;

namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

// Advances `w` to `to` and returns the entries fired, in firing order.
std::vector<TimerEntry*> fire_until(TimerWheel& w, std::uint64_t to) {
  std::vector<TimerEntry*> fired;
  const std::size_t n = w.advance(to, [&](TimerEntry& e) { fired.push_back(&e); });
  REQUIRE(n == fired.size());
  REQUIRE(w.check_invariants());
  return fired;
}

std::vector<TimerEntry*> addresses(std::vector<TimerEntry>& entries) {
  std::vector<TimerEntry*> out;
  for (auto& e : entries) out.push_back(&e);
  return out;
}

// Deadlines that sit on (and next to) the boundaries of every level of the wheel.
std::vector<std::uint64_t> boundary_offsets() {
  std::vector<std::uint64_t> out{1, 2, 3};
  for (unsigned bits = 6; bits < 64; bits += 6) {
    const std::uint64_t b = std::uint64_t{1} << bits;
    out.push_back(b - 1);
    out.push_back(b);
    out.push_back(b + 1);
  }
  out.push_back(std::uint64_t{1} << 63);
  return out;
}

std::uint64_t xorshift(std::uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

}  // namespace

TEST_CASE("TimerWheel: a timer fires at exactly its deadline tick and not one tick before") {
  const std::vector<std::uint64_t> starts{0, 1, 63, 64, 4095, 4097, 123456789, (std::uint64_t{1} << 40) - 7};
  for (const std::uint64_t start : starts) {
    for (const std::uint64_t offset : boundary_offsets()) {
      if (offset > kMax - start) continue;
      const std::uint64_t deadline = start + offset;
      CAPTURE(start, offset);
      for (const bool peek : {false, true}) {
        TimerEntry e;
        TimerWheel w(start);
        w.insert(e, deadline);
        if (peek) REQUIRE(w.next_deadline() == deadline);
        REQUIRE(fire_until(w, deadline - 1).empty());
        REQUIRE(e.linked());
        REQUIRE(w.next_deadline() == deadline);
        REQUIRE(fire_until(w, deadline) == std::vector<TimerEntry*>{&e});
        REQUIRE_FALSE(e.linked());
        REQUIRE(w.empty());
        REQUIRE(w.now() == deadline);
      }
    }
  }
}

TEST_CASE("TimerWheel: a timer ten years of milliseconds away fires at exactly its tick") {
  const std::uint64_t ten_years = 10ull * 365 * 86400 * 1000;
  TimerEntry e, soon;
  TimerWheel w(0);
  w.insert(e, ten_years);
  w.insert(soon, 10);
  REQUIRE(fire_until(w, 10) == std::vector<TimerEntry*>{&soon});
  REQUIRE(w.next_deadline() == ten_years);
  // Walk up to it in uneven steps; nothing fires early.
  for (std::uint64_t t = 11; t < ten_years; t += t / 3 + 1) REQUIRE(fire_until(w, t).empty());
  REQUIRE(fire_until(w, ten_years - 1).empty());
  REQUIRE(fire_until(w, ten_years) == std::vector<TimerEntry*>{&e});
  REQUIRE(w.empty());
  REQUIRE_FALSE(w.next_deadline().has_value());
}

TEST_CASE("TimerWheel: timers near UINT64_MAX fire at exactly their tick, in order") {
  SECTION("inserted from tick 0") {
    TimerEntry a, b, c;
    TimerWheel w(0);
    w.insert(c, kMax);
    w.insert(b, kMax - 1);
    w.insert(a, kMax - 64);
    REQUIRE(w.next_deadline() == kMax - 64);
    REQUIRE(fire_until(w, kMax - 65).empty());
    REQUIRE(fire_until(w, kMax - 64) == std::vector<TimerEntry*>{&a});
    REQUIRE(fire_until(w, kMax - 2).empty());
    REQUIRE(w.next_deadline() == kMax - 1);
    REQUIRE(fire_until(w, kMax - 1) == std::vector<TimerEntry*>{&b});
    REQUIRE(fire_until(w, kMax) == std::vector<TimerEntry*>{&c});
    REQUIRE(w.empty());
  }
  SECTION("inserted when now is already near the end") {
    TimerEntry a, b;
    TimerWheel w(kMax - 100);
    w.insert(b, kMax);
    w.insert(a, kMax - 99);
    REQUIRE(fire_until(w, kMax - 100).empty());
    REQUIRE(fire_until(w, kMax - 99) == std::vector<TimerEntry*>{&a});
    REQUIRE(fire_until(w, kMax - 1).empty());
    REQUIRE(fire_until(w, kMax) == std::vector<TimerEntry*>{&b});
    REQUIRE(w.now() == kMax);
  }
}

TEST_CASE("TimerWheel: a removed timer does not fire and remove reports whether it was linked") {
  TimerEntry near, far, due;
  TimerWheel w(0);
  w.insert(near, 5);
  w.insert(far, 1'000'000);
  REQUIRE(w.size() == 2);
  REQUIRE(w.remove(far));
  REQUIRE_FALSE(far.linked());
  REQUIRE_FALSE(w.remove(far));
  REQUIRE(w.size() == 1);
  REQUIRE(w.next_deadline() == 5);
  REQUIRE(fire_until(w, 2'000'000) == std::vector<TimerEntry*>{&near});
  // An entry already due (deadline <= now) can be removed too.
  w.insert(due, 3);
  REQUIRE(w.next_deadline() == 3);
  REQUIRE(w.remove(due));
  REQUIRE(fire_until(w, 2'000'000).empty());
  REQUIRE(w.empty());
}

TEST_CASE("TimerWheel: a callback that removes a later entry prevents it from firing") {
  TimerEntry first, same_tick, later_level, cascaded;
  TimerWheel w(0);
  w.insert(first, 100);
  w.insert(same_tick, 100);        // same slot, same tick
  w.insert(later_level, 100'000);  // a higher level
  w.insert(cascaded, 130);         // cascades from level 1 during this advance
  std::vector<TimerEntry*> fired;
  w.advance(1'000'000, [&](TimerEntry& e) {
    fired.push_back(&e);
    if (&e == &first) {
      REQUIRE(w.remove(same_tick));
      REQUIRE(w.remove(later_level));
      REQUIRE_FALSE(w.remove(first));  // already unlinked before its callback
    }
  });
  REQUIRE(fired == std::vector<TimerEntry*>{&first, &cascaded});
  REQUIRE_FALSE(same_tick.linked());
  REQUIRE_FALSE(later_level.linked());
  REQUIRE(w.empty());
  REQUIRE(w.check_invariants());
}

TEST_CASE("TimerWheel: a callback can re-insert its own entry, which fires later in the same advance") {
  TimerEntry periodic, other;
  TimerWheel w(0);
  w.insert(periodic, 10);
  w.insert(other, 35);
  std::vector<std::uint64_t> fired_at;
  std::vector<TimerEntry*> order;
  w.advance(100, [&](TimerEntry& e) {
    order.push_back(&e);
    if (&e == &periodic) {
      fired_at.push_back(e.deadline);
      if (e.deadline < 70) w.insert(e, e.deadline + 20);
      else w.insert(e, 1000);
    }
  });
  REQUIRE(fired_at == std::vector<std::uint64_t>{10, 30, 50, 70});
  REQUIRE(order == std::vector<TimerEntry*>{&periodic, &periodic, &other, &periodic, &periodic});
  REQUIRE(periodic.linked());
  REQUIRE(w.size() == 1);
  REQUIRE(w.next_deadline() == 1000);
  REQUIRE(fire_until(w, 999).empty());
  REQUIRE(fire_until(w, 1000) == std::vector<TimerEntry*>{&periodic});
}

TEST_CASE("TimerWheel: inside a callback now() is the deadline being fired - afterwards it is the target") {
  TimerEntry a, b, c;
  TimerWheel w(0);
  w.insert(a, 70);
  w.insert(b, 5000);
  w.insert(c, 5000);
  std::vector<std::uint64_t> seen;
  w.advance(9000, [&](TimerEntry&) { seen.push_back(w.now()); });
  REQUIRE(seen == std::vector<std::uint64_t>{70, 5000, 5000});
  REQUIRE(w.now() == 9000);
}

TEST_CASE("TimerWheel: a deadline in the past fires on the next advance, in deadline order") {
  TimerEntry late, later, now_tick, future;
  TimerWheel w(1000);
  w.insert(future, 1001);
  w.insert(later, 900);
  w.insert(now_tick, 1000);
  w.insert(late, 5);
  // next_deadline is the exact minimum, even when that is before now().
  REQUIRE(w.next_deadline() == 5);
  // Advancing to the current tick (no time passing) fires what is already due, past first.
  REQUIRE(fire_until(w, 1000) == std::vector<TimerEntry*>{&late, &later, &now_tick});
  REQUIRE(w.now() == 1000);
  REQUIRE(w.next_deadline() == 1001);
  REQUIRE(fire_until(w, 1001) == std::vector<TimerEntry*>{&future});
}

TEST_CASE("TimerWheel: a past deadline inserted by a callback fires before anything still pending") {
  TimerEntry a, b, past;
  TimerWheel w(0);
  w.insert(a, 200);
  w.insert(b, 300);
  std::vector<TimerEntry*> fired;
  w.advance(1000, [&](TimerEntry& e) {
    fired.push_back(&e);
    if (&e == &a) w.insert(past, 7);
  });
  REQUIRE(fired == std::vector<TimerEntry*>{&a, &past, &b});
}

TEST_CASE("TimerWheel: equal deadlines fire in insertion order however far apart they were inserted") {
  // The same deadline reached from every level: inserted at tick 0 (top levels), after partial
  // advances (lower levels), after next_deadline peeked ahead, and from callbacks.
  const std::uint64_t deadline = (std::uint64_t{1} << 36) + 12345;
  std::vector<TimerEntry> same(8);
  TimerEntry before, after;
  TimerWheel w(0);
  w.insert(same[0], deadline);
  w.insert(after, deadline + 1);
  w.insert(same[1], deadline);
  REQUIRE(fire_until(w, deadline - (std::uint64_t{1} << 30)).empty());
  w.insert(same[2], deadline);
  w.insert(before, deadline - 1);
  REQUIRE(fire_until(w, deadline - 5000).empty());
  w.insert(same[3], deadline);
  REQUIRE(w.next_deadline() == deadline - 1);
  w.insert(same[4], deadline);
  REQUIRE(fire_until(w, deadline - 63).empty());
  w.insert(same[5], deadline);
  REQUIRE(w.next_deadline() == deadline - 1);
  std::vector<TimerEntry*> fired;
  w.advance(deadline + 1, [&](TimerEntry& e) {
    fired.push_back(&e);
    if (&e == &before) w.insert(same[6], deadline);  // fired at deadline - 1: still in time
    if (&e == &same[0]) w.insert(same[7], deadline);  // inserted during the tie itself
  });
  std::vector<TimerEntry*> expected{&before};
  for (auto& e : same) expected.push_back(&e);
  expected.push_back(&after);
  REQUIRE(fired == expected);
}

TEST_CASE("TimerWheel: ties among hundreds of entries survive cascading in insertion order") {
  // Many entries on few distinct far deadlines, inserted interleaved: more than a slot is ever
  // scanned, so every list is split level by level.
  std::vector<TimerEntry> entries(600);
  TimerWheel w(3);
  std::vector<std::pair<std::uint64_t, std::size_t>> expected;  // (deadline, insertion index)
  const std::uint64_t base = 987'654'321;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::uint64_t d = base + (i * 7) % 5 * 4096 + (i % 3);
    w.insert(entries[i], d);
    expected.emplace_back(d, i);
  }
  std::sort(expected.begin(), expected.end());
  REQUIRE(w.next_deadline() == expected.front().first);
  REQUIRE(w.check_invariants());
  std::vector<TimerEntry*> fired = fire_until(w, base + 10 * 4096);
  REQUIRE(fired.size() == entries.size());
  for (std::size_t i = 0; i < fired.size(); ++i) REQUIRE(fired[i] == &entries[expected[i].second]);
}

TEST_CASE("TimerWheel: after next_deadline looks far ahead, earlier inserts still come first") {
  // A crowd of far timers makes next_deadline split their slot (the wheel looks ahead); then
  // nearer timers arrive, a few (scanned) and then many (which pull the wheel back).
  std::vector<TimerEntry> far(100), near(3), crowd(80);
  TimerWheel w(1000);
  const std::uint64_t far_base = 1000 + 3'600'000;
  for (std::size_t i = 0; i < far.size(); ++i) w.insert(far[i], far_base + (i * 37) % 50);
  REQUIRE(w.next_deadline() == far_base);
  REQUIRE(w.check_invariants());
  w.insert(near[0], 1500);
  REQUIRE(w.next_deadline() == 1500);
  w.insert(near[1], 1000);  // due now
  w.insert(near[2], 200'000);
  REQUIRE(w.next_deadline() == 1000);
  REQUIRE(w.check_invariants());
  for (std::size_t i = 0; i < crowd.size(); ++i) w.insert(crowd[i], 100'000 + (i * 13) % 40);
  REQUIRE(w.next_deadline() == 1000);
  REQUIRE(fire_until(w, 1000) == std::vector<TimerEntry*>{&near[1]});
  REQUIRE(w.next_deadline() == 1500);
  REQUIRE(fire_until(w, 99'999) == std::vector<TimerEntry*>{&near[0]});
  REQUIRE(w.next_deadline() == 100'000);
  std::vector<TimerEntry*> crowd_order = addresses(crowd);
  std::stable_sort(crowd_order.begin(), crowd_order.end(), [](TimerEntry* a, TimerEntry* b) { return a->deadline < b->deadline; });
  crowd_order.push_back(&near[2]);
  REQUIRE(fire_until(w, 200'000) == crowd_order);
  std::vector<TimerEntry*> far_order = addresses(far);
  std::stable_sort(far_order.begin(), far_order.end(), [](TimerEntry* a, TimerEntry* b) { return a->deadline < b->deadline; });
  REQUIRE(fire_until(w, kMax) == far_order);
}

TEST_CASE("TimerWheel: equal deadlines inserted after a look-ahead fire in insertion order") {
  std::vector<TimerEntry> far(2 * TimerWheel::kScanLimit), near(4);
  TimerWheel w(0);
  for (std::size_t i = 0; i < far.size(); ++i) w.insert(far[i], 50'000'000 + i % 7);
  REQUIRE(w.next_deadline() == 50'000'000);  // splits the far slot: the wheel looks ahead
  w.insert(near[0], 9000);
  w.insert(near[1], 7000);
  w.insert(near[2], 9000);
  REQUIRE(w.next_deadline() == 7000);
  w.insert(near[3], 9000);
  REQUIRE(fire_until(w, 10'000) == std::vector<TimerEntry*>{&near[1], &near[0], &near[2], &near[3]});
  REQUIRE(fire_until(w, 50'000'000).size() == far.size() / 7 + 1);
}

TEST_CASE("TimerWheel: look-aheads nested deeper than the wheel stack still fire in order") {
  // Crowds of timers, each nearer than the last and each looked at with next_deadline: every
  // crowd is split ahead of now(), so the next nearer one needs another wheel, until there are
  // none left and the deepest has to be pulled back.
  const std::size_t crowds = TimerWheel::kMaxDepth + 2;
  const std::size_t per_crowd = 3 * TimerWheel::kScanLimit;
  std::vector<TimerEntry> entries(crowds * per_crowd + 3);
  TimerWheel w(5);
  std::uint64_t base = 4'000'000'000'000;
  std::size_t next = 0;
  for (std::size_t c = 0; c < crowds; ++c, base /= 9) {
    for (std::size_t i = 0; i < per_crowd; ++i) w.insert(entries[next++], base + (i * 37) % 100);
    REQUIRE(w.next_deadline() == base);
    REQUIRE(w.check_invariants());
    // Stragglers just below the crowd just looked at, and one in the past.
    if (c == crowds - 1) {
      w.insert(entries[next++], base - 1);
      w.insert(entries[next++], base - 64 * 64);
      w.insert(entries[next++], 3);
      REQUIRE(w.next_deadline() == 3);
      REQUIRE(w.check_invariants());
    }
  }
  std::vector<TimerEntry*> expected = addresses(entries);
  std::stable_sort(expected.begin(), expected.end(), [](TimerEntry* a, TimerEntry* b) { return a->deadline < b->deadline; });
  std::vector<TimerEntry*> fired;
  std::uint64_t last = 0;
  w.advance(kMax, [&](TimerEntry& e) {
    REQUIRE(e.deadline >= last);
    last = e.deadline;
    fired.push_back(&e);
  });
  REQUIRE(fired == expected);
  REQUIRE(w.check_invariants());
}

TEST_CASE("TimerWheel: next_deadline is the minimum deadline across levels") {
  std::vector<std::unique_ptr<TimerEntry>> entries;
  TimerWheel w(77);
  std::multiset<std::uint64_t> deadlines;
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 2000; ++i) {
    xorshift(x);
    // Mix every magnitude: shift by a pseudo-random amount so all levels are populated.
    const std::uint64_t d = 78 + (x >> (x % 64));
    entries.push_back(std::make_unique<TimerEntry>());
    w.insert(*entries.back(), d);
    deadlines.insert(d);
    REQUIRE(w.next_deadline() == *deadlines.begin());
  }
  REQUIRE(w.check_invariants());
  // Remove from the front; the minimum must follow.
  std::map<std::uint64_t, std::vector<TimerEntry*>> by_deadline;
  for (auto& e : entries) by_deadline[e->deadline].push_back(e.get());
  while (!by_deadline.empty()) {
    REQUIRE(w.next_deadline() == by_deadline.begin()->first);
    for (TimerEntry* e : by_deadline.begin()->second) REQUIRE(w.remove(*e));
    by_deadline.erase(by_deadline.begin());
  }
  REQUIRE_FALSE(w.next_deadline().has_value());
  REQUIRE(w.check_invariants());
}

TEST_CASE("TimerWheel: advance jumps huge spans with few entries, firing each exactly once") {
  std::vector<std::uint64_t> deadlines{1ull << 20, 1ull << 33, (1ull << 33) + 1, 1ull << 50, (1ull << 62) + 12345, kMax - 5};
  std::vector<TimerEntry> entries(deadlines.size());
  TimerWheel w(0);
  for (std::size_t i = 0; i < deadlines.size(); ++i) w.insert(entries[i], deadlines[i]);
  // One jump over the first three.
  REQUIRE(fire_until(w, 1ull << 40) == std::vector<TimerEntry*>{&entries[0], &entries[1], &entries[2]});
  REQUIRE(w.now() == 1ull << 40);
  REQUIRE(w.next_deadline() == 1ull << 50);
  // Jumps that land between deadlines fire nothing.
  REQUIRE(fire_until(w, (1ull << 50) - 1).empty());
  REQUIRE(fire_until(w, 1ull << 61).size() == 1);
  // One jump to the very end fires the rest.
  REQUIRE(fire_until(w, kMax) == std::vector<TimerEntry*>{&entries[4], &entries[5]});
  REQUIRE(w.empty());
  REQUIRE(w.now() == kMax);
  // Advancing to the same tick again is allowed and fires nothing.
  REQUIRE(fire_until(w, kMax).empty());
}

TEST_CASE("TimerWheel: a hundred thousand jumps of 2^40 ticks each cost nothing per tick") {
  // Work proportional to ticks elapsed (~2^57 here) would never finish.
  std::vector<TimerEntry> entries(4);
  TimerWheel w(0);
  const std::uint64_t step = std::uint64_t{1} << 40;
  const std::vector<std::uint64_t> deadlines{step * 1000 + 1, step * 50'000, step * 50'000, step * 99'999 + step / 2};
  for (std::size_t i = 0; i < entries.size(); ++i) w.insert(entries[i], deadlines[i]);
  std::vector<TimerEntry*> fired;
  for (std::uint64_t i = 1; i <= 100'000; ++i) {
    w.advance(i * step, [&](TimerEntry& e) {
      REQUIRE(w.now() == e.deadline);
      fired.push_back(&e);
    });
  }
  REQUIRE(fired == addresses(entries));
  REQUIRE(w.now() == 100'000 * step);
}

TEST_CASE("TimerWheel: a million insert and remove pairs leave it empty") {
  std::vector<TimerEntry> entries(1000);
  TimerWheel w(12345);
  std::uint64_t x = 88172645463325252ull;
  for (int round = 0; round < 1000; ++round) {
    for (std::size_t i = 0; i < 1000; ++i) {
      xorshift(x);
      w.insert(entries[i], x >> (x % 64));  // past, near and far deadlines
    }
    REQUIRE(w.size() == 1000);
    if (round % 100 == 0) REQUIRE(w.check_invariants());
    // Remove in an order unrelated to insertion.
    for (std::size_t i = 0; i < 1000; ++i) REQUIRE(w.remove(entries[(i * 617) % 1000]));
    if (round % 100 == 0) REQUIRE(fire_until(w, w.now() + 1000).empty());
  }
  REQUIRE(w.size() == 0);
  REQUIRE(w.empty());
  REQUIRE_FALSE(w.next_deadline().has_value());
  REQUIRE(fire_until(w, kMax).empty());
}

TEST_CASE("TimerWheel: advancing backwards throws std::invalid_argument and changes nothing") {
  TimerEntry e;
  TimerWheel w(500);
  w.insert(e, 600);
  int calls = 0;
  REQUIRE_THROWS_AS(w.advance(499, [&](TimerEntry&) { ++calls; }), std::invalid_argument);
  REQUIRE(calls == 0);
  REQUIRE(w.now() == 500);
  REQUIRE(e.linked());
  REQUIRE(fire_until(w, 600) == std::vector<TimerEntry*>{&e});
}

TEST_CASE("TimerWheel: inserting an entry that is already linked throws std::logic_error") {
  TimerEntry e, due;
  TimerWheel w(0);
  w.insert(e, 10);
  REQUIRE_THROWS_AS(w.insert(e, 20), std::logic_error);
  REQUIRE(w.size() == 1);
  REQUIRE(e.deadline == 10);  // the failed insert left it where it was
  w.insert(due, 0);
  REQUIRE_THROWS_AS(w.insert(due, 0), std::logic_error);
  REQUIRE(w.size() == 2);
  REQUIRE(fire_until(w, 10) == std::vector<TimerEntry*>{&due, &e});
}

TEST_CASE("TimerWheel: advance from inside a callback throws std::logic_error") {
  TimerEntry a, b;
  TimerWheel w(0);
  w.insert(a, 5);
  w.insert(b, 6);
  bool threw = false;
  w.advance(10, [&](TimerEntry& e) {
    if (&e == &a) {
      try {
        w.advance(20, [](TimerEntry&) {});
      } catch (const std::logic_error&) {
        threw = true;
      }
    }
  });
  REQUIRE(threw);
  REQUIRE(w.now() == 10);
  REQUIRE(w.empty());
}

TEST_CASE("TimerWheel: a throwing callback leaves the fired entry unlinked and the rest pending") {
  TimerEntry a, b, c;
  TimerWheel w(0);
  w.insert(a, 5);
  w.insert(b, 6);
  w.insert(c, 100);
  REQUIRE_THROWS_AS(w.advance(50, [&](TimerEntry& e) {
                      if (&e == &a) throw std::runtime_error("boom");
                    }),
                    std::runtime_error);
  REQUIRE_FALSE(a.linked());
  REQUIRE(b.linked());
  REQUIRE(w.now() == 5);
  REQUIRE(w.check_invariants());
  REQUIRE(w.next_deadline() == 6);
  REQUIRE(fire_until(w, 100) == std::vector<TimerEntry*>{&b, &c});
}

TEST_CASE("TimerWheel: copying an unlinked entry copies its deadline and nothing else") {
  TimerEntry a;
  TimerWheel w(0);
  w.insert(a, 42);
  REQUIRE(w.remove(a));
  TimerEntry b = a;
  REQUIRE(b.deadline == 42);
  REQUIRE_FALSE(b.linked());
  REQUIRE(b.prev == nullptr);
  REQUIRE(b.next == nullptr);
}

// The reference: live entries ordered by (deadline, insertion sequence). advance(to) fires the
// minimum while it is <= to; a callback may insert and remove, which the model applies in turn.
// next_deadline() is checked after every step, so the wheel keeps looking ahead and then being
// given earlier deadlines.
TEST_CASE("TimerWheel: random inserts, removes, callbacks and advances match a sorted reference model") {
  rc::prop("TimerWheel matches the sorted model", [] {
    const std::uint64_t start = *rc::gen::oneOf(rc::gen::just<std::uint64_t>(0), rc::gen::just<std::uint64_t>(63),
                                                rc::gen::cast<std::uint64_t>(rc::gen::arbitrary<std::uint32_t>()),
                                                rc::gen::just<std::uint64_t>(kMax - (std::uint64_t{1} << 20)));
    // Stable addresses: entries are never reallocated; each is reused after it leaves the wheel.
    // Declared before the wheel, so they outlive it.
    std::vector<std::unique_ptr<TimerEntry>> pool;
    TimerWheel w(start);
    std::map<std::pair<std::uint64_t, std::uint64_t>, TimerEntry*> model;  // (deadline, seq)
    std::map<TimerEntry*, std::pair<std::uint64_t, std::uint64_t>> key_of;
    std::uint64_t seq = 0;
    std::vector<std::uint64_t> recent;  // deadlines used so far, to create ties

    const auto add = [](std::uint64_t base, std::uint64_t delta) { return delta > kMax - base ? kMax : base + delta; };

    // A deadline generator that mixes: near and far offsets from `base`, absolute values, ties
    // with earlier deadlines, deadlines just before the current minimum, and the past.
    auto gen_deadline = [&](std::uint64_t base) -> std::uint64_t {
      switch (*rc::gen::inRange(0, 9)) {
        case 0: return add(base, *rc::gen::inRange<std::uint64_t>(0, 70));
        case 1: return add(base, *rc::gen::inRange<std::uint64_t>(0, 5000));
        case 2: return add(base, *rc::gen::inRange<std::uint64_t>(0, std::uint64_t{1} << 40));
        case 3: return add(base, std::uint64_t{1} << *rc::gen::inRange(0, 64));  // level boundaries
        case 4: return *rc::gen::arbitrary<std::uint64_t>();                      // absolute, any range
        case 5: return base - std::min(base, *rc::gen::inRange<std::uint64_t>(0, 200));  // past
        case 6: return kMax - *rc::gen::inRange<std::uint64_t>(0, 3);
        case 7:  // between now and the current minimum
          if (!model.empty() && model.begin()->first.first > base) {
            return base + *rc::gen::inRange<std::uint64_t>(0, model.begin()->first.first - base);
          }
          return base;
        default:
          if (recent.empty()) return base;
          return recent[*rc::gen::inRange<std::size_t>(0, recent.size())];  // a tie
      }
    };

    auto do_insert = [&](std::uint64_t deadline, TimerEntry* e = nullptr) {
      for (auto& p : pool) {
        if (e != nullptr) break;
        if (!p->linked()) {
          e = p.get();
          break;
        }
      }
      if (e == nullptr) {
        pool.push_back(std::make_unique<TimerEntry>());
        e = pool.back().get();
      }
      w.insert(*e, deadline);
      const auto key = std::make_pair(deadline, seq++);
      model[key] = e;
      key_of[e] = key;
      recent.push_back(deadline);
      if (recent.size() > 32) recent.erase(recent.begin());
    };

    // Many entries in a narrow window: slots longer than the wheel's scan limit, so they get
    // split (and, when below a cursor that looked ahead, pull it back).
    auto do_cluster = [&](std::uint64_t base) {
      const std::uint64_t lo = gen_deadline(base);
      const std::uint64_t width = *rc::gen::element(std::uint64_t{1}, std::uint64_t{64}, std::uint64_t{4096}, std::uint64_t{300000});
      const int count = *rc::gen::inRange(20, 90);
      for (int i = 0; i < count; ++i) do_insert(add(lo, *rc::gen::inRange<std::uint64_t>(0, width)));
    };

    auto do_remove_random = [&]() {
      // Sometimes an entry that is not linked: remove must report false.
      if (!pool.empty() && *rc::gen::inRange(0, 6) == 0) {
        TimerEntry* e = pool[*rc::gen::inRange<std::size_t>(0, pool.size())].get();
        const bool live = key_of.count(e) != 0;
        RC_ASSERT(w.remove(*e) == live);
        if (live) {
          model.erase(key_of[e]);
          key_of.erase(e);
        }
        return;
      }
      if (model.empty()) return;
      auto it = std::next(model.begin(), static_cast<std::ptrdiff_t>(*rc::gen::inRange<std::size_t>(0, model.size())));
      RC_ASSERT(w.remove(*it->second));
      key_of.erase(it->second);
      model.erase(it);
    };

    auto check_state = [&] {
      RC_ASSERT(w.check_invariants());
      RC_ASSERT(w.size() == model.size());
      RC_ASSERT(w.empty() == model.empty());
      if (model.empty()) RC_ASSERT(!w.next_deadline().has_value());
      else RC_ASSERT(w.next_deadline() == std::optional<std::uint64_t>(model.begin()->first.first));
      RC_ASSERT(w.check_invariants());
    };

    const int steps = *rc::gen::inRange(1, 150);
    for (int s = 0; s < steps; ++s) {
      const int op = *rc::gen::inRange(0, 14);
      if (op < 5) {
        do_insert(gen_deadline(w.now()));
      } else if (op < 6) {
        do_cluster(w.now());
      } else if (op < 7) {
        // A crowd nearer than everything pending, then a look at it: nests look-aheads.
        const std::uint64_t lo = model.empty() || model.begin()->first.first <= w.now()
                                     ? w.now()
                                     : w.now() + *rc::gen::inRange<std::uint64_t>(0, model.begin()->first.first - w.now());
        const int count = *rc::gen::inRange(1, 100);
        const std::uint64_t width = *rc::gen::element(std::uint64_t{8}, std::uint64_t{200}, std::uint64_t{5000});
        for (int i = 0; i < count; ++i) do_insert(add(lo, *rc::gen::inRange<std::uint64_t>(0, width)));
        RC_ASSERT(w.next_deadline() == std::optional<std::uint64_t>(model.begin()->first.first));
      } else if (op < 9) {
        do_remove_random();
      } else {
        std::uint64_t by = 0;
        switch (*rc::gen::inRange(0, 6)) {
          case 0: by = 0; break;
          case 1: by = *rc::gen::inRange<std::uint64_t>(0, 100); break;
          case 2: by = *rc::gen::inRange<std::uint64_t>(0, 100000); break;
          case 3: by = *rc::gen::inRange<std::uint64_t>(0, std::uint64_t{1} << 42); break;
          case 4: by = kMax - w.now(); break;  // to the end of time
          default:  // exactly to the next deadline, or one short of it
            if (!model.empty()) {
              const std::uint64_t next = model.begin()->first.first;
              by = next > w.now() ? next - w.now() - *rc::gen::inRange<std::uint64_t>(0, 2) : 0;
            }
        }
        if (by > kMax - w.now()) by = kMax - w.now();
        const std::uint64_t to = w.now() + by;
        std::uint64_t model_now = w.now();
        std::vector<TimerEntry*> fired;
        std::vector<TimerEntry*> expected;
        const std::size_t n = w.advance(to, [&](TimerEntry& e) {
          fired.push_back(&e);
          // Model: the entry that should fire now is the minimum, and it is <= to.
          RC_ASSERT(!model.empty());
          RC_ASSERT(model.begin()->first.first <= to);
          expected.push_back(model.begin()->second);
          const std::uint64_t fired_deadline = model.begin()->first.first;
          model_now = std::max(model_now, fired_deadline);
          key_of.erase(model.begin()->second);
          model.erase(model.begin());
          RC_ASSERT(&e == expected.back());
          RC_ASSERT(!e.linked());
          RC_ASSERT(w.size() == model.size());
          RC_ASSERT(w.now() == model_now);
          switch (*rc::gen::inRange(0, 9)) {
            case 0:  // re-insert itself (a periodic timer)
              do_insert(gen_deadline(fired_deadline), &e);
              break;
            case 1:  // insert a fresh entry, possibly due within this same advance
              do_insert(gen_deadline(fired_deadline));
              break;
            case 2:  // cancel another pending entry (possibly one due in this advance)
              do_remove_random();
              break;
            case 3:  // both
              do_remove_random();
              do_insert(gen_deadline(fired_deadline));
              break;
            case 4:  // peek from inside the callback
              RC_ASSERT(w.next_deadline() == (model.empty() ? std::nullopt : std::optional<std::uint64_t>(model.begin()->first.first)));
              break;
            default:
              break;
          }
        });
        RC_ASSERT(n == fired.size());
        RC_ASSERT(fired == expected);
        // Nothing due may remain after the advance.
        RC_ASSERT(model.empty() || model.begin()->first.first > to);
        RC_ASSERT(w.now() == to);
      }
      check_state();
    }
    for (auto& p : pool) w.remove(*p);
    RC_ASSERT(w.empty());
  });
}

// Focused on the wheel stack: crowds of timers, each nearer than everything pending and each
// looked at with next_deadline, so look-aheads nest past the stack's depth; a multimap keeps
// equal deadlines in insertion order, which is the reference.
TEST_CASE("TimerWheel: nested look-aheads and crowds below them match a sorted reference model") {
  rc::prop("nested look-aheads match the model", [] {
    std::vector<std::unique_ptr<TimerEntry>> pool;
    TimerWheel w(*rc::gen::inRange<std::uint64_t>(0, 1'000'000));
    std::multimap<std::uint64_t, TimerEntry*> model;
    const auto insert = [&](std::uint64_t d) {
      pool.push_back(std::make_unique<TimerEntry>());
      w.insert(*pool.back(), d);
      model.emplace(d, pool.back().get());
    };
    const auto advance_and_compare = [&](std::uint64_t to) {
      std::vector<TimerEntry*> fired;
      w.advance(to, [&](TimerEntry& e) { fired.push_back(&e); });
      std::vector<TimerEntry*> expected;
      while (!model.empty() && model.begin()->first <= to) {
        expected.push_back(model.begin()->second);
        model.erase(model.begin());
      }
      RC_ASSERT(fired == expected);
    };
    const int rounds = *rc::gen::inRange(1, 16);
    for (int r = 0; r < rounds; ++r) {
      const std::uint64_t now = w.now();
      const std::uint64_t min = model.empty() ? now + (std::uint64_t{1} << *rc::gen::inRange(6, 50)) : model.begin()->first;
      const std::uint64_t lo = min > now ? now + *rc::gen::inRange<std::uint64_t>(0, min - now) : now;
      const std::uint64_t width = *rc::gen::element(std::uint64_t{1}, std::uint64_t{64}, std::uint64_t{4096});
      // Mostly more than one scan's worth, so that the crowd is split when looked at.
      const int big = static_cast<int>(TimerWheel::kScanLimit) + 1;
      const int count = *rc::gen::inRange(0, 4) == 0 ? *rc::gen::inRange(1, big) : *rc::gen::inRange(big, 3 * big);
      for (int i = 0; i < count; ++i) insert(lo + *rc::gen::inRange<std::uint64_t>(0, width));
      if (*rc::gen::inRange(0, 4) == 0) insert(now - std::min(now, *rc::gen::inRange<std::uint64_t>(0, 100)));  // past
      RC_ASSERT(w.next_deadline() == std::optional<std::uint64_t>(model.begin()->first));
      RC_ASSERT(w.check_invariants());
      if (*rc::gen::inRange(0, 4) == 0) advance_and_compare(now + *rc::gen::inRange<std::uint64_t>(0, lo - now + width));
      if (*rc::gen::inRange(0, 4) == 0 && !model.empty()) {
        auto it = std::next(model.begin(), static_cast<std::ptrdiff_t>(*rc::gen::inRange<std::size_t>(0, model.size())));
        RC_ASSERT(w.remove(*it->second));
        model.erase(it);
      }
      RC_ASSERT(w.check_invariants());
      RC_ASSERT(w.size() == model.size());
    }
    advance_and_compare(kMax);
    RC_ASSERT(w.empty());
  });
}
