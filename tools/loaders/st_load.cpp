// modelfetch-load: the reference loader in C++ — safetensors 0.8 load_file's file access pattern, the same
// one tools/loaders/st_load.py reproduces (see docs/DESIGN.md, "safetensors").
//
//   modelfetch-load PATH [--manifest FILE] [--threads N]
//
// PATH is a model folder or one .safetensors file. For a folder: opendir/readdir, stat and read config.json
// and model.safetensors.index.json whole (open, fstat, read to EOF); shards = the index's sorted shard list
// (core/safetensors parse_index), else every *.safetensors sorted. Per shard: stat; open twice; mmap the
// whole file PROT_READ MAP_PRIVATE on the first fd and PROT_READ|PROT_WRITE MAP_PRIVATE on the second; close
// both fds before touching any tensor byte; parse the header (core/safetensors parse_header) from the first
// map; copy every tensor out of the second map in name order into one destination buffer per shard (kept
// until exit, as load_file's result would be).
//
// --threads N: work items are the tensors in name order cut into 8 MiB pieces (the cache's chunk size, so a
// piece never straddles more than two chunks); N threads take the next item from an atomic counter, which
// keeps the touch order close to name order while N copies are in flight. Default 1: the released loader's
// single-threaded order.
//
// --manifest: after each shard is copied, every tensor's absolute offset, length and XXH3-64 (of the copied
// bytes) is checked against the manifest written by modelfetch-genmodel, and the tensor count at the end;
// the first difference exits 1 naming the tensor. Hashing time is excluded from "seconds".
// Output: one JSON line {loader, threads, shards, bytes, seconds, gbps, first_tensor_s, tensors, verified}.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/safetensors/header.hpp"
#include "core/safetensors/index.hpp"
#include "core/util/result.hpp"

namespace mf::loader {
namespace {

namespace st = mf::safetensors;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kPiece = 8ull << 20;

struct ManifestTensor {
  uint64_t offset = 0, length = 0;
  std::string xxh3;
};
struct Manifest {
  std::map<std::pair<std::string, std::string>, ManifestTensor> tensors;  // (file, name)
  std::map<std::string, uint64_t> file_sizes;
};

Error fail(std::string m) { return make_error(EINVAL, std::move(m)); }
Error sys_fail(const std::string& what) { return make_error(errno, what + ": " + std::strerror(errno)); }

// open + fstat + read to EOF, as CPython's open().read() does.
Result<std::string> read_whole(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys_fail("open " + path);
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    ::close(fd);
    return sys_fail("fstat " + path);
  }
  std::string out(static_cast<size_t>(sb.st_size) + 1, '\0');
  size_t got = 0;
  for (;;) {
    if (got == out.size()) out.resize(out.size() * 2);
    ssize_t r = ::read(fd, out.data() + got, out.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

Result<Manifest> load_manifest(const std::string& path) {
  auto text = read_whole(path);
  if (!text) return text.error();
  rapidjson::Document d;
  d.Parse(text->c_str(), text->size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("tensors") || !d["tensors"].IsArray())
    return fail("manifest " + path + ": not a modelfetch-genmodel manifest");
  Manifest m;
  for (const auto& t : d["tensors"].GetArray()) {
    if (!t.IsObject() || !t.HasMember("file") || !t.HasMember("name") || !t.HasMember("offset") ||
        !t.HasMember("length") || !t.HasMember("xxh3") || !t["offset"].IsUint64() || !t["length"].IsUint64())
      return fail("manifest " + path + ": bad tensor entry");
    m.tensors[{t["file"].GetString(), t["name"].GetString()}] = {t["offset"].GetUint64(), t["length"].GetUint64(),
                                                                 t["xxh3"].GetString()};
  }
  if (d.HasMember("files") && d["files"].IsArray())
    for (const auto& f : d["files"].GetArray())
      if (f.IsObject() && f.HasMember("file") && f.HasMember("size") && f["size"].IsUint64())
        m.file_sizes[f["file"].GetString()] = f["size"].GetUint64();
  return m;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<std::vector<std::string>> find_shards(const std::string& path) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) return sys_fail("stat " + path);
  if (S_ISREG(sb.st_mode)) return std::vector<std::string>{path};
  std::vector<std::string> entries;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return sys_fail("opendir " + path);
  while (dirent* e = ::readdir(dir)) entries.emplace_back(e->d_name);
  ::closedir(dir);
  const std::string config = path + "/config.json";
  if (::stat(config.c_str(), &sb) == 0) {
    auto c = read_whole(config);
    if (!c) return c.error();
  }
  std::vector<std::string> names;
  const std::string index_path = path + "/model.safetensors.index.json";
  if (::stat(index_path.c_str(), &sb) == 0) {
    auto text = read_whole(index_path);
    if (!text) return text.error();
    auto index = st::parse_index(*text);
    if (!index) return index.error();
    names = index->shards;
  } else {
    for (const auto& e : entries)
      if (ends_with(e, ".safetensors")) names.push_back(e);
    std::sort(names.begin(), names.end());
  }
  if (names.empty()) return fail(path + ": no .safetensors files");
  for (auto& n : names) n = path + "/" + n;
  return names;
}

struct Stats {
  uint64_t bytes = 0, tensors = 0;
  double verify_seconds = 0;
  double wall_seconds = 0;  // from before the folder listing to the last copy (manifest parsing excluded)
  std::atomic<double> first_tensor{-1};
};

class Shard {
 public:
  ~Shard() {
    if (ro_ != MAP_FAILED) ::munmap(ro_, size_);
    if (rw_ != MAP_FAILED) ::munmap(rw_, size_);
  }
  // open ×2, map ×2, close ×2: the released loader's order.
  Result<void> map(const std::string& path) {
    struct stat sb {};
    if (::stat(path.c_str(), &sb) != 0) return sys_fail("stat " + path);
    int fd1 = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    int fd2 = fd1 < 0 ? -1 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd2 < 0) {
      if (fd1 >= 0) ::close(fd1);
      return sys_fail("open " + path);
    }
    Result<void> r;
    if (::fstat(fd1, &sb) != 0 || sb.st_size == 0) {
      r = fail(path + ": cannot size or empty");
    } else {
      size_ = static_cast<uint64_t>(sb.st_size);
      ro_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd1, 0);
      rw_ = ro_ == MAP_FAILED ? MAP_FAILED : ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd2, 0);
      if (rw_ == MAP_FAILED) r = sys_fail("mmap " + path);
    }
    ::close(fd1);
    ::close(fd2);
    return r;
  }
  uint64_t size() const { return size_; }
  std::span<const std::byte> ro() const { return {static_cast<const std::byte*>(ro_), size_}; }
  const std::byte* rw() const { return static_cast<const std::byte*>(rw_); }

