// The kv replica: client service on the primary, replication to backups, recovery after a restart.
#include "replica.hpp"

#include <array>
#include <charconv>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "deja/errors.hpp"
#include "deja/join_set.hpp"
#include "deja/net/frame_codec.hpp"
#include "deja/net/tcp_stream.hpp"
#include "deja/race.hpp"
#include "deja/random.hpp"
#include "deja/sim/simulator.hpp"
#include "deja/sync/mutex.hpp"
#include "deja/time.hpp"

namespace kv {

using deja::Task;
using deja::net::SocketAddr;
using deja::net::TcpListener;
using deja::net::TcpStream;
using Args = std::vector<std::string>;

struct Replica::State {
  ReplicaOptions options;
  std::shared_ptr<ReplicaMeta> meta;
  std::optional<TcpListener> client_listener;
  std::optional<TcpListener> replication_listener;
  deja::net::FrameCodec codec;
  Store store;
  std::uint64_t seq = 0;  // the last write applied to `store`
  bool in_sync = false;
  deja::Mutex write_lock;  // writes are replicated and applied one at a time, in seq order
  std::vector<std::optional<TcpStream>> links;  // the primary's connection to each backup

  State(ReplicaOptions o, std::shared_ptr<ReplicaMeta> m)
      : options(std::move(o)), meta(std::move(m)), codec(options.max_frame_size), store(options.store), links(options.replicas.size()) {}

  bool is_primary() const noexcept { return options.index == 0; }
  void set_seq(std::uint64_t s) {
    seq = s;
    meta->seq = s;
  }
  void set_in_sync(bool on) {
    in_sync = on;
    meta->in_sync = on;
  }
};

namespace {

// A protocol error between replicas: the connection is dropped and the primary retries.
struct PeerProtocolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<std::byte> encode(const Args& args) {
  std::string text;
  resp::append_array_header(text, args.size());
  for (const auto& a : args) resp::append_bulk(text, a);
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return {p, p + text.size()};
}

Args decode(const std::vector<std::byte>& payload, const resp::Limits& limits) {
  const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
  Args args;
  const auto r = resp::parse_command(text, args, limits);
  if (r.status != resp::ParseStatus::kCommand || r.consumed != text.size()) throw PeerProtocolError("kv: malformed replication frame");
  return args;
}

std::uint64_t parse_seq(const std::string& text) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) throw PeerProtocolError("kv: malformed sequence number");
  return v;
}

// Replication frames may carry a whole store; the RESP limits for them follow the frame bound.
resp::Limits replication_limits(const ReplicaOptions& o) {
  resp::Limits l = o.protocol;
  l.max_arguments = 2 * o.store.max_keys + 3;
  l.max_bulk_length = std::max(o.store.max_key_length, o.store.max_value_length);
  return l;
}

// Frames sent as named values: g++ 12 cannot compile a braced list inside a co_await expression
// ("array used as initializer").
const Args kOk{"OK"};
const Args kOutOfSync{"ERR", "out of sync"};
const Args kFetch{"FETCH"};

Task<void> send(const std::shared_ptr<Replica::State>& s, TcpStream& stream, const Args& args) {
  const std::vector<std::byte> bytes = encode(args);
  co_await s->codec.write_frame(stream, std::span<const std::byte>(bytes));
}

// The next frame, or PeerProtocolError when the peer closed; deja::TimedOut past the peer timeout
// (the stream is then dropped by the caller: a frame may have been cut in half).
Task<Args> receive(const std::shared_ptr<Replica::State>& s, TcpStream& stream) {
  auto frame = co_await deja::timeout(s->options.peer_timeout, s->codec.read_frame(stream));
  if (!frame) throw PeerProtocolError("kv: the peer closed the replication connection");
  co_return decode(*frame, replication_limits(s->options));
}

Args snapshot_of(const Replica::State& s, const char* verb, bool with_sync_flag) {
  Args a{verb, std::to_string(s.seq)};
  if (with_sync_flag) a.emplace_back(s.in_sync ? "1" : "0");
  for (const auto& [k, v] : s.store.data()) {
    a.push_back(k);
    a.push_back(v);
  }
  return a;
}

void adopt_snapshot(Replica::State& s, const Args& a, std::size_t first_pair) {
  if ((a.size() - first_pair) % 2 != 0) throw PeerProtocolError("kv: odd snapshot");
  Store fresh(s.options.store);
  std::string ignored;
  for (std::size_t i = first_pair; i + 1 < a.size(); i += 2) {
    ignored.clear();
    fresh.execute({"SET", a[i], a[i + 1]}, ignored);
  }
  s.store = std::move(fresh);
  s.set_seq(parse_seq(a[1]));
}

