// MappingManager: the calls the shim makes for mmap of a remote object and for calls on such memory.
//
// Modes. uffd: a mapping is private anonymous memory with the requested prot, registered with userfaultfd
// in MISSING mode; bytes enter it only through UFFDIO_COPY from cache chunks (fault_loop.cpp). Copy-on-write
// comes free: the app's writes stay in its private pages. A read-only MAP_SHARED mapping is served the same
// way (nobody can observe the difference for a file that never changes). eager: the anonymous mapping is
// filled with memcpy before map() returns (uffd disabled or unavailable: seccomp EPERM, ENOSYS); it is then
// ordinary memory the manager forgets about. Eager needs memory for the whole range up front, so a mapping
// larger than MemAvailable fails with ENOMEM and a log line instead of inviting the OOM killer.
//
// Past EOF. As with a real file: the bytes of the last page past EOF read as zeros, and pages wholly past
// EOF raise SIGBUS (they are a MAP_SHARED mapping of an empty memfd, never registered).
//
// Calls on managed memory. munmap: the real munmap, then the region is split around the hole (the
// remaining pieces keep their registration, the kernel splits the VMA). madvise(MADV_DONTNEED/FREE/REMOVE):
// the real call, then the pages' bits are cleared; the next access faults and is refilled (eager regions:
// the bytes are copied back after the locks are released). mremap: the region is filled completely (no lock
// held), then, under the lock and checked still complete, unregistered and forgotten, and the real mremap
// runs (the result is plain memory with the right bytes; growing it gives zero pages, not file bytes —
// nobody grows a model mapping). Each takes the region's lock exclusively, so no UFFDIO_COPY is in progress
// on it and none starts after. No lock of the manager is held while a chunk is fetched (docs/DESIGN.md "Locks").
//
// Fork. Without UFFD_FEATURE_EVENT_FORK the child's copy of a registered VMA is unregistered and its
// missing pages would read as zeros; that feature needs CAP_SYS_PTRACE (kernel >= 5.11, verified here:
// tests/unit/uffd "EVENT_FORK needs privilege"), which an unprivileged process lacks. So before_fork fills
// every mapping completely (without a lock, then checked under the lock kept through fork); the child closes the inherited
// uffd (it belongs to the parent's mm), forgets the regions (its copies are plain, filled memory) and
// opens a new uffd on its next map().
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "core/cache/chunk_buffer.hpp"
#include "core/uffd/manager_impl.hpp"
#include "core/uffd/uffd.hpp"
#include "core/util/checked.hpp"
#include "core/util/log.hpp"
#include "core/util/own_fds.hpp"
#include "core/util/thread.hpp"

