// Hooks for calls that would change the namespace or a file's metadata: unlink/unlinkat/remove/rmdir,
// mkdir/mkdirat, rename/renameat/renameat2, link/linkat, symlink/symlinkat (the new name), truncate,
// chmod/fchmodat, chown/lchown/fchownat, utimensat/utimes, setxattr/lsetxattr/removexattr/lremovexattr, and
// on a virtual fd ftruncate/fchmod/fchown/futimens/futimes/fsetxattr/fremovexattr. The mount is a read-only
// file system: a path under it fails with EROFS (after the kernel's own lookup answers: ENOENT for chmod and
// the like of a missing name, EEXIST for mkdir of an existing one), and nothing is touched on the local disk
// (without these hooks the call would reach the local directory the mount path shadows: mkdir would create
// it, a file there would be renamed). rename and link with exactly one of the two paths under a mount fail
// with EXDEV, as between two file systems (mv and shutil.move then copy, and their unlink of the source fails
// with EROFS). A virtual fd is a memfd: without the fd hooks fchmod would change the mode fstat reports and
// fsetxattr would succeed; they fail with EROFS, and ftruncate with EINVAL, as for any fd not open for
// writing. Opening for writing is refused in the open hooks (core/vfs). Anything else passes to libc.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "shim/shim.hpp"

using mf::shim::real;

namespace mf::shim {
namespace {

// What the kernel looks up before it checks that the file system is writable (fs/namei.c, fs/open.c):
// nothing for unlink, rmdir and rename (EROFS, existing or not); the name for chmod, chown, truncate, utimes
// and the xattr calls (ENOENT when missing); the new name for mkdir and symlink (EEXIST when present).
enum class Lookup { none, must_exist, must_be_new };

// True (errno set) when (dirfd, path) names something under a mount: EROFS, or the lookup's answer first.
bool refused(int dirfd, const char*& path, Lookup lookup = Lookup::none) {
  Vfs* v = active();
  if (!v) return false;
  auto mp = mounted(v, dirfd, path);
  if (!mp) return false;
  int e = EROFS;
  if (lookup != Lookup::none) {
    struct stat st;
    const bool exists = stat_path(v, *mp, &st) == 0;
    if (lookup == Lookup::must_exist && !exists && (errno == ENOENT || errno == ENOTDIR)) e = errno;
    if (lookup == Lookup::must_be_new && exists) e = EEXIST;
  }
  errno = e;
  return true;
}

// Two paths: EROFS when both are under a mount, EXDEV when one is.
bool refused2(int dirfd1, const char*& path1, int dirfd2, const char*& path2) {
  Vfs* v = active();
  if (!v) return false;
  bool a = mounted(v, dirfd1, path1).has_value();
  bool b = mounted(v, dirfd2, path2).has_value();
  if (!a && !b) return false;
  errno = a && b ? EROFS : EXDEV;
  return true;
}

}  // namespace
}  // namespace mf::shim

using namespace mf::shim;

