// The echo example (examples/echo): the same code and the same check on the production runtime over
// 127.0.0.1 and under the simulator, on one simulated host and across two nodes.
#include <catch2/catch.hpp>

#include "../examples/echo/echo.hpp"
#include "deja/assert.hpp"
#include "deja/sim/catch2.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/node.hpp"
#include "net_test_support.hpp"

namespace {

constexpr std::uint32_t kClients = 16;
constexpr std::uint32_t kRounds = 50;
constexpr std::size_t kSize = 100;

// The test body both worlds run: every byte comes back, and the server counted the same.
deja::Task<void> echo_example(deja::net::SocketAddr at) {
  const std::uint64_t bytes = co_await echo::run_local(at, kClients, kRounds, kSize);
  DEJA_ASSERT(bytes == std::uint64_t{kClients} * kRounds * kSize);
}

deja::Task<void> echo_server_node(std::shared_ptr<std::uint64_t> served) {
  deja::net::TcpListener listener = deja::net::TcpListener::bind(deja::net::SocketAddr(deja::net::IpAddr::v4_unspecified(), 7000));
  *served = co_await echo::serve(listener, kClients);
}

deja::Task<void> echo_clients_node(deja::net::SocketAddr server) {
  deja::JoinSet<std::uint64_t> running;
  for (std::uint32_t id = 0; id < kClients; ++id) running.spawn(echo::run_client(server, id, kRounds, kSize));
  std::uint64_t total = 0;
  while (auto echoed = co_await running.join_next()) total += *echoed;
  DEJA_ASSERT(total == std::uint64_t{kClients} * kRounds * kSize);
}

// Across the simulated network: the server on one node, the clients on another, links with
// latency, and the network clogged and unclogged while they talk (TCP must still deliver
// everything in order). Node mains are lambdas that call coroutine functions: a coroutine lambda's
// captures would live in the lambda object, not in the frame.
deja::Task<void> echo_between_nodes() {
  auto served = std::make_shared<std::uint64_t>(0);
  const auto server = deja::sim::add_node("server", [served] { return echo_server_node(served); });
  const deja::net::SocketAddr to(deja::sim::node_ip(server), 7000);
  const auto client = deja::sim::add_node("client", [to] { return echo_clients_node(to); });
  deja::sim::NemesisOptions n;
  n.nodes = {server, client};
  n.duration = std::chrono::seconds(2);
  n.partitions = false;  // a partition longer than the connect timeout would fail a connect, rightly
  n.crashes = false;
  co_await deja::sim::nemesis(n);
  for (int i = 0; i < 600 && *served != std::uint64_t{kClients} * kRounds * kSize; ++i) co_await deja::sleep(std::chrono::milliseconds(100));
  DEJA_ASSERT(*served == std::uint64_t{kClients} * kRounds * kSize);
}

}  // namespace

TEST_CASE("echo example serves concurrent clients on 127.0.0.1 and every reply matches", "[net]") {
  net_test::run(echo_example(net_test::kLoopbackAnyPort));
}

TEST_CASE("echo example serves concurrent clients on a simulated host and every reply matches (20 seeds)", "[net][sim]") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 20;
  deja::sim::check_seeds([] { return echo_example(deja::net::SocketAddr(deja::net::IpAddr::v4_loopback(), 7000)); }, opts);
}

TEST_CASE("echo example serves clients on another simulated node through clogs (20 seeds)", "[net][sim]") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 20;
  deja::sim::check_seeds(echo_between_nodes, opts);
}
