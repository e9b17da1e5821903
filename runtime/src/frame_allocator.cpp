// Slow paths of the frame allocator: carving chunks, and the shared list that collects the free
// blocks of exiting threads.
#include "deja/detail/frame_allocator.hpp"

#include <atomic>
#include <mutex>
#include <new>
#include <vector>

namespace deja::detail {

thread_local constinit FrameCache tls_frame_cache{};

namespace {

// Chunks stay reachable from here (so leak checkers see them as in use) for the process lifetime.
struct SharedPool {
  std::mutex lock;
  std::vector<void*> chunks;
  FreeBlock* free[kSizeClasses] = {};
  std::atomic<bool> has_free{false};  // lets the carving path skip the lock when nothing is shared
};

SharedPool& shared_pool() {
  static SharedPool* pool = new SharedPool();  // never destroyed: frames may be freed at exit
  return *pool;
}

thread_local constinit bool tls_cache_released = false;

struct CacheReleaser {
  ~CacheReleaser() {
    FrameCache& cache = tls_frame_cache;
    SharedPool& pool = shared_pool();
    std::lock_guard guard(pool.lock);
    for (std::size_t cls = 0; cls < kSizeClasses; ++cls) {
      while (FreeBlock* block = cache.free[cls]) {
        cache.free[cls] = block->next;
        block->next = pool.free[cls];
        pool.free[cls] = block;
        pool.has_free.store(true, std::memory_order_release);
      }
      cache.count[cls] = 0;
    }
    cache.active = false;
    tls_cache_released = true;
  }
};

bool ensure_active() {
  FrameCache& cache = tls_frame_cache;
  if (cache.active) return true;
  if (tls_cache_released) return false;
  thread_local CacheReleaser releaser;
  (void)releaser;
  cache.active = true;
  return true;
}

}  // namespace

void* frame_allocate_slow(std::size_t size) {
  if (size == 0 || size > kMaxPooledSize) return ::operator new(size);
  const std::size_t cls = frame_size_class(size);
  const std::size_t bytes = (cls + 1) * kFrameGranule;
  SharedPool& pool = shared_pool();
  if (!ensure_active()) {
    std::lock_guard guard(pool.lock);
    if (FreeBlock* block = pool.free[cls]) {
      pool.free[cls] = block->next;
      return block;
    }
    void* chunk = ::operator new(bytes);
    pool.chunks.push_back(chunk);
    return chunk;
  }
  FrameCache& cache = tls_frame_cache;
  if (pool.has_free.load(std::memory_order_acquire)) {
    // Take a batch, so that a thread that allocates what another frees comes here rarely.
    std::lock_guard guard(pool.lock);
    if (FreeBlock* block = pool.free[cls]) {
      pool.free[cls] = block->next;
      for (std::uint32_t i = 0; i < kFrameSpillBatch && pool.free[cls] != nullptr; ++i) {
        FreeBlock* b = pool.free[cls];
        pool.free[cls] = b->next;
        b->next = cache.free[cls];
        cache.free[cls] = b;
        ++cache.count[cls];
      }
      return block;
    }
  }
  if (cache.chunk_end - cache.chunk_cursor < static_cast<std::ptrdiff_t>(bytes)) {
    std::lock_guard guard(pool.lock);
    {
      // The tail of the old chunk is abandoned (less than one block of this class).
      auto* chunk = static_cast<std::byte*>(::operator new(kFrameChunkSize));
      pool.chunks.push_back(chunk);
      cache.chunk_cursor = chunk;
      cache.chunk_end = chunk + kFrameChunkSize;
    }
  }
  void* block = cache.chunk_cursor;
  cache.chunk_cursor += bytes;
  return block;
}

void frame_spill(FrameCache& cache, std::size_t cls) noexcept {
  FreeBlock* first = cache.free[cls];
  FreeBlock* last = first;
  for (std::uint32_t i = 1; i < kFrameSpillBatch; ++i) last = last->next;
  cache.free[cls] = last->next;
  cache.count[cls] -= kFrameSpillBatch;
  SharedPool& pool = shared_pool();
  std::lock_guard guard(pool.lock);
  last->next = pool.free[cls];
  pool.free[cls] = first;
  pool.has_free.store(true, std::memory_order_release);
}

void frame_deallocate_slow(void* p, std::size_t size) noexcept {
  if (size == 0 || size > kMaxPooledSize) {
    ::operator delete(p);
    return;
  }
  // A pooled block freed by a thread without an active cache (exiting): share it.
  SharedPool& pool = shared_pool();
  std::lock_guard guard(pool.lock);
  auto* block = static_cast<FreeBlock*>(p);
  const std::size_t cls = frame_size_class(size);
  block->next = pool.free[cls];
  pool.free[cls] = block;
  pool.has_free.store(true, std::memory_order_release);
}

}  // namespace deja::detail
