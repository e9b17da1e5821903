// The simulated network: TCP streams, UDP datagrams and name lookup between simulated nodes, over
// links whose latency, loss and duplication are decisions, with partitions, clogs and crashes.
//
// Model (see docs/ARCHITECTURE.md, "The simulated network"):
// - A message (datagram, handshake message, TCP segment) leaves now and arrives after a latency
//   drawn for it. Whether its link is cut or clogged is judged when it arrives.
// - A TCP connection is two flows, one per direction. A flow is a FIFO of segments on the wire with
//   strictly increasing arrival times and one timer for its head, so bytes arrive in order and a
//   busy connection costs one timer, not one per segment.
// - Cut datagrams and handshake messages are lost; cut or clogged TCP data waits in its flow
//   ("stalled") and leaves again with a fresh latency when the way is open; clogged datagrams and
//   handshakes wait the same way.
// Nothing is ordered by address: nodes, connections and packets carry sequence numbers, and every
// list is kept in the order things happened.
#include "sim_network.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "deja/context.hpp"
#include "deja/detail/task_header.hpp"
#include "deja/detail/waiter.hpp"
#include "deja/errors.hpp"
#include "deja/sim/simulator.hpp"

namespace deja::sim {

namespace {

using net::IpAddr;
using net::SocketAddr;

[[noreturn]] void fail_with(std::errc code, const std::string& what) {
  throw std::system_error(std::make_error_code(code), "deja::sim::net: " + what);
}

// Message kinds, as the trace records them (EventKind::kNet*, a = kind << 32 | bytes).
enum class Msg : std::uint32_t { kUdp, kSyn, kSynAck, kRefuse, kData, kFin, kRst };

constexpr std::uint32_t kMainNode = 0;
constexpr std::uint32_t kMaxNodes = 0xFFFFFD;  // 10.0.0.1 .. 10.255.255.253; 10.255.255.254 is main
constexpr std::uint16_t kFirstEphemeral = 49152;
constexpr std::size_t kMaxCuts = 256;

// Suspends the current task on a wait list until someone wakes the list. Callers loop on their
// condition, so a wake that finds the condition gone again simply waits again. The list must
// outlive the awaiter (callers hold the state that owns it).
class WaitOn {
 public:
  WaitOn(detail::WaitList& list, const char* what) noexcept : list_(&list), what_(what) {}
  WaitOn(const WaitOn&) = delete;
  WaitOn& operator=(const WaitOn&) = delete;
  ~WaitOn() {
    if (waiter_.linked) list_->remove(waiter_);
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    waiter_.task = detail::park_current(h, what_);
    list_->push_back(waiter_);
  }
  void await_resume() const noexcept {}

 private:
  detail::WaitList* list_;
  const char* what_;
  detail::Waiter waiter_;
};

void wake_all(detail::WaitList& list) noexcept {
  while (detail::Waiter* w = list.pop_front()) w->notify();
}

}  // namespace

class SimNetworkImpl;

namespace {

struct Conn;

struct Segment {
  Instant arrive;
  Msg kind;
  std::vector<std::byte> data;
};

// One direction of a connection: what end[from] sent toward end[1 - from].
struct Flow : detail::TimerNode {
  Conn* conn = nullptr;
  int from = 0;
  std::deque<Segment> wire;
  bool stalled = false;
};

struct End {
  std::uint32_t node = 0;
  SocketAddr local, peer;
  std::deque<std::byte> rx;
  bool eof = false;      // a FIN arrived
  bool reset = false;    // an RST arrived: once rx is read, one read or write fails with connection_reset
  bool reset_reported = false;  // ... and did: reads then return end of stream, writes broken_pipe
  bool shut = false;     // this end sent its FIN
  bool closed = false;   // the socket is gone (closed, crashed, or never handed out)
  bool crashed = false;  // closed because its node crashed: calls fail with network_down
  bool rst_sent = false;
  bool reading = false, writing = false;
  bool nodelay = false;
  std::size_t unread_out = 0;  // bytes this end sent that the peer has not read (the window)
  detail::WaitList readers, writers;
};

struct Conn : std::enable_shared_from_this<Conn> {
  std::uint64_t id = 0;
  End end[2];  // end[0]: the side that connected, end[1]: the side that accepted
  Flow flow[2];
  bool retired = false;
};

struct ListenerState {
  std::uint32_t node = 0;
  SocketAddr addr;
  std::uint32_t backlog = 0;
  std::deque<std::shared_ptr<Conn>> queue;
  detail::WaitList acceptors;
  bool closed = false;
  bool crashed = false;
};

struct Datagram {
  std::vector<std::byte> data;
  SocketAddr from;
};

struct UdpState {
  std::uint32_t node = 0;
  SocketAddr addr;
  std::deque<Datagram> queue;
  detail::WaitList receivers;
  std::optional<SocketAddr> peer;
  bool closed = false;
  bool crashed = false;
};

struct ConnectAttempt : detail::TimerNode {  // the TimerNode is the connect timeout
  std::uint64_t id = 0;
  std::uint32_t node = 0;
  SocketAddr local, remote;
  detail::WaitList waiters;
  bool done = false;
  std::errc error{};
  std::shared_ptr<Conn> conn;     // set at SYN arrival (the server side exists from then on)
  bool handed = false;            // the client end was handed to the connecting task
};

// A datagram or handshake message in flight, owned by the network's intrusive list.
struct Packet : detail::TimerNode {
  SimNetworkImpl* world = nullptr;
  Packet* prev = nullptr;
  Packet* next = nullptr;
  Msg kind = Msg::kUdp;
  std::uint32_t from = 0, to = 0;
  SocketAddr src, dst;
  std::vector<std::byte> data;
  std::shared_ptr<ConnectAttempt> attempt;
  bool held = false;
};

struct Cut {
  std::vector<std::uint8_t> side;  // by node id: 0 not involved, 1 side a, 2 side b
  bool rest_is_b = false;          // nodes beyond `side` (added later) are on side b
  bool one_way = false;
  std::uint8_t side_of(std::uint32_t n) const noexcept {
    return n < side.size() ? side[n] : (rest_is_b ? 2 : 0);
  }
};

// The sockets of one node by port: a sorted vector, because a node has few and every message
// looks one up (a tree costs a cache miss per level at 1,000 nodes). Iterates in port order.
template <class T>
class PortTable {
 public:
  using Entry = std::pair<std::uint16_t, T*>;
  typename std::vector<Entry>::iterator find(std::uint16_t port) {
    auto it = lower(port);
    return it != v_.end() && it->first == port ? it : v_.end();
  }
  typename std::vector<Entry>::iterator end() { return v_.end(); }
  typename std::vector<Entry>::iterator begin() { return v_.begin(); }
  std::size_t count(std::uint16_t port) const {
    auto it = std::lower_bound(v_.begin(), v_.end(), port, [](const Entry& e, std::uint16_t p) { return e.first < p; });
    return it != v_.end() && it->first == port ? 1 : 0;
  }
  void emplace(std::uint16_t port, T* value) { v_.insert(lower(port), Entry{port, value}); }
  void erase(std::uint16_t port) {
    if (auto it = find(port); it != v_.end()) v_.erase(it);
  }
  void clear() noexcept { v_.clear(); }

