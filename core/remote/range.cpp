#include "core/remote/range.hpp"

#include "core/util/checked.hpp"
#include "core/util/env.hpp"

namespace mf {

Result<std::vector<ByteRange>> split_range(uint64_t offset, uint64_t length, uint64_t part_size) {
  uint64_t end;
  if (part_size == 0) return make_error(EINVAL, "split_range: part size 0");
  if (!checked_add(offset, length, &end)) return make_error(EINVAL, "split_range: range overflows");
  std::vector<ByteRange> parts;
  parts.reserve(length / part_size + 1);
  for (uint64_t at = offset; at < end;) {
    uint64_t n = end - at < part_size ? end - at : part_size;
    parts.push_back({at, n});
    at += n;
  }
  return parts;
}

Result<std::string> http_range(uint64_t offset, uint64_t length) {
  uint64_t end;
  if (length == 0) return make_error(EINVAL, "empty range");
  if (!checked_add(offset, length, &end)) return make_error(EINVAL, "range overflows");
  return std::to_string(offset) + "-" + std::to_string(end - 1);
}

Result<ContentRange> parse_content_range(std::string_view v) {
  auto bad = [&] { return make_error(EINVAL, "bad Content-Range '" + std::string(v) + "'"); };
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r' || v.back() == '\n'))
    v.remove_suffix(1);
  if (!v.starts_with("bytes ")) return bad();
  std::string_view rest = v.substr(6);
  size_t dash = rest.find('-');
  size_t slash = rest.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) return bad();
  auto first = parse_uint(rest.substr(0, dash));
  auto last = parse_uint(rest.substr(dash + 1, slash - dash - 1));
  if (!first || !last || *last < *first) return bad();
  ContentRange cr{*first, *last, std::nullopt};
  std::string_view total = rest.substr(slash + 1);
  if (total != "*") {
    auto t = parse_uint(total);
    if (!t || *t <= *last) return bad();
    cr.total = *t;
  }
  return cr;
}

bool content_range_matches(const ContentRange& cr, uint64_t offset, uint64_t length) {
  uint64_t end;
  if (length == 0 || !checked_add(offset, length, &end)) return false;
  return cr.first == offset && cr.last == end - 1 && (!cr.total || *cr.total >= end);
}

}  // namespace mf
