// deja::mpsc: bounded and unbounded channels; ordering, closing, try_send/try_recv, and tasks
// aborted while waiting to send (before and after they were granted a slot) or to receive.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sync/mpsc.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

// Sends first, first+1, ... first+count-1; counts successes in *sent; stops at the first error.
deja::Task<std::error_code> send_range(deja::mpsc::Sender<int> tx, int first, int count, std::shared_ptr<int> sent) {
  for (int i = 0; i < count; ++i) {
    const std::error_code ec = co_await tx.send(first + i);
    if (ec) co_return ec;
    ++*sent;
  }
  co_return std::error_code{};
}

deja::Task<std::error_code> send_one(deja::mpsc::Sender<int>* tx, int v) { co_return co_await tx->send(v); }

deja::Task<std::optional<int>> recv_via(deja::mpsc::Receiver<int>* rx) { co_return co_await rx->recv(); }

deja::Task<void> ready_now() { co_return; }

}  // namespace

TEST_CASE("mpsc delivers one sender's messages in the order they were sent") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(3);
    auto sent = std::make_shared<int>(0);
    auto h = deja::spawn(send_range(std::move(tx), 0, 1000, sent));
    std::vector<int> got;
    while (auto v = co_await rx.recv()) got.push_back(*v);
    REQUIRE(got.size() == 1000);
    for (int i = 0; i < 1000; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
    const std::error_code ec = co_await h;
    REQUIRE_FALSE(ec);
  };
  deja::block_on(body());
}

TEST_CASE("mpsc closes when every sender is gone, after the queue is drained") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(8);
    auto tx2 = tx;
    REQUIRE_FALSE(tx.try_send(1));
    REQUIRE_FALSE(tx2.try_send(2));
    { auto gone = std::move(tx); }
    std::error_code ec;
    REQUIRE(rx.try_recv(ec) == 1);
    { auto gone = std::move(tx2); }
    auto last = co_await rx.recv();
    REQUIRE(last == 2);
    auto end = co_await rx.recv();
    REQUIRE_FALSE(end.has_value());
    REQUIRE_FALSE(rx.try_recv(ec).has_value());
    REQUIRE(ec == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("mpsc wakes a waiting receiver with nullopt when the last sender is dropped") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(1);
    auto h = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    { auto gone = std::move(tx); }
    auto v = co_await h;
    REQUIRE_FALSE(v.has_value());
  };
  deja::block_on(body());
}

TEST_CASE("mpsc many producers: every message arrives once, each producer's in order") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(4);
    auto sent = std::make_shared<int>(0);
    for (int p = 0; p < 5; ++p) deja::spawn(send_range(tx, p * 10000, 500, sent)).detach();
    { auto gone = std::move(tx); }
    std::vector<int> next = {0, 10000, 20000, 30000, 40000};
    int received = 0;
    while (auto v = co_await rx.recv()) {
      const auto p = static_cast<std::size_t>(*v / 10000);
      REQUIRE(*v == next[p]);
      ++next[p];
      ++received;
    }
    REQUIRE(received == 2500);
    REQUIRE(*sent == 2500);
  };
  deja::block_on(body());
}

TEST_CASE("a bounded mpsc sender waits for room and is resumed when the receiver takes a message") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(2);
    REQUIRE_FALSE(tx.try_send(1));
    REQUIRE_FALSE(tx.try_send(2));
    auto h = deja::spawn(send_one(&tx, 3));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    REQUIRE(rx.size() == 2);
    auto a = co_await rx.recv();
    REQUIRE(a == 1);
    const std::error_code ec = co_await h;
    REQUIRE_FALSE(ec);
    REQUIRE(rx.size() == 2);
    auto b = co_await rx.recv();
    auto c = co_await rx.recv();
    REQUIRE(b == 2);
    REQUIRE(c == 3);
  };
  deja::block_on(body());
}

TEST_CASE("bounded mpsc senders get room in the order they started waiting") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(1);
    REQUIRE_FALSE(tx.try_send(0));
    std::vector<deja::JoinHandle<std::error_code>> waiting;
    for (int i = 1; i <= 5; ++i) {
      waiting.push_back(deja::spawn(send_one(&tx, i)));
      co_await deja::yield_now();
    }
    // A newcomer does not jump the queue while others wait.
    REQUIRE(tx.try_send(99) == deja::ChannelErrc::kFull);
    for (int i = 0; i <= 5; ++i) {
      auto v = co_await rx.recv();
      REQUIRE(v == i);
    }
    for (auto& h : waiting) {
      const std::error_code ec = co_await h;
      REQUIRE_FALSE(ec);
    }
  };
  deja::block_on(body());
}

