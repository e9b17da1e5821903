// A failed run's trace as files: readable text, and Chrome trace-event JSON that
// ui.perfetto.dev and chrome://tracing load (one process per node, one thread per task).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "trace_record.hpp"

namespace deja::sim {

namespace {

constexpr int kMaxTraceFileSetsPerProcess = 64;

std::string u64(std::uint64_t v) { return std::to_string(v); }

// Concatenation by appending (g++ 12 warns falsely of overlapping copies in literal + string).
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (std::string_view p : parts) s += p;
  return s;
}

std::string node_label(const std::vector<std::string>& names, std::uint32_t node) {
  return node < names.size() ? names[node] : cat({"node ", u64(node)});
}

// Virtual nanoseconds as microseconds with three decimals, exactly (no floating point).
std::string micros(std::int64_t ns) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ns / 1000), static_cast<long long>(ns % 1000));
  return buf;
}

// Appends `s` as the body of a JSON string: escapes quotes, backslashes and control characters,
// and replaces bytes that are not UTF-8 (a log line may hold anything) with U+FFFD.
void append_json_escaped(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c == '\n' || c == '\t' || c == '\r') {
      out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\r";
      ++i;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      // The length of a well-formed sequence starting here, or 0.
      std::size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
      if (len && i + len <= s.size()) {
        for (std::size_t k = 1; k < len; ++k) {
          if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) len = 0;
        }
      } else {
        len = 0;
      }
      if (len) {
        out.append(s.substr(i, len));
        i += len;
      } else {
        out += "\xEF\xBF\xBD";
        ++i;
      }
    }
  }
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  append_json_escaped(out, s);
  out += '"';
  return out;
}

std::string what_happened(const TraceEvent& e, const std::vector<std::string>& names, std::string_view log_text) {
  std::string w;
  switch (e.kind) {
    case EventKind::kSpawn:
      w = cat({"spawn task #", u64(e.task)});
      if (e.a) {
        w += " (by task #";
        w += u64(e.a);
        w += ")";
      }
      return w;
    case EventKind::kRun: return cat({"run task #", u64(e.task)});
    case EventKind::kComplete:
      w = cat({"task #", u64(e.task)});
      w += e.a == 0 ? " returned" : e.a == 1 ? " threw" : " was destroyed unfinished";
      return w;
    case EventKind::kTimerFire:
      w = "timer fires";
      if (e.task) {
        w += " for task #";
        w += u64(e.task);
      }
      return w;
    case EventKind::kDecision:
      if (e.a == 0) {
        w = "decision: random value ";
        w += u64(e.b);
      } else {
        w = "decision: ";
        w += u64(e.b);
        w += " of [0, ";
        w += u64(e.a);
        w += ")";
      }
      return w;
    case EventKind::kLog:
      w = "log ";
      if (log_text.data()) w += json_string(log_text);
      else w += "(text no longer kept)";
      return w;
    case EventKind::kAbort: return cat({"abort task #", u64(e.task)});
    case EventKind::kNodeAdd: return cat({"add node ", json_string(node_label(names, e.node))});
    case EventKind::kCrash:
      w = cat({"crash node ", json_string(node_label(names, e.node))});
      w += ": ";
      w += u64(e.a);
      w += " live tasks";
      return w;
    case EventKind::kKilled: return cat({"task #", u64(e.task), " destroyed by the crash"});
    case EventKind::kRestart:
      w = cat({"restart node ", json_string(node_label(names, e.node))});
      w += " (boot ";
      w += u64(e.a);
      w += ")";
      return w;
    case EventKind::kNetSend:
    case EventKind::kNetDeliver:
    case EventKind::kNetDrop: {
      static constexpr const char* kMsg[] = {"udp", "syn", "syn-ack", "refuse", "tcp data", "fin", "rst"};
      const std::uint64_t m = e.a >> 32;
      w = e.kind == EventKind::kNetSend ? "net send " : e.kind == EventKind::kNetDeliver ? "net deliver " : "net drop ";
      w += m < 7 ? kMsg[m] : "?";
      w += " (";
      w += u64(e.a & 0xFFFFFFFFu);
      w += " bytes) ";
      w += e.kind == EventKind::kNetSend ? "to " : e.kind == EventKind::kNetDeliver ? "from " : "between here and ";
      w += json_string(node_label(names, static_cast<std::uint32_t>(e.b)));
      return w;
    }
    case EventKind::kNetFault: {
      static constexpr const char* kFault[] = {"partition", "one-way partition", "isolate",    "clog node",
                                               "unclog node", "clog link",       "unclog link", "heal"};
      w = "net fault: ";
      w += e.a < 8 ? kFault[e.a] : "?";
      if (e.a != 7) {
        w += " ";
        w += json_string(node_label(names, static_cast<std::uint32_t>(e.b >> 32)));
        if (e.a == 0 || e.a == 1 || e.a == 5 || e.a == 6) {
          w += " / ";
          w += json_string(node_label(names, static_cast<std::uint32_t>(e.b & 0xFFFFFFFFu)));
        }
      }
      return w;
    }
  }
  return "?";
}