MF_EXPORT int unlink(const char* path) { return refused(AT_FDCWD, path) ? -1 : real.unlink(path); }
MF_EXPORT int unlinkat(int dirfd, const char* path, int flags) {
  return refused(dirfd, path) ? -1 : real.unlinkat(dirfd, path, flags);
}
MF_EXPORT int remove(const char* path) { return refused(AT_FDCWD, path) ? -1 : real.remove(path); }
MF_EXPORT int rmdir(const char* path) { return refused(AT_FDCWD, path) ? -1 : real.rmdir(path); }
MF_EXPORT int mkdir(const char* path, mode_t mode) { return refused(AT_FDCWD, path, Lookup::must_be_new) ? -1 : real.mkdir(path, mode); }
MF_EXPORT int mkdirat(int dirfd, const char* path, mode_t mode) {
  return refused(dirfd, path, Lookup::must_be_new) ? -1 : real.mkdirat(dirfd, path, mode);
}
MF_EXPORT int rename(const char* from, const char* to) {
  return refused2(AT_FDCWD, from, AT_FDCWD, to) ? -1 : real.rename(from, to);
}
MF_EXPORT int renameat(int fromfd, const char* from, int tofd, const char* to) {
  return refused2(fromfd, from, tofd, to) ? -1 : real.renameat(fromfd, from, tofd, to);
}
MF_EXPORT int renameat2(int fromfd, const char* from, int tofd, const char* to, unsigned flags) {
  return refused2(fromfd, from, tofd, to) ? -1 : real.renameat2(fromfd, from, tofd, to, flags);
}
MF_EXPORT int link(const char* from, const char* to) {
  return refused2(AT_FDCWD, from, AT_FDCWD, to) ? -1 : real.link(from, to);
}
MF_EXPORT int linkat(int fromfd, const char* from, int tofd, const char* to, int flags) {
  return refused2(fromfd, from, tofd, to) ? -1 : real.linkat(fromfd, from, tofd, to, flags);
}
MF_EXPORT int symlink(const char* target, const char* path) {
  return refused(AT_FDCWD, path, Lookup::must_be_new) ? -1 : real.symlink(target, path);
}
MF_EXPORT int symlinkat(const char* target, int dirfd, const char* path) {
  return refused(dirfd, path, Lookup::must_be_new) ? -1 : real.symlinkat(target, dirfd, path);
}
MF_EXPORT int truncate(const char* path, off_t length) {
  return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.truncate(path, length);
}
MF_EXPORT int truncate64(const char* path, off_t length) { return truncate(path, length); }  // x86-64: one call
MF_EXPORT int chmod(const char* path, mode_t mode) { return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.chmod(path, mode); }
MF_EXPORT int fchmodat(int dirfd, const char* path, mode_t mode, int flags) {
  return refused(dirfd, path, Lookup::must_exist) ? -1 : real.fchmodat(dirfd, path, mode, flags);
}
MF_EXPORT int chown(const char* path, uid_t uid, gid_t gid) {
  return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.chown(path, uid, gid);
}
MF_EXPORT int lchown(const char* path, uid_t uid, gid_t gid) {
  return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.lchown(path, uid, gid);
}
MF_EXPORT int fchownat(int dirfd, const char* path, uid_t uid, gid_t gid, int flags) {
  return refused(dirfd, path, Lookup::must_exist) ? -1 : real.fchownat(dirfd, path, uid, gid, flags);
}
MF_EXPORT int utimensat(int dirfd, const char* path, const struct timespec times[2], int flags) {
  return refused(dirfd, path, Lookup::must_exist) ? -1 : real.utimensat(dirfd, path, times, flags);
}
MF_EXPORT int utimes(const char* path, const struct timeval times[2]) {
  return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.utimes(path, times);
}
MF_EXPORT int setxattr(const char* path, const char* name, const void* value, size_t size, int flags) {
  return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.setxattr(path, name, value, size, flags);
}
MF_EXPORT int lsetxattr(const char* path, const char* name, const void* value, size_t size, int flags) {
  return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.lsetxattr(path, name, value, size, flags);
}
MF_EXPORT int removexattr(const char* path, const char* name) {
  return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.removexattr(path, name);
}
MF_EXPORT int lremovexattr(const char* path, const char* name) {
  return refused(AT_FDCWD, path, Lookup::must_exist) ? -1 : real.lremovexattr(path, name);
}

MF_EXPORT int ftruncate(int fd, off_t length) {
  return virtual_fd(active(), fd) ? (errno = EINVAL, -1) : real.ftruncate(fd, length);
}
MF_EXPORT int ftruncate64(int fd, off_t length) { return ftruncate(fd, length); }  // x86-64: one call
MF_EXPORT int fchmod(int fd, mode_t mode) {
  return virtual_fd(active(), fd) ? (errno = EROFS, -1) : real.fchmod(fd, mode);
}
MF_EXPORT int fchown(int fd, uid_t uid, gid_t gid) {
  return virtual_fd(active(), fd) ? (errno = EROFS, -1) : real.fchown(fd, uid, gid);
}
MF_EXPORT int futimens(int fd, const struct timespec times[2]) {
  return virtual_fd(active(), fd) ? (errno = EROFS, -1) : real.futimens(fd, times);
}
MF_EXPORT int futimes(int fd, const struct timeval times[2]) {
  return virtual_fd(active(), fd) ? (errno = EROFS, -1) : real.futimes(fd, times);
}
MF_EXPORT int fsetxattr(int fd, const char* name, const void* value, size_t size, int flags) {
  return virtual_fd(active(), fd) ? (errno = EROFS, -1) : real.fsetxattr(fd, name, value, size, flags);
}
MF_EXPORT int fremovexattr(int fd, const char* name) {
  return virtual_fd(active(), fd) ? (errno = EROFS, -1) : real.fremovexattr(fd, name);
}
