// ChunkCache against an in-memory store: chunk math, single flight, the budget under random operations
// (checked against the object's bytes as the reference model), failures and retries, ETag changes.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <latch>
#include <random>
#include <thread>
#include <vector>

#include "core/cache/chunk_buffer.hpp"
#include "core/cache/chunk_cache.hpp"
#include "tests/unit/cache/fake_store.hpp"

using namespace mf;
using mf::test::FakeStore;
using mf::test::pattern_bytes;

namespace {
constexpr uint64_t kChunk = 16384;  // 4 pages: small chunks make many chunks cheap

struct Fixture {
  FakeStore store;
  std::vector<std::byte> ref;
  std::unique_ptr<ChunkCache> cache;
  std::shared_ptr<const RemoteObject> obj;

  explicit Fixture(size_t size, uint64_t budget = 1 << 20, uint32_t seed = 7) {
    ref = pattern_bytes(size, seed);
    store.put("m/model.bin", ref);
    cache = std::make_unique<ChunkCache>(store, CacheConfig{kChunk, budget});
    obj = cache->register_object(store.info("m/model.bin"), "/mnt/m/model.bin");
  }
  bool check(uint64_t off, size_t len) {
    std::vector<std::byte> buf(len + 16, std::byte{0});
    auto n = cache->read(*obj, off, std::span(buf.data(), len));
    if (!n) return false;
    const uint64_t want = off >= ref.size() ? 0 : std::min<uint64_t>(len, ref.size() - off);
    if (*n != want) return false;
    return want == 0 || std::memcmp(buf.data(), ref.data() + off, want) == 0;
  }
};

}  // namespace

TEST_CASE("read spans chunks and clips at EOF") {
  Fixture f(10 * kChunk + 1234);
  CHECK(f.check(0, 1));
  CHECK(f.check(0, f.ref.size()));
  CHECK(f.check(kChunk - 10, 20));             // straddles one boundary
  CHECK(f.check(kChunk / 2, 3 * kChunk));      // spans four chunks
  CHECK(f.check(10 * kChunk, 5000));           // last, partial chunk: clipped to 1234 bytes
  CHECK(f.check(f.ref.size() - 1, 100));       // one byte left
  CHECK(f.check(f.ref.size(), 100));           // at EOF: 0
  CHECK(f.check(f.ref.size() + 4096, 100));    // past EOF: 0
  CHECK(f.cache->chunk_count(*f.obj) == 11);
  auto last = f.cache->get(*f.obj, 10, Priority::demand);
  REQUIRE(last);
  CHECK(last->length() == 1234);
  CHECK(last->offset() == 10 * kChunk);
  // The buffer is zero-padded to the page boundary after EOF.
  for (uint64_t i = 1234; i < 4096; ++i) REQUIRE(last->data()[i] == std::byte{0});
  CHECK_FALSE(f.cache->get(*f.obj, 11, Priority::demand));
  CHECK(reinterpret_cast<uintptr_t>(last->data()) % 4096 == 0);
}

TEST_CASE("a chunk is fetched once for many concurrent readers") {
  Fixture f(4 * kChunk);
  f.store.delay_us = 300000;  // with every reader started first (the latch), all 8 arrive while it is in flight
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  std::latch start(8);
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      start.arrive_and_wait();
      auto r = f.cache->get(*f.obj, 2, Priority::demand);
      if (r && std::memcmp(r->data(), f.ref.data() + 2 * kChunk, kChunk) == 0) ok.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  CHECK(ok == 8);
  CHECK(f.store.requests == 1);
  CHECK(f.cache->stats().chunks_fetched == 1);
  CHECK(f.cache->stats().demand_misses == 8);
}

