// See model_spec.hpp.
#include "tools/genmodel/model_spec.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>

namespace mf::genmodel {
namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

Arch proportions(uint64_t h, uint64_t target_params) {
  Arch a;
  a.hidden = h;
  a.layers = std::max<uint64_t>(2, h / 128);
  a.intermediate = align_up(8 * h / 3, 64);
  a.head_dim = h % 128 == 0 ? 128 : 64;
  a.heads = h / a.head_dim;
  a.kv_heads = a.heads;
  a.vocab = 32000;
  if (2 * a.vocab * h > target_params / 4) a.vocab = std::max<uint64_t>(256, target_params / (8 * h) / 64 * 64);
  return a;
}

uint64_t layer_params(const Arch& a) {
  const uint64_t h = a.hidden;
  const uint64_t kv = a.kv_heads * a.head_dim;
  return 2 * h * h + 2 * kv * h + 3 * h * a.intermediate + 2 * h;
}

double distance(uint64_t total, uint64_t target) {
  return std::fabs(std::log(static_cast<double>(total) / static_cast<double>(target)));
}

}  // namespace

uint64_t elem_bytes(ElemType t) { return t == ElemType::f32 ? 4 : 2; }
const char* safetensors_dtype(ElemType t) { return t == ElemType::bf16 ? "BF16" : t == ElemType::f16 ? "F16" : "F32"; }
const char* torch_dtype(ElemType t) {
  return t == ElemType::bf16 ? "bfloat16" : t == ElemType::f16 ? "float16" : "float32";
}

uint64_t param_count(const Arch& a) { return 2 * a.vocab * a.hidden + a.hidden + a.layers * layer_params(a); }

Result<Arch> choose_arch(uint64_t target_bytes, ElemType type) {
  const uint64_t target = target_bytes / elem_bytes(type);
  if (target < 200'000) return make_error(EINVAL, "size below the smallest model this generator makes (~400 kB)");
  if (target > (1ull << 42)) return make_error(EINVAL, "size above 8 TB");
  Arch best;
  double best_d = 1e300;
  // Steps of 64 for small models, 256 from 1024 up (real hidden sizes are round: 2048, 4096, 5120).
  for (uint64_t h = 64; h <= 16384; h += h < 1024 ? 64 : 256) {
    Arch a = proportions(h, target);
    double d = distance(param_count(a), target);
    if (d < best_d) {
      best_d = d;
      best = a;
    }
  }
  const uint64_t per_layer = layer_params(best);
  const uint64_t fixed = 2 * best.vocab * best.hidden + best.hidden;
  const uint64_t rest = target > fixed ? target - fixed : 0;
  best.layers = std::max<uint64_t>(1, (rest + per_layer / 2) / per_layer);
  const uint64_t body = best.layers * per_layer + best.hidden;
  if (target > body) {
    const uint64_t step = 2 * 64 * best.hidden;
    best.vocab = std::max<uint64_t>(64, (target - body + step / 2) / step * 64);
  } else {
    best.vocab = 64;
  }
  return best;
}

std::vector<TensorSpec> llama_tensors(const Arch& a, ElemType type) {
  const uint64_t h = a.hidden, kv = a.kv_heads * a.head_dim, im = a.intermediate;
  std::vector<TensorSpec> out;
  auto add = [&](std::string name, std::vector<uint64_t> shape) {
    uint64_t n = elem_bytes(type);
    for (uint64_t d : shape) n *= d;
    out.push_back({std::move(name), std::move(shape), n, 0});
  };
  add("model.embed_tokens.weight", {a.vocab, h});
  for (uint64_t i = 0; i < a.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "self_attn.q_proj.weight", {h, h});
    add(p + "self_attn.k_proj.weight", {kv, h});
    add(p + "self_attn.v_proj.weight", {kv, h});
    add(p + "self_attn.o_proj.weight", {h, h});
    add(p + "mlp.gate_proj.weight", {im, h});
    add(p + "mlp.up_proj.weight", {im, h});
    add(p + "mlp.down_proj.weight", {h, im});
    add(p + "input_layernorm.weight", {h});
    add(p + "post_attention_layernorm.weight", {h});
  }
  add("model.norm.weight", {h});
  add("lm_head.weight", {a.vocab, h});
  return out;
}

uint32_t shard_by_max_size(std::vector<TensorSpec>& tensors, uint64_t max_shard_bytes) {
  uint32_t shard = 0;
  uint64_t in_shard = 0;
  bool empty = true;
  for (auto& t : tensors) {
    if (!empty && in_shard + t.bytes > max_shard_bytes) {
      ++shard;
      in_shard = 0;
    }
    t.shard = shard;
    in_shard += t.bytes;
    empty = false;
  }
  return tensors.empty() ? 0 : shard + 1;
}

uint32_t shard_into(std::vector<TensorSpec>& tensors, uint32_t n) {
  uint64_t total = 0;
  for (const auto& t : tensors) total += t.bytes;
  uint64_t before = 0;
  for (auto& t : tensors) {  // totals are < 2^43 and n < 2^17: the product fits
    t.shard = static_cast<uint32_t>(std::min<uint64_t>(n - 1, before * n / std::max<uint64_t>(total, 1)));
    before += t.bytes;
  }
  // Renumber densely: shard ids are non-decreasing in module order, so a running counter suffices.
  uint32_t next = 0;
  uint32_t last = UINT32_MAX;
  for (auto& t : tensors) {
    if (t.shard != last) {
      last = t.shard;
      ++next;
    }
    t.shard = next - 1;
  }
  return next;
}

std::string shard_name(uint32_t index, uint32_t count) {
  if (count == 1) return "model.safetensors";
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05u-of-%05u.safetensors", index + 1, count);
  return buf;
}

Result<uint64_t> parse_size(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    return make_error(EINVAL, "bad size '" + text + "'");
  }
  std::string unit;
  for (size_t i = used; i < text.size(); ++i) unit.push_back(static_cast<char>(std::toupper(text[i])));
  double mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  const char* dec[] = {"K", "M", "G", "T"};
  const char* bin[] = {"KIB", "MIB", "GIB", "TIB"};
  for (int i = 0; i < 4; ++i) {
    if (unit == dec[i] || unit == std::string(dec[i]) + "B") mult = std::pow(1000.0, i + 1);
    if (unit == bin[i]) mult = std::pow(1024.0, i + 1);
  }
  if (mult == 0 || v < 0 || v * mult > 1.8e19) return make_error(EINVAL, "bad size '" + text + "'");
  return static_cast<uint64_t>(v * mult);
}

}  // namespace mf::genmodel