TEST_CASE("mpsc try_send reports kFull and kClosed and leaves the value with the caller") {
  auto [tx, rx] = deja::mpsc::channel<std::string>(1);
  REQUIRE_FALSE(tx.try_send("a"));
  std::string b = "b";
  REQUIRE(tx.try_send(std::move(b)) == deja::ChannelErrc::kFull);
  REQUIRE(b == "b");  // NOLINT(bugprone-use-after-move): not taken on failure
  rx.close();
  REQUIRE(tx.is_closed());
  REQUIRE(tx.try_send(std::move(b)) == deja::ChannelErrc::kClosed);
  REQUIRE(b == "b");  // NOLINT(bugprone-use-after-move)
  REQUIRE(rx.try_recv() == std::string("a"));
}

TEST_CASE("mpsc try_recv reports kEmpty while senders remain") {
  auto [tx, rx] = deja::mpsc::channel<int>(4);
  std::error_code ec;
  REQUIRE_FALSE(rx.try_recv(ec).has_value());
  REQUIRE(ec == deja::ChannelErrc::kEmpty);
  REQUIRE_FALSE(tx.try_send(5));
  REQUIRE(rx.try_recv(ec) == 5);
  REQUIRE_FALSE(ec);
}

TEST_CASE("mpsc close stops sends, wakes waiting senders with kClosed, and keeps queued messages") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(1);
    REQUIRE_FALSE(tx.try_send(1));
    auto h = deja::spawn(send_one(&tx, 2));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    rx.close();
    const std::error_code waiting = co_await h;
    REQUIRE(waiting == deja::ChannelErrc::kClosed);
    const std::error_code after = co_await tx.send(3);
    REQUIRE(after == deja::ChannelErrc::kClosed);
    auto v = co_await rx.recv();
    REQUIRE(v == 1);
    auto end = co_await rx.recv();
    REQUIRE_FALSE(end.has_value());
  };
  deja::block_on(body());
}

TEST_CASE("dropping the mpsc receiver closes the channel and destroys queued messages") {
  auto body = []() -> deja::Task<void> {
    auto value = std::make_shared<int>(0);
    auto [tx, rx] = deja::mpsc::channel<std::shared_ptr<int>>(1);
    REQUIRE_FALSE(tx.try_send(value));
    auto blocked = deja::spawn([](deja::mpsc::Sender<std::shared_ptr<int>>* s, std::shared_ptr<int> v) -> deja::Task<std::error_code> {
      co_return co_await s->send(std::move(v));
    }(&tx, value));
    co_await deja::yield_now();
    REQUIRE(value.use_count() == 3);  // queued + held by the waiting send
    { auto gone = std::move(rx); }
    REQUIRE(value.use_count() == 2);  // the queued copy is destroyed with the receiver
    const std::error_code ec = co_await blocked;
    REQUIRE(ec == deja::ChannelErrc::kClosed);
    REQUIRE(value.use_count() == 1);  // the failed send dropped its value
    REQUIRE(tx.is_closed());
    REQUIRE(tx.try_send(value) == deja::ChannelErrc::kClosed);
  };
  deja::block_on(body());
}

TEST_CASE("mpsc channel capacity must be between 1 and kMaxCapacity") {
  REQUIRE_THROWS_AS(deja::mpsc::channel<int>(0), deja::UsageError);
  REQUIRE_THROWS_AS(deja::mpsc::channel<int>(deja::mpsc::kMaxCapacity + 1), deja::UsageError);
  REQUIRE_THROWS_AS(deja::mpsc::unbounded_channel<int>(0), deja::UsageError);
  REQUIRE_NOTHROW(deja::mpsc::channel<int>(deja::mpsc::kMaxCapacity));
  STATIC_REQUIRE(deja::mpsc::kMaxCapacity == std::size_t{1} << 26);
}

TEST_CASE("an unbounded mpsc sender never waits") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::unbounded_channel<int>();
    for (int i = 0; i < 100000; ++i) {
      const std::error_code ec = co_await tx.send(i);
      REQUIRE_FALSE(ec);
    }
    REQUIRE(rx.size() == 100000);
    { auto gone = std::move(tx); }
    int expected = 0;
    while (auto v = co_await rx.recv()) REQUIRE(*v == expected++);
    REQUIRE(expected == 100000);
  };
  deja::block_on(body());
}

