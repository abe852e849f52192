// Policy decisions: the sequential window (growth, reset on jumps), configuration parsing, lookahead file
// selection from an index's shard list.
#include <doctest/doctest.h>

#include "core/prefetch/policy.hpp"

using namespace mf;
using R = SequentialWindow::Range;

namespace {
constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
constexpr uint64_t W0 = SequentialWindow::kInitialWindow;  // 1.125 MiB
}  // namespace

TEST_CASE("sequential window: table of reads, expected requests and window") {
  struct Step {
    uint64_t off, len;
    R want;
    uint64_t window;
  };
  const uint64_t size = 1 * GiB;
  SequentialWindow w(8 * MiB);
  const Step steps[] = {
      {0, 4 * KiB, {4 * KiB, 4 * KiB + W0}, W0},                       // first read: initial window
      {4 * KiB, 4 * KiB, {8 * KiB, 8 * KiB}, W0},                      // well inside what was asked: nothing
      {8 * KiB, 600 * KiB, {4 * KiB + W0, 608 * KiB + 2 * W0}, 2 * W0},  // half consumed: double, extend
      {608 * KiB, 2 * MiB, {608 * KiB + 2 * W0, 2656 * KiB + 4 * W0}, 4 * W0},
      {2656 * KiB, 4 * MiB, {2656 * KiB + 4 * W0, 6752 * KiB + 8 * MiB}, 8 * MiB},  // capped at 8 MiB
      {6752 * KiB, 8 * MiB, {6752 * KiB + 8 * MiB, 14944 * KiB + 8 * MiB}, 8 * MiB},  // stays at the cap
      // a forward jump of more than 16 MiB resets
      {14944 * KiB + 17 * MiB, 4 * KiB, {14948 * KiB + 17 * MiB, 14948 * KiB + 17 * MiB + W0}, W0},
  };
  for (const auto& s : steps) {
    CAPTURE(s.off);
    CHECK(w.on_read(s.off, s.len, size) == s.want);
    CHECK(w.window() == s.window);
  }
}

TEST_CASE("sequential window: small skips keep the stream, backward jumps over 1 MiB reset") {
  const uint64_t size = 1 * GiB;
  SequentialWindow w(64 * MiB);
  w.on_read(0, 1 * MiB, size);
  w.on_read(1 * MiB, 1 * MiB, size);
  const uint64_t grown = w.window();
  CHECK(grown > W0);
  // forward skip of 15 MiB: still sequential (window does not reset)
  w.on_read(17 * MiB, 1 * MiB, size);
  CHECK(w.window() >= grown);
  // backward by less than 1 MiB: sequential
  w.on_read(17 * MiB + 512 * KiB, 4 * KiB, size);
  CHECK(w.window() >= grown);
  // backward by more than 1 MiB: reset
  auto r = w.on_read(10 * MiB, 4 * KiB, size);
  CHECK(w.window() == W0);
  CHECK(r == R{10 * MiB + 4 * KiB, 10 * MiB + 4 * KiB + W0});
}

TEST_CASE("sequential window: clipped at end of file, empty past it") {
  SequentialWindow w(64 * MiB);
  CHECK(w.on_read(0, 100, 1000) == R{100, 1000});
  auto r = w.on_read(100, 900, 1000);
  CHECK(r.begin == r.end);
}

TEST_CASE("lookahead files: the next N shards in index order") {
  const std::vector<std::string> shards = {"/m/a-1.safetensors", "/m/a-2.safetensors", "/m/a-3.safetensors"};
  struct Case {
    const char* current;
    uint32_t n;
    std::vector<std::string> want;
  };
  const Case cases[] = {
      {"/m/a-1.safetensors", 1, {"/m/a-2.safetensors"}},
      {"/m/a-1.safetensors", 2, {"/m/a-2.safetensors", "/m/a-3.safetensors"}},
      {"/m/a-1.safetensors", 5, {"/m/a-2.safetensors", "/m/a-3.safetensors"}},
      {"/m/a-2.safetensors", 1, {"/m/a-3.safetensors"}},
      {"/m/a-3.safetensors", 1, {}},
      {"/m/a-1.safetensors", 0, {}},
      {"/m/other.safetensors", 1, {}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.current);
    CAPTURE(c.n);
    CHECK(lookahead_files(shards, c.current, c.n) == c.want);
  }
}

TEST_CASE("paths: safetensors and index") {
  CHECK(is_safetensors_path("/m/model.safetensors"));
  CHECK_FALSE(is_safetensors_path("/m/model.safetensors.index.json"));
  CHECK(is_index_path("/m/model.safetensors.index.json"));
  CHECK_FALSE(is_index_path("/m/config.json"));
}

TEST_CASE("config: defaults, values, errors") {
  auto d = parse_prefetch_config(map_env({}));
  REQUIRE(d);
  CHECK(d->policy == PrefetchPolicy::safetensors);
  CHECK(d->max_inflight == 14);  // 16 connections - 2
  CHECK(d->threads == 2);
  CHECK(d->lookahead_files == 1);
  auto c = parse_prefetch_config(map_env({{"MODELFETCH_PREFETCH", "none"},
                                          {"MODELFETCH_MAX_CONNECTIONS", "8"},
                                          {"MODELFETCH_LOOKAHEAD_FILES", "3"}}));
  REQUIRE(c);
  CHECK(c->policy == PrefetchPolicy::none);
  CHECK(c->max_inflight == 6);
  CHECK(c->lookahead_files == 3);
  auto s = parse_prefetch_config(map_env({{"MODELFETCH_PREFETCH", "sequential"}, {"MODELFETCH_MAX_INFLIGHT", "3"}}));
  REQUIRE(s);
  CHECK(s->policy == PrefetchPolicy::sequential);
  CHECK(s->max_inflight == 3);
  CHECK_FALSE(parse_prefetch_config(map_env({{"MODELFETCH_PREFETCH", "fast"}})));
  CHECK_FALSE(parse_prefetch_config(map_env({{"MODELFETCH_MAX_INFLIGHT", "0"}})));
  CHECK_FALSE(parse_prefetch_config(map_env({{"MODELFETCH_THREADS", "x"}})));
}
