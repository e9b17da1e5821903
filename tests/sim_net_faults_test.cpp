// The simulated network under faults: UDP loss, duplication and reordering, partitions (both ways
// and one way), clogs, fault plans as data, the nemesis, replay and determinism with network
// faults, and a network bug the simulator finds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/node.hpp"
#include "deja/sim/shrink.hpp"
#include "sim_net_support.hpp"

using namespace std::chrono_literals;
using namespace sim_net_test;
using deja::net::SocketAddr;
using deja::net::StreamBackend;
using deja::sim::NodeId;
using deja::Duration;

namespace {

struct Inbox {
  std::vector<std::uint32_t> got;  // sequence numbers, in arrival order
};

std::string number(std::uint32_t i) { return std::to_string(i); }

deja::Task<void> udp_receiver(std::shared_ptr<Inbox> inbox) {
  auto u = driver().bind_udp(SocketAddr::parse("0.0.0.0:5000"));
  std::byte buf[64];
  for (;;) {
    const auto r = co_await u->recv_from(buf);
    inbox->got.push_back(static_cast<std::uint32_t>(std::stoul(std::string(reinterpret_cast<const char*>(buf), r.size))));
  }
}

deja::Task<void> send_numbers(NodeId to, std::uint32_t count, Duration gap) {
  auto u = driver().bind_udp(SocketAddr::parse("0.0.0.0:0"));
  for (std::uint32_t i = 0; i < count; ++i) {
    (void)co_await u->send_to(bytes(number(i)), addr(to, 5000));
    if (gap > Duration::zero()) co_await deja::sleep(gap);
  }
}

struct UdpSeen {
  bool lost = false, duplicated = false, reordered = false;
};

deja::Task<void> udp_faults(std::shared_ptr<UdpSeen> seen) {
  auto inbox = std::make_shared<Inbox>();
  const NodeId rx = deja::sim::add_node("rx", [inbox] { return udp_receiver(inbox); });
  co_await deja::sleep(1ms);
  co_await send_numbers(rx, 200, 10us);  // closer together than the latency spread: reordering
  co_await deja::sleep(1s);
  std::set<std::uint32_t> distinct(inbox->got.begin(), inbox->got.end());
  seen->lost = distinct.size() < 200;
  seen->duplicated = distinct.size() < inbox->got.size();
  seen->reordered = !std::is_sorted(inbox->got.begin(), inbox->got.end());
  const auto stats = deja::sim::net_stats();
  DEJA_ASSERT(stats.delivered == inbox->got.size());
  DEJA_ASSERT(stats.duplicated > 0 || !seen->duplicated);
}

}  // namespace

TEST_CASE("sim net: UDP datagrams are lost and duplicated and reordered under some seeds (20 seeds)", "[sim][net]") {
  UdpSeen any;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    auto seen = std::make_shared<UdpSeen>();
    deja::sim::Config config;
    config.seed = seed;
    const auto outcome = deja::sim::run(config, [seen] { return udp_faults(seen); });
    if (outcome.failed()) FAIL(outcome.report());
    any.lost |= seen->lost;
    any.duplicated |= seen->duplicated;
    any.reordered |= seen->reordered;
  }
  REQUIRE(any.lost);
  REQUIRE(any.duplicated);
  REQUIRE(any.reordered);
}

namespace {

// Says "hi", then echoes.
deja::Task<void> hi_then_echo(std::unique_ptr<StreamBackend> s) {
  co_await write_all(*s, "hi");
  std::byte buf[256];
  for (;;) {
    const std::size_t n = co_await s->read(buf);
    if (n == 0) co_return;
    co_await write_all(*s, std::string(reinterpret_cast<const char*>(buf), n));
  }
}

deja::Task<void> echo_once_server() {
  auto l = driver().listen(SocketAddr::parse("0.0.0.0:7000"), 16);
  for (;;) deja::spawn(hi_then_echo(co_await l->accept())).detach();
}

deja::Task<void> partition_connect() {
  const NodeId server = deja::sim::add_node("server", [] { return echo_once_server(); });
  co_await deja::sleep(1ms);
  deja::sim::partition({NodeId{0}}, {server});
  const auto t0 = deja::now();
  const std::error_code cut = co_await error_of(driver().connect(addr(server, 7000)));
  DEJA_ASSERT(cut == std::errc::timed_out);
  DEJA_ASSERT(deja::now() - t0 >= 10s && deja::now() - t0 < 11s);  // NetworkConfig::connect_timeout
  deja::sim::heal();
  auto s = co_await driver().connect(addr(server, 7000));
  const std::string hi = co_await read_exact(*s, 2);
  DEJA_ASSERT(hi == "hi");
  // An established connection's data waits out a partition and arrives, in order, after it heals.
  auto s2 = co_await driver().connect(addr(server, 7000));
  const std::string first = co_await read_exact(*s2, 2);
  DEJA_ASSERT(first == "hi");
  deja::sim::partition({server}, {NodeId{0}});
  co_await write_all(*s2, "abc");
  auto late = deja::spawn(read_exact(*s2, 3));
  co_await deja::sleep(3s);
  DEJA_ASSERT(!late.is_finished());
  deja::sim::heal();
  const std::string waited = co_await late;
  DEJA_ASSERT(waited == "abc");
}

}  // namespace

