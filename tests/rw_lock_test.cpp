// deja::RwLock: shared readers, exclusive writers, FIFO fairness (a queued writer holds back later
// readers), and the lock's state when a waiting task is aborted before or after its grant.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "deja/deja.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

using Log = std::shared_ptr<std::vector<int>>;

Log make_log() { return std::make_shared<std::vector<int>>(); }

// Wait for the lock and hand the guard to whoever joins the task.
deja::Task<deja::ReadGuard> read_task(deja::RwLock* l) { co_return co_await l->read(); }
deja::Task<deja::WriteGuard> write_task(deja::RwLock* l) { co_return co_await l->write(); }

deja::Task<void> read_and_log(deja::RwLock* l, Log log, int id) {
  auto g = co_await l->read();
  log->push_back(id);
}

deja::Task<void> write_and_log(deja::RwLock* l, Log log, int id) {
  auto g = co_await l->write();
  log->push_back(id);
}

// Who holds the lock while tasks come and go, checked at every acquisition.
struct Holders {
  int readers = 0;
  int writers = 0;
  int peak_readers = 0;
  bool violated = false;
  std::vector<int> order;
};

deja::Task<void> hold_shared(deja::RwLock* l, std::shared_ptr<Holders> h, int id) {
  auto g = co_await l->read();
  if (h->writers != 0) h->violated = true;
  h->order.push_back(id);
  h->peak_readers = std::max(h->peak_readers, ++h->readers);
  co_await deja::yield_now();
  co_await deja::yield_now();
  --h->readers;
}

deja::Task<void> hold_exclusive(deja::RwLock* l, std::shared_ptr<Holders> h, int id) {
  auto g = co_await l->write();
  if (h->writers != 0 || h->readers != 0) h->violated = true;
  h->order.push_back(id);
  ++h->writers;
  co_await deja::yield_now();
  co_await deja::yield_now();
  --h->writers;
}

deja::Task<void> mixed_worker(deja::RwLock* l, long* value, long* reads_seen_odd, int rounds, bool writer) {
  for (int i = 0; i < rounds; ++i) {
    if (writer) {
      auto g = co_await l->write();
      ++*value;  // odd while inside
      if (i % 3 == 0) co_await deja::yield_now();
      ++*value;
    } else {
      auto g = co_await l->read();
      if (*value % 2 != 0) ++*reads_seen_odd;
      if (i % 3 == 0) co_await deja::yield_now();
    }
  }
}

deja::Task<void> writer_and_reader(deja::RwLock* l, long* value, long* reads_seen_odd, int rounds) {
  auto w = deja::spawn(mixed_worker(l, value, reads_seen_odd, rounds, true));
  auto r = deja::spawn(mixed_worker(l, value, reads_seen_odd, rounds, false));
  co_await w;
  co_await r;
}

}  // namespace

static_assert(!std::is_same_v<deja::ReadGuard, deja::WriteGuard>, "read and write holds are distinct types");
static_assert(std::is_nothrow_move_constructible_v<deja::ReadGuard>);
static_assert(!std::is_copy_constructible_v<deja::WriteGuard>);

TEST_CASE("rwlock lets readers share and keeps a writer exclusive") {
  deja::RwLock l;
  auto r1 = l.try_read();
  auto r2 = l.try_read();
  REQUIRE(r1.has_value());
  REQUIRE(r2.has_value());
  REQUIRE_FALSE(l.try_write().has_value());
  r1->unlock();
  REQUIRE_FALSE(l.try_write().has_value());  // r2 still reads
  r2.reset();
  auto w = l.try_write();
  REQUIRE(w.has_value());
  REQUIRE_FALSE(l.try_read().has_value());
  REQUIRE_FALSE(l.try_write().has_value());
  deja::WriteGuard moved = std::move(*w);
  REQUIRE_FALSE(w->owns_lock());
  w.reset();
  REQUIRE_FALSE(l.try_read().has_value());  // the moved guard still holds it
  moved.unlock();
  REQUIRE(l.try_write().has_value());
}

TEST_CASE("rwlock grants queued requests in order, consecutive readers together and writers alone") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto h = std::make_shared<Holders>();
    auto w0 = co_await l.write();
    std::vector<deja::JoinHandle<void>> hs;
    hs.push_back(deja::spawn(hold_shared(&l, h, 1)));
    hs.push_back(deja::spawn(hold_shared(&l, h, 2)));
    hs.push_back(deja::spawn(hold_exclusive(&l, h, 3)));
    hs.push_back(deja::spawn(hold_shared(&l, h, 4)));
    hs.push_back(deja::spawn(hold_shared(&l, h, 5)));
    hs.push_back(deja::spawn(hold_shared(&l, h, 6)));
    hs.push_back(deja::spawn(hold_exclusive(&l, h, 7)));
    co_await deja::yield_now();
    REQUIRE(h->order.empty());
    w0.unlock();
    for (auto& j : hs) co_await j;
    REQUIRE_FALSE(h->violated);
    REQUIRE(h->order == std::vector<int>{1, 2, 3, 4, 5, 6, 7});
    REQUIRE(h->peak_readers == 3);  // 4, 5 and 6 were admitted together
    REQUIRE(l.try_write().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("a writer waiting on an rwlock holds back readers that arrive after it") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto r = co_await l.read();
    auto w = deja::spawn(write_task(&l));
    co_await deja::yield_now();
    REQUIRE_FALSE(w.is_finished());
    REQUIRE_FALSE(l.try_read().has_value());  // no new readers while a writer waits
    auto later = deja::spawn(read_task(&l));
    co_await deja::yield_now();
    REQUIRE_FALSE(later.is_finished());
    r.unlock();
    co_await deja::yield_now();
    REQUIRE(w.is_finished());
    REQUIRE_FALSE(later.is_finished());
    {
      auto wg = co_await w;
      REQUIRE(wg.owns_lock());
    }
    auto rg = co_await later;
    REQUIRE(rg.owns_lock());
    REQUIRE(l.try_read().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("aborting a reader suspended on an rwlock leaves it free for a writer") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto log = make_log();
    auto w = co_await l.write();
    auto r = deja::spawn(read_and_log(&l, log, 1));
    co_await deja::yield_now();
    r.abort();
    REQUIRE(r.is_finished());
    w.unlock();
    REQUIRE(log->empty());
    auto again = l.try_write();
    REQUIRE(again.has_value());
  };
  deja::block_on(body());
}

