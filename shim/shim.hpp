// Shared by the hook files of libmodelfetch.so: the table of real libc entry points, init, the recursion
// guard and the path/fd filters. Every hook has one shape:
//
//   Vfs* v = mf::shim::active();                       // init (pthread_once), guard, config
//   if (!v || <not a mounted path / not a virtual fd>)  // one check for a non-model call
//     return real.X(args...);                           // tail call to libc
//   return <hand to core/vfs>;
//
// Errors leave core as Result<T>; hooks turn them into -1/NULL + errno and otherwise restore the errno the
// program had (core's own syscalls must not leak errno changes into the program).
#pragma once

// Compiled without _FILE_OFFSET_BITS=64 (shim/meson.build): with it, glibc's headers rename open to open64
// (and stat, mmap, ...), and our open() would be emitted as a second open64. On x86-64 off_t is 64 bits
// either way.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <optional>

#include "core/util/thread.hpp"
#include "core/vfs/vfs.hpp"

#define MF_EXPORT extern "C" __attribute__((visibility("default")))

// The pre-2.33 stat entry points: glibc 2.36 still exports them for old binaries but no longer declares them.
extern "C" {
int __xstat(int ver, const char* path, struct stat* st);
int __lxstat(int ver, const char* path, struct stat* st);
int __fxstat(int ver, int fd, struct stat* st);
int __fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags);
}

