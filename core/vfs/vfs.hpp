// Vfs: the engine behind the hooks. It owns the configuration, the mounts, the store router (remotes are
// created lazily through an injected factory), the ChunkCache, the MappingManager, the tree of what exists
// below the mounts, the fd table and the per-file counters. The shim holds one global pointer to it and
// calls it only for paths under a mount or fds in the fd table; everything here is testable without
// LD_PRELOAD (tests/unit/vfs).
//
// Nothing heavy happens in the constructor: the cache, the mapping manager (and with them any thread or
// connection) are created on the first use of a mounted path, because LD_PRELOAD is inherited by every child
// process and most of them never touch the mount.
//
// Virtual fds: open() of a mounted file creates a memfd (MFD_CLOEXEC, see DESIGN.md), ftruncates it to the
// object size (sparse: no memory), seals it against writes and resizing, then puts an O_PATH fd to the same
// inode in its place (same fd number) and drops the memfd. fstat and raw statx of that fd see a regular file
// of the right size and a stable identity (FdTable::get checks it), dup/fcntl(F_DUPFD)/close work natively,
// and every read the shim cannot intercept (raw syscall(SYS_read), io_uring, sendfile from a program that
// bypasses libc) fails with EBADF instead of returning the memfd's holes. The offset and status flags live
// in the OpenFile (fd_table.hpp): read() claims its range there and copies from the ChunkCache; lseek,
// fcntl(F_GETFL/F_SETFL) and the byte-moving calls (sendfile, copy_file_range, splice: copy_to) go through
// here too. A directory open gets an empty memfd (likewise behind O_PATH) and a directory OpenFile.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/cache/chunk_cache.hpp"
#include "core/prefetch/prefetcher.hpp"
#include "core/vfs/config.hpp"
#include "core/vfs/fd_table.hpp"
#include "core/vfs/mappings.hpp"
#include "core/vfs/store_router.hpp"
#include "core/vfs/tree.hpp"

namespace mf {

struct VfsDeps {
  StoreFactory make_store;
  MapSyscalls map_sys;
};

// The stable fake inode number of a mounted path (st_ino, d_ino): a hash of the normalised path.
uint64_t fake_ino(std::string_view path);

// A normalised local path under a mount.
struct MountedPath {
  std::string path;      // normalised absolute local path
  size_t mount = 0;      // index into config().mounts
  size_t rel_pos = 0;    // where the part below the mount starts in path (path.size() for the mount itself)
  // The part below the mount ("" for the mount itself). An offset, not a stored view: a view into `path`
  // would dangle when a MountedPath with a short (SSO) path is copied or moved.
  std::string_view rel() const { return std::string_view(path).substr(rel_pos); }
};

class Vfs {
 public:
  Vfs(VfsConfig config, VfsDeps deps);
  ~Vfs();
  Vfs(const Vfs&) = delete;
  Vfs& operator=(const Vfs&) = delete;

  const VfsConfig& config() const { return config_; }

  // The mounted path for an absolute local path (normalised here), or nothing when it is not under a mount.
  std::optional<MountedPath> match(std::string_view abs_path) const;
  // Cheap pre-filter for hooks: false only when abs_path cannot be under a mount (no allocation).
  bool may_match(std::string_view abs_path) const;

  Result<struct stat> stat(const MountedPath& p);
  Result<int> open(const MountedPath& p, int flags);
  Result<std::vector<DirEntry>> list_dir(const MountedPath& p);
  // The path of a directory fd (for openat/fstatat relative to it); nothing when fd is not a virtual dir.
  std::optional<std::string> dir_path(int fd);

  // The virtual working directory: a mounted directory the program chdir()ed into (the kernel's cwd stays
  // where it was; relative paths resolve against this one while it is set). Per process: a forked child
  // keeps it, exec loses it. has_cwd() is one relaxed load for the hooks' fast path.
  bool has_cwd() const { return has_cwd_.load(std::memory_order_relaxed); }
  std::optional<std::string> cwd() const;
  // chdir into a mounted path: ENOENT/ENOTDIR as the kernel says; on success it becomes the cwd.
  Result<void> chdir(const MountedPath& p);
  // fchdir to a virtual fd (ENOTDIR for a file).
  Result<void> fchdir(int fd);
  void clear_cwd();
  // The mounted path of a virtual fd (file or directory), for /proc/self/fd/N; nothing for any other fd.
  std::optional<std::string> fd_path(int fd);