 private:
  void* ro_ = MAP_FAILED;
  void* rw_ = MAP_FAILED;
  uint64_t size_ = 0;
};

struct Piece {
  size_t tensor;     // index in header.tensors (name order)
  uint64_t offset;   // within the tensor
  uint64_t length;
};

// Copies every tensor, name order, into dst (tensor i at dst_offsets[i]) with `threads` threads.
void copy_tensors(const st::Header& h, const std::byte* src, std::byte* dst, const std::vector<uint64_t>& dst_offsets,
                  unsigned threads, Clock::time_point start, Stats& stats) {
  std::vector<Piece> pieces;
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const uint64_t n = h.tensors[i].size();
    for (uint64_t off = 0; off < n; off += kPiece) pieces.push_back({i, off, std::min(kPiece, n - off)});
  }
  std::vector<std::atomic<uint64_t>> left(h.tensors.size());
  for (size_t i = 0; i < h.tensors.size(); ++i) left[i] = h.tensors[i].size();
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next.fetch_add(1)) < pieces.size();) {
      const Piece& p = pieces[k];
      const auto& t = h.tensors[p.tensor];
      std::memcpy(dst + dst_offsets[p.tensor] + p.offset, src + h.abs_begin(t) + p.offset, p.length);
      if (left[p.tensor].fetch_sub(p.length) == p.length) {
        double expected = -1;
        stats.first_tensor.compare_exchange_strong(expected,
                                                   std::chrono::duration<double>(Clock::now() - start).count());
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

Result<void> verify(const std::string& file, const st::Header& h, const std::byte* dst,
                    const std::vector<uint64_t>& dst_offsets, const Manifest& m) {
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const auto& t = h.tensors[i];
    auto it = m.tensors.find({file, t.name});
    if (it == m.tensors.end()) return fail("tensor " + t.name + " in " + file + ": not in the manifest");
    if (it->second.offset != h.abs_begin(t) || it->second.length != t.size())
      return fail("tensor " + t.name + " in " + file + ": offset/length differ from the manifest");
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx",
                  static_cast<unsigned long long>(XXH3_64bits(dst + dst_offsets[i], t.size())));
    if (it->second.xxh3 != hex)
      return fail("tensor " + t.name + " in " + file + ": XXH3 " + hex + ", manifest " + it->second.xxh3 +
                  " (content mismatch)");
  }
  return {};
}