TEST_CASE("an unbounded mpsc channel reports kFull past its hard limit instead of growing") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::unbounded_channel<int>(3);
    for (int i = 0; i < 3; ++i) REQUIRE_FALSE(tx.try_send(i));
    REQUIRE(tx.try_send(3) == deja::ChannelErrc::kFull);
    const std::error_code ec = co_await tx.send(4);
    REQUIRE(ec == deja::ChannelErrc::kFull);
    REQUIRE(rx.size() == 3);
    auto v = co_await rx.recv();
    REQUIRE(v == 0);
    const std::error_code again = co_await tx.send(5);
    REQUIRE_FALSE(again);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task suspended in mpsc recv leaves the queue intact") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(2);
    auto h = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    h.abort();
    REQUIRE(h.is_finished());
    REQUIRE_FALSE(tx.try_send(7));  // wakes nobody: the wait was unlinked
    REQUIRE(rx.size() == 1);
    auto v = co_await rx.recv();
    REQUIRE(v == 7);
  };
  deja::block_on(body());
}

TEST_CASE("an mpsc receiver woken for a message but aborted before it ran leaves the message queued") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(2);
    auto h = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(tx.try_send(8));  // claims the message for the waiting task and wakes it
    h.abort();
    co_await deja::yield_now();
    REQUIRE(h.is_finished());
    std::error_code ec;
    REQUIRE(rx.try_recv(ec) == 8);
    REQUIRE_FALSE(ec);
  };
  deja::block_on(body());
}

TEST_CASE("a message claimed by an aborted receiving task passes to the next task receiving") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(4);
    auto first = deja::spawn(recv_via(&rx));
    auto second = deja::spawn(recv_via(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(tx.try_send(1));  // claimed by `first`
    first.abort();
    auto got = co_await second;
    REQUIRE(got == 1);
    REQUIRE(rx.size() == 0);
  };
  deja::block_on(body());
}

TEST_CASE("aborting a task suspended in a bounded mpsc send enqueues nothing and frees its place") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(1);
    REQUIRE_FALSE(tx.try_send(1));
    auto h = deja::spawn(send_one(&tx, 2));
    co_await deja::yield_now();
    REQUIRE_FALSE(h.is_finished());
    h.abort();
    REQUIRE(h.is_finished());
    auto v = co_await rx.recv();
    REQUIRE(v == 1);
    std::error_code ec;
    REQUIRE_FALSE(rx.try_recv(ec).has_value());
    REQUIRE(ec == deja::ChannelErrc::kEmpty);
    REQUIRE_FALSE(tx.try_send(3));  // the room is free: nothing was reserved for the dead sender
    REQUIRE(rx.try_recv() == 3);
  };
  deja::block_on(body());
}

TEST_CASE("a bounded mpsc sender aborted after it was granted a slot passes the slot to the next sender") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(1);
    REQUIRE_FALSE(tx.try_send(0));
    auto sent = std::make_shared<int>(0);
    auto a = deja::spawn(send_range(tx, 100, 1, sent));
    auto b = deja::spawn(send_range(tx, 200, 1, sent));
    co_await deja::yield_now();
    REQUIRE_FALSE(a.is_finished());
    REQUIRE_FALSE(b.is_finished());
    auto first = co_await rx.recv();  // frees the slot: granted to `a`, which is woken
    REQUIRE(first == 0);
    REQUIRE(tx.try_send(-1) == deja::ChannelErrc::kFull);  // the slot is reserved for `a`
    a.abort();  // `a` never ran after the grant
    const std::error_code ec = co_await b;
    REQUIRE_FALSE(ec);
    REQUIRE(*sent == 1);
    auto second = co_await rx.recv();
    REQUIRE(second == 200);
    std::error_code empty;
    REQUIRE_FALSE(rx.try_recv(empty).has_value());  // 100 was never enqueued, 200 not twice
    REQUIRE(empty == deja::ChannelErrc::kEmpty);
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(a);
    REQUIRE(cancelled);
  };
  deja::block_on(body());
}

TEST_CASE("an mpsc send that loses a race never enqueues its value") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(1);
    REQUIRE_FALSE(tx.try_send(1));
    auto r = co_await deja::race(tx.send(2), ready_now());
    REQUIRE(r.index() == 1);
    auto v = co_await rx.recv();
    REQUIRE(v == 1);
    REQUIRE_FALSE(rx.try_recv().has_value());
    auto won = co_await deja::race(tx.send(3), deja::sleep(10s));
    REQUIRE(won.index() == 0);
    REQUIRE_FALSE(std::get<0>(won));
    REQUIRE(rx.try_recv() == 3);
  };
  deja::block_on(body());
}

