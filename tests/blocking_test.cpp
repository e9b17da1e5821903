// spawn_blocking and the BlockingPool: results and exceptions come back, work runs off the
// runtime's thread in production and inline (deterministically) under the simulator, aborts drop
// results without leaks, and the pool keeps its bounds.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "deja/deja.hpp"
#include "deja/sim/simulator.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

// A gate that pool jobs wait on, so tests control when they finish.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void release() {
    {
      std::lock_guard g(m);
      open = true;
    }
    cv.notify_all();
  }
  void wait() {
    std::unique_lock g(m);
    cv.wait(g, [&] { return open; });
  }
};

// Polls `cond` for up to five seconds (the pool's threads are real threads).
template <class C>
bool eventually(C cond) {
  for (int i = 0; i < 5000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return cond();
}

}  // namespace

TEST_CASE("spawn_blocking runs the job off the runtime's thread and returns its value") {
  const auto runtime_thread = std::this_thread::get_id();
  const auto job_thread = deja::block_on([]() -> deja::Task<std::thread::id> {
    auto h = deja::spawn_blocking([] { return std::this_thread::get_id(); });
    co_return co_await h;
  }());
  REQUIRE(job_thread != runtime_thread);
}

TEST_CASE("spawn_blocking rethrows the job's exception to whoever awaits the handle") {
  const bool threw = deja::block_on([]() -> deja::Task<bool> {
    auto h = deja::spawn_blocking([]() -> int { throw std::runtime_error("disk on fire"); });
    co_return co_await deja_test::throws_as<std::runtime_error>(h);
  }());
  REQUIRE(threw);
}

TEST_CASE("spawn_blocking of a void job completes, and the runtime keeps running tasks meanwhile") {
  auto gate = std::make_shared<Gate>();
  const int ticks = deja::block_on([](std::shared_ptr<Gate> g) -> deja::Task<int> {
    auto h = deja::spawn_blocking([g] { g->wait(); });
    int n = 0;
    for (; n < 3; ++n) co_await deja::sleep(1ms);  // the runtime is not blocked by the job
    g->release();
    co_await h;
    co_return n;
  }(gate));
  REQUIRE(ticks == 3);
}

TEST_CASE("aborting a spawn_blocking handle drops the result once the job finishes") {
  auto gate = std::make_shared<Gate>();
  auto finished = std::make_shared<std::atomic<bool>>(false);
  auto payload = std::make_shared<int>(7);
  std::weak_ptr<int> watch = payload;
  deja::CurrentThreadRuntime rt;
  const bool cancelled = rt.block_on([](std::shared_ptr<Gate> g, std::shared_ptr<std::atomic<bool>> done,
                                        std::shared_ptr<int> p) -> deja::Task<bool> {
    auto h = deja::spawn_blocking([g, done, p = std::move(p)] {
      g->wait();
      done->store(true);
      return p;  // the result owns the payload; dropping it must free it
    });
    co_await deja::yield_now();
    h.abort();
    co_return co_await deja_test::throws_as<deja::TaskCancelled>(h);
  }(gate, finished, std::move(payload)));
  REQUIRE(cancelled);
  gate->release();
  REQUIRE(eventually([&] { return finished->load(); }));
  REQUIRE(eventually([&] { return watch.expired(); }));
}

TEST_CASE("under the simulator spawn_blocking runs inline and replays to the same trace") {
  auto body = []() -> deja::Task<void> {
    const auto sim_thread = std::this_thread::get_id();
    auto a = deja::spawn_blocking([] { return deja::random_below(100); });
    auto b = deja::spawn_blocking([sim_thread] { return std::this_thread::get_id() == sim_thread; });
    const auto va = co_await a;
    const bool same_thread = co_await b;
    DEJA_ASSERT(va < 100);
    DEJA_ASSERT(same_thread);
  };
  deja::sim::Config c;
  c.seed = 42;  // one seed, run twice
  const auto first = deja::sim::run(c, body);
  const auto second = deja::sim::run(c, body);
  INFO(first.report());
  REQUIRE_FALSE(first.failed());
  REQUIRE(first.trace_hash() == second.trace_hash());
}

TEST_CASE("a blocking pool starts at most max_threads threads and queues the rest") {
  auto gate = std::make_shared<Gate>();
  std::atomic<int> ran{0};
  {
    deja::BlockingPoolOptions o;
    o.max_threads = 2;
    deja::BlockingPool pool(o);
    for (int i = 0; i < 5; ++i) pool.execute([&, gate] {
      gate->wait();
      ++ran;
    });
    REQUIRE(pool.threads() == 2);
    REQUIRE(eventually([&] { return pool.queued() == 3; }));
    gate->release();
    REQUIRE(eventually([&] { return ran.load() == 5; }));
  }
  REQUIRE(ran.load() == 5);
}

