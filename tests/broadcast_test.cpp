// deja::broadcast: every receiver sees every message; lagging, closing, and tasks aborted while
// they wait for a message.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sync/broadcast.hpp"
#include "test_support.hpp"

namespace {

deja::Task<deja::broadcast::RecvResult<int>> recv_via(deja::broadcast::Receiver<int>* rx) { co_return co_await rx->recv(); }

}  // namespace

TEST_CASE("every broadcast receiver gets a copy of every message sent after it subscribed") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx1] = deja::broadcast::channel<std::string>(8);
    REQUIRE_FALSE(tx.send("one"));
    auto rx2 = tx.subscribe();
    REQUIRE(tx.receiver_count() == 2);
    REQUIRE_FALSE(tx.send("two"));
    auto a = co_await rx1.recv();
    auto b = co_await rx1.recv();
    auto c = co_await rx2.recv();
    REQUIRE(a.value == std::string("one"));
    REQUIRE(b.value == std::string("two"));
    REQUIRE(c.value == std::string("two"));  // rx2 subscribed after "one"
    REQUIRE_FALSE(c.error);
    auto nothing = rx2.try_recv();
    REQUIRE_FALSE(nothing.has_value());
    REQUIRE(nothing.error == deja::ChannelErrc::kEmpty);
  };
  deja::block_on(body());
}

TEST_CASE("a broadcast receiver that lagged is told how many it missed and continues from the oldest kept") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::broadcast::channel<int>(3);
    for (int i = 0; i < 10; ++i) REQUIRE_FALSE(tx.send(i));
    REQUIRE(rx.pending() == 10);
    auto lag = co_await rx.recv();
    REQUIRE_FALSE(lag.has_value());
    REQUIRE(lag.error == deja::ChannelErrc::kLagged);
    REQUIRE(lag.missed == 7);
    for (int i = 7; i < 10; ++i) {
      auto r = co_await rx.recv();
      REQUIRE(r.value == i);
    }
    REQUIRE(rx.try_recv().error == deja::ChannelErrc::kEmpty);
  };
  deja::block_on(body());
}

TEST_CASE("broadcast recv reports kClosed once every sender is gone and everything was read") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::broadcast::channel<int>(4);
    auto tx2 = tx;
    REQUIRE_FALSE(tx.send(1));
    { auto gone = std::move(tx); }
    REQUIRE_FALSE(tx2.send(2));
    { auto gone = std::move(tx2); }
    auto a = co_await rx.recv();
    auto b = co_await rx.recv();
    auto end = co_await rx.recv();
    REQUIRE(a.value == 1);
    REQUIRE(b.value == 2);
    REQUIRE_FALSE(end.has_value());
    REQUIRE(end.error == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("broadcast wakes a waiting receiver with kClosed when the last sender is dropped") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::broadcast::channel<int>(2);
    auto h = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    { auto gone = std::move(tx); }
    auto r = co_await h;
    REQUIRE(r.error == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("broadcast send reports kClosed when there are no receivers") {
  auto [tx, rx] = deja::broadcast::channel<int>(2);
  { auto gone = std::move(rx); }
  REQUIRE(tx.receiver_count() == 0);
  REQUIRE(tx.send(1) == deja::ChannelErrc::kClosed);
  auto late = tx.subscribe();  // a new subscriber sees only what comes after
  REQUIRE_FALSE(tx.send(2));
  REQUIRE(late.try_recv().value == 2);
}

TEST_CASE("one broadcast send wakes every waiting receiver") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::broadcast::channel<int>(2);
    std::vector<deja::broadcast::Receiver<int>> rxs;
    for (int i = 0; i < 5; ++i) rxs.push_back(tx.subscribe());
    std::vector<deja::JoinHandle<deja::broadcast::RecvResult<int>>> waiting;
    for (auto& r : rxs) waiting.push_back(deja::spawn(recv_via(&r)));
    co_await deja::yield_now();
    for (auto& h : waiting) REQUIRE_FALSE(h.is_finished());
    REQUIRE_FALSE(tx.send(42));
    for (auto& h : waiting) {
      auto r = co_await h;
      REQUIRE(r.value == 42);
    }
  };
  deja::block_on(body());
}

