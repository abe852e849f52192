// Chunk buffers: whole pages straight from mmap, returned with munmap.
//
// Why not mimalloc (the project's allocator of choice): Debian ships only a shared libmimalloc, built to
// override malloc. Linked into libmodelfetch.so it becomes the malloc of every process the shim is preloaded
// into — children that never touch the mount included — and its own start-up re-enters our open() hook.
// A chunk is 8 MiB by default, a size where general-purpose allocators call mmap anyway; page-aligned,
// zero-filled, returned to the kernel on eviction (RSS follows the budget, no fragmentation).
//
// MAP_POPULATE: a profile of a 2 GB load (docs/PERFORMANCE.md) showed the client's single receive thread
// spending 0.72 of its 1.23 CPU-s faulting in and zeroing fresh buffer pages inside curl's write callback.
// Populating at allocation moves that work to the thread that starts the fetch (usually a prefetch or fill
// thread) and does it in one batch instead of 2048 page faults per 8 MiB.
#pragma once

#include <sys/mman.h>

#include <cstddef>

namespace mf {

// `bytes` must be a multiple of the page size. nullptr when the kernel refuses.
inline std::byte* allocate_chunk_buffer(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
}

inline void free_chunk_buffer(std::byte* buffer, size_t bytes) {
  if (buffer) ::munmap(buffer, bytes);
}

}  // namespace mf
