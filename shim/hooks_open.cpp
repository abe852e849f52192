// Hooks that create, duplicate and close fds: the open family, creat, fopen, dup*, fcntl(F_DUPFD*),
// close, close_range. A mounted path opens as an O_PATH fd to a sealed memfd (core/vfs/vfs.hpp); dups copy
// the fd-table entry so every fd of one description shares the OpenFile, which holds the offset.
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "core/util/log.hpp"
#include "core/util/own_fds.hpp"
#include "shim/shim.hpp"

using mf::shim::real;

namespace mf::shim {
namespace {

int open_mounted(Vfs* v, const MountedPath& p, int flags) {
  Work w;
  auto fd = v->open(p, flags);
  return fd ? w.ok(*fd) : w.fail(fd.error().code);
}

int open_any(int dirfd, const char* path, int flags, mode_t mode) {
  Vfs* v = active();
  if (!v) return real.openat(dirfd, path, flags, mode);
  auto p = mounted(v, dirfd, path);
  if (!p) return real.openat(dirfd, path, flags, mode);
  return open_mounted(v, *p, flags);
}

// stdio over a virtual fd: glibc's FILE reads through its internal read, which no hook sees, so the FILE is
// a fopencookie stream whose functions call core; its _fileno is set to the memfd so fileno() (and
// libstdc++'s filebuf, which reads through read(fileno(f))) sees the same description and offset.
ssize_t cookie_read(void* cookie, char* buf, size_t n) {
  Vfs* v = g_vfs.load(std::memory_order_acquire);
  Work w;
  auto r = v->read(static_cast<int>(reinterpret_cast<intptr_t>(cookie)), buf, n);
  return r ? w.ok(static_cast<ssize_t>(*r)) : w.fail<ssize_t>(r.error().code);
}
int cookie_seek(void* cookie, off64_t* pos, int whence) {
  Vfs* v = g_vfs.load(std::memory_order_acquire);
  Work w;
  auto r = v->lseek(static_cast<int>(reinterpret_cast<intptr_t>(cookie)), *pos, whence);  // the OpenFile's offset
  if (!r) return w.fail(r.error().code);
  *pos = *r;
  return w.ok(0);
}
int cookie_close(void* cookie) { return ::close(static_cast<int>(reinterpret_cast<intptr_t>(cookie))); }

FILE* cookie_file(int fd);

FILE* fopen_any(const char* path, const char* mode) {
  Vfs* v = active();
  if (!v) return real.fopen(path, mode);
  auto p = mounted(v, AT_FDCWD, path);
  if (!p) return real.fopen(path, mode);
  int flags = O_RDONLY;
  for (const char* m = mode; *m; ++m) {
    if (*m == 'w') flags = O_WRONLY | O_CREAT | O_TRUNC;
    else if (*m == 'a') flags = O_WRONLY | O_CREAT | O_APPEND;
    else if (*m == '+') flags = (flags & ~O_ACCMODE) | O_RDWR;
  }
  int fd = open_mounted(v, *p, flags);
  if (fd < 0) return nullptr;
  return cookie_file(fd);
}

FILE* cookie_file(int fd) {
  FILE* f = fopencookie(reinterpret_cast<void*>(static_cast<intptr_t>(fd)), "r",
                        cookie_io_functions_t{cookie_read, nullptr, cookie_seek, cookie_close});
  if (!f) {
    int e = errno;
    ::close(fd);
    errno = e;
    return nullptr;
  }
  f->_fileno = fd;
  return f;
}

void track_dup(int oldfd, int newfd) {
  if (newfd < 0) return;
  Vfs* v = g_vfs.load(std::memory_order_acquire);
  Work w;
  v->dup_fd(oldfd, newfd);
  w.ok(0);
}

// close_range over [lo, hi] minus the engine's own fds: one real call per gap between them. (Setting
// close-on-exec on ours changes nothing: they have it.)
int close_range_sparing_ours(unsigned lo, unsigned hi, int flags) {
  if (flags & CLOSE_RANGE_CLOEXEC || lo > hi || in_vfork_child()) return real.close_range(lo, hi, flags);
  while (lo <= hi) {
    int own = next_own_fd(lo, hi);
    if (own < 0) return real.close_range(lo, hi, flags);
    if (static_cast<unsigned>(own) > lo && real.close_range(lo, static_cast<unsigned>(own) - 1, flags) != 0)
      return -1;
    if (static_cast<unsigned>(own) == hi) break;
    lo = static_cast<unsigned>(own) + 1;
  }
  return 0;
}

// dup2/dup3 onto one of the engine's own fds: the engine's fd moves to another number first
// (relocate_own_fd), then the program's call replaces the old number as it would any fd. One that cannot move
// (curl's connections) is refused with EBUSY (docs/DESIGN.md "The engine's own fds"). Returns 1 when the
// caller must fail the call (errno set), 2 when newfd was ours and moved (a failed call must close newfd:
// it still refers to the engine's file), 0 otherwise.
int onto_own_fd(int oldfd, int newfd) {
  if (oldfd == newfd || !is_own_fd(newfd) || in_vfork_child()) return 0;
  if (real.fcntl(oldfd, F_GETFD) < 0) return 1;  // EBADF, before anything moves
  if (relocate_own_fd(newfd)) return 2;
  log_message(LogLevel::warn, "dup2/dup3 onto fd %d, which the shim uses itself (a connection): refused with "
              "EBUSY", newfd);
  errno = EBUSY;
  return 1;
}

// dup2/dup3 onto a virtual fd closes it, as the kernel does: untracked once the call succeeded.
void forget(Vfs* v, int fd) {
  if (v->maybe_virtual(fd)) v->close_fd(fd);
}

}  // namespace
}  // namespace mf::shim

