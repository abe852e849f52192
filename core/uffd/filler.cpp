// The fill workers: parked faults first, proactive fill second.
//
// Workers. kFillWorkers (3) threads share one queue of parked faults (faults whose chunk was not resident
// when the fault thread read them) and one round-robin queue of regions with fill work. A worker always
// takes a parked fault first: it get()s the chunk (the fault thread has already requested it), retrying
// kFaultFetchAttempts times, and resolves the fault. Otherwise it runs one fill step (one chunk) of the
// next queued region. At most kFillWorkers - 1 workers are in a fill step at once, so one worker is always
// free to take a parked fault while the others wait on the network for proactive chunks. Three: the fault
// thread plus three workers is one more thread than the two vCPUs here; the workers spend their time
// waiting for chunks, and two proactive streams keep 2 x kLookahead range GETs in flight.
//
// Lazy fill window (readahead for mappings). A mapping nobody touches costs nothing: map() fetches and
// copies nothing, and a region joins the fill queue only on its first fault (or fill_for_kernel). Each
// fault at block [b0, b1) moves the region's fill cursor to b1 and lets the filler fill up to
// b1 + window, where window = fault block << (faults - 1): one 2 MiB block after the first fault, doubling
// with every further fault until it covers the mapping (then `wrap`: everything left is filled, wrapping
// around to pages behind the cursor). A region whose window is filled leaves the queue until its next
// fault. Why: safetensors maps each file twice and touches only the header (page 0, usually < 2 MiB) of the
// first mapping: that mapping gets one fault block plus one window block, not a copy of the whole file,
// while the mapping the tensors use faults on and reaches whole-file fill after log2(size / 2 MiB) faults
// (11 for a 2 GiB shard). The window is not reset on a jump (unlike mountpoint-s3's reader): a loader that
// reads tensors in name order jumps all over a file it will read entirely, so jumps are evidence of use.
//
// Access order. The filler continues from the most recent fault, not from offset 0, so when the reader
// jumps (released safetensors copies tensors sorted by name, `layers.10` before `layers.2`) the filler
// follows it. Each fault also prefetches the chunks after its block into the cache: after a region's first
// fault only as far as the window reaches plus one chunk (a header-only mapping asks for two chunks at
// most), from its second fault on lookahead() chunks (kLookahead = 16, at most half the budget; the cache
// skips a prefetch when the budget is full of unused chunks, so lookahead never evicts what is needed).
// Sixteen, not eight: requests follow the filler, which lags the network when it is short of CPU; with 8
// the benchmark's link (20 ms, 2 GB/s) saw 2-3 fetches in flight. Once the window covers the mapping, a
// sweep also requests the chunks the mapping lacks in offset order while fewer than lookahead() fetches are
// in flight, so the link stays busy while a jumping reader is served elsewhere.
//
// Order hints. hint_order(object, chunks) gives the order a planner (the safetensors header) knows the
// reader will use. For a region of that object the filler then walks the hint from the position of the
// latest fault's chunk, window converted to chunks, and prefetches in hint order; chunks the hint lacks are
// filled in offset order afterwards (within the window, or all of them once `wrap`). Laziness still holds:
// a hinted region is filled only after it faults.
#include <algorithm>
#include <chrono>
#include <thread>

#include "core/uffd/manager_impl.hpp"
#include "core/uffd/uffd.hpp"
#include "core/util/log.hpp"

