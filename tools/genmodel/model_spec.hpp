// modelfetch-genmodel's model description: a Llama-like architecture sized to a byte target, its tensors in
// module order (the order transformers' state_dict lists them, which is the order save_pretrained shards
// them in), and the shard assignment.
//
// Sizing: for a target of P parameters, try hidden sizes h = 64, 128, ... 1024 then steps of 256 to 16384 with Llama's proportions
// (layers = h / 128, at least 2; intermediate = 8h/3 rounded up to 64; head_dim 128, or 64 when h is not a
// multiple of 128; as many key/value heads as query heads; vocab 32000, shrunk for small targets so the
// two embedding matrices stay at most a quarter of the model). Keep the h whose total is closest to P, then
// set the layer count, then the vocab (a multiple of 64), to land near P: the result is within one vocab
// step (2 × 64 × h parameters) of the target unless the target is tiny.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/util/result.hpp"

namespace mf::genmodel {

enum class ElemType { bf16, f16, f32 };

struct Arch {
  uint64_t hidden = 0;
  uint64_t intermediate = 0;
  uint64_t layers = 0;
  uint64_t vocab = 0;
  uint64_t heads = 0;
  uint64_t kv_heads = 0;
  uint64_t head_dim = 0;
};

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> shape;
  uint64_t bytes = 0;
  uint32_t shard = 0;  // index into the shard list
};

uint64_t elem_bytes(ElemType t);
const char* safetensors_dtype(ElemType t);  // "BF16"
const char* torch_dtype(ElemType t);        // "bfloat16"

uint64_t param_count(const Arch& a);
Result<Arch> choose_arch(uint64_t target_bytes, ElemType type);

// Tensors in module order: embed_tokens, layers 0..L-1 (q, k, v, o, gate, up, down, the two norms), norm,
// lm_head.
std::vector<TensorSpec> llama_tensors(const Arch& a, ElemType type);

// Shards as transformers' save_pretrained cuts them: walk module order, start a new shard when adding the
// next tensor would pass max_shard_bytes (a tensor larger than that gets a shard of its own). Returns the
// shard count and sets TensorSpec::shard.
uint32_t shard_by_max_size(std::vector<TensorSpec>& tensors, uint64_t max_shard_bytes);
// Exactly-N-ways split by cumulative size: tensor i goes to shard floor(bytes before i × N / total). Shards
// that end up empty (a tensor larger than total/N) are dropped; returns the resulting count.
uint32_t shard_into(std::vector<TensorSpec>& tensors, uint32_t n);

// "model.safetensors" for one shard, else "model-0000k-of-0000N.safetensors" (k 1-based).
std::string shard_name(uint32_t index, uint32_t count);

// Parses "100M", "2G", "2GB", "1.5G", "512MiB", "123": K/M/G/T (with or without B) are decimal, as
// transformers' max_shard_size; KiB/MiB/GiB/TiB are binary.
Result<uint64_t> parse_size(const std::string& text);

}  // namespace mf::genmodel
