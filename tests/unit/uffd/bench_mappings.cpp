// Micro-benchmark (not a test): reading a remote object through a uffd mapping, an eager mapping and plain
// ChunkCache::read, against the in-memory FakeStore with a per-request latency and a shared link bandwidth.
//
//   bench_mappings [latency_ms=20] [link_GBps=2] [size_MiB=512] [chunk_MiB=8] [budget_MiB=512]
//
// Patterns (each reads the whole object once, memcpy of each piece into a 64 MiB buffer, as a loader's
// copy to the device would): sequential 32 MiB pieces; "name-sorted": tensors of 16-64 MiB in shuffled order,
// each read front to back (released safetensors' order); random 2 MiB pieces. uffd mode maps the object
// twice like safetensors and touches only page 0 of the first mapping. Each run starts with a cold cache.
// Prints GB/s (object bytes / wall time from map() or the first read to the last byte copied).
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "core/vfs/mappings.hpp"
#include "tests/unit/cache/fake_store.hpp"

using namespace mf;

namespace {

struct Piece {
  uint64_t off, len;
};

std::vector<Piece> sequential(uint64_t size) {
  std::vector<Piece> v;
  for (uint64_t o = 0; o < size; o += 32ull << 20) v.push_back({o, std::min<uint64_t>(32ull << 20, size - o)});
  return v;
}

std::vector<Piece> name_sorted(uint64_t size) {
  std::mt19937_64 rng(42);
  std::vector<Piece> v;
  for (uint64_t o = 0; o < size;) {
    const uint64_t n = std::min<uint64_t>(((16 + rng() % 49) << 20) + (rng() % 256) * 4096, size - o);
    v.push_back({o, n});
    o += n;
  }
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

std::vector<Piece> random2m(uint64_t size) {
  std::vector<Piece> v;
  for (uint64_t o = 0; o < size; o += 2ull << 20) v.push_back({o, std::min<uint64_t>(2ull << 20, size - o)});
  std::shuffle(v.begin(), v.end(), std::mt19937_64(7));
  return v;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Setup {
  int latency_ms = 20;
  double gbps = 2;
  uint64_t size = 512ull << 20, chunk = 8ull << 20, budget = 512ull << 20;
};

// One run: a fresh store connection state (the object stays), a cold cache. Returns GB/s, or -1 on error.
double run(test::FakeStore& store, const Setup& s, const std::vector<Piece>& pat, const char* how,
           std::vector<std::byte>& dst, const std::vector<std::byte>& ref, std::string* extra) {
  ChunkCache cache(store, CacheConfig{s.chunk, s.budget});
  auto obj = cache.register_object(store.info("m"), "/bench/m");
  const bool pread = std::strcmp(how, "pread") == 0;
  MappingManager mgr(cache, std::strcmp(how, "eager") == 0 ? UffdSetting::off : UffdSetting::on,
                     MapSyscalls::libc());
  const auto t0 = std::chrono::steady_clock::now();
  std::byte *hdr = nullptr, *p = nullptr;
  if (!pread) {
    if (mgr.mode() == MapMode::uffd) {
      auto h = mgr.map(obj, nullptr, s.size, PROT_READ, MAP_PRIVATE, 0);
      if (!h) return -1;
      hdr = static_cast<std::byte*>(*h);
      volatile std::byte b = hdr[0];  // the header length and JSON, as safetensors reads them
      (void)b;
    }
    auto m = mgr.map(obj, nullptr, s.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
    if (!m) return -1;
    p = static_cast<std::byte*>(*m);
  }
  bool ok = true;
  for (const Piece& x : pat) {
    if (pread) {
      auto r = cache.read(*obj, x.off, std::span<std::byte>(dst.data(), x.len));
      if (!r || *r != x.len) return -1;
    } else {
      std::memcpy(dst.data(), p + x.off, x.len);
    }
    ok &= std::memcmp(dst.data(), ref.data() + x.off, 4096) == 0;
  }
  const double t = seconds_since(t0);
  const MappingStats ms = mgr.stats();
  const CacheStats cs = cache.stats();
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "filled %.0f MiB, faults %llu (parked %llu, wait %.0f ms), copy %.0f ms, filler wait %.0f ms, "
                "fetched %llu chunks, %s",
                static_cast<double>(ms.bytes_filled) / (1 << 20), static_cast<unsigned long long>(ms.uffd_faults),
                static_cast<unsigned long long>(ms.parked_faults), ms.fault_wait_ns / 1e6, ms.copy_ns / 1e6,
                ms.fill_wait_ns / 1e6, static_cast<unsigned long long>(cs.chunks_fetched),
                ok ? "bytes ok" : "BYTES WRONG");
  *extra = buf;
  if (hdr) {
    int rc;
    mgr.munmap(hdr, s.size, &rc);
  }
  if (p) {
    int rc;
    if (!mgr.munmap(p, s.size, &rc)) ::munmap(p, s.size);
  }
  return ok ? static_cast<double>(s.size) / t / 1e9 : -1;
}

// The 'cached' scenario: every chunk resident before mapping. Reads the object sequentially through a
// uffd mapping (32 MiB memcpy pieces) and, for reference, memcpys the same bytes straight out of the chunk
// buffers. Prints both rates and their ratio.
void cached(test::FakeStore& store, const Setup& s, std::vector<std::byte>& dst, const std::vector<std::byte>& ref) {
  ChunkCache cache(store, CacheConfig{s.chunk, std::max(s.budget, s.size + s.chunk)});
  auto obj = cache.register_object(store.info("m"), "/bench/m");
  for (uint64_t k = 0; k < cache.chunk_count(*obj); ++k)
    if (!cache.get(*obj, k, Priority::demand)) return;
  const auto pieces = sequential(s.size);
  auto t0 = std::chrono::steady_clock::now();
  for (const Piece& x : pieces)
    for (uint64_t o = x.off; o < x.off + x.len;) {
      auto c = cache.try_get(*obj, o / s.chunk);
      const uint64_t n = std::min(c.offset() + c.length(), x.off + x.len) - o;
      std::memcpy(dst.data() + (o - x.off), c.data() + (o - c.offset()), n);
      o += n;
    }
  const double mem = static_cast<double>(s.size) / seconds_since(t0) / 1e9;
  MappingManager mgr(cache, UffdSetting::on, MapSyscalls::libc());
  if (mgr.mode() != MapMode::uffd) return;
  t0 = std::chrono::steady_clock::now();
  auto m = mgr.map(obj, nullptr, s.size, PROT_READ, MAP_PRIVATE, 0);
  if (!m) return;
  const auto* p = static_cast<const std::byte*>(*m);
  bool ok = true;
  for (const Piece& x : pieces) {
    std::memcpy(dst.data(), p + x.off, x.len);
    ok &= std::memcmp(dst.data(), ref.data() + x.off, 4096) == 0;
  }
  const double mapped = static_cast<double>(s.size) / seconds_since(t0) / 1e9;
  const MappingStats ms = mgr.stats();
  std::printf("cached       uffd   %6.2f GB/s  memcpy from chunks %.2f GB/s, ratio %.2f, faults %llu, copy %.0f ms, %s\n",
              mapped, mem, mapped / mem, static_cast<unsigned long long>(ms.uffd_faults), ms.copy_ns / 1e6,
              ok ? "bytes ok" : "BYTES WRONG");
  int rc;
  mgr.munmap(*m, s.size, &rc);
}

}  // namespace

int main(int argc, char** argv) {
  Setup s;
  if (argc > 1) s.latency_ms = std::atoi(argv[1]);
  if (argc > 2) s.gbps = std::atof(argv[2]);
  if (argc > 3) s.size = std::strtoull(argv[3], nullptr, 10) << 20;
  if (argc > 4) s.chunk = std::strtoull(argv[4], nullptr, 10) << 20;
  if (argc > 5) s.budget = std::strtoull(argv[5], nullptr, 10) << 20;
  test::FakeStore store(16);  // 16 concurrent requests at most, like a connection pool
  std::vector<std::byte> ref(s.size);
  for (uint64_t i = 0; i < s.size / 8; ++i) {
    const uint64_t v = i * 0x9E3779B97F4A7C15ull;
    std::memcpy(ref.data() + i * 8, &v, 8);
  }
  store.put("m", ref);
  store.delay_us = s.latency_ms * 1000;
  store.bytes_per_sec = static_cast<uint64_t>(s.gbps * 1e9);
  std::vector<std::byte> dst(64ull << 20);
  std::memset(dst.data(), 0, dst.size());
  std::printf("object %llu MiB, chunk %llu MiB, budget %llu MiB, latency %d ms, link %.2f GB/s, 16 store threads\n",
              static_cast<unsigned long long>(s.size >> 20), static_cast<unsigned long long>(s.chunk >> 20),
              static_cast<unsigned long long>(s.budget >> 20), s.latency_ms, s.gbps);
  const std::pair<const char*, std::vector<Piece>> pats[] = {
      {"sequential", sequential(s.size)}, {"name-sorted", name_sorted(s.size)}, {"random-2MiB", random2m(s.size)}};
  cached(store, s, dst, ref);
  std::fflush(stdout);
  if (argc > 6) return 0;  // cached only
  for (const auto& [name, pat] : pats)
    for (const char* how : {"uffd", "eager", "pread"}) {
      std::string extra;
      const double g = run(store, s, pat, how, dst, ref, &extra);
      std::printf("%-12s %-6s %6.2f GB/s  %s\n", name, how, g, extra.c_str());
      std::fflush(stdout);
    }
  return 0;
}
