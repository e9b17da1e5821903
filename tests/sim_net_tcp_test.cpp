// The simulated network's TCP: a reliable ordered byte stream between nodes, refused connects,
// crash resets, FIN after the data, back-pressure, ports, names, cancellation and bad input.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/node.hpp"
#include "sim_net_support.hpp"

using namespace std::chrono_literals;
using namespace sim_net_test;
using deja::net::SocketAddr;
using deja::net::StreamBackend;

namespace {

// Echoes one connection until end of stream, then closes.
deja::Task<void> echo_one(std::unique_ptr<StreamBackend> s) {
  std::byte buf[700];
  for (;;) {
    const std::size_t n = co_await s->read(buf);
    if (n == 0) co_return;
    std::size_t done = 0;
    while (done < n) done += co_await s->write(std::span<const std::byte>(buf, n).subspan(done));
  }
}

deja::Task<void> echo_server(std::uint16_t port) {
  auto listener = driver().listen(SocketAddr::parse("0.0.0.0:" + std::to_string(port)), 16);
  for (;;) deja::spawn(echo_one(co_await listener->accept())).detach();
}

std::string pattern(std::size_t n, std::uint64_t salt) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + salt) % 26);
  return s;
}

struct EchoResult {
  bool done = false;
  std::string got;
  std::string want;
};

deja::Task<void> echo_client(std::shared_ptr<EchoResult> r) {
  const auto addrs = co_await driver().lookup("server", 7000);
  auto s = co_await driver().connect(addrs.at(0));
  r->want = pattern(20'000, deja::random_below(100));
  // Writes and reads at once, as a real client must with a bounded window.
  auto reader = deja::spawn(read_to_end(*s));
  co_await write_all(*s, r->want);
  s->shutdown_write();
  r->got = co_await reader;
  r->done = true;
}

deja::Task<void> two_node_echo() {
  deja::sim::add_node("server", [] { return echo_server(7000); });
  auto r = std::make_shared<EchoResult>();
  deja::sim::add_node("client", [r] { return echo_client(r); });
  for (int i = 0; i < 1000 && !r->done; ++i) co_await deja::sleep(10ms);
  DEJA_ASSERT(r->done);
  DEJA_ASSERT(r->got == r->want);
}

}  // namespace

TEST_CASE("sim net: TCP echo between two nodes returns every byte in order (100 seeds)", "[sim][net]") {
  sweep_or_fail(two_node_echo, 100);
}

namespace {

deja::Task<void> refused_and_ports() {
  const auto server = deja::sim::add_node("server", [] { return echo_server(7000); });
  co_await deja::sleep(1ms);  // the server is listening
  // Nobody listens on 7001.
  const std::error_code refused = co_await error_of(driver().connect(addr(server, 7001)));
  DEJA_ASSERT(refused == std::errc::connection_refused);
  // No host has this address.
  const std::error_code nowhere = co_await error_of(driver().connect(SocketAddr::parse("10.9.9.9:80")));
  DEJA_ASSERT(nowhere == std::errc::host_unreachable);
  // Ephemeral ports count up from 49152 in order, the same in every run.
  auto a = co_await driver().connect(addr(server, 7000));
  auto b = co_await driver().connect(addr(server, 7000));
  DEJA_ASSERT(a->local_addr() == SocketAddr::parse("10.255.255.254:49153"));  // 49152 went to the refused connect
  DEJA_ASSERT(b->local_addr().port() == 49154);
  DEJA_ASSERT(a->peer_addr() == SocketAddr::parse("10.0.0.1:7000"));
  // A taken port is address_in_use; an address of another host is address_not_available.
  auto l = driver().listen(SocketAddr::parse("0.0.0.0:8000"), 4);
  bool in_use = false, not_mine = false;
  try {
    (void)driver().listen(SocketAddr::parse("127.0.0.1:8000"), 4);
  } catch (const std::system_error& e) {
    in_use = e.code() == std::errc::address_in_use;
  }
  try {
    (void)driver().bind_udp(SocketAddr::parse("10.0.0.1:9000"));
  } catch (const std::system_error& e) {
    not_mine = e.code() == std::errc::address_not_available;
  }
  DEJA_ASSERT(in_use && not_mine);
  // Names: a node's name, "main", localhost, literals; an unknown name is host_unreachable.
  const auto by_name = co_await driver().lookup("server", 1);
  DEJA_ASSERT(by_name.at(0) == SocketAddr::parse("10.0.0.1:1"));
  const auto me = co_await driver().lookup("main", 2);
  DEJA_ASSERT(me.at(0) == SocketAddr::parse("10.255.255.254:2"));
  const std::error_code unknown = co_await error_of(driver().lookup("no-such-node", 1));
  DEJA_ASSERT(unknown == std::errc::host_unreachable);
}

}  // namespace