 private:
  typename std::vector<Entry>::iterator lower(std::uint16_t port) {
    return std::lower_bound(v_.begin(), v_.end(), port, [](const Entry& e, std::uint16_t p) { return e.first < p; });
  }
  std::vector<Entry> v_;
};

struct NodeNet {
  std::string name;
  PortTable<ListenerState> listeners;
  std::set<std::uint16_t> client_ports;
  PortTable<UdpState> udp;
  std::map<std::uint64_t, std::shared_ptr<Conn>> conns;  // by id: crash resets them in creation order
  std::uint16_t next_ephemeral = kFirstEphemeral;
  std::uint32_t clogs = 0;
};

enum class Block { kOpen, kClogged, kCut };

}  // namespace

class SimNetworkImpl : public std::enable_shared_from_this<SimNetworkImpl> {
 public:
  SimNetworkImpl(NetHost& host, const NetworkConfig& config) : host_(&host), config_(config) {
    validate_link(config.link, "NetworkConfig::link");
    if (config.tcp_window == 0) throw UsageError("deja::sim: NetworkConfig::tcp_window must be positive");
    if (config.udp_queue == 0) throw UsageError("deja::sim: NetworkConfig::udp_queue must be positive");
    nodes_.push_back(NodeNet{"main", {}, {}, {}, {}, kFirstEphemeral, 0});
    up_.push_back(1);
  }

  // Whether a node is up, kept here densely (one byte a node): every message asks.
  bool up(std::uint32_t node) const noexcept { return node < up_.size() && up_[node]; }
  void on_restart(std::uint32_t node) noexcept {
    if (node < up_.size()) up_[node] = 1;
  }

  bool ended() const noexcept { return host_ == nullptr; }

  static void validate_link(const LinkConfig& l, const char* what) {
    if (l.min_latency < Duration::zero() || l.max_latency < l.min_latency) {
      throw UsageError(std::string("deja::sim: ") + what + ": latencies must satisfy 0 <= min_latency <= max_latency");
    }
    if (!(l.udp_loss >= 0.0 && l.udp_loss <= 1.0) || !(l.udp_duplicate >= 0.0 && l.udp_duplicate <= 1.0)) {
      throw UsageError(std::string("deja::sim: ") + what + ": udp_loss and udp_duplicate must be in [0, 1]");
    }
  }

  // --- addresses ----------------------------------------------------------------------------
  static IpAddr ip_of(std::uint32_t node) noexcept {
    if (node == kMainNode) return IpAddr::v4(10, 255, 255, 254);
    return IpAddr::v4(10, static_cast<std::uint8_t>(node >> 16), static_cast<std::uint8_t>(node >> 8),
                      static_cast<std::uint8_t>(node));
  }

  // The node an address names, from the point of view of node `self` (127/8 is self).
  std::optional<std::uint32_t> node_of(const IpAddr& ip, std::uint32_t self) const {
    if (!ip.is_v4()) return std::nullopt;
    const auto o = ip.v4_octets();
    if (o[0] == 127) return self;
    if (o[0] != 10) return std::nullopt;
    if (o[1] == 255 && o[2] == 255 && o[3] == 254) return kMainNode;
    const std::uint32_t n = (std::uint32_t{o[1]} << 16) | (std::uint32_t{o[2]} << 8) | o[3];
    if (n == 0 || n >= nodes_.size()) return std::nullopt;
    return n;
  }

  std::uint32_t here() const noexcept { return host_->net_current_node(); }

  // Checks that `ip` may be bound on `node`: unspecified, loopback or the node's own address.
  void check_bindable(const IpAddr& ip, std::uint32_t node, const char* what) const {
    if (ip.is_unspecified() || ip.is_loopback() || ip == ip_of(node)) return;
    fail_with(std::errc::address_not_available,
              std::string(what) + ": " + ip.to_string() + " is not an address of node \"" + nodes_[node].name + "\"");
  }

  void count_socket(const char* what) {
    if (sockets_ >= config_.max_sockets) {
      fail_with(std::errc::too_many_files_open,
                std::string(what) + ": the simulated world has NetworkConfig::max_sockets (" +
                    std::to_string(config_.max_sockets) + ") sockets open");
    }
    ++sockets_;
  }
  void uncount_socket() noexcept {
    if (sockets_ > 0) --sockets_;
  }

  // --- nodes ------------------------------------------------------------------------------
  void on_node_added(std::uint32_t node, const std::string& name) {
    if (node >= kMaxNodes) throw UsageError("deja::sim::add_node: the simulated network has room for 16,777,213 nodes");
    if (node != nodes_.size()) throw UsageError("deja::sim: network node ids out of step with the simulator's");
    nodes_.push_back(NodeNet{name, {}, {}, {}, {}, kFirstEphemeral, 0});
    up_.push_back(1);
    by_name_.emplace(name, node);
  }

  void on_crash(std::uint32_t node) {
    NodeNet& n = nodes_[node];
    up_[node] = 0;
    // Connections: the crashed end vanishes (its unread bytes with it) and the peer is reset, by an
    // RST that follows whatever the crashed node had already put on the wire.
    const auto conns = n.conns;  // copied: resetting may retire connections
    for (const auto& [id, c] : conns) {
      for (int s = 0; s < 2; ++s) {
        End& e = c->end[s];
        if (e.node != node || e.closed) continue;
        e.closed = true;
        e.crashed = true;
        discard_rx(*c, s);
        End& peer = c->end[1 - s];
        if (!peer.closed && peer.node != node) send_rst(*c, s);
        wake_all(e.readers);
        wake_all(e.writers);
        uncount_socket();
      }
      maybe_retire(*c);
    }
    for (auto& [port, l] : n.listeners) {
      l->closed = true;
      l->crashed = true;
      l->queue.clear();  // their server ends are in n.conns, reset above
      wake_all(l->acceptors);
      uncount_socket();
    }
    n.listeners.clear();
    for (auto& [port, u] : n.udp) {
      u->closed = true;
      u->crashed = true;
      u->queue.clear();
      wake_all(u->receivers);
      uncount_socket();
    }
    n.udp.clear();
    n.client_ports.clear();
  }