// Makes sure backup `b` has write `seq` (the APPLY frame `apply`), reconnecting and resending a
// snapshot as often as it takes. It returns only when the backup acknowledged: while the backup is
// unreachable, writes wait (the store chooses consistency over availability), and a client that
// stops waiting sees an unknown outcome.
Task<void> replicate_to(std::shared_ptr<Replica::State> s, std::size_t b, Args apply, std::uint64_t seq) {
  for (;;) {
    try {
      std::optional<TcpStream>& link = s->links[b];
      if (!link) {
        TcpStream stream = co_await deja::timeout(s->options.peer_timeout, TcpStream::connect(s->options.replicas[b]));
        stream.set_nodelay(true);
        // The snapshot holds the writes before this one (in the buggy mode, this one too: the
        // backup then acknowledges the APPLY as a duplicate).
        co_await send(s, stream, snapshot_of(*s, "SNAPSHOT", false));
        const Args ok = co_await receive(s, stream);
        if (ok.size() != 1 || ok[0] != "OK") throw PeerProtocolError("kv: snapshot refused");
        link = std::move(stream);
      }
      // A fault point (it fires only in the simulator): replication stalls for a while, as on a
      // slow disk or a descheduled process, which widens every window between a write and its copies.
      if (deja::buggify(0.05)) co_await deja::sleep(std::chrono::milliseconds(1 + deja::random_below(300)));
      co_await send(s, *link, apply);
      const Args ack = co_await receive(s, *link);
      if (ack.size() != 2 || ack[0] != "ACK" || parse_seq(ack[1]) != seq) throw PeerProtocolError("kv: bad acknowledgement");
      co_return;
    } catch (const std::exception&) {
      // Connection refused or reset, timed out, or a confused peer: start over on a new connection.
      s->links[b].reset();
    }
    co_await deja::sleep(s->options.retry_delay);
  }
}

Task<void> replicate_to_all(std::shared_ptr<Replica::State> s, const Args& command, std::uint64_t seq) {
  Args apply{"APPLY", std::to_string(seq)};
  apply.insert(apply.end(), command.begin(), command.end());
  for (std::size_t b = 1; b < s->options.replicas.size(); ++b) co_await replicate_to(s, b, apply, seq);
}

Task<void> flush(TcpStream& stream, std::string& out) {
  if (out.empty()) co_return;
  co_await stream.write_all(std::as_bytes(std::span<const char>(out.data(), out.size())));
  out.clear();
}

// One command from a client: reads at once, writes once replicated (or, with the demo's bug,
// acknowledged first and replicated after).
Task<void> execute(std::shared_ptr<Replica::State> s, const Args& args, std::string& out, TcpStream& stream) {
  if (classify(args) != CommandKind::kWrite) {
    s->store.execute(args, out);
    co_return;
  }
  deja::MutexGuard guard = co_await s->write_lock.lock();
  const std::uint64_t seq = s->seq + 1;
  if (s->options.acknowledge_before_replication) {
    s->store.execute(args, out);
    s->set_seq(seq);
    co_await flush(stream, out);
    co_await replicate_to_all(s, args, seq);
    co_return;
  }
  co_await replicate_to_all(s, args, seq);
  s->store.execute(args, out);
  s->set_seq(seq);
}

Task<void> serve_client(std::shared_ptr<Replica::State> s, TcpStream stream) {
  std::string in;
  std::string out;
  Args args;
  std::array<std::byte, 16 * 1024> buf;
  constexpr std::size_t kFlushAt = 64 * 1024;  // replies buffered before a write, when pipelined
  try {
    for (;;) {
      std::size_t used = 0;
      for (;;) {
        const auto r = resp::parse_command(std::string_view(in).substr(used), args, s->options.protocol);
        if (r.status == resp::ParseStatus::kIncomplete) break;
        if (r.status == resp::ParseStatus::kError) {
          resp::append_error(out, "ERR " + r.error);
          co_await flush(stream, out);
          co_return;  // as Redis does: a client that breaks the protocol is disconnected
        }
        used += r.consumed;
        if (r.status == resp::ParseStatus::kCommand) co_await execute(s, args, out, stream);
        if (out.size() >= kFlushAt) co_await flush(stream, out);
      }
      in.erase(0, used);
      co_await flush(stream, out);
      const std::size_t n = co_await stream.read(buf);
      if (n == 0) co_return;
      in.append(reinterpret_cast<const char*>(buf.data()), n);
    }
  } catch (const std::system_error&) {
    // The client went away mid-conversation (reset, broken pipe): nothing to answer.
  }
}

// A backup's side of one replication connection.
Task<void> serve_primary(std::shared_ptr<Replica::State> s, TcpStream stream) {
  const resp::Limits limits = replication_limits(s->options);
  std::string ignored;
  try {
    for (;;) {
      auto frame = co_await s->codec.read_frame(stream);
      if (!frame) co_return;
      const Args a = decode(*frame, limits);
      if (a.size() >= 2 && a[0] == "SNAPSHOT") {
        adopt_snapshot(*s, a, 2);
        s->set_in_sync(true);
        co_await send(s, stream, kOk);
      } else if (a.size() >= 3 && a[0] == "APPLY") {
        const std::uint64_t seq = parse_seq(a[1]);
        if (!s->in_sync || seq > s->seq + 1) {
          co_await send(s, stream, kOutOfSync);
          co_return;
        }
        if (seq == s->seq + 1) {
          ignored.clear();
          s->store.execute(Args(a.begin() + 2, a.end()), ignored);
          s->set_seq(seq);
        }
        const Args ack{"ACK", a[1]};
        co_await send(s, stream, ack);
      } else if (a.size() == 1 && a[0] == "FETCH") {
        co_await send(s, stream, snapshot_of(*s, "STATE", true));
      } else {
        co_return;
      }
    }
  } catch (const std::exception&) {
    // Reset by a crashed primary, or a malformed frame: drop the connection; the primary reconnects.
  }
}

