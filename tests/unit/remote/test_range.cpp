#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

#include "core/remote/range.hpp"

using namespace mf;

TEST_CASE("split_range: table") {
  struct Case {
    uint64_t offset, length, part;
    std::vector<ByteRange> want;
  };
  const Case cases[] = {
      {0, 0, 8, {}},
      {0, 1, 8, {{0, 1}}},
      {0, 8, 8, {{0, 8}}},
      {0, 9, 8, {{0, 8}, {8, 1}}},
      {5, 20, 8, {{5, 8}, {13, 8}, {21, 4}}},
      {100, 16, 8, {{100, 8}, {108, 8}}},
      {7, 3, 1, {{7, 1}, {8, 1}, {9, 1}}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.offset);
    CAPTURE(c.length);
    auto r = split_range(c.offset, c.length, c.part);
    REQUIRE(r.ok());
    CHECK(*r == c.want);
  }
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  auto edge = split_range(max - 10, 10, 4);  // ends exactly at 2^64-1: allowed
  REQUIRE(edge.ok());
  CHECK(edge->back() == ByteRange{max - 2, 2});
  CHECK_FALSE(split_range(max - 10, 11, 4).ok());  // overflow
  CHECK_FALSE(split_range(0, 10, 0).ok());          // part size 0
}

TEST_CASE("http_range: inclusive end") {
  CHECK(*http_range(0, 1) == "0-0");
  CHECK(*http_range(0, 100) == "0-99");
  CHECK(*http_range(8388608, 8388608) == "8388608-16777215");
  CHECK_FALSE(http_range(5, 0).ok());
  CHECK_FALSE(http_range(std::numeric_limits<uint64_t>::max(), 2).ok());
}

TEST_CASE("parse_content_range: table") {
  struct Case {
    const char* text;
    bool ok;
    ContentRange want;
  };
  const Case cases[] = {
      {"bytes 0-99/1000", true, {0, 99, 1000}},
      {" bytes 0-0/1\r\n", true, {0, 0, 1}},
      {"bytes 10-19/*", true, {10, 19, std::nullopt}},
      {"bytes 999-999/1000", true, {999, 999, 1000}},
      {"bytes */1000", false, {}},      // the 416 form
      {"bytes 5-4/10", false, {}},      // last < first
      {"bytes 0-10/10", false, {}},     // last beyond total
      {"bytes 0-9", false, {}},
      {"items 0-9/10", false, {}},
      {"bytes -5-9/10", false, {}},
      {"bytes 0-99999999999999999999/1", false, {}},
      {"", false, {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    auto r = parse_content_range(c.text);
    CHECK(r.ok() == c.ok);
    if (c.ok && r.ok()) CHECK(*r == c.want);
  }
}

TEST_CASE("content_range_matches") {
  CHECK(content_range_matches({0, 99, 1000}, 0, 100));
  CHECK(content_range_matches({10, 19, std::nullopt}, 10, 10));
  CHECK_FALSE(content_range_matches({0, 98, 1000}, 0, 100));  // short
  CHECK_FALSE(content_range_matches({1, 100, 1000}, 0, 100)); // shifted
  CHECK_FALSE(content_range_matches({0, 99, 1000}, 0, 0));
}
