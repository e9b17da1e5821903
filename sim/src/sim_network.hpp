// The simulated network's engine, internal to the simulator library: SimNetwork implements
// net::NetDriver over links with latency, loss and faults, and NetHost is what it needs from the
// simulator (decisions, trace events, virtual time, which node runs now).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "deja/net/driver.hpp"
#include "deja/sim/network.hpp"
#include "deja/time.hpp"
#include "trace_record.hpp"

namespace deja::sim {

class NetHost {
 public:
  virtual ~NetHost() = default;
  virtual std::uint64_t net_choose(std::uint64_t bound) noexcept = 0;
  virtual void net_record(EventKind kind, std::uint32_t node, std::uint64_t a, std::uint64_t b) noexcept = 0;
  virtual std::uint32_t net_current_node() const noexcept = 0;
  virtual TimeDriver& net_time() noexcept = 0;
};

class SimNetworkImpl;

// Owned (shared) by the simulator and by every socket it handed out, so that a socket that outlives
// the run is destroyed safely (it does nothing once the run has ended).
class SimNetwork final : public net::NetDriver {
 public:
  SimNetwork(NetHost& host, const NetworkConfig& config);
  ~SimNetwork() override;

  Task<std::unique_ptr<net::StreamBackend>> connect(net::SocketAddr to) override;
  std::unique_ptr<net::ListenerBackend> listen(net::SocketAddr at, std::uint32_t backlog) override;
  std::unique_ptr<net::DatagramBackend> bind_udp(net::SocketAddr at) override;
  Task<std::vector<net::SocketAddr>> lookup(std::string host, std::uint16_t port) override;

  // Hooks of the simulator: a node was added (ids are dense, in creation order), a node crashed
  // (before its tasks are destroyed), the run ended (every task is gone; timers are disarmed).
  void on_node_added(std::uint32_t node, const std::string& name);
  void on_crash(std::uint32_t node);
  void on_restart(std::uint32_t node) noexcept;
  void end() noexcept;

  SimNetworkImpl& impl() noexcept { return *impl_; }

 private:
  std::shared_ptr<SimNetworkImpl> impl_;
};

// The network of the simulation running on this thread; throws UsageError naming `what` outside one.
SimNetworkImpl& current_network(const char* what);

}  // namespace deja::sim
