// Trace files: a failed run's trace as readable text and as Chrome/Perfetto trace-event JSON
// (one process per node, one thread per task), written when the outcome is first reported.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "deja/deja.hpp"
#include "deja/sim/node.hpp"
#include "deja/sim/catch2.hpp"
#include "deja/sim/simulator.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A scratch folder of this process, removed at the end of the test.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    path_ = fs::temp_directory_path() / ("deja-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A minimal JSON reader: enough to check that the file is well-formed JSON and to walk it.
struct Json {
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v;

  const Json* get(const std::string& key) const {
    const auto* o = std::get_if<Object>(&v);
    if (!o) return nullptr;
    const auto it = o->find(key);
    return it == o->end() ? nullptr : &it->second;
  }
  std::string str() const { return std::holds_alternative<std::string>(v) ? std::get<std::string>(v) : std::string(); }
  double num() const { return std::holds_alternative<double>(v) ? std::get<double>(v) : -1.0; }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : s_(text) {}

  // The document, or throws std::runtime_error naming the offset of the first error.
  Json parse() {
    Json j = value();
    skip_space();
    if (i_ != s_.size()) fail("trailing characters");
    return j;
  }

 private:
  [[noreturn]] void fail(const char* what) { throw std::runtime_error(std::string(what) + " at offset " + std::to_string(i_)); }
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail("unexpected character");
  }
  bool literal(const char* word) {
    const std::string w(word);
    if (s_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }

  Json value() {
    skip_space();
    if (i_ >= s_.size()) fail("unexpected end");
    const char c = s_[i_];
    if (c == '{') return object();
    if (c == '[') return array();
    if (c == '"') return Json{string()};
    if (literal("true")) return Json{true};
    if (literal("false")) return Json{false};
    if (literal("null")) return Json{nullptr};
    return Json{number()};
  }
  Json object() {
    expect('{');
    Json::Object o;
    if (eat('}')) return Json{o};
    do {
      skip_space();
      std::string key = string();
      expect(':');
      o[key] = value();
    } while (eat(','));
    expect('}');
    return Json{o};
  }
  Json array() {
    expect('[');
    Json::Array a;
    if (eat(']')) return Json{a};
    do a.push_back(value());
    while (eat(','));
    expect(']');
    return Json{a};
  }
  std::string string() {
    if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c < 0x20) fail("control character in a string");
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) fail("unexpected end");
        const char e = s_[i_];
        if (e == 'u') {
          if (i_ + 4 >= s_.size()) fail("short \\u escape");
          for (int k = 1; k <= 4; ++k) {
            if (!std::isxdigit(static_cast<unsigned char>(s_[i_ + static_cast<std::size_t>(k)]))) fail("bad \\u escape");
          }
          out += '?';  // the code point itself does not matter here
          i_ += 4;
        } else if (std::string("\"\\/bfnrt").find(e) != std::string::npos) {
          out += e;
        } else {
          fail("bad escape");
        }
      } else {
        out += static_cast<char>(c);
      }
      ++i_;
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  double number() {
    const std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-')) ++i_;
    if (start == i_) fail("expected a value");
    return std::stod(s_.substr(start, i_ - start));
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

// Three workers on the main task, two on a node, and a failed assertion.
deja::Task<void> failing_body() {
  std::vector<deja::JoinHandle<void>> hs;
  for (int i = 0; i < 3; ++i) {
    hs.push_back(deja::spawn([](int k) -> deja::Task<void> {
      co_await deja::sleep(std::chrono::milliseconds(1 + k));
      deja::sim::log("worker " + std::to_string(k) + " says \"hi\"\t\x01");
    }(i)));
  }
  deja::sim::add_node("db", []() -> deja::Task<void> {
    auto helper = deja::spawn([]() -> deja::Task<void> { co_await deja::sleep(2ms); }());
    co_await helper;
    co_await deja::sleep(1h);
  });
  for (auto& h : hs) co_await h;
  co_await deja::sleep(5ms);
  DEJA_ASSERT(hs.size() == 4);
}

}  // namespace