TEST_CASE("aborting a writer suspended on an rwlock lets the readers queued behind it in at once") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto held = co_await l.read();
    auto w = deja::spawn(write_task(&l));
    co_await deja::yield_now();
    auto r1 = deja::spawn(read_task(&l));
    auto r2 = deja::spawn(read_task(&l));
    co_await deja::yield_now();
    REQUIRE_FALSE(r1.is_finished());
    w.abort();  // the readers need not wait for `held` to go
    co_await deja::yield_now();
    REQUIRE(r1.is_finished());
    REQUIRE(r2.is_finished());
    auto g1 = co_await r1;
    const bool r2_settled = co_await deja_test::settles(&r2);
    REQUIRE(r2_settled);
    auto g2 = co_await r2;
    REQUIRE_FALSE(l.try_write().has_value());
    held.unlock();
    g1.unlock();
    g2.unlock();
    REQUIRE(l.try_write().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("an rwlock writer aborted after its grant hands the lock to the readers queued behind it") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto log = make_log();
    auto held = co_await l.read();
    auto w = deja::spawn(write_and_log(&l, log, 1));
    co_await deja::yield_now();
    auto r2 = deja::spawn(read_task(&l));
    auto r3 = deja::spawn(read_task(&l));
    co_await deja::yield_now();
    held.unlock();  // granted to the writer, which has not run
    REQUIRE_FALSE(l.try_read().has_value());
    w.abort();
    REQUIRE_FALSE(w.is_finished());
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(w);
    REQUIRE(cancelled);
    const bool r2_settled = co_await deja_test::settles(&r2);
    REQUIRE(r2_settled);
    auto g2 = co_await r2;
    auto g3 = co_await r3;  // both read at once
    REQUIRE(g2.owns_lock());
    REQUIRE(g3.owns_lock());
    REQUIRE(log->empty());
    REQUIRE_FALSE(l.try_write().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("an rwlock reader aborted after its grant gives its share back so the writer can proceed") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto log = make_log();
    auto w0 = co_await l.write();
    auto r1 = deja::spawn(read_and_log(&l, log, 1));
    auto r2 = deja::spawn(read_task(&l));
    auto w3 = deja::spawn(write_task(&l));
    co_await deja::yield_now();
    w0.unlock();  // r1 and r2 are granted together
    r1.abort();   // before it ran
    const bool cancelled = co_await deja_test::throws_as<deja::TaskCancelled>(r1);
    REQUIRE(cancelled);
    const bool r2_settled = co_await deja_test::settles(&r2);
    REQUIRE(r2_settled);
    auto g2 = co_await r2;
    co_await deja::yield_now();
    REQUIRE_FALSE(w3.is_finished());  // r2 still reads
    g2.unlock();                      // the last share: the writer's turn
    const bool w3_settled = co_await deja_test::settles(&w3);
    REQUIRE(w3_settled);
    auto g3 = co_await w3;
    REQUIRE(g3.owns_lock());
    REQUIRE(log->empty());
    g3.unlock();
    REQUIRE(l.try_write().has_value());
  };
  deja::block_on(body());
}

TEST_CASE("an rwlock write that times out leaves the lock to the readers behind it") {
  auto body = []() -> deja::Task<void> {
    deja::RwLock l;
    auto held = co_await l.read();
    auto timed = deja::timeout(5ms, l.write());
    const bool timed_out = co_await deja_test::throws_as<deja::TimedOut>(timed);
    REQUIRE(timed_out);
    auto r = l.try_read();  // no writer queued any more
    REQUIRE(r.has_value());
  };
  deja::block_on(body());
}

TEST_CASE("rwlock readers never see a writer's half-done update across threads") {
  deja::RwLock l;
  long value = 0;
  long odd_a = 0;
  long odd_b = 0;
  constexpr int kRounds = 1500;
  std::thread other([&] { deja::block_on(writer_and_reader(&l, &value, &odd_a, kRounds)); });
  deja::block_on(writer_and_reader(&l, &value, &odd_b, kRounds));
  other.join();
  REQUIRE(value == 4L * kRounds);
  REQUIRE(odd_a == 0);
  REQUIRE(odd_b == 0);
  REQUIRE(l.try_write().has_value());
}