namespace mf::shim {

// X(name, return type, parameter types): every real symbol we call.
#define MF_REAL_SYMBOLS(X)                                                            \
  X(open, int, const char*, int, ...)                                                \
  X(openat, int, int, const char*, int, ...)                                         \
  X(fopen, FILE*, const char*, const char*)                                          \
  X(fdopen, FILE*, int, const char*)                                                 \
  X(close, int, int)                                                                 \
  X(close_range, int, unsigned, unsigned, int)                                       \
  X(closefrom, void, int)                                                            \
  X(dup, int, int)                                                                   \
  X(dup2, int, int, int)                                                             \
  X(dup3, int, int, int, int)                                                        \
  X(socketpair, int, int, int, int, int*)                                            \
  X(fcntl, int, int, int, ...)                                                       \
  X(stat, int, const char*, struct stat*)                                            \
  X(lstat, int, const char*, struct stat*)                                           \
  X(fstat, int, int, struct stat*)                                                   \
  X(fstatat, int, int, const char*, struct stat*, int)                               \
  X(__xstat, int, int, const char*, struct stat*)                                    \
  X(__lxstat, int, int, const char*, struct stat*)                                   \
  X(__fxstat, int, int, int, struct stat*)                                           \
  X(__fxstatat, int, int, int, const char*, struct stat*, int)                       \
  X(statx, int, int, const char*, int, unsigned, struct statx*)                      \
  X(access, int, const char*, int)                                                   \
  X(faccessat, int, int, const char*, int, int)                                      \
  X(euidaccess, int, const char*, int)                                               \
  X(readlink, ssize_t, const char*, char*, size_t)                                   \
  X(readlinkat, ssize_t, int, const char*, char*, size_t)                            \
  X(realpath, char*, const char*, char*)                                             \
  X(read, ssize_t, int, void*, size_t)                                               \
  X(pread, ssize_t, int, void*, size_t, off_t)                                       \
  X(readv, ssize_t, int, const struct iovec*, int)                                   \
  X(preadv, ssize_t, int, const struct iovec*, int, off_t)                           \
  X(preadv2, ssize_t, int, const struct iovec*, int, off_t, int)                     \
  X(write, ssize_t, int, const void*, size_t)                                        \
  X(pwrite, ssize_t, int, const void*, size_t, off_t)                                \
  X(writev, ssize_t, int, const struct iovec*, int)                                  \
  X(send, ssize_t, int, const void*, size_t, int)                                    \
  X(mmap, void*, void*, size_t, int, int, int, off_t)                                \
  X(munmap, int, void*, size_t)                                                      \
  X(madvise, int, void*, size_t, int)                                                \
  X(mremap, void*, void*, size_t, size_t, int, ...)                                  \
  X(opendir, DIR*, const char*)                                                      \
  X(fdopendir, DIR*, int)                                                            \
  X(readdir, struct dirent*, DIR*)                                                   \
  X(readdir_r, int, DIR*, struct dirent*, struct dirent**)                           \
  X(closedir, int, DIR*)                                                             \
  X(dirfd, int, DIR*)                                                                \
  X(rewinddir, void, DIR*)                                                           \
  X(telldir, long, DIR*)                                                             \
  X(seekdir, void, DIR*, long)                                                       \
  X(scandir, int, const char*, struct dirent***, int (*)(const struct dirent*),      \
    int (*)(const struct dirent**, const struct dirent**))                           \
  X(unlink, int, const char*)                                                        \
  X(unlinkat, int, int, const char*, int)                                            \
  X(remove, int, const char*)                                                        \
  X(rmdir, int, const char*)                                                         \
  X(mkdir, int, const char*, mode_t)                                                 \
  X(mkdirat, int, int, const char*, mode_t)                                          \
  X(rename, int, const char*, const char*)                                           \
  X(renameat, int, int, const char*, int, const char*)                               \
  X(renameat2, int, int, const char*, int, const char*, unsigned)                    \
  X(link, int, const char*, const char*)                                             \
  X(linkat, int, int, const char*, int, const char*, int)                            \
  X(symlink, int, const char*, const char*)                                          \
  X(symlinkat, int, const char*, int, const char*)                                   \
  X(truncate, int, const char*, off_t)                                               \
  X(chmod, int, const char*, mode_t)                                                 \
  X(fchmodat, int, int, const char*, mode_t, int)                                    \
  X(chown, int, const char*, uid_t, gid_t)                                           \
  X(lchown, int, const char*, uid_t, gid_t)                                          \
  X(fchownat, int, int, const char*, uid_t, gid_t, int)                              \
  X(utimensat, int, int, const char*, const struct timespec*, int)                   \
  X(utimes, int, const char*, const struct timeval*)                                 \
  X(ftruncate, int, int, off_t)                                                      \
  X(fchmod, int, int, mode_t)                                                        \
  X(fchown, int, int, uid_t, gid_t)                                                  \
  X(futimens, int, int, const struct timespec*)                                      \
  X(futimes, int, int, const struct timeval*)                                        \
  X(setxattr, int, const char*, const char*, const void*, size_t, int)               \
  X(lsetxattr, int, const char*, const char*, const void*, size_t, int)              \
  X(fsetxattr, int, int, const char*, const void*, size_t, int)                      \
  X(removexattr, int, const char*, const char*)                                      \
  X(lremovexattr, int, const char*, const char*)                                     \
  X(fremovexattr, int, int, const char*)                                             \
  X(sendfile, ssize_t, int, int, off_t*, size_t)                                     \
  X(copy_file_range, ssize_t, int, loff_t*, int, loff_t*, size_t, unsigned)          \
  X(splice, ssize_t, int, loff_t*, int, loff_t*, size_t, unsigned)                   \
  X(lseek, off_t, int, off_t, int)                                                   \
  X(posix_fadvise, int, int, off_t, off_t, int)                                      \
  X(readahead, ssize_t, int, off64_t, size_t)                                        \
  X(fsync, int, int)                                                                 \
  X(fdatasync, int, int)                                                             \
  X(flock, int, int, int)                                                            \
  X(lockf, int, int, int, off_t)                                                     \
  X(fgetxattr, ssize_t, int, const char*, void*, size_t)                             \
  X(flistxattr, ssize_t, int, char*, size_t)                                         \
  X(chdir, int, const char*)                                                         \
  X(fchdir, int, int)                                                                \
  X(getcwd, char*, char*, size_t)                                                    \
  X(get_current_dir_name, char*)

struct Real {
#define MF_REAL_FIELD(name, ret, ...) ret (*name)(__VA_ARGS__);
  MF_REAL_SYMBOLS(MF_REAL_FIELD)
#undef MF_REAL_FIELD
};
extern constinit Real real;

extern constinit std::atomic<Vfs*> g_vfs;
extern thread_local bool t_busy __attribute__((tls_model("initial-exec")));

void ensure_init();

// True in a child that shares our memory without having gone through fork() (vfork, posix_spawn's
// clone(CLONE_VM|CLONE_VFORK)): no fork handler ran, and the engine's state is the parent's own memory,
// so the fd-table hooks (close, close_range, dup*) must pass through without touching it. One getpid
// system call; callers ask only for a virtual fd.
bool in_vfork_child();

// The engine when this call may be ours: init done, not re-entered from our own work, configuration valid.
inline Vfs* active() {
  ensure_init();
  if (t_busy || on_internal_thread()) return nullptr;  // our own work and our own threads pass through
  return g_vfs.load(std::memory_order_acquire);
}

// Marks our own work on this thread (hooks re-entered from inside pass straight through) and keeps the
// program's errno unless the hook reports a failure.
class Work {
 public:
  Work() : saved_errno_(errno), was_busy_(t_busy) { t_busy = true; }
  ~Work() { t_busy = was_busy_; }
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;
  template <class T>
  T ok(T value) {
    errno = saved_errno_;
    return value;
  }
  template <class T = int>
  T fail(int code, T value = T(-1)) {
    errno = code;
    return value;
  }

