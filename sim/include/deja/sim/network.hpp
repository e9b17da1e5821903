// The simulated network: every node has an address, TCP and UDP run over links with a latency
// distribution and a loss rate, and tests break the world on purpose (partitions, clogs, crashes),
// by hand, from a fault plan written as data, or with a nemesis that mixes them at random.
//
//   deja::Task<void> scenario() {
//     const auto a = deja::sim::add_node("a", [] { return server(); });
//     const auto b = deja::sim::add_node("b", [] { return client("a:7000"); });
//     co_await deja::sleep(1s);
//     deja::sim::partition({a}, {b});   // b's connects time out, stream data waits
//     co_await deja::sleep(5s);
//     deja::sim::heal();
//   }
//
// Addresses: node N (the N-th add_node, N >= 1) is 10.0.0.0 + N as a 32-bit number (10.0.0.1,
// 10.0.0.2, ..., 10.0.1.0 for node 256); the run's main task and what it spawns (NodeId{0}, which
// cannot crash) is the host 10.255.255.254, named "main". 127.0.0.1 and "localhost" are the
// current node itself. A node's name resolves to its address through lookup.
//
// Every latency, loss, duplication and fault choice is one decision of the simulator, so a run
// with network faults replays from its seed and shrinks like any other.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "deja/net/socket_addr.hpp"
#include "deja/sim/node.hpp"
#include "deja/task.hpp"
#include "deja/time.hpp"

