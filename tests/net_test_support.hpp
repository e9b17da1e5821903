// Helpers for the deja::net tests on the production runtime: a deadline for every test body (a
// hang fails the test instead of stalling CI), errors captured as error codes, text as bytes.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <catch2/catch.hpp>

#include "deja/deja.hpp"
#include "deja/net.hpp"

namespace net_test {

using namespace std::chrono_literals;

inline const deja::net::SocketAddr kLoopbackAnyPort{deja::net::IpAddr::v4_loopback(), 0};

// The production runtimes a networking test runs on: the same program, unchanged, on each.
enum class Runtime { kEpoll, kUring, kMultiThread, kMultiThreadUring };

inline const char* name_of(Runtime runtime) {
  switch (runtime) {
    case Runtime::kEpoll: return "current-thread runtime on epoll";
    case Runtime::kUring: return "current-thread runtime on io_uring";
    case Runtime::kMultiThread: return "multi-thread runtime (2 workers) on epoll";
    case Runtime::kMultiThreadUring: return "multi-thread runtime (2 workers) on io_uring";
  }
  return "?";
}

// Runs `body` on a fresh runtime of the given kind, failing with deja::TimedOut after `limit`.
inline void run_on(Runtime runtime, deja::Task<void> body, std::chrono::milliseconds limit = 20s) {
  INFO("on the " << name_of(runtime));
  if (runtime == Runtime::kMultiThread || runtime == Runtime::kMultiThreadUring) {
    deja::MultiThreadOptions options;
    options.workers = 2;
    options.io = runtime == Runtime::kMultiThreadUring ? deja::IoBackend::kUring : deja::IoBackend::kEpoll;
    deja::MultiThreadRuntime rt(options);
    rt.block_on(deja::timeout(limit, std::move(body)));
    return;
  }
  deja::RuntimeOptions options;
  options.io = runtime == Runtime::kUring ? deja::IoBackend::kUring : deja::IoBackend::kEpoll;
  deja::CurrentThreadRuntime rt(options);
  rt.block_on(deja::timeout(limit, std::move(body)));
}

// Runs the test case once per production runtime (Catch2 runs the whole test case again for each
// value, so `body` is made afresh each time), failing with deja::TimedOut after `limit`.
inline void run(deja::Task<void> body, std::chrono::milliseconds limit = 20s) {
  const Runtime runtime = GENERATE(Runtime::kEpoll, Runtime::kUring, Runtime::kMultiThread, Runtime::kMultiThreadUring);
  run_on(runtime, std::move(body), limit);
}

// The error code `task` throws as std::system_error, or an empty code if it completes.
template <class T>
deja::Task<std::error_code> error_of(deja::Task<T> task) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
    } else {
      auto value = co_await std::move(task);
      (void)value;
    }
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  co_return std::error_code{};
}

inline std::span<std::byte> writable_bytes(std::string& text) {
  return {reinterpret_cast<std::byte*>(text.data()), text.size()};
}

inline std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace net_test