TEST_CASE("broadcast resubscribe gives a receiver that sees only later messages") {
  auto [tx, rx] = deja::broadcast::channel<int>(4);
  REQUIRE_FALSE(tx.send(1));
  auto again = rx.resubscribe();
  REQUIRE_FALSE(tx.send(2));
  REQUIRE(rx.try_recv().value == 1);
  REQUIRE(again.try_recv().value == 2);
  REQUIRE(again.try_recv().error == deja::ChannelErrc::kEmpty);
}

TEST_CASE("broadcast channel capacity must be between 1 and kMaxCapacity") {
  REQUIRE_THROWS_AS(deja::broadcast::channel<int>(0), deja::UsageError);
  REQUIRE_THROWS_AS(deja::broadcast::channel<int>(deja::broadcast::kMaxCapacity + 1), deja::UsageError);
}

TEST_CASE("broadcast destroys a message once the ring overwrites it") {
  auto value = std::make_shared<int>(0);
  auto other = std::make_shared<int>(0);
  auto [tx, rx] = deja::broadcast::channel<std::shared_ptr<int>>(2);
  REQUIRE_FALSE(tx.send(value));
  REQUIRE(value.use_count() == 2);
  REQUIRE_FALSE(tx.send(other));
  REQUIRE_FALSE(tx.send(other));
  REQUIRE(value.use_count() == 1);
  auto lag = rx.try_recv();
  REQUIRE(lag.error == deja::ChannelErrc::kLagged);
  REQUIRE(lag.missed == 1);
}

TEST_CASE("aborting a task suspended in broadcast recv leaves its receiver's position unchanged") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::broadcast::channel<int>(4);
    auto h = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    h.abort();
    REQUIRE(h.is_finished());
    REQUIRE(tx.receiver_count() == 1);
    REQUIRE_FALSE(tx.send(5));  // wakes nobody: the wait was unlinked
    REQUIRE(rx.pending() == 1);
    auto r = co_await rx.recv();
    REQUIRE(r.value == 5);
  };
  deja::block_on(body());
}

TEST_CASE("a broadcast receiver woken by a send but aborted before it ran still gets that message") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::broadcast::channel<int>(4);
    auto h = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(tx.send(6));  // wakes the task: queued, not run yet
    h.abort();
    co_await deja::yield_now();
    REQUIRE(h.is_finished());
    auto r = rx.try_recv();
    REQUIRE(r.value == 6);
  };
  deja::block_on(body());
}

namespace {

// A message that can be copied but not moved (a user-declared copy constructor suppresses the
// move), and whose copy fails on demand, as one that allocates may with std::bad_alloc.
struct CopyOnly {
  static inline int copies_until_throw = -1;  // -1: never
  int v = 0;
  explicit CopyOnly(int x) : v(x) {}
  CopyOnly(const CopyOnly& o) : v(o.v) {
    if (copies_until_throw >= 0 && copies_until_throw-- == 0) throw std::runtime_error("copy failed");
  }
  CopyOnly& operator=(const CopyOnly&) = default;
};

}  // namespace

TEST_CASE("a broadcast recv whose result fails to copy out keeps the message for the next recv") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::broadcast::channel<CopyOnly>(4);
    REQUIRE_FALSE(tx.send(CopyOnly(1)));
    REQUIRE_FALSE(tx.send(CopyOnly(2)));
    CopyOnly::copies_until_throw = 1;  // the copy out of the ring succeeds, the next one throws
    bool threw = false;
    try {
      auto r = co_await rx.recv();
      (void)r;
    } catch (const std::runtime_error&) {
      threw = true;
    }
    CopyOnly::copies_until_throw = -1;
    REQUIRE(threw);
    auto r = co_await rx.recv();
    REQUIRE(r.has_value());
    REQUIRE(r->v == 1);
  };
  deja::block_on(body());
}
