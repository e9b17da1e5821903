#include "deja/sim/shrink.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <utility>

#include "deja/errors.hpp"

namespace deja::sim {
namespace {

// The first line of a failure with every run of digits replaced by '#': task ids, step counts and
// values may change while shrinking; the kind of failure and where it happened may not.
std::string signature(const std::string& failure) {
  std::string sig;
  const std::string_view first(failure.data(), std::min(failure.find('\n'), failure.size()));
  bool in_digits = false;
  for (char c : first) {
    const bool digit = std::isdigit(static_cast<unsigned char>(c)) != 0;
    if (digit && !in_digits) sig.push_back('#');
    if (!digit) sig.push_back(c);
    in_digits = digit;
  }
  return sig;
}

void drop_trailing_zeros(std::vector<std::uint64_t>& v) {
  while (!v.empty() && v.back() == 0) v.pop_back();
}

// Orders schedules by how much they say: shorter first, then fewer non-default decisions, then
// smaller values. Shrinking only ever moves to a smaller schedule, so it terminates.
bool smaller(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
  if (a.size() != b.size()) return a.size() < b.size();
  const std::size_t na = count_nondefault(a);
  const std::size_t nb = count_nondefault(b);
  if (na != nb) return na < nb;
  return a < b;
}

class Shrinker {
 public:
  Shrinker(const Config& config, const std::function<Task<void>()>& body, const ShrinkOptions& options,
           std::string sig, std::uint64_t original_steps)
      : config_(config), body_(body), options_(options), signature_(std::move(sig)) {
    config_.source = nullptr;
    // A candidate can send the body into a loop the original never took; a shrunk schedule has
    // no business running much longer than the original, so each replay gets a step budget near
    // the original's (unless running out of steps is the failure being shrunk).
    if (signature_.rfind("step limit", 0) != 0) {
      config_.max_steps = std::min(config_.max_steps, original_steps * 4 + 10'000);
    }
  }

  // Replays `candidate`; if it fails the same way, adopts the decisions the run actually used
  // (reduced into range, unused ones dropped) when they are smaller, and returns true.
  bool try_candidate(const std::vector<std::uint64_t>& candidate) {
    if (runs_ >= options_.max_runs) {
      exhausted_ = true;
      return false;
    }
    ++runs_;
    config_.replay = candidate;
    Outcome o = run(config_, body_);
    if (!o.failed() || signature(o.failure()) != signature_) return false;
    std::vector<std::uint64_t> used = o.decisions();
    drop_trailing_zeros(used);
    if (!best_ || smaller(used, best_schedule_)) {
      best_schedule_ = std::move(used);
      best_ = std::move(o);
      return true;
    }
    return false;
  }

  void shrink() {
    bool progress = true;
    while (progress && !exhausted_) {
      progress = remove_chunks();
      progress = zero_each() || progress;
      progress = lower_each() || progress;
    }
  }

  // Removes chunks of decisions, halving the chunk size down to one (ddmin's complement step).
  bool remove_chunks() {
    bool any = false;
    for (std::size_t chunk = std::max<std::size_t>(best_schedule_.size() / 2, 1); chunk >= 1 && !exhausted_;
         chunk /= 2) {
      // From the end: late decisions are the likeliest to be irrelevant, and removing them does
      // not shift the positions of the earlier ones.
      std::size_t end = best_schedule_.size();
      while (end > 0 && !exhausted_) {
        const std::size_t begin = end >= chunk ? end - chunk : 0;
        std::vector<std::uint64_t> candidate = best_schedule_;
        if (begin >= candidate.size()) break;
        candidate.erase(candidate.begin() + static_cast<std::ptrdiff_t>(begin),
                        candidate.begin() + static_cast<std::ptrdiff_t>(std::min(end, candidate.size())));
        if (try_candidate(candidate)) any = true;
        end = std::min(begin, best_schedule_.size());
      }
      if (chunk == 1) break;
    }
    return any;
  }

  bool zero_each() {
    bool any = false;
    for (std::size_t i = best_schedule_.size(); i-- > 0 && !exhausted_;) {
      if (i >= best_schedule_.size() || best_schedule_[i] == 0) continue;
      std::vector<std::uint64_t> candidate = best_schedule_;
      candidate[i] = 0;
      if (try_candidate(candidate)) any = true;
    }
    return any;
  }

  // Lowers each non-zero decision: binary search for the smallest value that still fails.
  bool lower_each() {
    bool any = false;
    for (std::size_t i = 0; i < best_schedule_.size() && !exhausted_; ++i) {
      std::uint64_t lo = 1;  // 0 was tried by zero_each
      while (i < best_schedule_.size() && lo < best_schedule_[i] && !exhausted_) {
        const std::uint64_t hi = best_schedule_[i];
        const std::uint64_t mid = lo + (hi - lo) / 2;
        std::vector<std::uint64_t> candidate = best_schedule_;
        candidate[i] = mid;
        if (try_candidate(candidate)) {
          any = true;
        } else {
          lo = mid + 1;
        }
      }
    }
    return any;
  }

  std::optional<Outcome> best_;
  std::vector<std::uint64_t> best_schedule_;
  std::size_t runs_ = 0;
  bool exhausted_ = false;

 private:
  Config config_;
  const std::function<Task<void>()>& body_;
  ShrinkOptions options_;
  std::string signature_;
};

}  // namespace

std::size_t count_nondefault(const std::vector<std::uint64_t>& schedule) noexcept {
  return static_cast<std::size_t>(std::count_if(schedule.begin(), schedule.end(), [](std::uint64_t v) { return v != 0; }));
}

std::string format_schedule(const std::vector<std::uint64_t>& schedule) {
  std::string s = "[";
  for (std::size_t i = 0; i < schedule.size(); ++i) {
    if (i != 0) s.push_back(' ');
    s.append(std::to_string(schedule[i]));
  }
  s.push_back(']');
  return s;
}

ShrinkResult shrink(const Config& config, const std::function<Task<void>()>& body, const Outcome& failing,
                    const ShrinkOptions& options) {
  if (!failing.failed()) throw UsageError("deja::sim::shrink: the run to shrink did not fail");
  ShrinkResult result;
  result.original = failing.decisions();
  drop_trailing_zeros(result.original);

  Shrinker s(config, body, options, signature(failing.failure()), failing.steps());
  // The failing run's own decisions first: this also checks that the body replays.
  if (!s.try_candidate(result.original)) {
    if (s.exhausted_) {
      // No replay was allowed (max_runs 0): the failing run is the best schedule known, and
      // nothing says the body is nondeterministic.
      result.shrunk = result.original;
      result.outcome = failing;
      result.exhausted_budget = true;
      return result;
    }
    throw UsageError(
        "deja::sim::shrink: replaying the failing run's decisions did not fail the same way; does the body depend on "
        "something outside the simulator (the real clock, addresses, global state kept between runs)?");
  }
  s.shrink();
  result.shrunk = s.best_schedule_;
  result.outcome = std::move(*s.best_);
  result.runs = s.runs_;
  result.exhausted_budget = s.exhausted_;
  return result;
}

}  // namespace deja::sim