using namespace mf;
using namespace mf::shim;

#define MF_OPEN_MODE(flags)                \
  mode_t mode = 0;                         \
  if (__OPEN_NEEDS_MODE(flags)) {          \
    va_list ap;                            \
    va_start(ap, flags);                   \
    mode = static_cast<mode_t>(va_arg(ap, int)); \
    va_end(ap);                            \
  }

MF_EXPORT int open(const char* path, int flags, ...) {
  MF_OPEN_MODE(flags);
  return open_any(AT_FDCWD, path, flags, mode);
}
MF_EXPORT int open64(const char* path, int flags, ...) {
  MF_OPEN_MODE(flags);
  return open_any(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}
MF_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  MF_OPEN_MODE(flags);
  return open_any(dirfd, path, flags, mode);
}
MF_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  MF_OPEN_MODE(flags);
  return open_any(dirfd, path, flags | O_LARGEFILE, mode);
}
// _FORTIFY_SOURCE variants: called without a mode (O_CREAT there is a caller bug glibc reports).
MF_EXPORT int __open_2(const char* path, int flags) { return open_any(AT_FDCWD, path, flags, 0); }
MF_EXPORT int __open64_2(const char* path, int flags) { return open_any(AT_FDCWD, path, flags | O_LARGEFILE, 0); }
MF_EXPORT int __openat_2(int dirfd, const char* path, int flags) { return open_any(dirfd, path, flags, 0); }
MF_EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  return open_any(dirfd, path, flags | O_LARGEFILE, 0);
}
MF_EXPORT int creat(const char* path, mode_t mode) {
  return open_any(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}
MF_EXPORT int creat64(const char* path, mode_t mode) {
  return open_any(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_LARGEFILE, mode);
}
MF_EXPORT FILE* fopen(const char* path, const char* mode) { return fopen_any(path, mode); }
MF_EXPORT FILE* fopen64(const char* path, const char* mode) { return fopen_any(path, mode); }
// numpy.fromfile dups the fd of a Python file and fdopen()s it.
MF_EXPORT FILE* fdopen(int fd, const char* mode) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) return real.fdopen(fd, mode);
  if (strpbrk(mode, "wa+")) return (errno = EINVAL), nullptr;  // the fd is read-only
  return cookie_file(fd);
}

MF_EXPORT int close(int fd) {
  // The engine's own fds survive the program's close, which succeeds as if it had closed them
  // (core/util/own_fds.hpp); a vfork child's table is its own copy and closes what it asks.
  // One that can move (the userfaultfd, eventfds, the SIGBUS memfd) moves, and the number is closed for real
  // (free for the program's next open); one that cannot (a connection) stays.
  if (is_own_fd(fd) && !in_vfork_child()) {
    ensure_init();
    if (t_busy || on_internal_thread()) {  // the engine (or curl inside it) closing its own fd: for real
      unregister_own_fd(fd);
      return real.close(fd);
    }
    return relocate_own_fd(fd) ? real.close(fd) : 0;
  }
  Vfs* v = g_vfs.load(std::memory_order_acquire);  // no guard: our own closes must untrack too
  // Before the number can be reused by another thread; never from a vfork child (the table is the parent's).
  if (v && v->maybe_virtual(fd) && !in_vfork_child()) v->close_fd(fd);
  ensure_init();
  return real.close(fd);
}
// curl_multi_init's wakeup pair (and any other socketpair the engine makes): moved to the engine's high fd
// numbers and registered like its other fds (core/util/own_fds.hpp), so the program's close/dup2 of the low
// numbers it would otherwise take (3 and 4 in a fresh process) never meets them. The program's own pairs pass.
MF_EXPORT int socketpair(int domain, int type, int protocol, int sv[2]) {
  ensure_init();
  const bool ours = t_busy || on_internal_thread();
  const int r = real.socketpair(domain, type, protocol, sv);
  if (r == 0 && ours) {
    sv[0] = own_fd(sv[0]);
    sv[1] = own_fd(sv[1]);
  }
  return r;
}