TEST_CASE("sim net: a partition makes connect time out and healing restores it (20 seeds)", "[sim][net]") {
  sweep_or_fail(partition_connect, 20);
}

namespace {

struct Pings {
  int a_got = 0, b_got = 0;
};

deja::Task<void> pinger(std::shared_ptr<Pings> p, bool is_a, std::string peer) {
  auto u = driver().bind_udp(SocketAddr::parse("0.0.0.0:5000"));
  const auto to = (co_await driver().lookup(peer, 5000)).at(0);
  auto rx = deja::spawn([](std::shared_ptr<Pings> q, bool a, deja::net::DatagramBackend* sock) -> deja::Task<void> {
    std::byte buf[8];
    for (;;) {
      (void)co_await sock->recv_from(buf);
      ++(a ? q->a_got : q->b_got);
    }
  }(p, is_a, u.get()));
  for (int i = 0; i < 50; ++i) {
    (void)co_await u->send_to(bytes("x"), to);
    co_await deja::sleep(10ms);
  }
  co_await deja::sleep(1s);
  rx.abort();
}

deja::Task<void> one_way() {
  deja::sim::LinkConfig reliable;
  reliable.udp_loss = 0;
  reliable.udp_duplicate = 0;
  deja::sim::set_default_link(reliable);
  auto p = std::make_shared<Pings>();
  const NodeId a = deja::sim::add_node("a", [p] { return pinger(p, true, "b"); });
  const NodeId b = deja::sim::add_node("b", [p] { return pinger(p, false, "a"); });
  deja::sim::partition_one_way({a}, {b});
  co_await deja::sleep(2s);
  DEJA_ASSERT(p->b_got == 0);   // a -> b is cut
  DEJA_ASSERT(p->a_got == 50);  // b -> a is not
}

}  // namespace

TEST_CASE("sim net: a one-way partition cuts one direction only (20 seeds)", "[sim][net]") {
  sweep_or_fail(one_way, 20);
}

namespace {

deja::Task<void> clog_delays() {
  deja::sim::LinkConfig reliable;
  reliable.udp_loss = 0;
  reliable.udp_duplicate = 0;
  deja::sim::set_default_link(reliable);
  auto inbox = std::make_shared<Inbox>();
  const NodeId rx = deja::sim::add_node("rx", [inbox] { return udp_receiver(inbox); });
  const NodeId server = deja::sim::add_node("server", [] { return echo_once_server(); });
  co_await deja::sleep(1ms);
  auto s = co_await driver().connect(addr(server, 7000));
  const std::string greeting = co_await read_exact(*s, 2);
  DEJA_ASSERT(greeting == "hi");
  deja::sim::clog_node(rx);
  deja::sim::clog_link(server, NodeId{0});
  co_await send_numbers(rx, 20, Duration::zero());
  co_await write_all(*s, "hi");  // reaches the server, whose echo waits on the clogged link
  auto hi = deja::spawn(read_exact(*s, 2));
  co_await deja::sleep(5s);
  DEJA_ASSERT(inbox->got.empty());  // nothing lost, nothing through
  DEJA_ASSERT(!hi.is_finished());
  const auto unclogged_at = deja::now();
  deja::sim::unclog_node(rx);
  deja::sim::unclog_link(server, NodeId{0});
  const std::string got = co_await hi;
  DEJA_ASSERT(got == "hi");
  co_await deja::sleep(10ms);
  DEJA_ASSERT(inbox->got.size() == 20);
  DEJA_ASSERT(deja::now() - unclogged_at < 1s);
  DEJA_ASSERT(deja::sim::net_stats().delayed > 0);
}

}  // namespace

