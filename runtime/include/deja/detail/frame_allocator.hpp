// A recycling allocator for coroutine frames: per-thread free lists by size class, carved from
// large chunks, so that spawning and awaiting tasks pays neither malloc's time nor its per-block
// overhead on the hot path.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__)
#define DEJA_FRAME_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DEJA_FRAME_POOL 0
#endif
#endif
#ifndef DEJA_FRAME_POOL
// Under AddressSanitizer frames go straight to the system allocator, so that a use after free of a
// frame is caught instead of hidden by the pool.
#define DEJA_FRAME_POOL 1
#endif

namespace deja::detail {

// Blocks up to kMaxPooledSize bytes are pooled in 16-byte size classes; larger ones go to
// ::operator new. Pooled memory is kept for reuse, never returned to the system: the pool's size
// is the high-water mark of live frames (blocks freed by an exiting thread go to a shared list
// that other threads draw from).
inline constexpr std::size_t kFrameGranule = 16;
inline constexpr std::size_t kMaxPooledSize = 1024;
inline constexpr std::size_t kSizeClasses = kMaxPooledSize / kFrameGranule;
inline constexpr std::size_t kFrameChunkSize = std::size_t{256} << 10;
// A thread keeps at most this many free blocks of one class; past it, half go to the shared list.
// Without the bound, blocks allocated on one worker and freed on another would pile up on the
// second while the first kept carving new chunks: unbounded growth on a multi-thread runtime.
inline constexpr std::uint32_t kMaxCachedPerClass = 1024;
inline constexpr std::uint32_t kFrameSpillBatch = kMaxCachedPerClass / 2;

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible so that thread_local access needs no init guard on the hot path.
struct FrameCache {
  FreeBlock* free[kSizeClasses];
  std::uint32_t count[kSizeClasses];  // blocks in free[cls]
  std::byte* chunk_cursor;
  std::byte* chunk_end;
  bool active;  // set on first use; cleared when the thread's cache is handed back at exit
};

extern thread_local constinit FrameCache tls_frame_cache;

void* frame_allocate_slow(std::size_t size);
void frame_deallocate_slow(void* p, std::size_t size) noexcept;
void frame_spill(FrameCache& cache, std::size_t cls) noexcept;

inline std::size_t frame_size_class(std::size_t size) noexcept { return (size + kFrameGranule - 1) / kFrameGranule - 1; }

inline void* frame_allocate(std::size_t size) {
#if DEJA_FRAME_POOL
  if (size != 0 && size <= kMaxPooledSize) {
    FrameCache& cache = tls_frame_cache;
    const std::size_t cls = frame_size_class(size);
    if (FreeBlock* block = cache.free[cls]) {
      cache.free[cls] = block->next;
      --cache.count[cls];
      return block;
    }
  }
  return frame_allocate_slow(size);
#else
  return ::operator new(size);
#endif
}

inline void frame_deallocate(void* p, std::size_t size) noexcept {
#if DEJA_FRAME_POOL
  if (size != 0 && size <= kMaxPooledSize) {
    FrameCache& cache = tls_frame_cache;
    if (cache.active) {
      const std::size_t cls = frame_size_class(size);
      auto* block = static_cast<FreeBlock*>(p);
      block->next = cache.free[cls];
      cache.free[cls] = block;
      if (++cache.count[cls] > kMaxCachedPerClass) frame_spill(cache, cls);
      return;
    }
  }
  frame_deallocate_slow(p, size);
#else
  (void)size;
  ::operator delete(p);
#endif
}

}  // namespace deja::detail
