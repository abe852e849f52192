// Chunk buffers: whole pages straight from mmap, returned with munmap.
//
// Why not mimalloc (the project's allocator of choice): Debian ships only a shared libmimalloc, built to
// override malloc. Linked into libmodelfetch.so it becomes the malloc of every process the shim is preloaded
// into — children that never touch the mount included — and its own start-up re-enters our open() hook.
// A chunk is 8 MiB by default, a size where general-purpose allocators call mmap anyway; page-aligned,
// zero-filled, returned to the kernel on eviction (RSS follows the budget, no fragmentation).
//
// Huge pages, then populated: a profile of a 512 MB load on the 2-core benchmark machines (docs/PERFORMANCE.md)
// showed the client's receive thread spending ~1 CPU-s in the memcpy of curl's write callback, into buffers
// already populated with MAP_POPULATE. The cost is per page table entry, not per byte: the first user access
// through each new 4 KiB PTE is slow in these (paravirtualised) guests, and a fault costs microseconds on any
// machine. Writing 512 MB into fresh 8 MiB buffers (tests/bench/page_costs, "buffers"; docs/PERFORMANCE.md
// "Page costs"): 4 KiB pages 2.74 s; MAP_POPULATE 1.40 s; MADV_HUGEPAGE 0.06 s; + MADV_POPULATE_WRITE 0.07 s.
// So a buffer of 2 MiB or more is placed on a 2 MiB boundary (over-reserve, trim both ends), marked
// MADV_HUGEPAGE (honoured when THP is "always" or "madvise", the usual defaults) and populated with
// MADV_POPULATE_WRITE (Linux 5.14+; on older kernels the write faults it in, as before).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace mf {

// `bytes` must be a multiple of the page size. nullptr when the kernel refuses.
inline std::byte* allocate_chunk_buffer(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14 uapi; older headers lack it, older kernels say EINVAL
#endif
  if (bytes < kHuge) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
  }
  void* raw = ::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHuge - 1) & ~(kHuge - 1);
  if (aligned > base) ::munmap(raw, aligned - base);
  if (const uintptr_t tail = base + kHuge - aligned; tail > 0)  // [aligned + bytes, base + bytes + kHuge)
    ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  auto* p = reinterpret_cast<void*>(aligned);
  ::madvise(p, bytes, MADV_HUGEPAGE);         // advice: failure (THP "never", no THP) changes nothing
  ::madvise(p, bytes, MADV_POPULATE_WRITE);  // advice too: without it, the first write faults pages in
  return static_cast<std::byte*>(p);
}

inline void free_chunk_buffer(std::byte* buffer, size_t bytes) {
  if (buffer) ::munmap(buffer, bytes);
}

}  // namespace mf
