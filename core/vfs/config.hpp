// Configuration of the virtual file system, read once at init from the environment (through EnvLookup, so
// tests pass a map and the shim reads `environ` without calling getenv).
//
//   MODELFETCH_REMOTE + MODELFETCH_MOUNT   one mount: remote URL (s3://bucket/prefix, http(s)://host/path)
//                                          and an absolute local path (normalised lexically)
//   MODELFETCH_MOUNTS="/a=s3://b/x;/b=https://h/p"   several mounts (wins over the pair above)
//   MODELFETCH_LOG=error|warn|info|debug   default warn
//   MODELFETCH_UFFD=auto|on|off            default auto
//   MODELFETCH_HUGE_PAGES=auto|off         default auto: writable mappings get whole 2 MiB pages where the
//                                          kernel can move them in (UFFDIO_MOVE, Linux 6.8+, THP enabled)
//   MODELFETCH_STATS=FILE                  JSON statistics written at exit
//   MODELFETCH_CACHE_SIZE                  default 25% of RAM, at most 16 GiB (the cache holds whole chunks;
//                                          a quarter of RAM leaves the rest to the program that loads the model)
//   MODELFETCH_CHUNK_SIZE                  default 8 MiB (a multiple of 4 KiB, 64 KiB..1 GiB)
//   MODELFETCH_PREFETCH, MODELFETCH_THREADS, MODELFETCH_MAX_INFLIGHT, MODELFETCH_LOOKAHEAD_FILES
//                                          the prefetch engine (core/prefetch/policy.hpp)
//
// Any invalid value is an Error naming the variable and the expected form; the shim prints it once and then
// passes every call through, so the program still runs (on local files only).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/prefetch/policy.hpp"
#include "core/util/env.hpp"
#include "core/util/log.hpp"
#include "core/util/result.hpp"
#include "core/vfs/mappings.hpp"

namespace mf {

struct MountSpec {
  std::string path;    // absolute, normalised, never "/" and never ending in '/'
  std::string remote;  // as given: s3://bucket[/prefix] or http(s)://host[/path]
};

struct VfsConfig {
  std::vector<MountSpec> mounts;  // longest path first, so the most specific mount matches
  LogLevel log_level = LogLevel::warn;
  UffdSetting uffd = UffdSetting::automatic;
  bool huge_pages = true;  // MODELFETCH_HUGE_PAGES=auto|off
  std::string stats_file;
  uint64_t cache_size = 0;
  uint64_t chunk_size = 8ull << 20;
  PrefetchConfig prefetch;
};

// 25% of ram_bytes, clamped to [256 MiB, 16 GiB].
uint64_t default_cache_size(uint64_t ram_bytes);

// Parses everything above. ram_bytes feeds the default cache size.
Result<VfsConfig> parse_config(const EnvLookup& env, uint64_t ram_bytes);

// True for s3://bucket[/...] and http(s)://host[/...].
bool valid_remote(std::string_view url);

}  // namespace mf
