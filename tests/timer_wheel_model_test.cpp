// The hierarchical timer wheel: exact firing ticks, far deadlines, cancellation, and a rapidcheck
// model check against a sorted reference.
#include <catch2/catch.hpp>
#include <rapidcheck.h>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "deja/detail/timer_wheel.hpp"

using deja::detail::TimerEntry;
using deja::detail::TimerWheel;

namespace {

struct Fired {
  std::vector<const TimerEntry*> entries;
  std::vector<std::uint64_t> at;
};

std::size_t advance(TimerWheel& w, std::uint64_t to, Fired& f) {
  return w.advance(to, [&](TimerEntry& e) {
    f.entries.push_back(&e);
    f.at.push_back(to);
  });
}

}  // namespace

TEST_CASE("timer wheel fires a timer exactly at its deadline, not a tick before") {
  TimerWheel w(0);
  TimerEntry e;
  w.insert(e, 1000);
  Fired f;
  REQUIRE(advance(w, 999, f) == 0);
  REQUIRE(e.linked());
  REQUIRE(advance(w, 1000, f) == 1);
  REQUIRE_FALSE(e.linked());
  REQUIRE(w.empty());
}

TEST_CASE("timer wheel fires timers years away, and near the end of the tick range, exactly") {
  TimerWheel w(5);
  TimerEntry ten_years, near_max;
  const std::uint64_t ten_years_ms = 10ull * 365 * 86400 * 1000;
  w.insert(ten_years, ten_years_ms);
  w.insert(near_max, std::numeric_limits<std::uint64_t>::max() - 3);
  REQUIRE(w.next_deadline() == ten_years_ms);
  Fired f;
  REQUIRE(advance(w, ten_years_ms - 1, f) == 0);
  REQUIRE(advance(w, ten_years_ms, f) == 1);
  REQUIRE(f.entries[0] == &ten_years);
  REQUIRE(w.next_deadline() == std::numeric_limits<std::uint64_t>::max() - 3);
  REQUIRE(advance(w, std::numeric_limits<std::uint64_t>::max() - 4, f) == 0);
  REQUIRE(advance(w, std::numeric_limits<std::uint64_t>::max(), f) == 1);
  REQUIRE(w.empty());
}

TEST_CASE("timer wheel: a removed timer never fires, even when removed by another's callback") {
  TimerWheel w(0);
  TimerEntry a, b, c;
  w.insert(a, 10);
  w.insert(b, 10);
  w.insert(c, 20);
  REQUIRE(w.remove(c));
  REQUIRE_FALSE(w.remove(c));
  std::vector<const TimerEntry*> fired;
  w.advance(100, [&](TimerEntry& e) {
    fired.push_back(&e);
    if (&e == &a) w.remove(b);
  });
  REQUIRE(fired == std::vector<const TimerEntry*>{&a});
  REQUIRE(w.empty());
}

TEST_CASE("timer wheel: a callback can re-insert its own timer, and past deadlines fire next") {
  TimerWheel w(0);
  TimerEntry e;
  w.insert(e, 5);
  int fired = 0;
  w.advance(5, [&](TimerEntry& t) {
    ++fired;
    w.insert(t, 50);
  });
  REQUIRE(fired == 1);
  REQUIRE(w.next_deadline() == 50);
  w.advance(50, [&](TimerEntry&) { ++fired; });
  REQUIRE(fired == 2);
  TimerEntry past;
  w.insert(past, 3);  // before now()
  REQUIRE(w.next_deadline() == 3);
  w.advance(50, [&](TimerEntry&) { ++fired; });
  REQUIRE(fired == 3);
}

TEST_CASE("timer wheel rejects going backwards and inserting a linked entry") {
  TimerWheel w(100);
  TimerEntry e;
  w.insert(e, 200);
  REQUIRE_THROWS_AS(w.insert(e, 300), std::logic_error);
  REQUIRE_THROWS_AS(w.advance(99, [](TimerEntry&) {}), std::invalid_argument);
}

TEST_CASE("timer wheel: a million inserts and removes leave it empty") {
  TimerWheel w(0);
  std::vector<TimerEntry> entries(1000);
  for (int round = 0; round < 1000; ++round) {
    for (std::size_t i = 0; i < entries.size(); ++i) w.insert(entries[i], (i * 7919 + static_cast<std::size_t>(round)) % 100000 + 1);
    for (auto& e : entries) REQUIRE(w.remove(e));
  }
  REQUIRE(w.size() == 0);
  REQUIRE_FALSE(w.next_deadline().has_value());
}

TEST_CASE("timer wheel fires exactly what a sorted model fires, in the same order") {
  const bool ok = rc::check("timer wheel vs sorted model", [] {
    const std::uint64_t start = *rc::gen::oneOf(rc::gen::just<std::uint64_t>(0), rc::gen::cast<std::uint64_t>(rc::gen::arbitrary<std::uint32_t>()));
    TimerWheel w(start);
    std::vector<std::unique_ptr<TimerEntry>> entries;
    std::map<std::pair<std::uint64_t, std::uint64_t>, TimerEntry*> model;  // (deadline, seq)
    std::map<const TimerEntry*, std::pair<std::uint64_t, std::uint64_t>> key_of;
    std::uint64_t seq = 0;
    const auto steps = *rc::gen::inRange(1, 200);
    for (int s = 0; s < steps; ++s) {
      const int op = *rc::gen::inRange(0, 10);
      if (op < 5) {
        const std::uint64_t delta = *rc::gen::oneOf(rc::gen::inRange<std::uint64_t>(0, 70), rc::gen::inRange<std::uint64_t>(0, 5000),
                                                    rc::gen::inRange<std::uint64_t>(0, std::uint64_t{1} << 40));
        const bool past = *rc::gen::inRange(0, 10) == 0;
        const std::uint64_t deadline = past ? w.now() - std::min(w.now(), delta) : w.now() + delta;
        entries.push_back(std::make_unique<TimerEntry>());
        w.insert(*entries.back(), deadline);
        const auto key = std::make_pair(deadline, seq++);
        model[key] = entries.back().get();
        key_of[entries.back().get()] = key;
      } else if (op < 7 && !model.empty()) {
        const auto index = *rc::gen::inRange<std::size_t>(0, model.size());
        auto it = std::next(model.begin(), static_cast<std::ptrdiff_t>(index));
        RC_ASSERT(w.remove(*it->second));
        key_of.erase(it->second);
        model.erase(it);
      } else {
        const std::uint64_t by = *rc::gen::oneOf(rc::gen::inRange<std::uint64_t>(0, 100), rc::gen::inRange<std::uint64_t>(0, 100000),
                                                 rc::gen::inRange<std::uint64_t>(0, std::uint64_t{1} << 42));
        const std::uint64_t to = w.now() + by;
        std::vector<TimerEntry*> fired;
        w.advance(to, [&](TimerEntry& e) { fired.push_back(&e); });
        std::vector<TimerEntry*> expected;
        while (!model.empty() && model.begin()->first.first <= to) {
          expected.push_back(model.begin()->second);
          key_of.erase(model.begin()->second);
          model.erase(model.begin());
        }
        RC_ASSERT(fired == expected);
      }
      RC_ASSERT(w.size() == model.size());
      if (model.empty()) RC_ASSERT(!w.next_deadline().has_value());
      else RC_ASSERT(w.next_deadline() == std::optional<std::uint64_t>(model.begin()->first.first));
    }
    for (auto& e : entries) w.remove(*e);
  });
  REQUIRE(ok);
}
