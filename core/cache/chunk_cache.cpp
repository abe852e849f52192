// ChunkCache implementation.
//
// Algorithm. One map (object id, chunk index) -> Chunk under one mutex. A Chunk is `fetching` from the
// moment it is inserted until the store's callback marks it `ready` (then it joins the LRU list) or
// `failed` (then it leaves the map at once: the waiters that hold it see the error, the next get() starts
// a new fetch). Every get() of a chunk that is fetching waits on the one condition variable, so a chunk
// is requested from the store once however many threads want it (single flight).
//
// Memory. resident_ counts the page-rounded buffer bytes of every chunk in the map, fetching or ready,
// and never exceeds the budget: room is made before a buffer is allocated. Victims are ready chunks that
// nobody pins (ChunkRef) and nobody is waiting for, oldest use first; chunks already delivered to a reader
// go before chunks that prefetch brought in and nobody used yet. A demand get() that finds no victim
// waits until a pin drops or a fetch ends; prefetch() never waits and never evicts an unused chunk: it is
// skipped (counted in prefetch_skipped), because a prefetch that pushes out another prefetch is waste.
// The budget is at least one chunk, so a get() always makes progress once pins are released; callers
// never hold a ChunkRef while they call get() (read() releases each chunk before taking the next).
//
// Priority. With max_prefetch_inflight > 0, at most that many prefetch fetches are with the store at once;
// more wait in a FIFO (their budget bytes reserved, no buffer yet) and start as earlier ones finish. A
// demand get() of a waiting chunk takes it out of the FIFO and sends it at once. The store (the curl client)
// serves requests first come, first served on max_connections connections, so keeping prefetch below the
// connection count is what lets a demand request (a fault, a read) overtake queued prefetch.
//
// Waste accounting: a chunk brought in by prefetch counts in unused_bytes until it is first read; one
// evicted (or still resident at the end) without ever being read counts in bytes_wasted.
//
// Buffers are whole pages from mmap (chunk_buffer.hpp says why not mimalloc) so that a whole page can be
// copied into a mapping with UFFDIO_COPY; the bytes past EOF up to the page boundary are zeroed, as the kernel does for
// the last page of a file mapping. The lock is never held across a memcpy, an allocation or a store call.
#include "core/cache/chunk_cache.hpp"
#include "core/cache/chunk_buffer.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "core/util/checked.hpp"
#include "core/util/lock.hpp"
#include "core/util/log.hpp"

namespace mf {
namespace {

struct ChunkKey {
  uint32_t object;
  uint64_t index;
  bool operator==(const ChunkKey&) const = default;
};
struct ChunkKeyHash {
  size_t operator()(const ChunkKey& k) const {
    return std::hash<uint64_t>()(k.index * 0x9E3779B97F4A7C15ull ^ k.object);
  }
};

enum class ChunkState { fetching, ready, failed };

struct Chunk {
  ChunkKey key{};
  ChunkState state = ChunkState::fetching;
  std::byte* buf = nullptr;
  uint64_t alloc = 0;   // buffer bytes, counted in resident_ while the chunk is in the map
  uint64_t offset = 0;  // object offset of buf[0]
  uint64_t length = 0;  // object bytes in the chunk
  Error error;
  uint32_t pins = 0;     // live Pin objects (ChunkRefs)
  uint32_t waiters = 0;  // get() calls waiting for this chunk
  bool delivered = false;
  bool by_prefetch = false;
  bool queued = false;   // a prefetch waiting behind the cap (no buffer, not sent)
  bool capped = false;   // a prefetch sent and counted against the cap
  std::string key_name, etag;  // for a queued chunk: what to send when it starts
  bool in_lru = false;
  std::list<Chunk*>::iterator lru;
  ~Chunk() {
    free_chunk_buffer(buf, alloc);
  }
};

uint64_t page_size() {
  static const uint64_t p = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return p;
}

}  // namespace

struct ChunkCache::Impl {
  Mutex mu{LockRank::cache};
  CondVar cv;
  std::unordered_map<ChunkKey, std::shared_ptr<Chunk>, ChunkKeyHash> chunks;
  std::list<Chunk*> lru;  // front = least recently used; only ready chunks
  // Chunks handed out by take() and not fetched since: a prefetch of one is a no-op (its bytes already sit
  // in the mapping that took it; the planners and the filler's lookahead would otherwise fetch it again),
  // a get() fetches it again.
  std::unordered_set<ChunkKey, ChunkKeyHash> taken;
  uint64_t resident = 0;
  uint64_t inflight = 0;
  ObjectStore* store = nullptr;
  uint32_t cap = 0;                            // max_prefetch_inflight
  uint64_t cap_inflight = 0;                   // prefetches sent and counted against cap
  std::deque<std::shared_ptr<Chunk>> waiting;  // prefetches queued behind cap, FIFO
  uint64_t unused = 0;        // alloc bytes of prefetched chunks not read yet
  uint64_t unused_ready = 0;  // object bytes of those that are ready
  uint64_t wasted = 0;        // object bytes of prefetched chunks dropped unread
  CacheStats stats;
  std::atomic<uint64_t> bytes_served{0};
  std::atomic<uint32_t> next_id{0};

