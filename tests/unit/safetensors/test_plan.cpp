#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/safetensors/header.hpp"
#include "core/safetensors/plan.hpp"
#include "st_test_util.hpp"

using namespace mf::safetensors;

namespace {

struct T {
  const char* name;
  uint64_t begin;  // relative to the data section
  uint64_t end;
};

// A hand-built header (as parse_header would return it: tensors sorted by name).
Header make_header(uint64_t data_start, uint64_t file_size, std::vector<T> ts) {
  Header h;
  h.header_size = data_start - 8;
  h.data_start = data_start;
  h.file_size = file_size;
  for (const auto& t : ts) {
    TensorInfo ti;
    ti.name = t.name;
    ti.dtype = Dtype::U8;
    ti.shape = {t.end - t.begin};
    ti.begin = t.begin;
    ti.end = t.end;
    h.tensors.push_back(ti);
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return h;
}

struct OffsetCase {
  const char* what;
  Header header;
  PlanConfig config;
  std::vector<PlannedRange> expected;
};

struct NameCase {
  const char* what;
  Header header;
  uint64_t chunk_size;
  std::vector<uint64_t> expected;
};

}  // namespace

TEST_CASE("offset-order plan: coalescing, gaps, chunk splits") {
  const std::vector<OffsetCase> cases = {
      {"adjacent tensors coalesce with the header into one range",
       make_header(16, 40, {{"a", 0, 8}, {"b", 8, 24}}), {100, 0}, {{0, 40, 0}}},
      {"gap at the threshold is read through",
       make_header(16, 50, {{"a", 0, 8}, {"b", 12, 20}}), {100, 4}, {{0, 36, 0}}},
      {"gap above the threshold is skipped",
       make_header(16, 50, {{"a", 0, 8}, {"b", 13, 20}}), {100, 4}, {{0, 24, 0}, {29, 36, 0}}},
      {"a tensor spanning chunks is split at chunk boundaries",
       make_header(8, 40, {{"a", 0, 32}}), {10, 0}, {{0, 10, 0}, {10, 20, 1}, {20, 30, 2}, {30, 40, 3}}},
      {"split pieces start mid-chunk after a skipped gap",
       make_header(8, 64, {{"a", 0, 2}, {"b", 20, 56}}), {16, 4},
       {{0, 10, 0}, {28, 32, 1}, {32, 48, 2}, {48, 64, 3}}},
      {"empty tensors own no bytes", make_header(8, 12, {{"e", 4, 4}, {"x", 0, 4}, {"z", 2, 2}}), {100, 0},
       {{0, 12, 0}}},
      {"names unsorted against offsets: output is offset order",
       make_header(8, 20, {{"z", 0, 4}, {"a", 8, 12}, {"m", 4, 8}}), {6, 0},
       {{0, 6, 0}, {6, 12, 1}, {12, 18, 2}, {18, 20, 3}}},
      {"tiny tensors with tiny gaps merge", make_header(8, 20, {{"a", 0, 1}, {"b", 2, 3}, {"c", 4, 5}}), {64, 1},
       {{0, 13, 0}}},
      {"no tensors: the header only", make_header(24, 24, {}), {16, 0}, {{0, 16, 0}, {16, 24, 1}}},
      {"trailing bytes after the last tensor are not planned", make_header(8, 100, {{"a", 0, 4}}), {64, 0},
       {{0, 12, 0}}},
  };
  for (const auto& c : cases) {
    const std::string what = c.what;
    CAPTURE(what);
    auto plan = plan_offset_order(c.header, c.config);
    REQUIRE(plan.ok());
    CHECK(*plan == c.expected);
  }
}

TEST_CASE("offset-order plan: huge offsets do not overflow") {
  const uint64_t top = UINT64_MAX;
  Header h = make_header(8, top, {{"huge", 0, top - 8}});
  auto plan = plan_offset_order(h, {1ull << 63, 0});
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 2);
  CHECK((*plan)[0] == PlannedRange{0, 1ull << 63, 0});
  CHECK((*plan)[1] == PlannedRange{1ull << 63, top, 1});
  CHECK(chunk_count(top, 1ull << 63) == 2);
  auto names = plan_name_order(h, {1ull << 63, 0});
  REQUIRE(names.ok());
  CHECK(*names == std::vector<uint64_t>{0, 1});
}

TEST_CASE("name-order plan: first-need chunk order") {
  const std::vector<NameCase> cases = {
      // Offsets in natural layer order (0, 1, 2, 10), one 10-byte chunk each after a header chunk.
      {"layers.10 is needed before layers.2",
       make_header(10, 50, {{"layers.0", 0, 10}, {"layers.1", 10, 20}, {"layers.2", 20, 30}, {"layers.10", 30, 40}}),
       10, {0, 1, 2, 4, 3}},
      {"the header's chunks come first", make_header(24, 44, {{"b", 0, 10}, {"a", 10, 20}}), 10, {0, 1, 2, 3, 4}},
      {"shared chunks are listed once",
       make_header(8, 38, {{"c", 0, 5}, {"b", 5, 15}, {"a", 15, 30}}), 10, {0, 2, 3, 1}},
      {"a spanning tensor lists its chunks in ascending order",
       make_header(8, 48, {{"b", 0, 4}, {"a", 4, 40}}), 8, {0, 1, 2, 3, 4, 5}},
      {"empty tensors add nothing", make_header(8, 28, {{"a", 20, 20}, {"b", 10, 20}, {"c", 0, 10}}), 10,
       {0, 1, 2}},
      {"chunk 0 holds both header and a tensor; a later one jumps back",
       make_header(8, 32, {{"a", 16, 24}, {"b", 0, 8}}), 16, {0, 1}},
  };
  for (const auto& c : cases) {
    const std::string what = c.what;
    CAPTURE(what);
    auto plan = plan_name_order(c.header, {c.chunk_size, 0});
    REQUIRE(plan.ok());
    CHECK(*plan == c.expected);
  }
}