  // --- links and faults -------------------------------------------------------------------
  const LinkConfig& link(std::uint32_t from, std::uint32_t to) const {
    if (!links_.empty()) {
      if (auto it = links_.find({from, to}); it != links_.end()) return it->second;
    }
    return config_.link;
  }

  Duration latency(std::uint32_t from, std::uint32_t to) noexcept {
    const LinkConfig& l = link(from, to);
    const auto span = std::chrono::duration_cast<std::chrono::microseconds>(l.max_latency - l.min_latency).count();
    if (span <= 0) return l.min_latency;
    return l.min_latency + std::chrono::microseconds(host_->net_choose(static_cast<std::uint64_t>(span) + 1));
  }

  // True with probability p, by one decision; decision 0 means no (so shrinking removes faults).
  bool chance(double p) noexcept {
    if (p <= 0.0) return false;
    if (p >= 1.0) return true;
    constexpr double kRange = static_cast<double>(1u << 24);
    return static_cast<double>(host_->net_choose(1u << 24)) >= kRange - p * kRange;
  }

  Block blocked(std::uint32_t from, std::uint32_t to) const noexcept {
    // The common case, a healthy network, touches neither node's state (at 1,000 nodes and more,
    // a random node's state is a cache miss).
    if (cuts_.empty() && clogged_nodes_ == 0 && link_clogs_.empty()) return Block::kOpen;
    if (from != to) {
      for (const Cut& c : cuts_) {
        const std::uint8_t a = c.side_of(from), b = c.side_of(to);
        if ((a == 1 && b == 2) || (!c.one_way && a == 2 && b == 1)) return Block::kCut;
      }
    }
    if (nodes_[from].clogs || nodes_[to].clogs) return Block::kClogged;
    if (!link_clogs_.empty() && link_clogs_.count({from, to})) return Block::kClogged;
    return Block::kOpen;
  }

  std::uint32_t checked_node(NodeId n, const char* what) const {
    if (n.value >= nodes_.size()) throw UsageError(std::string(what) + ": no node has id " + std::to_string(n.value));
    return n.value;
  }

  void add_cut(const std::vector<NodeId>& a, const std::vector<NodeId>& b, bool one_way, const char* what) {
    if (cuts_.size() >= kMaxCuts) throw UsageError(std::string(what) + ": more than 256 partitions at once (heal first)");
    Cut cut;
    cut.one_way = one_way;
    cut.side.assign(nodes_.size(), 0);
    for (NodeId n : a) cut.side[checked_node(n, what)] = 1;
    for (NodeId n : b) {
      const std::uint32_t id = checked_node(n, what);
      if (cut.side[id] == 1) throw UsageError(std::string(what) + ": node " + nodes_[id].name + " is on both sides");
      cut.side[id] = 2;
    }
    fault(one_way ? 1 : 0, a.empty() ? 0 : a[0].value, b.empty() ? 0 : b[0].value);
    cuts_.push_back(std::move(cut));
  }

  void isolate(NodeId node) {
    const std::uint32_t id = checked_node(node, "deja::sim::isolate");
    if (cuts_.size() >= kMaxCuts) throw UsageError("deja::sim::isolate: more than 256 partitions at once (heal first)");
    Cut cut;
    cut.side.assign(nodes_.size(), 2);
    cut.side[id] = 1;
    cut.rest_is_b = true;
    fault(2, id, 0);
    cuts_.push_back(std::move(cut));
  }

  void clog_node(NodeId node, bool on) {
    const std::uint32_t id = checked_node(node, on ? "deja::sim::clog_node" : "deja::sim::unclog_node");
    fault(on ? 3 : 4, id, 0);
    if (on) {
      if (nodes_[id].clogs++ == 0) ++clogged_nodes_;
    } else if (nodes_[id].clogs > 0) {
      nodes_[id].clogs = 0;
      --clogged_nodes_;
      reopen();
    }
  }

  void clog_link(NodeId from, NodeId to, bool on) {
    const char* what = on ? "deja::sim::clog_link" : "deja::sim::unclog_link";
    const std::uint32_t a = checked_node(from, what), b = checked_node(to, what);
    fault(on ? 5 : 6, a, b);
    if (on) {
      link_clogs_.insert({a, b});
    } else if (link_clogs_.erase({a, b})) {
      reopen();
    }
  }

  void heal() {
    fault(7, 0, 0);
    cuts_.clear();
    link_clogs_.clear();
    for (NodeNet& n : nodes_) n.clogs = 0;
    clogged_nodes_ = 0;
    reopen();
  }

  void set_link(std::uint32_t from, std::uint32_t to, const LinkConfig& l) {
    validate_link(l, "deja::sim::set_link");
    links_[{from, to}] = l;
  }
  void set_default_link(const LinkConfig& l) {
    validate_link(l, "deja::sim::set_default_link");
    config_.link = l;
  }

  void fault(std::uint64_t kind, std::uint32_t x, std::uint32_t y) noexcept {
    host_->net_record(EventKind::kNetFault, here(), kind, (std::uint64_t{x} << 32) | y);
  }

  // Some way opened: stalled flows and held packets whose way is open leave with a fresh latency,
  // in the order they stalled; held packets whose way is now cut are lost.
  void reopen() {
    auto flows = std::move(stalled_);
    stalled_.clear();
    for (auto& [conn, side] : flows) {
      Flow& f = conn->flow[side];
      if (!f.stalled) continue;
      if (blocked(conn->end[side].node, conn->end[1 - side].node) != Block::kOpen) {
        stalled_.emplace_back(conn, side);
        continue;
      }
      f.stalled = false;
      Instant t = host_->net_time().now() + latency(conn->end[side].node, conn->end[1 - side].node);
      for (Segment& s : f.wire) {
        s.arrive = std::max(s.arrive, t);
        t = s.arrive + Duration(1);
      }
      if (!f.wire.empty()) arm(f, f.wire.front().arrive);
      else maybe_retire(*conn);
    }
    auto held = std::move(held_);
    held_.clear();
    for (Packet* p : held) {
      const Block b = blocked(p->from, p->to);
      if (b == Block::kClogged) {
        held_.push_back(p);
      } else if (b == Block::kCut) {
        drop(p);
      } else {
        p->held = false;
        p->when = host_->net_time().now() + latency(p->from, p->to);
        host_->net_time().add_timer(*p);
      }
    }
  }

