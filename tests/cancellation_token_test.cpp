// deja::CancellationToken: cancel, children (recursive, one way), unlinking of dropped children,
// and tasks aborted while they wait for cancellation.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sync/cancellation_token.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

deja::Task<int> wait_cancelled(deja::CancellationToken token, int id) {
  co_await token.cancelled();
  co_return id;
}

deja::Task<void> ready_now() { co_return; }

}  // namespace

TEST_CASE("a new token is not cancelled - cancel cancels it and every copy of it") {
  deja::CancellationToken token;
  auto copy = token;
  REQUIRE_FALSE(token.is_cancelled());
  copy.cancel();
  REQUIRE(token.is_cancelled());
  REQUIRE(copy.is_cancelled());
  token.cancel();  // idempotent
  REQUIRE(token.is_cancelled());
}

TEST_CASE("cancelled() completes at once on a cancelled token") {
  auto body = []() -> deja::Task<void> {
    deja::CancellationToken token;
    token.cancel();
    co_await token.cancelled();
    REQUIRE(token.is_cancelled());
  };
  deja::block_on(body());
}

TEST_CASE("cancel wakes every task waiting on the token") {
  auto body = []() -> deja::Task<void> {
    deja::CancellationToken token;
    std::vector<deja::JoinHandle<int>> waiting;
    for (int i = 0; i < 10; ++i) waiting.push_back(deja::spawn(wait_cancelled(token, i)));
    co_await deja::yield_now();
    for (auto& h : waiting) REQUIRE_FALSE(h.is_finished());
    token.cancel();
    int sum = 0;
    for (auto& h : waiting) sum += co_await h;
    REQUIRE(sum == 45);
  };
  deja::block_on(body());
}

TEST_CASE("cancelling a parent cancels its children recursively and wakes their waiters") {
  auto body = []() -> deja::Task<void> {
    deja::CancellationToken root;
    auto child = root.child_token();
    auto grandchild = child.child_token();
    auto sibling = root.child_token();
    auto h = deja::spawn(wait_cancelled(grandchild, 7));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    root.cancel();
    REQUIRE(child.is_cancelled());
    REQUIRE(grandchild.is_cancelled());
    REQUIRE(sibling.is_cancelled());
    const int id = co_await h;
    REQUIRE(id == 7);
  };
  deja::block_on(body());
}

TEST_CASE("cancelling a child cancels neither its parent nor its siblings") {
  deja::CancellationToken root;
  auto a = root.child_token();
  auto b = root.child_token();
  auto a_child = a.child_token();
  a.cancel();
  REQUIRE(a.is_cancelled());
  REQUIRE(a_child.is_cancelled());
  REQUIRE_FALSE(root.is_cancelled());
  REQUIRE_FALSE(b.is_cancelled());
  // The parent can still be cancelled later and reaches the others (skipping the cancelled one).
  root.cancel();
  REQUIRE(b.is_cancelled());
}

TEST_CASE("a child of a cancelled token is born cancelled") {
  deja::CancellationToken root;
  root.cancel();
  auto child = root.child_token();
  REQUIRE(child.is_cancelled());
  REQUIRE(child.child_token().is_cancelled());
}

TEST_CASE("children dropped before cancellation unlink from their parent") {
  // Under ASan this fails if a dropped child stayed linked (cancel would walk freed nodes) or if a
  // node leaked.
  deja::CancellationToken root;
  std::vector<deja::CancellationToken> kept;
  for (int i = 0; i < 10000; ++i) {
    auto child = root.child_token();
    auto grandchild = child.child_token();
    if (i % 100 == 0) kept.push_back(grandchild);  // keeps its parent alive, not the reverse
  }
  root.cancel();
  for (auto& t : kept) REQUIRE(t.is_cancelled());
}

TEST_CASE("a child outlives the parent's handles and is still cancelled through the tree") {
  deja::CancellationToken root;
  deja::CancellationToken grandchild;
  {
    auto child = root.child_token();
    grandchild = child.child_token();
  }  // the only handle to `child` is gone; its node stays while `grandchild` needs it
  root.cancel();
  REQUIRE(grandchild.is_cancelled());

  deja::CancellationToken orphan;
  {
    deja::CancellationToken parent;
    orphan = parent.child_token();
  }
  REQUIRE_FALSE(orphan.is_cancelled());
  orphan.cancel();
  REQUIRE(orphan.is_cancelled());
}

TEST_CASE("a chain of a hundred thousand child tokens cancels and frees without recursion") {
  std::vector<deja::CancellationToken> chain;
  chain.reserve(100000);
  chain.emplace_back();
  for (int i = 1; i < 100000; ++i) chain.push_back(chain.back().child_token());
  chain.front().cancel();
  REQUIRE(chain.back().is_cancelled());
  // Dropping the deepest first and then the rest must not recurse either.
  deja::CancellationToken deepest = chain.back();
  chain.clear();
  REQUIRE(deepest.is_cancelled());
}

TEST_CASE("aborting a task suspended in cancelled() unlinks its wait - cancel wakes only the others") {
  auto body = []() -> deja::Task<void> {
    deja::CancellationToken token;
    auto aborted = deja::spawn(wait_cancelled(token, 1));
    auto kept = deja::spawn(wait_cancelled(token, 2));
    co_await deja::yield_now();
    REQUIRE_FALSE(aborted.is_finished());
    aborted.abort();
    REQUIRE(aborted.is_finished());
    token.cancel();  // under ASan, notifying the aborted task's waiter would be a use after free
    const int id = co_await kept;
    REQUIRE(id == 2);
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(aborted);
    REQUIRE(cancelled);
  };
  deja::block_on(body());
}

TEST_CASE("a cancelled() wait that loses a race is removed from the token") {
  auto body = []() -> deja::Task<void> {
    deja::CancellationToken token;
    auto r = co_await deja::race(token.cancelled(), ready_now());
    REQUIRE(r.index() == 1);
    token.cancel();
    auto again = co_await deja::race(token.cancelled(), deja::sleep(10s));
    REQUIRE(again.index() == 0);
  };
  deja::block_on(body());
}

TEST_CASE("cancel from another thread wakes the waiting task") {
  auto body = []() -> deja::Task<void> {
    deja::CancellationToken token;
    std::thread canceller([t = token]() mutable {
      std::this_thread::sleep_for(20ms);
      t.cancel();
    });
    co_await token.child_token().cancelled();
    canceller.join();
    REQUIRE(token.is_cancelled());
  };
  deja::block_on(body());
}

TEST_CASE("a moved-from token throws UsageError") {
  deja::CancellationToken token;
  auto moved = std::move(token);
  REQUIRE_THROWS_AS(token.is_cancelled(), deja::UsageError);  // NOLINT(bugprone-use-after-move)
  REQUIRE_THROWS_AS(token.cancel(), deja::UsageError);
  REQUIRE_THROWS_AS(token.child_token(), deja::UsageError);
  token = moved;
  REQUIRE_FALSE(token.is_cancelled());
}
