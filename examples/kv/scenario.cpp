// The kv example's simulated scenario.
#include "scenario.hpp"

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "client.hpp"
#include "deja/join_handle.hpp"
#include "deja/race.hpp"
#include "deja/random.hpp"
#include "deja/sim/network.hpp"
#include "deja/sim/node.hpp"
#include "deja/sim/simulator.hpp"
#include "deja/spawn.hpp"
#include "deja/time.hpp"
#include "linearizability.hpp"
#include "replica.hpp"

namespace kv {
namespace {

using namespace std::chrono_literals;
using deja::sim::NodeId;

constexpr std::uint16_t kClientPort = 6379;
constexpr std::uint16_t kReplicationPort = 7000;
constexpr std::size_t kReplicas = 3;

struct World {
  ScenarioOptions options;
  std::vector<std::shared_ptr<ReplicaMeta>> metas;
  std::vector<NodeId> replica_nodes;
  std::vector<deja::net::SocketAddr> replication_addrs;
  deja::net::SocketAddr client_addr;
  std::map<std::string, std::vector<RegisterOp>> history;  // by key; ordered, so checks run in key order
  deja::Instant start{};
  deja::Instant clients_stop{};
  std::size_t clients_done = 0;
};

// Operation times in the history: microseconds since the scenario started.
std::int64_t now_us(const World& w) { return std::chrono::duration_cast<std::chrono::microseconds>(deja::now() - w.start).count(); }

deja::Task<void> replica_main(std::shared_ptr<World> w, std::size_t index) {
  ReplicaOptions o;
  o.index = index;
  o.replicas = w->replication_addrs;
  if (index == 0) o.client_address = w->client_addr;
  o.acknowledge_before_replication = w->options.acknowledge_before_replication;
  Replica replica = Replica::bind(o, w->metas[index]);
  co_await replica.run();
}

deja::Task<void> client_main(std::shared_ptr<World> w, int id) {
  std::optional<Client> client;
  const auto limit = w->options.client_timeout;
  for (std::size_t i = 0; i < w->options.max_operations_per_client && deja::now() < w->clients_stop; ++i) {
    const std::string key = "k" + std::to_string(deja::random_below(w->options.keys));
    const std::uint64_t draw = deja::random_below(4);  // half reads, a quarter sets, a quarter deletes
    const std::uint64_t what = draw < 2 ? 0 : draw - 1;
    RegisterOp op;
    op.client = id;
    op.call = now_us(*w);
    try {
      if (!client) client.emplace(co_await deja::timeout(limit, Client::connect(w->client_addr)));
      if (what == 0) {
        op.kind = RegisterOp::Kind::kRead;
        op.value = co_await deja::timeout(limit, client->get(key));
      } else if (what == 1) {
        op.kind = RegisterOp::Kind::kWrite;
        op.value = "c" + std::to_string(id) + "-" + std::to_string(i);
        co_await deja::timeout(limit, client->set(key, *op.value));
      } else {
        op.kind = RegisterOp::Kind::kWrite;  // a delete writes "absent"
        co_await deja::timeout(limit, client->del(key));
      }
      op.ret = now_us(*w);
    } catch (const std::system_error&) {
      // Timed out, refused or reset: the outcome is unknown, and the connection is not reusable.
      if (what == 0) op.kind = RegisterOp::Kind::kRead;
      if (what == 1) op.value = "c" + std::to_string(id) + "-" + std::to_string(i);
      client.reset();
    }
    w->history[key].push_back(std::move(op));
    co_await deja::sleep(std::chrono::milliseconds(deja::random_below(20)));
  }
  ++w->clients_done;
}

// Crashes and restarts replicas one at a time, and only while every other replica is in sync: the
// fault model under which the store promises not to lose acknowledged writes.
deja::Task<void> crash_schedule(std::shared_ptr<World> w) {
  const auto end = deja::now() + w->options.fault_duration;
  while (deja::now() < end) {
    co_await deja::sleep(std::chrono::milliseconds(200 + deja::random_below(1500)));
    const std::size_t victim = deja::random_below(kReplicas);
    bool others_in_sync = true;
    for (std::size_t i = 0; i < kReplicas; ++i) {
      if (i != victim && !w->metas[i]->in_sync) others_in_sync = false;
    }
    if (!others_in_sync) continue;
    deja::sim::log("crash replica " + std::to_string(victim));
    deja::sim::crash(w->replica_nodes[victim]);
    w->metas[victim]->in_sync = false;
    co_await deja::sleep(std::chrono::milliseconds(100 + deja::random_below(1000)));
    deja::sim::log("restart replica " + std::to_string(victim));
    deja::sim::restart(w->replica_nodes[victim]);
  }
}

std::string describe(const std::string& key, const LinearizabilityResult& r) {
  return "kv: the history of key " + key + " is not linearizable (times in microseconds since the start): " + r.explanation;
}

}  // namespace

deja::Task<void> simulated_cluster(ScenarioOptions options) {
  auto w = std::make_shared<World>();
  w->options = options;
  w->start = deja::now();
  w->clients_stop = deja::now() + options.fault_duration;
  for (std::size_t i = 0; i < kReplicas; ++i) w->metas.push_back(std::make_shared<ReplicaMeta>());
  for (std::size_t i = 0; i < kReplicas; ++i) {
    w->replica_nodes.push_back(deja::sim::add_node("kv" + std::to_string(i), [w, i] { return replica_main(w, i); }));
    w->replication_addrs.emplace_back(deja::sim::node_ip(w->replica_nodes.back()), kReplicationPort);
  }
  w->client_addr = deja::net::SocketAddr(deja::sim::node_ip(w->replica_nodes[0]), kClientPort);

  std::vector<NodeId> everyone = w->replica_nodes;
  for (std::size_t c = 0; c < options.clients; ++c) {
    // Clients run as tasks of their own nodes, so partitions can cut them off too.
    everyone.push_back(deja::sim::add_node("client" + std::to_string(c), [w, c] { return client_main(w, static_cast<int>(c)); }));
  }
  std::vector<deja::JoinHandle<void>> faults;
  if (options.partitions_and_clogs) {
    deja::sim::NemesisOptions n;
    n.nodes = everyone;
    n.duration = options.fault_duration;
    n.crashes = false;
    n.max_hold = 2s;
    faults.push_back(deja::spawn(deja::sim::nemesis(n)));
  }
  if (options.crashes) faults.push_back(deja::spawn(crash_schedule(w)));
  for (auto& f : faults) co_await f;
  deja::sim::heal();

  // Clients finish their last operations (each bounded by its timeout) after the faults end.
  const auto latest = deja::now() + 4 * options.client_timeout + 1s;
  while (w->clients_done < options.clients) {
    if (deja::now() > latest) throw std::runtime_error("kv: clients did not finish their operations");
    co_await deja::sleep(100ms);
  }
  // Final reads, as Jepsen does: once the network is healed, every key is read until a read is
  // answered, so a lost write cannot hide behind the end of the run.
  for (std::size_t k = 0; k < options.keys; ++k) {
    const std::string key = "k" + std::to_string(k);
    for (int attempt = 0;; ++attempt) {
      if (attempt == 100) throw std::runtime_error("kv: the final read of " + key + " was never answered");
      RegisterOp op;
      op.client = -1;
      op.call = now_us(*w);
      try {
        Client c = co_await deja::timeout(options.client_timeout, Client::connect(w->client_addr));
        op.value = co_await deja::timeout(options.client_timeout, c.get(key));
        op.ret = now_us(*w);
        w->history[key].push_back(std::move(op));
        break;
      } catch (const std::system_error&) {
      }
      co_await deja::sleep(100ms);
    }
  }

  // A check over operations that all failed would prove nothing.
  std::size_t answered = 0;
  for (const auto& [key, ops] : w->history) {
    for (const auto& op : ops) answered += op.ret.has_value();
  }
  std::size_t total = 0;
  for (const auto& [key, ops] : w->history) total += ops.size();
  if (answered * 4 < total) {
    throw std::runtime_error("kv: only " + std::to_string(answered) + " of " + std::to_string(total) +
                             " operations were answered: the scenario tests too little");
  }
  for (const auto& [key, ops] : w->history) {
    const LinearizabilityResult r = check_register(ops);
    if (r.verdict == LinearizabilityResult::Verdict::kNotLinearizable) throw std::runtime_error(describe(key, r));
    if (r.verdict == LinearizabilityResult::Verdict::kGaveUp) throw std::runtime_error("kv: the checker gave up on key " + key);
  }
}

}  // namespace kv
