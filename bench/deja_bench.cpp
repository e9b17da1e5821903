// deja's benchmark program: the workloads of WORKLOADS.md (the contract shared with the Tokio and
// Asio peers). Each workload checks its own result and exits non-zero when it is wrong.
//   deja-bench <bench> [--rt mt|ct|sim] [--threads N] [--io epoll|uring] [--reps R] [--port P] [--nodes N]
#include <algorithm>
#include <array>
#include <span>
#include <system_error>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "deja/deja.hpp"
#include "deja/context.hpp"
#include "deja/net.hpp"
#include "deja/net/driver.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/node.hpp"
#include "deja/sim/simulator.hpp"
#include "deja/sync/mpsc.hpp"
#include "deja/sync/oneshot.hpp"

using namespace std::chrono_literals;

namespace {

struct Options {
  std::string bench;
  std::string rt = "ct";
  int threads = 2;
  std::string io = "epoll";
  int reps = 5;
  int port = 0;
  int nodes = 10;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "deja-bench: %s\nusage: deja-bench <bench> [--rt mt|ct|sim] [--threads N] [--io epoll|uring] [--reps R] [--port P] [--nodes N]\n"
               "benches: spawn_join chained_spawn yield_many ping_pong mpsc_contended timer_churn sim_timers sim_net echo_server\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("missing bench name");
  Options o;
  o.bench = argv[1];
  for (int i = 2; i < argc; i += 2) {
    if (i + 1 >= argc) usage("a flag needs a value");
    const std::string key = argv[i];
    const std::string value = argv[i + 1];
    try {
      if (key == "--rt") o.rt = value;
      else if (key == "--threads") o.threads = std::stoi(value);
      else if (key == "--io") o.io = value;
      else if (key == "--reps") o.reps = std::stoi(value);
      else if (key == "--port") o.port = std::stoi(value);
      else if (key == "--nodes") o.nodes = std::stoi(value);
      else usage(("unknown flag " + key).c_str());
    } catch (const std::logic_error&) {
      usage(("bad value for " + key).c_str());
    }
  }
  if (o.reps < 1) usage("--reps must be at least 1");
  if (o.nodes < 2 || o.nodes > 100'000) usage("--nodes must be in [2, 100000]");
  return o;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "deja-bench: wrong result: %s\n", what);
    std::exit(1);
  }
}

// --- echo_server (tcp_echo): serves until killed, as the peers' echo servers do ------------------

deja::Task<void> echo_connection(deja::net::TcpStream stream) {
  stream.set_nodelay(true);
  std::array<std::byte, 4096> buf;
  try {
    for (;;) {
      const std::size_t n = co_await stream.read(buf);
      if (n == 0) co_return;
      co_await stream.write_all(std::span<const std::byte>(buf.data(), n));
    }
  } catch (const std::system_error&) {
    // A client that resets its connection ends only that connection.
  }
}

deja::Task<void> echo_server(int port) {
  auto listener = deja::net::TcpListener::bind({deja::net::IpAddr::v4_loopback(), static_cast<std::uint16_t>(port)});
  std::printf("listening %s\n", listener.local_addr().to_string().c_str());
  std::fflush(stdout);
  for (;;) {
    auto accepted = co_await listener.accept();
    deja::spawn(echo_connection(std::move(accepted.stream))).detach();
  }
}

// --- workloads ------------------------------------------------------------------------------

deja::Task<std::uint64_t> value_task(std::uint64_t i) { co_return i; }

deja::Task<void> spawn_join(std::uint64_t n) {
  std::vector<deja::JoinHandle<std::uint64_t>> handles;
  handles.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) handles.push_back(deja::spawn(value_task(i)));
  std::uint64_t sum = 0;
  for (auto& h : handles) sum += co_await h;
  check(sum == n * (n - 1) / 2, "spawn_join sum");
}

deja::Task<void> chain_link(std::uint64_t left, deja::oneshot::Sender<bool> done) {
  if (left == 0) {
    check(!done.send(true), "chained_spawn oneshot send");
    co_return;
  }
  deja::spawn(chain_link(left - 1, std::move(done))).detach();
}

