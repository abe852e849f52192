// libFuzzer target for core/remote/range (the byte-range planner of every request): split_range, http_range
// and parse_content_range. The input's first 24 bytes are three uint64 (offset, length, part size, small
// part sizes favoured so splits stay short); the rest is a Content-Range header value. Invariants: the parts
// tile [offset, offset+length) exactly, each at most part_size; http_range's text, read back as a
// Content-Range, matches the request; a parsed Content-Range has first <= last < total.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "core/remote/range.hpp"

namespace {
uint64_t take(const uint8_t*& p, size_t& n) {
  uint64_t v = 0;
  size_t k = n < 8 ? n : 8;
  std::memcpy(&v, p, k);
  p += k;
  n -= k;
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* p = data;
  size_t n = size;
  uint64_t offset = take(p, n), length = take(p, n), part = take(p, n);
  // Keep the split to at most ~4k parts: the property is the same, the run stays fast.
  if (part != 0 && length / part > 4096) part = length / 4096 + 1;
  auto parts = mf::split_range(offset, length, part);
  if (parts) {
    uint64_t at = offset;
    for (const auto& r : *parts) {
      if (r.offset != at || r.length == 0 || r.length > part) std::abort();
      at += r.length;
    }
    if (at - offset != length) std::abort();
  }
  auto text = mf::http_range(offset, length);
  if (text) {
    auto cr = mf::parse_content_range("bytes " + *text + "/*");
    if (!cr || !mf::content_range_matches(*cr, offset, length)) std::abort();
  }
  auto cr = mf::parse_content_range(std::string_view(reinterpret_cast<const char*>(p), n));
  if (cr && (cr->first > cr->last || (cr->total && cr->last >= *cr->total))) std::abort();
  return 0;
}
