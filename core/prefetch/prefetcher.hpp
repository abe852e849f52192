// Prefetcher: the scheduler that turns the policies (policy.hpp) into cache prefetches.
//
// Threads. `threads` planner threads (MODELFETCH_THREADS, default 2) run plan jobs: fetch the first chunk
// of a *.safetensors file (one range request; a header larger than a chunk costs a second read), parse the
// header, compute plan_name_order and hand it to the mappings (hint_order) and to a stream; or read a
// *.safetensors.index.json and learn its shard list. One feeder thread walks the streams, current files
// (rank 0, opened by the program, oldest first) before lookahead files (rank 1..N in index order), and
// calls ChunkCache::request_prefetch while
//   - fewer than max_inflight prefetches are queued or in flight in the cache (the cache caps prefetch at
//     the same number, so demand requests — faults, reads — never wait behind prefetch for a connection), and
//   - prefetched-but-unread bytes stay below half the cache budget (the other half holds chunks being
//     read, which readers need; prefetch never evicts an unread chunk, and this keeps it from filling the
//     budget with chunks of a file nobody reads yet).
// A `no_room` answer stops the round. The feeder wakes on every event (open, read, fault, plan done) and
// at least every 5 ms (kFeedPeriod: an 8 MiB chunk takes ~100 ms at 100 MB/s per connection, so a
// finished fetch is replaced within 5 % of its transfer time).
//
// Adaptation. A fault or read at chunk k of a planned file moves that stream's cursor to k's position in
// the plan when k is ahead of it: the reader is there, so what lies between is done or not wanted.
//
// Read streams. on_read() runs a SequentialWindow per object and requests the window's chunks directly
// (non-blocking), for every policy but none.
//
// Fork: prepare takes the lock; the child abandons the engine (its threads do not exist there) and
// prefetches nothing, its mappings still fill on faults.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cache/chunk_cache.hpp"
#include "core/prefetch/policy.hpp"

namespace mf {

struct PrefetchHooks {
  // The object at an absolute local path, or nullptr (used for the shards an index names).
  std::function<std::shared_ptr<const RemoteObject>(const std::string& path)> resolve;
  // MappingManager::hint_order.
  std::function<void(const RemoteObject& object, std::vector<uint64_t> chunks)> hint_order;
};

struct PrefetcherStats {
  uint64_t plans = 0;             // safetensors headers parsed into a plan
  uint64_t plan_failures = 0;     // headers that did not parse or could not be fetched (no plan)
  uint64_t indexes = 0;           // index files parsed
  uint64_t lookahead_files = 0;   // files planned ahead of being opened
  uint64_t chunks_requested = 0;  // prefetches the feeder and the read window started
};

class Prefetcher {
 public:
  Prefetcher(ChunkCache& cache, PrefetchConfig config, PrefetchHooks hooks);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  const PrefetchConfig& config() const { return config_; }

  // The program opened a file (object->path is its local path).
  void on_open(const std::shared_ptr<const RemoteObject>& object);
  // The program read [offset, offset + length) with read/pread.
  void on_read(const std::shared_ptr<const RemoteObject>& object, uint64_t offset, uint64_t length);
  // A mapping of the object faulted on this chunk (fault thread: never blocks on I/O).
  void on_fault(const RemoteObject& object, uint64_t chunk);

  PrefetcherStats stats() const;
  // When the engine first asked for a chunk of this object (header or data): steady_clock time since its
  // epoch in ns, or -1. Shows lookahead: a shard requested before the program opened it.
  int64_t first_request_ns(uint32_t object_id) const;

  // Waits until no plan job is pending and the feeder has nothing it may start now (tests).
  void wait_idle();

  // pthread_atfork: prepare takes the lock (no thread of ours holds it across I/O, so this waits for a short
  // critical section at most); the child releases it and abandons the engine.
  void before_fork();
  void after_fork_parent();
  void after_fork_child();
  // Stops the threads (idempotent); later calls still work but nothing is planned or fed.
  void shutdown();

 private:
  struct Impl;
  ChunkCache& cache_;
  PrefetchConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mf
