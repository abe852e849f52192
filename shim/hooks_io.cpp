// Hooks that move bytes or map memory. Reads on a virtual fd are served from the ChunkCache; mmap of a
// virtual fd goes to the MappingManager; munmap/madvise/mremap on managed ranges go there too. Any
// syscall that makes the kernel touch program memory (read into it, write/send from it) first makes a
// managed range resident (prepare_kernel_access): with UFFD_USER_MODE_ONLY the kernel gets EFAULT on a
// missing page instead of a fault we could serve.
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim/shim.hpp"

using mf::shim::real;

namespace mf::shim {
namespace {

// A stale mark (the fd was closed behind our back and reused) comes back from core as EBADF and is
// cleared there: such a call is not ours and goes to libc.
inline bool not_ours(Vfs* v, int fd, const Result<size_t>& r) {
  return !r && r.error().code == EBADF && !v->maybe_virtual(fd);
}

ssize_t finish(Work& w, const Result<size_t>& r) {
  return r ? w.ok(static_cast<ssize_t>(*r)) : w.fail<ssize_t>(r.error().code);
}

bool prepare_iov(Vfs* v, const struct iovec* iov, int n) {
  if (!v || !v->mappings()) return true;
  for (int i = 0; i < n; ++i)
    if (!prepare_kernel_access(v, iov[i].iov_base, iov[i].iov_len)) return false;
  return true;
}

ssize_t pread_any(int fd, void* buf, size_t n, off_t off) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) {
    if (!prepare_kernel_access(v, buf, n)) return -1;
    return real.pread(fd, buf, n, off);
  }
  if (off < 0) return (errno = EINVAL), -1;
  Work w;
  auto r = v->pread(fd, buf, n, static_cast<uint64_t>(off));
  if (not_ours(v, fd, r)) return w.ok(real.pread(fd, buf, n, off));
  return finish(w, r);
}

ssize_t preadv_any(int fd, const struct iovec* iov, int cnt, off_t off, int flags, bool has_flags) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) {
    if (!prepare_iov(v, iov, cnt)) return -1;
    return has_flags ? real.preadv2(fd, iov, cnt, off, flags) : real.preadv(fd, iov, cnt, off);
  }
  Work w;
  auto r = v->preadv(fd, iov, cnt, off);  // preadv2 with offset -1 reads at the file offset, like readv
  if (not_ours(v, fd, r))
    return w.ok(has_flags ? real.preadv2(fd, iov, cnt, off, flags) : real.preadv(fd, iov, cnt, off));
  return finish(w, r);
}

// The memory calls (mmap, munmap, madvise, mremap) never initialise the shim: until a hook that takes a
// path has initialised it, no fd is virtual and no mapping is ours, so they pass straight through (to the
// raw syscall while the real symbols are not resolved yet). Sanitizer runtimes map memory from inside
// their own lazy init, which can run inside another library's constructor holding libc's locale lock
// (p11-kit's newlocale → ASan's first malloc → mmap): initialising there left that lock broken and the
// program hung (found with the ASan build, scripts/sanitize).
Vfs* active_for_memory() { return g_vfs.load(std::memory_order_acquire) ? active() : nullptr; }

void* pass_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (real.mmap) return real.mmap(addr, len, prot, flags, fd, off);
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}

void* mmap_any(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  Vfs* v = active_for_memory();
  if (!v) return pass_mmap(addr, len, prot, flags, fd, off);
  if (!v || fd < 0 || (flags & MAP_ANONYMOUS) || !v->maybe_virtual(fd))
    return real.mmap(addr, len, prot, flags, fd, off);
  Work w;
  auto r = v->mmap(fd, addr, len, prot, flags, off);
  if (!r && r.error().code == EBADF && !v->maybe_virtual(fd)) return w.ok(real.mmap(addr, len, prot, flags, fd, off));
  return r ? w.ok(*r) : w.fail(r.error().code, MAP_FAILED);
}

}  // namespace

bool virtual_fd(Vfs* v, int fd) {
  if (!v || !v->maybe_virtual(fd)) return false;
  Work w;
  bool ours = v->file(fd) != nullptr;
  w.ok(0);
  return ours;
}
}  // namespace mf::shim

using namespace mf;
using namespace mf::shim;

