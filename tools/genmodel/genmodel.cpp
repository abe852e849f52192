// modelfetch-genmodel: writes a synthetic Llama-like checkpoint laid out exactly as transformers'
// save_pretrained + the safetensors crate write one, with deterministic content, and a manifest of hashes.
//
//   modelfetch-genmodel --out DIR --size 100M|2G|... [--shards N | --max-shard-size 2G] [--seed S]
//                       [--dtype bf16|f16|f32] [--manifest FILE] [--dry-run]
//
// Layout per shard (the crate's serialize): 8-byte LE header length N; the JSON header with "__metadata__":
// {"format":"pt"} first, then tensors sorted by name with data_offsets assigned in that order (all tensors
// share one dtype, so the crate's dtype-then-name sort is a name sort); the JSON padded with spaces so N is a
// multiple of 8; then the data. One shard is "model.safetensors" with no index (as save_pretrained); more are
// model-0000k-of-0000N.safetensors with model.safetensors.index.json (indent 2, sorted keys). config.json is
// a LlamaConfig. Default sharding: save_pretrained's default max_shard_size of 5 GB.
//
// Content: tensor t's 64-bit word i is splitmix64(key_t + (i + 1) × golden), key_t = XXH3_64(name, seed):
// counter-based, so a tensor's bytes depend only on (seed, name), not on sharding, and generation runs at
// several GB/s. Each 16/32-bit value is masked to a finite float in [2^-7, 2) with a random sign (no NaN or
// Inf: a consumer may compute on them). Data goes through one 16 MiB buffer written with write(2): large
// writes, bounded memory. XXH3-64 of every tensor and every whole file is computed while writing.
//
// manifest.json (in DIR unless --manifest): files [{file, size, xxh3}] (shards, index, config) and tensors
// [{file, name, offset (absolute), length, xxh3}] in file then offset order; hashes are 16 lowercase hex.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack (stable in xxHash 0.8)
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tools/genmodel/model_spec.hpp"

