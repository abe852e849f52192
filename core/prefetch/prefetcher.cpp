// Prefetcher implementation: see prefetcher.hpp for the threads, the limits and why.
#include "core/prefetch/prefetcher.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/safetensors/header.hpp"
#include "core/safetensors/index.hpp"
#include "core/safetensors/plan.hpp"
#include "core/util/lock.hpp"
#include "core/util/log.hpp"
#include "core/util/thread.hpp"

namespace mf {
namespace {

constexpr auto kFeedPeriod = std::chrono::milliseconds(5);
constexpr uint64_t kMaxIndexBytes = 64ull << 20;  // an index of a 1000-shard model is ~10 MB

struct Stream {
  std::shared_ptr<const RemoteObject> object;
  std::vector<uint64_t> order;                  // chunks in the order the reader needs them
  std::unordered_map<uint64_t, size_t> pos;     // chunk -> position in order
  size_t next = 0;                              // next position to request
  uint32_t rank = 0;                            // 0: opened by the program; 1..N: lookahead
  uint64_t seq = 0;                             // when it became its rank (oldest first)
};

struct Job {
  bool index = false;  // read an index, else plan a safetensors file
  std::shared_ptr<const RemoteObject> object;
  uint32_t rank = 0;
};

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

}  // namespace

struct Prefetcher::Impl {
  ChunkCache& cache;
  const PrefetchConfig cfg;
  PrefetchHooks hooks;

  mutable Mutex mu{LockRank::prefetcher};
  CondVar job_cv, feed_cv, idle_cv;
  bool quit = false;
  bool kick = false;
  std::deque<Job> jobs;
  size_t running = 0;
  std::map<uint32_t, Stream> streams;            // by object id
  std::unordered_map<uint32_t, bool> planned;    // object ids with a plan job (done or not)
  std::unordered_map<uint32_t, SequentialWindow> windows;
  std::unordered_map<uint32_t, int64_t> first_req;  // object id -> steady_clock ns

  // Caller holds mu.
  void note_request(uint32_t id) {
    first_req.try_emplace(id, std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch()).count());
  }
  std::vector<std::string> shards;               // absolute paths, index order (the last index read)
  std::string last_opened;                       // the safetensors file the program opened last
  uint64_t seq = 0;
  PrefetcherStats st;
  std::vector<std::thread> threads;

  Impl(ChunkCache& c, PrefetchConfig conf, PrefetchHooks h) : cache(c), cfg(conf), hooks(std::move(h)) {}

  void start() {
    for (uint32_t i = 0; i < cfg.threads; ++i)
      threads.push_back(start_internal_thread([this] { planner_loop(); }));
    threads.push_back(start_internal_thread([this] { feeder_loop(); }));
  }

  void stop() {
    {
      std::lock_guard lock(mu);
      if (quit) return;
      quit = true;
    }
    job_cv.notify_all();
    feed_cv.notify_all();
    for (auto& t : threads) t.join();
  }

  void wake_feeder() {
    kick = true;
    feed_cv.notify_one();
  }

  // Caller holds mu. Queues a plan for a safetensors object unless it has one.
  void want_plan(const std::shared_ptr<const RemoteObject>& o, uint32_t rank) {
    if (auto it = streams.find(o->id); it != streams.end()) {
      if (rank < it->second.rank) {
        it->second.rank = rank;
        it->second.seq = ++seq;
      }
      return;
    }
    if (planned[o->id]) return;
    planned[o->id] = true;
    if (rank > 0) ++st.lookahead_files;
    // The header chunk's request goes out now, from the caller's thread: a planner thread may be slow to
    // be scheduled on a loaded machine, and a loader that finds the current shard cached consumes it in
    // milliseconds. The planner's own get() of chunk 0 then waits for this fetch (single flight).
    if (cache.request_prefetch(*o, 0) == PrefetchOutcome::started) {
      ++st.chunks_requested;
      note_request(o->id);
    }
    jobs.push_back(Job{false, o, rank});
    job_cv.notify_one();
  }

  // Caller holds mu. Plans the shards after `path` (lookahead) when it is a shard of the known index.
  void lookahead_after(const std::string& path) {
    if (cfg.lookahead_files == 0) return;
    auto next = lookahead_files(shards, path, cfg.lookahead_files);
    uint32_t rank = 1;
    for (const auto& p : next) {
      std::shared_ptr<const RemoteObject> o;
      if (hooks.resolve) {
        mu.unlock();  // resolve may list the store
        o = hooks.resolve(p);
        mu.lock();
      }
      if (o) want_plan(o, rank);
      ++rank;
    }
  }