MF_EXPORT int close_range(unsigned lo, unsigned hi, int flags) {
  ensure_init();
  Vfs* v = g_vfs.load(std::memory_order_acquire);
  if (v && !(flags & CLOSE_RANGE_CLOEXEC) && !in_vfork_child()) v->close_range_fds(lo, hi);
  return close_range_sparing_ours(lo, hi, flags);
}
// glibc's closefrom (void): close_range(lo, ~0U, 0), sparing ours, as glibc does it.
MF_EXPORT void closefrom(int lo) {
  if (lo < 0) lo = 0;
  ensure_init();
  Vfs* v = g_vfs.load(std::memory_order_acquire);
  if (v && !in_vfork_child()) v->close_range_fds(static_cast<unsigned>(lo), ~0U);
  if (close_range_sparing_ours(static_cast<unsigned>(lo), ~0U, 0) != 0) real.closefrom(lo);
}

MF_EXPORT int dup(int fd) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd) || in_vfork_child()) return real.dup(fd);
  int r = real.fcntl(fd, F_DUPFD_CLOEXEC, 0);  // a virtual fd is always close-on-exec (see dup2)
  track_dup(fd, r);
  return r;
}
namespace {
int dup2_impl(int oldfd, int newfd) {
  Vfs* v = active();
  if (!v || (!v->maybe_virtual(oldfd) && !v->maybe_virtual(newfd))) return real.dup2(oldfd, newfd);
  if (oldfd == newfd || in_vfork_child()) return real.dup2(oldfd, newfd);
  // A copy of a virtual fd keeps close-on-exec, which dup2 would clear: `cat < /mount/file` in a shell
  // dup2()s the file onto 0 and execs cat, whose new image has no fd table and would read the memfd's
  // zeros. Closed at exec, cat fails on its stdin instead (EBADF) of printing wrong bytes.
  int r = v->maybe_virtual(oldfd) ? real.dup3(oldfd, newfd, O_CLOEXEC) : real.dup2(oldfd, newfd);
  if (r < 0) return r;  // newfd untouched (a bad oldfd): it stays virtual
  forget(v, newfd);
  if (v->maybe_virtual(oldfd)) track_dup(oldfd, r);
  return r;
}
int dup3_impl(int oldfd, int newfd, int flags) {
  Vfs* v = active();
  if (!v || (!v->maybe_virtual(oldfd) && !v->maybe_virtual(newfd)) || in_vfork_child())
    return real.dup3(oldfd, newfd, flags);
  int r = real.dup3(oldfd, newfd, v->maybe_virtual(oldfd) ? flags | O_CLOEXEC : flags);
  if (r < 0) return r;  // newfd untouched (a bad oldfd): it stays virtual
  forget(v, newfd);
  if (v->maybe_virtual(oldfd)) track_dup(oldfd, r);
  return r;
}
// After onto_own_fd moved the engine's fd away from newfd: a failed call leaves newfd a stray copy of the
// engine's file, which is closed (the program sees the number free, as after a close).
int close_if_failed(int r, int newfd) {
  if (r < 0) {
    int e = errno;
    real.close(newfd);
    errno = e;
  }
  return r;
}
}  // namespace

MF_EXPORT int dup2(int oldfd, int newfd) {
  int o = onto_own_fd(oldfd, newfd);
  if (o == 1) return -1;
  int r = dup2_impl(oldfd, newfd);
  return o == 2 ? close_if_failed(r, newfd) : r;
}
MF_EXPORT int dup3(int oldfd, int newfd, int flags) {
  int o = onto_own_fd(oldfd, newfd);
  if (o == 1) return -1;
  int r = dup3_impl(oldfd, newfd, flags);
  return o == 2 ? close_if_failed(r, newfd) : r;
}

// Every fcntl argument is an int or a pointer; on x86-64 both travel in one register, so forwarding it as
// a long is exact.
MF_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd) || in_vfork_child()) return real.fcntl(fd, cmd, arg);
  bool handled;
  int done = fcntl_virtual(v, fd, cmd, arg, &handled);  // F_GETFL, F_SETFL, locks: the O_PATH fd refuses them
  if (handled) return done;
  if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) return real.fcntl(fd, cmd, arg);
  int r = real.fcntl(fd, F_DUPFD_CLOEXEC, arg);  // close-on-exec kept (see dup2)
  track_dup(fd, r);
  return r;
}
MF_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  return fcntl(fd, cmd, arg);
}