namespace mf {
namespace {

// MemAvailable from /proc/meminfo in bytes, 0 when unknown.
uint64_t mem_available() {
  FILE* f = std::fopen("/proc/meminfo", "re");
  if (!f) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
  std::fclose(f);
  return kib * 1024;
}

uint64_t data_pages_of(const RemoteObject& o, uint64_t offset, uint64_t pages, uint64_t page) {
  if (offset >= o.size) return 0;
  return std::min(pages, (o.size - offset + page - 1) / page);
}

// A piece of r starting at r's page q keeps r's fill window (a region never faulted stays lazy).
void inherit_window(const Region& r, Region& piece, uint64_t q) {
  piece.nfaults.store(r.nfaults.load());
  piece.wrap.store(r.wrap.load());
  const uint64_t lim = r.limit.load();
  piece.limit.store(std::min(piece.data_pages, lim > q ? lim - q : 0));
  const uint64_t c = r.cursor.load(), cur = c > q ? c - q : 0;
  piece.jump.store(std::min(piece.data_pages, cur) + 1);
}

void copy_bits(const PageBitmap& src, uint64_t s0, uint64_t s1, PageBitmap& dst, uint64_t d0) {
  for (uint64_t p = s0; p < s1;) {
    const uint64_t a = src.find(p, s1, true);
    if (a == s1) break;
    const uint64_t b = src.find(a, s1, false);
    dst.set_range(d0 + (a - s0), d0 + (b - s0));
    p = b;
  }
}

}  // namespace

void MappingManager::Impl::decide_mode() {
  page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  thp = thp_available();
  if (setting == UffdSetting::off) {
    MF_INFO("mappings: eager mode (MODELFETCH_UFFD=off): mmap fills the whole range before returning");
    return;
  }
  auto h = uffd::open_uffd();
  if (!h) {
    MF_LOG(setting == UffdSetting::on ? LogLevel::warn : LogLevel::info,
           "mappings: eager mode: userfaultfd is unavailable (%s); mmap fills the whole range before returning",
           h.error().message.c_str());
    return;
  }
  mode = MapMode::uffd;
  uffd = hold_own_fd(h->fd, &Impl::fds_moved, this);  // core/util/own_fds.hpp: out of the program's reach
  user_mode_only = h->user_mode_only;
  huge_moves = allow_huge && h->can_move && thp;
  MF_INFO("mappings: userfaultfd mode via %s; %s", h->how.c_str(),
          huge_moves ? "writable mappings get whole huge pages (UFFDIO_MOVE)" : "pages placed by UFFDIO_COPY");
}

Result<void> MappingManager::Impl::ensure_started() {
  if (workers) return {};
  if (!sigbus_fd.open()) sigbus_fd = hold_own_fd(::memfd_create("modelfetch-sigbus", MFD_CLOEXEC));
  if (!sigbus_fd.open()) return make_error(errno, std::string("memfd_create: ") + std::strerror(errno));
  if (!uffd.open()) {  // a fork child: the parent's uffd was closed
    auto h = uffd::open_uffd();
    if (!h) return h.error();
    uffd = hold_own_fd(h->fd, &Impl::fds_moved, this);  // core/util/own_fds.hpp: out of the program's reach
    user_mode_only = h->user_mode_only;
    huge_moves = allow_huge && h->can_move && thp;
  }
  auto* w = new Workers;
  w->quit_fd = hold_own_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), &Impl::fds_moved, this);
  if (!w->quit_fd.open()) {
    delete w;
    return make_error(errno, std::string("eventfd: ") + std::strerror(errno));
  }
  workers = w;
  live_workers.store(w, std::memory_order_release);
  // Our threads take no signals meant for the app (start_internal_thread blocks them all).
  w->fault_thread = start_internal_thread([this] { fault_loop(); });
  for (int i = 0; i < kFillWorkers; ++i) w->fill_threads.push_back(start_internal_thread([this] { worker_loop(); }));
  return {};
}

std::vector<std::shared_ptr<Region>> MappingManager::Impl::overlapping(uintptr_t a, uint64_t len) {
  std::vector<std::shared_ptr<Region>> out;
  auto it = regions.upper_bound(a);
  if (it != regions.begin()) --it;
  for (; it != regions.end() && it->first < a + len; ++it)
    if (it->first + it->second->pages * page > a) out.push_back(it->second);
  return out;
}

void MappingManager::Impl::forget(const std::shared_ptr<Region>& r) {
  r->dead = true;
  regions.erase(r->start);
  publish();
}

void MappingManager::Impl::publish() {
  if (regions.empty()) {
    lo_addr.store(0, std::memory_order_relaxed);
    hi_addr.store(0, std::memory_order_relaxed);
  } else {
    // Regions never overlap: the last by start ends last.
    const auto& last = *regions.rbegin();
    lo_addr.store(regions.begin()->first, std::memory_order_relaxed);
    hi_addr.store(last.first + last.second->pages * page, std::memory_order_relaxed);
  }
  region_count.store(regions.size(), std::memory_order_release);
}

void MappingManager::Impl::split_around(const std::shared_ptr<Region>& r, uintptr_t a, uint64_t len) {
  const uintptr_t end = r->start + r->pages * page;
  const uintptr_t lo = std::max(a, r->start), hi = std::min<uintptr_t>(a + len, end);
  forget(r);
  if (lo > r->start) {
    const uint64_t n = (lo - r->start) / page;
    auto left = std::make_shared<Region>(r->start, n, r->obj_offset, std::min(r->data_pages, n), r->prot, r->object);
    left->eager = r->eager;
    copy_bits(r->filled, 0, left->data_pages, left->filled, 0);
    inherit_window(*r, *left, 0);
    regions[left->start] = left;
    if (left->nfaults.load() > 0) enqueue(left);
  }
  if (hi < end) {
    const uint64_t q = (hi - r->start) / page;
    auto right = std::make_shared<Region>(hi, r->pages - q, r->obj_offset + q * page,
                                          r->data_pages > q ? r->data_pages - q : 0, r->prot, r->object);
    right->eager = r->eager;
    copy_bits(r->filled, q, q + right->data_pages, right->filled, 0);
    inherit_window(*r, *right, q);
    regions[right->start] = right;
    if (right->nfaults.load() > 0) enqueue(right);
  }
  publish();
}

