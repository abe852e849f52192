// The fill policy of uffd mappings (core/uffd/filler.cpp): nothing is fetched or copied before a mapping's
// first fault; the fill window grows with faults; the filler and the cache lookahead follow the latest fault;
// a fault on a resident chunk is not stuck behind one waiting for the network; hint_order sets the order.
// Residency is observed with mincore(2), which never faults.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

#include "core/vfs/mappings.hpp"
#include "tests/unit/cache/fake_store.hpp"

using namespace mf;
using mf::test::FakeStore;
using mf::test::pattern_bytes;

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kChunk = 256 * 1024;  // also the fault block here (min(2 MiB, chunk))

struct Fx {
  FakeStore store;
  std::vector<std::byte> ref;
  ChunkCache cache;
  MappingManager mgr;
  std::shared_ptr<const RemoteObject> obj;

  explicit Fx(uint64_t size, int delay_us = 0, uint64_t budget = 128 * kChunk)
      : ref(pattern_bytes(size, 9)), cache(store, CacheConfig{kChunk, budget}),
        mgr(cache, UffdSetting::automatic, MapSyscalls::libc()) {
    store.put("m.bin", ref);
    store.delay_us = delay_us;
    obj = cache.register_object(store.info("m.bin"), "/mnt/m.bin");
  }
  std::byte* map(uint64_t len) {
    auto r = mgr.map(obj, nullptr, len, PROT_READ, MAP_PRIVATE, 0);
    REQUIRE(r);
    return static_cast<std::byte*>(*r);
  }
  void unmap(void* p, uint64_t len) {
    int rc = -1;
    CHECK(mgr.munmap(p, len, &rc));
    CHECK(rc == 0);
  }
  bool touch_ok(const std::byte* p, uint64_t off) const { return p[off] == ref[off]; }
};

// Resident pages of chunk k of a mapping at p (0..kChunk/kPage).
uint64_t resident_pages(const std::byte* p, uint64_t k) {
  std::vector<unsigned char> v(kChunk / kPage);
  REQUIRE(::mincore(const_cast<std::byte*>(p) + k * kChunk, kChunk, v.data()) == 0);
  return static_cast<uint64_t>(std::count_if(v.begin(), v.end(), [](unsigned char c) { return c & 1; }));
}
bool chunk_full(const std::byte* p, uint64_t k) { return resident_pages(p, k) == kChunk / kPage; }

