// Simulated nodes: named groups of tasks that crash and restart together, to test what a
// distributed program does when a machine dies mid-operation.
//
//   deja::Task<void> scenario() {
//     auto store = std::make_shared<Disk>();              // what survives a crash is the test's business
//     const deja::sim::NodeId n = deja::sim::add_node("replica-1", [store] { return replica(store); });
//     co_await deja::sleep(5ms);
//     deja::sim::crash(n);                                 // every task of n is destroyed where it waits
//     deja::sim::restart(n);                               // replica(store) runs again, as a fresh task
//   }
//
// A task belongs to the node of the task that spawned it; a node's main task belongs to the node.
// Tasks of the run's main task (and everything they spawn) belong to no node (NodeId{0}), which
// cannot crash.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

#include "deja/task.hpp"

namespace deja::sim {

struct NodeId {
  std::uint32_t value = 0;  // 0: the run's main task, which is no node
  friend auto operator<=>(NodeId, NodeId) = default;
};

// Adds a node and spawns `main` as its first task. Callable only inside a simulation (from any
// task). `main` lives, unmoved, until the simulation ends, so it may be a coroutine lambda with
// captures (its frames refer to them), and restart calls it again. Throws UsageError outside a
// simulation, for an empty `main`, an empty name or a name already in use.
NodeId add_node(std::string name, std::function<Task<void>()> main);

// Destroys every task of `node` at its suspension point, as abort() does: RAII unwinds them,
// awaiters unlink themselves (a lock they held or were about to be handed passes on), their timers
// never fire, and JoinHandles on them held elsewhere see TaskCancelled. Crashing a crashed node
// does nothing. Throws UsageError outside a simulation, for an unknown node or NodeId{0}, and when
// called from one of the node's own tasks (a task cannot destroy itself while it runs).
void crash(NodeId node);

// Runs the main function of a crashed node again, as a fresh task. Throws UsageError outside a
// simulation, for an unknown node or NodeId{0}, and for a node that has not crashed.
void restart(NodeId node);

// The node of the task running now (NodeId{0} for the run's main task and outside tasks).
// Throws UsageError outside a simulation.
NodeId current_node();

// True unless `node` has crashed and not been restarted. Throws UsageError outside a simulation
// and for an unknown node.
bool node_is_up(NodeId node);

}  // namespace deja::sim
