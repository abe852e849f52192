// Prefetch policies: configuration, the sequential readahead window, and lookahead file selection.
// Pure logic (no threads, no I/O), tested table-driven in tests/unit/prefetch.
//
// Policies (MODELFETCH_PREFETCH):
//   none        fetch only the chunks a fault or a read needs: the unoptimised baseline. The mappings'
//               fill window, lookahead and sweep are off too (FillPolicy::none) and read() has no readahead.
//   sequential  a readahead window on read() streams (SequentialWindow below); mappings keep their own
//               lazy fill window (core/uffd/filler.cpp), which is the same idea for faults.
//   safetensors (default) sequential, plus: a *.safetensors file's header is fetched and parsed when the
//               file is opened and its chunks are prefetched in the order the loaders read them (tensor
//               name order, core/safetensors plan_name_order); a model.safetensors.index.json read gives the
//               shard list, and the next MODELFETCH_LOOKAHEAD_FILES shards are fetched while the current
//               one is consumed. A header that does not parse means no plan (sequential), never an error.
//
// SequentialWindow follows mountpoint-s3's prefetcher: the first read asks for kInitialWindow (1.125 MiB)
// beyond itself; each time a sequential reader has consumed half of what was asked, the window doubles (up
// to a cap) and the request is extended to the read's end plus the window. A jump of more than
// kMaxForwardJump (16 MiB) forward or kMaxBackwardJump (1 MiB) back resets the window: that reader is not
// streaming, and a large window would fetch bytes nobody reads. Small forward skips (a reader skipping a
// tensor it does not need) keep the stream.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/env.hpp"
#include "core/util/result.hpp"

namespace mf {

enum class PrefetchPolicy { none, sequential, safetensors };

struct PrefetchConfig {
  PrefetchPolicy policy = PrefetchPolicy::safetensors;
  // Planner threads: fetch and parse headers and indexes (each blocks on one small request). Two, so the
  // next shard's header is fetched while the current one's plan is fed; more plans at once are not needed:
  // lookahead is one file by default.
  uint32_t threads = 2;
  // Prefetch range requests with the store at once (ChunkCache::max_prefetch_inflight). Default: the
  // store's connection count minus 2 (14 of 16), so a fault's or a read's request always finds a free
  // connection instead of queueing behind prefetch in the client's FIFO, while prefetch keeps 14 x 8 MiB
  // in flight: the bandwidth-delay product at 20 ms and 2 GB/s is 40 MB = 5 chunks, and each connection
  // moves only ~100 MB/s, so the link needs >= 13 connections busy to be filled.
  uint32_t max_inflight = 14;
  uint32_t lookahead_files = 1;    // shards fetched ahead of the one in use, in index order
  uint64_t window_cap = 64ull << 20;  // largest read() readahead window (clamped to a quarter of the budget)
};

std::string_view policy_name(PrefetchPolicy p);

// MODELFETCH_PREFETCH=none|sequential|safetensors, MODELFETCH_THREADS (1..64), MODELFETCH_MAX_INFLIGHT
// (1..256, default MODELFETCH_MAX_CONNECTIONS - 2, at least 1), MODELFETCH_LOOKAHEAD_FILES (0..64).
Result<PrefetchConfig> parse_prefetch_config(const EnvLookup& env);

class SequentialWindow {
 public:
  static constexpr uint64_t kInitialWindow = 1152ull << 10;  // 1.125 MiB
  static constexpr uint64_t kMaxForwardJump = 16ull << 20;
  static constexpr uint64_t kMaxBackwardJump = 1ull << 20;

  explicit SequentialWindow(uint64_t cap) : cap_(cap < kInitialWindow ? kInitialWindow : cap) {}

  struct Range {
    uint64_t begin = 0, end = 0;  // [begin, end), empty when begin == end
    bool operator==(const Range&) const = default;
  };
  // A read of [offset, offset + length) of a file of file_size bytes: the bytes to request now beyond
  // what earlier calls asked for (clipped to the file).
  Range on_read(uint64_t offset, uint64_t length, uint64_t file_size);
  uint64_t window() const { return window_; }

 private:
  uint64_t cap_;
  uint64_t window_ = 0;     // 0 until the first read
  uint64_t next_ = 0;       // where a sequential reader reads next
  uint64_t asked_end_ = 0;  // end of the bytes requested so far
};

// The shards to fetch ahead when `current` (a shard file name) is in use: the next n after it in `shards`
// (index order). Empty when current is not a shard.
std::vector<std::string> lookahead_files(const std::vector<std::string>& shards, std::string_view current,
                                         uint32_t n);

bool is_safetensors_path(std::string_view path);
bool is_index_path(std::string_view path);  // *.safetensors.index.json

}  // namespace mf