MF_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) {
    if (!prepare_kernel_access(v, buf, n)) return -1;
    return real.read(fd, buf, n);
  }
  Work w;
  auto r = v->read(fd, buf, n);
  if (not_ours(v, fd, r)) return w.ok(real.read(fd, buf, n));
  return finish(w, r);
}
MF_EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) abort();  // what glibc's __chk_fail does, minus the message
  return read(fd, buf, n);
}
MF_EXPORT ssize_t pread(int fd, void* buf, size_t n, off_t off) { return pread_any(fd, buf, n, off); }
MF_EXPORT ssize_t pread64(int fd, void* buf, size_t n, off_t off) { return pread_any(fd, buf, n, off); }
MF_EXPORT ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (n > buflen) abort();
  return pread_any(fd, buf, n, off);
}
MF_EXPORT ssize_t __pread64_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (n > buflen) abort();
  return pread_any(fd, buf, n, off);
}
MF_EXPORT ssize_t readv(int fd, const struct iovec* iov, int cnt) {
  Vfs* v = active();
  if (!v || !v->maybe_virtual(fd)) {
    if (!prepare_iov(v, iov, cnt)) return -1;
    return real.readv(fd, iov, cnt);
  }
  Work w;
  auto r = v->preadv(fd, iov, cnt, -1);
  if (not_ours(v, fd, r)) return w.ok(real.readv(fd, iov, cnt));
  return finish(w, r);
}
MF_EXPORT ssize_t preadv(int fd, const struct iovec* iov, int cnt, off_t off) {
  return preadv_any(fd, iov, cnt, off, 0, false);
}
MF_EXPORT ssize_t preadv64(int fd, const struct iovec* iov, int cnt, off_t off) {
  return preadv_any(fd, iov, cnt, off, 0, false);
}
MF_EXPORT ssize_t preadv2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  return preadv_any(fd, iov, cnt, off, flags, true);
}
MF_EXPORT ssize_t preadv64v2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  return preadv_any(fd, iov, cnt, off, flags, true);
}

MF_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  Vfs* v = active();
  if (virtual_fd(v, fd)) return (errno = EBADF), -1;  // read-only, as an O_RDONLY fd
  if (!prepare_kernel_access(v, buf, n)) return -1;
  return real.write(fd, buf, n);
}
MF_EXPORT ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  Vfs* v = active();
  if (virtual_fd(v, fd)) return (errno = EBADF), -1;  // read-only, as an O_RDONLY fd
  if (!prepare_kernel_access(v, buf, n)) return -1;
  return real.pwrite(fd, buf, n, off);
}
MF_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }
MF_EXPORT ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  Vfs* v = active();
  if (virtual_fd(v, fd)) return (errno = EBADF), -1;  // read-only, as an O_RDONLY fd
  if (!prepare_iov(v, iov, cnt)) return -1;
  return real.writev(fd, iov, cnt);
}
MF_EXPORT ssize_t send(int fd, const void* buf, size_t n, int flags) {
  Vfs* v = active();
  if (!prepare_kernel_access(v, buf, n)) return -1;
  return real.send(fd, buf, n, flags);
}

MF_EXPORT void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap_any(addr, len, prot, flags, fd, off);
}
MF_EXPORT void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap_any(addr, len, prot, flags, fd, off);
}
MF_EXPORT int munmap(void* addr, size_t len) {
  Vfs* v = active_for_memory();
  MappingManager* mm = v ? v->mappings() : nullptr;
  if (mm) {
    Work w;  // our own work: a fill's reads and the client's wakeup write pass through (shim.hpp)
    int rc;
    if (mm->munmap(addr, len, &rc)) return rc == 0 ? w.ok(rc) : rc;
  }
  return real.munmap ? real.munmap(addr, len) : static_cast<int>(syscall(SYS_munmap, addr, len));
}
MF_EXPORT int madvise(void* addr, size_t len, int advice) {
  Vfs* v = active_for_memory();
  MappingManager* mm = v ? v->mappings() : nullptr;
  if (mm) {
    Work w;  // a refill under the manager's lock must not re-enter it through our read/write hooks
    int rc;
    if (mm->madvise(addr, len, advice, &rc)) return rc == 0 ? w.ok(rc) : rc;
  }
  return real.madvise ? real.madvise(addr, len, advice) : static_cast<int>(syscall(SYS_madvise, addr, len, advice));
}
MF_EXPORT void* mremap(void* old_addr, size_t old_size, size_t new_size, int flags, ...) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  Vfs* v = active_for_memory();
  MappingManager* mm = v ? v->mappings() : nullptr;
  if (mm) {
    Work w;
    void* result;
    if (mm->mremap(old_addr, old_size, new_size, flags, new_addr, &result))
      return result != MAP_FAILED ? w.ok(result) : result;
  }
  if (!real.mremap) return reinterpret_cast<void*>(syscall(SYS_mremap, old_addr, old_size, new_size, flags, new_addr));
  return real.mremap(old_addr, old_size, new_size, flags, new_addr);
}