  // Drops the chunk from the map and frees its buffer. Only for chunks nobody reads (unpinned or failed).
  void drop(Chunk* c) {
    auto it = chunks.find(c->key);
    if (it != chunks.end() && it->second.get() == c) {
      if (c->by_prefetch && !c->delivered) {
        unused -= c->alloc;
        if (c->state == ChunkState::ready) {
          unused_ready -= c->length;
          wasted += c->length;
        }
      }
      if (c->in_lru) lru.erase(c->lru);
      c->in_lru = false;
      resident -= c->alloc;
      free_chunk_buffer(c->buf, c->alloc);
      c->buf = nullptr;
      chunks.erase(it);  // may destroy c
    }
  }

  Chunk* pick_victim(bool allow_unused) {
    for (Chunk* c : lru)
      if (c->pins == 0 && c->waiters == 0 && c->delivered) return c;
    if (!allow_unused) return nullptr;
    for (Chunk* c : lru)
      if (c->pins == 0 && c->waiters == 0) return c;
    return nullptr;
  }

  // Evicts until `need` more bytes fit the budget. False when not enough can be evicted now.
  bool make_room(uint64_t need, uint64_t budget, bool allow_unused) {
    while (resident + need > budget) {
      Chunk* v = pick_victim(allow_unused);
      if (!v) return false;
      ++stats.evictions;
      drop(v);
    }
    return true;
  }

  void touch(Chunk* c) {
    if (c->in_lru) lru.splice(lru.end(), lru, c->lru);
  }

  // First read of a ready chunk. Returns true when prefetch had brought it in.
  bool deliver(Chunk* c) {
    if (c->delivered) return false;
    c->delivered = true;
    if (!c->by_prefetch) return false;
    unused -= c->alloc;
    unused_ready -= c->length;
    return true;
  }

  // Queued prefetches that may start now that the cap has room (caller holds the lock, starts them after).
  std::vector<std::shared_ptr<Chunk>> take_startable() {
    std::vector<std::shared_ptr<Chunk>> out;
    while (cap && cap_inflight < cap && !waiting.empty()) {
      auto c = std::move(waiting.front());
      waiting.pop_front();
      c->queued = false;
      c->capped = true;
      ++cap_inflight;
      out.push_back(std::move(c));
    }
    return out;
  }

  std::shared_ptr<Chunk> insert(const RemoteObject& o, uint64_t index, uint64_t chunk_size, bool by_prefetch);
  void finish(const std::shared_ptr<Chunk>& c, Result<void> r);
  void start(ObjectStore& store, const RemoteObject& o, std::shared_ptr<Chunk> c);
  void start(std::string key, std::string etag, std::shared_ptr<Chunk> c);
};

namespace {
// The pin behind a ChunkRef: keeps the chunk out of eviction until the last copy of the ref is gone.
struct Pin {
  Pin(Mutex* m, CondVar* v, std::shared_ptr<Chunk> c) : mu(m), cv(v), chunk(std::move(c)) {}
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;
  Mutex* mu;
  CondVar* cv;
  std::shared_ptr<Chunk> chunk;
  ~Pin() {
    std::lock_guard lock(*mu);
    if (--chunk->pins == 0) cv->notify_all();
  }
};
}  // namespace

ChunkCache::ChunkCache(ObjectStore& store, CacheConfig config)
    : store_(store), config_(config), impl_(std::make_unique<Impl>()) {
  impl_->store = &store_;
  impl_->cap = config_.max_prefetch_inflight;
  const uint64_t page = page_size();
  uint64_t cs = std::max<uint64_t>(config_.chunk_size, page);
  if (!checked_align_up(cs, page, &cs)) cs = 8ull << 20;
  if (cs != config_.chunk_size) MF_WARN("chunk size %llu rounded to %llu (a multiple of the page size)",
                                        static_cast<unsigned long long>(config_.chunk_size),
                                        static_cast<unsigned long long>(cs));
  config_.chunk_size = cs;
  if (config_.budget_bytes < cs) {
    MF_WARN("cache budget %llu is below one chunk: using %llu",
            static_cast<unsigned long long>(config_.budget_bytes), static_cast<unsigned long long>(cs));
    config_.budget_bytes = cs;
  }
}

ChunkCache::~ChunkCache() {
  // The store's callbacks reference the Impl: wait for every fetch in flight to end.
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->inflight == 0; });
}

