// The kv example served on 127.0.0.1 by the production runtime: Redis commands, pipelining,
// protocol errors, and a primary with two backups.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "../net_test_support.hpp"
#include "client.hpp"
#include "replica.hpp"

namespace {

using namespace std::chrono_literals;

kv::ReplicaOptions single_node() {
  kv::ReplicaOptions o;
  o.client_address = net_test::kLoopbackAnyPort;
  return o;
}

deja::Task<void> commands_round_trip() {
  kv::Replica replica = kv::Replica::bind(single_node());
  auto server = deja::spawn(replica.run());
  kv::Client c = co_await kv::Client::connect(*replica.client_addr());
  // Results are bound before they are checked: g++ 12 also evaluates a co_await inside Catch's
  // macros a second time (in the never-taken `false && (expr)` of their loop condition).
  std::vector<std::string> ping{"PING"};
  const kv::resp::Reply pong = co_await c.command(ping);
  CHECK(pong.text == "PONG");
  const auto missing = co_await c.get("k");
  CHECK_FALSE(missing.has_value());
  co_await c.set("k", "v1");
  const auto v1 = co_await c.get("k");
  CHECK(v1 == std::optional<std::string>("v1"));
  const auto deleted = co_await c.del("k");
  CHECK(deleted == 1);
  const auto deleted_again = co_await c.del("k");
  CHECK(deleted_again == 0);
  bool refused = false;
  try {
    std::vector<std::string> flush{"FLUSHALL"};
    co_await c.command(flush);
  } catch (const kv::ServerError& e) {
    refused = std::string(e.what()).find("unknown command") != std::string::npos;
  }
  CHECK(refused);
  server.abort();
}

// Many commands written at once, as redis-benchmark -P does: every reply comes back, in order.
deja::Task<void> pipelined() {
  kv::Replica replica = kv::Replica::bind(single_node());
  auto server = deja::spawn(replica.run());
  auto stream = co_await deja::net::TcpStream::connect(*replica.client_addr());
  std::string batch;
  std::string expected;
  for (int i = 0; i < 500; ++i) {
    const std::string key = "key" + std::to_string(i % 7);
    kv::resp::append_array_header(batch, 3);
    kv::resp::append_bulk(batch, "SET");
    kv::resp::append_bulk(batch, key);
    kv::resp::append_bulk(batch, std::to_string(i));
    expected += "+OK\r\n";
    kv::resp::append_array_header(batch, 2);
    kv::resp::append_bulk(batch, "GET");
    kv::resp::append_bulk(batch, key);
    kv::resp::append_bulk(expected, std::to_string(i));
  }
  batch += "PING\r\n";  // an inline command too
  expected += "+PONG\r\n";
  co_await stream.write_all(std::as_bytes(std::span<const char>(batch.data(), batch.size())));
  std::string got(expected.size(), '\0');
  co_await stream.read_exact(net_test::writable_bytes(got));
  CHECK(got == expected);
  server.abort();
}

deja::Task<void> protocol_error_closes() {
  kv::Replica replica = kv::Replica::bind(single_node());
  auto server = deja::spawn(replica.run());
  auto stream = co_await deja::net::TcpStream::connect(*replica.client_addr());
  const std::string bad = "*1\r\n$99999999999\r\n";
  co_await stream.write_all(std::as_bytes(std::span<const char>(bad.data(), bad.size())));
  std::string reply;
  std::array<std::byte, 256> buf;
  for (;;) {
    const std::size_t n = co_await stream.read(buf);
    if (n == 0) break;  // the server closed the connection after answering
    reply += net_test::text_of(std::span<const std::byte>(buf.data(), n));
    REQUIRE(reply.size() < 4096);
  }
  CHECK(reply == "-ERR Protocol error: invalid bulk length\r\n");
  server.abort();
}

// A primary and two backups on loopback ports: writes are acknowledged once both backups have
// them, and a primary restarted with empty memory recovers them from a backup.
deja::Task<void> replicated() {
  std::vector<std::shared_ptr<kv::ReplicaMeta>> metas;
  for (int i = 0; i < 3; ++i) metas.push_back(std::make_shared<kv::ReplicaMeta>());
  // Backups bind first, on free ports; then the primary learns their addresses.
  std::vector<deja::net::SocketAddr> addrs(3, net_test::kLoopbackAnyPort);
  std::vector<kv::Replica> backups;
  for (std::size_t i = 1; i < 3; ++i) {
    kv::ReplicaOptions o;
    o.index = i;
    o.replicas = addrs;
    backups.push_back(kv::Replica::bind(o, metas[i]));
    addrs[i] = *backups.back().replication_addr();
  }
  std::vector<deja::JoinHandle<void>> running;
  for (auto& b : backups) running.push_back(deja::spawn(b.run()));
  kv::ReplicaOptions po = single_node();
  po.replicas = addrs;
  {
    kv::Replica primary = kv::Replica::bind(po, metas[0]);
    auto server = deja::spawn(primary.run());
    kv::Client c = co_await kv::Client::connect(*primary.client_addr());
    for (int i = 0; i < 20; ++i) co_await c.set("k" + std::to_string(i % 5), std::to_string(i));
    const auto deleted = co_await c.del("k0");
    CHECK(deleted == 1);
    CHECK(metas[1]->seq == 21);
    CHECK(metas[2]->seq == 21);
    CHECK(metas[1]->in_sync);
    server.abort();  // the primary "crashes": its memory is gone
  }
  kv::Replica primary = kv::Replica::bind(po, metas[0]);
  auto server = deja::spawn(primary.run());
  kv::Client c = co_await kv::Client::connect(*primary.client_addr());
  const auto k0 = co_await c.get("k0");
  CHECK_FALSE(k0.has_value());
  const auto k4 = co_await c.get("k4");
  CHECK(k4 == std::optional<std::string>("19"));
  CHECK(metas[0]->seq == 21);
  server.abort();
  for (auto& r : running) r.abort();
}

}  // namespace

TEST_CASE("kv serves PING GET SET DEL over RESP on 127.0.0.1", "[kv]") { net_test::run(commands_round_trip()); }
TEST_CASE("kv answers a pipeline of a thousand commands in order", "[kv]") { net_test::run(pipelined()); }
TEST_CASE("kv answers a protocol error and closes the connection", "[kv]") { net_test::run(protocol_error_closes()); }
TEST_CASE("kv replicates writes to both backups before acknowledging and a restarted primary recovers them", "[kv]") {
  net_test::run(replicated());
}
