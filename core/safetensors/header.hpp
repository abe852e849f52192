// safetensors header parsing.
//
// File layout (huggingface/safetensors, format unchanged since 0.3): an 8-byte little-endian unsigned N,
// then N bytes of UTF-8 JSON (writers pad it with spaces to a multiple of 8), then the data section. The
// JSON is an object: each key is a tensor name mapping to {"dtype", "shape", "data_offsets": [begin, end]}
// with offsets relative to the data section (absolute offset = 8 + N + begin); the optional key
// "__metadata__" maps to a string→string object.
//
// Validation follows the safetensors crate, with checked arithmetic everywhere because N, shapes and offsets
// come from the file: N ≤ 100 MB (the crate's MAX_HEADER_SIZE) and 8 + N ≤ file size; the JSON must parse,
// be an object and start with '{'; dtypes must be known; product(shape) × bits(dtype) / 8 must equal
// end − begin exactly; begin ≤ end; every range must lie inside the data section; ranges must not overlap.
// Two deliberate relaxations against the crate: gaps between tensors and trailing bytes after the last tensor
// are accepted (the crate rejects them). We only plan reads from the header — a file the real loader would
// reject is still read correctly, just possibly less cleverly — so refusing it would gain nothing.
// Duplicate tensor names are rejected (RapidJSON keeps both members; which one a loader uses is ambiguous).
//
// Every error is EINVAL with a one-line message naming the tensor; callers that only plan prefetch fall back
// to sequential reads on error and never fail a program's read because of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/result.hpp"

namespace mf::safetensors {

// The crate's MAX_HEADER_SIZE: a larger N is treated as a corrupt file, not as a reason to fetch 4 GiB.
inline constexpr uint64_t kMaxHeaderSize = 100'000'000;
// The 8-byte little-endian length that precedes the JSON.
inline constexpr uint64_t kLengthPrefix = 8;

enum class Dtype {
  BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0,
  I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64,
};

// Spelling as in the JSON ("BF16"); nullopt for an unknown string.
std::optional<Dtype> parse_dtype(std::string_view text);
std::string_view dtype_name(Dtype dtype);
// Bits per element (sub-byte float formats exist since safetensors 0.6: F4 = 4, F6_* = 6).
uint32_t dtype_bits(Dtype dtype);

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::U8;
  std::vector<uint64_t> shape;  // empty: a scalar (one element)
  uint64_t begin = 0;           // [begin, end) relative to the data section
  uint64_t end = 0;

  uint64_t size() const { return end - begin; }
};

struct Header {
  uint64_t header_size = 0;  // N, the JSON length in bytes (padding included)
  uint64_t data_start = 0;   // 8 + N: absolute file offset of the data section
  uint64_t file_size = 0;    // the size the header was validated against
  uint64_t data_end = 0;     // absolute end of the last tensor (≤ file_size)
  std::vector<TensorInfo> tensors;            // sorted by name: the order released loaders touch them
  std::map<std::string, std::string> metadata;  // "__metadata__", kept verbatim

  // Absolute file range [begin, end) of tensor t.
  uint64_t abs_begin(const TensorInfo& t) const { return data_start + t.begin; }
  uint64_t abs_end(const TensorInfo& t) const { return data_start + t.end; }
  const TensorInfo* find(std::string_view name) const;
};

// From the first 8 bytes of a file of `file_size` bytes: how many bytes (8 + N) parse_header needs.
// EINVAL when fewer than 8 bytes are given, N > kMaxHeaderSize or 8 + N > file_size.
Result<uint64_t> header_prefix_length(std::span<const std::byte> first_bytes, uint64_t file_size);

// Parses and validates a header. `bytes` starts at file offset 0 and holds at least 8 + N bytes (more is
// fine: the rest is ignored). `file_size` is the whole file's size.
Result<Header> parse_header(std::span<const std::byte> bytes, uint64_t file_size);

}  // namespace mf::safetensors
