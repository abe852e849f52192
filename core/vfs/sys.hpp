// Raw system calls for core/vfs. Inside libmodelfetch.so a call to lseek() or fstat() would bind to our own
// exported hook (the preloaded library comes first in the lookup scope) and cost a second filter pass; the
// virtual-fd machinery therefore talks to the kernel directly. syscall() returns -1 and sets errno.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mf::sys {

inline int memfd_create(const char* name, unsigned flags) {
  return static_cast<int>(::syscall(SYS_memfd_create, name, flags));
}
inline int ftruncate(int fd, off_t length) { return static_cast<int>(::syscall(SYS_ftruncate, fd, length)); }
inline off_t lseek(int fd, off_t offset, int whence) {
  return static_cast<off_t>(::syscall(SYS_lseek, fd, offset, whence));
}
inline int fchmod(int fd, mode_t mode) { return static_cast<int>(::syscall(SYS_fchmod, fd, mode)); }
inline int close(int fd) { return static_cast<int>(::syscall(SYS_close, fd)); }
inline int fcntl(int fd, int cmd, long arg) { return static_cast<int>(::syscall(SYS_fcntl, fd, cmd, arg)); }
inline int fstat(int fd, struct stat* st) { return static_cast<int>(::syscall(SYS_fstat, fd, st)); }
inline long getcwd(char* buf, size_t size) { return ::syscall(SYS_getcwd, buf, size); }
inline int openat(int dirfd, const char* path, int flags) {
  return static_cast<int>(::syscall(SYS_openat, dirfd, path, flags, 0));
}
inline int dup3(int oldfd, int newfd, int flags) { return static_cast<int>(::syscall(SYS_dup3, oldfd, newfd, flags)); }
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
// open_tree(fd, "", AT_EMPTY_PATH | OPEN_TREE_CLOEXEC): an O_PATH fd to fd's inode without /proc (Linux 5.2+).
inline int open_tree_empty(int fd) {
  return static_cast<int>(::syscall(SYS_open_tree, fd, "", AT_EMPTY_PATH | O_CLOEXEC));
}

}  // namespace mf::sys
