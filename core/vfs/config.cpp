#include "core/vfs/config.hpp"

#include <algorithm>

#include "core/vfs/path.hpp"

namespace mf {
namespace {

constexpr uint64_t kMinCache = 256ull << 20;
constexpr uint64_t kMaxCache = 16ull << 30;

Result<std::string> parse_mount_path(std::string_view name, std::string_view value) {
  if (value.empty() || value[0] != '/')
    return bad_variable(name, value, "an absolute local path like /models");
  std::string norm = normalize_path(value);
  if (norm == "/") return bad_variable(name, value, "an absolute local path other than / (like /models)");
  return norm;
}

Result<std::vector<MountSpec>> parse_mounts(const EnvLookup& env) {
  std::vector<MountSpec> mounts;
  if (auto list = env("MODELFETCH_MOUNTS"); list && !list->empty()) {
    constexpr std::string_view kForm = "\"/local/a=s3://bucket/prefix;/local/b=https://host/path\"";
    std::string_view rest = *list;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view item = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      if (item.empty()) continue;
      size_t eq = item.find('=');
      if (eq == std::string_view::npos) return bad_variable("MODELFETCH_MOUNTS", *list, kForm);
      auto path = parse_mount_path("MODELFETCH_MOUNTS", item.substr(0, eq));
      if (!path || !valid_remote(item.substr(eq + 1))) return bad_variable("MODELFETCH_MOUNTS", *list, kForm);
      mounts.push_back(MountSpec{*path, std::string(item.substr(eq + 1))});
    }
    if (mounts.empty()) return bad_variable("MODELFETCH_MOUNTS", *list, kForm);
  } else {
    auto remote = env("MODELFETCH_REMOTE");
    auto mount = env("MODELFETCH_MOUNT");
    if (!remote || remote->empty() || !mount || mount->empty())
      return make_error(EINVAL,
                        "MODELFETCH_REMOTE and MODELFETCH_MOUNT are not both set: expected "
                        "MODELFETCH_REMOTE=s3://bucket/prefix (or https://host/path) and "
                        "MODELFETCH_MOUNT=/local/path, or MODELFETCH_MOUNTS=\"/local/a=s3://bucket/x;...\"");
    if (!valid_remote(*remote))
      return bad_variable("MODELFETCH_REMOTE", *remote, "s3://bucket/prefix, http://host/path or https://host/path");
    auto path = parse_mount_path("MODELFETCH_MOUNT", *mount);
    if (!path) return path.error();
    mounts.push_back(MountSpec{*path, *remote});
  }
  std::sort(mounts.begin(), mounts.end(),
            [](const MountSpec& a, const MountSpec& b) { return a.path.size() > b.path.size(); });
  for (size_t i = 1; i < mounts.size(); ++i)
    if (mounts[i].path == mounts[i - 1].path)
      return make_error(EINVAL, "MODELFETCH_MOUNTS: " + mounts[i].path + " is mounted twice");
  return mounts;
}

}  // namespace

bool valid_remote(std::string_view url) { return split_remote(url).ok(); }

uint64_t default_cache_size(uint64_t ram_bytes) {
  return std::clamp(ram_bytes / 4, kMinCache, kMaxCache);
}

Result<VfsConfig> parse_config(const EnvLookup& env, uint64_t ram_bytes) {
  VfsConfig c;
  if (auto v = env("MODELFETCH_LOG"); v && !v->empty()) {
    auto level = parse_log_level(*v);
    if (!level) return bad_variable("MODELFETCH_LOG", *v, "error, warn, info or debug");
    c.log_level = *level;
  }
  if (auto v = env("MODELFETCH_UFFD"); v && !v->empty()) {
    if (*v == "auto") c.uffd = UffdSetting::automatic;
    else if (*v == "on") c.uffd = UffdSetting::on;
    else if (*v == "off") c.uffd = UffdSetting::off;
    else return bad_variable("MODELFETCH_UFFD", *v, "auto, on or off");
  }
  if (auto v = env("MODELFETCH_HUGE_PAGES"); v && !v->empty()) {
    if (*v == "auto") c.huge_pages = true;
    else if (*v == "off") c.huge_pages = false;
    else return bad_variable("MODELFETCH_HUGE_PAGES", *v, "auto or off");
  }
  if (auto v = env("MODELFETCH_STATS"); v) c.stats_file = *v;
  auto chunk = env_size(env, "MODELFETCH_CHUNK_SIZE", 8ull << 20);
  if (!chunk) return chunk.error();
  if (*chunk % 4096 != 0 || *chunk < (64u << 10) || *chunk > (1ull << 30))
    return bad_variable("MODELFETCH_CHUNK_SIZE", *env("MODELFETCH_CHUNK_SIZE"), "a multiple of 4K from 64K to 1G");
  c.chunk_size = *chunk;
  auto cache = env_size(env, "MODELFETCH_CACHE_SIZE", default_cache_size(ram_bytes));
  if (!cache) return cache.error();
  if (*cache < 2 * c.chunk_size)  // one chunk being read while the next is fetched
    return bad_variable("MODELFETCH_CACHE_SIZE", *env("MODELFETCH_CACHE_SIZE"), "at least two chunks (2 x chunk size)");
  c.cache_size = *cache;
  auto prefetch = parse_prefetch_config(env);
  if (!prefetch) return prefetch.error();
  c.prefetch = *prefetch;
  auto mounts = parse_mounts(env);
  if (!mounts) return mounts.error();
  c.mounts = std::move(*mounts);
  return c;
}

}  // namespace mf