TEST_CASE("sim net: connect is refused where nobody listens and ports and names are deterministic (20 seeds)", "[sim][net]") {
  sweep_or_fail(refused_and_ports, 20);
}

namespace {

// Accepts and holds connections, reading nothing.
deja::Task<void> holder(std::shared_ptr<int> accepted) {
  auto listener = driver().listen(SocketAddr::parse("0.0.0.0:7000"), 16);
  std::vector<std::unique_ptr<StreamBackend>> held;
  for (;;) {
    held.push_back(co_await listener->accept());
    ++*accepted;
  }
}

deja::Task<void> crash_resets() {
  auto accepted = std::make_shared<int>(0);
  const auto server = deja::sim::add_node("server", [accepted] { return holder(accepted); });
  co_await deja::sleep(1ms);
  auto s = co_await driver().connect(addr(server, 7000));
  co_await write_all(*s, "hello");
  co_await deja::sleep(100ms);
  DEJA_ASSERT(*accepted == 1);
  deja::sim::crash(server);
  std::byte buf[16];
  const std::error_code on_read = co_await error_of(s->read(buf));
  DEJA_ASSERT(on_read == std::errc::connection_reset);
  // The read reported the reset (once, as a real socket does); a write after it is broken_pipe.
  const std::error_code on_write = co_await error_of(s->write(bytes("more")));
  DEJA_ASSERT(on_write == std::errc::broken_pipe);
  // While it is down, a connect gets no answer; once it restarts, connects work again.
  const auto t0 = deja::now();
  const std::error_code down = co_await error_of(driver().connect(addr(server, 7000)));
  DEJA_ASSERT(down == std::errc::timed_out);
  DEJA_ASSERT(deja::now() - t0 >= 10s);
  deja::sim::restart(server);
  co_await deja::sleep(1ms);
  auto again = co_await driver().connect(addr(server, 7000));
  co_await deja::sleep(100ms);
  DEJA_ASSERT(*accepted == 2);
}

}  // namespace

TEST_CASE("sim net: a crashed node resets its peers and accepts again after restart (50 seeds)", "[sim][net]") {
  sweep_or_fail(crash_resets, 50);
}

namespace {

struct Seen {
  std::string data;
  bool eof = false;
};

deja::Task<void> fin_server(std::shared_ptr<Seen> seen) {
  auto l = driver().listen(SocketAddr::parse("0.0.0.0:7000"), 4);
  auto s = co_await l->accept();
  seen->data = co_await read_to_end(*s);
  seen->eof = true;
  // The other direction still works after the peer's FIN: a half-closed connection.
  co_await write_all(*s, "bye");
}

deja::Task<void> fin_after_data() {
  auto seen = std::make_shared<Seen>();
  const auto server = deja::sim::add_node("server", [seen] { return fin_server(seen); });
  co_await deja::sleep(1ms);
  auto s = co_await driver().connect(addr(server, 7000));
  for (int i = 0; i < 10; ++i) co_await write_all(*s, "chunk" + std::to_string(i) + ";");
  s->shutdown_write();
  const std::error_code after = co_await error_of(s->write(bytes("late")));
  DEJA_ASSERT(after == std::errc::broken_pipe);
  const std::string reply = co_await read_to_end(*s);
  DEJA_ASSERT(reply == "bye");
  DEJA_ASSERT(seen->eof);
  std::string want;
  for (int i = 0; i < 10; ++i) want += "chunk" + std::to_string(i) + ";";
  DEJA_ASSERT(seen->data == want);
}

}  // namespace

TEST_CASE("sim net: the peer reads every byte and then end of stream after shutdown_write (50 seeds)", "[sim][net]") {
  sweep_or_fail(fin_after_data, 50);
}