void MappingManager::Impl::enqueue(const std::shared_ptr<Region>& r) {
  if (!workers || r->filled.all() || r->queued.exchange(true)) return;
  {
    std::lock_guard lock(workers->mu);
    workers->queue.push_back(r);
  }
  workers->cv.notify_all();  // the workers' wait predicate differs by fill_busy: wake them all
}

Result<void*> MappingManager::Impl::map_uffd(std::shared_ptr<const RemoteObject> obj, void* addr, uint64_t len,
                                             int prot, int flags, uint64_t offset) {
  std::unique_lock lock(mu);
  if (auto s = ensure_started(); !s) {
    lock.unlock();
    MF_WARN("mappings: cannot start userfaultfd handling (%s): filling this mapping eagerly",
            s.error().message.c_str());
    return map_eager(std::move(obj), addr, len, prot, flags, offset);
  }
  const int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE));
  // MAP_FIXED replaces whatever is there: managed regions in the range stop being managed.
  std::vector<std::shared_ptr<Region>> replaced;
  std::vector<std::unique_lock<SharedMutex>> held;
  if (flags & MAP_FIXED) replaced = overlapping(reinterpret_cast<uintptr_t>(addr), len);
  for (auto& r : replaced) held.emplace_back(r->mu);
  // Where the app lets us choose, a read-write mapping starts on a 2 MiB boundary, so that its 2 MiB blocks
  // (and the chunks, multiples of 2 MiB at object offset 0) can each be moved in as one huge page (move_chunk).
  void* at = addr;
  int how = mflags;
  if (huge_moves && (prot & PROT_WRITE) && !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)))
    if (void* a = reserve_huge_aligned(len)) at = a, how |= MAP_FIXED;  // over our own reservation
  void* p = sys.mmap(at, len, prot, how, -1, 0);
  if (p == MAP_FAILED) return make_error(errno, std::string("mmap: ") + std::strerror(errno));
  for (auto& r : replaced) split_around(r, reinterpret_cast<uintptr_t>(p), len);
  held.clear();
  const uint64_t pages = len / page, data = data_pages_of(*obj, offset, pages, page);
  const auto start = reinterpret_cast<uintptr_t>(p);
  if (data < pages && map_sigbus(reinterpret_cast<void*>(start + data * page), (pages - data) * page, prot) ==
                          MAP_FAILED) {
    const int e = errno;
    sys.munmap(p, len);
    return make_error(e, std::string("mmap of the past-EOF pages: ") + std::strerror(e));
  }
  if (data > 0) {
    if (auto r = uffd::register_missing(uffd, start, data * page); !r) {
      sys.munmap(p, len);
      return r.error();
    }
  }
  auto region = std::make_shared<Region>(start, pages, offset, data, prot, std::move(obj));
  regions[start] = region;
  publish();
  bytes_mapped.fetch_add(len, std::memory_order_relaxed);
  lock.unlock();
  // Nothing is fetched or copied until the first fault (filler.cpp: lazy fill window).
  // MAP_POPULATE asks for the pages now; failed chunks become SIGBUS pages, as a real file's would.
  if (flags & MAP_POPULATE) (void)fill_range(*region, 0, data, true);
  return p;
}

