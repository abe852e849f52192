// Hooks for the calls that move a file's bytes inside the kernel (sendfile, copy_file_range, splice) and for
// the fd calls the kernel refuses on a virtual fd because it is O_PATH (lseek, posix_fadvise, readahead,
// fsync, fdatasync, flock, lockf, fgetxattr, flistxattr; fcntl's F_GETFL/F_SETFL/locks come here from hooks_open.cpp). A virtual source
// is read from the cache by Vfs::copy_to in bounded pieces and written to the destination with the real
// write/pwrite; a virtual destination fails with EBADF (read-only). tee and vmsplice need pipes on both
// sides, so the kernel already refuses a virtual fd there (EBADF) and they are not hooked.
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "shim/shim.hpp"

using mf::shim::real;

namespace mf::shim {
namespace {

// The real fd is ours only when the table still says so (a stale mark is cleared by Vfs and the call goes
// to libc).
bool ours(Vfs* v, int fd) { return v && v->maybe_virtual(fd) && v->file(fd) != nullptr; }

Result<size_t> wrote(ssize_t r) {
  if (r < 0) return make_error(errno, "write failed");
  return static_cast<size_t>(r);
}

ssize_t finish(Work& w, const Result<size_t>& r) {
  return r ? w.ok(static_cast<ssize_t>(*r)) : w.fail<ssize_t>(r.error().code);
}

// Writes to a pipe as splice would: never more than the pipe takes now (a blocking write could wait for a
// reader that is this very thread, after the splice returns); waits for room only before the first byte,
// and not at all with SPLICE_F_NONBLOCK or an O_NONBLOCK pipe.
Result<size_t> write_to_pipe(int pipe, const std::byte* d, size_t n, bool nonblock, bool moved_some) {
  for (;;) {
    struct iovec iov{const_cast<std::byte*>(d), n};
    ssize_t r = ::pwritev2(pipe, &iov, 1, -1, RWF_NOWAIT);
    if (r < 0 && errno == EOPNOTSUPP) {  // a kernel without RWF_NOWAIT on pipes: what FIONREAD says is free
      int cap = real.fcntl(pipe, F_GETPIPE_SZ, 0);
      int used = 0;
      if (cap < 0 || ioctl(pipe, FIONREAD, &used) < 0) return make_error(errno, "pipe size");
      size_t room = cap > used ? static_cast<size_t>(cap - used) : 0;
      if (room > 0) return wrote(real.write(pipe, d, std::min(n, room)));
      errno = EAGAIN;
    }
    if (r >= 0) return static_cast<size_t>(r);
    if (errno != EAGAIN) return make_error(errno, "write to pipe failed");
    if (moved_some) return size_t{0};  // a partial splice, as the kernel returns one
    if (nonblock) return make_error(EAGAIN, "pipe full");
    struct pollfd p{pipe, POLLOUT, 0};
    if (poll(&p, 1, -1) < 0) return make_error(errno, "poll");
  }
}

}  // namespace

int fcntl_virtual(Vfs* v, int fd, int cmd, long arg, bool* handled) {
  *handled = false;
  if (cmd != F_GETFL && cmd != F_SETFL && cmd != F_GETLK && cmd != F_SETLK && cmd != F_SETLKW &&
      cmd != F_OFD_GETLK && cmd != F_OFD_SETLK && cmd != F_OFD_SETLKW)
    return 0;
  if (!ours(v, fd)) return 0;
  *handled = true;
  Work w;
  if (cmd == F_GETFL) {
    auto r = v->get_status_flags(fd);
    return r ? w.ok(*r) : w.fail(r.error().code);
  }
  if (cmd == F_SETFL) {
    auto r = v->set_status_flags(fd, static_cast<int>(arg));
    return r ? w.ok(0) : w.fail(r.error().code);
  }
  // Record locks on a read-only file: read locks and unlocks succeed (nothing else can write the object,
  // and the lock is not shared with other processes), a write lock fails with EBADF as on any fd not open
  // for writing; F_GETLK finds no conflicting lock.
  auto* fl = reinterpret_cast<struct flock*>(arg);
  if (fl == nullptr) return w.fail(EFAULT);
  if (cmd == F_GETLK || cmd == F_OFD_GETLK) {
    if (fl->l_type != F_RDLCK && fl->l_type != F_WRLCK) return w.fail(EINVAL);
    fl->l_type = F_UNLCK;
    return w.ok(0);
  }
  if (fl->l_type == F_WRLCK) return w.fail(EBADF);
  if (fl->l_type != F_RDLCK && fl->l_type != F_UNLCK) return w.fail(EINVAL);
  return w.ok(0);
}

}  // namespace mf::shim

