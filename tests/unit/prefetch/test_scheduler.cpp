// The scheduler: demand requests overtake queued prefetch (ChunkCache's prefetch cap), the feeder fetches a
// safetensors file in the plan's order, lookahead files come after the file in use and only N of them, the
// budget bounds what prefetch brings in, and a header that does not parse gives no plan and no error.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <thread>

#include "core/prefetch/prefetcher.hpp"
#include "core/safetensors/header.hpp"
#include "core/safetensors/plan.hpp"
#include "fake_store.hpp"
#include "st_test_util.hpp"

using namespace mf;
using mf::test::FakeStore;
using mf::test::pattern_bytes;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kChunk = 64 << 10;

// Forwards to a FakeStore and logs (key, chunk) in the order requests were sent.
class LoggingStore : public ObjectStore {
 public:
  explicit LoggingStore(FakeStore& s) : inner_(s) {}
  Result<ObjectInfo> stat(std::string_view k) override { return inner_.stat(k); }
  Result<Listing> list(std::string_view p, bool d) override { return inner_.list(p, d); }
  StoreStats stats() const override { return inner_.stats(); }
  void read_async(RangeRequest r, ReadCallback done) override {
    {
      std::lock_guard lock(mu_);
      log_.emplace_back(r.key, r.offset / kChunk);
    }
    inner_.read_async(std::move(r), std::move(done));
  }
  std::vector<std::pair<std::string, uint64_t>> log() {
    std::lock_guard lock(mu_);
    return log_;
  }

 private:
  FakeStore& inner_;
  std::mutex mu_;
  std::vector<std::pair<std::string, uint64_t>> log_;
};

// A safetensors file of 4 tensors of 2 chunks each whose name order is the reverse of their offset order.
std::vector<std::byte> st_file() {
  using safetensors::test::entry;
  const uint64_t t = 2 * kChunk;
  std::string json = "{" + entry("w0", "U8", std::to_string(t), 3 * t, 4 * t) + "," +
                     entry("w1", "U8", std::to_string(t), 2 * t, 3 * t) + "," +
                     entry("w2", "U8", std::to_string(t), t, 2 * t) + "," +
                     entry("w3", "U8", std::to_string(t), 0, t) + "}";
  auto f = safetensors::test::make_file(json, 4 * t);
  for (size_t i = 8 + json.size() + 8; i < f.size(); ++i) f[i] = static_cast<std::byte>(i * 7);
  return f;
}

std::vector<uint64_t> name_plan(const std::vector<std::byte>& f) {
  auto h = safetensors::parse_header(f, f.size());
  REQUIRE(h);
  safetensors::PlanConfig pc;
  pc.chunk_size = kChunk;
  auto p = safetensors::plan_name_order(*h, pc);
  REQUIRE(p);
  return *p;
}

void wait_quiet(ChunkCache& cache) {
  for (int i = 0; i < 400; ++i) {
    std::this_thread::sleep_for(10ms);
    auto s = cache.stats();
    if (s.in_flight == 0 && s.prefetch_queued == 0) {
      std::this_thread::sleep_for(30ms);  // one more feeder round may start something
      s = cache.stats();
      if (s.in_flight == 0) return;
    }
  }
  FAIL("cache never went quiet");
}

std::vector<uint64_t> chunks_of(const std::vector<std::pair<std::string, uint64_t>>& log, const std::string& key) {
  std::vector<uint64_t> out;
  for (const auto& [k, c] : log)
    if (k == key) out.push_back(c);
  return out;
}

}  // namespace

TEST_CASE("cache: a demand get overtakes prefetches queued behind the cap") {
  FakeStore fake(8);
  fake.delay_us = 100000;
  LoggingStore store(fake);
  fake.put("o", pattern_bytes(8 * kChunk, 1));
  CacheConfig cc;
  cc.chunk_size = kChunk;
  cc.budget_bytes = 64 * kChunk;
  cc.max_prefetch_inflight = 2;
  ChunkCache cache(store, cc);
  auto o = cache.register_object(fake.info("o"), "/m/o");
  for (uint64_t i = 0; i < 8; ++i) CHECK(cache.request_prefetch(*o, i) == PrefetchOutcome::started);
  CHECK(cache.request_prefetch(*o, 3) == PrefetchOutcome::present);
  auto s = cache.stats();
  CHECK(s.prefetch_in_flight == 2);
  CHECK(s.prefetch_queued == 6);
  CHECK(store.log().size() == 2);  // only the cap went to the store
  auto ref = cache.get(*o, 7, Priority::demand);  // queued last: must not wait for 2..6
  REQUIRE(ref);
  auto log = chunks_of(store.log(), "o");
  REQUIRE(log.size() >= 3);
  CHECK(log[2] == 7);
  ref = Result<ChunkRef>(ChunkRef());
  wait_quiet(cache);
  log = chunks_of(store.log(), "o");
  CHECK(log.size() == 8);  // every chunk once
  CHECK(cache.stats().prefetch_hits == 1);
}