namespace deja::sim {

// How one direction of a link behaves. Latency is drawn uniformly from [min_latency, max_latency]
// (microsecond steps) for every datagram, TCP segment and handshake message; decision 0 is the
// minimum, so a shrunk schedule falls back to the fastest network.
struct LinkConfig {
  Duration min_latency = std::chrono::microseconds(500);
  Duration max_latency = std::chrono::milliseconds(5);
  // UDP only (TCP is reliable): the chance that a datagram is lost, and that it is delivered twice.
  double udp_loss = 0.01;
  double udp_duplicate = 0.01;
};

struct NetworkConfig {
  LinkConfig link;  // every link unless set_link says otherwise
  // A connect whose SYN or reply is lost (a partition, a crashed or vanished host) fails with
  // timed_out after this long.
  Duration connect_timeout = std::chrono::seconds(10);
  // Bytes one side of a TCP connection may have written that the peer has not read yet (in flight
  // plus waiting in the peer's receive buffer); write waits while it is reached (back-pressure).
  std::size_t tcp_window = 64 * 1024;
  // Datagrams waiting in a UDP socket's receive queue; more are dropped, as a full socket buffer does.
  std::size_t udp_queue = 1024;
  // The largest UDP payload (send_to of more throws message_size).
  std::size_t max_datagram = 65507;
  // Connections accepted by the network but not yet by accept(); more are refused.
  std::uint32_t max_backlog = 4096;
  // Live sockets (TCP endpoints, listeners, UDP sockets) in the whole world; one more throws
  // too_many_files_open. Messages in flight are bounded by it and by tcp_window and udp_queue.
  std::size_t max_sockets = 1 << 20;
  // Datagrams and handshake messages in flight in the whole world; more are dropped (and counted).
  std::size_t max_packets_in_flight = 1 << 22;
};

// The defaults of a run come from Config::network. The functions below read and change the live
// world of the running simulation (they throw UsageError outside one); nodes are the NodeIds of
// add_node, and NodeId{0} is the main task's host.

// The address of a node (NodeId{0}: the main task's host, 10.255.255.254).
net::IpAddr node_ip(NodeId node);
// The node with that address, if any (127.0.0.1 names no node in particular: nullopt).
std::optional<NodeId> node_at(net::IpAddr ip);
// The node with that name ("main": NodeId{0}), if any.
std::optional<NodeId> node_named(const std::string& name);

// Replaces the behaviour of the link from `from` to `to` (one direction).
void set_link(NodeId from, NodeId to, const LinkConfig& link);
// Replaces the behaviour of every link that has no set_link of its own.
void set_default_link(const LinkConfig& link);

// Partitions: messages between a node of `a` and a node of `b` are cut (both directions), or only
// from `a` to `b` with partition_one_way. Cut datagrams and handshakes are lost; TCP data (which
// real TCP would retransmit) waits and is delivered in order once the cut heals. Partitions add up.
void partition(const std::vector<NodeId>& a, const std::vector<NodeId>& b);
void partition_one_way(const std::vector<NodeId>& from, const std::vector<NodeId>& to);
// Cuts `node` from every other node (present and future), both ways.
void isolate(NodeId node);
// Clogs: everything sent by or to a clogged node, or over a clogged link (one direction), waits
// (nothing is lost) until it is unclogged; then it leaves with a fresh latency.
void clog_node(NodeId node);
void unclog_node(NodeId node);
void clog_link(NodeId from, NodeId to);
void unclog_link(NodeId from, NodeId to);
// Removes every partition and every clog (crashed nodes stay down).
void heal();

// Counters of the world (all directions, since the run began).
struct NetStats {
  std::uint64_t sent = 0;       // datagrams, TCP segments and handshake messages put on a link
  std::uint64_t delivered = 0;  // ... that arrived
  std::uint64_t dropped = 0;    // ... lost (loss rate, a partition, a down or absent host, a full queue)
  std::uint64_t duplicated = 0; // datagrams delivered twice
  std::uint64_t delayed = 0;    // times a message waited on a clog or (TCP data) a partition
  std::uint64_t connects = 0;   // connections established
  std::uint64_t resets = 0;     // connections reset (crash, close with unread data, data to a closed end)
};
NetStats net_stats();

// A fault plan written as data: steps applied at virtual times measured from the start of
// run_fault_plan. Steps at the same time apply in the order given.
struct FaultStep {
  enum class Kind : std::uint8_t {
    kPartition,        // a <-> b
    kPartitionOneWay,  // a -> b
    kIsolate,          // a[0] from everyone
    kClogNode,         // a[0]
    kUnclogNode,       // a[0]
    kClogLink,         // a[0] -> b[0]
    kUnclogLink,       // a[0] -> b[0]
    kHeal,
    kCrash,    // a[0]
    kRestart,  // a[0]
  };
  Duration at{};
  Kind kind = Kind::kHeal;
  std::vector<NodeId> a;
  std::vector<NodeId> b;
};
using FaultPlan = std::vector<FaultStep>;

// Applies `plan` step by step (it must be sorted by time; a malformed step throws UsageError
// before anything is applied). Run it as a task of the main task (NodeId{0}), which can crash nodes.
Task<void> run_fault_plan(FaultPlan plan);

// Parses a plan from text, one step per line (or separated by '|'):
//   "1s partition a b / c", "2500ms one-way a / b", "3s isolate a", "4s clog a", "5s unclog a",
//   "6s clog-link a b", "7s unclog-link a b", "8s heal", "9s crash a", "10s restart a"
// Names are node names; times take ms, s or us. Throws UsageError naming the line for bad text.
FaultPlan parse_fault_plan(const std::string& text);

// A ready-made adversary, in the spirit of FoundationDB's swizzle-clogging: until `duration` has
// passed, it waits a random pause, then picks a random fault among those enabled (a random
// partition of the nodes into two sides, a one-way cut, an isolated node, a swizzle: clog a random
// subset of nodes one by one, then unclog them in a random order, a clogged link, a crash followed
// later by a restart), holds it a random time, and heals. At the end everything is healed and every
// node it crashed is restarted. Every choice is a decision.
struct NemesisOptions {
  std::vector<NodeId> nodes;  // the nodes it may touch (empty: nothing to do)
  Duration duration = std::chrono::seconds(30);
  Duration min_pause = std::chrono::milliseconds(100);
  Duration max_pause = std::chrono::seconds(2);
  Duration max_hold = std::chrono::seconds(3);
  bool partitions = true;
  bool clogs = true;
  bool crashes = true;
};
Task<void> nemesis(NemesisOptions options);

}  // namespace deja::sim