using namespace mf;
using namespace mf::shim;

MF_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
  Vfs* v = active();
  if (!ours(v, in_fd)) return real.sendfile(out_fd, in_fd, offset, count);
  Work w;
  if (ours(v, out_fd)) return w.fail<ssize_t>(EBADF);  // read-only
  int64_t off = offset ? *offset : 0;
  auto r = v->copy_to(in_fd, offset ? &off : nullptr, count,
                      [&](const std::byte* d, size_t n) { return wrote(real.write(out_fd, d, n)); });
  if (offset && r) *offset = off;
  return finish(w, r);
}
MF_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t* offset, size_t count) {
  return sendfile(out_fd, in_fd, offset, count);
}

MF_EXPORT ssize_t copy_file_range(int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, size_t len,
                                  unsigned flags) {
  Vfs* v = active();
  if (!ours(v, fd_in)) return real.copy_file_range(fd_in, off_in, fd_out, off_out, len, flags);
  Work w;
  if (ours(v, fd_out)) return w.fail<ssize_t>(EBADF);  // read-only
  if (flags != 0) return w.fail<ssize_t>(EINVAL);
  if (off_out && *off_out < 0) return w.fail<ssize_t>(EINVAL);
  // The destination must be a regular file open for writing, not in append mode (as the kernel checks).
  int fl = real.fcntl(fd_out, F_GETFL, 0);
  if (fl < 0) return w.fail<ssize_t>(errno);
  if ((fl & O_ACCMODE) == O_RDONLY || (fl & O_APPEND)) return w.fail<ssize_t>(EBADF);
  struct stat st;
  if (real.fstat(fd_out, &st) != 0) return w.fail<ssize_t>(errno);
  if (S_ISDIR(st.st_mode)) return w.fail<ssize_t>(EISDIR);
  if (!S_ISREG(st.st_mode)) return w.fail<ssize_t>(EINVAL);
  int64_t in = off_in ? *off_in : 0;
  int64_t out = off_out ? *off_out : 0;
  auto r = v->copy_to(fd_in, off_in ? &in : nullptr, len, [&](const std::byte* d, size_t n) {
    if (!off_out) return wrote(real.write(fd_out, d, n));
    auto took = wrote(real.pwrite(fd_out, d, n, out));
    if (took) out += static_cast<int64_t>(*took);
    return took;
  });
  if (r) {
    if (off_in) *off_in = in;
    if (off_out) *off_out = out;
  }
  return finish(w, r);
}

MF_EXPORT ssize_t splice(int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, size_t len, unsigned flags) {
  Vfs* v = active();
  if (!ours(v, fd_in)) return real.splice(fd_in, off_in, fd_out, off_out, len, flags);
  Work w;
  if (ours(v, fd_out)) return w.fail<ssize_t>(EBADF);
  struct stat st;
  if (real.fstat(fd_out, &st) != 0) return w.fail<ssize_t>(errno);
  if (!S_ISFIFO(st.st_mode)) return w.fail<ssize_t>(EINVAL);  // one side must be a pipe
  if (off_out) return w.fail<ssize_t>(ESPIPE);                 // no offset on a pipe
  int pfl = real.fcntl(fd_out, F_GETFL, 0);
  if (pfl < 0) return w.fail<ssize_t>(errno);
  if ((pfl & O_ACCMODE) == O_RDONLY) return w.fail<ssize_t>(EBADF);
  bool nonblock = (flags & SPLICE_F_NONBLOCK) || (pfl & O_NONBLOCK);
  int64_t in = off_in ? *off_in : 0;
  bool moved = false;
  auto r = v->copy_to(fd_in, off_in ? &in : nullptr, len, [&](const std::byte* d, size_t n) {
    auto took = write_to_pipe(fd_out, d, n, nonblock, moved);
    if (took && *took > 0) moved = true;
    return took;
  });
  if (r && off_in) *off_in = in;
  return finish(w, r);
}