TEST_CASE("mpsc sends from other threads all reach a receiving task") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(16);
    constexpr int kPerThread = 20000;
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([s = tx, t]() mutable {
        for (int i = 0; i < kPerThread;) {
          const std::error_code ec = s.try_send(t * kPerThread + i);
          if (!ec) ++i;
          else std::this_thread::yield();
        }
      });
    }
    { auto gone = std::move(tx); }
    std::vector<int> next = {0, kPerThread, 2 * kPerThread};
    int received = 0;
    while (auto v = co_await rx.recv()) {
      const auto t = static_cast<std::size_t>(*v / kPerThread);
      REQUIRE(*v == next[t]);
      ++next[t];
      ++received;
    }
    for (auto& th : threads) th.join();
    REQUIRE(received == 3 * kPerThread);
  };
  deja::block_on(body());
}

namespace {

deja::Task<std::optional<int>> recv_into_optional(deja::mpsc::Receiver<int>* rx) { co_return co_await rx->recv(); }

}  // namespace

// A receive that finds the channel finished while a message is claimed for a task that was woken
// but has not run must not report the end of the stream: if that task is then destroyed, the
// message is still in the channel, after a recv already said "closed and drained" (a consumer
// loop `while (auto v = co_await rx.recv())` has stopped, and the message is never processed).
TEST_CASE("mpsc recv reports end-of-stream only when no message can follow") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<int>(4);
    auto first = deja::spawn(recv_into_optional(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(first.is_finished());
    REQUIRE_FALSE(tx.try_send(1));  // claimed for `first`, which is woken
    { auto gone = std::move(tx); }   // the last sender: the channel is finished
    // A receive now, while the only message is claimed by `first`, which has not run yet.
    std::optional<int> got = co_await rx.recv();
    first.abort();  // if `first` has still not run, it is destroyed and its message stays queued
    const bool settled = co_await deja_test::settles(&first);
    REQUIRE(settled);
    std::optional<int> first_got;
    try {
      first_got = co_await first;
    } catch (const deja::TaskCancelled&) {
    }
    std::error_code ec;
    std::optional<int> left = rx.try_recv(ec);
    INFO("recv gave " << (got ? std::to_string(*got) : std::string("nullopt")) << ", the woken task "
                      << (first_got ? std::to_string(*first_got) : std::string("nothing")) << ", then try_recv "
                      << (left ? std::to_string(*left) : std::string("nothing")));
    // nullopt means the stream is over: nothing may be received after it.
    REQUIRE((got.has_value() || !left.has_value()));
    // And the message was received exactly once, by a receive that returned.
    REQUIRE(int(got == std::optional<int>(1)) + int(first_got == std::optional<int>(1)) == 1);
  };
  deja::block_on(body());
}


namespace {

// Moving it throws `throws_left` times (as a move that allocates may).
struct MoveThrowsWhenArmed {
  static inline int throws_left = 0;
  int value = 0;
  explicit MoveThrowsWhenArmed(int v) : value(v) {}
  MoveThrowsWhenArmed(MoveThrowsWhenArmed&& other) : value(other.value) {
    if (throws_left > 0) {
      --throws_left;
      throw std::runtime_error("move failed");
    }
  }
  MoveThrowsWhenArmed& operator=(MoveThrowsWhenArmed&&) = delete;
};

deja::Task<int> recv_value(deja::mpsc::Receiver<MoveThrowsWhenArmed>* rx) {
  auto v = co_await rx->recv();
  co_return v ? v->value : -1;
}

}  // namespace

// Two receives wait on one Receiver; the message is claimed for the first, whose move of it out of
// the channel throws. The first sees the exception; the message must stay in the channel for the
// second, not be stranded behind a claim nobody holds.
TEST_CASE("mpsc: a receive whose move of the message throws leaves the message to the next receive") {
  auto body = []() -> deja::Task<void> {
    auto [tx, rx] = deja::mpsc::channel<MoveThrowsWhenArmed>(4);
    auto first = deja::spawn(recv_value(&rx));
    auto second = deja::spawn(recv_value(&rx));
    co_await deja::yield_now();
    REQUIRE_FALSE(tx.try_send(MoveThrowsWhenArmed(7)));  // claimed for `first`, which is woken
    MoveThrowsWhenArmed::throws_left = 1;
    bool first_threw = false;
    try {
      (void)co_await first;
    } catch (const std::runtime_error&) {
      first_threw = true;
    }
    REQUIRE(first_threw);
    const bool settled = co_await deja_test::settles(&second);
    if (!settled) second.abort();  // stranded: gone before the channel it waits on
    REQUIRE(settled);
    const int got = co_await second;
    CHECK(got == 7);
  };
  deja::block_on(body());
}
