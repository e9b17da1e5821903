// deja::watch: the latest value, versions seen per receiver, closing, and tasks aborted while they
// wait for a change.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sync/watch.hpp"
#include "test_support.hpp"

namespace {

deja::Task<std::error_code> changed_via(deja::watch::Receiver<int>* rx) { co_return co_await rx->changed(); }

}  // namespace

TEST_CASE("a watch receiver starts having seen the initial value") {
  auto [tx, rx] = deja::watch::channel<std::string>("a");
  REQUIRE(rx.borrow() == "a");
  REQUIRE(tx.borrow() == "a");
  REQUIRE_FALSE(rx.has_changed());
}

TEST_CASE("watch changed completes once a newer value is sent, and marks it seen") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::watch::channel(0);
    auto h = deja::spawn(changed_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    REQUIRE_FALSE(tx.send(1));
    REQUIRE_FALSE(tx.send(2));
    const std::error_code ec = co_await h;
    REQUIRE_FALSE(ec);
    REQUIRE_FALSE(rx.has_changed());  // changed() marked the newest version seen
    REQUIRE(rx.borrow() == 2);
  };
  deja::block_on(body());
}

TEST_CASE("watch borrow_and_update marks the value seen - borrow does not") {
  auto [tx, rx] = deja::watch::channel(1);
  REQUIRE_FALSE(tx.send(2));
  REQUIRE(rx.has_changed());
  REQUIRE(rx.borrow() == 2);
  REQUIRE(rx.has_changed());
  REQUIRE(rx.borrow_and_update() == 2);
  REQUIRE_FALSE(rx.has_changed());
}

TEST_CASE("one watch send wakes every waiting receiver") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::watch::channel(0);
    std::vector<deja::watch::Receiver<int>> rxs(4, rx);
    std::vector<deja::JoinHandle<std::error_code>> waiting;
    for (auto& r : rxs) waiting.push_back(deja::spawn(changed_via(&r)));
    co_await deja::yield_now();
    for (auto& h : waiting) REQUIRE_FALSE(h.is_finished());
    REQUIRE(tx.receiver_count() == 5);
    REQUIRE_FALSE(tx.send(9));
    for (auto& h : waiting) {
      const std::error_code ec = co_await h;
      REQUIRE_FALSE(ec);
    }
    for (auto& r : rxs) REQUIRE(r.borrow() == 9);
  };
  deja::block_on(body());
}

TEST_CASE("watch changed reports kClosed once the sender is gone, after any unseen value") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::watch::channel(0);
    REQUIRE_FALSE(tx.send(1));
    { auto gone = std::move(tx); }
    const std::error_code first = co_await rx.changed();
    REQUIRE_FALSE(first);  // the value sent before the drop is still news
    REQUIRE(rx.borrow() == 1);
    const std::error_code second = co_await rx.changed();
    REQUIRE(second == deja::ChannelErrc::kClosed);

    auto [tx2, rx2] = deja::watch::channel(0);
    auto h = deja::spawn(changed_via(&rx2));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    { auto gone = std::move(tx2); }
    const std::error_code waiting = co_await h;
    REQUIRE(waiting == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("a copied watch receiver keeps its own seen version") {
  auto [tx, rx] = deja::watch::channel(0);
  REQUIRE_FALSE(tx.send(1));
  auto copy = rx;
  REQUIRE(copy.has_changed());
  (void)rx.borrow_and_update();
  REQUIRE_FALSE(rx.has_changed());
  REQUIRE(copy.has_changed());
}

TEST_CASE("watch send reports kClosed without receivers but stores the value") {
  auto [tx, rx] = deja::watch::channel<std::string>("a");
  { auto gone = std::move(rx); }
  REQUIRE(tx.receiver_count() == 0);
  REQUIRE(tx.send("b") == deja::ChannelErrc::kClosed);
  REQUIRE(tx.borrow() == "b");
  auto later = tx.subscribe();
  REQUIRE(later.borrow() == "b");
  REQUIRE_FALSE(later.has_changed());  // a new subscriber has seen the current value
  REQUIRE_FALSE(tx.send("c"));
  REQUIRE(later.has_changed());
}

TEST_CASE("watch destroys a replaced value") {
  auto first = std::make_shared<int>(1);
  auto [tx, rx] = deja::watch::channel(first);
  REQUIRE(first.use_count() == 2);
  REQUIRE_FALSE(tx.send(std::make_shared<int>(2)));
  REQUIRE(first.use_count() == 1);
  REQUIRE(*rx.borrow() == 2);
}

TEST_CASE("aborting a task suspended in watch changed leaves the change for the receiver") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::watch::channel(0);
    auto h = deja::spawn(changed_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    h.abort();
    REQUIRE(h.is_finished());
    REQUIRE_FALSE(tx.send(3));  // wakes nobody: the wait was unlinked
    REQUIRE(rx.has_changed());
    const std::error_code ec = co_await rx.changed();
    REQUIRE_FALSE(ec);
    REQUIRE(rx.borrow() == 3);
  };
  deja::block_on(body());
}

TEST_CASE("a watch receiver woken by a send but aborted before it ran has not seen the change") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::watch::channel(0);
    auto h = deja::spawn(changed_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(tx.send(4));  // wakes the task: queued, not run yet
    h.abort();
    co_await deja::yield_now();
    REQUIRE(h.is_finished());
    REQUIRE(rx.has_changed());
    REQUIRE(rx.borrow_and_update() == 4);
  };
  deja::block_on(body());
}