  // --- packets (datagrams and handshakes) --------------------------------------------------
  void send_packet(Msg kind, std::uint32_t from, std::uint32_t to, SocketAddr src, SocketAddr dst,
                   std::vector<std::byte> data, std::shared_ptr<ConnectAttempt> attempt) {
    record_msg(EventKind::kNetSend, from, to, kind, data.size());
    ++stats_.sent;
    if (packets_ >= config_.max_packets_in_flight) {
      ++stats_.dropped;
      record_msg(EventKind::kNetDrop, from, to, kind, data.size());
      return;
    }
    Packet* p = spare_packets_;
    if (p) spare_packets_ = p->next;
    else p = new Packet;
    p->prev = nullptr;
    p->world = this;
    p->kind = kind;
    p->from = from;
    p->to = to;
    p->src = src;
    p->dst = dst;
    p->data = std::move(data);
    p->attempt = std::move(attempt);
    p->fire = &SimNetworkImpl::on_packet;
    p->when = host_->net_time().now() + latency(from, to);
    p->next = packets_head_;
    if (packets_head_) packets_head_->prev = p;
    packets_head_ = p;
    ++packets_;
    host_->net_time().add_timer(*p);
  }

  void free_packet(Packet* p) noexcept {
    if (p->prev) p->prev->next = p->next;
    else packets_head_ = p->next;
    if (p->next) p->next->prev = p->prev;
    --packets_;
    // Kept for the next message: at 1,000 nodes, fresh allocations for every message cost more
    // than the message itself (the spares number at most the most packets ever in flight).
    p->attempt.reset();
    p->data.clear();
    p->held = false;
    p->next = spare_packets_;
    spare_packets_ = p;
  }

  void drop(Packet* p) noexcept {
    ++stats_.dropped;
    record_msg(EventKind::kNetDrop, p->to, p->from, p->kind, p->data.size());
    free_packet(p);
  }

  static void on_packet(detail::TimerNode* n) noexcept {
    auto* p = static_cast<Packet*>(n);
    p->world->arrive(p);
  }

  void arrive(Packet* p) noexcept {
    const Block b = blocked(p->from, p->to);
    if (b == Block::kCut || !up(p->to)) return drop(p);
    if (b == Block::kClogged) {
      ++stats_.delayed;
      p->held = true;
      held_.push_back(p);
      return;
    }
    ++stats_.delivered;
    record_msg(EventKind::kNetDeliver, p->to, p->from, p->kind, p->data.size());
    switch (p->kind) {
      case Msg::kUdp: deliver_udp(*p); break;
      case Msg::kSyn: deliver_syn(*p); break;
      case Msg::kSynAck: deliver_syn_ack(*p); break;
      case Msg::kRefuse: finish_attempt(*p->attempt, std::errc::connection_refused); break;
      default: break;
    }
    free_packet(p);
  }

  void deliver_udp(Packet& p) {
    auto it = nodes_[p.to].udp.find(p.dst.port());
    if (it == nodes_[p.to].udp.end()) return count_lost(p);
    UdpState& u = *it->second;
    if (u.peer && *u.peer != p.src) return count_lost(p);
    if (u.queue.size() >= config_.udp_queue) return count_lost(p);
    u.queue.push_back(Datagram{std::move(p.data), p.src});
    wake_all(u.receivers);
  }

  // Delivered to the host but nobody took it (no socket, a full queue): counted as dropped.
  void count_lost(const Packet& p) noexcept {
    ++stats_.dropped;
    record_msg(EventKind::kNetDrop, p.to, p.from, p.kind, p.data.size());
  }

  void deliver_syn(Packet& p) {
    ConnectAttempt& at = *p.attempt;
    if (at.done) return;  // the client gave up (timed out or cancelled): nothing to answer
    NodeNet& dst = nodes_[p.to];
    auto it = dst.listeners.find(p.dst.port());
    if (it == dst.listeners.end() || it->second->queue.size() >= it->second->backlog ||
        sockets_ + 1 > config_.max_sockets) {
      send_packet(Msg::kRefuse, p.to, p.from, p.dst, p.src, {}, p.attempt);
      return;
    }
    ListenerState& l = *it->second;
    auto c = std::make_shared<Conn>();
    c->id = ++conn_seq_;
    for (int s = 0; s < 2; ++s) {
      c->flow[s].conn = c.get();
      c->flow[s].from = s;
      c->flow[s].fire = &SimNetworkImpl::on_flow;
    }
    c->end[0].node = p.from;
    c->end[0].local = p.src;
    c->end[0].peer = p.dst;
    c->end[1].node = p.to;
    c->end[1].local = p.dst;
    c->end[1].peer = p.src;
    nodes_[p.from].conns.emplace(c->id, c);
    nodes_[p.to].conns.emplace(c->id, c);
    ++sockets_;  // the server end; the client end is counted when the connect begins
    ++stats_.connects;
    at.conn = c;
    l.queue.push_back(c);
    wake_all(l.acceptors);
    send_packet(Msg::kSynAck, p.to, p.from, p.dst, p.src, {}, p.attempt);
  }

  void deliver_syn_ack(Packet& p) {
    ConnectAttempt& at = *p.attempt;
    if (at.done) return;  // the client gave up; abandon_attempt already reset the server end
    finish_attempt(at, std::errc{});
  }

  void finish_attempt(ConnectAttempt& at, std::errc error) noexcept {
    if (at.done) return;
    at.done = true;
    at.error = error;
    host_->net_time().cancel_timer(at);
    attempts_.erase(at.id);
    wake_all(at.waiters);
  }

  static void on_connect_timeout(detail::TimerNode* n) noexcept {
    auto* at = static_cast<ConnectAttempt*>(n);
    SimNetworkImpl* w = current_impl();
    if (w) w->finish_attempt(*at, std::errc::timed_out);
  }

  // The connecting task is gone or failed: if the server side was created, the client end is
  // closed without ever being used, and the server end reset (as a real stack resets a half-open
  // connection).
  void abandon_attempt(ConnectAttempt& at) noexcept {
    if (!at.done) {
      at.done = true;
      host_->net_time().cancel_timer(at);
      attempts_.erase(at.id);
    }
    if (!at.handed) {
      nodes_[at.node].client_ports.erase(at.local.port());
      if (!at.conn) uncount_socket();  // the client end, counted when the connect began
      else if (!at.conn->end[0].closed) close_end(*at.conn, 0, /*abort=*/true);
    }
  }

  // --- TCP flows --------------------------------------------------------------------------
  void arm(Flow& f, Instant when) noexcept {
    f.when = when;
    host_->net_time().add_timer(f);
  }

  void push_segment(Conn& c, int from, Msg kind, std::vector<std::byte> data) {
    Flow& f = c.flow[from];
    const std::uint32_t a = c.end[from].node, b = c.end[1 - from].node;
    record_msg(EventKind::kNetSend, a, b, kind, data.size());
    ++stats_.sent;
    Instant t = host_->net_time().now() + latency(a, b);
    if (!f.wire.empty() && t <= f.wire.back().arrive) t = f.wire.back().arrive + Duration(1);
    f.wire.push_back(Segment{t, kind, std::move(data)});
    if (f.wire.size() == 1 && !f.stalled) arm(f, t);
  }