TEST_CASE("sim net: clogs delay messages until unclogged and lose none (20 seeds)", "[sim][net]") {
  sweep_or_fail(clog_delays, 20);
}

namespace {

// Records, every 100 ms, whether a UDP ping from main to "a" and back got through.
deja::Task<void> udp_echo() {
  auto u = driver().bind_udp(SocketAddr::parse("0.0.0.0:5000"));
  std::byte buf[16];
  for (;;) {
    const auto r = co_await u->recv_from(buf);
    (void)co_await u->send_to(std::span<const std::byte>(buf, r.size), r.from);
  }
}

deja::Task<void> fault_plan_as_data() {
  deja::sim::LinkConfig reliable;
  reliable.udp_loss = 0;
  reliable.udp_duplicate = 0;
  deja::sim::set_default_link(reliable);
  deja::sim::add_node("a", [] { return udp_echo(); });
  const NodeId b = deja::sim::add_node("b", [] { return udp_echo(); });
  const deja::sim::FaultPlan plan = deja::sim::parse_fault_plan("1s partition main / a | 2s heal | 3s crash a | 4s restart a");
  DEJA_ASSERT(plan.size() == 4 && plan[2].kind == deja::sim::FaultStep::Kind::kCrash);
  // The same plan written as data directly also runs (here: clog b from 500 ms to 4.5 s).
  deja::sim::FaultPlan direct{{500ms, deja::sim::FaultStep::Kind::kClogNode, {b}, {}},
                              {4500ms, deja::sim::FaultStep::Kind::kUnclogNode, {b}, {}}};
  deja::spawn(deja::sim::run_fault_plan(plan)).detach();
  deja::spawn(deja::sim::run_fault_plan(direct)).detach();
  auto u = driver().bind_udp(SocketAddr::parse("0.0.0.0:0"));
  const auto to = (co_await driver().lookup("a", 5000)).at(0);
  std::string timeline;  // one letter per 250 ms: '+' answered, '.' not
  const auto start = deja::now();
  for (int i = 0; i < 20; ++i) {
    co_await deja::sleep_until(start + i * 250ms + 10ms);
    (void)co_await u->send_to(bytes("p"), to);
    std::byte buf[4];
    bool answered = true;
    try {
      (void)co_await deja::timeout(200ms, u->recv_from(buf));
    } catch (const deja::TimedOut&) {
      answered = false;
    }
    timeline += answered ? '+' : '.';
  }
  deja::sim::log("timeline " + timeline);
  // 0-1 s answered, 1-2 s partitioned, 2-3 s answered, 3-4 s crashed, then answered again.
  DEJA_ASSERT(timeline.substr(0, 4) == "++++");
  DEJA_ASSERT(timeline.substr(4, 4) == "....");
  DEJA_ASSERT(timeline.substr(8, 4) == "++++");
  DEJA_ASSERT(timeline.substr(12, 4) == "....");
  DEJA_ASSERT(timeline.substr(16, 4) == "++++");
}

}  // namespace

TEST_CASE("sim net: a fault plan written as data partitions and crashes and heals at its virtual times (20 seeds)", "[sim][net]") {
  sweep_or_fail(fault_plan_as_data, 20);
}

// --- a tiny protocol: a counter service with idempotent requests --------------------------------