TEST_CASE("cache: bytes_wasted counts prefetched chunks nobody read") {
  FakeStore fake(4);
  fake.put("o", pattern_bytes(4 * kChunk, 2));
  CacheConfig cc;
  cc.chunk_size = kChunk;
  cc.budget_bytes = 64 * kChunk;
  ChunkCache cache(fake, cc);
  auto o = cache.register_object(fake.info("o"), "/m/o");
  for (uint64_t i = 0; i < 4; ++i) cache.prefetch(*o, i);
  wait_quiet(cache);
  CHECK(cache.stats().unused_bytes == 4 * kChunk);
  std::vector<std::byte> buf(kChunk);
  REQUIRE(cache.read(*o, 0, buf));
  auto s = cache.stats();
  CHECK(s.bytes_wasted == 3 * kChunk);
  CHECK(s.unused_bytes == 3 * kChunk);
}

TEST_CASE("prefetcher: a safetensors file is fetched in the name-order plan") {
  FakeStore fake(2);
  fake.delay_us = 20000;
  LoggingStore store(fake);
  const auto bytes = st_file();
  const auto plan = name_plan(bytes);
  std::vector<uint64_t> sorted = plan;
  std::sort(sorted.begin(), sorted.end());
  REQUIRE(plan != sorted);  // the test means something only if the orders differ
  fake.put("m/model.safetensors", bytes);
  CacheConfig cc;
  cc.chunk_size = kChunk;
  cc.budget_bytes = 256 * kChunk;
  cc.max_prefetch_inflight = 1;  // one at a time: the store sees exactly the feeder's order
  ChunkCache cache(store, cc);
  auto o = cache.register_object(fake.info("m/model.safetensors"), "/m/model.safetensors");
  std::vector<std::vector<uint64_t>> hints;
  PrefetchHooks hooks;
  hooks.hint_order = [&](const RemoteObject&, std::vector<uint64_t> c) { hints.push_back(std::move(c)); };
  PrefetchConfig pc;
  pc.max_inflight = 1;
  Prefetcher pf(cache, pc, hooks);
  pf.on_open(o);
  pf.wait_idle();
  wait_quiet(cache);
  CHECK(chunks_of(store.log(), "m/model.safetensors") == plan);
  REQUIRE(hints.size() == 1);
  CHECK(hints[0] == plan);
  CHECK(pf.stats().plans == 1);
}

TEST_CASE("prefetcher: index lookahead fetches the next shard after the current one, and only N") {
  FakeStore fake(4);
  fake.delay_us = 5000;
  LoggingStore store(fake);
  const auto bytes = st_file();
  std::map<std::string, std::string> keys;  // local path -> key
  for (int i = 1; i <= 3; ++i) {
    std::string name = "model-0000" + std::to_string(i) + "-of-00003.safetensors";
    fake.put("m/" + name, bytes);
    keys["/m/" + name] = "m/" + name;
  }
  std::string idx = R"({"weight_map":{"w0":"model-00001-of-00003.safetensors",)"
                    R"("w1":"model-00002-of-00003.safetensors","w2":"model-00003-of-00003.safetensors"}})";
  std::vector<std::byte> ib(idx.size());
  std::memcpy(ib.data(), idx.data(), idx.size());
  fake.put("m/model.safetensors.index.json", ib);
  keys["/m/model.safetensors.index.json"] = "m/model.safetensors.index.json";
  CacheConfig cc;
  cc.chunk_size = kChunk;
  cc.budget_bytes = 256 * kChunk;
  cc.max_prefetch_inflight = 2;
  ChunkCache cache(store, cc);
  std::map<std::string, std::shared_ptr<const RemoteObject>> objs;
  for (const auto& [path, key] : keys) objs[path] = cache.register_object(fake.info(key), path);
  PrefetchHooks hooks;
  hooks.resolve = [&](const std::string& p) -> std::shared_ptr<const RemoteObject> {
    auto it = objs.find(p);
    return it == objs.end() ? nullptr : it->second;
  };
  PrefetchConfig pc;
  pc.max_inflight = 2;
  pc.lookahead_files = 1;
  Prefetcher pf(cache, pc, hooks);
  pf.on_open(objs["/m/model.safetensors.index.json"]);
  pf.wait_idle();
  wait_quiet(cache);
  // the index names shard 1 first: it is fetched ahead of its open
  CHECK(chunks_of(store.log(), "m/model-00001-of-00003.safetensors").size() == name_plan(bytes).size());
  CHECK(chunks_of(store.log(), "m/model-00002-of-00003.safetensors").empty());
  pf.on_open(objs["/m/model-00001-of-00003.safetensors"]);
  pf.wait_idle();
  wait_quiet(cache);
  CHECK(chunks_of(store.log(), "m/model-00002-of-00003.safetensors").size() == name_plan(bytes).size());
  CHECK(chunks_of(store.log(), "m/model-00003-of-00003.safetensors").empty());  // N = 1
  CHECK(pf.stats().indexes == 1);
  CHECK(pf.stats().lookahead_files == 2);
}