TEST_CASE("prefetch then get: one request, counted as a prefetch hit") {
  Fixture f(4 * kChunk);
  f.store.delay_us = 50000;
  CHECK(f.cache->prefetch(*f.obj, 1));        // started a fetch
  CHECK_FALSE(f.cache->prefetch(*f.obj, 1));  // already in flight
  CHECK(f.cache->stats().in_flight == 1);
  auto r = f.cache->get(*f.obj, 1, Priority::demand);
  CHECK(f.cache->stats().in_flight == 0);
  CHECK_FALSE(f.cache->prefetch(*f.obj, 1));  // resident
  REQUIRE(r);
  CHECK(f.store.requests == 1);
  CHECK(f.cache->stats().prefetch_hits == 1);
  CHECK(f.cache->try_get(*f.obj, 1));
  CHECK_FALSE(f.cache->try_get(*f.obj, 3));
  CHECK(f.store.requests == 1);  // try_get never fetches
}

TEST_CASE("the budget is never exceeded under random operations; data always matches") {
  const uint64_t budget = 3 * kChunk;
  Fixture f(40 * kChunk + 777, budget, 11);
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      for (int op = 0; op < 400; ++op) {
        const uint64_t off = rng() % (f.ref.size() + kChunk);
        switch (rng() % 4) {
          case 0:
            f.cache->prefetch(*f.obj, rng() % 42);
            break;
          case 1: {
            const uint64_t idx = rng() % 41;
            auto r = f.cache->get(*f.obj, idx, Priority::demand);
            if (!r || std::memcmp(r->data(), f.ref.data() + idx * kChunk, r->length()) != 0) bad.fetch_add(1);
            break;
          }
          default:
            if (!f.check(off, rng() % (2 * kChunk) + 1)) bad.fetch_add(1);
        }
      }
    });
  for (auto& t : ts) t.join();
  CHECK(bad == 0);
  const CacheStats s = f.cache->stats();
  CHECK(s.peak_resident_bytes <= budget);
  CHECK(s.resident_bytes <= budget);
  CHECK(s.evictions > 0);
  CHECK(s.chunks_fetched > 41);  // the object is 13x the budget: chunks were fetched again after eviction
}

TEST_CASE("a pinned chunk is never evicted") {
  Fixture f(20 * kChunk, 2 * kChunk);
  auto pinned = f.cache->get(*f.obj, 5, Priority::demand);
  REQUIRE(pinned);
  for (uint64_t i = 0; i < 20; ++i) CHECK(f.check(i * kChunk, kChunk));
  CHECK(std::memcmp(pinned->data(), f.ref.data() + 5 * kChunk, kChunk) == 0);
  CHECK(f.cache->try_get(*f.obj, 5));
  CHECK(f.cache->stats().peak_resident_bytes <= 2 * kChunk);
}

