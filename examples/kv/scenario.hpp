// The kv example under the simulator: three replicas and a few clients on simulated nodes, a
// nemesis that partitions and clogs the network, crashes and restarts within the store's fault
// model, and at the end a linearizability check of every key's history. It fails the run (by
// throwing) with the checker's explanation when a history has no legal order.
#pragma once

#include <chrono>
#include <cstddef>

#include "deja/task.hpp"

namespace kv {

struct ScenarioOptions {
  std::size_t clients = 3;
  // Clients work until the faults end, then stop; at most this many operations each.
  std::size_t max_operations_per_client = 1000;
  std::size_t keys = 2;
  std::chrono::milliseconds client_timeout{1000};
  std::chrono::seconds fault_duration{10};
  bool partitions_and_clogs = true;
  bool crashes = true;
  // Run the store with the demo's bug: acknowledge writes before replicating them.
  bool acknowledge_before_replication = false;
};

// The whole scenario, as the main task of deja::sim::run.
deja::Task<void> simulated_cluster(ScenarioOptions options);

}  // namespace kv
