// The kv example's data and its commands: a bounded map from keys to values, and the RESP2
// commands it answers (PING, GET, SET, DEL, plus the CONFIG GET and COMMAND that redis-benchmark
// and redis-cli send on connect). The same Store runs on the primary and on its backups, so a
// replicated write is applied by the same code everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kv {

struct StoreLimits {
  std::size_t max_keys = std::size_t{1} << 22;
  std::size_t max_key_length = 64 * 1024;
  std::size_t max_value_length = std::size_t{1} << 20;
};

enum class CommandKind : std::uint8_t {
  kRead,     // answered from local state (PING, GET, CONFIG GET, COMMAND)
  kWrite,    // changes state (SET, DEL): the primary replicates it before answering
  kInvalid,  // unknown command or wrong arguments: answered with an error, changes nothing
};

// What a command is, decided from its arguments alone (before applying it), with the error reply
// for an invalid one.
CommandKind classify(const std::vector<std::string>& args, std::string* error = nullptr);

class Store {
 public:
  explicit Store(StoreLimits limits = {}) : limits_(limits) {}

  // Applies one command and appends its RESP2 reply to `reply`. A write over a limit (too many
  // keys, too long a key or value) changes nothing and replies with an error.
  void execute(const std::vector<std::string>& args, std::string& reply);

  const std::map<std::string, std::string, std::less<>>& data() const noexcept { return data_; }
  std::size_t size() const noexcept { return data_.size(); }

 private:
  StoreLimits limits_;
  std::map<std::string, std::string, std::less<>> data_;  // ordered: iteration is deterministic
};

}  // namespace kv