// Eager mode has no userfaultfd, hence no UFFDIO_MOVE, but mremap moves pages just as well between two
// anonymous areas of ours: a whole chunk (not the header's first one, which every reader reads, nor a partial
// last one) whose buffer nobody else holds is taken out of the cache and mremap'd over its place in a
// read-write eager mapping (MREMAP_FIXED replaces the pages reserved there): no copy, and with both sides on
// 2 MiB boundaries the kernel moves whole page-table entries of huge pages. Read-only mappings (safetensors'
// own) copy, so the chunks stay cached for the mapping torch makes next. MODELFETCH_HUGE_PAGES=off: copy.
bool MappingManager::Impl::move_whole_chunk_eager(const ChunkRef& ref, uint64_t k, std::byte* dst, uint64_t o,
                                                  uint64_t n, int prot) {
  const uint64_t cs = cache.config().chunk_size;
  if (!allow_huge || prot != (PROT_READ | PROT_WRITE) || k == 0 || o != ref.offset() || n != cs ||
      ref.length() != cs)
    return false;
  const TakenBuffer buf = cache.take(ref);
  if (!buf.data) return false;
  if (buf.bytes == n &&
      sys.mremap(buf.data, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, dst) != MAP_FAILED)
    return true;
  std::memcpy(dst, buf.data, n);  // the kernel refused (no address space?): copy from the taken buffer
  free_chunk_buffer(buf.data, buf.bytes);
  return true;
}

void* MappingManager::Impl::reserve_huge_aligned(uint64_t len) {
  if (len < kFaultBlock) return nullptr;
  void* raw = sys.mmap(nullptr, len + kFaultBlock, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto r0 = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t a = (r0 + kFaultBlock - 1) & ~(kFaultBlock - 1);
  if (a > r0) sys.munmap(raw, a - r0);
  sys.munmap(reinterpret_cast<void*>(a + len), r0 + kFaultBlock - a);  // the tail, never empty
  return reinterpret_cast<void*>(a);
}

Result<void*> MappingManager::Impl::map_eager(std::shared_ptr<const RemoteObject> obj, void* addr, uint64_t len,
                                              int prot, int flags, uint64_t offset) {
  const uint64_t avail = mem_available();
  if (avail != 0 && len > avail) {
    MF_ERROR("%s: cannot map %llu bytes in eager mode: only %llu bytes of memory are available (MemAvailable); "
             "eager mode copies the whole range up front (userfaultfd mode would not)",
             obj->path.c_str(), static_cast<unsigned long long>(len), static_cast<unsigned long long>(avail));
    return make_error(ENOMEM, "not enough memory for an eager mapping");
  }
  {
    std::lock_guard lock(mu);
    if (!sigbus_fd.open()) sigbus_fd = hold_own_fd(::memfd_create("modelfetch-sigbus", MFD_CLOEXEC));
  }
  // Huge pages unless MODELFETCH_HUGE_PAGES=off: the copy below writes every page of the mapping, and a
  // 2 MiB-aligned MADV_HUGEPAGE area takes one fault per 2 MiB instead of 512 (a 4 KiB fault costs ~11 us in
  // the paravirtualised benchmark guests: docs/PERFORMANCE.md "Page costs"). Invisible to the program: the
  // mapping is private anonymous memory either way.
  const bool huge = allow_huge && thp;
  void* at = addr;
  int mflags = MAP_PRIVATE | MAP_ANONYMOUS | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE));
  if (huge && !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)))
    if (void* a = reserve_huge_aligned(len)) at = a, mflags |= MAP_FIXED;
  void* p = sys.mmap(at, len, PROT_READ | PROT_WRITE, mflags, -1, 0);
  if (p == MAP_FAILED) return make_error(errno, std::string("mmap: ") + std::strerror(errno));
  auto* base = static_cast<std::byte*>(p);
  const uint64_t pages = len / page, data = data_pages_of(*obj, offset, pages, page);
  if (huge && data > 0) ::madvise(p, data * page, MADV_HUGEPAGE);  // advice: refused, nothing changes
  const uint64_t cs = cache.config().chunk_size, end = offset + data * page;
  const uint64_t la = std::max<uint64_t>(1, lookahead());
  for (uint64_t o = offset; o < end;) {
    const uint64_t k = o / cs;
    for (uint64_t i = 1; i <= la && (k + i) * cs < end; ++i) cache.prefetch(*obj, k + i);
    auto ref = cache.get(*obj, k, Priority::demand);
    if (!ref) {
      MF_ERROR("%s: eager mapping failed at offset %llu: %s", obj->path.c_str(),
               static_cast<unsigned long long>(o), ref.error().message.c_str());
      sys.munmap(p, len);
      return ref.error();
    }
    const uint64_t n = std::min((k + 1) * cs, end) - o;  // the chunk buffer is page-padded past EOF
    if (move_whole_chunk_eager(*ref, k, base + (o - offset), o, n, prot)) {
      bytes_moved.fetch_add(n, std::memory_order_relaxed);
    } else {
      std::memcpy(base + (o - offset), ref->data() + (o - ref->offset()), n);
    }
    cache.note_served(n);
    o += n;
  }
  if (data < pages && (!sigbus_fd.open() || map_sigbus(base + data * page, (pages - data) * page, prot) == MAP_FAILED)) {
    const int e = errno;
    sys.munmap(p, len);
    return make_error(e, "mmap of the past-EOF pages failed");
  }
  if (prot != (PROT_READ | PROT_WRITE) && data > 0 && ::mprotect(p, data * page, prot) != 0) {
    const int e = errno;
    sys.munmap(p, len);
    return make_error(e, std::string("mprotect: ") + std::strerror(e));
  }
  {
    auto region = std::make_shared<Region>(reinterpret_cast<uintptr_t>(p), pages, offset, data, prot, obj);
    region->eager = true;
    region->filled.set_range(0, data);
    std::lock_guard lock(mu);
    regions[region->start] = region;
    publish();
  }
  eager_maps.fetch_add(1, std::memory_order_relaxed);
  bytes_mapped.fetch_add(len, std::memory_order_relaxed);
  bytes_filled.fetch_add(data * page, std::memory_order_relaxed);
  return p;
}

