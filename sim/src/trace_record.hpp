// The simulator's trace events, how they read, and the trace of a failed run kept for its trace
// files. Internal to the simulator library.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace deja::sim {

enum class EventKind : std::uint8_t {
  kSpawn,      // task spawned; a = the spawning task (0: none)
  kRun,        // one step of a task
  kComplete,   // a task finished; a = 0 returned, 1 threw, 2 destroyed unfinished (aborted)
  kTimerFire,  // a timer fired; a = its tick
  kDecision,   // a = bound, b = value
  kLog,        // a = hash of the text, b = the log line's number
  kAbort,      // abort of a task requested
  kNodeAdd,    // node added
  kCrash,      // node crashed; a = how many of its tasks were live
  kKilled,     // a task destroyed by its node's crash
  kRestart,    // node restarted; a = its boot count (1 is the first boot)
  // The simulated network (a = message kind << 32 | payload bytes, b = the other node):
  kNetSend,     // node put a message on the link toward b
  kNetDeliver,  // a message from b arrived at node
  kNetDrop,     // a message between node and b was lost
  kNetFault,    // a fault applied by node; a = fault kind, b = first node << 32 | second node
};

const char* kind_name(EventKind k) noexcept;

struct TraceEvent {
  std::uint64_t step;
  std::int64_t at_ns;  // virtual time since the epoch
  EventKind kind;
  std::uint32_t node;  // the node of `task`, or the node the event is about
  std::uint32_t task;  // 0: no task (the simulator itself)
  std::uint64_t a;
  std::uint64_t b;
};

// "#12 step 3 t=0.001000000s node=main task=5: log "hello"". `log_text` is the line of a log
// event when known; `node_names` is indexed by node id.
std::string describe_event(std::uint64_t index, const TraceEvent& e, const std::vector<std::string>& node_names,
                           std::string_view log_text);

// What a failed run keeps for its trace files, which are written the first time the outcome is
// reported (so failing runs that a shrinker or a property test tries and drops cost nothing).
struct TraceRecord {
  std::vector<TraceEvent> events;  // what the ring held, oldest first
  std::uint64_t first_index = 0;   // the index of events[0] among all the run's events
  std::vector<std::string> node_names;
  std::vector<std::string> logs;  // the last log lines; logs[k] is line number first_log + k
  std::uint64_t first_log = 0;
  std::string dir;   // Config::trace_dir ("": $DEJA_TRACE_DIR, else ./deja-traces)
  std::string stem;  // the file name without extension: unique per seed and trace hash
  std::string header;  // the first lines of the text file (failure, replay line)

  bool attempted = false;  // written (or tried) already
  std::vector<std::string> paths;
  std::string error;  // why writing failed ("" if it did not)

  std::string_view log_text(const TraceEvent& e) const noexcept;
};

// Writes <dir>/<stem>.txt and <dir>/<stem>.json once; never throws (a failure lands in `error`).
void write_trace_files(TraceRecord& record) noexcept;

// The JSON document alone (Chrome trace-event format: one process per node, one thread per task).
std::string trace_json(const TraceRecord& record);

}  // namespace deja::sim
