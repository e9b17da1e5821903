// The kv example's linearizability checker for one register.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <rapidcheck.h>

#include "linearizability.hpp"

namespace {

using kv::RegisterOp;
using Verdict = kv::LinearizabilityResult::Verdict;

RegisterOp write(int client, std::optional<std::string> v, std::int64_t call, std::optional<std::int64_t> ret) {
  return {RegisterOp::Kind::kWrite, std::move(v), call, ret, client};
}
RegisterOp read(int client, std::optional<std::string> v, std::int64_t call, std::optional<std::int64_t> ret) {
  return {RegisterOp::Kind::kRead, std::move(v), call, ret, client};
}

}  // namespace

TEST_CASE("a sequential register history is linearizable") {
  const std::vector<RegisterOp> h = {read(1, std::nullopt, 0, 1), write(1, "a", 2, 3), read(2, "a", 4, 5),
                                     write(2, std::nullopt, 6, 7), read(1, std::nullopt, 8, 9)};
  const auto r = kv::check_register(h);
  CHECK(r.verdict == Verdict::kLinearizable);
}

TEST_CASE("a read concurrent with a write may see either value") {
  for (const char* seen : {"old", "new"}) {
    const std::vector<RegisterOp> h = {write(1, "new", 10, 20), read(2, std::string(seen), 12, 18)};
    CHECK(kv::check_register(h, "old").verdict == Verdict::kLinearizable);
  }
}

TEST_CASE("a stale read after a newer write returned is not linearizable and the explanation names it") {
  const std::vector<RegisterOp> h = {write(1, "1", 0, 10), write(1, "2", 20, 30), read(2, "1", 40, 50)};
  const auto r = kv::check_register(h);
  REQUIRE(r.verdict == Verdict::kNotLinearizable);
  CHECK(r.explanation.find("#2 client 2 read \"1\" [40, 50]") != std::string::npos);
  CHECK(r.explanation.find("holds \"2\"") != std::string::npos);
}

TEST_CASE("an acknowledged write that a later read does not see is a lost write") {
  const std::vector<RegisterOp> h = {write(1, "v", 0, 10), read(2, std::nullopt, 20, 30)};
  CHECK(kv::check_register(h).verdict == Verdict::kNotLinearizable);
}

TEST_CASE("a write with an unknown outcome may take effect late or never but only once") {
  // Took effect late: fine.
  CHECK(kv::check_register({write(1, "x", 0, std::nullopt), read(2, std::nullopt, 5, 6), read(2, "x", 100, 110)}).verdict ==
        Verdict::kLinearizable);
  // Never: fine.
  CHECK(kv::check_register({write(1, "x", 0, std::nullopt), read(2, std::nullopt, 100, 110)}).verdict == Verdict::kLinearizable);
  // Seen, then gone with no other write: a read of a value that was rolled back.
  CHECK(kv::check_register({write(1, "x", 0, std::nullopt), read(2, "x", 5, 6), read(2, std::nullopt, 7, 8)}).verdict ==
        Verdict::kNotLinearizable);
  // Reads without an answer constrain nothing.
  CHECK(kv::check_register({write(1, "x", 0, 1), read(2, "never", 5, std::nullopt)}).verdict == Verdict::kLinearizable);
}

TEST_CASE("the checker gives up at its state bound instead of searching without end") {
  std::vector<RegisterOp> h;
  for (int i = 0; i < 40; ++i) h.push_back(write(i, std::to_string(i), 0, 1000));
  h.push_back(read(99, "nobody wrote this", 0, 1000));
  const auto r = kv::check_register(h, std::nullopt, 10'000);
  CHECK(r.verdict == Verdict::kGaveUp);
  CHECK(r.states_explored > 10'000);
}

// Histories made by a real register: each operation takes effect at a point inside its interval,
// in the order of those points. Every such history is linearizable; changing one read to a value
// nobody wrote makes it not.
TEST_CASE("register histories produced by a linearizable register pass and a corrupted read fails") {
  CHECK(rc::check("kv register histories", [] {
    const int count = *rc::gen::inRange(1, 24);
    struct Planned {
      bool is_write;
      std::int64_t call, point, ret;
      bool answered;
      int client;
    };
    std::vector<Planned> plan;
    for (int i = 0; i < count; ++i) {
      const std::int64_t call = *rc::gen::inRange<std::int64_t>(0, 100);
      const std::int64_t point = call + *rc::gen::inRange<std::int64_t>(0, 20);
      const std::int64_t ret = point + *rc::gen::inRange<std::int64_t>(0, 20);
      plan.push_back({*rc::gen::arbitrary<bool>(), call, point, ret, *rc::gen::inRange(0, 5) != 0, i % 4});
    }
    std::vector<std::size_t> by_point(plan.size());
    for (std::size_t i = 0; i < by_point.size(); ++i) by_point[i] = i;
    std::stable_sort(by_point.begin(), by_point.end(), [&](std::size_t a, std::size_t b) { return plan[a].point < plan[b].point; });
    std::vector<RegisterOp> h(plan.size());
    std::optional<std::string> reg;
    for (const std::size_t i : by_point) {
      const Planned& p = plan[i];
      std::optional<std::int64_t> ret = p.answered ? std::optional<std::int64_t>(p.ret) : std::nullopt;
      if (p.is_write) {
        reg = "w" + std::to_string(i);
        h[i] = write(p.client, reg, p.call, ret);
      } else {
        h[i] = read(p.client, reg, p.call, ret);
      }
    }
    const auto ok = kv::check_register(h);
    RC_ASSERT(ok.verdict == Verdict::kLinearizable);

    std::vector<std::size_t> answered_reads;
    for (std::size_t i = 0; i < h.size(); ++i) {
      if (h[i].kind == RegisterOp::Kind::kRead && h[i].ret) answered_reads.push_back(i);
    }
    RC_PRE(!answered_reads.empty());
    const std::size_t victim = answered_reads[*rc::gen::inRange<std::size_t>(0, answered_reads.size())];
    h[victim].value = "a value nobody wrote";
    RC_ASSERT(kv::check_register(h).verdict == Verdict::kNotLinearizable);
  }));
}