std::shared_ptr<const RemoteObject> ChunkCache::register_object(const ObjectInfo& info, std::string path) {
  auto o = std::make_shared<RemoteObject>();
  o->id = impl_->next_id.fetch_add(1, std::memory_order_relaxed) + 1;
  o->key = info.key;
  o->path = std::move(path);
  o->size = info.size;
  o->etag = info.etag;
  return o;
}

uint64_t ChunkCache::chunk_count(const RemoteObject& object) const {
  return object.size / config_.chunk_size + (object.size % config_.chunk_size != 0 ? 1 : 0);
}

void ChunkCache::note_served(uint64_t bytes) { impl_->bytes_served.fetch_add(bytes, std::memory_order_relaxed); }

// Inserts a fetching chunk (room already made); returns it. Caller holds the lock.
std::shared_ptr<Chunk> ChunkCache::Impl::insert(const RemoteObject& o, uint64_t index, uint64_t chunk_size,
                                                bool by_prefetch) {
  auto c = std::make_shared<Chunk>();
  c->key = ChunkKey{o.id, index};
  c->offset = index * chunk_size;
  c->length = std::min(chunk_size, o.size - c->offset);
  checked_align_up(c->length, page_size(), &c->alloc);
  c->by_prefetch = by_prefetch;
  if (by_prefetch) unused += c->alloc;
  chunks.emplace(c->key, c);
  taken.erase(c->key);
  resident += c->alloc;
  stats.peak_resident_bytes = std::max(stats.peak_resident_bytes, resident);
  ++inflight;
  return c;
}

void ChunkCache::Impl::finish(const std::shared_ptr<Chunk>& c, Result<void> r) {
  std::unique_lock lock(mu);
  if (c->capped) {
    c->capped = false;
    --cap_inflight;
  }
  if (r) {
    c->state = ChunkState::ready;
    if (c->by_prefetch && !c->delivered) unused_ready += c->length;
    lru.push_back(c.get());
    c->lru = std::prev(lru.end());
    c->in_lru = true;
    ++stats.chunks_fetched;
  } else {
    c->state = ChunkState::failed;
    c->error = r.error();
    ++stats.fetch_errors;
    drop(c.get());
  }
  --inflight;
  cv.notify_all();
  auto next = take_startable();
  lock.unlock();
  for (auto& n : next) start(std::move(n->key_name), std::move(n->etag), n);
}

// Allocates the buffer and sends the request, outside the lock (the caller released it).
void ChunkCache::Impl::start(ObjectStore& st, const RemoteObject& o, std::shared_ptr<Chunk> c) {
  (void)st;
  start(o.key, o.etag, std::move(c));
}

void ChunkCache::Impl::start(std::string key, std::string etag, std::shared_ptr<Chunk> c) {
  auto* buf = allocate_chunk_buffer(c->alloc);
  if (!buf) {
    finish(c, make_error(ENOMEM, "cannot allocate a cache chunk"));
    return;
  }
  std::memset(buf + c->length, 0, c->alloc - c->length);
  {
    std::lock_guard lock(mu);
    c->buf = buf;
  }
  RangeRequest req{std::move(key), std::move(etag), c->offset, c->length, buf};
  store->read_async(std::move(req), [this, c](Result<void> r) { finish(c, std::move(r)); });
}

ChunkRef ChunkCache::make_ref(std::shared_ptr<void> pin, const std::byte* data, uint64_t offset,
                              uint64_t length) {
  ChunkRef ref;
  ref.pin_ = std::move(pin);
  ref.data_ = data;
  ref.offset_ = offset;
  ref.length_ = length;
  return ref;
}

