// One replica of the kv example: a small primary-backup key-value store. Replica 0 is the primary:
// it serves Redis clients (RESP2) and replicates every write to all backups, answering the client
// only once each backup has it. A backup that restarts has lost its memory and stays out of sync
// until the primary sends it a snapshot; a primary that restarts first recovers the state of an
// in-sync backup. So no acknowledged write is lost as long as, at every moment, some in-sync
// replica is up (the fault model the tests keep to: crashes one at a time, and never of the
// last in-sync replica). Partitions and clogs only delay writes: the primary retries until every
// backup has them, and a client that gives up sees an unknown outcome.
//
// The replication protocol: length-delimited frames (deja::net::FrameCodec) whose payloads are RESP
// arrays, so one parser serves clients and replicas:
//   primary -> backup   SNAPSHOT <seq> <key> <value> ...   (backup replaces its store)   -> OK
//                       APPLY <seq> <command> <args> ...   (the write numbered seq)      -> ACK <seq>
//                       FETCH                              (a restarted primary asks)    -> STATE <seq> <in-sync 0|1> <key> <value> ...
// It is written only against deja's public API, so it runs unchanged on the production runtime
// and in the simulator.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "deja/net/socket_addr.hpp"
#include "deja/net/tcp_listener.hpp"
#include "deja/task.hpp"
#include "resp.hpp"
#include "store.hpp"

namespace kv {

// What a replica keeps across a crash (the test holds it, as a disk would): whether it ever ran,
// and whether it is in sync now, which the tests' crash schedule reads.
struct ReplicaMeta {
  bool started_before = false;
  bool in_sync = false;
  std::uint64_t seq = 0;  // the last write applied (for reports)
};

struct ReplicaOptions {
  std::size_t index = 0;  // 0 is the primary
  // Where replica i listens for replication (index order). Empty or one entry: a single node.
  std::vector<deja::net::SocketAddr> replicas;
  // Where the primary serves clients. Backups serve no clients.
  std::optional<deja::net::SocketAddr> client_address;
  // The demo's bug: acknowledge a write once the primary has applied it, and replicate it after.
  bool acknowledge_before_replication = false;
  std::chrono::milliseconds retry_delay{50};
  std::chrono::milliseconds peer_timeout{500};
  std::size_t max_client_connections = 20'000;
  std::size_t max_frame_size = std::size_t{64} << 20;  // bounds a snapshot too
  StoreLimits store;
  resp::Limits protocol;
};

class Replica {
 public:
  struct State;

  // Binds the replica's listeners at once (so port 0 can be read back before run). Throws
  // std::system_error (address_in_use, ...) and UsageError for an index outside `replicas`. Needs
  // a runtime current on this thread.
  static Replica bind(ReplicaOptions options, std::shared_ptr<ReplicaMeta> meta = nullptr);

  Replica(Replica&&) noexcept;
  Replica& operator=(Replica&&) noexcept;
  ~Replica();

  std::optional<deja::net::SocketAddr> client_addr() const;
  std::optional<deja::net::SocketAddr> replication_addr() const;

  // Serves until the task is destroyed (aborting it closes every connection it opened).
  deja::Task<void> run();

 private:
  Replica(std::shared_ptr<State> state) noexcept;
  std::shared_ptr<State> state_;
};

}  // namespace kv