  // fds
  bool maybe_virtual(int fd) const { return fds_.marked(fd); }
  std::shared_ptr<OpenFile> file(int fd) { return fds_.get(fd); }
  Result<size_t> read(int fd, void* buf, size_t n);
  Result<size_t> pread(int fd, void* buf, size_t n, uint64_t offset);
  // offset < 0: at and advancing the fd's offset (readv), else at offset (preadv).
  Result<size_t> preadv(int fd, const struct iovec* iov, int iovcnt, int64_t offset);
  Result<struct stat> fstat(int fd);
  // lseek on a virtual fd: SEEK_SET/CUR/END, SEEK_DATA/SEEK_HOLE as on a file without holes; EINVAL when the
  // result would be negative or overflow, ENXIO for SEEK_DATA/HOLE at or past the end.
  Result<int64_t> lseek(int fd, int64_t offset, int whence);
  // fcntl(F_GETFL) / fcntl(F_SETFL) of a virtual fd (read-only: F_SETFL changes only the status flags a
  // regular file accepts: O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME, O_NONBLOCK).
  Result<int> get_status_flags(int fd);
  Result<void> set_status_flags(int fd, int flags);

  // The byte-moving calls (sendfile, copy_file_range, splice) from a virtual fd: reads up to count bytes
  // from the cache in pieces of at most kCopyPiece and hands each to sink, which writes it to the
  // destination and returns how many bytes it took (fewer: the destination is full, the copy stops there).
  // offset != nullptr: read at *offset, advance *offset, leave the fd's offset alone; else read at and
  // advance the fd's offset. Returns the bytes the sink took (0 at end of file); an error only when nothing
  // was moved (as the kernel reports a partial transfer). count is capped at MAX_RW_COUNT as the kernel does.
  using Sink = std::function<Result<size_t>(const std::byte* data, size_t n)>;
  static constexpr size_t kCopyPiece = size_t{1} << 20;
  Result<size_t> copy_to(int fd, int64_t* offset, size_t count, const Sink& sink);

  void dup_fd(int oldfd, int newfd);
  void close_fd(int fd) { (void)fds_.take(fd); }
  void close_range_fds(unsigned lo, unsigned hi);
  Result<void*> mmap(int fd, void* addr, size_t length, int prot, int flags, off_t offset);

  // The mapping manager once a mounted path was used, else nullptr (one atomic load: hooks on addresses).
  MappingManager* mappings() const { return mm_ptr_.load(std::memory_order_acquire); }
  bool used() const { return mm_ptr_.load(std::memory_order_relaxed) != nullptr; }

  void before_fork();
  void after_fork_parent();
  void after_fork_child();

  // The JSON of MODELFETCH_STATS (never credentials: keys and counters only).
  std::string stats_json() const;
  // Writes stats_json() to config().stats_file when set and a mounted path was used. Returns false on error.
  bool write_stats() const;

 private:
  void ensure_engine();
  Result<std::shared_ptr<OpenFile>> make_open_file(const MountedPath& p, const Node& node);
  std::shared_ptr<const RemoteObject> object_for(const std::string& path, const Node& node);
  struct stat stat_of(const std::string& path, const Node& node) const;
  Result<size_t> read_at(OpenFile& f, uint64_t offset, std::byte* dst, size_t n);
  // Claims up to n bytes at the fd offset (clamped to the file size) and returns where they start; settle()
  // gives back what was claimed and not used, unless the offset moved meanwhile.
  static std::pair<uint64_t, size_t> claim(OpenFile& f, size_t n);
  static void settle(OpenFile& f, uint64_t start, size_t claimed, size_t used);
  std::shared_ptr<const RemoteObject> resolve_object(const std::string& abs_path);
  void note_first_byte(FileCounters& c) const;
  int64_t since_start_ns() const;

  VfsConfig config_;
  VfsDeps deps_;
  std::vector<std::string> key_bases_;  // per mount: router key of the mount root, ending in '/'
  std::chrono::steady_clock::time_point start_;
  StoreRouter router_;
  Tree tree_;
  FdTable fds_;

  Mutex engine_mu_{LockRank::vfs_engine};
  std::unique_ptr<ChunkCache> cache_;
  std::unique_ptr<Prefetcher> prefetcher_;  // destroyed after mm_ (whose fault thread calls it)
  std::unique_ptr<MappingManager> mm_;
  std::atomic<MappingManager*> mm_ptr_{nullptr};

  // Leaf lock: held only to copy or replace cwd_ (never across a call).
  mutable Mutex cwd_mu_{LockRank::vfs_cwd};
  std::optional<std::string> cwd_;
  std::atomic<bool> has_cwd_{false};

  mutable Mutex objects_mu_{LockRank::vfs_objects};
  std::map<std::string, std::shared_ptr<const RemoteObject>, std::less<>> objects_;  // by local path
  std::map<std::string, std::shared_ptr<FileCounters>, std::less<>> counters_;      // by local path
};

}  // namespace mf
