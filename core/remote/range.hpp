// Byte-range arithmetic, pure functions. Convention: a ByteRange is half-open, [offset, offset+length);
// HTTP's `Range` and `Content-Range` are inclusive on both ends ("bytes=0-99" is 100 bytes). Conversions
// happen only here, so the rest of the code never does ±1 by hand. Overflow is checked, never wrapped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/result.hpp"

namespace mf {

struct ByteRange {
  uint64_t offset = 0;  // first byte
  uint64_t length = 0;  // end (exclusive) = offset + length
  bool operator==(const ByteRange&) const = default;
};

// Splits [offset, offset+length) into consecutive parts of `part_size` bytes (the last may be shorter).
// Preconditions: part_size > 0 and offset+length does not overflow (else EINVAL). length 0 → no parts.
Result<std::vector<ByteRange>> split_range(uint64_t offset, uint64_t length, uint64_t part_size);

// The value for curl's CURLOPT_RANGE / the Range header without "bytes=": "FIRST-LAST", inclusive.
// Precondition: length > 0 and no overflow (else EINVAL).
Result<std::string> http_range(uint64_t offset, uint64_t length);

// A parsed "Content-Range: bytes FIRST-LAST/TOTAL" (TOTAL may be '*': unknown).
struct ContentRange {
  uint64_t first = 0;  // inclusive
  uint64_t last = 0;   // inclusive
  std::optional<uint64_t> total;
  bool operator==(const ContentRange&) const = default;
};
// Accepts the header value with or without surrounding spaces. "bytes */TOTAL" (a 416's form) is EINVAL.
Result<ContentRange> parse_content_range(std::string_view value);

// True when `cr` is exactly the half-open request [offset, offset+length) (and within TOTAL when known).
bool content_range_matches(const ContentRange& cr, uint64_t offset, uint64_t length);

}  // namespace mf