namespace {

struct Progress {
  std::size_t written = 0;
  bool writer_done = false;
  std::size_t read = 0;
};
constexpr std::size_t kTotal = 256 * 1024;

deja::Task<void> slow_reader(std::shared_ptr<Progress> p) {
  auto l = driver().listen(SocketAddr::parse("0.0.0.0:7000"), 4);
  auto s = co_await l->accept();
  co_await deja::sleep(2s);
  p->read = (co_await read_to_end(*s)).size();
}

deja::Task<void> fast_writer(std::shared_ptr<Progress> p, StreamBackend* s) {
  const std::string block(4096, 'x');
  while (p->written < kTotal) p->written += co_await s->write(bytes(block));
  p->writer_done = true;
}

deja::Task<void> back_pressure() {
  auto p = std::make_shared<Progress>();
  const auto server = deja::sim::add_node("server", [p] { return slow_reader(p); });
  co_await deja::sleep(1ms);
  auto s = co_await driver().connect(addr(server, 7000));
  auto writer = deja::spawn(fast_writer(p, s.get()));
  co_await deja::sleep(1s);
  // The writer is blocked by the window (64 KiB by default), not finished.
  DEJA_ASSERT(!p->writer_done);
  DEJA_ASSERT(p->written <= 64 * 1024);
  DEJA_ASSERT(p->written >= 60 * 1024);
  co_await writer;  // resumes once the reader reads
  s->shutdown_write();
  for (int i = 0; i < 100 && p->read == 0; ++i) co_await deja::sleep(10ms);
  DEJA_ASSERT(p->read == kTotal);
}

}  // namespace

TEST_CASE("sim net: a writer blocks while the reader does not read and resumes when it does (20 seeds)", "[sim][net]") {
  sweep_or_fail(back_pressure, 20);
}

namespace {

// Tasks cancelled in connect, accept and read (by timeout) leave the network consistent: the
// same endpoints work afterwards, and the run ends cleanly.
deja::Task<void> quiet_server() {
  auto l = driver().listen(SocketAddr::parse("0.0.0.0:7000"), 4);
  try {
    (void)co_await deja::timeout(50ms, l->accept());  // nobody connects: cancelled in accept
  } catch (const deja::TimedOut&) {
  }
  auto s = co_await l->accept();  // the listener still works
  co_await write_all(*s, "ok");
}

deja::Task<void> cancelled_waits() {
  const auto server = deja::sim::add_node("server", [] { return echo_server(7000); });
  const auto quiet = deja::sim::add_node("quiet", [] { return quiet_server(); });
  co_await deja::sleep(1ms);
  deja::sim::partition({deja::sim::NodeId{0}}, {server});
  try {
    (void)co_await deja::timeout(100ms, driver().connect(addr(server, 7000)));  // cancelled in connect
  } catch (const deja::TimedOut&) {
  }
  deja::sim::heal();
  auto s = co_await driver().connect(addr(server, 7000));
  std::byte buf[8];
  try {
    (void)co_await deja::timeout(20ms, s->read(buf));  // nothing to read: cancelled in read
  } catch (const deja::TimedOut&) {
  }
  co_await write_all(*s, "ping");
  const std::string echoed = co_await read_exact(*s, 4);
  DEJA_ASSERT(echoed == "ping");
  co_await deja::sleep(100ms);
  auto q = co_await driver().connect(addr(quiet, 7000));
  const std::string ok = co_await read_to_end(*q);
  DEJA_ASSERT(ok == "ok");
}

}  // namespace

TEST_CASE("sim net: tasks cancelled in connect accept and read leave the network consistent (50 seeds)", "[sim][net]") {
  sweep_or_fail(cancelled_waits, 50);
}