namespace {

// The server's state survives crashes (it stands for a disk). Each request is "<id>\n"; the server
// applies an id once (if `dedup`) and answers "<value>\n".
struct Counter {
  std::int64_t value = 0;
  std::set<std::uint64_t> applied;
  bool dedup = true;
};

deja::Task<void> counter_conn(std::shared_ptr<Counter> c, std::unique_ptr<StreamBackend> s) {
  std::string buf;
  std::byte chunk[64];
  for (;;) {
    const std::size_t n = co_await s->read(chunk);
    if (n == 0) co_return;
    buf.append(reinterpret_cast<const char*>(chunk), n);
    for (std::size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
      const std::uint64_t id = std::stoull(buf.substr(0, nl));
      buf.erase(0, nl + 1);
      if (!c->dedup || c->applied.insert(id).second) ++c->value;
      // The answer takes a while (a disk write, say): a fault that starts meanwhile delays it
      // past the client's timeout, which then retries what was already applied.
      co_await deja::sleep(std::chrono::milliseconds(deja::random_below(300)));
      co_await write_all(*s, std::to_string(c->value) + "\n");
    }
  }
}

deja::Task<void> counter_server(std::shared_ptr<Counter> c) {
  auto l = driver().listen(SocketAddr::parse("0.0.0.0:6000"), 64);
  for (;;) deja::spawn(counter_conn(c, co_await l->accept())).detach();
}

// Sends `ops` increments, each retried on a new connection until it is answered. Returns how many
// were acknowledged.
deja::Task<int> counter_client(NodeId server, std::uint64_t first_id, int ops) {
  int acked = 0;
  for (int i = 0; i < ops; ++i) {
    co_await deja::sleep(std::chrono::milliseconds(deja::random_below(1000)));  // spread over the nemesis's time
    const std::uint64_t id = first_id + static_cast<std::uint64_t>(i);
    for (int attempt = 0; attempt < 100; ++attempt) {
      try {
        auto s = co_await deja::timeout(2s, driver().connect(addr(server, 6000)));
        co_await write_all(*s, std::to_string(id) + "\n");
        std::string line;
        std::byte ch[1];
        co_await deja::timeout(1s, [](StreamBackend* st, std::string* out, std::byte* b) -> deja::Task<void> {
          for (;;) {
            if (co_await st->read(std::span(b, 1)) == 0) throw std::system_error(std::make_error_code(std::errc::connection_aborted));
            if (static_cast<char>(*b) == '\n') co_return;
            out->push_back(static_cast<char>(*b));
          }
        }(s.get(), &line, ch));
        ++acked;
        break;
      } catch (const std::system_error&) {
        // Refused, reset, timed out (deja::TimedOut is a system_error too): try again.
      }
      co_await deja::sleep(100ms);
    }
  }
  co_return acked;
}

deja::Task<void> counter_under_nemesis(bool dedup) {
  auto c = std::make_shared<Counter>();
  c->dedup = dedup;
  const NodeId server = deja::sim::add_node("server", [c] { return counter_server(c); });
  const NodeId other = deja::sim::add_node("bystander", [] { return udp_echo(); });
  deja::sim::NemesisOptions o;
  o.nodes = {server, other};
  o.duration = 20s;
  auto nemesis = deja::spawn(deja::sim::nemesis(o));
  co_await deja::sleep(1ms);
  const int acked = co_await counter_client(server, 1, 20);
  co_await nemesis;
  // Every acknowledged increment was applied, and (with deduplication) none twice.
  DEJA_ASSERT(acked == 20);
  DEJA_ASSERT(c->value == 20);
}

deja::Task<void> counter_with_dedup() { return counter_under_nemesis(true); }
deja::Task<void> counter_without_dedup() { return counter_under_nemesis(false); }

}  // namespace

TEST_CASE("sim net: the nemesis against a counter with idempotent retries keeps every increment exactly once (30 seeds)", "[sim][net]") {
  sweep_or_fail(counter_with_dedup, 30);
}

TEST_CASE("sim net: the simulator finds a retry that applies a non-idempotent increment twice (up to 200 seeds)", "[sim][net]") {
  deja::sim::SweepOptions opts;
  opts.default_seeds = 200;
  opts.replay_args = this_test();
  const auto sweep = deja::sim::sweep(counter_without_dedup, opts);
  REQUIRE(sweep.first_failure.has_value());
  const deja::sim::Outcome& failure = *sweep.first_failure;
  const std::string report = failure.report();
  INFO(report);
  REQUIRE(report.find("c->value == 20") != std::string::npos);
  REQUIRE(report.find("\nreplay: DEJA_SEED=") != std::string::npos);
  // The seed replays the same failure, event for event.
  deja::sim::Config again;
  again.seed = failure.seed();
  const auto replayed = deja::sim::run(again, counter_without_dedup);
  REQUIRE(replayed.failed());
  REQUIRE(replayed.trace_hash() == failure.trace_hash());
  // Latencies and faults are decisions, so the failing schedule shrinks like any other.
  deja::sim::ShrinkOptions budget;
  budget.max_runs = 300;
  const auto shrunk = deja::sim::shrink(again, counter_without_dedup, failure, budget);
  INFO(shrunk.outcome.report());
  REQUIRE(shrunk.outcome.failed());
  REQUIRE(deja::sim::count_nondefault(shrunk.shrunk) < deja::sim::count_nondefault(shrunk.original));
}

