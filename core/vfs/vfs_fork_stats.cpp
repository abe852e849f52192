// Vfs: fork handlers and the MODELFETCH_STATS report.
//
// Fork (pthread_atfork, docs/DESIGN.md "Locks" and "Fork"). Prepare first fills every registered mapping
// without holding any lock (a child's copy of a registered private mapping is not registered: its missing
// pages would read as zeros), then takes every core lock in rank order (core/util/lock.hpp): the engine's,
// the tree's, the objects', the prefetcher's, the fd table's, the mapping manager's (which fills what a
// mapping made meanwhile still lacks) and its hints', the cache's, the router's, the
// clients' bucket regions and the virtual cwd's. No thread holds any of
// them across network I/O, so prepare waits for short critical sections at most. The parent releases them
// in reverse order. The child releases them too, after resetting what lived in threads that are gone: the
// stores' I/O threads (the router abandons them and creates fresh ones on the next request), requests in
// flight (the tree and the cache forget them, so the child asks again), the prefetcher and the mappings'
// fault and fill threads (abandoned; a new map() starts new ones).
#include <fcntl.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <algorithm>

#include "core/remote/client.hpp"
#include "core/vfs/vfs.hpp"

namespace mf {

void Vfs::before_fork() {
  if (MappingManager* mm = mappings()) mm->fill_for_fork();  // network, before any lock is taken
  engine_mu_.lock();
  tree_.before_fork();
  objects_mu_.lock();
  if (prefetcher_) prefetcher_->before_fork();
  fds_.lock();
  if (mm_) mm_->before_fork();
  if (cache_) cache_->before_fork();
  router_.before_fork();
  remote_before_fork();
  cwd_mu_.lock();
}

void Vfs::after_fork_parent() {
  cwd_mu_.unlock();
  remote_after_fork();
  router_.after_fork_parent();
  if (cache_) cache_->after_fork_parent();
  if (mm_) mm_->after_fork_parent();
  fds_.unlock();
  if (prefetcher_) prefetcher_->after_fork_parent();
  objects_mu_.unlock();
  tree_.after_fork_parent();
  engine_mu_.unlock();
}

void Vfs::after_fork_child() {
  cwd_mu_.unlock();
  remote_after_fork();
  router_.after_fork_child();
  if (cache_) cache_->after_fork_child();
  if (mm_) mm_->after_fork_child();
  fds_.unlock();
  if (prefetcher_) prefetcher_->after_fork_child();
  objects_mu_.unlock();
  tree_.after_fork_child();
  engine_mu_.unlock();
}

std::string Vfs::stats_json() const {
  StoreStats ss = router_.stats();
  CacheStats cs = cache_ ? cache_->stats() : CacheStats{};
  MappingStats ms = mm_ ? mm_->stats() : MappingStats{};
  auto wall = std::chrono::steady_clock::now() - start_;
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto put = [&w](const char* key, uint64_t value) {
    w.Key(key);
    w.Uint64(value);
  };
  w.StartObject();
  w.Key("mode");
  w.String(mm_ && mm_->mode() == MapMode::uffd ? "uffd" : "eager");
  put("get_requests", ss.get_requests);
  put("bytes_fetched", ss.bytes_fetched);
  put("bytes_served", cs.bytes_served);
  put("uffd_faults", ms.uffd_faults);
  put("uffd_bytes_moved", ms.bytes_moved);  // placed as whole huge pages (UFFDIO_MOVE)
  w.Key("fault_wait_ms");
  w.Double(static_cast<double>(ms.fault_wait_ns) / 1e6);
  w.Key("prefetch");
  w.String(std::string(policy_name(config_.prefetch.policy)).c_str());
  put("prefetch_hits", cs.prefetch_hits);
  put("demand_misses", cs.demand_misses);
  // fetched into the cache and never read: evicted unread, or unread at exit
  put("bytes_wasted", cs.bytes_wasted);
  put("peak_cache_bytes", cs.peak_resident_bytes);
  put("cache_budget_bytes", cache_ ? cache_->config().budget_bytes : config_.cache_size);
  put("chunk_size", cache_ ? cache_->config().chunk_size : config_.chunk_size);
  put("chunks_fetched", cs.chunks_fetched);
  put("evictions", cs.evictions);
  put("chunks_moved_out", cs.chunks_taken);  // chunk buffers moved into mappings whole (UFFDIO_MOVE)
  {
    PrefetcherStats ps = prefetcher_ ? prefetcher_->stats() : PrefetcherStats{};
    put("plans", ps.plans);
    put("plan_failures", ps.plan_failures);
    put("lookahead_files", ps.lookahead_files);
    put("prefetch_requests", ps.chunks_requested);
  }
  put("retries", ss.retries);
  put("errors", ss.errors);
  w.Key("wall_ms");
  w.Double(std::chrono::duration<double, std::milli>(wall).count());
  w.Key("files");
  w.StartObject();
  {
    std::lock_guard lock(objects_mu_);
    for (const auto& [path, c] : counters_) {
      w.Key(path.c_str());
      w.StartObject();
      auto obj = objects_.find(path);
      put("size", obj != objects_.end() ? obj->second->size : 0);
      put("opens", c->opens.load());
      // through read/pread (mapped bytes are counted in bytes_mapped)
      put("bytes_served", c->bytes_served.load());
      put("bytes_mapped", c->bytes_mapped.load());
      const int64_t o = c->first_open_ns.load(), b = c->first_byte_ns.load();
      w.Key("first_open_ms");  // since the first use of the mount (null: never opened)
      if (o >= 0)
        w.Double(static_cast<double>(o) / 1e6);
      else
        w.Null();
      w.Key("first_prefetch_ms");  // when the prefetcher first asked for it, same clock (null: never)
      const int64_t pr = obj != objects_.end() && prefetcher_ ? prefetcher_->first_request_ns(obj->second->id) : -1;
      if (pr >= 0)
        w.Double(static_cast<double>(pr - std::chrono::duration_cast<std::chrono::nanoseconds>(start_.time_since_epoch()).count()) / 1e6);
      else
        w.Null();
      w.Key("time_to_first_byte_ms");  // first open to the first byte read or faulted in; null if none
      if (o >= 0 && b >= 0)
        w.Double(static_cast<double>(std::max<int64_t>(0, b - o)) / 1e6);
      else
        w.Null();
      w.EndObject();
    }
  }
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

bool Vfs::write_stats() const {
  if (config_.stats_file.empty() || !used()) return true;  // children that never used the mount stay quiet
  std::string json = stats_json() + "\n";
  int fd = ::open(config_.stats_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    MF_WARN("cannot write stats to %s: errno %d", config_.stats_file.c_str(), errno);
    return false;
  }
  size_t off = 0;
  while (off < json.size()) {
    ssize_t n = ::write(fd, json.data() + off, json.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  return off == json.size();
}

}  // namespace mf