TEST_CASE("plans refuse bad input") {
  Header h = make_header(8, 16, {{"a", 0, 8}});
  CHECK(plan_offset_order(h, {0, 0}).error().code == EINVAL);
  CHECK(plan_name_order(h, {0, 0}).error().code == EINVAL);
  Header past = make_header(8, 16, {{"a", 0, 9}});  // ends past EOF: not a parsed header
  CHECK_FALSE(plan_offset_order(past, {}).ok());
  CHECK_FALSE(plan_name_order(past, {}).ok());
}

TEST_CASE("plans from a parsed file") {
  using test::entry;
  std::string json = "{" + entry("w.2", "BF16", "8", 0, 16) + "," + entry("w.10", "BF16", "8", 16, 32) + "}";
  auto f = test::make_file(json, 32);
  auto h = parse_header(f, f.size());
  REQUIRE(h.ok());
  const uint64_t ds = h->data_start;
  auto off = plan_offset_order(*h, {1 << 20, 0});
  REQUIRE(off.ok());
  CHECK(*off == std::vector<PlannedRange>{{0, ds + 32, 0}});
  auto names = plan_name_order(*h, {ds + 16, 0});  // chunk 0 = header + w.2, chunk 1 = w.10
  REQUIRE(names.ok());
  CHECK(*names == std::vector<uint64_t>{0, 1});
}

TEST_CASE("randomised headers: plan invariants") {
  std::mt19937_64 rng(12345);
  for (int iter = 0; iter < 300; ++iter) {
    const uint64_t data_start = 8 + 8 * (rng() % 64);
    const int n = static_cast<int>(rng() % 40);
    std::vector<T> ts;
    std::vector<std::string> names;
    names.reserve(n);
    uint64_t pos = 0;
    for (int i = 0; i < n; ++i) {
      pos += (rng() % 4 == 0) ? rng() % 300 : 0;  // sometimes a gap
      const uint64_t len = (rng() % 5 == 0) ? 0 : 1 + rng() % 500;
      names.push_back("t." + std::to_string(rng() % 1000) + "." + std::to_string(i));
      ts.push_back({nullptr, pos, pos + len});
      pos += len;
    }
    for (int i = 0; i < n; ++i) ts[i].name = names[i].c_str();
    Header h = make_header(data_start, data_start + pos + rng() % 50, ts);
    PlanConfig cfg{1 + rng() % 700, rng() % 200};
    CAPTURE(iter);

    // Bytes each plan must cover.
    std::set<uint64_t> needed_chunks;
    std::vector<std::pair<uint64_t, uint64_t>> needed{{0, data_start}};
    for (const auto& t : h.tensors)
      if (t.size() > 0) needed.push_back({h.abs_begin(t), h.abs_end(t)});
    for (auto [b, e] : needed)
      for (uint64_t c = b / cfg.chunk_size; c <= (e - 1) / cfg.chunk_size; ++c) needed_chunks.insert(c);

    auto off = plan_offset_order(h, cfg);
    REQUIRE(off.ok());
    for (size_t i = 0; i < off->size(); ++i) {
      const auto& r = (*off)[i];
      REQUIRE(r.begin < r.end);
      CHECK(r.chunk == r.begin / cfg.chunk_size);
      CHECK(r.chunk == (r.end - 1) / cfg.chunk_size);
      if (i > 0) CHECK((*off)[i - 1].end <= r.begin);
    }
    for (auto [b, e] : needed) {  // each needed span is inside the plan's union
      auto it = std::find_if(off->begin(), off->end(), [b = b](const PlannedRange& r) { return r.end > b; });
      uint64_t at = b;
      for (; it != off->end() && at < e; ++it) {
        REQUIRE(it->begin <= at);
        at = it->end;
      }
      CHECK(at >= e);
    }

    auto names_plan = plan_name_order(h, cfg);
    REQUIRE(names_plan.ok());
    std::set<uint64_t> seen(names_plan->begin(), names_plan->end());
    CHECK(seen.size() == names_plan->size());  // no repeats
    CHECK(seen == needed_chunks);
    // First-need order: walking tensors by name, every chunk a tensor needs is already in the prefix
    // of the plan that has been consumed, and the plan never lists a chunk before it is needed.
    size_t consumed = 0;
    std::set<uint64_t> have;
    for (auto [b, e] : needed) {  // header first, then by name (h.tensors is name-sorted)
      for (uint64_t c = b / cfg.chunk_size; c <= (e - 1) / cfg.chunk_size; ++c) {
        if (have.count(c)) continue;
        REQUIRE(consumed < names_plan->size());
        CHECK((*names_plan)[consumed] == c);
        have.insert(c);
        ++consumed;
      }
    }
    CHECK(consumed == names_plan->size());
  }
}