namespace mf::genmodel {
namespace {

constexpr uint64_t kBufferBytes = 16ull << 20;  // one write(2) per 16 MiB: syscall cost negligible
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

struct Options {
  std::string out, manifest;
  uint64_t size = 0, max_shard = 5'000'000'000ull, seed = 0;
  uint32_t shards = 0;
  bool dry_run = false;  // print the plan (architecture, shards) and write nothing
  ElemType type = ElemType::bf16;
};

struct FileRecord {
  std::string file;
  uint64_t size;
  uint64_t xxh3;
};
struct TensorRecord {
  std::string file, name;
  uint64_t offset, length, xxh3;
};

uint64_t splitmix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Keeps sign, mantissa and the low exponent bits; forces the high exponent bits to 0111 1xxx (bf16/f32) or
// 011xx (f16): every value is finite, in [2^-7, 2) or [2^-3, 2).
void value_masks(ElemType t, uint64_t* keep, uint64_t* set) {
  switch (t) {
    case ElemType::bf16: *keep = 0x83FF83FF83FF83FFull; *set = 0x3C003C003C003C00ull; break;
    case ElemType::f16: *keep = 0x8FFF8FFF8FFF8FFFull; *set = 0x3000300030003000ull; break;
    case ElemType::f32: *keep = 0x83FFFFFF83FFFFFFull; *set = 0x3C0000003C000000ull; break;
  }
}

std::string hex(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o.push_back('\\');
    o.push_back(c);
  }
  return o + "\"";
}

bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Writes a small text file whole and records it.
bool write_text(const std::string& dir, const std::string& name, const std::string& text,
                std::vector<FileRecord>& files) {
  const std::string path = dir + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || !write_all(fd, text.data(), text.size()) || ::close(fd) != 0) {
    std::fprintf(stderr, "modelfetch-genmodel: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  files.push_back({name, text.size(), XXH3_64bits(text.data(), text.size())});
  return true;
}

// The safetensors header for one shard's tensors (name-sorted), padded to a multiple of 8, with its
// 8-byte length prefix.
std::string shard_header(const std::vector<const TensorSpec*>& ts, ElemType type) {
  std::string j = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t off = 0;
  for (const TensorSpec* t : ts) {
    j += "," + json_str(t->name) + ":{\"dtype\":\"" + safetensors_dtype(type) + "\",\"shape\":[";
    for (size_t i = 0; i < t->shape.size(); ++i) j += (i ? "," : "") + std::to_string(t->shape[i]);
    j += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t->bytes) + "]}";
    off += t->bytes;
  }
  j += "}";
  while (j.size() % 8 != 0) j.push_back(' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((j.size() >> (8 * i)) & 0xff);
  return out + j;
}

// Streams data into a file through the buffer, hashing the whole file as it goes.
class ShardWriter {
 public:
  ShardWriter(int fd, std::vector<char>& buf) : fd_(fd), buf_(buf) { XXH3_64bits_reset(&file_state_); }
  bool put(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      size_t take = std::min(n, buf_.size() - used_);
      std::memcpy(buf_.data() + used_, c, take);
      used_ += take, c += take, n -= take;
      if (used_ == buf_.size() && !flush()) return false;
    }
    return true;
  }
  // Generates `bytes` of tensor content straight into the buffer; returns the tensor's XXH3.
  bool put_tensor(uint64_t key, uint64_t bytes, ElemType type, uint64_t* hash) {
    uint64_t keep = 0, set = 0;
    value_masks(type, &keep, &set);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    uint64_t word = 0;
    while (bytes > 0) {
      // Fill whole words at buf_ + used_ (memcpy per word keeps alignment irrelevant).
      size_t room = (buf_.size() - used_) / 8 * 8;
      if (room == 0) {
        if (!flush()) return false;
        continue;
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(bytes, room));
      char* dst = buf_.data() + used_;
      for (size_t i = 0; i < take; i += 8) {
        uint64_t v = (splitmix(key + (++word) * kGolden) & keep) | set;
        std::memcpy(dst + i, &v, std::min<size_t>(8, take - i));
      }
      XXH3_64bits_update(&st, dst, take);
      used_ += take;
      bytes -= take;
    }
    *hash = XXH3_64bits_digest(&st);
    return true;
  }
  bool flush() {
    XXH3_64bits_update(&file_state_, buf_.data(), used_);
    bool ok = write_all(fd_, buf_.data(), used_);
    used_ = 0;
    return ok;
  }
  uint64_t digest() { return XXH3_64bits_digest(&file_state_); }

 private:
  int fd_;
  std::vector<char>& buf_;
  size_t used_ = 0;
  XXH3_state_t file_state_;
};

bool write_shard(const Options& o, const std::string& name, std::vector<const TensorSpec*> ts, std::vector<char>& buf,
                 std::vector<FileRecord>& files, std::vector<TensorRecord>& tensors) {
  std::sort(ts.begin(), ts.end(), [](const TensorSpec* a, const TensorSpec* b) { return a->name < b->name; });
  const std::string path = o.out + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "modelfetch-genmodel: cannot create %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  ShardWriter w(fd, buf);
  const std::string header = shard_header(ts, o.type);
  bool ok = w.put(header.data(), header.size());
  uint64_t offset = header.size();
  for (const TensorSpec* t : ts) {
    if (!ok) break;
    uint64_t h = 0;
    ok = w.put_tensor(XXH3_64bits_withSeed(t->name.data(), t->name.size(), o.seed), t->bytes, o.type, &h);
    tensors.push_back({name, t->name, offset, t->bytes, h});
    offset += t->bytes;
  }
  ok = ok && w.flush();
  if (::close(fd) != 0) ok = false;
  if (!ok) {
    std::fprintf(stderr, "modelfetch-genmodel: write %s failed: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  files.push_back({name, offset, w.digest()});
  return true;
}

std::string index_json(const std::vector<TensorSpec>& ts, uint32_t nshards) {
  std::map<std::string, std::string> wm;
  uint64_t total = 0;
  for (const auto& t : ts) {
    wm[t.name] = shard_name(t.shard, nshards);
    total += t.bytes;
  }
  std::string j = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(total) + "\n  },\n  \"weight_map\": {\n";
  size_t i = 0;
  for (const auto& [k, v] : wm) j += "    " + json_str(k) + ": " + json_str(v) + (++i < wm.size() ? ",\n" : "\n");
  return j + "  }\n}\n";
}

std::string config_json(const Arch& a, ElemType type) {
  auto n = [](uint64_t v) { return std::to_string(v); };
  return std::string("{\n") + "  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n" +
         "  \"attention_bias\": false,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n" +
         "  \"head_dim\": " + n(a.head_dim) + ",\n  \"hidden_act\": \"silu\",\n" +
         "  \"hidden_size\": " + n(a.hidden) + ",\n  \"initializer_range\": 0.02,\n" +
         "  \"intermediate_size\": " + n(a.intermediate) + ",\n  \"max_position_embeddings\": 4096,\n" +
         "  \"model_type\": \"llama\",\n  \"num_attention_heads\": " + n(a.heads) + ",\n" +
         "  \"num_hidden_layers\": " + n(a.layers) + ",\n  \"num_key_value_heads\": " + n(a.kv_heads) + ",\n" +
         "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 10000.0,\n  \"tie_word_embeddings\": false,\n" +
         "  \"torch_dtype\": \"" + torch_dtype(type) + "\",\n  \"use_cache\": true,\n" +
         "  \"vocab_size\": " + n(a.vocab) + "\n}\n";
}

std::string manifest_json(const Options& o, const Arch& a, const std::vector<FileRecord>& files,
                          const std::vector<TensorRecord>& tensors) {
  std::string j = "{\n  \"generator\": \"modelfetch-genmodel\",\n  \"seed\": " + std::to_string(o.seed) +
                  ",\n  \"dtype\": \"" + safetensors_dtype(o.type) + "\",\n  \"parameters\": " +
                  std::to_string(param_count(a)) + ",\n  \"files\": [\n";
  for (size_t i = 0; i < files.size(); ++i)
    j += "    {\"file\": " + json_str(files[i].file) + ", \"size\": " + std::to_string(files[i].size) +
         ", \"xxh3\": \"" + hex(files[i].xxh3) + "\"}" + (i + 1 < files.size() ? ",\n" : "\n");
  j += "  ],\n  \"tensors\": [\n";
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    j += "    {\"file\": " + json_str(t.file) + ", \"name\": " + json_str(t.name) + ", \"offset\": " +
         std::to_string(t.offset) + ", \"length\": " + std::to_string(t.length) + ", \"xxh3\": \"" + hex(t.xxh3) +
         "\"}" + (i + 1 < tensors.size() ? ",\n" : "\n");
  }
  return j + "  ]\n}\n";
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "modelfetch-genmodel: %s\nusage: modelfetch-genmodel --out DIR --size SIZE [--shards N | "
               "--max-shard-size SIZE] [--seed S] [--dtype bf16|f16|f32] [--manifest FILE] [--dry-run]\n",
               msg);
  return 2;
}

// Returns 0 when parsed, else the exit code.
int parse_args(int argc, char** argv, Options& o) {
  bool have_max = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dry-run") {
      o.dry_run = true;
      continue;
    }
    if (i + 1 >= argc) return usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    if (a == "--out") {
      o.out = v;
    } else if (a == "--manifest") {
      o.manifest = v;
    } else if (a == "--size" || a == "--max-shard-size") {
      auto s = parse_size(v);
      if (!s || *s == 0) return usage(("bad size " + v).c_str());
      (a == "--size" ? o.size : o.max_shard) = *s;
      have_max = have_max || a == "--max-shard-size";
    } else if (a == "--shards") {
      o.shards = static_cast<uint32_t>(std::strtoul(v.c_str(), nullptr, 10));
      if (o.shards == 0 || o.shards > 99999) return usage("--shards wants 1..99999");
    } else if (a == "--seed") {
      o.seed = std::strtoull(v.c_str(), nullptr, 0);
    } else if (a == "--dtype") {
      if (v == "bf16") o.type = ElemType::bf16;
      else if (v == "f16") o.type = ElemType::f16;
      else if (v == "f32") o.type = ElemType::f32;
      else return usage("--dtype wants bf16, f16 or f32");
    } else {
      return usage(("unknown option " + a).c_str());
    }
  }
  if (o.out.empty() || o.size == 0) return usage("--out and --size are required");
  if (have_max && o.shards != 0) return usage("--shards and --max-shard-size exclude each other");
  if (o.manifest.empty()) o.manifest = o.out + "/manifest.json";
  return 0;
}

