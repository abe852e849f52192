// Hooks that describe paths and fds: the stat family (stat/lstat/fstat/fstatat, their *64 names, the
// pre-2.33 __xstat family that old binaries still call, statx), access/faccessat/euidaccess,
// readlink/readlinkat, realpath/canonicalize_file_name. The mount is not a symlink and holds none:
// lstat == stat there, readlink fails with EINVAL, realpath returns the normalised path.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include "shim/shim.hpp"

using mf::shim::real;

namespace mf::shim {

int stat_path(Vfs* v, const MountedPath& p, struct stat* st) {
  Work w;
  auto r = v->stat(p);
  if (!r) return w.fail(r.error().code);
  *st = *r;
  return w.ok(0);
}

int stat_fd(Vfs* v, int fd, struct stat* st) {
  Work w;
  auto r = v->fstat(fd);
  if (!r) return w.fail(r.error().code);
  *st = *r;
  return w.ok(0);
}

namespace {

// -1 with errno EBADF from stat_fd on a stale mark means "not ours after all".
int fstat_any(int fd, struct stat* st) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) return real.fstat(fd, st);
  int r = stat_fd(v, fd, st);
  return r == 0 || v->maybe_virtual(fd) ? r : real.fstat(fd, st);
}

int fstatat_any(int dirfd, const char* path, struct stat* st, int flags) {
  Vfs* v = active();
  if (!v) return real.fstatat(dirfd, path, st, flags);
  if ((flags & AT_EMPTY_PATH) && path && path[0] == '\0') {
    if (!v->maybe_virtual(dirfd)) return real.fstatat(dirfd, path, st, flags);
    return fstat_any(dirfd, st);
  }
  if ((flags & AT_SYMLINK_NOFOLLOW) && fd_link_target(v, path, true)) return real.fstatat(dirfd, path, st, flags);
  auto p = mounted(v, dirfd, path);
  if (!p) return real.fstatat(dirfd, path, st, flags);
  return stat_path(v, *p, st);
}

void to_statx(const struct stat& st, struct statx* sx) {
  memset(sx, 0, sizeof *sx);
  sx->stx_mask = STATX_BASIC_STATS;
  sx->stx_blksize = static_cast<uint32_t>(st.st_blksize);
  sx->stx_nlink = static_cast<uint32_t>(st.st_nlink);
  sx->stx_uid = st.st_uid;
  sx->stx_gid = st.st_gid;
  sx->stx_mode = static_cast<uint16_t>(st.st_mode);
  sx->stx_ino = st.st_ino;
  sx->stx_size = static_cast<uint64_t>(st.st_size);
  sx->stx_blocks = static_cast<uint64_t>(st.st_blocks);
  sx->stx_atime.tv_sec = st.st_atim.tv_sec;
  sx->stx_mtime.tv_sec = st.st_mtim.tv_sec;
  sx->stx_ctime.tv_sec = st.st_ctim.tv_sec;
  sx->stx_dev_major = major(st.st_dev);
  sx->stx_dev_minor = minor(st.st_dev);
}

int access_mounted(Vfs* v, const MountedPath& p, int mode) {
  struct stat st;
  if (stat_path(v, p, &st) != 0) return -1;
  Work w;
  if (mode & W_OK) return w.fail(EROFS);
  if ((mode & X_OK) && S_ISREG(st.st_mode)) return w.fail(EACCES);
  return w.ok(0);
}

int faccessat_any(int dirfd, const char* path, int mode, int flags) {
  Vfs* v = active();
  if (!v) return real.faccessat(dirfd, path, mode, flags);
  auto p = mounted(v, dirfd, path);
  if (!p) return real.faccessat(dirfd, path, mode, flags);
  return access_mounted(v, *p, mode);
}

// readlink of /proc/self/fd/N for a virtual fd N: its mounted path, truncated to size, no NUL (as the kernel).
ssize_t readlink_fd_link(const std::string& target, char* buf, size_t size) {
  size_t n = std::min(target.size(), size);
  memcpy(buf, target.data(), n);
  return static_cast<ssize_t>(n);
}

ssize_t readlink_mounted(Vfs* v, const MountedPath& p) {
  struct stat st;
  if (stat_path(v, p, &st) != 0) return -1;
  errno = EINVAL;  // exists, and is not a symlink
  return -1;
}

char* realpath_any(const char* path, char* resolved) {
  Vfs* v = active();
  if (!v) return real.realpath(path, resolved);
  auto p = mounted(v, AT_FDCWD, path);
  if (!p) return real.realpath(path, resolved);
  struct stat st;
  if (stat_path(v, *p, &st) != 0) return nullptr;
  if (p->path.size() >= PATH_MAX) {
    errno = ENAMETOOLONG;
    return nullptr;
  }
  if (resolved == nullptr) return strdup(p->path.c_str());
  memcpy(resolved, p->path.c_str(), p->path.size() + 1);
  return resolved;
}

}  // namespace
}  // namespace mf::shim

using namespace mf;
using namespace mf::shim;

#define MF_STAT_PATH_HOOK(name, realcall, nofollow)                  \
  MF_EXPORT int name(const char* path, struct stat* st) {            \
    Vfs* v = active();                                               \
    if (!v || (nofollow && fd_link_target(v, path, true))) return realcall; \
    auto p = mounted(v, AT_FDCWD, path);                             \
    if (!p) return realcall;                                         \
    return stat_path(v, *p, st);                                     \
  }
MF_STAT_PATH_HOOK(stat, real.stat(path, st), false)
MF_STAT_PATH_HOOK(lstat, real.lstat(path, st), true)  // lstat of /proc/self/fd/N: the link itself