deja::Task<void> chained_spawn(std::uint64_t n) {
  auto [tx, rx] = deja::oneshot::channel<bool>();
  deja::spawn(chain_link(n, std::move(tx))).detach();
  const bool ok = co_await rx;
  check(ok, "chained_spawn completion");
}

deja::Task<void> yielder(int yields) {
  for (int i = 0; i < yields; ++i) co_await deja::yield_now();
}

deja::Task<void> yield_many(int tasks, int yields) {
  std::vector<deja::JoinHandle<void>> handles;
  handles.reserve(static_cast<std::size_t>(tasks));
  for (int t = 0; t < tasks; ++t) handles.push_back(deja::spawn(yielder(yields)));
  for (auto& h : handles) co_await h;
}

deja::Task<void> echo(deja::mpsc::Receiver<std::uint64_t> in, deja::mpsc::Sender<std::uint64_t> out) {
  while (auto v = co_await in.recv()) check(!co_await out.send(*v), "ping_pong echo send");
}

deja::Task<void> ping_pong(std::uint64_t rounds) {
  auto [ping_tx, ping_rx] = deja::mpsc::channel<std::uint64_t>(1);
  auto [pong_tx, pong_rx] = deja::mpsc::channel<std::uint64_t>(1);
  auto echoer = deja::spawn(echo(std::move(ping_rx), std::move(pong_tx)));
  for (std::uint64_t i = 0; i < rounds; ++i) {
    check(!co_await ping_tx.send(i), "ping_pong send");
    auto back = co_await pong_rx.recv();
    check(back && *back == i, "ping_pong value");
  }
  { auto closing = std::move(ping_tx); }
  co_await echoer;
}

deja::Task<void> producer(deja::mpsc::Sender<std::uint64_t> tx, std::uint64_t first, std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) check(!co_await tx.send(first + i), "mpsc_contended send");
}

deja::Task<void> mpsc_contended(std::uint64_t producers, std::uint64_t per) {
  auto [tx, rx] = deja::mpsc::channel<std::uint64_t>(1024);
  for (std::uint64_t p = 0; p < producers; ++p) deja::spawn(producer(tx, p * per, per)).detach();
  { auto closing = std::move(tx); }
  std::uint64_t sum = 0;
  while (auto v = co_await rx.recv()) sum += *v;
  const std::uint64_t n = producers * per;
  check(sum == n * (n - 1) / 2, "mpsc_contended sum");
}

deja::Task<void> ready_now() { co_return; }

deja::Task<void> timer_churn(std::uint64_t n) {
  std::uint64_t fired = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto winner = co_await deja::race(deja::sleep(10s), ready_now());
    if (winner.index() == 0) ++fired;
  }
  check(fired == 0, "timer_churn: a 10 s timer fired");
}

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

deja::Task<void> timer_task(std::uint64_t t, int sleeps, std::uint64_t* wakeups) {
  std::uint64_t state = t;
  for (int i = 0; i < sleeps; ++i) {
    co_await deja::sleep(std::chrono::milliseconds(1 + splitmix64(state) % 1000));
    ++*wakeups;
  }
}

// Virtual time: the simulator's clock jumps from timer to timer.
deja::Task<void> sim_timers(std::uint64_t tasks, int sleeps, double* virtual_seconds) {
  std::uint64_t wakeups = 0;
  const auto start = deja::now();
  std::vector<deja::JoinHandle<void>> handles;
  handles.reserve(tasks);
  for (std::uint64_t t = 0; t < tasks; ++t) handles.push_back(deja::spawn(timer_task(t, sleeps, &wakeups)));
  for (auto& h : handles) co_await h;
  check(wakeups == tasks * static_cast<std::uint64_t>(sleeps), "sim_timers wake-up count");
  *virtual_seconds = std::chrono::duration<double>(deja::now() - start).count();
}

// The simulated network at scale: every node sends UDP datagrams to peers drawn at random (one
// every millisecond of virtual time) and counts what it receives; the cost is per delivered message.
constexpr std::uint64_t kSimNetMessages = 200'000;
constexpr std::uint16_t kSimNetPort = 5000;

