// The fault thread and the fill helpers: how bytes enter a userfaultfd-registered mapping.
//
// Fault thread. Polls {uffd, quit eventfd}; reads up to kMsgBatch (64) messages per read(2) so a burst of
// faults from many threads costs one wake-up; aligns the addresses to pages, sorts and dedupes them. Each
// fault is resolved by one UFFDIO_COPY of its block: the kFaultBlock-aligned (2 MiB) extent around the
// fault, clipped to its chunk and its region. FACTS.md measured 4 KiB per fault at 0.04 GB/s and 2 MiB at
// 1.3 GB/s here: a fault costs ~85 us of wake-up whatever its size, so it must carry a lot. Not the whole
// 8 MiB chunk: the faulting thread only resumes when the ioctl returns, and copying 8 MiB takes ~3 ms.
//
// The fault thread never waits for the network. A fault whose chunk is resident (try_get) is resolved at
// once; for any other the chunk is requested (prefetch) and the fault is parked for the fill workers
// (filler.cpp), which get() the chunk and resolve it. So a fault on a resident chunk is never stuck behind
// one whose chunk is still on the wire. Every fault also tells the filler where the reader is
// (note_fault): demand goes first and the filler follows the reader. A failed chunk is retried
// kFaultFetchAttempts (3) times by the worker with a short backoff (the store has already retried each
// request: this covers a burst of failures); after that the faulting pages are replaced by a SIGBUS
// mapping (fail_pages), never by zeros.
//
// The chunk buffers the copies read from are cache memory, never registered memory: no thread of ours
// writes a registered page except through UFFDIO_COPY (a memcpy there would fault into ourselves).
//
// Pre-touch. The proactive filler (copy_from_chunk with touch) then reads one byte of every page it just
// placed, while it still holds the region's lock shared (so no munmap, madvise or SIGBUS replacement can
// make a page missing under it). The first access through each new page-table entry is what costs in
// these guests (tests/bench/page_costs: ~0.9 s per 512 MB, paid once per address space, by whichever
// thread comes first); paid here, on a filler thread running ahead, the loader's first read of the same
// pages drops from 0.82 to 0.08 s per 512 MB (page_costs: "UFFDIO_COPY, other thread touches"). End to
// end (bench_prefetch.py, 1 GB, 3 reps, alternating): safetensors 2.18 vs 2.43 s and 2.35 vs 2.84 s.
// The fault thread does not touch: its faulting thread is already waiting and touches the block itself.
//
// Huge pages by move (move_chunk). Better than copying and touching: when the filler has the only pin of a
// chunk, it takes the chunk's buffer out of the cache (ChunkCache::take) and moves its 2 MiB huge pages
// into the mapping with UFFDIO_MOVE (Linux 6.8+): no copy, no 4 KiB page-table entries, one PMD per 2 MiB.
// tests/bench/page_costs "chunked", 1 GB: placing by copy + pre-touch 1.6-2.3 s and the loader's first read
// 0.6-0.9 s, against 0.03 s and 0.06 s by move. Conditions: the region is PROT_READ|PROT_WRITE (the kernel
// moves only between writable areas of equal protection, and chunk buffers are read-write: torch's private mapping
// qualifies, safetensors' read-only one does not), mapped on a 2 MiB boundary (map_uffd does that for such
// regions), the block wholly missing, and the chunk is not the object's first (the header chunk stays cached:
// every reader of the file reads it). Pages of the chunk that cannot be moved (partial blocks, the tail) are
// copied from the taken buffer before it is freed; a move the kernel refuses (a page present since, a src
// shared after fork) falls back to a copy of the rest of that block. The price: the moved chunk is no longer
// cached, so another mapping of the same object that later needs it fetches it again (MODELFETCH_HUGE_PAGES=
// off keeps every chunk cached and places by copy).
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/cache/chunk_buffer.hpp"
#include "core/uffd/manager_impl.hpp"
#include "core/uffd/uffd.hpp"
#include "core/util/log.hpp"