namespace {

deja::Task<void> bad_input() {
  auto u = driver().bind_udp(SocketAddr::parse("0.0.0.0:0"));
  const std::string big(70'000, 'x');
  const std::error_code too_big = co_await error_of(u->send_to(bytes(big), SocketAddr::parse("10.255.255.254:1")));
  DEJA_ASSERT(too_big == std::errc::message_size);
  const std::error_code unconnected = co_await error_of(u->send(bytes("x")));
  DEJA_ASSERT(unconnected == std::errc::not_connected);
  bool parse_error = false;
  try {
    (void)deja::sim::parse_fault_plan("1s partition nobody / main");
  } catch (const deja::UsageError&) {
    parse_error = true;
  }
  DEJA_ASSERT(parse_error);
  bool bad_link = false;
  try {
    deja::sim::LinkConfig l;
    l.min_latency = 5ms;
    l.max_latency = 1ms;
    deja::sim::set_default_link(l);
  } catch (const deja::UsageError&) {
    bad_link = true;
  }
  DEJA_ASSERT(bad_link);
  // Past NetworkConfig::max_sockets: too_many_files_open (the run sets the bound to 4).
  std::vector<std::unique_ptr<deja::net::DatagramBackend>> many;
  std::error_code full;
  try {
    for (int i = 0; i < 10; ++i) many.push_back(driver().bind_udp(SocketAddr::parse("0.0.0.0:0")));
  } catch (const std::system_error& e) {
    full = e.code();
  }
  DEJA_ASSERT(full == std::errc::too_many_files_open);
  DEJA_ASSERT(many.size() == 3);
}

}  // namespace

TEST_CASE("sim net: bad input and exhausted bounds are clear errors (1 seed)", "[sim][net]") {
  deja::sim::NetworkConfig net;
  net.max_sockets = 4;
  sweep_or_fail(bad_input, 1, false, net);
  bool outside = false;
  try {
    deja::sim::heal();
  } catch (const deja::UsageError&) {
    outside = true;
  }
  REQUIRE(outside);
}

namespace {

// With room for only a few sockets in the world, many connections opened and closed (some cut by
// crashes, some refused, some abandoned mid-connect) still fit: every socket is given back.
deja::Task<void> sockets_given_back() {
  const auto server = deja::sim::add_node("server", [] { return echo_server(7000); });
  co_await deja::sleep(1ms);
  for (int i = 0; i < 40; ++i) {
    if (i % 10 == 5) {
      deja::sim::crash(server);
      const std::error_code down = co_await error_of(deja::timeout(50ms, driver().connect(addr(server, 7000))));
      DEJA_ASSERT(down == std::errc::timed_out);
      deja::sim::restart(server);
      co_await deja::sleep(1ms);
    }
    auto s = co_await driver().connect(addr(server, 7000));
    co_await write_all(*s, "x");
    const std::string back = co_await read_exact(*s, 1);
    DEJA_ASSERT(back == "x");
    if (i % 3 == 0) {
      const std::error_code refused = co_await error_of(driver().connect(addr(server, 7001)));
      DEJA_ASSERT(refused == std::errc::connection_refused);
    }
  }
}

}  // namespace

TEST_CASE("sim net: every socket is given back after close and crash and refusal and cancellation (20 seeds)", "[sim][net]") {
  deja::sim::NetworkConfig net;
  net.max_sockets = 6;  // the listener, the echo connection's two ends, and a little slack
  sweep_or_fail(sockets_given_back, 20, false, net);
}

namespace {

// Closes the first connection with unread data; reads the second to its end, then closes it.
deja::Task<void> rude_server() {
  auto l = driver().listen(SocketAddr::parse("0.0.0.0:7000"), 4);
  {
    auto first = co_await l->accept();
    co_await deja::sleep(100ms);  // "x" has arrived, unread
  }
  {
    auto second = co_await l->accept();
    (void)co_await read_to_end(*second);
  }
  auto third = co_await l->accept();
  third.reset();  // an orderly close at once
  co_await deja::sleep(1s);  // still listening, so the third connect above was not refused
}

deja::Task<void> resets() {
  const auto server = deja::sim::add_node("server", [] { return rude_server(); });
  co_await deja::sleep(1ms);
  auto a = co_await driver().connect(addr(server, 7000));
  co_await write_all(*a, "x");
  std::byte buf[4];
  const std::error_code unread = co_await error_of(a->read(buf));
  DEJA_ASSERT(unread == std::errc::connection_reset);  // closed with unread data: RST, not FIN
  auto b = co_await driver().connect(addr(server, 7000));
  b->shutdown_write();
  co_await deja::sleep(100ms);  // the server read the FIN and closed: we read end of stream
  const std::size_t eof = co_await b->read(buf);
  DEJA_ASSERT(eof == 0);
  // Data sent to a socket that is gone comes back as a reset: the first write is accepted
  // locally (as with a real stack), the next one fails.
  auto c = co_await driver().connect(addr(server, 7000));
  const std::size_t end_of_c = co_await c->read(buf);
  DEJA_ASSERT(end_of_c == 0);
  const std::size_t accepted = co_await c->write(bytes("y"));
  DEJA_ASSERT(accepted == 1);
  co_await deja::sleep(100ms);
  const std::error_code gone = co_await error_of(c->write(bytes("z")));
  DEJA_ASSERT(gone == std::errc::connection_reset);
}

}  // namespace

TEST_CASE("sim net: closing with unread data resets the peer instead of ending its stream (20 seeds)", "[sim][net]") {
  sweep_or_fail(resets, 20);
}