bool ChunkCache::prefetch(const RemoteObject& object, uint64_t index, Priority priority) {
  return request_prefetch(object, index, priority) == PrefetchOutcome::started;
}

PrefetchOutcome ChunkCache::request_prefetch(const RemoteObject& object, uint64_t index, Priority priority) {
  const bool demand = priority == Priority::demand;
  if (index >= chunk_count(object)) return PrefetchOutcome::invalid;
  Impl& im = *impl_;
  std::shared_ptr<Chunk> c;
  {
    std::lock_guard lock(im.mu);
    if (im.chunks.count(ChunkKey{object.id, index})) return PrefetchOutcome::present;
    if (!demand && im.taken.count(ChunkKey{object.id, index})) return PrefetchOutcome::present;
    const uint64_t need = std::min(config_.chunk_size, object.size - index * config_.chunk_size);
    uint64_t alloc = 0;
    checked_align_up(need, page_size(), &alloc);
    if (!im.make_room(alloc, config_.budget_bytes, demand)) {
      ++im.stats.prefetch_skipped;
      return PrefetchOutcome::no_room;
    }
    c = im.insert(object, index, config_.chunk_size, !demand);
    if (!demand && im.cap && im.cap_inflight >= im.cap) {
      c->queued = true;
      c->key_name = object.key;
      c->etag = object.etag;
      im.waiting.push_back(std::move(c));
      return PrefetchOutcome::started;
    }
    if (!demand && im.cap) {
      c->capped = true;
      ++im.cap_inflight;
    }
  }
  im.start(store_, object, std::move(c));
  return PrefetchOutcome::started;
}

Result<ChunkRef> ChunkCache::get(const RemoteObject& object, uint64_t index, Priority priority) {
  return get_chunk(object, index, priority, true);
}

Result<ChunkRef> ChunkCache::get_unless_taken(const RemoteObject& object, uint64_t index, Priority priority) {
  return get_chunk(object, index, priority, false);
}

Result<ChunkRef> ChunkCache::get_chunk(const RemoteObject& object, uint64_t index, Priority priority,
                                       bool refetch_taken) {
  if (index >= chunk_count(object))
    return make_error(EINVAL, "chunk " + std::to_string(index) + " is past the end of " + object.path);
  Impl& im = *impl_;
  const ChunkKey key{object.id, index};
  uint64_t alloc = 0;
  checked_align_up(std::min(config_.chunk_size, object.size - index * config_.chunk_size), page_size(), &alloc);
  std::unique_lock lock(im.mu);
  std::shared_ptr<Chunk> c;
  bool missed = false;
  for (;;) {
    auto it = im.chunks.find(key);
    if (it != im.chunks.end()) {
      c = it->second;
      ++c->waiters;  // from here on the chunk cannot be evicted under us
      if (c->queued && priority == Priority::demand) {  // overtakes the queued prefetches
        im.waiting.erase(std::find(im.waiting.begin(), im.waiting.end(), c));
        c->queued = false;
        std::string k = std::move(c->key_name), e = std::move(c->etag);
        lock.unlock();
        im.start(std::move(k), std::move(e), c);
        lock.lock();
      }
      break;
    }
    if (!refetch_taken && im.taken.count(key)) return make_error(ESRCH, "the chunk was moved out of the cache");
    missed = true;
    if (im.make_room(alloc, config_.budget_bytes, true)) {
      c = im.insert(object, index, config_.chunk_size, false);
      ++c->waiters;
      lock.unlock();
      im.start(store_, object, c);
      lock.lock();
      break;
    }
    im.cv.wait(lock);  // every pin release and every fetch end notifies
  }
  if (c->state == ChunkState::fetching) missed = true;
  im.cv.wait(lock, [&] { return c->state != ChunkState::fetching; });
  --c->waiters;
  if (c->state == ChunkState::failed) return c->error;
  if (priority == Priority::demand) {
    if (missed) ++im.stats.demand_misses;
    if (c->by_prefetch && !c->delivered) ++im.stats.prefetch_hits;
  }
  im.deliver(c.get());
  ++c->pins;
  im.touch(c.get());
  const std::byte* data = c->buf;
  const uint64_t off = c->offset, len = c->length;
  return make_ref(std::make_shared<Pin>(&im.mu, &im.cv, std::move(c)), data, off, len);
}