namespace mf {

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

uint64_t MappingManager::Impl::lookahead() const {
  const CacheConfig& c = cache.config();
  return std::min<uint64_t>(kLookahead, c.budget_bytes / c.chunk_size / 2);
}

void MappingManager::Impl::chunk_pages(const Region& r, uint64_t k, uint64_t* c0, uint64_t* c1) const {
  const uint64_t cs = cache.config().chunk_size;
  const uint64_t lo = k * cs, hi = lo + cs;  // object offsets; obj_offset and cs are page multiples
  *c0 = lo > r.obj_offset ? (lo - r.obj_offset) / page : 0;
  *c1 = std::min(r.data_pages, hi > r.obj_offset ? (hi - r.obj_offset) / page : 0);
}

bool thp_available() {
  FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
  if (!f) return false;
  char line[128] = {};
  const bool got = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  return got && (std::strstr(line, "[always]") || std::strstr(line, "[madvise]"));
}

void MappingManager::Impl::touch_placed(uintptr_t at, uint64_t pages) const {
  const volatile std::byte* q = reinterpret_cast<const volatile std::byte*>(at);
  for (uint64_t i = 0; i < pages; ++i) (void)q[i * page];
}

bool MappingManager::Impl::placed(Region& r, uint64_t a, uint64_t b, const uffd::CopyResult& res, bool touch,
                                 int* err) {
  if (res.status == uffd::CopyStatus::gone) return false;
  if (res.status == uffd::CopyStatus::failed) {
    MF_WARN("%s: placing pages at mapping offset %llu failed: %s", r.object->path.c_str(),
            static_cast<unsigned long long>(a * page), std::strerror(res.err));
    if (err) *err = res.err;
    return false;
  }
  r.filled.set_range(a, b);
  if (touch) touch_placed(r.start + a * page, b - a);  // present now, and stays so while r.mu is held
  bytes_filled.fetch_add(res.copied, std::memory_order_relaxed);
  cache.note_served(res.copied);
  return true;
}

void MappingManager::Impl::wake_pages(const Region& r, const std::vector<uint64_t>& pages) const {
  for (uint64_t p : pages) uffd::wake(uffd, r.start + p * page, page);
}

int MappingManager::Impl::move_chunk(Region& r, const ChunkRef& ref, uint64_t k) {
  if (!huge_moves || r.prot != (PROT_READ | PROT_WRITE) || k == 0) return 0;
  uint64_t c0, c1;
  chunk_pages(r, k, &c0, &c1);
  const uint64_t bp = kFaultBlock / page;
  auto src_of = [&](uint64_t p) { return ref.data() + (r.obj_offset + p * page - ref.offset()); };
  auto movable = [&](uint64_t p) {  // a whole, aligned, wholly missing huge page at page p
    return p + bp <= c1 && (r.start + p * page) % kFaultBlock == 0 &&
           reinterpret_cast<uintptr_t>(src_of(p)) % kFaultBlock == 0 && r.filled.find(p, p + bp, true) == p + bp;
  };
  bool any = false;
  for (uint64_t p = c0; p < c1 && !any; ++p) any = movable(p);
  if (!any) return 0;
  // Exclusive from before the take until every page is placed: a fault on this chunk that misses the cache
  // meanwhile (handle_faults, serve_parked check and request under the lock, shared) either finds its page
  // present afterwards or pinned the chunk before, so that the take fails and the chunk is copied.
  std::unique_lock lock(r.mu);
  const TakenBuffer buf = cache.take(ref);
  if (!buf.data) return 0;  // someone else reads this chunk too: copy
  int out = r.dead ? -1 : 1;
  if (!r.dead) {
    uint64_t p = c0;
    while (p < c1) {
      const uint64_t a = r.filled.find(p, c1, false);
      if (a == c1) break;
      const uintptr_t dst = r.start + a * page;
      std::byte* src = const_cast<std::byte*>(src_of(a));  // the taken buffer: ours now
      uint64_t b = r.filled.find(a, c1, true);
      const uint64_t t0 = now_ns();
      uffd::CopyResult res;
      const bool move = movable(a);
      if (move) {
        b = a + bp;
        res = uffd::move(uffd, dst, src, kFaultBlock);
        bytes_moved.fetch_add(res.copied, std::memory_order_relaxed);
        if (res.copied < kFaultBlock && res.status != uffd::CopyStatus::gone) {
          const uffd::CopyResult rest =
              uffd::copy(uffd, dst + res.copied, src + res.copied, kFaultBlock - res.copied, page);
          res = uffd::CopyResult{rest.status, rest.err, res.copied + rest.copied};
        }
      } else {
        b = std::min(b, a + (kFaultBlock - dst % kFaultBlock) / page);  // up to the next huge-page boundary
        res = uffd::copy(uffd, dst, src, (b - a) * page, page);
      }
      copy_ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
      if (!placed(r, a, b, res, !move && (r.prot & PROT_READ))) {  // copies are pre-touched, as copy_from_chunk
        out = -1;
        break;
      }
      p = b;
    }
  }
  lock.unlock();
  free_chunk_buffer(buf.data, buf.bytes);
  return out;
}

bool MappingManager::Impl::pages_present(Region& r, const std::vector<uint64_t>& pages) {
  if (r.dead) return false;
  for (uint64_t p : pages) {
    unsigned char v = 0;
    if (::mincore(reinterpret_cast<void*>(r.start + p * page), page, &v) != 0 || !(v & 1)) return false;
  }
  return true;
}

bool MappingManager::Impl::copy_from_chunk(Region& r, const ChunkRef& ref, uint64_t p0, uint64_t p1, bool touch,
                                          int* err) {
  if (err) *err = 0;
  touch = touch && (r.prot & PROT_READ);
  std::shared_lock lock(r.mu);
  if (r.dead) return false;
  uint64_t p = p0;
  while (p < p1) {
    const uint64_t a = r.filled.find(p, p1, false);
    if (a == p1) break;
    const uint64_t b = r.filled.find(a, p1, true);
    const std::byte* src = ref.data() + (r.obj_offset + a * page - ref.offset());
    const uint64_t t0 = now_ns();
    const uffd::CopyResult res = uffd::copy(uffd, r.start + a * page, src, (b - a) * page, page);
    copy_ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
    if (!placed(r, a, b, res, touch, err)) return false;
    p = b;
  }
  return true;
}

void MappingManager::Impl::install_sigbus(Region& r, uint64_t p0, uint64_t p1) {
  // The empty memfd has no page 0: any access through this mapping raises SIGBUS, as a real file mapping does
  // past EOF. It replaces (MAP_FIXED) the pages there.
  void* at = reinterpret_cast<void*>(r.start + p0 * page);
  const size_t len = (p1 - p0) * page;
  if (map_sigbus(at, len, r.prot == PROT_NONE ? PROT_READ : r.prot) == MAP_FAILED) {
    MF_ERROR("cannot install the SIGBUS mapping (%s): unmapping the pages instead", std::strerror(errno));
    sys.munmap(at, len);
  }
}

void MappingManager::Impl::fail_pages(Region& r, uint64_t p0, uint64_t p1, const Error& why) {
  const uint64_t off = r.obj_offset + p0 * page;
  MF_ERROR("%s: cannot read bytes %llu-%llu for a mapping: %s (code %d); the access gets SIGBUS",
           r.object->path.c_str(), static_cast<unsigned long long>(off),
           static_cast<unsigned long long>(off + (p1 - p0) * page - 1), why.message.c_str(), why.code);
  {
    std::unique_lock lock(r.mu);
    if (!r.dead) {
      install_sigbus(r, p0, p1);  // the retried access of the woken thread lands on it
      r.filled.set_range(p0, p1);
      sigbus_pages.fetch_add(p1 - p0, std::memory_order_relaxed);
    }
  }
  uffd::wake(uffd, r.start + p0 * page, (p1 - p0) * page);
}

uint64_t MappingManager::Impl::fail_missing(Region& r, uint64_t p0, uint64_t p1) {
  uint64_t n = 0;
  {
    std::unique_lock lock(r.mu);
    if (r.dead) return 0;
    for (uint64_t p = p0; p < p1;) {
      const uint64_t a = r.filled.find(p, p1, false);
      if (a == p1) break;
      const uint64_t b = r.filled.find(a, p1, true);
      install_sigbus(r, a, b);
      r.filled.set_range(a, b);
      n += b - a;
      p = b;
    }
  }
  if (n > 0) {
    sigbus_pages.fetch_add(n, std::memory_order_relaxed);
    uffd::wake(uffd, r.start + p0 * page, (p1 - p0) * page);
  }
  return n;
}

Result<void> MappingManager::Impl::fill_range(Region& r, uint64_t p0, uint64_t p1, bool sigbus_on_failure) {
  p1 = std::min(p1, r.data_pages);
  Result<void> out;
  const uint64_t la = lookahead();
  const uint64_t last_chunk = p1 > p0 ? chunk_of(r, p1 - 1) : 0;
  for (uint64_t p = p0; p < p1;) {
    p = r.filled.find(p, p1, false);
    if (p == p1) break;
    const uint64_t k = chunk_of(r, p);
    uint64_t c0, c1;
    chunk_pages(r, k, &c0, &c1);
    c1 = std::min(c1, p1);
    for (uint64_t i = 1; i <= la && k + i <= last_chunk; ++i) cache.prefetch(*r.object, k + i);
    auto ref = cache.get(*r.object, k, Priority::demand);
    int err = 0;
    if (!ref) {
      if (!sigbus_on_failure) return ref.error();
      fail_pages(r, p, c1, ref.error());
      out = ref.error();
    } else if (!copy_from_chunk(r, *ref, p, c1, false, &err)) {
      if (err == 0) return make_error(EFAULT, "the mapping changed while it was being filled");
      // Placing failed (not EEXIST, not gone): never leave the pages missing where a fork child would
      // read zeros; they raise SIGBUS instead.
      Error why = make_error(err, std::string("placing pages failed: ") + std::strerror(err));
      if (!sigbus_on_failure) return why;
      MF_ERROR("%s: cannot place bytes %llu-%llu of a mapping: %s; they raise SIGBUS", r.object->path.c_str(),
               static_cast<unsigned long long>(r.obj_offset + p * page),
               static_cast<unsigned long long>(r.obj_offset + c1 * page - 1), std::strerror(err));
      fail_missing(r, p, c1);
      out = why;
    }
    p = c1;
  }
  return out;
}

// Groups sorted fault pages into jobs (one per block). Regions are looked up under the manager lock.
std::vector<FaultJob> MappingManager::Impl::plan_faults(const std::vector<uintptr_t>& addrs) {
  MappingManager::Impl& im = *this;
  std::vector<FaultJob> jobs;
  const uint64_t cs = im.cache.config().chunk_size, bs = std::min(kFaultBlock, cs);
  std::shared_lock lock(im.mu);
  for (uintptr_t a : addrs) {
    auto it = im.regions.upper_bound(a);
    if (it == im.regions.begin()) {
      uffd::wake(im.uffd, a, page);  // the region went away: the retried access meets what is there now
      continue;
    }
    std::shared_ptr<Region> r = std::prev(it)->second;
    const uint64_t p = (a - r->start) / page;
    if (a < r->start || p >= r->data_pages) {
      uffd::wake(im.uffd, a, page);
      continue;
    }
    if (!jobs.empty() && jobs.back().region == r && p >= jobs.back().b0 && p < jobs.back().b1) {
      jobs.back().pages.push_back(p);
      continue;
    }
    const uint64_t o = r->obj_offset + p * page, k = o / cs;
    const uint64_t lo = std::max({k * cs, o / bs * bs, r->obj_offset});
    const uint64_t hi = std::min({(k + 1) * cs, o / bs * bs + bs, r->obj_offset + r->data_pages * page});
    jobs.push_back(FaultJob{r, k, (lo - r->obj_offset) / page, (hi - r->obj_offset) / page, {p}});
  }
  return jobs;
}

void MappingManager::Impl::resolve(FaultJob& job, const ChunkRef& ref) {
  Region& r = *job.region;
  // A faulting page whose bit is set yet which faulted (e.g. dropped by MADV_FREE reclaim) is copied again.
  for (uint64_t p : job.pages) r.filled.clear_range(p, p + 1);
  // A placement that fails (ENOMEM, EAGAIN past uffd::copy's own retries, ...) is retried a few times with a
  // short backoff; then the faulting pages raise SIGBUS. Waking the thread to fault again would spin.
  int err = 0;
  for (int attempt = 1; !copy_from_chunk(r, ref, job.b0, job.b1, false, &err) && err != 0; ++attempt) {
    if (attempt == kCopyAttempts) {
      MF_ERROR("%s: cannot place bytes %llu-%llu for a fault: %s (%d attempts); the access gets SIGBUS",
               r.object->path.c_str(), static_cast<unsigned long long>(r.obj_offset + job.b0 * page),
               static_cast<unsigned long long>(r.obj_offset + job.b1 * page - 1), std::strerror(err),
               kCopyAttempts);
      for (uint64_t p : job.pages) fail_missing(r, p, p + 1);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1 << attempt));
  }
  fault_bytes.fetch_add((job.b1 - job.b0) * page, std::memory_order_relaxed);
  // UFFDIO_COPY woke the waiters of the pages it placed; a page found present (EEXIST) or a region that went
  // away needs an explicit wake, so the thread retries its access.
  wake_pages(r, job.pages);
  fault_wait_ns.fetch_add((now_ns() - job.t0) * job.pages.size(), std::memory_order_relaxed);
}