// The track of an event in the JSON: the node's process, the task's thread (0: the simulator).
// Node events are drawn on the node they are about, on its thread 0.
std::uint32_t track_of(const TraceEvent& e) {
  switch (e.kind) {
    case EventKind::kNodeAdd:
    case EventKind::kCrash:
    case EventKind::kRestart: return 0;
    default: return e.task;
  }
}

std::uint64_t pid_of(std::uint32_t node) { return std::uint64_t{node} + 1; }  // pid 0 reads as "none" in viewers

bool write_file(const std::filesystem::path& path, const std::string& content, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    error = cat({"cannot create ", path.string()});
    return false;
  }
  const bool wrote = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !closed) {
    error = cat({"cannot write ", path.string()});
    return false;
  }
  return true;
}

}  // namespace

const char* kind_name(EventKind k) noexcept {
  switch (k) {
    case EventKind::kSpawn: return "spawn";
    case EventKind::kRun: return "run";
    case EventKind::kComplete: return "complete";
    case EventKind::kTimerFire: return "timer";
    case EventKind::kDecision: return "decision";
    case EventKind::kLog: return "log";
    case EventKind::kAbort: return "abort";
    case EventKind::kNodeAdd: return "node";
    case EventKind::kCrash: return "crash";
    case EventKind::kKilled: return "killed";
    case EventKind::kRestart: return "restart";
    case EventKind::kNetSend: return "net-send";
    case EventKind::kNetDeliver: return "net-deliver";
    case EventKind::kNetDrop: return "net-drop";
    case EventKind::kNetFault: return "net-fault";
  }
  return "?";
}