// A restarted primary adopts the state of the in-sync backup with the most writes. Every write the
// primary acknowledged is on every in-sync backup, so any of them will do; the most advanced one
// also keeps writes that were replicated but not yet acknowledged (their clients saw no answer).
Task<void> recover(std::shared_ptr<Replica::State> s) {
  for (;;) {
    std::optional<Args> best;
    std::size_t best_from = 0;
    for (std::size_t b = 1; b < s->options.replicas.size(); ++b) {
      try {
        TcpStream stream = co_await deja::timeout(s->options.peer_timeout, TcpStream::connect(s->options.replicas[b]));
        co_await send(s, stream, kFetch);
        Args state = co_await receive(s, stream);
        if (state.size() < 3 || state[0] != "STATE") continue;
        if (state[2] == "1" && (!best || parse_seq(state[1]) > parse_seq((*best)[1]))) {
          best = std::move(state);
          best_from = b;
        }
      } catch (const std::exception&) {
        // Unreachable or restarting: ask the others, and this one again next round.
      }
    }
    if (best) {
      deja::sim::log("kv: the restarted primary recovers write " + (*best)[1] + " and all before it from replica " +
                     std::to_string(best_from));
      adopt_snapshot(*s, *best, 3);
      s->set_in_sync(true);
      co_return;
    }
    co_await deja::sleep(s->options.retry_delay);
  }
}

Task<void> accept_loop(std::shared_ptr<Replica::State> s, bool clients, deja::JoinSet<void>& handlers) {
  TcpListener& listener = clients ? *s->client_listener : *s->replication_listener;
  for (;;) {
    TcpListener::Accepted accepted = co_await listener.accept();
    // Reap finished connections, so the set holds only live ones.
    for (;;) {
      try {
        if (!handlers.try_join_next()) break;
      } catch (const std::exception&) {
        // A handler's failure ended only its connection.
      }
    }
    if (handlers.size() >= s->options.max_client_connections) continue;  // over the bound: closed at once
    accepted.stream.set_nodelay(true);
    if (clients) {
      handlers.spawn(serve_client(s, std::move(accepted.stream)));
    } else {
      handlers.spawn(serve_primary(s, std::move(accepted.stream)));
    }
  }
}

Task<void> serve(std::shared_ptr<Replica::State> s) {
  const bool first_start = !s->meta->started_before;
  s->meta->started_before = true;
  // A backup starts in sync only at the cluster's birth, when every store is empty.
  s->set_in_sync(s->is_primary() ? false : first_start);
  deja::JoinSet<void> handlers;  // declared first: destroyed after the loops that add to it
  deja::JoinSet<void> loops;
  if (s->replication_listener) loops.spawn(accept_loop(s, false, handlers));
  if (s->is_primary()) {
    if (!first_start && s->options.replicas.size() > 1) {
      co_await recover(s);
    } else {
      s->set_in_sync(true);
    }
    if (s->client_listener) loops.spawn(accept_loop(s, true, handlers));
  }
  while (co_await loops.join_next()) {
  }
}

}  // namespace

Replica Replica::bind(ReplicaOptions options, std::shared_ptr<ReplicaMeta> meta) {
  if (!options.replicas.empty() && options.index >= options.replicas.size()) {
    throw deja::UsageError("kv::Replica: index " + std::to_string(options.index) + " but only " +
                           std::to_string(options.replicas.size()) + " replicas");
  }
  if (options.index == 0 && !options.client_address) throw deja::UsageError("kv::Replica: the primary needs a client address");
  if (!meta) meta = std::make_shared<ReplicaMeta>();
  auto s = std::make_shared<State>(std::move(options), std::move(meta));
  if (s->is_primary()) s->client_listener.emplace(TcpListener::bind(*s->options.client_address));
  if (!s->is_primary()) s->replication_listener.emplace(TcpListener::bind(s->options.replicas[s->options.index]));
  return Replica(std::move(s));
}

Replica::Replica(std::shared_ptr<State> state) noexcept : state_(std::move(state)) {}
Replica::Replica(Replica&&) noexcept = default;
Replica& Replica::operator=(Replica&&) noexcept = default;
Replica::~Replica() = default;

std::optional<SocketAddr> Replica::client_addr() const {
  if (!state_->client_listener) return std::nullopt;
  return state_->client_listener->local_addr();
}

std::optional<SocketAddr> Replica::replication_addr() const {
  if (!state_->replication_listener) return std::nullopt;
  return state_->replication_listener->local_addr();
}

Task<void> Replica::run() { return serve(state_); }

}  // namespace kv
