// model.safetensors.index.json parsing (written by transformers' save_pretrained when a checkpoint has
// more than one shard): {"metadata": {"total_size": <bytes>, ...}, "weight_map": {tensor: shard file, ...}}.
//
// The shard list is the sorted set of distinct file names in weight_map. save_pretrained names shards
// model-00001-of-0000N.safetensors, so sorted order is shard order, which is also the order loaders
// (from_pretrained, our st_load loaders) open them in. Shard names are relative file names: an absolute
// path or a ".." component is rejected, because callers resolve them next to the index (inside a mount).
// "metadata" is optional and only total_size (a non-negative integer when present) is read; other keys
// are ignored. Errors are EINVAL with a one-line message.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/result.hpp"

namespace mf::safetensors {

struct Index {
  std::map<std::string, std::string> weight_map;  // tensor name → shard file name
  std::vector<std::string> shards;                // distinct shard names, sorted
  std::optional<uint64_t> total_size;             // metadata.total_size when present
};

Result<Index> parse_index(std::string_view json);

}  // namespace mf::safetensors