struct Options {
  std::string path, manifest;
  unsigned threads = 1;
};

Result<void> load(const Options& o, Stats& stats, size_t* shard_count) {
  std::optional<Manifest> manifest;
  if (!o.manifest.empty()) {
    auto m = load_manifest(o.manifest);
    if (!m) return m.error();
    manifest = std::move(*m);
  }
  const auto start = Clock::now();
  auto shards = find_shards(o.path);
  if (!shards) return shards.error();
  *shard_count = shards->size();
  std::vector<std::unique_ptr<std::byte[]>> kept;  // what load_file returns stays alive until exit
  for (const auto& path : *shards) {
    const std::string file = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
    Shard shard;
    if (auto r = shard.map(path); !r) return r;
    if (manifest && manifest->file_sizes.count(file) && manifest->file_sizes.at(file) != shard.size())
      return fail(file + ": size differs from the manifest");
    auto h = st::parse_header(shard.ro(), shard.size());
    if (!h) return fail(file + ": " + h.error().message);
    std::vector<uint64_t> dst_offsets;
    uint64_t total = 0;
    for (const auto& t : h->tensors) {
      dst_offsets.push_back(total);
      total += t.size();
    }
    kept.push_back(std::make_unique_for_overwrite<std::byte[]>(std::max<uint64_t>(total, 1)));
    copy_tensors(*h, shard.rw(), kept.back().get(), dst_offsets, o.threads, start, stats);
    stats.bytes += total;
    stats.tensors += h->tensors.size();
    if (manifest) {
      const auto v0 = Clock::now();
      if (auto r = verify(file, *h, kept.back().get(), dst_offsets, *manifest); !r) return r;
      stats.verify_seconds += std::chrono::duration<double>(Clock::now() - v0).count();
    }
  }
  stats.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (manifest && stats.tensors != manifest->tensors.size())
    return fail("loaded " + std::to_string(stats.tensors) + " tensors, manifest lists " +
                std::to_string(manifest->tensors.size()));
  return {};
}

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--manifest" || a == "--threads") && i + 1 < argc) {
      std::string v = argv[++i];
      if (a == "--manifest") o.manifest = v;
      else o.threads = static_cast<unsigned>(std::clamp(std::atol(v.c_str()), 1L, 256L));
    } else if (o.path.empty() && !a.starts_with("--")) {
      o.path = a;
    } else {
      std::fprintf(stderr, "usage: modelfetch-load PATH [--manifest FILE] [--threads N]\n");
      return 2;
    }
  }
  if (o.path.empty()) {
    std::fprintf(stderr, "usage: modelfetch-load PATH [--manifest FILE] [--threads N]\n");
    return 2;
  }
  Stats stats;
  size_t shards = 0;
  auto r = load(o, stats, &shards);
  if (!r) {
    std::fprintf(stderr, "modelfetch-load: FAILED: %s\n", r.error().message.c_str());
    return 1;
  }
  const double secs = std::max(stats.wall_seconds - stats.verify_seconds, 1e-9);
  std::printf("{\"loader\": \"modelfetch-load\", \"threads\": %u, \"shards\": %zu, \"bytes\": %llu, \"seconds\": %.6f, "
              "\"gbps\": %.3f, \"first_tensor_s\": %.6f, \"tensors\": %llu, \"verified\": %s, "
              "\"verify_seconds\": %.6f}\n",
              o.threads, shards, static_cast<unsigned long long>(stats.bytes), secs, stats.bytes / secs / 1e9,
              std::max(0.0, stats.first_tensor.load()), static_cast<unsigned long long>(stats.tensors),
              o.manifest.empty() ? "false" : "true", stats.verify_seconds);
  return 0;
}

}  // namespace
}  // namespace mf::loader

int main(int argc, char** argv) { return mf::loader::run(argc, argv); }
