// The entropy seam: deja::random() draws from the current runtime (OS-seeded in production, the
// seed in the simulator), and deja::buggify() marks fault points that only the simulator fires.
#pragma once

#include <cstdint>

#include "deja/context.hpp"

namespace deja {

class Entropy {
 public:
  virtual ~Entropy() = default;
  virtual std::uint64_t next_u64() noexcept = 0;
  // A uniform value in [0, bound), bound > 0. The default draws next_u64() without modulo bias;
  // the simulator makes it one decision with that bound, so that every recorded value is a valid
  // replay (a rejection loop over replayed values might never end) and 0 is the smallest value.
  virtual std::uint64_t next_below(std::uint64_t bound) noexcept;
  // Whether a fault point fires. Production never fires; the simulator decides.
  virtual bool buggify(double probability) noexcept {
    (void)probability;
    return false;
  }
};

// A uniformly random 64-bit value from the current runtime. Throws UsageError outside a runtime.
inline std::uint64_t random() { return require_runtime("deja::random").entropy->next_u64(); }

// A uniformly random value in [0, bound), without modulo bias. bound == 0 throws UsageError.
std::uint64_t random_below(std::uint64_t bound);

// A fault-injection point: true with `probability` under the simulator, always false in
// production (and outside a runtime). probability outside [0, 1] throws UsageError.
bool buggify(double probability = 0.05);

}  // namespace deja
