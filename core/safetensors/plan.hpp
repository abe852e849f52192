// Range plans: which bytes of a safetensors file to fetch, and in what order, computed from its header.
//
// Two plans, both pure functions of (Header, PlanConfig):
//
// (a) Offset order — plan_offset_order. The bytes a full load touches are the length prefix + header
//     [0, data_start) and every non-empty tensor. Sorted by offset, a range is merged with the next one
//     when the gap between them is ≤ gap_threshold (reading a small gap costs less than another request);
//     a larger gap is skipped. Each merged range is then split at multiples of chunk_size, so every
//     piece lies inside one cache chunk (chunk = offset / chunk_size, the ChunkCache's key). Output:
//     pieces in ascending offset order, non-overlapping, ends exclusive. This is the plan for a reader
//     that streams a file front to back (sequential prefetch, the eager fill of a mapping).
//
// (b) Name order — plan_name_order. Released safetensors (0.8) iterates keys() sorted by name with plain
//     string comparison ("layers.10" < "layers.2"), touching each tensor of a whole-file mapping in that
//     order. The plan is the sequence of chunk indices in first-need order: the header's chunks first (the
//     loader parses it before touching any tensor), then, tensor by tensor in name order, each chunk the
//     tensor covers that is not already listed. Every chunk appears at most once. Prefetching in this order
//     keeps ahead of the "scattered" pattern instead of fetching by offset and waiting on the wrong chunks.
//
// Constants (PlanConfig defaults):
//   chunk_size 8 MiB — the ChunkCache default (the unit a range GET fetches); the caller passes its own.
//   gap_threshold 1 MiB — files written by the safetensors crate have no gaps at all (it rejects them), so
//     this only matters for hand-made files; 1 MiB is what one connection moves in a few milliseconds,
//     less than the latency of the extra request that skipping the gap would cost.
#pragma once

#include <cstdint>
#include <vector>

#include "core/safetensors/header.hpp"
#include "core/util/result.hpp"

namespace mf::safetensors {

struct PlanConfig {
  uint64_t chunk_size = 8ull << 20;    // > 0; the cache's chunk size
  uint64_t gap_threshold = 1ull << 20;  // gaps of at most this many bytes are read through
};

// One piece of an offset-order plan: absolute file bytes [begin, end), inside chunk `chunk`.
struct PlannedRange {
  uint64_t begin = 0;
  uint64_t end = 0;    // exclusive; begin < end
  uint64_t chunk = 0;  // begin / chunk_size == (end - 1) / chunk_size

  bool operator==(const PlannedRange&) const = default;
};

// Number of chunks of a file: ceil(file_size / chunk_size). chunk_size > 0.
uint64_t chunk_count(uint64_t file_size, uint64_t chunk_size);

// Plan (a). EINVAL when chunk_size is 0. Uses header.data_start and the tensors' absolute ranges.
Result<std::vector<PlannedRange>> plan_offset_order(const Header& header, const PlanConfig& config);

// Plan (b): chunk indices in first-need order. EINVAL when chunk_size is 0.
Result<std::vector<uint64_t>> plan_name_order(const Header& header, const PlanConfig& config);

}  // namespace mf::safetensors
