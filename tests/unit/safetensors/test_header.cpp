#include <doctest/doctest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "core/safetensors/header.hpp"
#include "st_test_util.hpp"

using mf::Result;
using namespace mf::safetensors;
using mf::safetensors::test::entry;
using mf::safetensors::test::make_file;

namespace {

Result<Header> parse(const std::vector<std::byte>& f) { return parse_header(f, f.size()); }

}  // namespace

TEST_CASE("a valid header parses, tensors sorted by name, metadata kept") {
  // JSON order is offset order (as the crate writes it), names deliberately not sorted.
  std::string json = "{\"__metadata__\":{\"format\":\"pt\"}," + entry("b", "BF16", "2,3", 0, 12) + "," +
                     entry("a", "F32", "4", 12, 28) + "," + entry("c.scalar", "I64", "", 28, 36) + "}";
  auto f = make_file(json, 36);
  auto h = parse(f);
  REQUIRE(h.ok());
  CHECK(h->header_size % 8 == 0);
  CHECK(h->data_start == 8 + h->header_size);
  CHECK(h->file_size == f.size());
  CHECK(h->data_end == f.size());
  REQUIRE(h->tensors.size() == 3);
  CHECK(h->tensors[0].name == "a");
  CHECK(h->tensors[0].dtype == Dtype::F32);
  CHECK(h->tensors[0].begin == 12);
  CHECK(h->tensors[0].end == 28);
  CHECK(h->tensors[1].name == "b");
  CHECK(h->tensors[1].shape == std::vector<uint64_t>{2, 3});
  CHECK(h->tensors[2].shape.empty());
  CHECK(h->metadata.at("format") == "pt");
  CHECK(h->find("b") == &h->tensors[1]);
  CHECK(h->find("zz") == nullptr);
  CHECK(h->abs_begin(h->tensors[0]) == h->data_start + 12);
}

TEST_CASE("names sort as plain strings: layers.10 before layers.2") {
  std::string json = "{" + entry("layers.2.w", "U8", "1", 0, 1) + "," + entry("layers.10.w", "U8", "1", 1, 2) +
                     "," + entry("layers.1.w", "U8", "1", 2, 3) + "}";
  auto f = make_file(json, 3);
  auto h = parse(f);
  REQUIRE(h.ok());
  CHECK(h->tensors[0].name == "layers.1.w");
  CHECK(h->tensors[1].name == "layers.10.w");
  CHECK(h->tensors[2].name == "layers.2.w");
}

TEST_CASE("header length prefix") {
  auto f = make_file("{}", 0);
  auto n = header_prefix_length(f, f.size());
  REQUIRE(n.ok());
  CHECK(*n == 16);
  CHECK_FALSE(header_prefix_length(std::span(f).first(7), f.size()).ok());
  CHECK(header_prefix_length(f, 15).error().code == EINVAL);  // N + 8 > file size
  // N just over 100 MB is refused even when the file is large enough.
  std::vector<std::byte> big(8, std::byte{0});
  uint64_t n_big = kMaxHeaderSize + 1;
  for (int i = 0; i < 8; ++i) big[i] = static_cast<std::byte>((n_big >> (8 * i)) & 0xff);
  CHECK_FALSE(header_prefix_length(big, 1ull << 40).ok());
  // N = 2^64 - 1 must not overflow into a small number.
  std::vector<std::byte> huge(8, std::byte{0xff});
  CHECK_FALSE(header_prefix_length(huge, UINT64_MAX).ok());
}

TEST_CASE("empty header, empty and zero-sized tensors, sub-byte dtypes") {
  auto f0 = make_file("{}", 0);
  auto h0 = parse(f0);
  REQUIRE(h0.ok());
  CHECK(h0->tensors.empty());
  CHECK(h0->data_end == h0->data_start);

  std::string json = "{" + entry("e", "F32", "0,5", 4, 4) + "," + entry("x", "F32", "1", 0, 4) + "," +
                     entry("f4", "F4", "4", 4, 6) + "}";
  auto f = make_file(json, 6);
  auto h = parse(f);
  REQUIRE(h.ok());
  CHECK(h->find("e")->size() == 0);
  CHECK(h->find("f4")->size() == 2);
}

struct BadCase {
  const char* what;
  std::string json;
  uint64_t data_len;
};

