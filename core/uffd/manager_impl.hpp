// Internals of MappingManager shared by mapping_manager.cpp (the calls the shim makes), fault_loop.cpp
// (the fault thread and the fill helpers) and filler.cpp (the fill workers: parked faults, the fill window,
// order hints). See DESIGN.md "Chunk cache and mappings".
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/uffd/page_bitmap.hpp"
#include "core/uffd/uffd.hpp"
#include "core/util/own_fds.hpp"
#include "core/util/lock.hpp"
#include "core/vfs/mappings.hpp"

namespace mf {

// Constants (why: DESIGN.md and the module comment of fault_loop.cpp).
inline constexpr uint64_t kFaultBlock = 2ull << 20;  // bytes placed per fault: FACTS.md 2 MiB = 1.3 GB/s
inline constexpr uint64_t kLookahead = 16;           // chunks the filler keeps in flight ahead of itself
inline constexpr int kFaultFetchAttempts = 3;        // a fault retries a failed chunk before SIGBUS
inline constexpr size_t kMsgBatch = 64;              // uffd messages read per read(2)
inline constexpr int kFillWorkers = 3;               // threads serving parked faults and proactive fill
inline constexpr int kCopyAttempts = 3;           // a placement that fails (not EEXIST) is retried before SIGBUS
inline constexpr int kForkFillPasses = 8;         // unlocked fill passes before fork fills under the lock
inline constexpr unsigned kWindowMaxShift = 40;      // the fill window doubles per fault up to this shift

// One managed mapping: [start, start + pages*page) holds object bytes from obj_offset on. Pages from
// data_pages on lie wholly past EOF and are covered by a SIGBUS memfd mapping (never registered).
struct Region {
  Region(uintptr_t s, uint64_t n, uint64_t off, uint64_t data, int p, std::shared_ptr<const RemoteObject> o)
      : start(s), pages(n), obj_offset(off), data_pages(data), prot(p), object(std::move(o)), filled(n) {
    filled.set_range(data, n);  // nothing to fill past EOF
  }
  const uintptr_t start;
  const uint64_t pages;
  const uint64_t obj_offset;
  const uint64_t data_pages;
  const int prot;
  const std::shared_ptr<const RemoteObject> object;
  PageBitmap filled;
  // Shared while pages are copied in; exclusive while the range changes (munmap, madvise, mremap, fail).
  // Copies check `dead` under it, so no copy lands in an address range after it stopped being this region.
  // Never held across a fetch: a chunk is got first, then the lock is taken to place it.
  SharedMutex mu{LockRank::region};
  bool dead = false;
  // Fill window (filler.cpp): nothing is filled proactively before the first fault; each fault sets
  // where the filler continues and how far ahead of that fault it may go (a window doubling per fault).
  std::atomic<uint32_t> nfaults{0};  // faults (blocks) and fill_for_kernel calls seen in this region
  std::atomic<uint64_t> jump{0};     // page+1 where the filler continues (offset order)
  std::atomic<uint64_t> limit{0};    // the filler fills pages below this one (offset order)
  std::atomic<uint64_t> hjump{0};    // hint position+1 where the filler continues (hint order)
  std::atomic<uint64_t> hlimit{0};   // the filler fills hint positions below this one
  std::atomic<bool> wrap{false};     // the window covers the whole mapping: fill all of it, wrapping around
  std::atomic<uint64_t> epoch{0};    // bumped by every fault: a region with new work is queued again
  std::atomic<bool> queued{false};   // in Workers::queue (or being stepped by a worker)
  std::atomic<uint64_t> cursor{0};   // written by the one worker stepping the region; read by splits
  uint64_t hcursor = 0;              // filler only
  uint64_t sweep = 0;                // filler only: next chunk the background sweep requests (wrap only)
  bool fill_gave_up = false;         // filler only: a chunk failed; faults still retry it
  // An eager mapping (map_eager), tracked only so that MADV_DONTNEED restores its bytes instead of leaving
  // zeros: filled from the start, never registered, never queued. Set before the region is published.
  bool eager = false;
};

// A chunk order given by a planner (MappingManager::hint_order): order[i] is filled i-th.
struct FillHint {
  std::vector<uint64_t> order;
  std::unordered_map<uint64_t, uint64_t> pos;  // chunk -> first position in order
};

// A batch of faults inside one block (fault_loop.cpp).
struct FaultJob {
  std::shared_ptr<Region> region;
  uint64_t chunk = 0;
  uint64_t b0 = 0, b1 = 0;      // block pages to place
  std::vector<uint64_t> pages;  // faulting pages inside the block
  uint64_t t0 = 0;              // when the fault thread read the messages (steady clock, ns)
};

// Threads and fds that do not survive fork: allocated on first map(), leaked in a fork child.
struct Workers {
  std::thread fault_thread;
  std::vector<std::thread> fill_threads;  // kFillWorkers
  // eventfd: the fault thread polls it next to the uffd; written to stop the thread (stop set first) and to
  // make it re-read the fds' numbers after one moved (core/util/own_fds.hpp relocate_own_fd)
  OwnFd quit_fd;
  std::atomic<bool> stop{false};
  Mutex mu{LockRank::fill_workers};  // guards parked, queue, fill_busy and quit
  CondVar cv;
  std::deque<FaultJob> parked;              // faults whose chunk was not resident: served first
  std::deque<std::weak_ptr<Region>> queue;  // regions with fill work (round robin, one chunk per step)
  int fill_busy = 0;                        // workers in a fill step (at most kFillWorkers - 1)
  bool quit = false;
};

uint64_t now_ns();  // steady clock
bool thp_available();  // transparent huge pages are "always" or "madvise" (fault_loop.cpp)

struct MappingManager::Impl {
  Impl(ChunkCache& c, UffdSetting s, MapSyscalls y) : cache(c), setting(s), sys(y) {}

