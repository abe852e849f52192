// The lock-order checker behind BasicMutex<true> (see lock.hpp). Thread-local, allocation-free, safe in a
// preloaded library (initial-exec TLS).
#include "core/util/lock.hpp"

#include <cstdlib>

#include "core/util/log.hpp"

namespace mf {

const char* lock_rank_name(LockRank rank) {
  switch (rank) {
    case LockRank::vfs_engine: return "Vfs::engine_mu_";
    case LockRank::prefetcher: return "Prefetcher::mu";
    case LockRank::tree: return "Tree::mu_";
    case LockRank::vfs_objects: return "Vfs::objects_mu_";
    case LockRank::fd_table: return "FdTable::mu_";
    case LockRank::mappings: return "MappingManager::mu";
    case LockRank::region: return "Region::mu";
    case LockRank::fill_hints: return "MappingManager::hint_mu";
    case LockRank::fill_workers: return "Workers::mu";
    case LockRank::cache: return "ChunkCache::mu";
    case LockRank::router: return "StoreRouter::mu_";
    case LockRank::client: return "Client::mu";
    case LockRank::store_call: return "a blocking store call's lock";
    case LockRank::credentials: return "CredentialManager::mu_";
    case LockRank::bucket_regions: return "the bucket regions' lock";
    case LockRank::vfs_cwd: return "Vfs::cwd_mu_";
  }
  return "?";
}

namespace lockorder {
namespace {

// Ranks a thread may hold several of at once (always under an outer lock that serialises the taking).
bool may_repeat(LockRank r) { return r == LockRank::region; }

constexpr int kMaxHeld = 32;
struct Held {
  LockRank rank;
  uint32_t count;  // repeated acquisitions of a may_repeat rank
};
struct Stack {
  Held held[kMaxHeld];
  int n;
  int overflow;  // entries past kMaxHeld (not tracked, still released)
};
thread_local Stack t_stack __attribute__((tls_model("initial-exec"))) = {};

[[noreturn]] void violation(LockRank taking, LockRank holding) {
  MF_ERROR("lock order violation: taking %s (rank %d) while holding %s (rank %d); see docs/DESIGN.md \"Locks\"",
           lock_rank_name(taking), static_cast<int>(taking), lock_rank_name(holding), static_cast<int>(holding));
  std::abort();
}

void push(LockRank rank) {
  Stack& s = t_stack;
  if (s.n > 0 && s.held[s.n - 1].rank == rank && may_repeat(rank)) {
    ++s.held[s.n - 1].count;
    return;
  }
  if (s.n == kMaxHeld) {
    ++s.overflow;
    return;
  }
  s.held[s.n++] = Held{rank, 1};
}

}  // namespace

void acquire(LockRank rank) {
  const Stack& s = t_stack;
  for (int i = 0; i < s.n; ++i) {
    const LockRank h = s.held[i].rank;
    if (static_cast<int>(h) > static_cast<int>(rank) || (h == rank && !may_repeat(rank))) violation(rank, h);
  }
  push(rank);
}

void acquired(LockRank rank) { push(rank); }

void release(LockRank rank) {
  Stack& s = t_stack;
  if (s.overflow > 0) {
    --s.overflow;
    return;
  }
  for (int i = s.n - 1; i >= 0; --i) {
    if (s.held[i].rank != rank) continue;
    if (--s.held[i].count == 0) {
      for (int j = i; j + 1 < s.n; ++j) s.held[j] = s.held[j + 1];
      --s.n;
    }
    return;
  }
}

int depth() { return t_stack.n; }

}  // namespace lockorder
}  // namespace mf
