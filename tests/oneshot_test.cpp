// deja::oneshot: one value from one Sender to one Receiver; closing, try_recv, and tasks aborted
// while they wait for the value.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "deja/deja.hpp"
#include "deja/sync/oneshot.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

deja::Task<int> recv_via(deja::oneshot::Receiver<int>* rx) { co_return co_await *rx; }

deja::Task<int> recv_owned(deja::oneshot::Receiver<int> rx) { co_return co_await rx.recv(); }

// The code of the std::system_error that awaiting `a` throws, or {} if it throws none.
template <class A>
deja::Task<std::error_code> thrown_code(A& a) {
  try {
    co_await a;
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  co_return std::error_code{};
}

deja::Task<void> ready_now() { co_return; }

}  // namespace

TEST_CASE("oneshot delivers the sent value to a receiver that was waiting for it") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<int>();
    auto h = deja::spawn(recv_owned(std::move(rx)));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    const std::error_code ec = tx.send(42);
    REQUIRE_FALSE(ec);
    const int v = co_await h;
    REQUIRE(v == 42);
  };
  deja::block_on(body());
}

TEST_CASE("oneshot value sent before the receive is returned without waiting") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<std::string>();
    REQUIRE_FALSE(tx.send("hello"));
    REQUIRE_FALSE(tx.valid());
    const std::string v = co_await rx;
    REQUIRE(v == "hello");
  };
  deja::block_on(body());
}

TEST_CASE("oneshot receive throws kClosed when the sender is dropped without sending") {
  auto body = []() -> deja::Task<void> {
    // Dropped before the receive starts.
    auto [tx, rx] = deja::oneshot::channel<int>();
    { auto gone = std::move(tx); }
    const std::error_code early = co_await thrown_code(rx);
    REQUIRE(early == deja::ChannelErrc::kClosed);

    // Dropped while the receiver waits.
    auto [tx2, rx2] = deja::oneshot::channel<int>();
    auto h = deja::spawn(recv_owned(std::move(rx2)));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    { auto gone = std::move(tx2); }
    const std::error_code late = co_await thrown_code(h);
    REQUIRE(late == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("oneshot send reports kClosed once the receiver is gone and leaves the argument alone") {
  auto [tx, rx] = deja::oneshot::channel<std::string>();
  REQUIRE_FALSE(tx.is_closed());
  { auto gone = std::move(rx); }
  REQUIRE(tx.is_closed());
  std::string value = "kept";
  REQUIRE(tx.send(std::move(value)) == deja::ChannelErrc::kClosed);
  REQUIRE(value == "kept");  // NOLINT(bugprone-use-after-move): not taken on failure
  REQUIRE_FALSE(tx.valid());
}

TEST_CASE("oneshot sender is spent by send: sending twice throws UsageError") {
  auto [tx, rx] = deja::oneshot::channel<int>();
  REQUIRE_FALSE(tx.send(1));
  REQUIRE_THROWS_AS(tx.send(2), deja::UsageError);
  REQUIRE(rx.try_recv() == 1);
}

TEST_CASE("oneshot try_recv reports kEmpty, then gives the value, then reports kClosed") {
  auto [tx, rx] = deja::oneshot::channel<int>();
  std::error_code ec;
  REQUIRE_FALSE(rx.try_recv(ec).has_value());
  REQUIRE(ec == deja::ChannelErrc::kEmpty);
  REQUIRE_FALSE(tx.send(7));
  REQUIRE(rx.try_recv(ec) == 7);
  REQUIRE_FALSE(ec);
  REQUIRE_FALSE(rx.try_recv(ec).has_value());
  REQUIRE(ec == deja::ChannelErrc::kClosed);

  auto [tx2, rx2] = deja::oneshot::channel<int>();
  { auto gone = std::move(tx2); }
  REQUIRE_FALSE(rx2.try_recv(ec).has_value());
  REQUIRE(ec == deja::ChannelErrc::kClosed);
}

TEST_CASE("awaiting a oneshot receiver after it received the value throws UsageError") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<int>();
    REQUIRE_FALSE(tx.send(3));
    const int v = co_await rx;
    REQUIRE(v == 3);
    const bool threw = co_await deja_test::throws_as<deja::UsageError>(rx);
    REQUIRE(threw);

    deja::oneshot::Receiver<int> empty;
    const bool threw_empty = co_await deja_test::throws_as<deja::UsageError>(empty);
    REQUIRE(threw_empty);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task suspended in a oneshot receive leaves the channel usable") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<int>();
    auto h = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    h.abort();
    REQUIRE(h.is_finished());
    // The aborted wait was unlinked: the send wakes nobody (ASan would catch a dangling waiter),
    // and the value waits for the receiver, which is still alive.
    REQUIRE_FALSE(tx.is_closed());
    REQUIRE_FALSE(tx.send(9));
    const int v = co_await rx;
    REQUIRE(v == 9);
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(h);
    REQUIRE(cancelled);
  };
  deja::block_on(body());
}

TEST_CASE("a oneshot receiver woken by the send but aborted before it ran leaves the value in the channel") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<int>();
    auto h = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(tx.send(11));  // wakes the task: it is queued, not run yet
    h.abort();
    co_await deja::yield_now();
    REQUIRE(h.is_finished());
    std::error_code ec;
    REQUIRE(rx.try_recv(ec) == 11);
    REQUIRE_FALSE(ec);
  };
  deja::block_on(body());
}