MappingManager::MappingManager(ChunkCache& cache, UffdSetting setting, MapSyscalls sys)
    : impl_(std::make_unique<Impl>(cache, setting, sys)) {
  impl_->decide_mode();
}

MappingManager::~MappingManager() {
  Impl& im = *impl_;
  if (Workers* w = im.workers) {
    {
      std::lock_guard lock(w->mu);
      w->quit = true;
    }
    w->cv.notify_all();
    im.live_workers.store(nullptr, std::memory_order_release);
    w->stop.store(true, std::memory_order_release);
    const uint64_t one = 1;
    (void)!::write(w->quit_fd.get(), &one, sizeof one);
    w->fault_thread.join();
    for (auto& t : w->fill_threads) t.join();
    close_own_fd(w->quit_fd);
    delete w;
  }
  // Mappings still managed would read zeros once nobody serves their faults: unmap them instead (an access
  // then gets SIGSEGV). The shim never destroys its manager; tests unmap first.
  for (auto& [start, r] : im.regions) im.sys.munmap(reinterpret_cast<void*>(start), r->pages * im.page);
  close_own_fd(im.uffd);
  close_own_fd(im.sigbus_fd);
}

MapMode MappingManager::mode() const { return impl_->mode; }

Result<void*> MappingManager::map(std::shared_ptr<const RemoteObject> object, void* addr, size_t length, int prot,
                                  int flags, uint64_t offset) {
  Impl& im = *impl_;
  if (!object || length == 0 || offset % im.page != 0) return make_error(EINVAL, "mmap: bad length or offset");
  const int type = flags & MAP_TYPE;
  if (type != MAP_PRIVATE && type != MAP_SHARED && type != MAP_SHARED_VALIDATE)
    return make_error(EINVAL, "mmap: neither MAP_PRIVATE nor MAP_SHARED");
  if (type != MAP_PRIVATE && (prot & PROT_WRITE))  // the file is open read-only, as the kernel would say
    return make_error(EACCES, "mmap: a writable shared mapping of a read-only remote file");
  uint64_t len = 0;
  if (!checked_align_up(length, im.page, &len)) return make_error(ENOMEM, "mmap: length overflows");
  if (im.mode == MapMode::eager || im.broken.load(std::memory_order_acquire))
    return im.map_eager(std::move(object), addr, len, prot, flags, offset);
  return im.map_uffd(std::move(object), addr, len, prot, flags, offset);
}

