// Ranked locks: every mutex in core/ is one of these, with a rank from the table below (docs/DESIGN.md
// "Locks" says what each protects). A thread may take a lock only while every lock it holds has a lower
// rank; `region` locks may also be taken while holding other region locks (always under the manager's
// lock, which serialises those multi-acquisitions). Fork's prepare handler takes the locks in this order.
//
// With -Dlock_order_checks=true (MF_LOCK_ORDER_CHECKS=1) every acquisition is checked against a
// thread-local stack of held ranks, and a violation aborts with a `modelfetch:` line naming both locks.
// Off (the default), Mutex/SharedMutex are std::mutex/std::shared_mutex plus nothing: no rank stored, no
// branch. BasicMutex<true> always checks (the unit test uses it in any build).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <type_traits>

#ifndef MF_LOCK_ORDER_CHECKS
#define MF_LOCK_ORDER_CHECKS 0
#endif

namespace mf {

// Outer locks first. Gaps leave room; the numbers appear in the abort message.
enum class LockRank : uint8_t {
  vfs_engine = 10,    // Vfs::engine_mu_: creating the cache, mappings and prefetcher
  tree = 30,          // Tree::mu_: listings, HEAD answers, in-flight requests (never across a request)
  vfs_objects = 40,   // Vfs::objects_mu_: RemoteObject and counters by path
  prefetcher = 45,    // Prefetcher::Impl::mu: plans, streams, windows (stats_json asks it under objects)
  fd_table = 50,      // FdTable::mu_: fd -> OpenFile
  mappings = 60,      // MappingManager::Impl::mu: the region map, workers pointer (never across a fetch)
  region = 70,        // Region::mu: one mapping's pages (shared while copying in, exclusive to change)
  fill_hints = 80,    // MappingManager::Impl::hint_mu: order hints
  fill_workers = 90,  // Workers::mu: parked faults and the fill queue
  cache = 100,        // ChunkCache::Impl::mu: chunks, LRU, budget (never across a fetch or memcpy)
  router = 110,       // StoreRouter::mu_: the stores by URL
  client = 120,       // Client::Impl::mu: submitted transfers
  store_call = 130,   // per-call waits (a blocking request waiting for its completion)
  credentials = 125,  // CredentialManager::mu_: the current credentials (taken inside Client::Impl::mu)
  bucket_regions = 135,  // the process's bucket -> region answers (client.cpp; leaf)
  vfs_cwd = 140,      // Vfs::cwd_mu_: the virtual cwd string (leaf: copied or replaced, never across a call)
};

const char* lock_rank_name(LockRank rank);

namespace lockorder {
// Checks that `rank` may be taken now (aborts otherwise) and records it as held.
void acquire(LockRank rank);
// Records that `rank` was taken without a check (try_lock: it cannot deadlock).
void acquired(LockRank rank);
void release(LockRank rank);
// Held ranks of this thread (tests).
int depth();
}  // namespace lockorder

inline constexpr bool kLockOrderChecks = MF_LOCK_ORDER_CHECKS != 0;

namespace detail {
struct NoRank {
  constexpr explicit NoRank(LockRank) {}
};
struct Rank {
  constexpr explicit Rank(LockRank r) : rank(r) {}
  LockRank rank;
};
template <bool C>
using RankStore = std::conditional_t<C, Rank, NoRank>;
}  // namespace detail

template <bool Checked>
class BasicMutex {
 public:
  constexpr explicit BasicMutex(LockRank rank) : info_(rank) {}
  BasicMutex(const BasicMutex&) = delete;
  BasicMutex& operator=(const BasicMutex&) = delete;

  void lock() {
    if constexpr (Checked) lockorder::acquire(info_.rank);
    mu_.lock();
  }
  bool try_lock() {
    if (!mu_.try_lock()) return false;
    if constexpr (Checked) lockorder::acquired(info_.rank);
    return true;
  }
  // The rank is read before the unlock: once unlocked, another thread may destroy the mutex (e.g. the
  // waiter of a blocking call whose completion unlocks it, or a destructor waiting for the last fetch).
  void unlock() {
    if constexpr (Checked) {
      const LockRank r = info_.rank;
      mu_.unlock();
      lockorder::release(r);
    } else {
      mu_.unlock();
    }
  }
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
  [[no_unique_address]] detail::RankStore<Checked> info_;
};

template <bool Checked>
class BasicSharedMutex {
 public:
  constexpr explicit BasicSharedMutex(LockRank rank) : info_(rank) {}
  BasicSharedMutex(const BasicSharedMutex&) = delete;
  BasicSharedMutex& operator=(const BasicSharedMutex&) = delete;