TEST_CASE("a oneshot receive that loses a race takes nothing: the value comes later") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<int>();
    auto first = co_await deja::race(rx.recv(), ready_now());
    REQUIRE(first.index() == 1);
    REQUIRE_FALSE(tx.send(5));
    auto second = co_await deja::race(rx.recv(), deja::sleep(10s));
    REQUIRE(second.index() == 0);
    REQUIRE(std::get<0>(second) == 5);
  };
  deja::block_on(body());
}

TEST_CASE("dropping a oneshot receiver destroys a value it never received") {
  auto value = std::make_shared<int>(1);
  auto [tx, rx] = deja::oneshot::channel<std::shared_ptr<int>>();
  REQUIRE_FALSE(tx.send(value));
  REQUIRE(value.use_count() == 2);
  { auto gone = std::move(rx); }
  REQUIRE(value.use_count() == 1);
}

TEST_CASE("a oneshot send from another thread wakes the waiting task") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<int>();
    std::thread sender([t = std::move(tx)]() mutable {
      std::this_thread::sleep_for(20ms);
      (void)t.send(77);
    });
    const int v = co_await rx;
    sender.join();
    REQUIRE(v == 77);
  };
  deja::block_on(body());
}

namespace {

// Copying it throws (as a copy that allocates may).
struct ThrowsOnCopy {
  ThrowsOnCopy() = default;
  ThrowsOnCopy(const ThrowsOnCopy&) { throw std::runtime_error("copy failed"); }
  ThrowsOnCopy(ThrowsOnCopy&&) noexcept = default;
  ThrowsOnCopy& operator=(const ThrowsOnCopy&) = delete;
  ThrowsOnCopy& operator=(ThrowsOnCopy&&) noexcept = default;
};

// Whether the receive ended with kClosed.
deja::Task<bool> recv_ends_closed(deja::oneshot::Receiver<ThrowsOnCopy>* rx) {
  try {
    ThrowsOnCopy v = co_await *rx;
    (void)v;
  } catch (const std::system_error& e) {
    co_return e.code() == deja::make_error_code(deja::ChannelErrc::kClosed);
  }
  co_return false;
}

}  // namespace

// oneshot::Sender::send empties the Sender before it builds the value in the channel; if building
// it throws, the channel still believes the sender is alive, and nobody is left to say otherwise:
// the receiver waits forever (and the shared state leaks).
TEST_CASE("a oneshot send whose value construction throws does not strand the receiver") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<ThrowsOnCopy>();
    auto waiting = deja::spawn(recv_ends_closed(&rx));
    co_await deja::yield_now();
    const ThrowsOnCopy value;
    bool threw = false;
    try {
      (void)tx.send(value);  // copies: throws
    } catch (const std::runtime_error&) {
      threw = true;
    }
    REQUIRE(threw);
    { auto gone = std::move(tx); }  // the sender is dropped without having sent
    const bool settled = co_await deja_test::settles(&waiting);
    REQUIRE(settled);  // the receive must end (kClosed), not wait forever
    const bool closed = co_await waiting;
    REQUIRE(closed);
  };
  deja::block_on(body());
}
