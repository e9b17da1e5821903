// The decision sources and the replay token codec.
#include "deja/sim/decision_source.hpp"

#include <array>

#include "deja/sim/replay_token.hpp"

namespace deja::sim {

namespace {

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

}  // namespace

std::uint64_t reduce(std::uint64_t raw, std::uint64_t bound) noexcept {
  if (bound == 0) return raw;
  // Multiply-shift: unbiased enough for scheduling and cheaper than a division.
  __extension__ typedef unsigned __int128 Wide;
  return static_cast<std::uint64_t>((static_cast<Wide>(raw) * bound) >> 64);
}

SeededSource::SeededSource(std::uint64_t seed) noexcept {
  for (auto& w : s_) w = splitmix64(seed);
}

std::uint64_t SeededSource::next_u64() noexcept {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::uint64_t SeededSource::next(std::uint64_t bound) { return reduce(next_u64(), bound); }

std::uint64_t ReplaySource::next(std::uint64_t bound) {
  if (pos_ >= values_.size()) return 0;
  const std::uint64_t v = values_[pos_++];
  return bound == 0 ? v : v % bound;
}

std::uint64_t ByteSource::next(std::uint64_t bound) {
  std::uint64_t v = 0;
  int shift = 0;
  for (std::uint64_t left = bound == 0 ? ~std::uint64_t{0} : bound - 1; left != 0 && shift < 64; left >>= 8, shift += 8) {
    if (pos_ < bytes_.size()) v |= static_cast<std::uint64_t>(bytes_[pos_++]) << shift;
  }
  return bound == 0 ? v : v % bound;
}

// --- replay tokens ----------------------------------------------------------------------------

namespace {

constexpr std::string_view kPrefix = "d1.";
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::uint32_t checksum(const std::vector<std::uint8_t>& bytes) noexcept {
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (std::uint8_t b : bytes) h = (h ^ b) * 16777619u;
  return h;
}

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

}  // namespace

std::string encode_replay_token(const std::vector<std::uint64_t>& values) {
  std::vector<std::uint8_t> bytes;
  put_varint(bytes, values.size());
  for (std::uint64_t v : values) put_varint(bytes, v);
  const std::uint32_t sum = checksum(bytes);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<std::uint8_t>(sum >> (8 * i)));
  std::string out(kPrefix);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::uint8_t b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

std::vector<std::uint64_t> decode_replay_token(std::string_view token) {
  if (token.substr(0, kPrefix.size()) != kPrefix) {
    throw BadReplayToken("DEJA_REPLAY token must start with \"d1.\" (is it a replay token from this version of deja?)");
  }
  token.remove_prefix(kPrefix.size());
  std::array<int, 256> index;
  index.fill(-1);
  for (int i = 0; i < 64; ++i) index[static_cast<unsigned char>(kAlphabet[i])] = i;
  std::vector<std::uint8_t> bytes;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < token.size(); ++i) {
    const int v = index[static_cast<unsigned char>(token[i])];
    if (v < 0) throw BadReplayToken("DEJA_REPLAY token has an invalid character at position " + std::to_string(i + kPrefix.size()));
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<std::uint8_t>(acc >> bits));
    }
  }
  if (bytes.size() < 5) throw BadReplayToken("DEJA_REPLAY token is truncated (too short to hold a decision log)");
  std::uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) stored |= static_cast<std::uint32_t>(bytes[bytes.size() - 4 + static_cast<std::size_t>(i)]) << (8 * i);
  bytes.resize(bytes.size() - 4);
  if (checksum(bytes) != stored) throw BadReplayToken("DEJA_REPLAY token checksum mismatch: it was truncated or altered");
  std::size_t pos = 0;
  auto get = [&]() -> std::uint64_t {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= bytes.size()) throw BadReplayToken("DEJA_REPLAY token is truncated inside a decision");
      const std::uint8_t b = bytes[pos++];
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw BadReplayToken("DEJA_REPLAY token has an overlong number");
  };
  const std::uint64_t count = get();
  if (count > bytes.size()) throw BadReplayToken("DEJA_REPLAY token declares more decisions than it holds");
  std::vector<std::uint64_t> values;
  values.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) values.push_back(get());
  if (pos != bytes.size()) throw BadReplayToken("DEJA_REPLAY token has trailing data");
  return values;
}

}  // namespace deja::sim