 private:
  int saved_errno_;
  bool was_busy_;
};

// The mounted path named by (dirfd, path), or nothing. Cheap for absolute paths outside every mount; a
// relative path costs a getcwd system call (only when it could reach a mount: see shim/paths.cpp).
// /proc/self/fd/N (and /dev/fd/N, /proc/PID/fd/N) of a virtual fd N resolve to its mounted path. While a
// virtual cwd is set, a relative path that leads outside the mount is rewritten in place to its absolute
// path (a per-thread buffer), so the hook's real call must use `path` after this call.
std::optional<MountedPath> mounted(Vfs* v, int dirfd, const char*& path);
// For a path that is exactly /proc/self/fd/N (whole_only) or starts with it, N a virtual fd: the mounted
// path it stands for (readlink shows it; lstat of the link itself is the kernel's).
std::optional<std::string> fd_link_target(Vfs* v, const char* path, bool whole_only);

// Before the kernel touches [p, p+n) on the program's behalf: if it lies in a managed mapping, fill it
// (a missing page there makes the syscall fail with EFAULT under UFFD_USER_MODE_ONLY). False + errno on error.
inline bool prepare_kernel_access(Vfs* v, const void* p, size_t n) {
  MappingManager* mm = v ? v->mappings() : nullptr;
  if (!mm) return true;
  Work w;  // the fill's own reads and wakeup writes pass through instead of re-entering the manager
  if (!mm->overlaps(p, n)) return w.ok(true);
  auto r = mm->fill_for_kernel(p, n);
  return r ? w.ok(true) : w.fail(r.error().code, false);
}

// True when fd is one of our virtual fds (a remote file opened read-only): calls that would write to it or
// change its metadata fail as on a read-only file system (hooks_io.cpp, hooks_write.cpp).
bool virtual_fd(Vfs* v, int fd);

// fcntl on a virtual fd for the commands an O_PATH fd refuses (F_GETFL, F_SETFL, record locks):
// *handled says whether it was one (hooks_bytes.cpp; called from the fcntl hook).
int fcntl_virtual(Vfs* v, int fd, int cmd, long arg, bool* handled);

// Shared by the stat-family hooks (hooks_stat.cpp).
int stat_path(Vfs* v, const MountedPath& p, struct stat* st);
int stat_fd(Vfs* v, int fd, struct stat* st);

}  // namespace mf::shim