std::string describe_event(std::uint64_t index, const TraceEvent& e, const std::vector<std::string>& node_names,
                           std::string_view log_text) {
  char head[96];
  std::snprintf(head, sizeof head, "#%llu step %llu t=%lld.%09llds node=", static_cast<unsigned long long>(index),
                static_cast<unsigned long long>(e.step), static_cast<long long>(e.at_ns / 1'000'000'000),
                static_cast<long long>(e.at_ns % 1'000'000'000));
  std::string d = head;
  d += node_label(node_names, e.node);
  d += ": ";
  d += what_happened(e, node_names, log_text);
  return d;
}

std::string_view TraceRecord::log_text(const TraceEvent& e) const noexcept {
  if (e.kind != EventKind::kLog || e.b < first_log || e.b - first_log >= logs.size()) return {};
  return logs[static_cast<std::size_t>(e.b - first_log)];
}

std::string trace_json(const TraceRecord& r) {
  // Each task's life: from its spawn (or its first event still in the ring) to its end (or its last).
  struct Life {
    std::uint32_t node;
    std::int64_t begin;
    std::int64_t end;
  };
  std::map<std::uint32_t, Life> lives;  // ordered: the file's content must not depend on hashing
  std::set<std::uint32_t> nodes = {0};
  for (const TraceEvent& e : r.events) {
    nodes.insert(e.node);
    if (e.task == 0) continue;
    auto [it, fresh] = lives.try_emplace(e.task, Life{e.node, e.at_ns, e.at_ns});
    if (!fresh) it->second.end = e.at_ns;
  }
  for (std::uint32_t n = 0; n < r.node_names.size(); ++n) nodes.insert(n);

  std::string out = "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"source\":\"deja::sim\",\"name\":";
  out += json_string(r.stem);
  out += "},\"traceEvents\":[\n";
  bool first = true;
  auto begin_event = [&] {
    if (!first) out += ",\n";
    first = false;
  };
  auto metadata = [&](const char* name, std::uint64_t pid, std::optional<std::uint32_t> tid, const std::string& value) {
    begin_event();
    out += "{\"ph\":\"M\",\"name\":\"";
    out += name;
    out += "\",\"pid\":";
    out += u64(pid);
    if (tid) {
      out += ",\"tid\":";
      out += u64(*tid);
    }
    out += ",\"args\":{\"name\":";
    out += json_string(value);
    out += "}}";
  };
  for (std::uint32_t n : nodes) {
    std::string name = n == 0 ? std::string("main") : cat({"node ", node_label(r.node_names, n)});
    metadata("process_name", pid_of(n), std::nullopt, name);
    metadata("thread_name", pid_of(n), 0u, n == 0 ? "simulator" : "node events");
  }
  for (const auto& [task, life] : lives) {
    metadata("thread_name", pid_of(life.node), task, cat({"task #", u64(task)}));
  }
  for (const auto& [task, life] : lives) {
    begin_event();
    out += "{\"ph\":\"X\",\"cat\":\"task\",\"name\":\"task #";
    out += u64(task);
    out += "\",\"pid\":";
    out += u64(pid_of(life.node));
    out += ",\"tid\":";
    out += u64(task);
    out += ",\"ts\":";
    out += micros(life.begin);
    out += ",\"dur\":";
    out += micros(life.end - life.begin);
    out += "}";
  }
  for (std::size_t k = 0; k < r.events.size(); ++k) {
    const TraceEvent& e = r.events[k];
    begin_event();
    out += "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"deja\",\"name\":\"";
    out += kind_name(e.kind);
    out += "\",\"pid\":";
    out += u64(pid_of(e.node));
    out += ",\"tid\":";
    out += u64(track_of(e));
    out += ",\"ts\":";
    out += micros(e.at_ns);
    out += ",\"args\":{\"index\":";
    out += u64(r.first_index + k);
    out += ",\"step\":";
    out += u64(e.step);
    out += ",\"what\":";
    out += json_string(what_happened(e, r.node_names, r.log_text(e)));
    out += "}}";
  }
  out += "\n]}\n";
  return out;
}

void write_trace_files(TraceRecord& r) noexcept {
  if (r.attempted) return;
  r.attempted = true;
  // A test that reports every failing run of a long loop would otherwise fill the disk.
  static std::atomic<int> budget{kMaxTraceFileSetsPerProcess};
  if (budget.fetch_sub(1, std::memory_order_relaxed) <= 0) {
    r.error = cat({"this process has written ", u64(kMaxTraceFileSetsPerProcess), " sets of trace files already"});
    return;
  }
  try {
    namespace fs = std::filesystem;
    fs::path dir;
    if (!r.dir.empty()) {
      dir = r.dir;
    } else if (const char* env = std::getenv("DEJA_TRACE_DIR"); env && *env) {
      dir = env;
    } else {
      dir = "deja-traces";
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      r.error = cat({"cannot create the folder ", dir.string(), ": ", ec.message()});
      return;
    }
    const fs::path base = fs::absolute(dir, ec);
    const fs::path folder = ec ? dir : base;

    std::string text = r.header;
    text += "trace: ";
    text += u64(r.events.size());
    text += " events";
    if (r.first_index) {
      text += " (the first ";
      text += u64(r.first_index);
      text += " are no longer kept: raise Config::trace_capacity)";
    }
    text += "\n";
    for (std::size_t k = 0; k < r.events.size(); ++k) {
      text += describe_event(r.first_index + k, r.events[k], r.node_names, r.log_text(r.events[k]));
      text += "\n";
    }

    std::vector<std::string> written;
    const fs::path txt = folder / (r.stem + ".txt");
    if (!write_file(txt, text, r.error)) return;
    written.push_back(txt.string());
    const fs::path json = folder / (r.stem + ".json");
    if (!write_file(json, trace_json(r), r.error)) return;
    written.push_back(json.string());
    r.paths = std::move(written);
  } catch (const std::exception& e) {
    r.error = e.what();
    r.paths.clear();
  } catch (...) {
    r.error = "an unknown error";
    r.paths.clear();
  }
}

}  // namespace deja::sim