  ChunkCache& cache;
  const UffdSetting setting;
  const MapSyscalls sys;
  uint64_t page = 4096;
  MapMode mode = MapMode::eager;
  OwnFd uffd;  // relocatable (own_fds.hpp): read with get() at each use
  bool user_mode_only = false;
  bool thp = false;         // transparent huge pages "always" or "madvise" (read once, in decide_mode)
  bool huge_moves = false;  // UFFDIO_MOVE of huge pages for writable regions (fault_loop.cpp)
  bool allow_huge = true;   // MODELFETCH_HUGE_PAGES
  OwnFd sigbus_fd;  // an empty memfd: a MAP_SHARED mapping of it raises SIGBUS on access (relocatable)
  // The fault thread's view of the fds' numbers. relocate_own_fd calls fds_moved (from the program's thread),
  // which bumps fd_gen, wakes the thread and waits (bounded) until fd_seen reaches it: the thread has re-read
  // the numbers and polls the moved fds, not the old numbers that the program's dup2 is about to take.
  std::atomic<Workers*> live_workers{nullptr};
  std::atomic<uint64_t> fd_gen{0}, fd_seen{0};
  static void fds_moved(void* self);
  // mmap(at, len, prot, MAP_SHARED | MAP_FIXED) of the SIGBUS memfd, redone with the new number if it moved
  // during the call (the old number may have been the program's file by then).
  void* map_sigbus(void* at, uint64_t len, int prot);

  // Guards regions, workers and sigbus_fd. Shared for lookups (overlaps, fill_for_kernel, the fault
  // thread), exclusive to change the map (map, munmap, madvise, mremap, fork). Never held across a fetch.
  SharedMutex mu{LockRank::mappings};
  std::map<uintptr_t, std::shared_ptr<Region>> regions;
  // Published with every change of regions (under mu exclusive): overlaps() answers false without the lock
  // when there is no region or the range lies outside [lo_addr, hi_addr).
  std::atomic<size_t> region_count{0};
  std::atomic<uintptr_t> lo_addr{0}, hi_addr{0};
  // The userfaultfd stopped working (the fault thread could not poll or read it): every missing page was
  // failed (SIGBUS), and new mappings are filled eagerly.
  std::atomic<bool> broken{false};
  FillPolicy fill_policy = FillPolicy::readahead;
  FaultObserver observer;
  Workers* workers = nullptr;
  Mutex hint_mu{LockRank::fill_hints};  // guards hints
  std::unordered_map<uint32_t, std::shared_ptr<const FillHint>> hints;  // by RemoteObject id

  std::atomic<uint64_t> faults{0}, fault_wait_ns{0}, bytes_mapped{0}, bytes_filled{0}, fault_bytes{0},
      sigbus_pages{0}, eager_maps{0}, parked_faults{0}, copy_ns{0}, fill_wait_ns{0}, bytes_moved{0};

  // mapping_manager.cpp
  void decide_mode();
  Result<void> ensure_started();  // caller holds mu
  Result<void*> map_uffd(std::shared_ptr<const RemoteObject> obj, void* addr, uint64_t len, int prot, int flags,
                         uint64_t offset);
  Result<void*> map_eager(std::shared_ptr<const RemoteObject> obj, void* addr, uint64_t len, int prot, int flags,
                          uint64_t offset);
  std::vector<std::shared_ptr<Region>> overlapping(uintptr_t a, uint64_t len);  // caller holds mu
  void forget(const std::shared_ptr<Region>& r);                                // caller holds mu
  void publish();  // caller holds mu exclusive: region_count, lo_addr, hi_addr from regions
  void split_around(const std::shared_ptr<Region>& r, uintptr_t a, uint64_t len);  // caller holds mu
  void enqueue(const std::shared_ptr<Region>& r);

  // fault_loop.cpp
  void fault_loop();
  // The userfaultfd failed for good (fault_loop): logs, sets `broken`, and fails every missing page of every
  // registered region (SIGBUS), waking the threads that wait on them.
  void uffd_failed(const char* what, int err);
  std::vector<FaultJob> plan_faults(const std::vector<uintptr_t>& addrs);
  void handle_faults(const std::vector<uintptr_t>& addrs, uint64_t t0);
  void resolve(FaultJob& job, const ChunkRef& ref);