bool MappingManager::overlaps(const void* addr, size_t length) const {
  Impl& im = *impl_;
  if (im.region_count.load(std::memory_order_acquire) == 0) return false;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  const uint64_t len = std::max<uint64_t>(length, 1);
  // Outside the span of all mappings (the common case for a read/write buffer on the heap or stack): no lock.
  if (a >= im.hi_addr.load(std::memory_order_relaxed) || a + len <= im.lo_addr.load(std::memory_order_relaxed))
    return false;
  std::shared_lock lock(im.mu);
  return !im.overlapping(a, len).empty();
}

bool MappingManager::munmap(void* addr, size_t length, int* rc) {
  Impl& im = *impl_;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  uint64_t len = 0;
  if (im.region_count.load(std::memory_order_acquire) == 0 || a % im.page != 0 || length == 0 ||
      !checked_align_up(length, im.page, &len))
    return false;  // libc gives the answer (EINVAL for a bad argument)
  std::lock_guard lock(im.mu);
  auto rs = im.overlapping(a, len);
  if (rs.empty()) return false;
  std::vector<std::unique_lock<SharedMutex>> held;
  for (auto& r : rs) held.emplace_back(r->mu);
  *rc = im.sys.munmap(addr, length);
  if (*rc == 0)
    for (auto& r : rs) im.split_around(r, a, len);
  return true;
}

bool MappingManager::madvise(void* addr, size_t length, int advice, int* rc) {
  Impl& im = *impl_;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  uint64_t len = 0;
  const bool drops = advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE;
  if (!drops || im.region_count.load(std::memory_order_acquire) == 0 || a % im.page != 0 || length == 0 ||
      !checked_align_up(length, im.page, &len))
    return false;
  // Eager regions keep their pages: the kernel would leave zeros there (nothing catches the next access), so
  // MADV_DONTNEED copies the object's bytes back over them instead, which is what a private file mapping
  // reads after a drop (private writes undone), with no window where a reader sees zeros; MADV_FREE, only
  // a hint, does nothing to them. The rest of the range (uffd regions, other memory) gets the real call.
  // Like the kernel, every piece gets its advice and the first error is the call's (ENOMEM for a hole).
  // The copies back need chunks from the store: they run after the manager's lock is released.
  struct Restore {
    std::shared_ptr<Region> r;
    uint64_t p0, p1;
  };
  std::vector<Restore> restores;
  int err = 0;
  {
    std::lock_guard lock(im.mu);
    auto rs = im.overlapping(a, len);
    if (rs.empty()) return false;
    std::vector<std::unique_lock<SharedMutex>> held;
    for (auto& r : rs) held.emplace_back(r->mu);
    auto note = [&](int r) {
      if (r != 0 && err == 0) err = errno;
    };
    // With the userfaultfd gone (uffd_failed) nothing would refill a dropped page: uffd regions keep theirs.
    const bool keep_uffd = im.broken.load(std::memory_order_acquire);
    uintptr_t pos = a;
    for (auto& r : rs) {
      if (!r->eager && !keep_uffd) continue;
      const uintptr_t lo = std::max(a, r->start), hi = std::min<uintptr_t>(a + len, r->start + r->pages * im.page);
      if (lo > pos) note(im.sys.madvise(reinterpret_cast<void*>(pos), lo - pos, advice));
      const uint64_t p0 = (lo - r->start) / im.page, p1 = std::min((hi - r->start) / im.page, r->data_pages);
      if (r->eager && advice == MADV_DONTNEED && p0 < p1) restores.push_back(Restore{r, p0, p1});
      pos = hi;
    }
    if (pos < a + len) note(im.sys.madvise(reinterpret_cast<void*>(pos), a + len - pos, advice));
    for (auto& r : rs) {
      if (!r->eager && !keep_uffd) {
        const uintptr_t lo = std::max(a, r->start), hi = std::min<uintptr_t>(a + len, r->start + r->pages * im.page);
        const uint64_t p0 = (lo - r->start) / im.page, p1 = std::min((hi - r->start) / im.page, r->data_pages);
        if (p0 < p1) r->filled.clear_range(p0, p1);  // the fault path refills them on the next access
      }
    }
  }
  for (const Restore& x : restores)
    if (const int e = im.restore_eager(*x.r, x.p0, x.p1); e != 0 && err == 0) err = e;
  *rc = err == 0 ? 0 : -1;
  if (err != 0) errno = err;
  return true;
}

