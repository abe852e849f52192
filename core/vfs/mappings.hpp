// MappingManager: mmap of a remote object. Implemented in core/uffd/ (mapping_manager.cpp: modes, calls
// on managed memory, fork; fault_loop.cpp: the fault thread and the filler), built into mf_uffd_lib. In uffd mode a mapping is private anonymous memory registered with userfaultfd
// (UFFD_USER_MODE_ONLY unless privileged) and filled with UFFDIO_COPY from the ChunkCache, in large batches
// and ahead of the reader once it has faulted (filler.cpp); in eager mode the whole range is filled with parallel reads before mmap returns.
// The shim calls these from its hooks; everything here is also testable without LD_PRELOAD.
#pragma once

#include <sys/mman.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/cache/chunk_cache.hpp"
#include "core/util/result.hpp"

namespace mf {

enum class MapMode { uffd, eager };
enum class UffdSetting { automatic, on, off };  // MODELFETCH_UFFD=auto|on|off
// readahead: the lazy fill window, cache lookahead and sweep (the default). none: a fault gets its own
// block and nothing else is fetched or copied ahead (MODELFETCH_PREFETCH=none, the unoptimised baseline).
// Eager mode fills whole mappings at map() whatever the policy (it cannot be lazy).
enum class FillPolicy { readahead, none };
// Called on the fault thread for every fault block (and fill_for_kernel range): the object and the chunk
// index it falls in. Must not block.
using FaultObserver = std::function<void(const RemoteObject& object, uint64_t chunk)>;

struct MappingStats {
  uint64_t uffd_faults = 0;    // fault messages resolved
  // Total time faulting threads waited, approximated per message as the time from reading it off the
  // uffd to the end of the batch that resolved it (the kernel's wake-up latency before we read it,
  // ~85 us here, is not included).
  uint64_t fault_wait_ns = 0;
  uint64_t bytes_mapped = 0;   // lengths passed to successful map() calls (both modes)
  uint64_t bytes_filled = 0;   // bytes placed into mappings (UFFDIO_COPY, or memcpy in eager mode)
  uint64_t fault_bytes = 0;    // bytes of the blocks the fault thread placed for faults
  uint64_t sigbus_pages = 0;   // pages replaced by a SIGBUS mapping because their chunk failed for good
  uint64_t eager_maps = 0;     // mappings filled eagerly
  uint64_t parked_faults = 0;  // fault blocks whose chunk was not resident (served by a fill worker)
  uint64_t copy_ns = 0;        // time spent placing pages (UFFDIO_COPY/MOVE), all threads together
  uint64_t bytes_moved = 0;    // of bytes_filled, moved in whole (UFFDIO_MOVE; mremap in eager mode)
  uint64_t fill_wait_ns = 0;   // time the proactive filler waited for chunks (network not overlapped)
};

// Real libc entry points the manager must use (the shim passes its real_* table; tests pass libc's).
struct MapSyscalls {
  void* (*mmap)(void*, size_t, int, int, int, off_t);
  int (*munmap)(void*, size_t);
  int (*madvise)(void*, size_t, int);
  void* (*mremap)(void*, size_t, size_t, int, ...);

  // libc's own functions: for tests and tools that run without the shim.
  static MapSyscalls libc() { return MapSyscalls{::mmap, ::munmap, ::madvise, ::mremap}; }
};

class MappingManager {
 public:
  // Decides the mode: uffd when the setting allows it and userfaultfd works, eager otherwise (with one
  // log line saying which and why). Starts no thread until the first map().
  MappingManager(ChunkCache& cache, UffdSetting setting, MapSyscalls sys);
  ~MappingManager();

  MapMode mode() const;

  // mmap(addr, length, prot, flags, -, offset) of `object`. Returns the address, or an Error whose code
  // the hook puts in errno (EINVAL, ENOMEM, EIO, EACCES...). MAP_PRIVATE (any prot) and read-only MAP_SHARED.
  Result<void*> map(std::shared_ptr<const RemoteObject> object, void* addr, size_t length, int prot, int flags,
                    uint64_t offset);

  // True when [addr, addr+length) overlaps a managed mapping. Cheap (one atomic load) when none exist, two
  // more when the range lies outside every mapping's span; otherwise a shared lock (never held long).
  bool overlaps(const void* addr, size_t length) const;

  // Hooks for calls on memory that may be managed. Each returns false when the range holds no managed
  // mapping (the hook then calls libc itself), or true with *rc/*result set to what the call returns.
  bool munmap(void* addr, size_t length, int* rc);
  bool madvise(void* addr, size_t length, int advice, int* rc);
  bool mremap(void* old_addr, size_t old_size, size_t new_size, int flags, void* new_addr, void** result);

  // Makes [addr, addr+length) resident before the kernel reads it (write/send from a mapping would EFAULT
  // under UFFD_USER_MODE_ONLY). Returns an error if the fill failed.
  Result<void> fill_for_kernel(const void* addr, size_t length);

  // Fork. Every registered mapping must be filled completely before fork (the child's copy of a registered
  // private mapping is not registered: its missing pages would read as zeros). fill_for_fork() does that
  // holding no lock (call it before taking any lock); before_fork() then takes the manager's locks (held
  // until after_fork_*: no mapping appears or drops pages before the fork) and fills what a mapping made
  // meanwhile still lacks (usually nothing; it calls fill_for_fork() first itself). Order with the cache:
  // prepare = before_fork() then ChunkCache::before_fork(); parent/child = the cache's first. The child
  // closes the inherited uffd, forgets its regions and opens a new uffd on its next map().
  void fill_for_fork();
  void before_fork();
  void after_fork_parent();
  void after_fork_child();

  // Planner hook: the order (chunk indices of `object`, ChunkCache::config().chunk_size each) in which
  // the program will read it, e.g. from a safetensors header and the loader's tensor order. Once a mapping
  // of the object has faulted, the filler fills and prefetches its chunks in this order from the latest
  // fault's chunk on, then the rest in offset order. Duplicates and indices past the end are dropped; an
  // empty vector removes the hint. Untouched mappings stay untouched.
  void hint_order(const RemoteObject& object, std::vector<uint64_t> chunk_indices);

  // Set once, before the first map() (not synchronised with the fault thread).
  void set_fill_policy(FillPolicy policy);
  // false: pages are placed one by one (UFFDIO_COPY) even where whole huge pages could be moved in.
  void set_huge_pages(bool allowed);
  // Whether read-write mappings get whole huge pages moved in (UFFDIO_MOVE offered, THP on, not turned off).
  // Decided with the mode (at the first map()).
  bool moves_huge_pages() const;
  void set_fault_observer(FaultObserver observer);

  MappingStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mf
