// AsyncFd readiness on the epoll reactor, and cross-thread wakes through the eventfd.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <thread>

#include "deja/deja.hpp"

using namespace std::chrono_literals;

namespace {

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
  }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

deja::Task<int> read_one(int fd) {
  deja::AsyncFd afd(fd);
  for (;;) {
    char c;
    const ssize_t n = ::read(fd, &c, 1);
    if (n == 1) co_return c;
    if (n < 0 && errno == EAGAIN) {
      afd.clear_ready(deja::Interest::kReadable);
      co_await afd.readable();
      continue;
    }
    co_return -1;
  }
}

deja::Task<void> write_later(int fd) {
  co_await deja::sleep(5ms);
  const char c = 'x';
  REQUIRE(::write(fd, &c, 1) == 1);
}

}  // namespace

TEST_CASE("AsyncFd wakes a reader when data arrives") {
  Pipe p;
  auto body = [&]() -> deja::Task<int> {
    auto writer = deja::spawn(write_later(p.fds[1]));
    const int c = co_await read_one(p.fds[0]);
    co_await writer;
    co_return c;
  };
  REQUIRE(deja::block_on(body()) == 'x');
}

TEST_CASE("data written by another thread wakes the runtime") {
  Pipe p;
  auto body = [&]() -> deja::Task<int> {
    std::thread t([&] {
      std::this_thread::sleep_for(5ms);
      const char c = 'y';
      REQUIRE(::write(p.fds[1], &c, 1) == 1);
    });
    const int c = co_await read_one(p.fds[0]);
    t.join();
    co_return c;
  };
  REQUIRE(deja::block_on(body()) == 'y');
}

TEST_CASE("aborting a task waiting on an fd unlinks it and deregisters the fd") {
  Pipe p;
  auto body = [&]() -> deja::Task<void> {
    auto reader = deja::spawn(read_one(p.fds[0]));
    co_await deja::yield_now();
    REQUIRE_FALSE(reader.is_finished());
    reader.abort();
    REQUIRE(reader.is_finished());
    // The fd can be registered again: the aborted AsyncFd deregistered it.
    auto again = deja::spawn(read_one(p.fds[0]));
    co_await deja::yield_now();
    const char c = 'z';
    REQUIRE(::write(p.fds[1], &c, 1) == 1);
    const int got = co_await again;
    REQUIRE(got == 'z');
  };
  deja::block_on(body());
}

TEST_CASE("AsyncFd rejects an invalid descriptor and use outside a runtime") {
  REQUIRE_THROWS_AS(deja::AsyncFd(3), deja::UsageError);
  auto body = []() -> deja::Task<void> {
    REQUIRE_THROWS_AS(deja::AsyncFd(-1), deja::UsageError);
    REQUIRE_THROWS_AS(deja::AsyncFd(987654), std::system_error);
    co_return;
  };
  deja::block_on(body());
}

TEST_CASE("a task woken from another thread resumes on the runtime") {
  deja::CurrentThreadRuntime rt;
  auto body = [&]() -> deja::Task<bool> {
    // A timer nobody fires, and a JoinHandle completed by a task spawned from another thread.
    auto other = [](int v) -> deja::Task<int> { co_return v; };
    deja::JoinHandle<int> h;
    std::thread t([&] {
      std::this_thread::sleep_for(2ms);
      h = rt.spawn(other(5));
    });
    t.join();
    const int v = co_await h;
    co_return v == 5;
  };
  REQUIRE(rt.block_on(body()));
}