  // filler.cpp
  void worker_loop();
  void serve_parked(FaultJob& job);
  // A fault (or fill_for_kernel) on pages [b0, b1) of r: moves the filler there, widens the window,
  // queues the region and prefetches the chunks ahead of the fault.
  void note_fault(const std::shared_ptr<Region>& r, uint64_t b0, uint64_t b1);
  bool fill_step(Region& r);  // fills one chunk; false when the region has no work inside its window
  void sweep(Region& r);      // background requests for a whole-file (wrap) region
  bool next_target(Region& r, const FillHint* hint, uint64_t* k, uint64_t* p0, uint64_t* p1, uint64_t* hpos);
  void prefetch_after(const Region& r, const FillHint* hint, uint64_t k, uint64_t hpos, uint64_t n);
  std::shared_ptr<const FillHint> hint_for(uint32_t id);
  uint64_t window_pages(uint32_t nfaults) const;
  // Copies pages [p0, p1) of r that are not yet filled, all inside chunk `ref`. Takes r.mu shared.
  // False when the region is dead or its range is gone.
  // *err (if given) is the errno when a placement failed (0 when the region died or the range is gone).
  bool copy_from_chunk(Region& r, const ChunkRef& ref, uint64_t p0, uint64_t p1, bool touch = false,
                       int* err = nullptr);
  // The filler's alternative to copy_from_chunk for a whole chunk k (fault_loop.cpp, "Huge pages by move"):
  // takes the chunk's buffer out of the cache and moves its huge pages into r, copying the rest.
  // 1: every missing page of the chunk in r placed; 0: not done (not eligible, or the chunk is shared), copy
  // instead; -1: the region died or a placement failed (as copy_from_chunk's false).
  int move_chunk(Region& r, const ChunkRef& ref, uint64_t k);
  // After placing pages [a, b) of r (copy or move, result res; r.mu held): false, with a warning for a
  // failure, when they were not placed; else marks them filled, counts them, and with `touch` reads one byte
  // of each (the pre-touch).
  bool placed(Region& r, uint64_t a, uint64_t b, const uffd::CopyResult& res, bool touch, int* err = nullptr);
  void touch_placed(uintptr_t at, uint64_t pages) const;
  // Wakes the threads faulting on these pages of r (their access is retried).
  void wake_pages(const Region& r, const std::vector<uint64_t>& pages) const;
  // Replaces pages [p0, p1) of r by the SIGBUS mapping (or unmaps them if that fails). Caller holds r.mu.
  void install_sigbus(Region& r, uint64_t p0, uint64_t p1);
  // Whether all these pages of r are present (mincore). The caller holds r.mu (shared), so no move_chunk is
  // half done: a fault queued before a move placed its page needs only a wake, not the chunk fetched again.
  bool pages_present(Region& r, const std::vector<uint64_t>& pages);
  // mapping_manager.cpp: a 2 MiB-aligned PROT_NONE reservation of len bytes to mmap MAP_FIXED over, or
  // nullptr (len under 2 MiB, or no address space).
  void* reserve_huge_aligned(uint64_t len);
  // map_eager's zero-copy path for one whole chunk (mapping_manager.cpp): true when the chunk's bytes are now
  // at dst (moved with mremap, or copied from the taken buffer), false when the caller must copy from ref.
  bool move_whole_chunk_eager(const ChunkRef& ref, uint64_t k, std::byte* dst, uint64_t o, uint64_t n, int prot);
  // Eager region pages [p0, p1): the object's bytes copied over them again (MADV_DONTNEED on an eager
  // mapping; with no userfaultfd a dropped page would read back as zeros). Called with no lock held: each
  // chunk is fetched first, then copied under r.mu exclusive (stopping if the region died meanwhile). A
  // chunk that cannot be fetched turns its pages into SIGBUS pages. 0 or an errno.
  int restore_eager(Region& r, uint64_t p0, uint64_t p1);
  // Fills pages [p0, p1) synchronously (fill_for_kernel, fork, mremap). On a failed chunk with
  // sigbus_on_failure, the chunk's pages get the SIGBUS mapping and the error is still returned.
  Result<void> fill_range(Region& r, uint64_t p0, uint64_t p1, bool sigbus_on_failure);
  // Replaces pages [p0, p1) with the SIGBUS mapping and wakes their waiters. Takes r.mu exclusive.
  void fail_pages(Region& r, uint64_t p0, uint64_t p1, const Error& why);
  // Replaces the pages of [p0, p1) that are still missing with the SIGBUS mapping (under r.mu exclusive) and
  // wakes their waiters; pages already placed keep their bytes. Returns how many pages it failed.
  uint64_t fail_missing(Region& r, uint64_t p0, uint64_t p1);
  // Pages [c0, c1) of r that lie in chunk k (clipped to the data pages).
  void chunk_pages(const Region& r, uint64_t k, uint64_t* c0, uint64_t* c1) const;
  uint64_t chunk_of(const Region& r, uint64_t p) const {
    return (r.obj_offset + p * page) / cache.config().chunk_size;
  }
  uint64_t lookahead() const;
};

}  // namespace mf