  void planner_loop() {
    std::unique_lock lock(mu);
    for (;;) {
      job_cv.wait(lock, [&] { return quit || !jobs.empty(); });
      if (quit) return;
      Job j = std::move(jobs.front());
      jobs.pop_front();
      ++running;
      lock.unlock();
      if (j.index)
        read_index(j);
      else
        plan(j);
      lock.lock();
      --running;
      wake_feeder();
      idle_cv.notify_all();
    }
  }

  Result<std::vector<std::byte>> read_bytes(const RemoteObject& o, uint64_t offset, uint64_t n) {
    std::vector<std::byte> buf(n);
    auto got = cache.read(o, offset, std::span<std::byte>(buf));
    if (!got) return got.error();
    buf.resize(*got);
    return buf;
  }

  void plan(const Job& j) {
    const RemoteObject& o = *j.object;
    auto fail = [&](const std::string& why) {
      MF_INFO("%s: no prefetch plan (%s): sequential readahead only", o.path.c_str(), why.c_str());
      std::lock_guard lock(mu);
      ++st.plan_failures;
    };
    {
      std::lock_guard lock(mu);
      note_request(o.id);
    }
    // The first chunk holds the length prefix and, almost always, the whole header.
    auto first = cache.get(o, 0, Priority::prefetch);
    if (!first) return fail(first.error().message);
    std::span<const std::byte> head(first->data(), first->length());
    auto need = safetensors::header_prefix_length(head, o.size);
    if (!need) return fail(need.error().message);
    std::vector<std::byte> more;
    if (*need > head.size()) {
      auto r = read_bytes(o, 0, *need);
      if (!r) return fail(r.error().message);
      more = std::move(*r);
      head = std::span<const std::byte>(more);
    }
    auto header = safetensors::parse_header(head, o.size);
    first = ChunkRef();  // unpin before anything else
    if (!header) return fail(header.error().message);
    safetensors::PlanConfig pc;
    pc.chunk_size = cache.config().chunk_size;
    auto order = safetensors::plan_name_order(*header, pc);
    if (!order) return fail(order.error().message);
    if (hooks.hint_order) hooks.hint_order(o, *order);
    Stream s;
    s.object = j.object;
    s.order = std::move(*order);
    for (size_t i = 0; i < s.order.size(); ++i) s.pos.emplace(s.order[i], i);
    std::lock_guard lock(mu);
    ++st.plans;
    s.rank = j.rank;
    s.seq = ++seq;
    // A rank-0 request that arrived while planning a lookahead file wins.
    streams.emplace(o.id, std::move(s));
  }

