// Helpers for the simulated network's tests: the driver the simulator installs, byte views of
// strings, whole-buffer reads and writes, and a sweep that fails the test with its replay line.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <system_error>

#include "deja/context.hpp"
#include "deja/net/driver.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/seeds.hpp"
#include "deja/sim/simulator.hpp"
#include "deja/task.hpp"

namespace sim_net_test {

inline deja::net::NetDriver& driver() { return *deja::current_runtime()->net; }

inline std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

inline deja::Task<void> write_all(deja::net::StreamBackend& s, std::string data) {
  std::size_t done = 0;
  while (done < data.size()) done += co_await s.write(bytes(data).subspan(done));
}

// Reads until end of stream.
inline deja::Task<std::string> read_to_end(deja::net::StreamBackend& s) {
  std::string out;
  std::byte buf[1500];
  for (;;) {
    const std::size_t n = co_await s.read(buf);
    if (n == 0) co_return out;
    out.append(reinterpret_cast<const char*>(buf), n);
  }
}

inline deja::Task<std::string> read_exact(deja::net::StreamBackend& s, std::size_t want) {
  std::string out;
  std::byte buf[1500];
  while (out.size() < want) {
    const std::size_t n = co_await s.read(std::span(buf).first(std::min(sizeof buf, want - out.size())));
    if (n == 0) throw std::system_error(std::make_error_code(std::errc::connection_aborted), "end of stream too early");
    out.append(reinterpret_cast<const char*>(buf), n);
  }
  co_return out;
}

inline deja::net::SocketAddr addr(deja::sim::NodeId n, std::uint16_t port) { return {deja::sim::node_ip(n), port}; }

inline std::string this_test() {
  std::string quoted(1, '"');
  quoted.append(Catch::getResultCapture().getCurrentTestName());
  quoted.push_back('"');
  return quoted;
}

// Runs `body` over `seeds` seeds and fails the test with the first failing run's report (which
// ends with its replay line).
inline void sweep_or_fail(const std::function<deja::Task<void>()>& body, std::uint64_t seeds, bool check_determinism = false,
                          const deja::sim::NetworkConfig& net = {}) {
  deja::sim::SweepOptions opts;
  opts.default_seeds = seeds;
  opts.base.check_determinism = check_determinism;
  opts.base.network = net;
  opts.replay_args = this_test();
  const auto result = deja::sim::sweep(body, opts);
  if (result.first_failure) FAIL(result.first_failure->report());
  REQUIRE(result.runs > 0);
}

// The code of the std::system_error that `t` throws (a default error_code if it throws none).
template <class T>
deja::Task<std::error_code> error_of(deja::Task<T> t) {
  try {
    (void)co_await std::move(t);
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  co_return std::error_code{};
}

}  // namespace sim_net_test
