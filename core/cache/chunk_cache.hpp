// ChunkCache: the one in-process cache, shared by every fd, reader thread and mapping of an object.
// (Interface fixed by the skeleton; the implementation documents the algorithm and its constants here.)
//
// Objects are cut into fixed chunks (default 8 MiB). A chunk is keyed by (object identity incl. ETag,
// chunk index), fetched once with one conditional range GET straight into a page-aligned buffer from
// mmap (chunk_buffer.hpp); concurrent requests for an in-flight chunk wait for it. The last chunk's buffer is padded
// with zeros up to a page boundary so it can be copied into a mapping page by page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/remote/store.hpp"
#include "core/util/result.hpp"

namespace mf {

// One remote object as the program sees it: immutable once opened. Shared by fds and mappings.
struct RemoteObject {
  uint32_t id = 0;        // unique per process, assigned by the cache (register_object)
  std::string key;        // full object key in the store
  std::string path;       // the local path the program used (for log lines)
  uint64_t size = 0;
  std::string etag;       // every read of this object is conditional on it
};

struct CacheConfig {
  uint64_t chunk_size = 8ull << 20;   // multiple of the page size
  uint64_t budget_bytes = 1ull << 30; // chunk bytes resident at most (prefetch waits, demand may evict)
  // Prefetch fetches sent to the store at once, at most (0: no cap). Further prefetches wait in a FIFO
  // inside the cache (their bytes already reserved) and a demand get() of a waiting chunk sends it at
  // once: with this below the store's connection count, a demand request never queues behind prefetch.
  uint32_t max_prefetch_inflight = 0;
};

enum class PrefetchOutcome {
  started,   // a fetch was sent (or queued behind the prefetch cap)
  present,   // already resident or in flight: nothing to do
  no_room,   // the budget is full of chunks nobody may evict for a prefetch: skipped
  invalid,   // index past the end
};

enum class Priority { demand, prefetch };

struct CacheStats {
  uint64_t bytes_served = 0;      // bytes copied out of the cache to readers and mappings
  uint64_t chunks_fetched = 0;
  uint64_t demand_misses = 0;     // a reader had to wait for a chunk that was not resident
  uint64_t prefetch_hits = 0;     // a reader found a chunk that prefetch had fetched
  uint64_t resident_bytes = 0;
  uint64_t peak_resident_bytes = 0;
  uint64_t evictions = 0;         // chunks dropped to make room
  uint64_t prefetch_skipped = 0;  // prefetch() calls dropped because the budget was full
  uint64_t fetch_errors = 0;      // fetches that failed (the entry was dropped; a later get retries)
  uint64_t in_flight = 0;         // fetches sent to the store and not yet completed (incl. queued prefetches)
  uint64_t prefetch_queued = 0;   // prefetches waiting behind max_prefetch_inflight
  uint64_t prefetch_in_flight = 0;  // prefetches sent and counted against max_prefetch_inflight
  uint64_t unused_bytes = 0;      // bytes of prefetched chunks (queued, fetching or ready) nobody has read yet
  uint64_t bytes_wasted = 0;      // fetched and never served: evicted unread + resident unread now
  uint64_t chunks_taken = 0;      // buffers handed out of the cache by take() (moved into mappings)
};

// A chunk buffer handed over by ChunkCache::take(): the caller owns it and frees it with free_chunk_buffer.
struct TakenBuffer {
  std::byte* data = nullptr;
  uint64_t bytes = 0;  // page-rounded buffer size
};

// A pinned chunk: its buffer stays valid and resident while the Ref lives.
class ChunkRef {
 public:
  ChunkRef() = default;
  const std::byte* data() const { return data_; }
  uint64_t offset() const { return offset_; }   // offset of data()[0] in the object
  uint64_t length() const { return length_; }   // valid object bytes (the buffer is page-padded beyond)
  explicit operator bool() const { return data_ != nullptr; }

 private:
  friend class ChunkCache;
  std::shared_ptr<void> pin_;
  const std::byte* data_ = nullptr;
  uint64_t offset_ = 0;
  uint64_t length_ = 0;
};

class ChunkCache {
 public:
  ChunkCache(ObjectStore& store, CacheConfig config);
  ~ChunkCache();
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  const CacheConfig& config() const { return config_; }

  // Makes a RemoteObject for an ObjectInfo (assigns the id).
  std::shared_ptr<const RemoteObject> register_object(const ObjectInfo& info, std::string path);

  // Copies object bytes [offset, offset + dst.size()) (clipped at EOF) into dst; returns the count
  // (0 at or past EOF). Blocks on missing chunks. dst must not be userfaultfd-registered memory.
  Result<size_t> read(const RemoteObject& object, uint64_t offset, std::span<std::byte> dst);

  // The chunk with this index, fetched if needed (blocking).
  Result<ChunkRef> get(const RemoteObject& object, uint64_t index, Priority priority);
  // get(), except that a chunk handed out by take() and not fetched since is not fetched again: ESRCH.
  // (A fault parked before a move placed its pages: the caller looks at the pages before fetching.)
  Result<ChunkRef> get_unless_taken(const RemoteObject& object, uint64_t index, Priority priority);
  // The chunk if resident, an empty ref otherwise (never blocks, never fetches).
  ChunkRef try_get(const RemoteObject& object, uint64_t index);
  // Starts fetching the chunk if neither resident nor in flight; never blocks the caller. When the budget
  // is full of chunks nobody has used yet (or pinned ones), the prefetch is skipped, not queued.
  // True when this call started a fetch. Priority::demand (the fault thread asking for a faulting chunk
  // before a worker waits on it) bypasses max_prefetch_inflight and may evict unused chunks.
  bool prefetch(const RemoteObject& object, uint64_t index, Priority priority = Priority::prefetch);
  // The same, saying why nothing was started (the prefetch scheduler retries `no_room` later).
  PrefetchOutcome request_prefetch(const RemoteObject& object, uint64_t index,
                                   Priority priority = Priority::prefetch);

  // Takes the buffer of a ready chunk out of the cache when `ref` holds its only pin and nobody waits for it:
  // the chunk leaves the cache at once (a later get() fetches it again) and its bytes stop counting against
  // the budget. The caller owns the buffer (ref.data() stays readable until the caller frees it; drop ref
  // before or after, it no longer frees anything). Used to move whole huge pages into a mapping instead of
  // copying them (core/uffd). Empty, with nothing changed, when the chunk is shared. Until it is fetched
  // again, a Priority::prefetch request of a taken chunk does nothing (reports `present`).
  TakenBuffer take(const ChunkRef& ref);

  // Number of chunks of an object (0 for an empty object).
  uint64_t chunk_count(const RemoteObject& object) const;
  // Accounts bytes a caller copied out of a ChunkRef itself (mappings), for CacheStats::bytes_served.
  void note_served(uint64_t bytes);

  CacheStats stats() const;

  // pthread_atfork order: prepare runs MappingManager::before_fork() first, then this; the child and
  // parent handlers run this first. In the child, chunks that were in flight are dropped (no I/O thread
  // survives fork to complete them); resident chunks stay usable.
  void before_fork();
  void after_fork_parent();
  void after_fork_child();

 private:
  struct Impl;
  static ChunkRef make_ref(std::shared_ptr<void> pin, const std::byte* data, uint64_t offset, uint64_t length);
  Result<ChunkRef> get_chunk(const RemoteObject& object, uint64_t index, Priority priority, bool refetch_taken);
  ObjectStore& store_;
  CacheConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mf