int MappingManager::Impl::restore_eager(Region& r, uint64_t p0, uint64_t p1) {
  auto* at = reinterpret_cast<std::byte*>(r.start);
  const bool ro = !(r.prot & PROT_WRITE);
  for (uint64_t p = p0; p < p1;) {
    const uint64_t k = chunk_of(r, p);
    uint64_t c0, c1;
    chunk_pages(r, k, &c0, &c1);
    const uint64_t e = std::min(c1, p1);
    auto ref = cache.get(*r.object, k, Priority::demand);  // no lock held: this may wait for the network
    std::unique_lock lock(r.mu);
    // Unmapped or split meanwhile (munmap, MAP_FIXED, mremap): the rest is not this region's any more. Its
    // pages were never dropped (the real madvise does not run on eager pages), so they keep their bytes.
    if (r.dead) return 0;
    if (!ref) {
      MF_ERROR("%s: cannot restore bytes %llu-%llu of an eager mapping after MADV_DONTNEED: %s; they raise SIGBUS",
               r.object->path.c_str(), static_cast<unsigned long long>(r.obj_offset + p * page),
               static_cast<unsigned long long>(r.obj_offset + p1 * page - 1), ref.error().message.c_str());
      install_sigbus(r, p, p1);
      return ref.error().code;
    }
    if (ro && ::mprotect(at + p * page, (e - p) * page, r.prot | PROT_READ | PROT_WRITE) != 0) return errno;
    std::memcpy(at + p * page, ref->data() + (r.obj_offset + p * page - ref->offset()), (e - p) * page);
    if (ro) ::mprotect(at + p * page, (e - p) * page, r.prot);
    cache.note_served((e - p) * page);
    p = e;
  }
  return 0;
}

bool MappingManager::mremap(void* old_addr, size_t old_size, size_t new_size, int flags, void* new_addr,
                            void** result) {
  Impl& im = *impl_;
  const auto a = reinterpret_cast<uintptr_t>(old_addr);
  uint64_t len = 0;
  if (im.region_count.load(std::memory_order_acquire) == 0 || a % im.page != 0 || old_size == 0 ||
      !checked_align_up(old_size, im.page, &len))
    return false;
  // Filled with no lock held (the fill may wait for the network), then checked complete under the lock, which
  // is then kept until the real mremap: no fault, fill or madvise can change the pages in between. A range
  // that keeps changing under us is filled under the lock after kForkFillPasses tries.
  for (int pass = 0;; ++pass) {
    if (pass < kForkFillPasses) {
      std::vector<std::shared_ptr<Region>> rs;
      {
        std::shared_lock lock(im.mu);
        rs = im.overlapping(a, len);
      }
      if (rs.empty()) return false;
      for (auto& r : rs) (void)im.fill_range(*r, 0, r->data_pages, true);  // failed chunks: SIGBUS pages, never zeros
    }
    std::lock_guard lock(im.mu);
    auto rs = im.overlapping(a, len);
    if (rs.empty()) return false;
    const bool complete = std::all_of(rs.begin(), rs.end(), [](const auto& r) { return r->filled.all(); });
    if (!complete && pass < kForkFillPasses) continue;
    for (auto& r : rs) {
      if (!r->filled.all()) (void)im.fill_range(*r, 0, r->data_pages, true);
      std::unique_lock rl(r->mu);
      if (!r->eager && r->data_pages > 0) (void)uffd::unregister(im.uffd, r->start, r->data_pages * im.page);
      im.forget(r);
    }
    *result = im.sys.mremap(old_addr, old_size, new_size, flags, new_addr);
    return true;
  }
}

Result<void> MappingManager::fill_for_kernel(const void* addr, size_t length) {
  Impl& im = *impl_;
  if (im.region_count.load(std::memory_order_acquire) == 0 || length == 0) return {};
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr) & ~(im.page - 1);
  const uintptr_t e = reinterpret_cast<uintptr_t>(addr) + length;
  std::vector<std::shared_ptr<Region>> rs;
  {
    std::shared_lock lock(im.mu);
    rs = im.overlapping(a, e - a);
  }
  for (auto& r : rs) {
    if (r->eager) continue;  // always filled
    const uintptr_t lo = std::max(a, r->start), hi = std::min<uintptr_t>(e, r->start + r->pages * im.page);
    const uint64_t p0 = (lo - r->start) / im.page, p1 = (hi - r->start + im.page - 1) / im.page;
    if (p0 < std::min(p1, r->data_pages)) im.note_fault(r, p0, std::min(p1, r->data_pages));  // a use, like a fault
    if (auto res = im.fill_range(*r, p0, p1, false); !res) return res;
  }
  return {};
}