TEST_CASE("sim trace files: a failed run writes text and Perfetto JSON with a process per node and a track per task (1 seed)") {
  ScratchDir dir("trace-files");
  deja::sim::Config c;
  c.seed = 1;
  c.trace_dir = dir.path().string();
  c.replay_args = deja::sim::current_catch2_test_filter();
  const auto o = deja::sim::run(c, failing_body);
  REQUIRE(o.failed());
  const std::vector<std::string> files = o.trace_files();
  const std::string report = o.report();
  INFO(report);
  REQUIRE(files.size() == 2);
  REQUIRE(o.trace_file_error().empty());
  REQUIRE(o.trace_files() == files);  // written once; every report names the same files
  REQUIRE(files[0].size() > 4);
  REQUIRE(files[0].substr(files[0].size() - 4) == ".txt");
  REQUIRE(files[1].substr(files[1].size() - 5) == ".json");
  REQUIRE(fs::path(files[0]).parent_path() == fs::absolute(dir.path()));
  REQUIRE(report.find("trace files: " + files[0] + " " + files[1] + "\n") != std::string::npos);

  const std::string text = read_file(files[0]);
  REQUIRE(text.rfind("deja::sim: the run failed: DEJA_ASSERT(hs.size() == 4)", 0) == 0);
  REQUIRE(text.find("\nreplay: DEJA_SEED=0x1 ") != std::string::npos);
  REQUIRE(text.find("node=db: add node \"db\"") != std::string::npos);
  REQUIRE(text.find("log \"worker 2 says \\\"hi\\\"\\t\\u0001\"") != std::string::npos);

  Json doc;
  const std::string json = read_file(files[1]);
  REQUIRE_NOTHROW(doc = JsonParser(json).parse());
  const Json* events = doc.get("traceEvents");
  REQUIRE(events != nullptr);
  REQUIRE(std::holds_alternative<Json::Array>(events->v));
  std::map<double, std::string> processes;              // pid -> name
  std::map<std::pair<double, double>, std::string> threads;  // (pid, tid) -> name
  std::set<double> spans;                                // tids with a task-lifetime span
  std::size_t instants = 0;
  for (const Json& e : std::get<Json::Array>(events->v)) {
    REQUIRE(e.get("ph") != nullptr);
    REQUIRE(e.get("pid") != nullptr);
    const std::string ph = e.get("ph")->str();
    const std::string name = e.get("name") ? e.get("name")->str() : "";
    if (ph == "M" && name == "process_name") processes[e.get("pid")->num()] = e.get("args")->get("name")->str();
    if (ph == "M" && name == "thread_name") threads[{e.get("pid")->num(), e.get("tid")->num()}] = e.get("args")->get("name")->str();
    if (ph == "X") {
      REQUIRE(e.get("dur") != nullptr);
      REQUIRE(e.get("dur")->num() >= 0);
      spans.insert(e.get("tid")->num());
    }
    if (ph == "i") {
      ++instants;
      REQUIRE(e.get("ts") != nullptr);
      REQUIRE(e.get("ts")->num() >= 0);
      REQUIRE(e.get("args")->get("what") != nullptr);
    }
  }
  REQUIRE(processes == std::map<double, std::string>{{1, "main"}, {2, "node db"}});
  // Tasks 1-4 are the main task and its workers (process "main"); 5 and 6 are db's main and helper.
  for (int task = 1; task <= 4; ++task) REQUIRE(threads[{1, task}] == "task #" + std::to_string(task));
  for (int task = 5; task <= 6; ++task) REQUIRE(threads[{2, task}] == "task #" + std::to_string(task));
  REQUIRE(spans == std::set<double>{1, 2, 3, 4, 5, 6});
  REQUIRE(instants > 20);
  // Virtual time in microseconds: the failure happens at 3 ms + 5 ms.
  REQUIRE(json.find("\"ts\":8000.000") != std::string::npos);
}

TEST_CASE("sim trace files: the ring's capacity bounds the files, and names differ by seed (2 seeds)") {
  ScratchDir dir("trace-ring");
  deja::sim::Config c;
  c.seed = 1;
  c.trace_capacity = 10;
  c.trace_dir = dir.path().string();
  const auto one = deja::sim::run(c, failing_body);
  c.seed = 2;
  const auto two = deja::sim::run(c, failing_body);
  REQUIRE(one.failed());
  REQUIRE(two.failed());
  const auto files_one = one.trace_files();
  const auto files_two = two.trace_files();
  REQUIRE(files_one.size() == 2);
  REQUIRE(files_two.size() == 2);
  REQUIRE(files_one[0] != files_two[0]);
  REQUIRE(fs::path(files_one[0]).filename().string().rfind("deja-seed-0x1-", 0) == 0);
  const std::string text = read_file(files_one[0]);
  std::size_t event_lines = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) event_lines += line.rfind("#", 0) == 0 ? 1 : 0;
  REQUIRE(event_lines == 10);
  REQUIRE(text.find("are no longer kept") != std::string::npos);
}

TEST_CASE("sim trace files: nothing is written for a passing run or with write_trace_files off (1 seed)") {
  ScratchDir dir("trace-off");
  deja::sim::Config c;
  c.trace_dir = dir.path().string();
  c.write_trace_files = false;
  const auto off = deja::sim::run(c, failing_body);
  REQUIRE(off.failed());
  REQUIRE(off.trace_files().empty());
  REQUIRE(off.report().find("trace files") == std::string::npos);

  c.write_trace_files = true;
  const auto passing = deja::sim::run(c, []() -> deja::Task<void> { co_await deja::sleep(1ms); });
  REQUIRE_FALSE(passing.failed());
  REQUIRE(passing.trace_files().empty());
  REQUIRE_FALSE(fs::exists(dir.path()));
}

TEST_CASE("sim trace files: an unwritable folder is reported, not thrown (1 seed)") {
  ScratchDir dir("trace-unwritable");
  fs::create_directories(dir.path());
  const fs::path file = dir.path() / "a-file";
  std::ofstream(file) << "not a folder";
  deja::sim::Config c;
  c.trace_dir = (file / "traces").string();  // under a regular file: cannot be created
  const auto o = deja::sim::run(c, failing_body);
  REQUIRE(o.failed());
  std::string report;
  REQUIRE_NOTHROW(report = o.report());
  REQUIRE(o.trace_files().empty());
  REQUIRE(o.trace_file_error().find("cannot create the folder") != std::string::npos);
  REQUIRE(report.find("trace files not written: cannot create the folder " + (file / "traces").string()) != std::string::npos);
  REQUIRE(report.find("\nreplay: ") != std::string::npos);
}