  void read_index(const Job& j) {
    const RemoteObject& o = *j.object;
    if (o.size > kMaxIndexBytes) return;
    auto bytes = read_bytes(o, 0, o.size);
    if (!bytes) return;
    auto idx = safetensors::parse_index(
        std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
    if (!idx) {
      MF_INFO("%s: not a usable index (%s): no shard lookahead", o.path.c_str(), idx.error().message.c_str());
      return;
    }
    const std::string dir = dir_of(o.path);
    std::vector<std::string> paths;
    for (const auto& s : idx->shards) paths.push_back(dir + "/" + s);
    std::unique_lock lock(mu);
    ++st.indexes;
    shards = paths;
    // The loader opens the first shard next: fetch the first N ahead of that open.
    for (uint32_t i = 0; i < cfg.lookahead_files && i < paths.size(); ++i) {
      lock.unlock();
      auto obj = hooks.resolve ? hooks.resolve(paths[i]) : nullptr;
      lock.lock();
      if (obj) want_plan(obj, i + 1);
    }
    // A loader that parsed the index itself may have opened a shard before this thread got here: its
    // lookahead was skipped then (no shard list), so it starts now.
    if (!last_opened.empty()) lookahead_after(std::string(last_opened));
  }

  void feeder_loop() {
    std::unique_lock lock(mu);
    while (!quit) {
      feed_cv.wait_for(lock, kFeedPeriod, [&] { return quit || kick; });
      kick = false;
      if (quit) return;
      feed();
      idle_cv.notify_all();
    }
  }

  // Caller holds mu (the cache's lock nests inside ours; the cache never calls back into us).
  void feed() {
    if (streams.empty()) return;
    const CacheStats cs = cache.stats();
    uint64_t busy = cs.prefetch_in_flight + cs.prefetch_queued;
    uint64_t unused = cs.unused_bytes;
    const uint64_t unused_cap = cache.config().budget_bytes / 2;
    std::vector<Stream*> order;
    for (auto& [id, s] : streams) order.push_back(&s);
    std::sort(order.begin(), order.end(), [](const Stream* a, const Stream* b) {
      return a->rank != b->rank ? a->rank < b->rank : a->seq < b->seq;
    });
    bool stop = false;
    for (Stream* s : order) {
      while (!stop && s->next < s->order.size()) {
        if (busy >= cfg.max_inflight || unused + cache.config().chunk_size > unused_cap) {
          stop = true;
          break;
        }
        switch (cache.request_prefetch(*s->object, s->order[s->next])) {
          case PrefetchOutcome::started:
            ++busy;
            unused += cache.config().chunk_size;
            ++st.chunks_requested;
            note_request(s->object->id);
            ++s->next;
            break;
          case PrefetchOutcome::no_room:
            stop = true;
            break;
          default:
            ++s->next;
        }
      }
      if (stop) break;
    }
    std::erase_if(streams, [](const auto& kv) { return kv.second.next >= kv.second.order.size(); });
  }

  // Caller holds mu.
  void note_access(uint32_t id, uint64_t chunk) {
    auto it = streams.find(id);
    if (it == streams.end()) return;
    Stream& s = it->second;
    if (auto p = s.pos.find(chunk); p != s.pos.end() && p->second > s.next) s.next = p->second;
    if (s.rank != 0) {  // used before its open was seen (a dup'ed fd): it is current now
      s.rank = 0;
      s.seq = ++seq;
    }
    wake_feeder();
  }
};

Prefetcher::Prefetcher(ChunkCache& cache, PrefetchConfig config, PrefetchHooks hooks)
    : cache_(cache), config_(config) {
  if (config_.policy == PrefetchPolicy::none) return;  // no threads, every call is a no-op
  impl_ = std::make_unique<Impl>(cache_, config_, std::move(hooks));
  impl_->start();
}

Prefetcher::~Prefetcher() {
  if (impl_) impl_->stop();
}

void Prefetcher::on_open(const std::shared_ptr<const RemoteObject>& object) {
  if (!impl_ || !object) return;
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  if (config_.policy == PrefetchPolicy::safetensors) {
    if (is_index_path(object->path)) {
      if (!im.planned[object->id]) {
        im.planned[object->id] = true;
        im.jobs.push_back(Job{true, object, 0});
        im.job_cv.notify_one();
      }
      return;
    }
    if (is_safetensors_path(object->path)) {
      im.last_opened = object->path;
      im.want_plan(object, 0);
      im.lookahead_after(object->path);
      im.wake_feeder();
    }
  }
}

void Prefetcher::on_read(const std::shared_ptr<const RemoteObject>& object, uint64_t offset, uint64_t length) {
  if (!impl_ || !object || length == 0) return;
  Impl& im = *impl_;
  const uint64_t cs = cache_.config().chunk_size;
  SequentialWindow::Range r;
  {
    std::lock_guard lock(im.mu);
    auto [it, fresh] = im.windows.try_emplace(
        object->id, std::min<uint64_t>(config_.window_cap, std::max<uint64_t>(cs, cache_.config().budget_bytes / 4)));
    r = it->second.on_read(offset, length, object->size);
    im.note_access(object->id, offset / cs);
  }
  if (r.begin >= r.end) return;
  uint64_t started = 0;
  for (uint64_t k = r.begin / cs; k <= (r.end - 1) / cs; ++k)
    if (cache_.request_prefetch(*object, k) == PrefetchOutcome::started) ++started;
  if (started) {
    std::lock_guard lock(im.mu);
    im.st.chunks_requested += started;
  }
}

void Prefetcher::on_fault(const RemoteObject& object, uint64_t chunk) {
  if (!impl_) return;
  std::lock_guard lock(impl_->mu);
  impl_->note_access(object.id, chunk);
}

int64_t Prefetcher::first_request_ns(uint32_t object_id) const {
  if (!impl_) return -1;
  std::lock_guard lock(impl_->mu);
  auto it = impl_->first_req.find(object_id);
  return it == impl_->first_req.end() ? -1 : it->second;
}

PrefetcherStats Prefetcher::stats() const {
  if (!impl_) return {};
  std::lock_guard lock(impl_->mu);
  return impl_->st;
}

void Prefetcher::wait_idle() {
  if (!impl_) return;
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  im.idle_cv.wait(lock, [&] { return im.jobs.empty() && im.running == 0; });
  im.wake_feeder();
  im.idle_cv.wait(lock);  // one feed round after the last plan
}

void Prefetcher::shutdown() {
  if (impl_) impl_->stop();
}

void Prefetcher::before_fork() {
  if (impl_) impl_->mu.lock();
}

void Prefetcher::after_fork_parent() {
  if (impl_) impl_->mu.unlock();
}

void Prefetcher::after_fork_child() {
  // The threads are gone (their std::thread objects cannot be joined here): abandon the engine, leaked on
  // purpose, after releasing the lock before_fork took (nothing in the child uses it again).
  if (impl_) impl_->mu.unlock();
  (void)impl_.release();
}

}  // namespace mf