struct SimNetCounts {
  std::uint64_t received = 0;
  std::uint64_t senders_done = 0;
};

deja::Task<void> sim_net_receiver(deja::net::DatagramBackend* socket, SimNetCounts* counts) {
  std::byte buf[64];
  for (;;) {
    (void)co_await socket->recv_from(buf);
    ++counts->received;
  }
}

deja::Task<void> sim_net_node(std::uint32_t nodes, std::uint64_t per_node, SimNetCounts* counts) {
  auto socket = deja::current_runtime()->net->bind_udp(deja::net::SocketAddr(deja::net::IpAddr::v4_unspecified(), kSimNetPort));
  auto receiver = deja::spawn(sim_net_receiver(socket.get(), counts));
  const std::byte payload[32]{};
  for (std::uint64_t i = 0; i < per_node; ++i) {
    const auto peer = deja::sim::NodeId{static_cast<std::uint32_t>(1 + deja::random_below(nodes))};
    (void)co_await socket->send_to(payload, deja::net::SocketAddr(deja::sim::node_ip(peer), kSimNetPort));
    co_await deja::sleep(1ms);
  }
  ++counts->senders_done;
  co_await receiver;  // runs until the simulation ends
}

deja::Task<void> sim_net(std::uint32_t nodes, std::uint64_t* delivered) {
  deja::sim::LinkConfig link;
  link.udp_loss = 0;
  link.udp_duplicate = 0;
  deja::sim::set_default_link(link);
  const std::uint64_t per_node = kSimNetMessages / nodes;
  SimNetCounts counts;
  for (std::uint32_t n = 0; n < nodes; ++n) {
    deja::sim::add_node("n" + std::to_string(n), [nodes, per_node, &counts] { return sim_net_node(nodes, per_node, &counts); });
  }
  while (counts.senders_done < nodes) co_await deja::sleep(100ms);
  co_await deja::sleep(1s);  // the last messages land
  check(counts.received == per_node * nodes, "sim_net: every datagram arrives on a lossless network");
  check(deja::sim::net_stats().delivered == counts.received, "sim_net: delivered count");
  *delivered = counts.received;
}

struct Workload {
  const char* name;
  std::uint64_t ops;
  std::function<deja::Task<void>()> make;
};

