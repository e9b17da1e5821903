// RESP2, the Redis serialization protocol, as far as the kv example speaks it: commands arrive as
// arrays of bulk strings (what redis-cli and redis-benchmark send) or as inline lines (what a person
// types into nc), and replies are simple strings, errors, integers, bulk strings and arrays.
// https://redis.io/docs/latest/develop/reference/protocol-spec/
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kv::resp {

// Bounds on what a client may send. Crossing one is a protocol error (the connection is then
// closed, as Redis does), never an unbounded allocation.
struct Limits {
  std::size_t max_bulk_length = std::size_t{1} << 20;  // bytes in one argument
  std::size_t max_arguments = 1024;                    // arguments in one command
  std::size_t max_inline_length = 64 * 1024;           // bytes in one inline command line
};

enum class ParseStatus : std::uint8_t {
  kIncomplete,  // the input holds only a prefix of a command: read more and parse again
  kCommand,     // one command parsed; `consumed` bytes of the input were its encoding
  kEmpty,       // an empty inline line was skipped (`consumed` bytes); there is no command
  kError,       // malformed or over a limit: reply `error` and close the connection
};

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  std::size_t consumed = 0;
  std::string error;  // for kError, Redis's wording, e.g. "Protocol error: invalid bulk length"
};

// Parses the first command at the front of `input` into `args` (cleared first). Pure: it keeps no
// state between calls, so a caller with a partial command calls it again on the grown buffer.
// The work per call is bounded by the limits.
ParseResult parse_command(std::string_view input, std::vector<std::string>& args, const Limits& limits = {});

// Reply encoders: each appends one RESP2 value to `out`.
void append_simple(std::string& out, std::string_view text);  // +OK; text must not hold \r or \n
void append_error(std::string& out, std::string_view text);   // -ERR ...; \r and \n become spaces
void append_integer(std::string& out, std::int64_t value);
void append_bulk(std::string& out, std::string_view data);
void append_null_bulk(std::string& out);
void append_array_header(std::string& out, std::size_t count);

}  // namespace kv::resp