  void lock() {
    if constexpr (Checked) lockorder::acquire(info_.rank);
    mu_.lock();
  }
  bool try_lock() {
    if (!mu_.try_lock()) return false;
    if constexpr (Checked) lockorder::acquired(info_.rank);
    return true;
  }
  // The rank is read before the unlock: once unlocked, another thread may destroy the mutex (e.g. the
  // waiter of a blocking call whose completion unlocks it, or a destructor waiting for the last fetch).
  void unlock() {
    if constexpr (Checked) {
      const LockRank r = info_.rank;
      mu_.unlock();
      lockorder::release(r);
    } else {
      mu_.unlock();
    }
  }
  void lock_shared() {
    if constexpr (Checked) lockorder::acquire(info_.rank);
    mu_.lock_shared();
  }
  bool try_lock_shared() {
    if (!mu_.try_lock_shared()) return false;
    if constexpr (Checked) lockorder::acquired(info_.rank);
    return true;
  }
  void unlock_shared() {
    if constexpr (Checked) {
      const LockRank r = info_.rank;
      mu_.unlock_shared();
      lockorder::release(r);
    } else {
      mu_.unlock_shared();
    }
  }
  // Fork child only, instead of unlock() of a lock the atfork prepare handler took exclusively: glibc's
  // rwlock decides a write unlock by comparing the owner's thread id, which the child's thread no longer
  // has, so a plain unlock there is taken for a read unlock and the lock stays write-locked for ever
  // (found by tests/shim/soak.c: every forked child hung in its first mmap). Re-initialises it, unlocked.
  void unlock_after_fork_child() {
    if constexpr (Checked) {
      const LockRank r = info_.rank;
      new (&mu_) std::shared_mutex();
      lockorder::release(r);
    } else {
      new (&mu_) std::shared_mutex();
    }
  }

 private:
  std::shared_mutex mu_;
  [[no_unique_address]] detail::RankStore<Checked> info_;
};

using Mutex = BasicMutex<kLockOrderChecks>;
using SharedMutex = BasicSharedMutex<kLockOrderChecks>;

// A condition variable for Mutex (std::condition_variable itself, waiting on the native mutex; the rank
// stays recorded while waiting, which is harmless: the lock is re-taken before wait returns).
class CondVar {
 public:
  template <bool C>
  void wait(std::unique_lock<BasicMutex<C>>& lock) {
    std::unique_lock<std::mutex> n(lock.mutex()->native(), std::adopt_lock);
    cv_.wait(n);
    n.release();
  }
  template <bool C, class Pred>
  void wait(std::unique_lock<BasicMutex<C>>& lock, Pred pred) {
    while (!pred()) wait(lock);
  }
  template <bool C, class Rep, class Period, class Pred>
  bool wait_for(std::unique_lock<BasicMutex<C>>& lock, const std::chrono::duration<Rep, Period>& d, Pred pred) {
    std::unique_lock<std::mutex> n(lock.mutex()->native(), std::adopt_lock);
    const bool out = cv_.wait_for(n, d, std::move(pred));
    n.release();
    return out;
  }
  template <bool C, class Clock, class Duration>
  std::cv_status wait_until(std::unique_lock<BasicMutex<C>>& lock, const std::chrono::time_point<Clock, Duration>& t) {
    std::unique_lock<std::mutex> n(lock.mutex()->native(), std::adopt_lock);
    const std::cv_status out = cv_.wait_until(n, t);
    n.release();
    return out;
  }
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

  // Fork child only: threads that waited here in the parent do not exist in the child, but glibc's
  // condition variable still counts them (a broadcast would wait for them forever). Re-initialises it.
  void reset_after_fork() { new (&cv_) std::condition_variable(); }

 private:
  std::condition_variable cv_;
};

}  // namespace mf