// struct stat64 is struct stat on x86-64 (same layout, same syscall).
static_assert(sizeof(struct stat64) == sizeof(struct stat));
MF_EXPORT int stat64(const char* path, struct stat64* st) { return stat(path, reinterpret_cast<struct stat*>(st)); }
MF_EXPORT int lstat64(const char* path, struct stat64* st) {
  return lstat(path, reinterpret_cast<struct stat*>(st));
}
MF_EXPORT int fstat(int fd, struct stat* st) { return fstat_any(fd, st); }
MF_EXPORT int fstat64(int fd, struct stat64* st) { return fstat_any(fd, reinterpret_cast<struct stat*>(st)); }
MF_EXPORT int fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  return fstatat_any(dirfd, path, st, flags);
}
MF_EXPORT int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) {
  return fstatat_any(dirfd, path, reinterpret_cast<struct stat*>(st), flags);
}

// Pre-2.33 binaries; on x86-64 _STAT_VER is 1 and struct stat is the kernel's, so ver needs no check.
#define MF_XSTAT_HOOK(name, realname, nofollow)                      \
  MF_EXPORT int name(int ver, const char* path, struct stat* st) {   \
    Vfs* v = active();                                               \
    if (!v || (nofollow && fd_link_target(v, path, true))) return real.realname(ver, path, st); \
    auto p = mounted(v, AT_FDCWD, path);                             \
    if (!p) return real.realname(ver, path, st);                     \
    return stat_path(v, *p, st);                                     \
  }
MF_XSTAT_HOOK(__xstat, __xstat, false)
MF_XSTAT_HOOK(__xstat64, __xstat, false)
MF_XSTAT_HOOK(__lxstat, __lxstat, true)
MF_XSTAT_HOOK(__lxstat64, __lxstat, true)
MF_EXPORT int __fxstat(int ver, int fd, struct stat* st) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) return real.__fxstat(ver, fd, st);
  return fstat_any(fd, st);
}
MF_EXPORT int __fxstat64(int ver, int fd, struct stat* st) { return __fxstat(ver, fd, st); }
MF_EXPORT int __fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags) {
  Vfs* v = active();
  if (!v) return real.__fxstatat(ver, dirfd, path, st, flags);
  if (!mounted(v, dirfd, path) && !((flags & AT_EMPTY_PATH) && v->maybe_virtual(dirfd)))
    return real.__fxstatat(ver, dirfd, path, st, flags);
  return fstatat_any(dirfd, path, st, flags);
}
MF_EXPORT int __fxstatat64(int ver, int dirfd, const char* path, struct stat* st, int flags) {
  return __fxstatat(ver, dirfd, path, st, flags);
}

// statx: Rust's std (memmap2, safetensors) sizes files with statx(fd, "", AT_EMPTY_PATH).
MF_EXPORT int statx(int dirfd, const char* path, int flags, unsigned mask, struct statx* sx) {
  Vfs* v = active();
  if (!v) return real.statx(dirfd, path, flags, mask, sx);
  struct stat st;
  int r;
  if ((flags & AT_EMPTY_PATH) && path[0] == '\0') {
    if (!v->maybe_virtual(dirfd)) return real.statx(dirfd, path, flags, mask, sx);
    r = fstat_any(dirfd, &st);
  } else {
    if ((flags & AT_SYMLINK_NOFOLLOW) && fd_link_target(v, path, true)) return real.statx(dirfd, path, flags, mask, sx);
    auto p = mounted(v, dirfd, path);
    if (!p) return real.statx(dirfd, path, flags, mask, sx);
    r = stat_path(v, *p, &st);
  }
  if (r == 0) to_statx(st, sx);
  return r;
}

MF_EXPORT int access(const char* path, int mode) { return faccessat_any(AT_FDCWD, path, mode, 0); }
MF_EXPORT int faccessat(int dirfd, const char* path, int mode, int flags) {
  return faccessat_any(dirfd, path, mode, flags);
}
MF_EXPORT int euidaccess(const char* path, int mode) {
  Vfs* v = active();
  if (!v) return real.euidaccess(path, mode);
  auto p = mounted(v, AT_FDCWD, path);
  if (!p) return real.euidaccess(path, mode);
  return access_mounted(v, *p, mode);
}
MF_EXPORT int eaccess(const char* path, int mode) { return euidaccess(path, mode); }

MF_EXPORT ssize_t readlink(const char* path, char* buf, size_t size) {
  Vfs* v = active();
  if (!v) return real.readlink(path, buf, size);
  if (auto t = fd_link_target(v, path, true)) return readlink_fd_link(*t, buf, size);
  auto p = mounted(v, AT_FDCWD, path);
  if (!p) return real.readlink(path, buf, size);
  return readlink_mounted(v, *p);
}
MF_EXPORT ssize_t readlinkat(int dirfd, const char* path, char* buf, size_t size) {
  Vfs* v = active();
  if (!v) return real.readlinkat(dirfd, path, buf, size);
  if (auto t = fd_link_target(v, path, true)) return readlink_fd_link(*t, buf, size);
  auto p = mounted(v, dirfd, path);
  if (!p) return real.readlinkat(dirfd, path, buf, size);
  return readlink_mounted(v, *p);
}

MF_EXPORT char* realpath(const char* path, char* resolved) { return realpath_any(path, resolved); }
MF_EXPORT char* canonicalize_file_name(const char* path) { return realpath_any(path, nullptr); }
MF_EXPORT char* __realpath_chk(const char* path, char* resolved, size_t) { return realpath_any(path, resolved); }