void MappingManager::Impl::handle_faults(const std::vector<uintptr_t>& addrs, uint64_t t0) {
  std::vector<FaultJob> jobs = plan_faults(addrs);
  // Each region's latest fault in this batch (jobs are sorted by address), noted after the demand requests.
  std::vector<FaultJob> notes;
  for (size_t i = 0; i < jobs.size(); ++i)
    if (i + 1 == jobs.size() || jobs[i + 1].region != jobs[i].region)
      notes.push_back(FaultJob{jobs[i].region, jobs[i].chunk, jobs[i].b0, jobs[i].b1, {}, 0});
  std::vector<FaultJob> parked;
  for (FaultJob& j : jobs) {
    j.t0 = t0;
    ChunkRef ref = cache.try_get(*j.region->object, j.chunk);
    if (ref) {
      resolve(j, ref);
      continue;
    }
    {
      // Under the region's lock, as serve_parked: a move either ended (the pages are present: the chunk left
      // the cache, do not fetch it again) or has not taken the chunk yet (the request finds it in the cache).
      std::shared_lock lock(j.region->mu);
      if (pages_present(*j.region, j.pages)) {
        lock.unlock();
        wake_pages(*j.region, j.pages);
        continue;
      }
      cache.prefetch(*j.region->object, j.chunk, Priority::demand);  // demand before any lookahead; never blocks
    }
    parked.push_back(std::move(j));
  }
  if (!parked.empty()) {
    parked_faults.fetch_add(parked.size(), std::memory_order_relaxed);
    {
      std::lock_guard lock(workers->mu);
      for (FaultJob& j : parked) workers->parked.push_back(std::move(j));
    }
    workers->cv.notify_all();
  }
  // After the demand requests: move each region's filler to its latest fault and prefetch ahead of it.
  for (const FaultJob& n : notes) note_fault(n.region, n.b0, n.b1);
}