  void send_rst(Conn& c, int from) {
    if (c.end[from].rst_sent) return;
    c.end[from].rst_sent = true;
    push_segment(c, from, Msg::kRst, {});
  }

  static void on_flow(detail::TimerNode* n) noexcept {
    auto* f = static_cast<Flow*>(n);
    SimNetworkImpl* w = current_impl();
    if (w) w->flow_due(*f);
  }

  void flow_due(Flow& f) noexcept {
    Conn& c = *f.conn;
    const std::shared_ptr<Conn> keep = c.shared_from_this();  // delivery may retire the connection
    const int to = 1 - f.from;
    const std::uint32_t a = c.end[f.from].node, b = c.end[to].node;
    const Instant now = host_->net_time().now();
    if (!f.wire.empty() && blocked(a, b) != Block::kOpen) {
      ++stats_.delayed;
      f.stalled = true;
      stalled_.emplace_back(keep, f.from);
      return;
    }
    while (!f.wire.empty() && f.wire.front().arrive <= now) {
      Segment s = std::move(f.wire.front());
      f.wire.pop_front();
      deliver_segment(c, to, s);
    }
    if (!f.wire.empty()) arm(f, f.wire.front().arrive);
    maybe_retire(c);
  }

  void deliver_segment(Conn& c, int to, Segment& s) noexcept {
    End& e = c.end[to];
    End& sender = c.end[1 - to];
    if (e.crashed || !up(e.node)) {
      // A dead host answers nothing; its peer was reset when it crashed.
      ++stats_.dropped;
      record_msg(EventKind::kNetDrop, e.node, sender.node, s.kind, s.data.size());
      if (s.kind == Msg::kData) release_window(c, 1 - to, s.data.size());
      return;
    }
    ++stats_.delivered;
    record_msg(EventKind::kNetDeliver, e.node, sender.node, s.kind, s.data.size());
    switch (s.kind) {
      case Msg::kData:
        if (e.closed || e.reset) {
          // Data for a closed socket: the stack discards it and resets the sender.
          release_window(c, 1 - to, s.data.size());
          if (e.closed && !sender.closed) send_rst(c, to);
          return;
        }
        e.rx.insert(e.rx.end(), s.data.begin(), s.data.end());
        wake_all(e.readers);
        return;
      case Msg::kFin:
        e.eof = true;
        wake_all(e.readers);
        return;
      case Msg::kRst:
        // What arrived before the RST stays readable, as on Linux (the reset is reported after it).
        if (!e.reset) ++stats_.resets;
        e.reset = true;
        wake_all(e.readers);
        wake_all(e.writers);
        return;
      default: return;
    }
  }

  // Bytes end[side] had sent stopped counting against its window (read, or discarded).
  void release_window(Conn& c, int side, std::size_t n) noexcept {
    End& e = c.end[side];
    e.unread_out -= std::min(e.unread_out, n);
    wake_all(e.writers);
  }

  void discard_rx(Conn& c, int side) noexcept {
    const std::size_t n = c.end[side].rx.size();
    c.end[side].rx.clear();
    if (n) release_window(c, 1 - side, n);
  }

  // The socket of end[side] goes away: FIN if it was in order, RST if it had unread data (as
  // POSIX stacks do) or `abort` says so.
  void close_end(Conn& c, int side, bool abort) noexcept {
    End& e = c.end[side];
    if (e.closed) return;
    e.closed = true;
    uncount_socket();
    if (side == 0) nodes_[e.node].client_ports.erase(e.local.port());
    End& peer = c.end[1 - side];
    if (!e.reset && !peer.closed) {
      try {
        if (abort || !e.rx.empty()) send_rst(c, side);
        else if (!e.shut) push_segment(c, side, Msg::kFin, {});
      } catch (...) {
        // Out of memory while closing: the peer is left to its own timeouts.
      }
    }
    e.shut = true;
    discard_rx(c, side);
    maybe_retire(c);
  }

  void maybe_retire(Conn& c) noexcept {
    if (c.retired) return;
    for (int s = 0; s < 2; ++s) {
      if (!c.end[s].closed || !c.flow[s].wire.empty() || c.flow[s].stalled) return;
    }
    c.retired = true;
    const std::shared_ptr<Conn> keep = c.shared_from_this();
    nodes_[c.end[0].node].conns.erase(c.id);
    nodes_[c.end[1].node].conns.erase(c.id);
  }

  void record_msg(EventKind kind, std::uint32_t node, std::uint32_t other, Msg m, std::size_t bytes) noexcept {
    host_->net_record(kind, node, (std::uint64_t{static_cast<std::uint32_t>(m)} << 32) | (bytes & 0xFFFFFFFFu), other);
  }

  // --- ports ------------------------------------------------------------------------------
  bool tcp_port_taken(const NodeNet& n, std::uint16_t port) const {
    return n.listeners.count(port) || n.client_ports.count(port);
  }

  // The next free ephemeral port of the node, round robin over 49152..65535 (deterministic).
  template <class Taken>
  std::uint16_t ephemeral(NodeNet& n, Taken taken, const char* what) {
    for (std::uint32_t i = 0; i <= 65535u - kFirstEphemeral; ++i) {
      const std::uint16_t p = n.next_ephemeral;
      n.next_ephemeral = p == 65535 ? kFirstEphemeral : static_cast<std::uint16_t>(p + 1);
      if (!taken(p)) return p;
    }
    fail_with(std::errc::address_not_available, std::string(what) + ": no ephemeral port is free on node \"" + n.name + "\"");
  }

  // --- the driver -------------------------------------------------------------------------
  Task<std::unique_ptr<net::StreamBackend>> connect(SocketAddr to);
  std::unique_ptr<net::ListenerBackend> listen(SocketAddr at, std::uint32_t backlog);
  std::unique_ptr<net::DatagramBackend> bind_udp(SocketAddr at);

  std::vector<SocketAddr> lookup(const std::string& host, std::uint16_t port) {
    if (host.empty()) throw net::AddrParseError("deja::sim::net: lookup of an empty host name");
    if (auto ip = IpAddr::try_parse(host)) return {SocketAddr(*ip, port)};
    if (host == "localhost") return {SocketAddr(IpAddr::v4_loopback(), port)};
    if (host == "main") return {SocketAddr(ip_of(kMainNode), port)};
    if (auto it = by_name_.find(host); it != by_name_.end()) return {SocketAddr(ip_of(it->second), port)};
    fail_with(std::errc::host_unreachable, "lookup: no node is named \"" + host + "\"");
  }