TEST_CASE("delivered chunks are evicted before unused prefetched ones; prefetch is skipped when full") {
  Fixture f(10 * kChunk, 3 * kChunk);
  REQUIRE(f.check(0, 10));  // chunk 0 delivered
  f.cache->prefetch(*f.obj, 1);
  f.cache->prefetch(*f.obj, 2);
  while (f.cache->stats().chunks_fetched < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  f.cache->prefetch(*f.obj, 3);  // evicts delivered chunk 0 (prefetch may only evict delivered chunks)
  while (f.cache->stats().chunks_fetched < 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK_FALSE(f.cache->prefetch(*f.obj, 4));  // nothing delivered left: skipped
  CHECK(f.cache->stats().prefetch_skipped == 1);
  CHECK(f.store.requests == 4);
  CHECK_FALSE(f.cache->try_get(*f.obj, 0));
  // A demand read of chunk 5 must evict one unused prefetched chunk; 1, 2, 3 were never delivered.
  REQUIRE(f.check(5 * kChunk, 10));
  CHECK(f.store.requests == 5);
  CHECK(f.cache->stats().peak_resident_bytes <= 3 * kChunk);
}

TEST_CASE("a failed fetch reaches every waiter, is not cached, and a later get retries") {
  Fixture f(4 * kChunk);
  std::atomic<bool> failing{true};
  f.store.delay_us = 300000;
  f.store.fail_hook = [&](const RangeRequest& r) -> std::optional<Error> {
    if (r.offset == kChunk && failing) return make_error(EIO, "injected");
    return std::nullopt;
  };
  std::vector<std::thread> ts;
  std::atomic<int> errors{0};
  std::latch start(4);
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      start.arrive_and_wait();
      auto r = f.cache->get(*f.obj, 1, Priority::demand);
      if (!r && r.error().code == EIO) errors.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  CHECK(errors == 4);
  CHECK(f.store.requests == 1);
  CHECK(f.cache->stats().resident_bytes == 0);
  CHECK(f.cache->stats().fetch_errors == 1);
  // A read spanning the failed chunk fails as a whole: no partial data reported as success.
  f.store.delay_us = 0;
  std::vector<std::byte> buf(3 * kChunk);
  auto n = f.cache->read(*f.obj, 0, buf);
  CHECK_FALSE(n);
  failing = false;
  // Retry: the store works again, the read succeeds and matches.
  CHECK(f.check(0, 3 * kChunk));
}

TEST_CASE("an object changed on the server fails with ESTALE") {
  Fixture f(4 * kChunk);
  f.store.put("m/model.bin", pattern_bytes(4 * kChunk, 99), "\"e2\"");
  std::vector<std::byte> buf(100);
  auto n = f.cache->read(*f.obj, 0, buf);
  REQUIRE_FALSE(n);
  CHECK(n.error().code == ESTALE);
  auto g = f.cache->get(*f.obj, 2, Priority::demand);
  REQUIRE_FALSE(g);
  CHECK(g.error().code == ESTALE);
}

TEST_CASE("objects are kept apart; stats count served bytes") {
  Fixture f(3 * kChunk);
  f.store.put("m/other.bin", pattern_bytes(3 * kChunk, 5));
  auto other = f.cache->register_object(f.store.info("m/other.bin"), "/mnt/m/other.bin");
  CHECK(other->id != f.obj->id);
  std::vector<std::byte> a(kChunk), b(kChunk);
  REQUIRE(f.cache->read(*f.obj, kChunk, a));
  REQUIRE(f.cache->read(*other, kChunk, b));
  CHECK(std::memcmp(a.data(), b.data(), kChunk) != 0);
  CHECK(f.cache->stats().bytes_served == 2 * kChunk);
}

TEST_CASE("take: only the sole holder gets the buffer; a taken chunk is not prefetched again, a get refetches") {
  Fixture f(4 * kChunk + 100, 3 * kChunk);
  auto a = f.cache->get(*f.obj, 2, Priority::demand);
  REQUIRE(a);
  {
    auto b = f.cache->get(*f.obj, 2, Priority::demand);  // a second pin: nobody may take it
    REQUIRE(b);
    CHECK_FALSE(f.cache->take(*a).data);
    CHECK(f.cache->stats().resident_bytes == kChunk);
  }
  const TakenBuffer t = f.cache->take(*a);
  REQUIRE(t.data);
  CHECK(t.bytes == kChunk);
  CHECK(std::memcmp(t.data, f.ref.data() + 2 * kChunk, kChunk) == 0);  // the bytes stay the caller's to read
  CHECK(f.cache->stats().resident_bytes == 0);                          // and no longer count in the budget
  CHECK(f.cache->stats().chunks_taken == 1);
  CHECK_FALSE(f.cache->take(*a).data);  // taken once
  CHECK_FALSE(f.cache->try_get(*f.obj, 2));
  CHECK(f.cache->request_prefetch(*f.obj, 2) == PrefetchOutcome::present);  // its bytes are in use elsewhere
  auto u = f.cache->get_unless_taken(*f.obj, 2, Priority::demand);          // a parked fault: look first
  REQUIRE_FALSE(u);
  CHECK(u.error().code == ESRCH);
  CHECK(f.store.requests == 1);
  a = ChunkRef{};                        // the old pin frees nothing
  free_chunk_buffer(t.data, t.bytes);
  CHECK(f.check(2 * kChunk, kChunk));    // a read fetches it again
  CHECK(f.store.requests == 2);
  CHECK(f.cache->prefetch(*f.obj, 3));   // other chunks prefetch as before
}
