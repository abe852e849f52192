#include <doctest/doctest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "core/safetensors/index.hpp"

using namespace mf::safetensors;

TEST_CASE("index: weight_map and sorted shard list") {
  const char* json = R"({
  "metadata": {"total_size": 123456},
  "weight_map": {
    "lm_head.weight": "model-00002-of-00002.safetensors",
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.layers.0.mlp.down_proj.weight": "model-00001-of-00002.safetensors",
    "model.norm.weight": "model-00002-of-00002.safetensors"
  }
})";
  auto idx = parse_index(json);
  REQUIRE(idx.ok());
  CHECK(idx->total_size == 123456u);
  CHECK(idx->weight_map.size() == 4);
  CHECK(idx->weight_map.at("lm_head.weight") == "model-00002-of-00002.safetensors");
  CHECK(idx->shards == std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
}

TEST_CASE("index: metadata optional, extra keys ignored, subfolder shard allowed") {
  auto idx = parse_index(R"({"weight_map":{"a":"sub/x.safetensors"},"other":[1]})");
  REQUIRE(idx.ok());
  CHECK_FALSE(idx->total_size.has_value());
  CHECK(idx->shards == std::vector<std::string>{"sub/x.safetensors"});
  auto f = parse_index(R"({"metadata":{"total_size":10.0,"format":"pt"},"weight_map":{}})");
  REQUIRE(f.ok());
  CHECK(f->total_size == 10u);
  CHECK(f->shards.empty());
}

TEST_CASE("index: wrong types and unsafe names are EINVAL") {
  const std::vector<std::string> bad = {
      "",
      "[]",
      R"({"metadata":{}})",
      R"({"weight_map":[]})",
      R"({"weight_map":{"a":1}})",
      R"({"weight_map":{"a":""}})",
      R"({"weight_map":{"a":"/etc/passwd"}})",
      R"({"weight_map":{"a":"../x.safetensors"}})",
      R"({"weight_map":{"a":"d/../../x"}})",
      R"({"weight_map":{"a":"x","a":"y"}})",
      R"({"metadata":3,"weight_map":{}})",
      R"({"metadata":{"total_size":-1},"weight_map":{}})",
      R"({"metadata":{"total_size":"5"},"weight_map":{}})",
      R"({"weight_map":{}} trailing)",
  };
  for (const auto& j : bad) {
    CAPTURE(j);
    auto idx = parse_index(j);
    CHECK_FALSE(idx.ok());
    if (!idx.ok()) CHECK(idx.error().code == EINVAL);
  }
}
