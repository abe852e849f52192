// FdTable: which kernel fds are virtual, and the open file description each refers to.
//
// A virtual fd is a real kernel fd (an O_PATH fd to a sealed memfd: see vfs.hpp), so dup/dup2/fcntl(F_DUPFD)
// and close work natively; the table maps each fd number to the shared OpenFile (one per open(), shared by
// its dups, as the kernel shares a description), which holds the file offset and status flags. Every read/write/mmap hook asks marked(fd) first: one relaxed atomic load from a
// bitmap for fds below 65536 (8 KiB), so a non-model fd costs one load. A mark is only a hint: get()
// checks that the fd still refers to the memfd's inode (st_dev, st_ino) and forgets stale entries, so an
// fd closed behind our back (fclose of an fdopen'ed FILE uses glibc's internal close, raw syscalls) and
// reused for a real file is never served from the cache.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cache/chunk_cache.hpp"
#include "core/util/lock.hpp"
#include "core/vfs/tree.hpp"

namespace mf {

struct FileCounters {
  std::atomic<uint64_t> bytes_served{0};
  std::atomic<uint64_t> bytes_mapped{0};
  std::atomic<uint64_t> opens{0};
  // Nanoseconds since the Vfs started: the first open, and the first byte handed to the program (a read
  // or a mapping's fault). -1 until it happens.
  std::atomic<int64_t> first_open_ns{-1};
  std::atomic<int64_t> first_byte_ns{-1};
};

// One open() of a mounted path: what every dup of the fd shares, as a kernel open file description: the
// offset and the status flags live here (the kernel's fd is O_PATH and has neither). The offset moves by
// compare-and-swap: a read claims [pos, pos+n) before copying (clamped to the size), so concurrent read()s
// on one description get consecutive, disjoint ranges, as the kernel's f_pos_lock gives a real file, and
// no lock is held while the bytes are fetched.
struct OpenFile {
  std::string path;                               // normalised local path
  Node node;
  std::shared_ptr<const RemoteObject> object;     // files only
  std::shared_ptr<FileCounters> counters;         // files only
  dev_t memfd_dev = 0;
  ino_t memfd_ino = 0;
  std::atomic<uint64_t> pos{0};
  // What fcntl(F_GETFL) reports: O_LARGEFILE and the open flags a real description keeps (O_NONBLOCK,
  // O_NOFOLLOW, O_DIRECTORY, ...), with F_SETFL's changes. O_RDONLY (0) for the access mode.
  std::atomic<int> status_flags{0};
};

class FdTable {
 public:
  static constexpr int kBitmapFds = 1 << 16;

  bool marked(int fd) const {
    if (fd < 0) return false;
    if (fd < kBitmapFds)
      return (bits_[fd / 64].load(std::memory_order_relaxed) >> (fd % 64)) & 1u;
    return high_.load(std::memory_order_relaxed) != 0 && high_marked(fd);
  }
  void put(int fd, std::shared_ptr<OpenFile> file);
  // The OpenFile of fd if fd still refers to it; forgets the entry otherwise.
  std::shared_ptr<OpenFile> get(int fd);
  std::shared_ptr<OpenFile> take(int fd);
  // Marked fds in [lo, hi].
  std::vector<int> marked_between(unsigned lo, unsigned hi);

  void lock() { mu_.lock(); }
  void unlock() { mu_.unlock(); }

 private:
  bool high_marked(int fd) const;
  void set_bit(int fd, bool on);

  std::atomic<uint64_t> bits_[kBitmapFds / 64] = {};
  std::atomic<uint32_t> high_{0};  // marked fds >= kBitmapFds
  mutable Mutex mu_{LockRank::fd_table};
  std::unordered_map<int, std::shared_ptr<OpenFile>> files_;
};

}  // namespace mf
