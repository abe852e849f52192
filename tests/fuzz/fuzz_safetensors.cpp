// libFuzzer target for core/safetensors: parse_header on arbitrary bytes (the file size taken from the
// input length, or a fuzzed larger value), then both range plans on whatever parses; and parse_index on
// the same bytes as text. Invariants checked: a parsed header's tensors lie inside the file and do not
// overlap, and the plans' pieces stay inside the file. Build and run: tests/fuzz/run.sh [seconds].
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "core/safetensors/header.hpp"
#include "core/safetensors/index.hpp"
#include "core/safetensors/plan.hpp"

using namespace mf::safetensors;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  // The first byte picks a claimed file size: the input length, or far beyond it (a header fetched alone).
  uint64_t file_size = size;
  if (size > 0 && data[0] % 2 == 1) file_size = size + (uint64_t{data[0]} << 32);
  auto h = parse_header(bytes, file_size);
  if (h) {
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (const auto& t : h->tensors) {
      if (h->abs_end(t) > file_size || t.end < t.begin) std::abort();
      if (t.size() > 0) spans.emplace_back(t.begin, t.end);
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
      if (spans[i].first < spans[i - 1].second) std::abort();  // overlap slipped through
    PlanConfig cfg{1 + (size % 4096), size % 64};
    auto a = plan_offset_order(*h, cfg);
    if (!a) std::abort();
    for (const auto& r : *a)
      if (r.end > file_size || r.begin >= r.end || r.chunk != r.begin / cfg.chunk_size) std::abort();
    auto b = plan_name_order(*h, cfg);
    if (!b) std::abort();
    for (uint64_t c : *b)
      if (c >= chunk_count(file_size, cfg.chunk_size)) std::abort();
  }
  (void)parse_index(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