  void end() noexcept {
    if (!host_) return;
    TimeDriver& time = host_->net_time();
    for (NodeNet& n : nodes_) {
      for (auto& [id, c] : n.conns) {
        for (Flow& f : c->flow) time.cancel_timer(f);
      }
    }
    for (auto& [id, at] : attempts_) time.cancel_timer(*at);
    while (packets_head_) {
      time.cancel_timer(*packets_head_);
      free_packet(packets_head_);
    }
    while (Packet* p = spare_packets_) {
      spare_packets_ = p->next;
      delete p;
    }
    held_.clear();
    stalled_.clear();
    attempts_.clear();
    nodes_.clear();
    host_ = nullptr;
  }

  static SimNetworkImpl* current_impl() noexcept;

  NetHost* host_;
  NetworkConfig config_;
  std::vector<NodeNet> nodes_;
  std::vector<std::uint8_t> up_;
  std::map<std::string, std::uint32_t> by_name_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, LinkConfig> links_;
  std::set<std::pair<std::uint32_t, std::uint32_t>> link_clogs_;
  std::vector<Cut> cuts_;
  std::uint32_t clogged_nodes_ = 0;  // nodes with clogs > 0
  std::vector<std::pair<std::shared_ptr<Conn>, int>> stalled_;
  std::vector<Packet*> held_;
  std::map<std::uint64_t, std::shared_ptr<ConnectAttempt>> attempts_;
  Packet* packets_head_ = nullptr;
  Packet* spare_packets_ = nullptr;  // freed packets, reused (linked by `next`)
  std::size_t packets_ = 0;
  std::size_t sockets_ = 0;
  std::uint64_t conn_seq_ = 0;
  std::uint64_t attempt_seq_ = 0;
  NetStats stats_;
};

namespace {
thread_local SimNetworkImpl* tls_network = nullptr;
}

SimNetworkImpl* SimNetworkImpl::current_impl() noexcept { return tls_network; }

SimNetworkImpl& current_network(const char* what) {
  if (!in_simulation() || !tls_network || tls_network->ended()) {
    throw UsageError(std::string(what) + " called outside a simulation (deja::sim::run)");
  }
  return *tls_network;
}

namespace {

std::vector<std::byte> copy_bytes(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

// --- TCP stream ---------------------------------------------------------------------------
class SimStream final : public net::StreamBackend {
 public:
  SimStream(std::shared_ptr<SimNetworkImpl> world, std::shared_ptr<Conn> conn, int side)
      : world_(std::move(world)), conn_(std::move(conn)), side_(side) {}
  ~SimStream() override {
    if (!world_->ended()) world_->close_end(*conn_, side_, false);
  }

  Task<std::size_t> read(std::span<std::byte> buf) override {
    if (buf.empty()) co_return 0;  // as a real socket: nothing is asked, nothing is reported
    const std::shared_ptr<Conn> c = conn_;
    const std::shared_ptr<SimNetworkImpl> w = world_;
    End& e = c->end[side_];
    if (e.reading) throw UsageError("deja::net::TcpStream::read: another read is in flight on this stream");
    e.reading = true;
    struct Reading {
      End* e;
      ~Reading() { e->reading = false; }
    } reading{&e};
    for (;;) {
      check_usable(e, w);
      if (!e.rx.empty()) {
        const std::size_t n = std::min(buf.size(), e.rx.size());
        std::copy_n(e.rx.begin(), n, buf.begin());
        e.rx.erase(e.rx.begin(), e.rx.begin() + static_cast<std::ptrdiff_t>(n));
        w->release_window(*c, 1 - side_, n);
        co_return n;
      }
      if (e.reset) {
        // Reported once (a real socket's pending error is consumed by the call that sees it),
        // then the stream reads as ended.
        if (!std::exchange(e.reset_reported, true)) fail_with(std::errc::connection_reset, "read: the connection was reset by the peer");
        co_return 0;
      }
      if (e.eof) co_return 0;
      co_await WaitOn(e.readers, "TcpStream::read");
    }
  }

  Task<std::size_t> write(std::span<const std::byte> buf) override {
    if (buf.empty()) co_return 0;  // as a real socket: nothing is asked, nothing is reported
    const std::shared_ptr<Conn> c = conn_;
    const std::shared_ptr<SimNetworkImpl> w = world_;
    End& e = c->end[side_];
    if (e.writing) throw UsageError("deja::net::TcpStream::write: another write is in flight on this stream");
    e.writing = true;
    struct Writing {
      End* e;
      ~Writing() { e->writing = false; }
    } writing{&e};
    const std::size_t window = w->config_.tcp_window;
    for (;;) {
      check_usable(e, w);
      if (e.reset) {
        if (!std::exchange(e.reset_reported, true)) fail_with(std::errc::connection_reset, "write: the connection was reset by the peer");
        fail_with(std::errc::broken_pipe, "write: the connection was reset by the peer");
      }
      if (e.shut) fail_with(std::errc::broken_pipe, "write: the write half was shut down");
      if (e.unread_out < window) {
        const std::size_t n = std::min(buf.size(), window - e.unread_out);
        e.unread_out += n;
        w->push_segment(*c, side_, Msg::kData, copy_bytes(buf.first(n)));
        co_return n;
      }
      co_await WaitOn(e.writers, "TcpStream::write (the peer's window is full)");
    }
  }

  void shutdown_write() override {
    End& e = conn_->end[side_];
    check_usable(e, world_);
    if (e.shut || e.reset) return;
    e.shut = true;
    world_->push_segment(*conn_, side_, Msg::kFin, {});
  }
  void set_nodelay(bool on) override { conn_->end[side_].nodelay = on; }
  bool nodelay() const override { return conn_->end[side_].nodelay; }
  SocketAddr local_addr() const override { return conn_->end[side_].local; }
  SocketAddr peer_addr() const override { return conn_->end[side_].peer; }

 private:
  static void check_usable(const End& e, const std::shared_ptr<SimNetworkImpl>& w) {
    if (w->ended()) fail_with(std::errc::network_down, "the simulation has ended");
    if (e.crashed) fail_with(std::errc::network_down, "the socket's node crashed");
  }

  std::shared_ptr<SimNetworkImpl> world_;
  std::shared_ptr<Conn> conn_;
  int side_;
};

// --- TCP listener -------------------------------------------------------------------------
class SimListener final : public net::ListenerBackend {
 public:
  SimListener(std::shared_ptr<SimNetworkImpl> world, std::shared_ptr<ListenerState> state)
      : world_(std::move(world)), state_(std::move(state)) {}
  ~SimListener() override {
    if (world_->ended() || state_->closed) return;
    state_->closed = true;
    world_->nodes_[state_->node].listeners.erase(state_->addr.port());
    world_->uncount_socket();
    // Connections the network accepted but nobody took are reset, as closing a listening socket does.
    for (auto& c : state_->queue) world_->close_end(*c, 1, true);
    state_->queue.clear();
    wake_all(state_->acceptors);
  }

  Task<std::unique_ptr<net::StreamBackend>> accept() override {
    const std::shared_ptr<ListenerState> l = state_;
    const std::shared_ptr<SimNetworkImpl> w = world_;
    for (;;) {
      if (w->ended()) fail_with(std::errc::network_down, "accept: the simulation has ended");
      if (l->crashed) fail_with(std::errc::network_down, "accept: the listener's node crashed");
      if (l->closed) fail_with(std::errc::bad_file_descriptor, "accept: the listener is closed");
      while (!l->queue.empty()) {
        std::shared_ptr<Conn> c = std::move(l->queue.front());
        l->queue.pop_front();
        if (c->end[1].closed) continue;  // reset before anyone accepted it
        co_return std::make_unique<SimStream>(w, std::move(c), 1);
      }
      co_await WaitOn(l->acceptors, "TcpListener::accept");
    }
  }
  SocketAddr local_addr() const override { return state_->addr; }

 private:
  std::shared_ptr<SimNetworkImpl> world_;
  std::shared_ptr<ListenerState> state_;
};

// --- UDP ----------------------------------------------------------------------------------
class SimUdp final : public net::DatagramBackend {
 public:
  SimUdp(std::shared_ptr<SimNetworkImpl> world, std::shared_ptr<UdpState> state)
      : world_(std::move(world)), state_(std::move(state)) {}
  ~SimUdp() override {
    if (world_->ended() || state_->closed) return;
    state_->closed = true;
    world_->nodes_[state_->node].udp.erase(state_->addr.port());
    world_->uncount_socket();
    wake_all(state_->receivers);
  }

  Task<std::size_t> send_to(std::span<const std::byte> data, SocketAddr to) override {
    co_return send_now(data, to);
  }

  Task<Received> recv_from(std::span<std::byte> buf) override {
    const std::shared_ptr<UdpState> u = state_;
    const std::shared_ptr<SimNetworkImpl> w = world_;
    for (;;) {
      check_usable(*u, *w);
      if (!u->queue.empty()) {
        Datagram d = std::move(u->queue.front());
        u->queue.pop_front();
        const std::size_t n = std::min(buf.size(), d.data.size());
        std::copy_n(d.data.begin(), n, buf.begin());
        co_return Received{n, d.from};
      }
      co_await WaitOn(u->receivers, "UdpSocket::recv_from");
    }
  }

  void connect(SocketAddr peer) override {
    check_usable(*state_, *world_);
    state_->peer = peer;
    // Datagrams already queued from other sources are dropped: a connected socket only ever
    // returns its peer's.
    std::erase_if(state_->queue, [&](const Datagram& d) { return d.from != peer; });
  }
  Task<std::size_t> send(std::span<const std::byte> data) override {
    if (!state_->peer) fail_with(std::errc::not_connected, "UdpSocket::send: the socket is not connected");
    co_return send_now(data, *state_->peer);
  }
  Task<std::size_t> recv(std::span<std::byte> buf) override {
    // Before connect it receives from any source, as recv(2) on an unconnected socket does.
    const Received r = co_await recv_from(buf);
    co_return r.size;
  }
  SocketAddr local_addr() const override { return state_->addr; }

 private:
  static void check_usable(const UdpState& u, const SimNetworkImpl& w) {
    if (w.ended()) fail_with(std::errc::network_down, "the simulation has ended");
    if (u.crashed) fail_with(std::errc::network_down, "the socket's node crashed");
    if (u.closed) fail_with(std::errc::bad_file_descriptor, "the socket is closed");
  }

  std::size_t send_now(std::span<const std::byte> data, SocketAddr to) {
    SimNetworkImpl& w = *world_;
    check_usable(*state_, w);
    if (data.size() > w.config_.max_datagram) {
      fail_with(std::errc::message_size, "UdpSocket::send_to: " + std::to_string(data.size()) +
                                             " bytes is more than NetworkConfig::max_datagram (" +
                                             std::to_string(w.config_.max_datagram) + ")");
    }
    const std::uint32_t from = state_->node;
    SocketAddr src = state_->addr;
    const std::optional<std::uint32_t> dst = w.node_of(to.ip(), from);
    if (to.ip().is_loopback()) src = SocketAddr(IpAddr::v4_loopback(), src.port());
    else if (src.ip().is_unspecified() || src.ip().is_loopback()) src = SocketAddr(SimNetworkImpl::ip_of(from), src.port());
    if (!dst) {
      // Sent into the void, as a datagram to an address nobody has is.
      ++w.stats_.sent;
      ++w.stats_.dropped;
      w.record_msg(EventKind::kNetDrop, from, from, Msg::kUdp, data.size());
      return data.size();
    }
    const LinkConfig& l = w.link(from, *dst);
    if (w.chance(l.udp_loss)) {
      ++w.stats_.sent;
      ++w.stats_.dropped;
      w.record_msg(EventKind::kNetDrop, from, *dst, Msg::kUdp, data.size());
      return data.size();
    }
    const bool twice = w.chance(l.udp_duplicate);
    w.send_packet(Msg::kUdp, from, *dst, src, to, copy_bytes(data), nullptr);
    if (twice) {
      ++w.stats_.duplicated;
      w.send_packet(Msg::kUdp, from, *dst, src, to, copy_bytes(data), nullptr);
    }
    return data.size();
  }

  std::shared_ptr<SimNetworkImpl> world_;
  std::shared_ptr<UdpState> state_;
};

// Undoes a connect that did not finish (failed, or its task was destroyed mid-wait).
struct AttemptGuard {
  SimNetworkImpl* w;
  std::shared_ptr<ConnectAttempt> at;
  ~AttemptGuard() {
    if (at && !w->ended()) w->abandon_attempt(*at);
  }
};

}  // namespace

Task<std::unique_ptr<net::StreamBackend>> SimNetworkImpl::connect(SocketAddr to) {
  const std::shared_ptr<SimNetworkImpl> self = shared_from_this();
  const std::uint32_t me = here();
  const std::optional<std::uint32_t> dst = node_of(to.ip(), me);
  if (!dst) fail_with(std::errc::host_unreachable, "connect: no simulated host has the address " + to.ip().to_string());
  if (to.port() == 0) fail_with(std::errc::connection_refused, "connect: port 0");
  count_socket("connect");
  auto at = std::make_shared<ConnectAttempt>();
  AttemptGuard guard{this, at};  // from here on, failure or cancellation undoes the attempt
  NodeNet& n = nodes_[me];
  at->id = ++attempt_seq_;
  at->node = me;
  at->remote = to;
  const std::uint16_t port = ephemeral(n, [&](std::uint16_t p) { return tcp_port_taken(n, p); }, "connect");
  n.client_ports.insert(port);
  at->local = SocketAddr(to.ip().is_loopback() ? IpAddr::v4_loopback() : ip_of(me), port);
  attempts_.emplace(at->id, at);
  at->fire = &SimNetworkImpl::on_connect_timeout;
  at->when = host_->net_time().now() + config_.connect_timeout;
  host_->net_time().add_timer(*at);
  send_packet(Msg::kSyn, me, *dst, at->local, to, {}, at);
  while (!at->done) co_await WaitOn(at->waiters, "TcpStream::connect");
  if (self->ended()) fail_with(std::errc::network_down, "connect: the simulation has ended");
  if (at->error == std::errc::connection_refused) {
    fail_with(std::errc::connection_refused, "connect: nobody listens at " + to.to_string());
  }
  if (at->error == std::errc::timed_out) {
    fail_with(std::errc::timed_out, "connect: no answer from " + to.to_string() + " (a partition, or a host that is down)");
  }
  if (!at->conn) fail_with(std::errc::connection_refused, "connect: the connection was not established");
  at->handed = true;
  std::shared_ptr<Conn> c = at->conn;
  guard.at.reset();
  co_return std::make_unique<SimStream>(self, std::move(c), 0);
}

std::unique_ptr<net::ListenerBackend> SimNetworkImpl::listen(SocketAddr at, std::uint32_t backlog) {
  const std::uint32_t me = here();
  check_bindable(at.ip(), me, "listen");
  NodeNet& n = nodes_[me];
  std::uint16_t port = at.port();
  if (port == 0) port = ephemeral(n, [&](std::uint16_t p) { return tcp_port_taken(n, p); }, "listen");
  else if (tcp_port_taken(n, port)) {
    fail_with(std::errc::address_in_use, "listen: port " + std::to_string(port) + " of node \"" + n.name + "\" is taken");
  }
  count_socket("listen");
  auto l = std::make_shared<ListenerState>();
  l->node = me;
  l->addr = SocketAddr(at.ip(), port);
  l->backlog = std::clamp<std::uint32_t>(backlog, 1, config_.max_backlog);
  n.listeners.emplace(port, l.get());
  return std::make_unique<SimListener>(shared_from_this(), std::move(l));
}

std::unique_ptr<net::DatagramBackend> SimNetworkImpl::bind_udp(SocketAddr at) {
  const std::uint32_t me = here();
  check_bindable(at.ip(), me, "bind_udp");
  NodeNet& n = nodes_[me];
  std::uint16_t port = at.port();
  if (port == 0) port = ephemeral(n, [&](std::uint16_t p) { return n.udp.count(p) > 0; }, "bind_udp");
  else if (n.udp.count(port)) {
    fail_with(std::errc::address_in_use, "bind_udp: UDP port " + std::to_string(port) + " of node \"" + n.name + "\" is taken");
  }
  count_socket("bind_udp");
  auto u = std::make_shared<UdpState>();
  u->node = me;
  u->addr = SocketAddr(at.ip(), port);
  n.udp.emplace(port, u.get());
  return std::make_unique<SimUdp>(shared_from_this(), std::move(u));
}

// --- SimNetwork -------------------------------------------------------------------------------

SimNetwork::SimNetwork(NetHost& host, const NetworkConfig& config)
    : impl_(std::make_shared<SimNetworkImpl>(host, config)) {
  tls_network = impl_.get();
}
SimNetwork::~SimNetwork() {
  impl_->end();
  if (tls_network == impl_.get()) tls_network = nullptr;
}

Task<std::unique_ptr<net::StreamBackend>> SimNetwork::connect(net::SocketAddr to) {
  const std::shared_ptr<SimNetworkImpl> w = impl_;
  co_return co_await w->connect(to);
}
std::unique_ptr<net::ListenerBackend> SimNetwork::listen(net::SocketAddr at, std::uint32_t backlog) {
  return impl_->listen(at, backlog);
}
std::unique_ptr<net::DatagramBackend> SimNetwork::bind_udp(net::SocketAddr at) { return impl_->bind_udp(at); }
Task<std::vector<net::SocketAddr>> SimNetwork::lookup(std::string host, std::uint16_t port) {
  const std::shared_ptr<SimNetworkImpl> w = impl_;
  co_return w->lookup(host, port);
}
void SimNetwork::on_node_added(std::uint32_t node, const std::string& name) { impl_->on_node_added(node, name); }
void SimNetwork::on_crash(std::uint32_t node) { impl_->on_crash(node); }
void SimNetwork::on_restart(std::uint32_t node) noexcept { impl_->on_restart(node); }
void SimNetwork::end() noexcept { impl_->end(); }

// --- the public world API ---------------------------------------------------------------------

net::IpAddr node_ip(NodeId node) {
  SimNetworkImpl& w = current_network("deja::sim::node_ip");
  w.checked_node(node, "deja::sim::node_ip");
  return SimNetworkImpl::ip_of(node.value);
}
std::optional<NodeId> node_at(net::IpAddr ip) {
  SimNetworkImpl& w = current_network("deja::sim::node_at");
  if (ip.is_loopback()) return std::nullopt;
  if (auto n = w.node_of(ip, 0)) return NodeId{*n};
  return std::nullopt;
}
std::optional<NodeId> node_named(const std::string& name) {
  SimNetworkImpl& w = current_network("deja::sim::node_named");
  if (name == "main") return NodeId{0};
  if (auto it = w.by_name_.find(name); it != w.by_name_.end()) return NodeId{it->second};
  return std::nullopt;
}
void set_link(NodeId from, NodeId to, const LinkConfig& link) {
  SimNetworkImpl& w = current_network("deja::sim::set_link");
  w.set_link(w.checked_node(from, "deja::sim::set_link"), w.checked_node(to, "deja::sim::set_link"), link);
}
void set_default_link(const LinkConfig& link) { current_network("deja::sim::set_default_link").set_default_link(link); }
void partition(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  current_network("deja::sim::partition").add_cut(a, b, false, "deja::sim::partition");
}
void partition_one_way(const std::vector<NodeId>& from, const std::vector<NodeId>& to) {
  current_network("deja::sim::partition_one_way").add_cut(from, to, true, "deja::sim::partition_one_way");
}
void isolate(NodeId node) { current_network("deja::sim::isolate").isolate(node); }
void clog_node(NodeId node) { current_network("deja::sim::clog_node").clog_node(node, true); }
void unclog_node(NodeId node) { current_network("deja::sim::unclog_node").clog_node(node, false); }
void clog_link(NodeId from, NodeId to) { current_network("deja::sim::clog_link").clog_link(from, to, true); }
void unclog_link(NodeId from, NodeId to) { current_network("deja::sim::unclog_link").clog_link(from, to, false); }
void heal() { current_network("deja::sim::heal").heal(); }
NetStats net_stats() { return current_network("deja::sim::net_stats").stats_; }

}  // namespace deja::sim