int run(int argc, char** argv) {
  Options o;
  if (int rc = parse_args(argc, argv, o); rc != 0) return rc;
  auto arch = choose_arch(o.size, o.type);
  if (!arch) return usage(arch.error().message.c_str());
  auto specs = llama_tensors(*arch, o.type);
  const uint32_t nshards = o.shards ? shard_into(specs, o.shards) : shard_by_max_size(specs, o.max_shard);
  if (o.shards && nshards != o.shards)
    std::fprintf(stderr, "modelfetch-genmodel: %u shards requested, %u possible (large tensors)\n", o.shards, nshards);
  if (o.dry_run) {
    uint64_t bytes = 0;
    for (const auto& t : specs) bytes += t.bytes;
    std::printf("{\"tensor_bytes\": %llu, \"shards\": %u, \"tensors\": %zu, \"hidden\": %llu, \"layers\": %llu, "
                "\"vocab\": %llu, \"intermediate\": %llu, \"heads\": %llu}\n",
                static_cast<unsigned long long>(bytes), nshards, specs.size(),
                static_cast<unsigned long long>(arch->hidden), static_cast<unsigned long long>(arch->layers),
                static_cast<unsigned long long>(arch->vocab), static_cast<unsigned long long>(arch->intermediate),
                static_cast<unsigned long long>(arch->heads));
    return 0;
  }
  if (::mkdir(o.out.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "modelfetch-genmodel: mkdir %s: %s\n", o.out.c_str(), std::strerror(errno));
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<char> buf(kBufferBytes);
  std::vector<FileRecord> files;
  std::vector<TensorRecord> tensors;
  uint64_t total = 0;
  for (uint32_t s = 0; s < nshards; ++s) {
    std::vector<const TensorSpec*> in;
    for (const auto& t : specs)
      if (t.shard == s) in.push_back(&t);
    if (!write_shard(o, shard_name(s, nshards), in, buf, files, tensors)) return 1;
    total += files.back().size;
  }
  if (nshards > 1 && !write_text(o.out, "model.safetensors.index.json", index_json(specs, nshards), files)) return 1;
  if (!write_text(o.out, "config.json", config_json(*arch, o.type), files)) return 1;
  const std::string m = manifest_json(o, *arch, files, tensors);
  int fd = ::open(o.manifest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || !write_all(fd, m.data(), m.size()) || ::close(fd) != 0) {
    std::fprintf(stderr, "modelfetch-genmodel: cannot write %s\n", o.manifest.c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"dir\": %s, \"bytes\": %llu, \"shards\": %u, \"tensors\": %zu, \"hidden\": %llu, \"layers\": %llu, "
              "\"vocab\": %llu, \"seconds\": %.3f}\n",
              json_str(o.out).c_str(), static_cast<unsigned long long>(total), nshards, tensors.size(),
              static_cast<unsigned long long>(arch->hidden), static_cast<unsigned long long>(arch->layers),
              static_cast<unsigned long long>(arch->vocab), secs);
  return 0;
}

}  // namespace
}  // namespace mf::genmodel

int main(int argc, char** argv) { return mf::genmodel::run(argc, argv); }