bool eventually(const std::function<bool()>& cond, int ms = 3000) {
  for (int i = 0; i < ms; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

// Waits until the manager stops placing bytes (the filler is idle).
void settle(const MappingManager& m) {
  uint64_t last = ~0ull;
  for (int i = 0; i < 300 && m.stats().bytes_filled != last; ++i) {
    last = m.stats().bytes_filled;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
}

bool logged(const std::vector<uint64_t>& log, uint64_t chunk) {
  return std::find(log.begin(), log.end(), chunk * kChunk) != log.end();
}

bool uffd_here(const MappingManager& m) {
  if (m.mode() == MapMode::uffd) return true;
  MESSAGE("userfaultfd is unavailable here: skipped");
  return false;
}
}  // namespace

TEST_CASE("lazy: a mapping never touched costs no request and no copy") {
  Fx f(16 * kChunk);
  if (!uffd_here(f.mgr)) return;
  std::byte* p = f.map(f.ref.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  CHECK(f.store.requests.load() == 0);
  CHECK(f.mgr.stats().bytes_filled == 0);
  f.unmap(p, f.ref.size());
  CHECK(f.store.requests.load() == 0);
}

TEST_CASE("lazy: safetensors' two mappings, header read from the first, all tensors from the second") {
  Fx f(64 * kChunk);
  if (!uffd_here(f.mgr)) return;
  const uint64_t len = f.ref.size();
  std::byte* hdr = f.map(len);
  std::byte* data = f.map(len);
  CHECK(f.touch_ok(hdr, 0));     // the 8-byte length
  CHECK(f.touch_ok(hdr, 9000));  // the JSON header
  bool same = true;
  for (uint64_t o = 0; o < len; o += kPage / 2) same &= f.touch_ok(data, o);
  CHECK(same);
  settle(f.mgr);
  // The header mapping got its fault block and one window block (2 chunks here), not the file.
  uint64_t hdr_pages = 0;
  for (uint64_t k = 0; k < 64; ++k) hdr_pages += resident_pages(hdr, k);
  CHECK(hdr_pages <= 2 * kChunk / kPage);
  const uint64_t filled = f.mgr.stats().bytes_filled;
  CHECK(filled >= len);
  CHECK(filled <= len + 2 * kChunk);  // about one file copied, not two
  f.unmap(hdr, len);
  f.unmap(data, len);
}

TEST_CASE("fill window: follows the latest fault, doubles per fault, then covers the whole mapping") {
  Fx f(64 * kChunk, 2000);
  if (!uffd_here(f.mgr)) return;
  std::byte* p = f.map(f.ref.size());
  CHECK(f.touch_ok(p, 40 * kChunk));  // fault 1: block = chunk 40, window 1 chunk
  CHECK(eventually([&] { return chunk_full(p, 41); }));
  settle(f.mgr);
  CHECK(resident_pages(p, 42) == 0);
  for (uint64_t k = 0; k < 40; ++k) CHECK(resident_pages(p, k) == 0);  // not filled from offset 0
  CHECK(f.touch_ok(p, 20 * kChunk + 5));  // fault 2: a jump back; window 2 chunks
  CHECK(eventually([&] { return chunk_full(p, 21) && chunk_full(p, 22); }));
  settle(f.mgr);
  CHECK(resident_pages(p, 23) == 0);
  CHECK(resident_pages(p, 0) == 0);
  // Faults 3..7 (each on a chunk no earlier window reached): windows 4, 8, 16, 32, 64 chunks; the 7th
  // covers the mapping and everything gets filled.
  for (uint64_t k : {2, 50, 8, 30, 0}) CHECK(f.touch_ok(p, k * kChunk));
  CHECK(eventually([&] {
    for (uint64_t k = 0; k < 64; ++k)
      if (!chunk_full(p, k)) return false;
    return true;
  }));
  CHECK(std::equal(p, p + f.ref.size(), f.ref.begin()));
  f.unmap(p, f.ref.size());
}

TEST_CASE("cache lookahead follows faults, not offset order from 0") {
  Fx f(64 * kChunk, 20000);
  if (!uffd_here(f.mgr)) return;
  std::byte* p = f.map(f.ref.size());
  CHECK(f.touch_ok(p, 30 * kChunk));  // window 1 chunk: prefetch 31 (and 32 from the fill step)
  CHECK(eventually([&] { auto l = f.store.request_log(); return logged(l, 31) && logged(l, 32); }));
  settle(f.mgr);
  CHECK_FALSE(logged(f.store.request_log(), 33));  // one fault: lookahead bounded by the window
  // A second fault means the mapping is in use: full lookahead (16 chunks) from it. The filler fills the
  // 2-chunk window (to chunk 12) and prefetches up to 16 ahead of the chunk it fills (at most chunk 28).
  CHECK(f.touch_ok(p, 10 * kChunk + 7 * kPage));
  CHECK(eventually([&] {
    auto l = f.store.request_log();
    for (uint64_t k = 11; k <= 26; ++k)
      if (!logged(l, k)) return false;
    return true;
  }));
  settle(f.mgr);
  const auto log = f.store.request_log();
  CHECK_FALSE(logged(log, 0));
  CHECK_FALSE(logged(log, 1));
  CHECK_FALSE(logged(log, 29));
  f.unmap(p, f.ref.size());
}

TEST_CASE("sweep: once the window covers the mapping, chunks far from the reader are requested early") {
  Fx f(64 * kChunk, 100000);  // 100 ms per request, 4 store threads: ~25 ms per chunk at best
  if (!uffd_here(f.mgr)) return;
  std::byte* p = f.map(f.ref.size());
  // Seven faults on chunks no earlier window reached: windows 1, 2, ... 64 chunks; the 7th (chunk 1) covers
  // the mapping (wrap). Windows filled 41, 21-22, 51-54, 31-38, 61-63 and 11-42 before it.
  for (uint64_t k : {40, 20, 50, 30, 60, 10, 1}) CHECK(f.touch_ok(p, k * kChunk));
  // The filler goes on from chunk 2 upwards (2-9, 43-49, 55-59) and reaches chunk 0 only after wrapping
  // round; no lookahead reaches back to it. The sweep requests chunk 0 (the first the mapping lacks in
  // offset order) as soon as fewer than 16 fetches are in flight, long before chunk 59 is filled.
  CHECK(eventually([&] { return logged(f.store.request_log(), 0); }, 5000));
  CHECK_FALSE(chunk_full(p, 59));
  CHECK(eventually([&] {
    for (uint64_t k = 0; k < 64; ++k)
      if (!chunk_full(p, k)) return false;
    return true;
  }, 10000));
  CHECK(std::equal(p, p + f.ref.size(), f.ref.begin()));
  f.unmap(p, f.ref.size());
}

TEST_CASE("a fault on a resident chunk is not stuck behind a fault waiting for the network") {
  Fx f(64 * kChunk);
  if (!uffd_here(f.mgr)) return;
  f.store.fail_hook = [](const RangeRequest& r) -> std::optional<Error> {
    if (r.offset == 20 * kChunk) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return std::nullopt;
  };
  REQUIRE(f.cache.get(*f.obj, 5, Priority::demand));  // resident, the ref dropped at once
  std::byte* p = f.map(f.ref.size());
  std::thread slow([&] { CHECK(f.touch_ok(p, 20 * kChunk)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the fault on chunk 20 is in
  auto t0 = std::chrono::steady_clock::now();
  CHECK(f.touch_ok(p, 5 * kChunk + 3 * kPage));  // resident chunk
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(700));
  t0 = std::chrono::steady_clock::now();
  CHECK(f.touch_ok(p, 50 * kChunk));  // not resident, but the store answers at once
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(700));
  slow.join();
  CHECK(f.mgr.stats().parked_faults >= 2);
  f.unmap(p, f.ref.size());
}

TEST_CASE("hint_order: the filler and the cache lookahead use the planned order after a fault") {
  Fx f(64 * kChunk, 5000);
  if (!uffd_here(f.mgr)) return;
  const std::vector<uint64_t> order = {50, 10, 30, 20, 40, 60, 0, 5};
  f.mgr.hint_order(*f.obj, order);
  std::byte* p = f.map(f.ref.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(f.store.requests.load() == 0);  // a hint does not make an untouched mapping fill
  CHECK(f.touch_ok(p, 50 * kChunk));    // fault 1 at position 0: window 1 chunk -> chunk 10 filled
  CHECK(eventually([&] { return chunk_full(p, 10); }));
  settle(f.mgr);
  CHECK(resident_pages(p, 51) == 0);  // not offset order
  CHECK(resident_pages(p, 30) == 0);  // window: only one chunk ahead after one fault
  const auto log = f.store.request_log();
  CHECK(logged(log, 10));
  CHECK(logged(log, 30));  // the cache looks one chunk past the window, in hint order
  CHECK_FALSE(logged(log, 51));
  // The hint removed: readahead in offset order again.
  f.mgr.hint_order(*f.obj, {});
  CHECK(f.touch_ok(p, 3 * kChunk));
  CHECK(eventually([&] { return chunk_full(p, 4) && chunk_full(p, 5); }));
  f.unmap(p, f.ref.size());
}
