// Slow paths of the frame allocator and the per-thread cleanup of cached blocks.
#include "deja/detail/frame_allocator.hpp"

#include <new>

namespace deja::detail {

thread_local constinit FrameCache tls_frame_cache{};

namespace {

// Set once this thread's cache has been released at thread exit: from then on nothing is cached.
thread_local constinit bool tls_cache_released = false;

// Rounded up to the size class so that a block can be cached under its class whatever size it
// is later freed with.
std::size_t rounded(std::size_t size) noexcept {
  return size <= kMaxPooledSize && size != 0 ? (frame_size_class(size) + 1) * kFrameGranule : size;
}

struct CacheReleaser {
  ~CacheReleaser() {
    FrameCache& cache = tls_frame_cache;
    for (std::size_t cls = 0; cls < kSizeClasses; ++cls) {
      while (FreeBlock* block = cache.free[cls]) {
        cache.free[cls] = block->next;
        ::operator delete(block);
      }
    }
    cache.cached_bytes = 0;
    // Blocks freed by destructors that run after this one go to the system.
    cache.cleanup_registered = false;
    tls_cache_released = true;
  }
};

void register_cleanup() {
  if (tls_cache_released) return;
  thread_local CacheReleaser releaser;
  (void)releaser;
  tls_frame_cache.cleanup_registered = true;
}

}  // namespace

void* frame_allocate_slow(std::size_t size) {
  if (!tls_frame_cache.cleanup_registered) register_cleanup();
  return ::operator new(rounded(size));
}

void frame_deallocate_slow(void* p, std::size_t /*size*/) noexcept { ::operator delete(p); }

}  // namespace deja::detail