TEST_CASE("a blocking pool refuses jobs past max_queued with CapacityExceeded") {
  auto gate = std::make_shared<Gate>();
  deja::BlockingPoolOptions o;
  o.max_threads = 1;
  o.max_queued = 2;
  deja::BlockingPool pool(o);
  pool.execute([gate] { gate->wait(); });
  REQUIRE(eventually([&] { return pool.queued() == 0; }));  // the thread took the first job
  pool.execute([] {});
  pool.execute([] {});
  REQUIRE_THROWS_AS(pool.execute([] {}), deja::CapacityExceeded);
  gate->release();
}

TEST_CASE("idle blocking pool threads exit after the idle timeout, and new jobs start new ones") {
  deja::BlockingPoolOptions o;
  o.idle_timeout = 5ms;
  deja::BlockingPool pool(o);
  std::atomic<int> ran{0};
  pool.execute([&] { ++ran; });
  REQUIRE(eventually([&] { return ran.load() == 1 && pool.threads() == 0; }));
  pool.execute([&] { ++ran; });
  REQUIRE(eventually([&] { return ran.load() == 2; }));
}

TEST_CASE("a blocking pool with no threads or no queue is a usage error") {
  deja::BlockingPoolOptions no_threads;
  no_threads.max_threads = 0;
  REQUIRE_THROWS_AS(deja::BlockingPool(no_threads), deja::UsageError);
  deja::BlockingPoolOptions no_queue;
  no_queue.max_queued = 0;
  REQUIRE_THROWS_AS(deja::BlockingPool(no_queue), deja::UsageError);
}

TEST_CASE("spawn_blocking with no runtime current is a usage error") {
  REQUIRE_THROWS_AS(deja::spawn_blocking([] { return 1; }), deja::UsageError);
}

TEST_CASE("a job that a pool job queues while the pool is being destroyed runs before the destructor returns") {
  std::atomic<bool> second_ran{false};
  auto gate = std::make_shared<Gate>();
  std::atomic<bool> first_started{false};
  {
    deja::BlockingPoolOptions o;
    o.max_threads = 2;  // room for a second thread when the first job queues its follow-up
    auto pool = std::make_unique<deja::BlockingPool>(o);
    deja::BlockingPool* p = pool.get();
    p->execute([&, p, gate] {
      first_started = true;
      gate->wait();
      // The destructor has begun: this thread is the only one, busy, so execute starts another.
      std::this_thread::sleep_for(20ms);
      p->execute([&] { second_ran = true; });
    });
    REQUIRE(eventually([&] { return first_started.load(); }));
    std::thread opener([gate] {
      std::this_thread::sleep_for(20ms);
      gate->release();
    });
    pool.reset();  // runs the queued jobs and joins every thread
    opener.join();
  }
  REQUIRE(second_ran.load());
}

TEST_CASE("a blocking job that queues another while its runtime shuts down does not deadlock the shutdown") {
  auto gate = std::make_shared<Gate>();
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto second_ran = std::make_shared<std::atomic<bool>>(false);
  auto shut_down = std::make_shared<std::atomic<bool>>(false);
  auto* rt = new deja::MultiThreadRuntime();
  rt->block_on([](deja::MultiThreadRuntime* runtime, std::shared_ptr<Gate> job_gate, std::shared_ptr<std::atomic<bool>> job_started,
                  std::shared_ptr<std::atomic<bool>> job_second_ran) -> deja::Task<void> {
    deja::spawn_blocking([runtime, job_gate, job_started, job_second_ran] {
      *job_started = true;
      job_gate->wait();
      std::this_thread::sleep_for(20ms);  // the runtime is shutting its pool down by now
      runtime->execute([job_second_ran] { *job_second_ran = true; });
    }).detach();
    co_return;
  }(rt, gate, started, second_ran));
  REQUIRE(eventually([&] { return started->load(); }));
  std::thread destroyer([rt, shut_down] {
    delete rt;
    *shut_down = true;
  });
  std::this_thread::sleep_for(20ms);
  gate->release();
  const bool ok = eventually([&] { return shut_down->load(); });
  if (ok) destroyer.join(); else destroyer.detach();  // deadlocked: leave it
  REQUIRE(ok);
  REQUIRE(second_ran->load());
}
