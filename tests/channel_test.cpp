// oneshot, mpsc, broadcast, watch and CancellationToken.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

deja::Task<void> send_all(deja::mpsc::Sender<int> tx, int first, int count, std::shared_ptr<int> sent) {
  for (int i = 0; i < count; ++i) {
    const std::error_code ec = co_await tx.send(first + i);
    if (ec) co_return;
    ++*sent;
  }
}

deja::Task<std::optional<int>> recv_one(deja::mpsc::Receiver<int>* rx) { co_return co_await rx->recv(); }

deja::Task<int> recv_oneshot(deja::oneshot::Receiver<int> rx) { co_return co_await rx; }

}  // namespace

TEST_CASE("oneshot delivers one value, and reports a sender dropped without one") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<int>();
    auto h = deja::spawn(recv_oneshot(std::move(rx)));
    co_await deja::yield_now();
    REQUIRE_FALSE(tx.send(42));
    const int v = co_await h;
    REQUIRE(v == 42);

    auto [tx2, rx2] = deja::oneshot::channel<int>();
    { auto dropped = std::move(tx2); }
    auto h2 = deja::spawn(recv_oneshot(std::move(rx2)));
    const bool closed = co_await deja_test::throws_as<std::system_error>(h2);
    REQUIRE(closed);

    auto [tx3, rx3] = deja::oneshot::channel<int>();
    { auto gone = std::move(rx3); }
    REQUIRE(tx3.send(1) == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task waiting on a oneshot leaves the sender able to send") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::oneshot::channel<int>();
    auto h = deja::spawn(recv_oneshot(std::move(rx)));
    co_await deja::yield_now();
    h.abort();
    REQUIRE(h.is_finished());
    REQUIRE(tx.send(5) == deja::ChannelErrc::kClosed);  // the receiver died with the task
  };
  deja::block_on(body());
}

TEST_CASE("mpsc delivers every value once, in each sender's order, and closes when all senders are gone") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(4);
    auto sent = std::make_shared<int>(0);
    for (int p = 0; p < 3; ++p) deja::spawn(send_all(tx, p * 1000, 100, sent)).detach();
    { auto last = std::move(tx); }
    std::vector<int> next = {0, 1000, 2000};
    int received = 0;
    while (auto v = co_await rx.recv()) {
      const int p = *v / 1000;
      REQUIRE(*v == next[static_cast<std::size_t>(p)]);
      ++next[static_cast<std::size_t>(p)];
      ++received;
    }
    REQUIRE(received == 300);
    REQUIRE(*sent == 300);
  };
  deja::block_on(body());
}

TEST_CASE("bounded mpsc senders wait for room - try_send reports full and closed") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(1);
    REQUIRE_FALSE(tx.try_send(1));
    REQUIRE(tx.try_send(2) == deja::ChannelErrc::kFull);
    auto sent = std::make_shared<int>(0);
    auto h = deja::spawn(send_all(tx, 10, 1, sent));
    co_await deja::yield_now();
    REQUIRE(*sent == 0);
    auto a = co_await rx.recv();
    REQUIRE(a == 1);
    co_await h;
    REQUIRE(*sent == 1);
    auto b = co_await rx.recv();
    REQUIRE(b == 10);
    rx.close();
    REQUIRE(tx.try_send(3) == deja::ChannelErrc::kClosed);
    const std::error_code ec = co_await tx.send(4);
    REQUIRE(ec == deja::ChannelErrc::kClosed);
    REQUIRE_THROWS_AS(deja::mpsc::channel<int>(0), deja::UsageError);
  };
  deja::block_on(body());
}

TEST_CASE("a sender aborted after it was granted a slot passes the slot on - nothing is lost or duplicated") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(1);
    REQUIRE_FALSE(tx.try_send(0));
    auto sent = std::make_shared<int>(0);
    auto a = deja::spawn(send_all(tx, 100, 1, sent));
    auto b = deja::spawn(send_all(tx, 200, 1, sent));
    co_await deja::yield_now();
    auto first = co_await rx.recv();  // frees the slot: granted to a
    REQUIRE(first == 0);
    a.abort();  // a never ran after the grant
    co_await b;
    auto second = co_await rx.recv();
    REQUIRE(second == 200);
    REQUIRE(*sent == 1);
    std::error_code ec;
    REQUIRE_FALSE(rx.try_recv(ec).has_value());
    REQUIRE(ec == deja::ChannelErrc::kEmpty);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task waiting in mpsc recv leaves the queue intact") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::unbounded_channel<int>();
    auto h = deja::spawn(recv_one(&rx));
    co_await deja::yield_now();
    h.abort();
    REQUIRE_FALSE(tx.try_send(7));
    auto v = co_await rx.recv();
    REQUIRE(v == 7);
  };
  deja::block_on(body());
}

TEST_CASE("broadcast gives every receiver every message and tells a lagging one how many it missed") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx1] = deja::broadcast::channel<int>(2);
    auto rx2 = tx.subscribe();
    REQUIRE_FALSE(tx.send(1));
    auto a = co_await rx1.recv();
    REQUIRE(a.value == 1);
    REQUIRE_FALSE(tx.send(2));
    REQUIRE_FALSE(tx.send(3));
    REQUIRE_FALSE(tx.send(4));
    auto lag = co_await rx2.recv();
    REQUIRE(lag.error == deja::ChannelErrc::kLagged);
    REQUIRE(lag.missed == 2);
    auto next = co_await rx2.recv();
    REQUIRE(next.value == 3);
    { auto gone = std::move(tx); }
    auto r3 = co_await rx2.recv();
    REQUIRE(r3.value == 4);
    auto end = co_await rx2.recv();
    REQUIRE(end.error == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("watch receivers see the latest value and learn when the sender is gone") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::watch::channel<std::string>("a");
    REQUIRE(rx.borrow() == "a");
    REQUIRE_FALSE(rx.has_changed());
    auto rx2 = rx;
    tx.send("b");
    tx.send("c");
    const std::error_code ec = co_await rx.changed();
    REQUIRE_FALSE(ec);
    REQUIRE(rx.borrow_and_update() == "c");
    REQUIRE(rx2.has_changed());
    { auto gone = std::move(tx); }
    const std::error_code closed = co_await rx.changed();
    REQUIRE(closed == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("cancelling a token cancels its children but not its parent, and wakes waiters") {
  auto body = []() -> deja::Task<void> {
    deja::CancellationToken root;
    auto child = root.child_token();
    auto grandchild = child.child_token();
    auto waiter = deja::spawn([](deja::CancellationToken t) -> deja::Task<int> {
      co_await t.cancelled();
      co_return 1;
    }(grandchild));
    co_await deja::yield_now();
    REQUIRE_FALSE(waiter.is_finished());
    child.cancel();
    const int woke = co_await waiter;
    REQUIRE(woke == 1);
    REQUIRE(grandchild.is_cancelled());
    REQUIRE_FALSE(root.is_cancelled());
    root.cancel();
    REQUIRE(root.child_token().is_cancelled());
    { deja::CancellationToken temp = root.child_token(); }  // a dropped child unlinks itself
  };
  deja::block_on(body());
}