void MappingManager::fill_for_fork() {
  Impl& im = *impl_;
  for (int pass = 0; pass < kForkFillPasses; ++pass) {
    std::vector<std::shared_ptr<Region>> rs;
    {
      std::shared_lock lock(im.mu);
      for (auto& [start, r] : im.regions)
        if (!r->filled.all()) rs.push_back(r);
    }
    if (rs.empty()) return;
    for (auto& r : rs) (void)im.fill_range(*r, 0, r->data_pages, true);  // no lock held
  }
}

void MappingManager::before_fork() {
  Impl& im = *impl_;
  fill_for_fork();
  im.mu.lock();  // held until after_fork_*: no mapping appears or drops pages between the fill and the fork
  // A mapping made, or pages dropped, since fill_for_fork (rare): filled now, under the lock.
  for (auto& [start, r] : im.regions)
    if (!r->filled.all()) (void)im.fill_range(*r, 0, r->data_pages, true);
  im.hint_mu.lock();
}

void MappingManager::after_fork_parent() {
  impl_->hint_mu.unlock();
  impl_->mu.unlock();
}

void MappingManager::after_fork_child() {
  Impl& im = *impl_;
  // Only this thread exists here. The regions' locks may be held by threads that did not survive, and
  // Workers owns std::threads that are not joinable in this process: both are leaked on purpose.
  new std::map<uintptr_t, std::shared_ptr<Region>>(std::move(im.regions));
  im.regions.clear();
  im.publish();
  if (im.workers) {
    im.live_workers.store(nullptr, std::memory_order_release);
    close_own_fd(im.workers->quit_fd);
    im.workers = nullptr;
  }
  close_own_fd(im.uffd);  // the parent's context: using it here would act on the parent's mm
  im.broken.store(false);
  im.hint_mu.unlock();
  im.mu.unlock_after_fork_child();  // a shared mutex: unlock() cannot release it here (lock.hpp)
}

void MappingManager::hint_order(const RemoteObject& object, std::vector<uint64_t> chunk_indices) {
  Impl& im = *impl_;
  std::shared_ptr<FillHint> h;
  if (!chunk_indices.empty()) {
    h = std::make_shared<FillHint>();
    const uint64_t n = im.cache.chunk_count(object);
    for (uint64_t k : chunk_indices)
      if (k < n && h->pos.emplace(k, h->order.size()).second) h->order.push_back(k);  // first mention wins
  }
  std::lock_guard lock(im.hint_mu);
  if (h && !h->order.empty())
    im.hints[object.id] = std::move(h);
  else
    im.hints.erase(object.id);
}

void MappingManager::set_fill_policy(FillPolicy policy) { impl_->fill_policy = policy; }
void MappingManager::set_huge_pages(bool allowed) {
  impl_->allow_huge = allowed;
  impl_->huge_moves = impl_->huge_moves && allowed;
}
bool MappingManager::moves_huge_pages() const { return impl_->huge_moves; }
void MappingManager::set_fault_observer(FaultObserver observer) { impl_->observer = std::move(observer); }

MappingStats MappingManager::stats() const {
  const Impl& im = *impl_;
  MappingStats s;
  s.uffd_faults = im.faults.load();
  s.fault_wait_ns = im.fault_wait_ns.load();
  s.bytes_mapped = im.bytes_mapped.load();
  s.bytes_filled = im.bytes_filled.load();
  s.fault_bytes = im.fault_bytes.load();
  s.sigbus_pages = im.sigbus_pages.load();
  s.eager_maps = im.eager_maps.load();
  s.parked_faults = im.parked_faults.load();
  s.copy_ns = im.copy_ns.load();
  s.bytes_moved = im.bytes_moved.load();
  s.fill_wait_ns = im.fill_wait_ns.load();
  return s;
}

}  // namespace mf
