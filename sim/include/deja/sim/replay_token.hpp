// A compact, pasteable token for a whole decision log (DEJA_REPLAY=<token>), so that a schedule
// replays exactly even where a seed cannot describe it, e.g. after shrinking.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace deja::sim {

// Thrown by decode_replay_token for a malformed or truncated token; what() says what is wrong.
class BadReplayToken : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// "d1." + base64url(varint count, varint values..., 4-byte checksum).
std::string encode_replay_token(const std::vector<std::uint64_t>& values);
std::vector<std::uint64_t> decode_replay_token(std::string_view token);

}  // namespace deja::sim
