// Range plans: see plan.hpp for the algorithm and its constants.
#include "core/safetensors/plan.hpp"

#include <algorithm>

namespace mf::safetensors {
namespace {

struct Span {
  uint64_t begin;
  uint64_t end;  // exclusive
};

// The bytes a full load reads, absolute, sorted by offset; empty tensors own none and are left out.
std::vector<Span> needed_spans(const Header& header) {
  std::vector<Span> spans;
  spans.reserve(header.tensors.size() + 1);
  if (header.data_start > 0) spans.push_back({0, header.data_start});
  for (const auto& t : header.tensors)
    if (t.size() > 0) spans.push_back({header.abs_begin(t), header.abs_end(t)});
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  return spans;
}

// Appends [begin, end) cut at chunk boundaries.
void split_into_chunks(Span s, uint64_t chunk_size, std::vector<PlannedRange>& out) {
  uint64_t pos = s.begin;
  while (pos < s.end) {
    const uint64_t chunk = pos / chunk_size;
    // (chunk + 1) * chunk_size cannot overflow past s.end's chunk: clamp with the remaining length instead.
    const uint64_t room = chunk_size - pos % chunk_size;
    const uint64_t piece_end = s.end - pos <= room ? s.end : pos + room;
    out.push_back({pos, piece_end, chunk});
    pos = piece_end;
  }
}

// Preconditions the plans rely on: a usable chunk size, and tensors inside the file (parse_header
// guarantees the latter; a hand-built Header might not).
Result<void> check_inputs(const Header& header, const PlanConfig& config) {
  if (config.chunk_size == 0) return make_error(EINVAL, "safetensors plan: chunk_size is 0");
  if (header.data_start > header.file_size) return make_error(EINVAL, "safetensors plan: header past EOF");
  for (const auto& t : header.tensors)
    if (t.end < t.begin || t.end > header.file_size - header.data_start)
      return make_error(EINVAL, "safetensors plan: '" + t.name + "' outside the file");
  return {};
}

}  // namespace

uint64_t chunk_count(uint64_t file_size, uint64_t chunk_size) {
  return file_size / chunk_size + (file_size % chunk_size != 0 ? 1 : 0);
}

Result<std::vector<PlannedRange>> plan_offset_order(const Header& header, const PlanConfig& config) {
  if (auto ok = check_inputs(header, config); !ok) return ok.error();
  std::vector<Span> merged;
  for (const Span& s : needed_spans(header)) {
    // Parsed headers have no overlaps; s.begin <= end also absorbs a hand-built header's overlap safely.
    if (!merged.empty() &&
        (s.begin <= merged.back().end || s.begin - merged.back().end <= config.gap_threshold)) {
      merged.back().end = std::max(merged.back().end, s.end);
    } else {
      merged.push_back(s);
    }
  }
  std::vector<PlannedRange> out;
  for (const Span& s : merged) split_into_chunks(s, config.chunk_size, out);
  return out;
}

Result<std::vector<uint64_t>> plan_name_order(const Header& header, const PlanConfig& config) {
  if (auto ok = check_inputs(header, config); !ok) return ok.error();
  const uint64_t cs = config.chunk_size;
  std::vector<bool> listed(chunk_count(header.file_size, cs), false);
  std::vector<uint64_t> order;
  auto add = [&](uint64_t begin, uint64_t end) {  // [begin, end), end > begin, end <= file_size
    for (uint64_t c = begin / cs; c <= (end - 1) / cs; ++c) {
      if (listed[c]) continue;
      listed[c] = true;
      order.push_back(c);
    }
  };
  if (header.data_start > 0) add(0, header.data_start);
  for (const auto& t : header.tensors)  // sorted by name: the loader's order
    if (t.size() > 0) add(header.abs_begin(t), header.abs_end(t));
  return order;
}

}  // namespace mf::safetensors
