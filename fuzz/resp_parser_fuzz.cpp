// libFuzzer harness for the kv example's RESP2 parser: any bytes are parsed or refused, within the
// input and the limits, and a parsed command re-encodes to exactly the bytes it consumed (for the
// array form) or to the same arguments.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "resp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kv::resp::Limits limits;
  limits.max_bulk_length = 4096;
  limits.max_arguments = 64;
  limits.max_inline_length = 4096;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  // Parse a pipeline: every command in turn, as a connection would.
  for (int guard = 0; guard < 10'000 && !in.empty(); ++guard) {
    const auto r = kv::resp::parse_command(in, args, limits);
    if (r.consumed > in.size()) std::abort();
    if (r.status == kv::resp::ParseStatus::kIncomplete || r.status == kv::resp::ParseStatus::kError) break;
    if (r.consumed == 0) std::abort();  // progress, or the pipeline loop would spin
    if (r.status == kv::resp::ParseStatus::kCommand) {
      if (args.empty() || args.size() > limits.max_arguments) std::abort();
      for (const auto& a : args) {
        if (a.size() > limits.max_bulk_length && in[0] == '*') std::abort();
      }
      if (in[0] == '*') {
        std::string again;
        kv::resp::append_array_header(again, args.size());
        for (const auto& a : args) kv::resp::append_bulk(again, a);
        std::vector<std::string> reparsed;
        const auto r2 = kv::resp::parse_command(again, reparsed, limits);
        if (r2.status != kv::resp::ParseStatus::kCommand || r2.consumed != again.size() || reparsed != args) std::abort();
      }
    }
    in.remove_prefix(r.consumed);
  }
  return 0;
}