namespace mf {
namespace {
constexpr uint64_t kNoPos = ~0ull;  // next_target: the chunk comes from offset order, not the hint
}  // namespace

uint64_t MappingManager::Impl::window_pages(uint32_t nfaults) const {
  const uint64_t block = std::min(kFaultBlock, cache.config().chunk_size) / page;
  const unsigned shift = std::min<unsigned>(nfaults > 0 ? nfaults - 1 : 0, kWindowMaxShift);
  return block << shift;
}

std::shared_ptr<const FillHint> MappingManager::Impl::hint_for(uint32_t id) {
  std::lock_guard lock(hint_mu);
  if (hints.empty()) return nullptr;
  auto it = hints.find(id);
  return it == hints.end() ? nullptr : it->second;
}

void MappingManager::Impl::note_fault(const std::shared_ptr<Region>& rp, uint64_t b0, uint64_t b1) {
  Region& r = *rp;
  if (r.data_pages == 0) return;
  if (observer) observer(*r.object, chunk_of(r, b0));
  if (fill_policy == FillPolicy::none) {  // the fault's own block only: no window, lookahead or sweep
    r.nfaults.fetch_add(1);
    return;
  }
  const uint64_t w = window_pages(r.nfaults.fetch_add(1) + 1);
  if (w >= r.data_pages) r.wrap.store(true);
  const uint64_t k = chunk_of(r, b0), cs = cache.config().chunk_size;
  const uint64_t wchunks = (w * page + cs - 1) / cs;
  auto hint = hint_for(r.object->id);
  uint64_t hpos = 0, limit = std::min(r.data_pages, b1 + w);
  if (hint) {
    if (auto it = hint->pos.find(k); it != hint->pos.end()) {
      hpos = it->second;
      r.hjump.store(hpos + 1);  // the fault's own chunk first: the rest of it beyond the block
      r.hlimit.store(std::min<uint64_t>(hint->order.size(), hpos + 1 + wchunks));
      limit = b1;  // the window is spent in hint order, not also in offset order
    } else {
      hint = nullptr;  // a fault outside the planned order: readahead in offset order
    }
  }
  r.limit.store(limit);
  r.jump.store(b1 + 1);
  r.epoch.fetch_add(1);
  enqueue(rp);
  // Cache lookahead from the fault: as far as the window reaches plus one chunk, at most lookahead().
  const uint64_t reach = hint ? wchunks + 1 : chunk_of(r, std::max(limit, b1) - 1) + 1 - k;
  prefetch_after(r, hint.get(), k, hpos, r.nfaults.load() >= 2 ? lookahead() : std::min(reach, lookahead()));
}

void MappingManager::Impl::prefetch_after(const Region& r, const FillHint* hint, uint64_t k, uint64_t hpos,
                                          uint64_t n) {
  if (r.data_pages == 0) return;
  if (hint) {
    for (uint64_t i = hpos + 1; i < hint->order.size() && i <= hpos + n; ++i) cache.prefetch(*r.object, hint->order[i]);
    return;
  }
  const uint64_t last = chunk_of(r, r.data_pages - 1);
  for (uint64_t i = 1; i <= n && k + i <= last; ++i) cache.prefetch(*r.object, k + i);
}

// The next chunk to fill and its unfilled pages [p0, p1) (one chunk), or false when the window is done.
// *hpos is the chunk's hint position, kNoPos when it comes from offset order.
bool MappingManager::Impl::next_target(Region& r, const FillHint* hint, uint64_t* k, uint64_t* p0,
                                       uint64_t* p1, uint64_t* hpos) {
  const bool all = r.wrap.load();
  if (hint) {
    const uint64_t hend = all ? hint->order.size() : std::min<uint64_t>(r.hlimit.load(), hint->order.size());
    for (uint64_t i = r.hcursor; i < hend; ++i) {
      uint64_t c0, c1;
      chunk_pages(r, hint->order[i], &c0, &c1);
      if (c0 >= c1) continue;  // that chunk is not in this mapping
      const uint64_t p = r.filled.find(c0, c1, false);
      if (p == c1) continue;
      r.hcursor = i;
      *k = hint->order[i], *p0 = p, *p1 = c1, *hpos = i;
      return true;
    }
    r.hcursor = hend;
  }
  const uint64_t lim = all ? r.data_pages : std::min(r.limit.load(), r.data_pages);
  uint64_t p = r.filled.find(std::min(r.cursor.load(), lim), lim, false);
  if (p == lim && all) p = r.filled.find(0, r.data_pages, false);
  if (p >= lim) return false;
  uint64_t c0, c1;
  *k = chunk_of(r, p);
  chunk_pages(r, *k, &c0, &c1);
  *p0 = p, *p1 = c1, *hpos = kNoPos;
  return true;
}

// Once the window covers the mapping the whole file will be read: keep the link busy by requesting, in
// offset order, chunks this mapping still lacks, while fewer than lookahead() fetches are in flight in the
// cache. The lookahead around the reader goes first (it is requested before), the sweep fills the gaps a
// jumping reader leaves. Budget-bound like any prefetch (skipped when the budget is full of unused chunks).
void MappingManager::Impl::sweep(Region& r) {
  const uint64_t la = lookahead();
  uint64_t busy = cache.stats().in_flight;
  const uint64_t last = chunk_of(r, r.data_pages - 1);
  r.sweep = std::max(r.sweep, chunk_of(r, 0));
  for (; busy < la && r.sweep <= last; ++r.sweep) {
    uint64_t c0, c1;
    chunk_pages(r, r.sweep, &c0, &c1);
    if (c0 < c1 && r.filled.find(c0, c1, false) != c1 && cache.prefetch(*r.object, r.sweep)) ++busy;
  }
}

bool MappingManager::Impl::fill_step(Region& r) {
  if (r.fill_gave_up || r.filled.all()) return false;
  if (const uint64_t j = r.jump.exchange(0)) r.cursor = j - 1;
  if (const uint64_t j = r.hjump.exchange(0)) r.hcursor = j - 1;
  auto hint = hint_for(r.object->id);
  uint64_t k = 0, p0 = 0, p1 = 0, hpos = kNoPos;
  if (!next_target(r, hint.get(), &k, &p0, &p1, &hpos)) return false;
  const bool in_hint = hpos != kNoPos;
  // Lookahead as far as the window reaches plus one chunk (all of lookahead() once the window is whole).
  uint64_t reach = lookahead();
  if (!r.wrap.load() && r.nfaults.load() < 2) {
    const uint64_t lim = std::max(r.limit.load(), p1);
    reach = in_hint ? r.hlimit.load() - std::min(r.hlimit.load(), hpos) : chunk_of(r, lim - 1) + 1 - k;
  }
  prefetch_after(r, in_hint ? hint.get() : nullptr, k, hpos, std::min(reach, lookahead()));
  if (r.wrap.load()) sweep(r);
  const uint64_t t0 = now_ns();
  auto ref = cache.get(*r.object, k, Priority::prefetch);
  fill_wait_ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
  if (!ref) {
    // Proactive fill stops for this mapping; a fault on these pages retries and, if it fails for good,
    // raises SIGBUS in the thread that needs them.
    MF_INFO("%s: background fill stopped at offset %llu: %s", r.object->path.c_str(),
            static_cast<unsigned long long>(k * cache.config().chunk_size), ref.error().message.c_str());
    r.fill_gave_up = true;
    return false;
  }
  const int moved = move_chunk(r, *ref, k);
  if (moved < 0 || (moved == 0 && !copy_from_chunk(r, *ref, p0, p1, true))) return false;
  if (in_hint)
    r.hcursor = hpos + 1;
  else
    r.cursor = p1;
  return true;
}

void MappingManager::Impl::serve_parked(FaultJob& j) {
  // A move (move_chunk) may have placed these pages since the fault, taking the chunk out of the cache: then
  // they are present (checked under the region's lock, so no move is half done), or, when the move comes
  // between that check and the get(), the get() says so (ESRCH) instead of fetching the chunk again.
  auto present = [&] {
    std::shared_lock lock(j.region->mu);
    return pages_present(*j.region, j.pages);
  };
  if (present()) return wake_pages(*j.region, j.pages);
  Result<ChunkRef> ref = cache.get_unless_taken(*j.region->object, j.chunk, Priority::demand);
  if (!ref && ref.error().code == ESRCH) {
    if (present()) return wake_pages(*j.region, j.pages);
    ref = cache.get(*j.region->object, j.chunk, Priority::demand);  // dropped since the move: fetch again
  }
  for (int attempt = 1; !ref && attempt < kFaultFetchAttempts; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
    ref = cache.get(*j.region->object, j.chunk, Priority::demand);
  }
  if (ref) {
    resolve(j, *ref);
    return;
  }
  for (uint64_t p : j.pages) fail_pages(*j.region, p, p + 1, ref.error());
}

void MappingManager::Impl::worker_loop() {
  Workers* w = workers;
  std::unique_lock lock(w->mu);
  for (;;) {
    w->cv.wait(lock, [&] {
      return w->quit || !w->parked.empty() || (!w->queue.empty() && w->fill_busy < kFillWorkers - 1);
    });
    if (w->quit) return;
    if (!w->parked.empty()) {  // demand first
      FaultJob j = std::move(w->parked.front());
      w->parked.pop_front();
      lock.unlock();
      serve_parked(j);
      lock.lock();
      continue;
    }
    std::shared_ptr<Region> r = w->queue.front().lock();
    w->queue.pop_front();
    if (!r) continue;
    ++w->fill_busy;
    const uint64_t e0 = r->epoch.load();
    lock.unlock();
    const bool more = fill_step(*r);
    lock.lock();
    --w->fill_busy;
    if (more) {
      w->queue.push_back(r);
    } else {
      // Idle until its next fault. A fault between fill_step and here bumped epoch; its enqueue saw
      // queued == true and left the region to us.
      r->queued.store(false);
      if (r->epoch.load() != e0 && !r->queued.exchange(true)) w->queue.push_back(r);
    }
    w->cv.notify_one();  // fill_busy dropped: another worker may take a fill step
  }
}

}  // namespace mf
