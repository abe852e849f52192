#include <doctest/doctest.h>

#include "core/util/checked.hpp"

using namespace mf;

TEST_CASE("checked arithmetic detects overflow") {
  uint64_t out = 7;
  CHECK(checked_add(1, 2, &out));
  CHECK(out == 3);
  CHECK_FALSE(checked_add(UINT64_MAX, 1, &out));
  CHECK(out == 3);
  CHECK(checked_mul(1ull << 32, (1ull << 32) - 1, &out));
  CHECK_FALSE(checked_mul(1ull << 32, 1ull << 32, &out));
  CHECK(checked_align_up(4097, 4096, &out));
  CHECK(out == 8192);
  CHECK(checked_align_up(8192, 4096, &out));
  CHECK(out == 8192);
  CHECK_FALSE(checked_align_up(UINT64_MAX - 10, 4096, &out));
}