TakenBuffer ChunkCache::take(const ChunkRef& ref) {
  if (!ref.pin_) return {};
  Impl& im = *impl_;
  Chunk* c = static_cast<Pin*>(ref.pin_.get())->chunk.get();
  std::lock_guard lock(im.mu);
  auto it = im.chunks.find(c->key);
  if (it == im.chunks.end() || it->second.get() != c || c->state != ChunkState::ready || c->pins != 1 ||
      c->waiters != 0 || !c->buf)
    return {};
  TakenBuffer out{c->buf, c->alloc};
  if (c->in_lru) im.lru.erase(c->lru);
  c->in_lru = false;
  c->buf = nullptr;  // the caller's now
  im.resident -= c->alloc;
  ++im.stats.chunks_taken;
  im.taken.insert(c->key);
  im.chunks.erase(it);  // the Pin keeps the Chunk object alive until ref goes
  im.cv.notify_all();   // room was made
  return out;
}

ChunkRef ChunkCache::try_get(const RemoteObject& object, uint64_t index) {
  Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  auto it = im.chunks.find(ChunkKey{object.id, index});
  if (it == im.chunks.end() || it->second->state != ChunkState::ready) return {};
  std::shared_ptr<Chunk> c = it->second;
  if (im.deliver(c.get())) ++im.stats.prefetch_hits;  // the fault thread's lookup: a demand use
  ++c->pins;
  im.touch(c.get());
  const std::byte* data = c->buf;
  const uint64_t off = c->offset, len = c->length;
  return make_ref(std::make_shared<Pin>(&im.mu, &im.cv, std::move(c)), data, off, len);
}

Result<size_t> ChunkCache::read(const RemoteObject& object, uint64_t offset, std::span<std::byte> dst) {
  if (offset >= object.size || dst.empty()) return size_t{0};
  const uint64_t end = offset + std::min<uint64_t>(dst.size(), object.size - offset);
  const uint64_t first = offset / config_.chunk_size;
  const uint64_t last = (end - 1) / config_.chunk_size;
  // A read spanning chunks fetches them in parallel instead of one after another.
  for (uint64_t i = first + 1; i <= last; ++i) prefetch(object, i);
  uint64_t pos = offset;
  while (pos < end) {
    auto ref = get(object, pos / config_.chunk_size, Priority::demand);
    if (!ref) return ref.error();  // never a short count that hides a failed chunk
    const uint64_t in = pos - ref->offset();
    const uint64_t n = std::min(ref->length() - in, end - pos);
    std::memcpy(dst.data() + (pos - offset), ref->data() + in, n);
    pos += n;
  }
  note_served(end - offset);
  return static_cast<size_t>(end - offset);
}

CacheStats ChunkCache::stats() const {
  std::lock_guard lock(impl_->mu);
  CacheStats s = impl_->stats;
  s.resident_bytes = impl_->resident;
  s.in_flight = impl_->inflight;
  s.prefetch_queued = impl_->waiting.size();
  s.prefetch_in_flight = impl_->cap_inflight;
  s.unused_bytes = impl_->unused;
  s.bytes_wasted = impl_->wasted + impl_->unused_ready;
  s.bytes_served = impl_->bytes_served.load(std::memory_order_relaxed);
  return s;
}

void ChunkCache::before_fork() { impl_->mu.lock(); }
void ChunkCache::after_fork_parent() { impl_->mu.unlock(); }

void ChunkCache::after_fork_child() {
  Impl& im = *impl_;
  // The forking thread holds the lock (before_fork). The store's threads are gone: a fetching chunk would
  // never complete, so it is dropped; its callback will never run in this process.
  std::vector<Chunk*> stuck;
  for (auto& [k, c] : im.chunks)
    if (c->state == ChunkState::fetching) stuck.push_back(c.get());
  for (Chunk* c : stuck) {
    c->state = ChunkState::failed;
    c->error = make_error(EIO, "fetch interrupted by fork");
    im.drop(c);
  }
  im.inflight = 0;
  im.waiting.clear();
  im.cap_inflight = 0;
  // Threads that waited for a chunk in the parent are not here: a broadcast must not wait for them.
  im.cv.reset_after_fork();
  im.mu.unlock();
}

}  // namespace mf