void MappingManager::Impl::uffd_failed(const char* what, int err) {
  MF_ERROR("fault thread: %s: %s; the userfaultfd no longer works: every page of a mapping not filled yet now "
           "raises SIGBUS on access, and new mappings are filled before mmap returns",
           what, std::strerror(err));
  broken.store(true, std::memory_order_release);
  std::vector<std::shared_ptr<Region>> rs;
  {
    std::shared_lock lock(mu);
    for (auto& [start, r] : regions)
      if (!r->eager) rs.push_back(r);
  }
  uint64_t n = 0;
  for (auto& r : rs) n += fail_missing(*r, 0, r->data_pages);
  if (n > 0)
    MF_ERROR("fault thread: %llu pages in %zu mappings now raise SIGBUS", static_cast<unsigned long long>(n),
             rs.size());
}

// Errors of poll/read on the uffd: EINTR and EAGAIN are normal; ENOMEM is retried (kTransientRetries times,
// 10 ms apart, then it counts as fatal); anything else is fatal (uffd_failed). Never a silent exit: a thread
// waiting on a fault would wait forever.
void MappingManager::Impl::fault_loop() {
  constexpr int kTransientRetries = 100;
  Workers* w = workers;
  pollfd fds[2] = {{-1, POLLIN, 0}, {-1, POLLIN, 0}};
  uffd_msg msgs[kMsgBatch];
  std::vector<uintptr_t> addrs;
  int transient = 0;
  auto failed = [&](const char* what, int e) {
    if (e == EINTR || e == EAGAIN) return false;
    if (e == ENOMEM && ++transient <= kTransientRetries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return false;
    }
    uffd_failed(what, e);
    return true;
  };
  for (;;) {
    // The numbers are re-read every time (the program's dup2/close onto one moves it: fds_moved), and
    // acknowledged after they were read.
    const uint64_t gen = fd_gen.load(std::memory_order_acquire);
    fds[0].fd = uffd.get();
    fds[1].fd = w->quit_fd.get();
    fd_seen.store(gen, std::memory_order_release);
    if (uffd::sys_poll(fds, 2, -1) < 0) {
      if (failed("poll(userfaultfd)", errno)) return;
      continue;
    }
    // A number that changed since it was read (a move whose acknowledgement timed out: the old number may
    // be the program's file now) is neither drained, read, nor taken as an error: re-read first.
    const bool moved = uffd.get() != fds[0].fd || w->quit_fd.get() != fds[1].fd;
    if (fds[1].revents & (POLLIN | POLLERR | POLLNVAL)) {
      if (w->stop.load(std::memory_order_acquire)) return;
      if (moved) continue;
      if (fds[1].revents & (POLLERR | POLLNVAL)) {  // cannot happen to our eventfd; never a spin
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      uint64_t v;
      (void)!::syscall(SYS_read, fds[1].fd, &v, sizeof v);  // a wake after a move: drain it (non-blocking)
      continue;
    }
    if (moved) continue;
    if (fds[0].revents & (POLLERR | POLLNVAL)) {
      uffd_failed("poll(userfaultfd)", fds[0].revents & POLLNVAL ? EBADF : EIO);
      return;
    }
    const ssize_t got = uffd::sys_read(fds[0].fd, msgs, sizeof msgs);
    if (got < 0) {
      if (failed("read(userfaultfd)", errno)) return;
      continue;
    }
    transient = 0;
    const uint64_t t0 = now_ns();
    addrs.clear();
    for (size_t i = 0; i < static_cast<size_t>(got) / sizeof(uffd_msg); ++i)
      if (msgs[i].event == UFFD_EVENT_PAGEFAULT) addrs.push_back(msgs[i].arg.pagefault.address & ~(page - 1));
    std::sort(addrs.begin(), addrs.end());
    addrs.erase(std::unique(addrs.begin(), addrs.end()), addrs.end());
    faults.fetch_add(static_cast<uint64_t>(got) / sizeof(uffd_msg), std::memory_order_relaxed);
    handle_faults(addrs, t0);
  }
}

void MappingManager::Impl::fds_moved(void* self) {
  auto* im = static_cast<Impl*>(self);
  Workers* w = im->live_workers.load(std::memory_order_acquire);
  if (!w) return;
  const uint64_t gen = im->fd_gen.fetch_add(1, std::memory_order_acq_rel) + 1;
  const uint64_t one = 1;
  (void)!::syscall(SYS_write, w->quit_fd.get(), &one, sizeof one);
  // Bounded: the fault thread acknowledges at the top of its loop (handle_faults never waits on the
  // network). Past the bound the program's call goes on; the thread re-reads the numbers on its next wake.
  for (int i = 0; i < 2000 && im->fd_seen.load(std::memory_order_acquire) < gen; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (im->fd_seen.load(std::memory_order_acquire) < gen)
    MF_WARN("the fault thread did not pick up a moved fd within 2 s (the program's dup2/close onto it goes on)");
}

void* MappingManager::Impl::map_sigbus(void* at, uint64_t len, int prot) {
  const int fd = sigbus_fd.get();
  void* p = sys.mmap(at, len, prot, MAP_SHARED | MAP_FIXED, fd, 0);
  if (sigbus_fd.get() != fd && sigbus_fd.open()) p = sys.mmap(at, len, prot, MAP_SHARED | MAP_FIXED, sigbus_fd.get(), 0);
  return p;
}

}  // namespace mf