TEST_CASE("invalid headers are EINVAL errors") {
  const std::vector<BadCase> cases = {
      {"not JSON", "{\"a\":", 0},
      {"not an object", "[1,2]", 0},
      {"does not start with {", " {}", 0},
      {"trailing garbage", "{}x", 0},
      {"unknown dtype", "{" + entry("a", "F17", "1", 0, 4) + "}", 4},
      {"dtype not a string", "{\"a\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
      {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4},
      {"entry not an object", "{\"a\":3}", 0},
      {"negative dim", "{" + entry("a", "F32", "-1", 0, 4) + "}", 4},
      {"float dim", "{" + entry("a", "F32", "1.5", 0, 4) + "}", 4},
      {"size mismatch", "{" + entry("a", "F32", "2", 0, 4) + "}", 8},
      {"end before begin", "{" + entry("a", "U8", "0", 4, 0) + "}", 8},
      {"offsets one element", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1},
      {"offset past data", "{" + entry("a", "U8", "4", 0, 4) + "}", 3},
      {"empty tensor at UINT64_MAX", "{" + entry("a", "U8", "0", UINT64_MAX, UINT64_MAX) + "}", 1},
      {"offset above 2^64", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[18446744073709551616,0]}}", 1},
      {"shape overflow", "{" + entry("a", "F32", "4294967296,4294967296", 0, 0) + "}", 0},
      {"bytes overflow", "{" + entry("a", "F64", "4611686018427387904", 0, 0) + "}", 0},
      {"sub-byte not whole", "{" + entry("a", "F4", "3", 0, 1) + "}", 1},
      {"overlap", "{" + entry("a", "U8", "4", 0, 4) + "," + entry("b", "U8", "4", 2, 6) + "}", 6},
      {"duplicate name", "{" + entry("a", "U8", "1", 0, 1) + "," + entry("a", "U8", "1", 1, 2) + "}", 2},
      {"metadata not string map", "{\"__metadata__\":{\"k\":1}}", 0},
      {"invalid UTF-8", "{\"\xff\":1}", 0},
  };
  for (const auto& c : cases) {
    const std::string what = c.what;
    CAPTURE(what);
    auto f = make_file(c.json, c.data_len);
    auto h = parse(f);
    CHECK_FALSE(h.ok());
    if (!h.ok()) {
      CHECK(h.error().code == EINVAL);
      CHECK_FALSE(h.error().message.empty());
    }
  }
}

TEST_CASE("overflowing data_offsets are rejected, not wrapped") {
  // begin + data_start would overflow if the parser added before checking the bound.
  std::string json = "{" + entry("a", "U8", "1", UINT64_MAX - 1, UINT64_MAX) + "}";
  auto f = make_file(json, 4);
  auto h = parse(f);
  REQUIRE_FALSE(h.ok());
  CHECK(h.error().message.find("'a'") != std::string::npos);
}

TEST_CASE("a buffer shorter than the header is an error, extra bytes are ignored") {
  auto f = make_file("{" + entry("a", "U8", "2", 0, 2) + "}", 2);
  CHECK_FALSE(parse_header(std::span(f).first(f.size() - 3), f.size()).ok());
  CHECK(parse_header(std::span(f).first(f.size() - 2), f.size()).ok());  // header only, no data bytes
}

TEST_CASE("gaps and trailing bytes are accepted") {
  std::string json = "{" + entry("a", "U8", "2", 0, 2) + "," + entry("b", "U8", "2", 10, 12) + "}";
  auto f = make_file(json, 20);
  auto h = parse(f);
  REQUIRE(h.ok());
  CHECK(h->data_end == h->data_start + 12);
}

TEST_CASE("dtype table round-trips") {
  for (auto d : {Dtype::BOOL, Dtype::F4, Dtype::BF16, Dtype::F8_E4M3, Dtype::C64, Dtype::U64}) {
    auto back = parse_dtype(dtype_name(d));
    REQUIRE(back.has_value());
    CHECK(*back == d);
  }
  CHECK(dtype_bits(Dtype::BF16) == 16);
  CHECK(dtype_bits(Dtype::F6_E3M2) == 6);
  CHECK(dtype_bits(Dtype::C64) == 64);
  CHECK_FALSE(parse_dtype("bf16").has_value());
}