double g_virtual_seconds = 0;
std::uint32_t g_nodes = 10;
std::uint64_t g_delivered = 0;

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> all = {
      {"spawn_join", 100'000, [] { return spawn_join(100'000); }},
      {"chained_spawn", 100'000, [] { return chained_spawn(100'000); }},
      {"yield_many", 200'000, [] { return yield_many(200, 1'000); }},
      {"ping_pong", 100'000, [] { return ping_pong(100'000); }},
      {"mpsc_contended", 1'000'000, [] { return mpsc_contended(4, 250'000); }},
      {"timer_churn", 1'000'000, [] { return timer_churn(1'000'000); }},
      {"sim_timers", 1'000'000, [] { return sim_timers(10'000, 100, &g_virtual_seconds); }},
      {"sim_net", kSimNetMessages, [] { return sim_net(g_nodes, &g_delivered); }},
  };
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.rt != "ct" && o.rt != "mt" && o.rt != "sim") usage(("--rt " + o.rt + " is not available (ct, mt and sim are)").c_str());
  if (o.threads < 1) usage("--threads must be at least 1");
  if (o.io != "epoll" && o.io != "uring") usage(("--io " + o.io + " is not available (epoll and uring are)").c_str());
  if (o.io == "uring" && o.rt == "sim") usage("--io uring runs on --rt ct or mt");
  deja::RuntimeOptions ct_options;
  ct_options.io = o.io == "uring" ? deja::IoBackend::kUring : deja::IoBackend::kEpoll;
  if (o.bench == "echo_server") {
    if (o.rt == "sim") usage("echo_server runs on --rt ct or mt");
    if (o.port < 0 || o.port > 65535) usage("--port must be 0-65535");
    if (o.rt == "mt") {
      deja::MultiThreadOptions options;
      options.workers = static_cast<std::size_t>(o.threads);
      options.io = ct_options.io;
      deja::MultiThreadRuntime rt(options);
      rt.block_on(echo_server(o.port));
    } else {
      deja::CurrentThreadRuntime rt(ct_options);
      rt.block_on(echo_server(o.port));
    }
    return 0;
  }
  const auto& all = workloads();
  const auto it = std::find_if(all.begin(), all.end(), [&](const Workload& w) { return o.bench == w.name; });
  if (it == all.end()) usage(("unknown or not yet available bench " + o.bench).c_str());
  if (o.bench == "sim_timers" && o.rt != "sim") usage("sim_timers runs on --rt sim");
  if (o.bench == "sim_net" && o.rt != "sim") usage("sim_net runs on --rt sim");
  g_nodes = static_cast<std::uint32_t>(o.nodes);

  std::vector<double> ns;
  std::uint64_t trace_hash = 0;
  if (o.rt == "sim") {
    // Each rep is one simulation (a fresh virtual clock), seed 1, trace hashing on as always.
    for (int r = 0; r < o.reps; ++r) {
      deja::sim::Config config;
      config.seed = 1;
      config.max_steps = std::uint64_t{1} << 40;
      const auto start = std::chrono::steady_clock::now();
      const deja::sim::Outcome outcome = deja::sim::run(config, it->make);
      ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count());
      if (outcome.failed()) {
        std::fprintf(stderr, "deja-bench: the simulated run failed:\n%s", outcome.report().c_str());
        return 1;
      }
      check(r == 0 || outcome.trace_hash() == trace_hash, "the same seed gave a different trace hash");
      trace_hash = outcome.trace_hash();
    }
  } else if (o.rt == "mt") {
    deja::MultiThreadOptions options;
    options.workers = static_cast<std::size_t>(o.threads);
    options.io = ct_options.io;
    deja::MultiThreadRuntime rt(options);
    for (int r = 0; r < o.reps; ++r) {
      const auto start = std::chrono::steady_clock::now();
      rt.block_on(it->make());
      ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count());
    }
    if (std::getenv("DEJA_BENCH_METRICS") != nullptr) {
      // Scheduler counters over all reps, on stderr (stdout carries the one result line).
      const deja::MultiThreadMetrics m = rt.metrics();
      for (std::size_t i = 0; i < m.per_worker.size(); ++i) {
        const auto& w = m.per_worker[i];
        std::fprintf(stderr, "worker %zu: tasks_run=%llu steals=%llu stolen_tasks=%llu parks=%llu overflows=%llu busy_ms=%llu\n", i,
                     static_cast<unsigned long long>(w.tasks_run), static_cast<unsigned long long>(w.steals),
                     static_cast<unsigned long long>(w.stolen_tasks), static_cast<unsigned long long>(w.parks),
                     static_cast<unsigned long long>(w.overflows), static_cast<unsigned long long>(w.busy_ns / 1'000'000));
      }
    }
  } else {
    deja::CurrentThreadRuntime rt(ct_options);
    for (int r = 0; r < o.reps; ++r) {
      const auto start = std::chrono::steady_clock::now();
      rt.block_on(it->make());
      ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count());
    }
  }
  std::sort(ns.begin(), ns.end());
  const double median = ns[ns.size() / 2];
  if (o.bench == "sim_net") {
    // One op is one delivered message (ops rounds kSimNetMessages down to a multiple of the nodes).
    std::printf("bench=sim_net impl=deja-sim nodes=%d ops=%llu ns_per_op=%.1f\n", o.nodes,
                static_cast<unsigned long long>(g_delivered), median / static_cast<double>(g_delivered));
    return 0;
  }
  std::printf("bench=%s impl=deja-%s ops=%llu ns_per_op=%.1f", it->name, o.rt.c_str(), static_cast<unsigned long long>(it->ops),
              median / static_cast<double>(it->ops));
  if (o.bench == "sim_timers") {
    std::printf(" virtual_s=%.1f compression=%.0f", g_virtual_seconds, g_virtual_seconds / (median / 1e9));
  }
  std::printf("\n");
  return 0;
}
