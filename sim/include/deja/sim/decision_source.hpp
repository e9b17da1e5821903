// Where every nondeterministic choice of the simulator comes from: next(bound) -> [0, bound).
// A seeded PRNG explores; a recorded list replays (and shrinks); raw bytes let a fuzzer steer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace deja::sim {

class DecisionSource {
 public:
  virtual ~DecisionSource() = default;
  // A value in [0, bound); bound == 0 asks for any 64-bit value. bound == 1 is never asked.
  virtual std::uint64_t next(std::uint64_t bound) = 0;
};

// xoshiro256** seeded through splitmix64: fast, and the same stream on every machine.
class SeededSource final : public DecisionSource {
 public:
  explicit SeededSource(std::uint64_t seed) noexcept;
  std::uint64_t next(std::uint64_t bound) override;
  std::uint64_t next_u64() noexcept;

 private:
  std::uint64_t s_[4];
};

// Replays recorded values. A value out of range is reduced modulo the bound, and past the end of
// the list every decision is 0, so any list, including a shrunk one, is a valid schedule.
class ReplaySource final : public DecisionSource {
 public:
  explicit ReplaySource(std::vector<std::uint64_t> values) noexcept : values_(std::move(values)) {}
  std::uint64_t next(std::uint64_t bound) override;
  bool exhausted() const noexcept { return pos_ >= values_.size(); }

 private:
  std::vector<std::uint64_t> values_;
  std::size_t pos_ = 0;
};

// Turns raw bytes (a libFuzzer input) into decisions: each takes as many bytes as the bound needs,
// little-endian; past the end every decision is 0.
class ByteSource final : public DecisionSource {
 public:
  explicit ByteSource(std::span<const std::uint8_t> bytes) noexcept : bytes_(bytes) {}
  std::uint64_t next(std::uint64_t bound) override;

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

// Reduces a raw 64-bit draw to [0, bound) (bound 0: unchanged).
std::uint64_t reduce(std::uint64_t raw, std::uint64_t bound) noexcept;

}  // namespace deja::sim
