// A recycling allocator for coroutine frames and task cells: per-thread free lists by size class,
// so spawning and awaiting tasks does not pay for malloc on the hot path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace deja::detail {

// Blocks up to kMaxPooledSize bytes are recycled in 16-byte size classes; larger ones go straight
// to ::operator new. Each thread caches at most kMaxCachedBytes of free blocks; past that, freed
// blocks go back to the system, so the cache is bounded whatever the workload does.
inline constexpr std::size_t kFrameGranule = 16;
inline constexpr std::size_t kMaxPooledSize = 1024;
inline constexpr std::size_t kSizeClasses = kMaxPooledSize / kFrameGranule;
inline constexpr std::size_t kMaxCachedBytes = std::size_t{64} << 20;

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible so that thread_local access needs no init guard on the hot path; the
// blocks a thread still caches are returned when it exits (see frame_allocator.cpp).
struct FrameCache {
  FreeBlock* free[kSizeClasses];
  std::size_t cached_bytes;
  bool cleanup_registered;
};

extern thread_local constinit FrameCache tls_frame_cache;

void* frame_allocate_slow(std::size_t size);
void frame_deallocate_slow(void* p, std::size_t size) noexcept;

inline std::size_t frame_size_class(std::size_t size) noexcept {
  return (size + kFrameGranule - 1) / kFrameGranule - 1;
}

inline void* frame_allocate(std::size_t size) {
  if (size != 0 && size <= kMaxPooledSize) {
    FrameCache& cache = tls_frame_cache;
    const std::size_t cls = frame_size_class(size);
    if (FreeBlock* block = cache.free[cls]) {
      cache.free[cls] = block->next;
      cache.cached_bytes -= (cls + 1) * kFrameGranule;
      return block;
    }
  }
  return frame_allocate_slow(size);
}

inline void frame_deallocate(void* p, std::size_t size) noexcept {
  if (size != 0 && size <= kMaxPooledSize) {
    FrameCache& cache = tls_frame_cache;
    const std::size_t cls = frame_size_class(size);
    const std::size_t bytes = (cls + 1) * kFrameGranule;
    if (cache.cleanup_registered && cache.cached_bytes + bytes <= kMaxCachedBytes) {
      auto* block = static_cast<FreeBlock*>(p);
      block->next = cache.free[cls];
      cache.free[cls] = block;
      cache.cached_bytes += bytes;
      return;
    }
  }
  frame_deallocate_slow(p, size);
}

}  // namespace deja::detail
