// Helpers for the deja::net tests on the production runtime: a deadline for every test body (a
// hang fails the test instead of stalling CI), errors captured as error codes, text as bytes.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "deja/deja.hpp"
#include "deja/net.hpp"

namespace net_test {

using namespace std::chrono_literals;

inline const deja::net::SocketAddr kLoopbackAnyPort{deja::net::IpAddr::v4_loopback(), 0};

// Runs `body` on a fresh current-thread runtime, failing with deja::TimedOut after `limit`.
inline void run(deja::Task<void> body, std::chrono::milliseconds limit = 20s) {
  deja::block_on(deja::timeout(limit, std::move(body)));
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