MF_EXPORT off_t lseek(int fd, off_t offset, int whence) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) return real.lseek(fd, offset, whence);
  Work w;
  auto r = v->lseek(fd, offset, whence);
  if (!r && r.error().code == EBADF && !v->maybe_virtual(fd)) return w.ok(real.lseek(fd, offset, whence));
  return r ? w.ok(static_cast<off_t>(*r)) : w.fail<off_t>(r.error().code);
}
MF_EXPORT off_t lseek64(int fd, off_t offset, int whence) { return lseek(fd, offset, whence); }

// As on a read-only regular file: advice and readahead are accepted (the prefetcher decides what to fetch),
// fsync has nothing to write, flock and lockf read locks succeed (not shared with other processes). Their argument checks are
// the kernel's.
MF_EXPORT int posix_fadvise(int fd, off_t offset, off_t len, int advice) {
  Vfs* v = active();
  if (!ours(v, fd)) return real.posix_fadvise(fd, offset, len, advice);
  if (len < 0 || advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE) return EINVAL;
  return 0;  // returns the error number, errno untouched
}
MF_EXPORT int posix_fadvise64(int fd, off_t offset, off_t len, int advice) {
  return posix_fadvise(fd, offset, len, advice);
}
MF_EXPORT ssize_t readahead(int fd, off64_t offset, size_t count) {
  Vfs* v = active();
  if (!ours(v, fd)) return real.readahead(fd, offset, count);
  if (offset < 0) return (errno = EINVAL), -1;
  return 0;
}
MF_EXPORT int fsync(int fd) {
  Vfs* v = active();
  return ours(v, fd) ? 0 : real.fsync(fd);
}
MF_EXPORT int fdatasync(int fd) {
  Vfs* v = active();
  return ours(v, fd) ? 0 : real.fdatasync(fd);
}
// glibc's lockf calls its internal fcntl, which no hook sees: F_TEST finds no lock, F_ULOCK succeeds,
// F_LOCK/F_TLOCK (write locks) fail with EBADF as on any fd not open for writing.
MF_EXPORT int lockf(int fd, int cmd, off_t len) {
  Vfs* v = active();
  if (!ours(v, fd)) return real.lockf(fd, cmd, len);
  if (cmd == F_TEST || cmd == F_ULOCK) return 0;
  errno = cmd == F_LOCK || cmd == F_TLOCK ? EBADF : EINVAL;
  return -1;
}
MF_EXPORT int lockf64(int fd, int cmd, off_t len) { return lockf(fd, cmd, len); }
MF_EXPORT int flock(int fd, int op) {
  Vfs* v = active();
  if (!ours(v, fd)) return real.flock(fd, op);
  int kind = op & ~LOCK_NB;
  if (kind != LOCK_SH && kind != LOCK_EX && kind != LOCK_UN) return (errno = EINVAL), -1;
  return 0;
}

// Extended attributes of a remote file: none (the O_PATH fd would answer EBADF; cp -a and rsync -X ask).
MF_EXPORT ssize_t fgetxattr(int fd, const char* name, void* value, size_t size) {
  Vfs* v = active();
  if (!ours(v, fd)) return real.fgetxattr(fd, name, value, size);
  return (errno = ENODATA), -1;
}
MF_EXPORT ssize_t flistxattr(int fd, char* list, size_t size) {
  Vfs* v = active();
  if (!ours(v, fd)) return real.flistxattr(fd, list, size);
  return 0;
}