TEST_CASE("prefetcher: the file in use goes before lookahead files") {
  FakeStore fake(4);
  fake.delay_us = 20000;
  LoggingStore store(fake);
  const auto bytes = st_file();
  fake.put("m/a.safetensors", bytes);
  fake.put("m/b.safetensors", bytes);
  CacheConfig cc;
  cc.chunk_size = kChunk;
  cc.budget_bytes = 256 * kChunk;
  cc.max_prefetch_inflight = 1;
  ChunkCache cache(store, cc);
  auto a = cache.register_object(fake.info("m/a.safetensors"), "/m/a.safetensors");
  auto b = cache.register_object(fake.info("m/b.safetensors"), "/m/b.safetensors");
  std::string idx = R"({"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})";
  std::vector<std::byte> ib(idx.size());
  std::memcpy(ib.data(), idx.data(), idx.size());
  fake.put("m/model.safetensors.index.json", ib);
  auto ix = cache.register_object(fake.info("m/model.safetensors.index.json"), "/m/model.safetensors.index.json");
  PrefetchHooks hooks;
  hooks.resolve = [&](const std::string& p) -> std::shared_ptr<const RemoteObject> {
    if (p == "/m/a.safetensors") return a;
    if (p == "/m/b.safetensors") return b;
    return nullptr;
  };
  PrefetchConfig pc;
  pc.max_inflight = 1;
  pc.lookahead_files = 2;
  pc.threads = 1;  // plans in order: a's stream exists before b's
  Prefetcher pf(cache, pc, hooks);
  pf.on_open(ix);  // plans a (rank 1) and b (rank 2)
  pf.on_open(b);   // b is in use now: rank 0
  pf.wait_idle();
  // Wait for the outcome itself, not for a quiet spell: on a loaded machine the feeder can pause longer than
  // wait_quiet's grace period between two of a's chunks.
  for (int i = 0; i < 1000 && chunks_of(store.log(), "m/a.safetensors").size() < name_plan(bytes).size(); ++i)
    std::this_thread::sleep_for(10ms);
  wait_quiet(cache);
  auto log = store.log();
  size_t last_b = 0, first_a_data = log.size();
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].first == "m/b.safetensors") last_b = i;
    if (log[i].first == "m/a.safetensors" && log[i].second != 0) first_a_data = std::min(first_a_data, i);
  }
  CHECK(chunks_of(log, "m/a.safetensors").size() == name_plan(bytes).size());
  CHECK(last_b < first_a_data);
}

TEST_CASE("prefetcher: prefetch stays within half the budget when nobody reads") {
  FakeStore fake(4);
  LoggingStore store(fake);
  const auto bytes = st_file();  // 9 chunks
  fake.put("m/model.safetensors", bytes);
  CacheConfig cc;
  cc.chunk_size = kChunk;
  cc.budget_bytes = 4 * kChunk;
  cc.max_prefetch_inflight = 4;
  ChunkCache cache(store, cc);
  auto o = cache.register_object(fake.info("m/model.safetensors"), "/m/model.safetensors");
  Prefetcher pf(cache, PrefetchConfig{}, PrefetchHooks{});
  pf.on_open(o);
  pf.wait_idle();
  wait_quiet(cache);
  const auto s = cache.stats();
  CHECK(s.peak_resident_bytes <= cc.budget_bytes);
  CHECK(s.unused_bytes <= cc.budget_bytes / 2);
  CHECK(store.log().size() <= 3);  // the header chunk + half the budget of unread chunks
  CHECK(store.log().size() >= 2);
}

TEST_CASE("prefetcher: a header that does not parse gives no plan, no error") {
  FakeStore fake(2);
  auto junk = pattern_bytes(4 * kChunk, 9);  // a length prefix far beyond the file
  fake.put("m/bad.safetensors", junk);
  CacheConfig cc;
  cc.chunk_size = kChunk;
  ChunkCache cache(fake, cc);
  auto o = cache.register_object(fake.info("m/bad.safetensors"), "/m/bad.safetensors");
  Prefetcher pf(cache, PrefetchConfig{}, PrefetchHooks{});
  pf.on_open(o);
  pf.wait_idle();
  CHECK(pf.stats().plans == 0);
  CHECK(pf.stats().plan_failures == 1);
  std::vector<std::byte> buf(100);
  auto got = cache.read(*o, 0, buf);
  REQUIRE(got);
  CHECK(*got == 100);
}

TEST_CASE("prefetcher: policy none starts nothing") {
  FakeStore fake(2);
  LoggingStore store(fake);
  fake.put("m/model.safetensors", st_file());
  CacheConfig cc;
  cc.chunk_size = kChunk;
  ChunkCache cache(store, cc);
  auto o = cache.register_object(fake.info("m/model.safetensors"), "/m/model.safetensors");
  PrefetchConfig pc;
  pc.policy = PrefetchPolicy::none;
  Prefetcher pf(cache, pc, PrefetchHooks{});
  pf.on_open(o);
  pf.on_read(o, 0, 4096);
  std::this_thread::sleep_for(50ms);
  CHECK(store.log().empty());
}