TEST_CASE("sim net: the same seed replays to the same trace hash with network faults (10 seeds)", "[sim][net]") {
  std::set<std::uint64_t> hashes;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    deja::sim::Config config;
    config.seed = seed;
    const auto first = deja::sim::run(config, counter_with_dedup);
    const auto second = deja::sim::run(config, counter_with_dedup);
    if (first.failed()) FAIL(first.report());
    REQUIRE(first.trace_hash() == second.trace_hash());
    REQUIRE(first.decision_count() == second.decision_count());
    hashes.insert(first.trace_hash());
  }
  REQUIRE(hashes.size() == 10);  // different seeds, different runs
}

TEST_CASE("sim net: the determinism check runs each seed twice and agrees under the nemesis (10 seeds)", "[sim][net]") {
  sweep_or_fail(counter_with_dedup, 10, /*check_determinism=*/true);
}

TEST_CASE("sim net: a failed run's trace shows network sends and deliveries and faults (1 seed)", "[sim][net]") {
  deja::sim::Config config;
  config.seed = 3;
  config.trace_capacity = 1 << 16;
  const auto outcome = deja::sim::run(config, []() -> deja::Task<void> {
    co_await partition_connect();
    DEJA_ASSERT(false);  // fail on purpose, to see the trace
  });
  REQUIRE(outcome.failed());
  std::string tail;
  for (const auto& line : outcome.trace_tail()) tail += line + "\n";
  INFO(tail.substr(0, 4000));
  REQUIRE(tail.find("net send syn") != std::string::npos);
  REQUIRE(tail.find("net deliver tcp data") != std::string::npos);
  REQUIRE(tail.find("net drop syn") != std::string::npos);
  REQUIRE(tail.find("net fault: partition") != std::string::npos);
}

namespace {

// Measures one UDP round trip from main to `to` (which echoes).
deja::Task<Duration> round_trip(deja::net::DatagramBackend& u, SocketAddr to) {
  const auto t0 = deja::now();
  (void)co_await u.send_to(bytes("p"), to);
  std::byte buf[4];
  (void)co_await u.recv_from(buf);
  co_return deja::now() - t0;
}

deja::Task<void> per_link_latency() {
  deja::sim::LinkConfig fast;
  fast.min_latency = 1ms;
  fast.max_latency = 2ms;
  fast.udp_loss = 0;
  fast.udp_duplicate = 0;
  deja::sim::set_default_link(fast);
  const NodeId near = deja::sim::add_node("near", [] { return udp_echo(); });
  const NodeId far = deja::sim::add_node("far", [] { return udp_echo(); });
  deja::sim::LinkConfig slow = fast;
  slow.min_latency = 100ms;
  slow.max_latency = 150ms;
  deja::sim::set_link(NodeId{0}, far, slow);  // one direction only
  co_await deja::sleep(1ms);
  auto u = driver().bind_udp(SocketAddr::parse("0.0.0.0:0"));
  for (int i = 0; i < 10; ++i) {
    const Duration to_near = co_await round_trip(*u, addr(near, 5000));
    DEJA_ASSERT(to_near >= 2ms && to_near <= 4ms);
    const Duration to_far = co_await round_trip(*u, addr(far, 5000));
    DEJA_ASSERT(to_far >= 101ms && to_far <= 152ms);
  }
  // An isolated node hears nothing and is heard by nobody, until healed.
  deja::sim::isolate(near);
  const std::error_code silent = co_await error_of(deja::timeout(1s, round_trip(*u, addr(near, 5000))));
  DEJA_ASSERT(silent == std::errc::timed_out);
  deja::sim::heal();
  const Duration back = co_await round_trip(*u, addr(near, 5000));
  DEJA_ASSERT(back <= 4ms);
}

}  // namespace

TEST_CASE("sim net: each link has its own latency and an isolated node is cut until healed (20 seeds)", "[sim][net]") {
  sweep_or_fail(per_link_latency, 20);
}
